//! `crate = ...` points the expansion at a re-export of parfor.

mod reexport {
    pub use parfor as engine_room;
}

#[parfor::parfor(crate = "crate::reexport::engine_room")]
fn sum(v: &[u32]) -> u32 {
    let mut s = 0;
    #[parfor]
    for x in v.iter() {
        s += x;
    }
    s
}

fn main() {
    assert_eq!(sum(&[1, 2, 3]), 6);
}
