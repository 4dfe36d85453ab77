use parfor::parfor;
use std::collections::HashMap;

#[parfor]
fn total(m: &HashMap<String, i64>, v: Vec<i64>) -> i64 {
    let mut s = 0;
    #[parfor]
    for (_, x) in m {
        s += x;
    }
    #[parfor]
    for x in v {
        s += x;
    }
    s
}

fn main() {
    total(&HashMap::new(), vec![]);
}
