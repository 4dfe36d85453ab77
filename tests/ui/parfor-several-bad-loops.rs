use parfor::parfor;

#[parfor]
fn many(v: &[i64]) -> (usize, i64) {
    let mut last = 0;
    let mut s = 0;
    #[parfor]
    for i in 0..v.len() {
        last = i;
    }
    #[parfor]
    for x in v.iter() {
        s += x;
        if s > 3 {
            break;
        }
    }
    (last, s)
}

fn main() {
    many(&[1]);
}
