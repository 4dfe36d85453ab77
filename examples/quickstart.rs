//! The README's demo: a parameter sweep with `parmap!` and a `#[parfor]` loop with a sliced
//! output and reductions, on the default engine (`PARFOR_ENGINE=serial|threads|fork` to
//! change it).
//!
//! ```text
//! cargo run --release --example quickstart
//! ```

use parfor::{parfor, parmap};
use std::f64::consts::PI;
use std::time::Instant;

/// The function swept over the grid.
fn hypot(a: f64, b: f64) -> f64 {
    a.hypot(b)
}

#[parfor]
fn main() {
    let engine = parfor::default_engine().unwrap_or_else(|e| panic!("{e}"));
    println!("engine: {engine}, workers: {}", parfor::default_workers().unwrap_or(1));

    // x = linspace(0, 1, 1000); r = hypot over every pair (x(i), x(j))
    let t0 = Instant::now();
    let x: Vec<f64> = (0..1000).map(|i| f64::from(i) / 999.0).collect();
    let r = parmap!(hypot, x, x);
    let far = r.iter().filter(|&&d| d > 1.0).count();
    println!(
        "parmap!(hypot, x, x): {} values, {far} farther than 1 from the origin ({:.1?})",
        r.len(),
        t0.elapsed()
    );

    // y(i) = sin(pi * t(i)); total = sum(y); peak = max(y)
    let t0 = Instant::now();
    let n = 2_000_000;
    let mut y = vec![0.0; n];
    let mut total = 0.0;
    let mut peak = f64::MIN;
    #[parfor]
    for i in 0..n {
        let s = (PI * i as f64 / n as f64).sin();
        y[i] = s;
        total += s;
        peak = peak.max(s);
    }
    println!(
        "#[parfor] loop over {n} points: mean(y) = {:.6} (2/pi = {:.6}), max(y) = {peak:.6} ({:.1?})",
        total / n as f64,
        2.0 / PI,
        t0.elapsed()
    );
    assert!((total / n as f64 - 2.0 / PI).abs() < 1e-6);
    assert_eq!(y[n / 2], (PI / 2.0).sin());
}
