//! The expansion uses absolute paths only: shadowed prelude and primitive names, and local
//! modules named like the crates it uses, change nothing.
#![allow(dead_code, non_camel_case_types)]

use parfor::parmap;

mod core {}
mod std {}
mod parfor_runtime {}

struct Vec;
struct Option;
struct Some;
struct None;
struct Result;
struct Ok;
struct Err;
struct Box;
struct Fn;
struct Sync;
struct Send;
struct usize;
struct bool;

fn twice(a: f64, b: u8) -> f64 {
    a * f64::from(b)
}

fn main() {
    let xs = [1.0, 2.0];
    let out = parmap!(twice, xs, 0..2u8; engine = "threads", on_error = "collect");
    assert_eq!(out.len(), 4);
    let out = parmap!(|a: f64, b| a + f64::from(*b), xs, [1u8, 2]; zip = xs.len() == 2);
    assert_eq!(out[1], 4.0);
}
