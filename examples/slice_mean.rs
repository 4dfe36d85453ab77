//! joblib's writable-memmap example: means of overlapping windows of a 1e7-element array,
//! written by fork workers straight into a `SharedVec` (optionally backed by a file, so the
//! output can outlive the program and exceed memory).
//!
//! ```text
//! cargo run --release --example slice_mean [-- --file /tmp/means.f64] [--engine serial|threads|fork]
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::{Engine, SharedVec, parfor};

/// `means[k] = mean(data[k * step .. k * step + window])`, in parallel.
#[parfor]
fn window_means(data: &[f64], window: usize, step: usize, means: &mut [f64], engine: Engine) {
    #[parfor(engine = engine)]
    for k in 0..means.len() {
        let s = &data[k * step..k * step + window];
        means[k] = s.iter().sum::<f64>() / window as f64;
    }
}

fn main() {
    let engine = common::engine();
    let n = if common::quick() { 1_000_000 } else { 10_000_000 };
    let (window, step) = (n / 20, n / 100);
    let data: Vec<f64> = (0..n).map(|i| common::uniform(7, i as u64)).collect();
    let count = (n - window) / step;
    let args: Vec<String> = std::env::args().collect();
    let file = args.iter().position(|a| a == "--file").and_then(|i| args.get(i + 1));
    let mut means: SharedVec<f64> = match file {
        Some(path) => SharedVec::create(path, count).unwrap_or_else(|e| panic!("{path}: {e}")),
        None => SharedVec::zeroed(count),
    };
    let ((), t) = common::timed(|| window_means(&data, window, step, &mut means, engine));
    println!("engine: {engine}");
    println!(
        "{count} means of windows of {window} out of {n} values in {t:.2?}{}",
        file.map(|f| format!(", written to {f}")).unwrap_or_default()
    );
    println!("first means: {:?}", &means[..4.min(count)]);
    for k in [0, count / 2, count - 1] {
        let expect = data[k * step..k * step + window].iter().sum::<f64>() / window as f64;
        assert_eq!(means[k], expect, "window {k}");
    }
    if let Some(path) = file {
        let back: SharedVec<f64> = SharedVec::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&back[..], &means[..]);
        println!("reopened {path}: {} values, identical", back.len());
    }
}
