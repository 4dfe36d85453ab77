//! The async engine's goals (issue 12), measured on the real clock:
//!
//! - 1000 calls of an async function that sleeps 10 ms at `concurrency` 10, 100 and 1000
//!   (goals: about 1.1 s, about 0.12 s, under 0.05 s);
//! - the per-item overhead of a trivial async function at `concurrency = 1000` (goal: under
//!   2 us), for the blocking `parmap!` (which starts a runtime per call) and for
//!   `parmap_async!` on the caller's runtime.
//!
//! ```text
//! cargo bench --features async --bench async_engine
//! ```
//!
//! Prints the median of several runs. Timer resolution on Linux adds up to about a
//! millisecond to each 10 ms sleep, so the sleeping rows sit slightly above `n / c * 10 ms`.

use parfor::{parmap, parmap_async};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t0 = Instant::now();
                black_box(f());
                t0.elapsed()
            })
            .collect(),
    )
}

async fn nap(i: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(10)).await;
    i
}

async fn trivial(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    println!("| workload | concurrency | items | median wall | goal |");
    println!("| :-- | --: | --: | --: | :-- |");
    for (c, goal) in [(10usize, "about 1.1 s"), (100, "about 0.12 s"), (1000, "under 0.05 s")] {
        let runs = if c == 10 { 3 } else { 7 };
        let t = time(runs, || parmap!(nap, 0..1000u32; concurrency = c));
        println!("| sleep 10 ms | {c} | 1000 | {:.1} ms | {goal} |", t.as_secs_f64() * 1e3);
    }
    let n = 100_000u64;
    let t = time(9, || parmap!(trivial, 0..n; concurrency = 1000));
    println!(
        "| trivial, `parmap!` | 1000 | {n} | {:.1} ms ({:.3} us/item) | under 2 us/item |",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / n as f64
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t =
        time(9, || rt.block_on(async { parmap_async!(trivial, 0..n; concurrency = 1000).await }));
    println!(
        "| trivial, `parmap_async!` | 1000 | {n} | {:.1} ms ({:.3} us/item) | under 2 us/item |",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / n as f64
    );
    let t = time(99, || parmap!(trivial, 0..1u64));
    println!(
        "| one trivial item, `parmap!` (runtime start) | 64 | 1 | {:.1} us | - |",
        t.as_secs_f64() * 1e6
    );
}
