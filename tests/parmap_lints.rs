//! The expansion is lint-clean under strict settings (clippy runs this file with
//! `--all-targets`).
#![deny(warnings, unused_qualifications, unused_results, clippy::pedantic)]

use parfor::{TaskError, parmap};

fn hypot(a: f64, b: f64) -> f64 {
    a.hypot(b)
}

#[test]
fn strict_lints() {
    let xs = vec![1.0, 2.0];
    let ys = [3.0, 4.0];
    let scale = 2.0;
    let hyp = parmap!(hypot, xs, ys);
    let zipped =
        parmap!(|a, b| a * b, xs, &ys[..]; zip = true, engine = "serial", workers = 2, chunk = 1);
    let scaled = parmap!(|a: f64, k: f64| a * k, xs; args = (scale,), zip = xs.len() > 1);
    let tried: Vec<Result<u32, TaskError>> = parmap!(|i| i + 1, 0..3u32; on_error = "collect");
    let ints = parmap!(|i: i64| i, -2i64..=2; engine = "fork", timeout = "10s", progress = false);
    assert_eq!((hyp.len(), zipped.len(), scaled.len(), tried.len(), ints.len()), (4, 2, 2, 3, 5));
}
