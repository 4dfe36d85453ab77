// An atomic broadcast changed through `&self` on the mpi engine: each rank would change
// only its own copy.
use parfor::parfor;
use std::sync::atomic::{AtomicUsize, Ordering};

#[parfor]
fn count(v: &[f64]) -> usize {
    let hits = AtomicUsize::new(0);
    #[parfor(engine = "mpi")]
    for x in v.iter() {
        if *x > 0.5 {
            hits.fetch_add(1, Ordering::Relaxed);
        }
    }
    hits.into_inner()
}

fn main() {
    count(&[1.0]);
}
