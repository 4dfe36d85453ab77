//! The workloads of the side-by-side benchmark (`benches/side_by_side.rs`) and of the report
//! binary (`benches/bench_report.rs`): each runs on one parfor engine or as hand-written
//! rayon code, and returns a checksum so the runs can be compared and are not optimized away.
#![allow(dead_code, unreachable_pub)]

mod rng;
pub mod table;

use parfor::{Engine, parfor, parmap};
use rayon::prelude::*;
pub use rng::uniform;
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

fn window_mean(data: &[f64], k: usize, window: usize, step: usize) -> f64 {
    data[k * step..k * step + window].iter().sum::<f64>() / window as f64
}

#[parfor]
fn window_means_parfor(
    data: &[f64],
    window: usize,
    step: usize,
    means: &mut [f64],
    engine: Engine,
    workers: usize,
) {
    #[parfor(engine = engine, workers = workers)]
    for k in 0..means.len() {
        means[k] = window_mean(data, k, window, step);
    }
}

/// joblib's writable-memmap example: the means of overlapping windows (`n / 20` wide, every
/// `n / 100`; 5e5 and 1e5 for `n` = 1e7) of `n` random values, written by a `#[parfor]` loop
/// into a [`parfor::SharedVec`] allocated once, so fork workers write the parent's memory in
/// place.
pub fn slice_mean(n: usize) -> Workload {
    let (window, step) = (n / 20, n / 100);
    let data: Vec<f64> = (0..n).map(|i| uniform(7, i as u64)).collect();
    let count = (n - window) / step;
    let means = std::cell::RefCell::new(parfor::SharedVec::<f64>::zeroed(count));
    Workload {
        name: "slice_mean",
        n: count,
        input_bytes: n * 8,
        has_rayon: true,
        run: Box::new(move |runner, workers| {
            let mut means = means.borrow_mut();
            means.fill(-1.0);
            match runner {
                Runner::Parfor(engine) => {
                    window_means_parfor(&data, window, step, &mut means, engine, workers);
                }
                Runner::Rayon => means
                    .par_iter_mut()
                    .enumerate()
                    .for_each(|(k, m)| *m = window_mean(&data, k, window, step)),
            }
            means.iter().sum()
        }),
    }
}

/// A grayscale image, too large to copy casually (and not `Clone`).
pub struct Image {
    width: usize,
    pixels: Vec<u8>,
}

impl Image {
    fn synthetic(seed: u64, width: usize, height: usize) -> Image {
        let pixels =
            (0..width * height).map(|i| (uniform(seed, i as u64 / 64) * 255.0) as u8).collect();
        Image { width, pixels }
    }
}

/// Mean brightness and the number of bright rows: reads every pixel, copies none.
fn analyze(img: &Image) -> (f64, u32) {
    let sum: u64 = img.pixels.iter().map(|&p| u64::from(p)).sum();
    let bright_rows = img
        .pixels
        .chunks(img.width)
        .filter(|row| row.iter().map(|&p| u32::from(p)).sum::<u32>() > 128 * row.len() as u32)
        .count();
    (sum as f64 / img.pixels.len() as f64, bright_rows as u32)
}

/// `parmap!(analyze, images)` over `count` images of `side x side` bytes, built once: the
/// fork engine's workers read them through copy-on-write memory, with no copy.
pub fn big_images(count: usize, side: usize) -> Workload {
    let images: Vec<Image> = (0..count).map(|k| Image::synthetic(k as u64, side, side)).collect();
    Workload {
        name: "big_images",
        n: count,
        input_bytes: count * side * side,
        has_rayon: true,
        run: Box::new(move |runner, workers| {
            let stats: Vec<(f64, u32)> = match runner {
                Runner::Parfor(engine) => {
                    parmap!(analyze, images; engine = engine, workers = workers)
                }
                Runner::Rayon => images.par_iter().map(analyze).collect(),
            };
            stats.iter().map(|&(mean, rows)| mean + f64::from(rows)).sum()
        }),
    }
}

/// `k` units of dependent floating-point work (1000 multiplies and adds each).
fn spin(k: u32) -> f64 {
    let mut x = f64::from(k);
    for _ in 0..k * 1000 {
        x = x * 0.999_999_9 + 1e-7;
    }
    x
}

/// `parmap!(spin, costs)` over `n` items whose cost grows from 1 to 100 units along the
/// items, so the expensive ones sit together at the end: an even split of the items in as
/// many parts as workers would leave the first workers idle.
pub fn uneven(n: usize) -> Workload {
    let costs: Vec<u32> = (0..n).map(|i| 1 + (99 * i / (n - 1).max(1)) as u32).collect();
    Workload {
        name: "uneven",
        n,
        input_bytes: n * 4,
        has_rayon: true,
        run: Box::new(move |runner, workers| {
            let out: Vec<f64> = match runner {
                Runner::Parfor(engine) => parmap!(spin, costs; engine = engine, workers = workers),
                Runner::Rayon => costs.par_iter().map(|&k| spin(k)).collect(),
            };
            out.iter().sum()
        }),
    }
}

/// `parmap!(|i: usize| i as f64, 0..n)`: almost no work per item, so it measures how fast an
/// engine hands `n` f64 results back (the fork engine copies them out of its workers).
pub fn return_f64(n: usize) -> Workload {
    Workload {
        name: "return_f64",
        n,
        input_bytes: 0,
        has_rayon: true,
        run: Box::new(move |runner, workers| {
            let out: Vec<f64> = match runner {
                Runner::Parfor(engine) => {
                    parmap!(|i: usize| i as f64, 0..n; engine = engine, workers = workers)
                }
                Runner::Rayon => (0..n).into_par_iter().map(|i| i as f64).collect(),
            };
            out[n / 3] + out[n - 1]
        }),
    }
}

/// Checks a run's checksum against an earlier run's: bit for bit on the parfor engines,
/// which promise it; within rounding for rayon, whose reductions split the work differently
/// from run to run.
pub fn same_checksum(workload: &str, runner: Runner, got: f64, want: f64) {
    let same = match runner {
        Runner::Parfor(_) => got.to_bits() == want.to_bits(),
        Runner::Rayon => (got - want).abs() <= 1e-9 * want.abs().max(1.0),
    };
    assert!(same, "{workload}: {} gave {got}, earlier {want}", runner.name());
}

/// The median of `reps` timed runs (after one warm-up run), and the checksum.
pub fn time(w: &Workload, runner: Runner, workers: usize, reps: usize) -> (Duration, f64) {
    let check = (w.run)(runner, workers);
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            let c = (w.run)(runner, workers);
            let dt = t0.elapsed();
            same_checksum(w.name, runner, c, check);
            dt
        })
        .collect();
    times.sort();
    (times[times.len() / 2], check)
}

#[parfor]
fn histogram_parfor(n: usize, bins: usize, engine: Engine, workers: usize) -> Vec<u64> {
    let mut hist = vec![0u64; bins];
    #[parfor(engine = engine, workers = workers)]
    for i in 0..n {
        let bin = (uniform(7, i as u64) * bins as f64) as usize;
        hist[bin] += 1;
    }
    hist
}

fn histogram_serial(n: usize, bins: usize) -> Vec<u64> {
    let mut hist = vec![0u64; bins];
    for i in 0..n {
        let bin = (uniform(7, i as u64) * bins as f64) as usize;
        hist[bin] += 1;
    }
    hist
}

/// The Monte-Carlo histogram, `hist[bin] += 1` over `n` samples into `bins` bins: parfor's
/// array reduction, and rayon's `fold` + `reduce` of per-thread arrays.
pub fn histogram(n: usize, bins: usize) -> Workload {
    let checksum = |h: Vec<u64>| h.iter().enumerate().map(|(k, c)| (k as u64 * c) as f64).sum();
    Workload {
        name: if bins >= 1_000_000 { "histogram_1e6_bins" } else { "histogram" },
        n,
        input_bytes: 0,
        has_rayon: true,
        run: Box::new(move |runner, workers| match runner {
            Runner::Parfor(Engine::Serial) if workers == 1 => checksum(histogram_serial(n, bins)),
            Runner::Parfor(engine) => checksum(histogram_parfor(n, bins, engine, workers)),
            Runner::Rayon => checksum(
                (0..n)
                    .into_par_iter()
                    .fold(
                        || vec![0u64; bins],
                        |mut h, i| {
                            h[(uniform(7, i as u64) * bins as f64) as usize] += 1;
                            h
                        },
                    )
                    .reduce(
                        || vec![0u64; bins],
                        |mut a, b| {
                            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                            a
                        },
                    ),
            ),
        }),
    }
}
