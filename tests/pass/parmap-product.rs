//! A Cartesian product of a `Vec`, an array and a range, under strict lints.
#![deny(warnings, unused_qualifications, clippy::pedantic)]

use parfor::parmap;

fn f(a: f64, b: u8, c: usize) -> f64 {
    a * f64::from(b) + c as f64
}

fn main() {
    let xs = vec![1.0, 2.0];
    let ys = [3u8, 4];
    let out: Vec<f64> = parmap!(f, xs, ys, 0..3usize; engine = "serial", workers = 1, chunk = 2);
    assert_eq!(out.len(), 12);
    let zipped = parmap!(|a: f64, b: f64| a + b, xs, &xs[..]; zip = true);
    assert_eq!(zipped, [2.0, 4.0]);
    // Serde results satisfy the compile-time check of a literal fork engine (not run here).
    let _run_on_fork = || parmap!(|a: f64| (a, a > 1.0), xs; engine = "fork");
}
