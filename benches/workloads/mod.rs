//! The workloads of the side-by-side benchmark (`benches/side_by_side.rs`) and of the report
//! binary (`examples/bench_report.rs`): each runs on one parfor engine or as hand-written
//! rayon code, and returns a checksum so the runs can be compared and are not optimized away.
#![allow(dead_code, unreachable_pub)]

use parfor::{Engine, parfor, parmap};
use rayon::prelude::*;
use std::time::{Duration, Instant};

/// Who runs a workload: a parfor engine or the hand-written rayon equivalent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Parfor(Engine),
    Rayon,
}

impl Runner {
    pub fn name(self) -> &'static str {
        match self {
            Runner::Parfor(e) => e.name(),
            Runner::Rayon => "rayon",
        }
    }
}

/// A workload at a given size.
pub struct Workload {
    pub name: &'static str,
    /// Items (or iterations).
    pub n: usize,
    /// Bytes of input the workload reads.
    pub input_bytes: usize,
    /// Runs once; returns a checksum.
    pub run: Box<dyn Fn(Runner, usize) -> f64>,
    /// Whether the rayon row exists (the fork-only workloads have none).
    pub has_rayon: bool,
}

fn hypot(a: f64, b: f64) -> f64 {
    a.hypot(b)
}

/// `parmap!(hypot, x, x)` over a `side x side` grid.
pub fn cartesian_hypot(side: usize) -> Workload {
    let x: Vec<f64> = (0..side).map(|i| i as f64 * 0.001).collect();
    Workload {
        name: "cartesian_hypot",
        n: side * side,
        input_bytes: side * 8,
        has_rayon: true,
        run: Box::new(move |runner, workers| {
            let out: Vec<f64> = match runner {
                Runner::Parfor(engine) => parmap!(hypot, x, x; engine = engine, workers = workers),
                Runner::Rayon => {
                    let mut out = vec![0.0; x.len() * x.len()];
                    out.par_chunks_mut(x.len()).zip(x.par_iter()).for_each(|(row, &a)| {
                        for (o, &b) in row.iter_mut().zip(&x) {
                            *o = hypot(a, b);
                        }
                    });
                    out
                }
            };
            out[out.len() / 3] + out[out.len() - 1]
        }),
    }
}

/// `parmap!(|v| v.sqrt().sin(), x)` over `n` values.
pub fn sqrt_sin(n: usize) -> Workload {
    let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.25).collect();
    Workload {
        name: "sqrt_sin_map",
        n,
        input_bytes: n * 8,
        has_rayon: true,
        run: Box::new(move |runner, workers| {
            let out: Vec<f64> = match runner {
                Runner::Parfor(engine) => {
                    parmap!(|v: f64| v.sqrt().sin(), x; engine = engine, workers = workers)
                }
                Runner::Rayon => x.par_iter().map(|v| v.sqrt().sin()).collect(),
            };
            out[n / 2] + out[n - 1]
        }),
    }
}

#[parfor]
fn sum_parfor(n: usize, engine: Engine, workers: usize) -> f64 {
    let h = 1.0 / n as f64;
    let mut sum = 0.0;
    #[parfor(engine = engine, workers = workers)]
    for i in 0..n {
        sum += i as f64 * h;
    }
    sum
}

/// A `#[parfor]` sum reduction of `n` cheap f64 terms.
pub fn sum_reduction(n: usize) -> Workload {
    Workload {
        name: "sum_reduction",
        n,
        input_bytes: 0,
        has_rayon: true,
        run: Box::new(move |runner, workers| match runner {
            Runner::Parfor(engine) => sum_parfor(n, engine, workers),
            Runner::Rayon => {
                let h = 1.0 / n as f64;
                (0..n).into_par_iter().map(|i| i as f64 * h).sum::<f64>()
            }
        }),
    }
}

#[parfor]
fn triple_parfor(x: &[f64], out: &mut [f64], engine: Engine, workers: usize) {
    #[parfor(engine = engine, workers = workers)]
    for i in 0..x.len() {
        out[i] = 3.0 * x[i];
    }
}

/// A `#[parfor]` loop writing `out[i] = 3 * x[i]` over `n` elements, into an output buffer
/// allocated once (so the runs measure the loop, not the kernel zeroing fresh pages).
pub fn sliced_output(n: usize) -> Workload {
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let out = std::cell::RefCell::new(vec![0.0; n]);
    Workload {
        name: "sliced_output",
        n,
        input_bytes: n * 8,
        has_rayon: true,
        run: Box::new(move |runner, workers| {
            let mut out = out.borrow_mut();
            out.fill(-1.0);
            match runner {
                Runner::Parfor(engine) => triple_parfor(&x, &mut out, engine, workers),
                Runner::Rayon => {
                    out.par_iter_mut().enumerate().for_each(|(i, o)| *o = 3.0 * x[i]);
                }
            }
            out[n / 2] + out[n - 1]
        }),
    }
}

/// The median of `reps` timed runs (after one warm-up run), and the checksum.
pub fn time(w: &Workload, runner: Runner, workers: usize, reps: usize) -> (Duration, f64) {
    let check = (w.run)(runner, workers);
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            let c = (w.run)(runner, workers);
            let dt = t0.elapsed();
            assert_eq!(
                c.to_bits(),
                check.to_bits(),
                "{}: {} is not deterministic",
                w.name,
                runner.name()
            );
            dt
        })
        .collect();
    times.sort();
    (times[times.len() / 2], check)
}
