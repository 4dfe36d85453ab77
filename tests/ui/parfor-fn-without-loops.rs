// A `#[parfor]` function with no `#[parfor]` loop warns (the attribute does nothing).
#![deny(deprecated)]
use parfor::parfor;

#[parfor]
fn sum(v: &[u64]) -> u64 {
    let mut s = 0;
    for x in v.iter() {
        s += x;
    }
    s
}

fn main() {
    sum(&[1]);
}
