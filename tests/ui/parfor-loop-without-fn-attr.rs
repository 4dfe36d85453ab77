// `#[parfor]` on a loop of a function that has no `#[parfor]`.
use parfor::parfor;

fn sum(v: &[u64]) -> u64 {
    let mut s = 0;
    #[parfor]
    for x in v.iter() {
        s += x;
    }
    s
}

fn main() {
    sum(&[1]);
}
