//! `parmap!` against hand-written rayon on the two reference workloads: a 3000 x 3000
//! Cartesian `hypot` and a 1e7-element `sqrt` + `sin` map. Run with `cargo bench --bench
//! parmap`; prints the best of several runs of each, interleaved.

use parfor::parmap;
use rayon::prelude::*;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn best<R>(runs: usize, mut f: impl FnMut() -> R) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn report(name: &str, ours: Duration, rayon: Duration) {
    let ratio = ours.as_secs_f64() / rayon.as_secs_f64();
    println!("{name:<28} parmap {ours:>10.2?}  rayon {rayon:>10.2?}  ratio {ratio:.3}");
}

fn main() {
    let runs = std::env::var("PARMAP_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);

    let x: Vec<f64> = (0..3000).map(|i| f64::from(i) * 0.001).collect();
    let y: Vec<f64> = (0..3000).map(|i| f64::from(i) * 0.002 + 1.0).collect();
    let (mut ours, mut theirs) = (Duration::MAX, Duration::MAX);
    for _ in 0..runs {
        ours = ours.min(best(1, || parmap!(f64::hypot, x, y)));
        theirs = theirs.min(best(1, || {
            let mut out = vec![0.0; x.len() * y.len()];
            out.par_chunks_mut(y.len())
                .zip(x.par_iter())
                .for_each(|(row, a)| {
                    for (o, b) in row.iter_mut().zip(&y) {
                        *o = a.hypot(*b);
                    }
                });
            out
        }));
    }
    report("hypot 3000 x 3000", ours, theirs);
    assert_eq!(parmap!(f64::hypot, x, y)[3001], x[1].hypot(y[1]));

    let z: Vec<f64> = (0..10_000_000).map(|i| f64::from(i) * 1e-3).collect();
    let (mut ours, mut theirs) = (Duration::MAX, Duration::MAX);
    for _ in 0..runs {
        ours = ours.min(best(1, || parmap!(|a: f64| a.sqrt().sin(), z)));
        theirs = theirs.min(best(1, || {
            z.par_iter().map(|a| a.sqrt().sin()).collect::<Vec<f64>>()
        }));
    }
    report("sqrt+sin 1e7", ours, theirs);
}
