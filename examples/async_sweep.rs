//! `parmap!` over an `async fn`: 1000 simulated remote calls (each waits 10 ms, as a request
//! to a slow server would) overlapped on one thread, at several concurrency levels. The time
//! is about `1000 / concurrency * 10 ms`: the waits overlap, nothing computes.
//!
//! ```text
//! cargo run --release --features async --example async_sweep
//! ```

use parfor::{TaskError, parmap};
use std::time::{Duration, Instant};

/// A simulated remote simulation: waits `latency`, then returns a value of the parameters.
async fn remote_simulation(alpha: f64, seed: u64, latency: Duration) -> f64 {
    tokio::time::sleep(latency).await;
    alpha * (seed % 7) as f64
}

/// A remote call that fails for some inputs (the server answers with an error).
async fn flaky(seed: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(seed % 250 != 3, "server error for seed {seed}");
    seed
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("PARFOR_QUICK").is_some();
    let alphas = [0.5, 1.0, 2.0, 4.0];
    let seeds = 0..250u64;
    let latency = Duration::from_millis(10);
    let calls = alphas.len() * 250;
    println!(
        "{calls} calls of an async function that waits {latency:?} (a Cartesian product of 4 x 250)"
    );
    let mut reference = None;
    for concurrency in [10, 100, 1000] {
        if quick && concurrency == 10 {
            continue;
        }
        let t0 = Instant::now();
        let r =
            parmap!(remote_simulation, alphas, seeds; args = (latency,), concurrency = concurrency);
        let dt = t0.elapsed();
        let ideal = latency * (calls.div_ceil(concurrency) as u32);
        println!(
            "  concurrency {concurrency:>4}: {:>8.1} ms  (ideal {:>6.1} ms, {} results, sum {})",
            dt.as_secs_f64() * 1e3,
            ideal.as_secs_f64() * 1e3,
            r.len(),
            r.iter().sum::<f64>()
        );
        // Same results, in the same order, whatever the concurrency.
        assert_eq!(*reference.get_or_insert_with(|| r.clone()), r);
    }

    // Failures come back per item with `on_error = "collect"`; a `timeout` drops a call that
    // takes too long. (The panics are expected: keep the default hook from printing them.)
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r: Vec<Result<u64, TaskError>> =
        parmap!(flaky, 0..1000u64; concurrency = 100, on_error = "collect", timeout = "1s");
    std::panic::set_hook(hook);
    let failed: Vec<String> =
        r.iter().filter_map(|x| x.as_ref().err()).map(|e| e.to_string()).collect();
    println!(
        "flaky calls: {} ok, {} failed: {}",
        r.len() - failed.len(),
        failed.len(),
        failed.join("; ")
    );
}
