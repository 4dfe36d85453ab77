//! `crate = ...` names the facade when it is reached through another path.

mod reexport {
    pub use ::parfor;
}

use reexport::parfor::parmap;

fn main() {
    let xs = [1u32, 2, 3];
    let out = parmap!(|a: u32| a + 1, xs; crate = reexport::parfor);
    assert_eq!(out, [2, 3, 4]);
    let out = parmap!(|a| a + 1, 0..3u32; crate = "reexport::parfor");
    assert_eq!(out, [1, 2, 3]);
}
