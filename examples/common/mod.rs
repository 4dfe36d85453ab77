//! Helpers shared by the example scripts: engine selection from the command line and timing.
#![allow(dead_code, unreachable_pub, unused_imports)]

#[path = "../../benches/workloads/pss.rs"]
pub mod pss;
#[path = "../../benches/workloads/rng.rs"]
mod rng;

pub use rng::uniform;

use parfor::Engine;
use std::time::{Duration, Instant};

/// The engine named by `--engine NAME` on the command line, else the program default
/// (`PARFOR_ENGINE`, else `threads`).
pub fn engine() -> Engine {
    let args: Vec<String> = std::env::args().collect();
    let named = args.iter().position(|a| a == "--engine").and_then(|i| args.get(i + 1));
    match named {
        Some(name) => name.parse().unwrap_or_else(|e| panic!("--engine: {e}")),
        None => parfor::default_engine().unwrap_or_else(|e| panic!("{e}")),
    }
}

/// Whether to run a small version (`--quick` or `PARFOR_QUICK=1`), as CI does.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick") || std::env::var_os("PARFOR_QUICK").is_some()
}

/// Runs `f`, returning its value and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t0 = Instant::now();
    let v = f();
    (v, t0.elapsed())
}
