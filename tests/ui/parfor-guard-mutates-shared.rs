// A match guard inside a `#[parfor]` body that changes a shared variable.
use parfor::parfor;

#[parfor]
fn tidy(v: &[i64]) -> Vec<i64> {
    let mut sorted = v.to_vec();
    #[parfor]
    for i in 0..v.len() {
        match v.get(i) {
            Some(x) if { sorted.sort(); *x > 0 } => {}
            _ => {}
        }
    }
    sorted
}

fn main() {
    tidy(&[1]);
}
