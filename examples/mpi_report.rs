//! The mpi engine's benchmark report: the rows `bench_report` has for the other engines, for
//! the goals of the mpi engine.
//!
//! ```text
//! cargo run --release --features mpi --example mpi_report [-- --quick]
//! ```
//!
//! Run without `mpirun`, it launches itself with `mpirun --bind-to none --oversubscribe -n 1`
//! and `-n 2` (one thread per rank) and prints one table; launched by `mpirun` (any `-n`), it
//! prints its own measurements from rank 0.
//!
//! - uniform: CPU-bound items of equal cost; the speed-up of 2 ranks over 1;
//! - uneven: the same total work with the cost rising with the index, dynamic and static;
//! - tiny: a call of 8 trivial items (per call);
//! - all-gather: 4 Mi `f64` results (32 MB) computed in place and exchanged, in GB/s.

use parfor::parmap;
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

/// About `units` microseconds of floating-point work.
fn spin(units: u64) -> f64 {
    let mut x = 1.0f64;
    for k in 0..units * 180 {
        x = black_box(x * 1.000_000_1 + (k & 7) as f64 * 1e-9);
    }
    x
}

/// The best of `reps` runs of `f` (every rank runs the same number, so calls stay matched).
fn best(reps: usize, mut f: impl FnMut()) -> Duration {
    (0..reps)
        .map(|_| {
            parfor::mpi::barrier();
            let t = Instant::now();
            f();
            parfor::mpi::barrier();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn measure(quick: bool) {
    let items = 256u64;
    let unit: u64 = if quick { 200 } else { 2000 };
    let reps = if quick { 2 } else { 3 };
    let uniform = best(reps, || {
        black_box(parmap!(|_i: u64| spin(unit), 0..items; engine = "mpi", workers = 1));
    });
    let rising = |i: u64| spin(2 * unit * i / items);
    let dynamic = best(reps, || {
        black_box(parmap!(rising, 0..items; engine = "mpi", workers = 1));
    });
    let fixed = best(reps, || {
        black_box(parmap!(rising, 0..items; engine = "mpi", workers = 1, schedule = "static"));
    });
    let calls = if quick { 200 } else { 2000 };
    let tiny = best(reps, || {
        for _ in 0..calls {
            black_box(parmap!(|i: u64| i * 2, 0..8u64; engine = "mpi", workers = 1));
        }
    }) / calls;
    let n = 4 << 20;
    let gather = best(reps, || {
        black_box(parmap!(|i: usize| i as f64 * 0.5, 0..n; engine = "mpi", workers = 1));
    });
    if parfor::mpi::is_root() {
        let ranks = parfor::mpi::size();
        let gbs = (n * 8) as f64 / gather.as_secs_f64() / 1e9;
        println!("row {ranks} uniform_ms {:.1}", uniform.as_secs_f64() * 1e3);
        println!("row {ranks} uneven_dynamic_ms {:.1}", dynamic.as_secs_f64() * 1e3);
        println!("row {ranks} uneven_static_ms {:.1}", fixed.as_secs_f64() * 1e3);
        println!("row {ranks} tiny_us {:.1}", tiny.as_secs_f64() * 1e6);
        println!("row {ranks} gather_32MB_ms {:.2}", gather.as_secs_f64() * 1e3);
        println!("row {ranks} gather_GBps {gbs:.2}");
    }
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("PARFOR_QUICK").is_some();
    let launched =
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"].iter().any(|v| std::env::var_os(v).is_some());
    if launched {
        measure(quick);
        return;
    }
    let exe = std::env::current_exe().expect("this example's path");
    let mut rows: Vec<(usize, String, f64)> = Vec::new();
    for ranks in [1usize, 2] {
        let mut cmd = Command::new("timeout");
        cmd.args(["600", "mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]);
        cmd.arg("-n").arg(ranks.to_string()).arg(&exe);
        if quick {
            cmd.arg("--quick");
        }
        let out = cmd.output().expect("mpirun (Open MPI) must be installed");
        assert!(
            out.status.success(),
            "mpirun -n {ranks} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut w = line.split_whitespace();
            if let (Some("row"), Some(r), Some(name), Some(v)) =
                (w.next(), w.next(), w.next(), w.next())
                && let (Ok(r), Ok(v)) = (r.parse(), v.parse())
            {
                rows.push((r, name.to_string(), v));
            }
        }
    }
    let get = |r: usize, name: &str| {
        rows.iter().find(|x| x.0 == r && x.1 == name).map_or(f64::NAN, |x| x.2)
    };
    println!(
        "mpi engine ({} mode), one thread per rank, mpirun --bind-to none",
        if quick { "quick" } else { "full" }
    );
    println!("{:<28} {:>10} {:>10}", "measure", "1 rank", "2 ranks");
    for name in [
        "uniform_ms",
        "uneven_dynamic_ms",
        "uneven_static_ms",
        "tiny_us",
        "gather_32MB_ms",
        "gather_GBps",
    ] {
        println!("{name:<28} {:>10.2} {:>10.2}", get(1, name), get(2, name));
    }
    let speedup = get(1, "uniform_ms") / get(2, "uniform_ms");
    let uneven = get(2, "uneven_dynamic_ms") / get(2, "uniform_ms");
    println!();
    println!("goal: 2 ranks >= 1.9x 1 rank (uniform):        {speedup:.2}x");
    println!("goal: uneven/uniform <= 1.05 (dynamic, 2 ranks): {uneven:.3}");
    println!("goal: tiny call < 50 us (2 ranks):             {:.1} us", get(2, "tiny_us"));
    println!("goal: all-gather 32 MB >= 1 GB/s (2 ranks):    {:.2} GB/s", get(2, "gather_GBps"));
}
