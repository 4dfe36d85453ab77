//! `#[parfor]` loops over lazy iterators and over `parfor::Source` collections: the same
//! results as the plain loop on every engine and worker count (floats bit for bit, grouped by
//! the fixed blocks), items pulled a bounded window at a time, failures named by their item.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{ENGINES, WORKERS};
use parfor::{Engine, Source, parfor};
use std::io::BufRead;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

fn every(mut f: impl FnMut(Engine, usize)) {
    for &engine in ENGINES {
        for &workers in WORKERS {
            f(engine, workers);
        }
    }
}

fn message(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

fn gen_ints(n: usize) -> impl Iterator<Item = i64> {
    let mut s = 7u64;
    (0..n).map(move |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as i64 % 1000 - 500
    })
}

/// Every kind of reduction over a lazy generator.
#[parfor(engine = engine, workers = workers)]
fn reductions(
    engine: Engine,
    workers: usize,
    n: usize,
) -> (i64, i64, i64, Vec<i64>, String, [u64; 4]) {
    let (mut sum, mut diff, mut max) = (0i64, 0i64, i64::MIN);
    let mut pushed = Vec::new();
    let mut text = String::new();
    let mut hist = [0u64; 4];
    #[parfor(chunk = 7)]
    for x in gen_ints(n) {
        sum += x;
        diff -= x;
        max = max.max(x);
        if x % 5 == 0 {
            pushed.push(x);
        }
        if x % 97 == 0 {
            text.push_str(&format!("{x},"));
        }
        hist[x.rem_euclid(4) as usize] += 1;
    }
    (sum, diff, max, pushed, text, hist)
}

fn reductions_plain(n: usize) -> (i64, i64, i64, Vec<i64>, String, [u64; 4]) {
    let (mut sum, mut diff, mut max) = (0i64, 0i64, i64::MIN);
    let mut pushed = Vec::new();
    let mut text = String::new();
    let mut hist = [0u64; 4];
    for x in gen_ints(n) {
        sum += x;
        diff -= x;
        max = max.max(x);
        if x % 5 == 0 {
            pushed.push(x);
        }
        if x % 97 == 0 {
            text.push_str(&format!("{x},"));
        }
        hist[x.rem_euclid(4) as usize] += 1;
    }
    (sum, diff, max, pushed, text, hist)
}

#[test]
fn reductions_match_the_plain_loop_everywhere() {
    for n in [0, 1, 6, 7, 8, 500, 20_000] {
        let expected = reductions_plain(n);
        every(|engine, workers| {
            assert_eq!(reductions(engine, workers, n), expected, "n = {n}, {engine}, {workers}");
        });
    }
}

/// A float sum over a lazy source, with the block size as an option.
#[parfor(engine = engine, workers = workers, chunk = chunk)]
fn float_sum(engine: Engine, workers: usize, chunk: usize, n: usize) -> f64 {
    let mut s = 0.0f64;
    #[parfor(chunk = chunk)]
    for x in (0..n).map(|i| 1.0 / (1.0 + i as f64 * 0.37)) {
        s += x;
    }
    s
}

/// The default block size, without a `chunk` option.
#[parfor(engine = engine, workers = workers)]
fn float_sum_default(engine: Engine, workers: usize, n: usize) -> f64 {
    let mut s = 0.0f64;
    #[parfor]
    for x in (0..n).map(|i| 1.0 / (1.0 + i as f64 * 0.37)) {
        s += x;
    }
    s
}

/// The sum grouped by blocks of `chunk` items, the blocks' sums added in order.
fn blockwise(n: usize, chunk: usize) -> f64 {
    let xs: Vec<f64> = (0..n).map(|i| 1.0 / (1.0 + i as f64 * 0.37)).collect();
    let mut s = 0.0;
    for block in xs.chunks(chunk) {
        let mut b = 0.0;
        for x in block {
            b += x;
        }
        s += b;
    }
    s
}

#[test]
fn float_sums_are_grouped_by_fixed_blocks_on_every_engine() {
    let n = 50_000;
    for chunk in [1, 100, 4096] {
        let expected = blockwise(n, chunk).to_bits();
        every(|engine, workers| {
            let got = float_sum(engine, workers, chunk, n).to_bits();
            assert_eq!(got, expected, "chunk {chunk}, {engine}, {workers} workers");
        });
    }
    let expected = blockwise(n, parfor::LAZY_CHUNK).to_bits();
    every(|engine, workers| {
        assert_eq!(float_sum_default(engine, workers, n).to_bits(), expected, "{engine}");
    });
}

/// `out[i]` with the index of `.enumerate()` over lines read from a reader.
#[parfor(engine = engine, workers = workers)]
fn line_lengths(engine: Engine, workers: usize, text: &str, out: &mut [usize]) -> usize {
    let mut lines = 0;
    #[parfor(chunk = 3)]
    for (i, line) in std::io::Cursor::new(text).lines().enumerate() {
        out[i] = line.unwrap().len();
        lines += 1;
    }
    lines
}

#[test]
fn sliced_output_through_enumerate() {
    let text: String = (0..1000).map(|i| format!("{}\n", "x".repeat(i % 13))).collect();
    let expected: Vec<usize> = (0..1000).map(|i| i % 13).collect();
    every(|engine, workers| {
        let mut out = vec![usize::MAX; 1000];
        assert_eq!(line_lengths(engine, workers, &text, &mut out), 1000);
        assert_eq!(out, expected, "{engine}, {workers} workers");
    });
}

#[test]
fn a_sliced_output_too_short_names_the_item() {
    let text = "a\nbb\nccc\ndddd\n";
    every(|engine, workers| {
        let mut out = vec![0; 2];
        let p = catch_unwind(AssertUnwindSafe(|| line_lengths(engine, workers, text, &mut out)));
        let msg = message(p.expect_err("the third line has no element"));
        // The serial engine lets the panic through as the plain loop does.
        if engine != Engine::Serial {
            assert!(msg.contains("iteration i = 2 failed"), "{engine}: {msg}");
        }
        assert!(msg.contains("index out of bounds: the len is 2 but the index is 2"), "{msg}");
    });
}

/// Every `step`-th element of a vector, without copying it.
struct Strided {
    data: Vec<f64>,
    step: usize,
}

impl Source for Strided {
    type Item = f64;
    fn len(&self) -> usize {
        self.data.len().div_ceil(self.step)
    }
    fn get(&self, i: usize) -> &f64 {
        &self.data[i * self.step]
    }
}

#[parfor(engine = engine, workers = workers)]
fn over_source(engine: Engine, workers: usize, s: &Strided, out: &mut [f64]) -> (f64, Vec<usize>) {
    let mut sum = 0.0;
    let mut addrs = Vec::new();
    #[parfor]
    for (i, x) in (&s).enumerate() {
        sum += x;
        out[i] = x * 2.0;
        addrs.push(x as *const f64 as usize);
    }
    (sum, addrs)
}

#[parfor(engine = engine, workers = workers)]
fn source_with_init(engine: Engine, workers: usize, s: &Strided) -> Vec<String> {
    let mut v = Vec::new();
    #[parfor(init(buf = String::new()))]
    for x in &s {
        buf.clear();
        buf.push_str(&format!("<{x}>"));
        v.push(buf.clone());
    }
    v
}

#[test]
fn a_source_collection_is_a_zero_copy_domain() {
    let s = Strided { data: (0..1000).map(|i| i as f64 * 0.5).collect(), step: 3 };
    let n = s.len();
    let expected_out: Vec<f64> = (0..n).map(|i| s.data[i * 3] * 2.0).collect();
    let addrs: Vec<usize> = (0..n).map(|i| &s.data[i * 3] as *const f64 as usize).collect();
    let strings: Vec<String> = (0..n).map(|i| format!("<{}>", s.data[i * 3])).collect();
    let mut first = None;
    every(|engine, workers| {
        let mut out = vec![0.0; n];
        let (sum, got) = over_source(engine, workers, &s, &mut out);
        assert_eq!(out, expected_out, "{engine}");
        // The elements themselves, on every engine (fork workers read them copy-on-write at
        // the same addresses).
        assert_eq!(got, addrs, "{engine}, {workers} workers");
        assert_eq!(*first.get_or_insert(sum.to_bits()), sum.to_bits(), "{engine}");
        assert_eq!(source_with_init(engine, workers, &s), strings, "{engine}");
    });
}

static PULLED: AtomicUsize = AtomicUsize::new(0);

/// The largest number of items pulled ahead of the one running.
#[parfor(engine = engine, workers = workers)]
fn lead(engine: Engine, workers: usize, n: usize) -> (usize, u64) {
    PULLED.store(0, Ordering::SeqCst);
    let mut ahead = 0usize;
    let mut sum = 0u64;
    #[parfor(chunk = 1000)]
    for (i, x) in (0..n as u64).inspect(|_| _ = PULLED.fetch_add(1, Ordering::SeqCst)).enumerate() {
        ahead = ahead.max(PULLED.load(Ordering::SeqCst) - i);
        sum += x;
    }
    (ahead, sum)
}

#[test]
fn a_million_items_are_pulled_a_bounded_window_at_a_time() {
    let n = 1_000_000;
    for (engine, workers) in [(Engine::Serial, 1), (Engine::Threads, 2), (Engine::Fork, 2)] {
        let (ahead, sum) = lead(engine, workers, n);
        assert_eq!(sum, (n as u64 - 1) * n as u64 / 2);
        assert_eq!(PULLED.load(Ordering::SeqCst), n);
        let per_worker = match engine {
            Engine::Fork => parfor::LAZY_FORK_BLOCKS_PER_WORKER,
            _ => parfor::LAZY_BLOCKS_PER_WORKER,
        };
        let window = 1000 * per_worker * workers;
        assert!(ahead <= window, "{engine}: {ahead} items pulled ahead (window {window})");
        assert!(ahead < n / 4, "{engine}: {ahead}");
    }
}

#[parfor(engine = engine, workers = workers)]
fn fails_at(engine: Engine, workers: usize, bad: i64) -> i64 {
    let mut s = 0;
    #[parfor(chunk = 16)]
    for (i, x) in (0..1000i64).map(|x| x * 3).enumerate() {
        assert!(x != bad * 3, "item {i} is bad");
        s += x;
    }
    s
}

#[parfor(engine = engine, workers = workers)]
fn fails_without_index(engine: Engine, workers: usize) -> i64 {
    let mut s = 0;
    #[parfor(chunk = 16)]
    for x in (0..1000i64).map(|x| x * 3) {
        assert!(x != 777 * 3, "bad value {x}");
        s += x;
    }
    s
}

#[test]
fn a_panicking_item_is_named() {
    every(|engine, workers| {
        let p = catch_unwind(AssertUnwindSafe(|| fails_at(engine, workers, 777)));
        let msg = message(p.expect_err("item 777 panics"));
        // The serial engine lets the panic through as the plain loop does.
        let serial = engine == Engine::Serial;
        assert!(serial || msg.contains("iteration i = 777 failed"), "{engine}: {msg}");
        assert!(msg.contains("item 777 is bad"), "{engine}: {msg}");
        let p = catch_unwind(AssertUnwindSafe(|| fails_without_index(engine, workers)));
        let msg = message(p.expect_err("item 777 panics"));
        assert!(serial || msg.contains("iteration at item 777 failed"), "{engine}: {msg}");
        assert!(msg.contains("bad value 2331"), "{engine}: {msg}");
    });
    assert_eq!(fails_at(Engine::Threads, 2, -1), 3 * 999 * 1000 / 2);
}

/// Borrowed items from a map's iterator, and owned items from a channel.
#[parfor(engine = engine, workers = workers)]
fn map_and_channel(
    engine: Engine,
    workers: usize,
    m: &std::collections::BTreeMap<u32, String>,
    rx: std::sync::mpsc::Receiver<u32>,
) -> (usize, Vec<u32>) {
    let mut chars = 0;
    #[parfor(chunk = 5)]
    for (k, v) in m.iter() {
        chars += v.len() + *k as usize;
    }
    let mut got = Vec::new();
    #[parfor(chunk = 5)]
    for x in rx.iter() {
        got.push(x * 10);
    }
    (chars, got)
}

#[test]
fn maps_and_channels_are_lazy_domains() {
    let m: std::collections::BTreeMap<u32, String> =
        (0..100).map(|k| (k, "y".repeat(k as usize % 7))).collect();
    let chars: usize = m.iter().map(|(k, v)| v.len() + *k as usize).sum();
    every(|engine, workers| {
        let (tx, rx) = std::sync::mpsc::channel();
        let producer = std::thread::spawn(move || {
            for i in 0..200 {
                tx.send(i).unwrap();
            }
        });
        let got = map_and_channel(engine, workers, &m, rx);
        producer.join().unwrap();
        assert_eq!(got, (chars, (0..200).map(|i| i * 10).collect()), "{engine}");
    });
}

#[parfor(engine = engine, workers = 2)]
fn bump_chunks(engine: Engine, v: &mut [u32]) {
    #[parfor(chunk = 2)]
    for c in v.chunks_mut(3) {
        c[0] += 100;
    }
}

#[test]
fn mut_items_run_on_threads_and_are_refused_by_fork() {
    let mut expected: Vec<u32> = (0..10).collect();
    for k in [0, 3, 6, 9] {
        expected[k] += 100;
    }
    for engine in [Engine::Serial, Engine::Threads] {
        let mut v: Vec<u32> = (0..10).collect();
        bump_chunks(engine, &mut v);
        assert_eq!(v, expected, "{engine}");
    }
    #[cfg(unix)]
    {
        let mut v: Vec<u32> = (0..10).collect();
        let p = catch_unwind(AssertUnwindSafe(|| bump_chunks(Engine::Fork, &mut v)));
        let msg = message(p.expect_err("fork refuses `&mut` items"));
        assert!(msg.contains("cannot run on the fork engine: its items are `&mut`"), "{msg}");
        assert_eq!(v, (0..10).collect::<Vec<u32>>(), "nothing ran");
    }
}

#[cfg(unix)]
#[parfor(engine = Engine::Fork, workers = 2)]
fn dies_at(bad: u64) -> u64 {
    let mut s = 0;
    #[parfor(chunk = 10)]
    for (i, x) in (0..100u64).map(|x| x + 1).enumerate() {
        if i as u64 == bad {
            std::process::abort();
        }
        s += x;
    }
    s
}

#[cfg(unix)]
#[test]
fn a_fork_worker_that_dies_fails_naming_its_item() {
    assert_eq!(dies_at(1000), 5050);
    let p = catch_unwind(|| dies_at(57));
    let msg = message(p.expect_err("the worker running item 57 aborts"));
    assert!(msg.contains("iteration i = 57 failed"), "{msg}");
    assert!(msg.contains("signal"), "{msg}");
}

#[parfor(engine = engine)]
fn with_progress(engine: Engine, n: u64) -> u64 {
    let mut s = 0;
    #[parfor(progress = true, chunk = 100)]
    for x in (0..n).map(|x| x * x) {
        s += x;
    }
    s
}

/// `progress = true` on a source of unknown length (the line shows the count and the rate;
/// it is drawn only when stderr is a terminal) changes no result.
#[test]
fn progress_on_a_lazy_source_changes_no_result() {
    for &engine in ENGINES {
        assert_eq!(with_progress(engine, 5000), (0..5000u64).map(|x| x * x).sum(), "{engine}");
    }
}
