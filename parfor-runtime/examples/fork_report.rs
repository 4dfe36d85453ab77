//! Measures the fork engine against the threads engine; run with
//! `cargo run --release -p parfor-runtime --example fork_report`.

use parfor_runtime::wire::Probe;
use parfor_runtime::{Engine, Options, Shape, map};
use std::time::{Duration, Instant};

/// The best time of `runs` calls of `f`, and the last call's value (earlier values are
/// dropped before the next call, so runs do not see each other's memory).
fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        drop(last.take());
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        last = Some(v);
    }
    (best, last.expect("at least one run"))
}

fn opts(engine: Engine) -> Options {
    Options::new().engine(engine).workers(2)
}

fn main() {
    // 1. A 3000 x 3000 hypot map.
    let xs: Vec<f64> = (0..3000).map(|i| i as f64 * 0.5).collect();
    let ys: Vec<f64> = (0..3000).map(|j| j as f64 * 0.25 + 1.0).collect();
    let f = |[i, j]: [usize; 2]| xs[i].hypot(ys[j]);
    let shape = Shape::product([3000, 3000]);
    let wire = parfor_runtime::__wire_of!(Probe::<f64>::new());
    let (serial, a) = best(3, || map(shape, &opts(Engine::Serial), None, f));
    let (threads, b) = best(5, || map(shape, &opts(Engine::Threads), None, f));
    let (fork, c) = best(5, || map(shape, &opts(Engine::Fork), wire, f));
    assert!(a == b && b == c);
    println!(
        "hypot 3000x3000: serial {serial:?}, threads {threads:?}, fork {fork:?} \
         (fork/threads {:.2})",
        fork.as_secs_f64() / threads.as_secs_f64()
    );

    // 2. Returning 1e8 f64 (800 MB).
    let n = 100_000_000;
    let g = |[i]: [usize; 1]| i as f64;
    let (t, v) = best(3, || map(Shape::product([n]), &opts(Engine::Fork), wire, g));
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as f64));
    drop(v);
    let (tt, v) = best(3, || map(Shape::product([n]), &opts(Engine::Threads), None, g));
    drop(v);
    println!(
        "1e8 f64: fork {t:?} ({:.2} GB/s), threads {tt:?}",
        (n * 8) as f64 / t.as_secs_f64() / 1e9
    );

    // 3. The fixed cost of a call, in a small parent and in one with 1 GiB resident.
    let tiny = |[i]: [usize; 1]| i as f64;
    let call = || map(Shape::product([2]), &opts(Engine::Fork), wire, tiny);
    let (small, _) = best(20, call);
    let big: Vec<u8> = vec![1u8; 1 << 30];
    let (large, _) = best(5, call);
    // Touch the memory again so it stays resident and is not optimized away.
    let sum: u64 = big.iter().step_by(4096).map(|&b| u64::from(b)).sum();
    println!(
        "tiny call: {small:?} in a small parent, {large:?} with 1 GiB resident \
         (+{:?}; checksum {sum})",
        large.saturating_sub(small)
    );
}
