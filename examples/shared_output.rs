//! A kernel writing `out[i] = 3 * x[i]` as a sliced output of a `#[parfor]` loop, on every
//! engine, checked against a plain loop.
//!
//! ```text
//! cargo run --release --example shared_output
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::{Engine, parfor};

#[parfor]
fn triple(x: &[f64], out: &mut [f64], engine: Engine) {
    #[parfor(engine = engine)]
    for i in 0..x.len() {
        out[i] = 3.0 * x[i];
    }
}

fn main() {
    let n = if common::quick() { 1_000_000 } else { 10_000_000 };
    let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
    let expected: Vec<f64> = x.iter().map(|v| 3.0 * v).collect();
    for engine in Engine::ALL {
        let mut out = vec![0.0; n];
        let ((), t) = common::timed(|| triple(&x, &mut out, engine));
        assert_eq!(out, expected, "{engine}");
        println!(
            "engine {engine:>7}: out[i] = 3 * x[i] for {n} elements in {t:.2?}; out[{}] = {}",
            n - 1,
            out[n - 1]
        );
    }
}
