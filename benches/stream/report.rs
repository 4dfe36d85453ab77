//! The streaming rows of the performance report: `parmap_iter!` against `parmap!` on cheap
//! items, behind one slow item, and the first result's latency unordered, on the threads and
//! the fork engine; and the peak memory of a 1 GiB input streamed line by line on fork.

use parfor::{Engine, parmap, parmap_iter};
use std::time::{Duration, Instant};

/// One streaming measurement.
pub(crate) struct StreamRow {
    pub(crate) what: String,
    /// The measured ratio (`parmap_iter!` over `parmap!`, first result over total) or value.
    pub(crate) value: f64,
    /// The goal on `value`.
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

/// The streaming rows, on `engine` with `workers` workers.
pub(crate) fn stream_rows(
    engine: Engine,
    workers: usize,
    quick: bool,
    reps: usize,
) -> Vec<StreamRow> {
    let mut rows = Vec::new();

    // 1. Trivial items: the per-item cost of streaming (batched) against `parmap!`.
    let n: u64 = if quick { 200_000 } else { 1_000_000 };
    let cheap = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let want: u64 = parmap!(cheap, 0..n; engine = engine, workers = workers)
        .iter()
        .fold(0u64, |s, x| s.wrapping_add(*x));
    for _ in 0..reps {
        let (t, v) = time(|| {
            parmap!(cheap, 0..n; engine = engine, workers = workers)
                .iter()
                .fold(0u64, |s, x| s.wrapping_add(*x))
        });
        assert_eq!(v, want);
        a.push(t);
        let (t, v) = time(|| {
            parmap_iter!(cheap, 0..n; engine = engine, workers = workers)
                .fold(0u64, |s, x| s.wrapping_add(x))
        });
        assert_eq!(v, want);
        b.push(t);
    }
    let (pa, pb) = (median(a), median(b));
    rows.push(StreamRow {
        what: format!("{engine:?}: {n} trivial items, ordered: per item"),
        value: pb / pa,
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
        a.push(time(|| parmap!(item, 0..200u32; engine = engine, workers = 2)).0);
        b.push(time(|| parmap_iter!(item, 0..200u32; engine = engine, workers = 2).count()).0);
    }
    let (pa, pb) = (median(a), median(b));
    rows.push(StreamRow {
        what: format!(
            "{engine:?}: 1 item of {slow:?} among 199 of {fast:?}, ordered, 2 workers: total"
        ),
        value: pb / pa,
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
            ordered = false, engine = engine, workers = 8, window = 8
        );
        let first = it.next().map(|(i, _)| i);
        firsts.push(t0.elapsed().as_secs_f64());
        assert_eq!(first, Some(5), "the fastest item comes first");
        assert_eq!(it.count(), 7);
        totals.push(t0.elapsed().as_secs_f64());
    }
    let (first, total) = (median(firsts), median(totals));
    rows.push(StreamRow {
        what: format!(
            "{engine:?}: unordered, 8 items, the fastest 40x faster: first result / total"
        ),
        value: first / total,
        limit: 0.25,
        detail: format!("first after {:.1} ms, all after {:.1} ms", first * 1e3, total * 1e3),
    });
    rows
}

/// The first result's latency unordered on fork against threads (the items of row 3), and
/// the peak memory of `mib` MiB of text lines streamed through the fork engine (the lines are
/// generated lazily, as a file's reader would yield them).
pub(crate) fn fork_rows(workers: usize, quick: bool) -> Vec<StreamRow> {
    let mut rows = Vec::new();
    let first_after = |engine: Engine| {
        let mut firsts = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let mut it = parmap_iter!(
                |i: usize| {
                    std::thread::sleep(Duration::from_millis(if i == 5 { 5 } else { 200 }));
                    i
                },
                0..8usize;
                ordered = false, engine = engine, workers = 8, window = 8
            );
            assert_eq!(it.next().map(|p| p.0), Some(5));
            firsts.push(t0.elapsed().as_secs_f64());
            assert_eq!(it.count(), 7);
        }
        median(firsts)
    };
    let (t, f) = (first_after(Engine::Threads), first_after(Engine::Fork));
    rows.push(StreamRow {
        what: "unordered first result: fork / threads (a 5 ms item among 200 ms ones)".into(),
        value: f / t,
        limit: 2.0,
        detail: format!("fork {:.1} ms, threads {:.1} ms", f * 1e3, t * 1e3),
    });

    let mib: usize = if quick { 64 } else { 1024 };
    let line = |i: u64| {
        format!(
            "{i} {:x} {}\n",
            i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            "w".repeat((i % 80) as usize)
        )
    };
    let mut made = 0usize;
    let lines = (0u64..).map(line).take_while(move |l| {
        made += l.len();
        made <= mib << 20
    });
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let baseline = crate::pss::status_mib("VmRSS:");
    let t0 = Instant::now();
    let (mut n, mut bytes) = (0usize, 0usize);
    for len in
        parmap_iter!(|l: String| l.len(), { lines }; engine = Engine::Fork, workers = workers)
    {
        n += 1;
        bytes += len;
    }
    let took = t0.elapsed().as_secs_f64();
    let peak = crate::pss::status_mib("VmHWM:") - baseline;
    rows.push(StreamRow {
        what: format!("Fork: {mib} MiB of text lines, line by line: peak memory above baseline (MiB)"),
        value: peak,
        limit: 64.0,
        detail: format!(
            "{n} lines, {:.0} MiB in {took:.1} s, {:.2} us/line; peak {peak:.1} MiB above {baseline:.1} MiB",
            bytes as f64 / (1 << 20) as f64,
            took / n as f64 * 1e6
        ),
    });
    rows
}
