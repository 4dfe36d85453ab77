use parfor::parfor;
use std::collections::HashMap;

#[parfor]
fn total(m: &HashMap<String, i64>) -> usize {
    let mut s = 0;
    #[parfor]
    for kv in &m {
        s += kv.0.len();
    }
    s
}

fn main() {
    total(&HashMap::new());
}
