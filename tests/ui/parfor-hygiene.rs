use parfor::parfor;

#[parfor]
fn sum(v: &[i64]) -> i64 {
    let mut s = 0;
    #[parfor]
    for i in 0..v.len() {
        s += v[__parfor_pos];
        let _ = __parfor_state;
    }
    s
}

fn main() {
    sum(&[1]);
}
