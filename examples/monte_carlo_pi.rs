//! Estimates pi by throwing random darts at the unit square: a `#[parfor]` count reduction,
//! and a histogram of how far the darts land from the corner (an array reduction,
//! `hist[bin] += 1`).
//!
//! ```text
//! cargo run --release --example monte_carlo_pi [-- --engine serial|threads|fork]
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::{Engine, parfor};

/// Bins of the histogram of distances from the corner, 0.1 wide (distances reach sqrt(2)).
const BINS: usize = 15;

/// Counts the darts of `n` that land inside the quarter circle, and how many land at each
/// distance from the corner.
#[parfor]
fn darts_inside(n: u64, engine: Engine) -> (u64, Vec<u64>) {
    let mut inside = 0u64;
    let mut hist = vec![0u64; BINS];
    #[parfor(engine = engine)]
    for i in 0..n {
        let x = common::uniform(1, 2 * i);
        let y = common::uniform(1, 2 * i + 1);
        let r2 = x * x + y * y;
        if r2 <= 1.0 {
            inside += 1;
        }
        hist[((r2.sqrt() * 10.0) as usize).min(BINS - 1)] += 1;
    }
    (inside, hist)
}

fn main() {
    let engine = common::engine();
    let n: u64 = if common::quick() { 2_000_000 } else { 200_000_000 };
    let ((inside, hist), t) = common::timed(|| darts_inside(n, engine));
    let pi = 4.0 * inside as f64 / n as f64;
    println!("engine: {engine}");
    println!("darts: {n}, inside the quarter circle: {inside}");
    println!("pi ~ {pi:.6} (error {:.2e}) in {t:.2?}", (pi - std::f64::consts::PI).abs());
    println!("distance from the corner:");
    let most = hist.iter().copied().max().unwrap_or(1).max(1);
    for (k, count) in hist.iter().enumerate() {
        let bar = "#".repeat((40 * count / most) as usize);
        println!("  {:.1}-{:.1} {count:>11} {bar}", k as f64 / 10.0, (k + 1) as f64 / 10.0);
    }
    assert_eq!(hist.iter().sum::<u64>(), n);
    // Same counts on every engine: the serial engine checks them in quick mode.
    if common::quick() {
        assert_eq!((inside, hist), darts_inside(n, Engine::Serial));
    }
    assert!((pi - std::f64::consts::PI).abs() < 0.01);
}
