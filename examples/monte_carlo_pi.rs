//! Estimates pi by throwing random darts at the unit square: a `#[parfor]` count reduction.
//!
//! ```text
//! cargo run --release --example monte_carlo_pi [-- --engine serial|threads|fork]
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::{Engine, parfor};

/// Counts the darts of `n` that land inside the quarter circle.
#[parfor]
fn darts_inside(n: u64, engine: Engine) -> u64 {
    let mut inside = 0u64;
    #[parfor(engine = engine)]
    for i in 0..n {
        let x = common::uniform(1, 2 * i);
        let y = common::uniform(1, 2 * i + 1);
        if x * x + y * y <= 1.0 {
            inside += 1;
        }
    }
    inside
}

fn main() {
    let engine = common::engine();
    let n: u64 = if common::quick() { 2_000_000 } else { 200_000_000 };
    let (inside, t) = common::timed(|| darts_inside(n, engine));
    let pi = 4.0 * inside as f64 / n as f64;
    println!("engine: {engine}");
    println!("darts: {n}, inside the quarter circle: {inside}");
    println!("pi ~ {pi:.6} (error {:.2e}) in {t:.2?}", (pi - std::f64::consts::PI).abs());
    // Same count on every engine: the serial engine checks it in quick mode.
    if common::quick() {
        assert_eq!(inside, darts_inside(n, Engine::Serial));
    }
    assert!((pi - std::f64::consts::PI).abs() < 0.01);
}
