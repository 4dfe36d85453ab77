use parfor::parfor;

#[parfor]
fn last_positive(v: &[i64]) -> usize {
    let mut last = 0;
    #[parfor]
    for i in 0..v.len() {
        if v[i] > 0 {
            last = i;
        }
    }
    last
}

fn main() {
    last_positive(&[1]);
}
