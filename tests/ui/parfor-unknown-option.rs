use parfor::parfor;

#[parfor]
fn sum(v: &[i64]) -> i64 {
    let mut s = 0;
    #[parfor(engin = "threads")]
    for x in v.iter() {
        s += x;
    }
    s
}

fn main() {
    sum(&[1]);
}
