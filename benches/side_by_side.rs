//! Side-by-side benchmark of `parmap!` and `#[parfor]` against hand-written rayon and the
//! serial engine, in one run on this machine (median of several runs; not a test).
//!
//! ```text
//! cargo bench -p parfor-bench --bench side_by_side
//! ```

mod workloads;

use parfor::Engine;
use workloads::{Runner, time};

fn main() {
    let workers = parfor::default_workers().unwrap_or(1);
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("PARFOR_QUICK").is_some();
    let reps = if quick { 3 } else { 7 };
    let scale = if quick { 10 } else { 1 };
    let suite = [
        workloads::cartesian_hypot(3000 / if quick { 3 } else { 1 }),
        workloads::sqrt_sin(10_000_000 / scale),
        workloads::sum_reduction(100_000_000 / scale),
        workloads::sliced_output(10_000_000 / scale),
        workloads::slice_mean(10_000_000 / scale),
        workloads::uneven(4000 / scale),
        workloads::big_images(if quick { 8 } else { 32 }, 5793 / scale.isqrt()),
    ];
    println!("{workers} workers; median of {reps} runs");
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "workload", "rayon", "threads", "serial", "threads/rayon", "serial/threads"
    );
    for w in &suite {
        let (rayon, c0) = time(w, Runner::Rayon, workers, reps);
        let (threads, c1) = time(w, Runner::Parfor(Engine::Threads), workers, reps);
        let (serial, c2) = time(w, Runner::Parfor(Engine::Serial), workers, reps);
        assert_eq!(c1.to_bits(), c2.to_bits(), "{}: threads and serial differ", w.name);
        let _ = c0;
        println!(
            "{:<18} {:>9.1}ms {:>9.1}ms {:>9.1}ms {:>12.3} {:>12.2}",
            w.name,
            rayon.as_secs_f64() * 1e3,
            threads.as_secs_f64() * 1e3,
            serial.as_secs_f64() * 1e3,
            threads.as_secs_f64() / rayon.as_secs_f64(),
            serial.as_secs_f64() / threads.as_secs_f64(),
        );
    }
}
