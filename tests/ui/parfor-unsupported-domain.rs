use parfor::parfor;

#[parfor]
fn total(v: &[i64]) -> i64 {
    let mut s = 0;
    #[parfor]
    for i in 0.. {
        s += v[i];
    }
    #[parfor]
    for (i, x) in (1..).enumerate() {
        s += x * i as i64;
    }
    s
}

fn main() {
    total(&[]);
}
