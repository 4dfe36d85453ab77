//! Helpers shared by the example scripts: engine selection from the command line and timing.
#![allow(dead_code, unreachable_pub)]

#[path = "../../benches/workloads/pss.rs"]
pub mod pss;

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

/// A deterministic pseudo-random number in [0, 1) for (`seed`, `i`): splitmix64, so every
/// iteration draws its own numbers whatever engine or worker runs it.
pub fn uniform(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
