//! The streaming rows of the performance report: `parmap_iter!` against `parmap!` on cheap
//! items, behind one slow item, and the first result's latency unordered.

use parfor::{Engine, parmap, parmap_iter};
use std::time::{Duration, Instant};

/// One streaming measurement.
pub(crate) struct StreamRow {
    pub(crate) what: String,
    pub(crate) parmap_s: f64,
    pub(crate) stream_s: f64,
    /// The goal on `stream_s / parmap_s` (or on the latency ratio).
    pub(crate) limit: f64,
    pub(crate) detail: String,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t0 = Instant::now();
    let v = f();
    (t0.elapsed().as_secs_f64(), v)
}

fn spin(d: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// The streaming rows, on the threads engine with `workers` workers.
pub(crate) fn stream_rows(workers: usize, quick: bool, reps: usize) -> Vec<StreamRow> {
    let mut rows = Vec::new();

    // 1. Trivial items: the per-item cost of streaming (batched) against `parmap!`.
    let n: u64 = if quick { 200_000 } else { 1_000_000 };
    let cheap = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let want: u64 = parmap!(cheap, 0..n; engine = Engine::Threads, workers = workers)
        .iter()
        .fold(0u64, |s, x| s.wrapping_add(*x));
    for _ in 0..reps {
        let (t, v) = time(|| {
            parmap!(cheap, 0..n; engine = Engine::Threads, workers = workers)
                .iter()
                .fold(0u64, |s, x| s.wrapping_add(*x))
        });
        assert_eq!(v, want);
        a.push(t);
        let (t, v) = time(|| {
            parmap_iter!(cheap, 0..n; engine = Engine::Threads, workers = workers)
                .fold(0u64, |s, x| s.wrapping_add(x))
        });
        assert_eq!(v, want);
        b.push(t);
    }
    let (pa, pb) = (median(a), median(b));
    rows.push(StreamRow {
        what: format!("{n} trivial items, ordered: per item"),
        parmap_s: pa,
        stream_s: pb,
        limit: 2.0,
        detail: format!(
            "parmap! {:.4} us/item, parmap_iter! {:.4} us/item",
            pa / n as f64 * 1e6,
            pb / n as f64 * 1e6
        ),
    });

    // 2. One slow item among cheap ones, ordered, default window, 2 workers.
    let scale = if quick { 10 } else { 1 };
    let (fast, slow) = (Duration::from_millis(2) / scale, Duration::from_millis(300) / scale);
    let item = move |i: u32| {
        spin(if i == 20 { slow } else { fast });
        i
    };
    let reps2 = reps.min(3);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..reps2 {
        a.push(time(|| parmap!(item, 0..200u32; engine = Engine::Threads, workers = 2)).0);
        b.push(
            time(|| parmap_iter!(item, 0..200u32; engine = Engine::Threads, workers = 2).count()).0,
        );
    }
    let (pa, pb) = (median(a), median(b));
    rows.push(StreamRow {
        what: format!("1 item of {slow:?} among 199 of {fast:?}, ordered, 2 workers: total"),
        parmap_s: pa,
        stream_s: pb,
        limit: 1.1,
        detail: format!("parmap! {pa:.3} s, parmap_iter! {pb:.3} s"),
    });

    // 3. Unordered: the first result arrives after the fastest item, not the slowest.
    let durations: Vec<Duration> =
        (0..8).map(|i| Duration::from_millis(if i == 5 { 5 } else { 200 }) / scale).collect();
    let mut firsts = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..reps2 {
        let t0 = Instant::now();
        let d = durations.clone();
        let mut it = parmap_iter!(
            move |i: usize| {
                std::thread::sleep(d[i]);
                i
            },
            0..8usize;
            ordered = false, engine = Engine::Threads, workers = 8, window = 8
        );
        let first = it.next().map(|(i, _)| i);
        firsts.push(t0.elapsed().as_secs_f64());
        assert_eq!(first, Some(5), "the fastest item comes first");
        assert_eq!(it.count(), 7);
        totals.push(t0.elapsed().as_secs_f64());
    }
    let (first, total) = (median(firsts), median(totals));
    rows.push(StreamRow {
        what: "unordered, 8 items, the fastest 40x faster: first result / total".into(),
        parmap_s: total,
        stream_s: first,
        limit: 0.25,
        detail: format!("first after {:.1} ms, all after {:.1} ms", first * 1e3, total * 1e3),
    });
    rows
}
