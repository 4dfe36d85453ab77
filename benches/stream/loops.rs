//! The lazy-loop row of the performance report: a `#[parfor]` sum over a lazy iterator
//! against the same sum over a slice holding the same items.

use parfor::{Engine, parfor};
use std::time::Instant;

/// One lazy-loop measurement.
pub(crate) struct LoopRow {
    pub(crate) what: String,
    pub(crate) slice_s: f64,
    pub(crate) lazy_s: f64,
    /// The goal on `lazy_s / slice_s`.
    pub(crate) limit: f64,
    pub(crate) detail: String,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn item(i: u64) -> f64 {
    (i % 1000) as f64 * 0.5
}

/// The work of one item: a few dozen nanoseconds, so the loop measures the cost of pulling
/// items and handing them out rather than arithmetic.
#[inline(always)]
fn work(x: f64) -> f64 {
    let mut y = x;
    for _ in 0..8 {
        y = (y * 1.000_001).sqrt() + 1.0;
    }
    y
}

#[parfor(engine = engine, workers = workers)]
fn slice_sum(engine: Engine, workers: usize, v: &[f64]) -> f64 {
    let mut s = 0.0;
    #[parfor]
    for x in &v {
        s += work(*x);
    }
    s
}

#[parfor(engine = engine, workers = workers)]
fn lazy_sum(engine: Engine, workers: usize, n: u64) -> f64 {
    let mut s = 0.0;
    #[parfor]
    for x in (0..n).map(item) {
        s += work(x);
    }
    s
}

/// The lazy-loop rows, on `engines` with `workers` workers.
pub(crate) fn loop_rows(workers: usize, quick: bool, reps: usize) -> Vec<LoopRow> {
    let n: u64 = if quick { 200_000 } else { 1_000_000 };
    let mut rows = Vec::new();
    for engine in [Engine::Threads, Engine::Fork] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            // The slice's time includes building it, as the lazy loop builds its items.
            let t0 = Instant::now();
            let v: Vec<f64> = (0..n).map(item).collect();
            let s1 = slice_sum(engine, workers, &v);
            a.push(t0.elapsed().as_secs_f64());
            drop(v);
            let t0 = Instant::now();
            let s2 = lazy_sum(engine, workers, n);
            b.push(t0.elapsed().as_secs_f64());
            // Different blocks group the sum differently: close, not equal.
            assert!((s1 - s2).abs() <= 1e-9 * s1.abs(), "{s1} vs {s2}");
        }
        let (sa, sb) = (median(a), median(b));
        rows.push(LoopRow {
            what: format!("#[parfor] sum of {n} items on {engine}: lazy iterator / slice"),
            slice_s: sa,
            lazy_s: sb,
            limit: 2.0,
            detail: format!(
                "slice {:.4} us/item, lazy {:.4} us/item",
                sa / n as f64 * 1e6,
                sb / n as f64 * 1e6
            ),
        });
    }
    rows
}
