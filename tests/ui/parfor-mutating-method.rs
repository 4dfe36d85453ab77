use parfor::parfor;
use std::collections::HashMap;

#[parfor]
fn tidy(v: &[i64]) -> (Vec<i64>, HashMap<i64, usize>) {
    let mut sorted = v.to_vec();
    let mut seen = HashMap::new();
    #[parfor]
    for i in 0..v.len() {
        sorted.sort();
        seen.insert(v[i], i);
    }
    (sorted, seen)
}

fn main() {
    tidy(&[1]);
}
