use parfor::parmap;
use std::collections::HashSet;

fn main() {
    let s: HashSet<u32> = HashSet::new();
    let _y: Vec<u32> = parmap!(|a: u32| a, s);
}
