//! joblib's memmap example: means of overlapping windows of a 1e7-element array, written by
//! fork workers straight into a `SharedVec`. With `--file PATH` the input is read through a
//! read-only file mapping and the output is a file mapping, so it can outlive the program and
//! exceed memory.
//!
//! ```text
//! cargo run --release --example slice_mean [-- --file /tmp/means.f64] [--engine serial|threads|fork]
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::{Engine, ReadOnlySharedVec, SharedVec, parfor};

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
    let values: Vec<f64> = (0..n).map(|i| common::uniform(7, i as u64)).collect();
    let count = (n - window) / step;
    let args: Vec<String> = std::env::args().collect();
    let file = args.iter().position(|a| a == "--file").and_then(|i| args.get(i + 1));
    // With `--file PATH`, as in joblib's example: the input is dumped to `PATH.data` and mapped
    // back read-only (`load(..., mmap_mode="r")`), and the output is a writable memmap at
    // `PATH` (`np.memmap(PATH, mode="w+")`). Without it, both live in memory.
    let input: Option<ReadOnlySharedVec<f64>> = file.map(|path| {
        let data_path = format!("{path}.data");
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_ne_bytes()).collect();
        std::fs::write(&data_path, bytes).unwrap_or_else(|e| panic!("{data_path}: {e}"));
        // SAFETY: the file was just written by this run and is its own: nothing writes or
        // truncates it while the read-only mapping lives (whoever passes `--file` promises
        // that no other program touches these two files meanwhile).
        unsafe { SharedVec::open_readonly(&data_path) }
            .unwrap_or_else(|e| panic!("{data_path}: {e}"))
    });
    let data: &[f64] = input.as_deref().unwrap_or(&values);
    let mut means: SharedVec<f64> = match file {
        Some(path) => {
            // SAFETY: as above: the output file is this run's own, and nothing else maps,
            // writes or truncates it while `means` lives.
            unsafe { SharedVec::create(path, count) }.unwrap_or_else(|e| panic!("{path}: {e}"))
        }
        None => SharedVec::zeroed(count),
    };
    let ((), t) = common::timed(|| window_means(data, window, step, &mut means, engine));
    println!("engine: {engine}");
    println!(
        "{count} means of windows of {window} out of {n} values in {t:.2?}{}",
        file.map(|f| format!(", read from {f}.data and written to {f}")).unwrap_or_default()
    );
    println!("first means: {:?}", &means[..4.min(count)]);
    for k in [0, count / 2, count - 1] {
        let expect = values[k * step..k * step + window].iter().sum::<f64>() / window as f64;
        assert_eq!(means[k], expect, "window {k}");
    }
    if let Some(path) = file {
        // Read the output back through a read-only mapping. The writable one goes first: a
        // reader may not coexist with a handle that can write the file.
        let written = means.to_vec();
        drop(means);
        // SAFETY: as above, and no writable handle of the file is alive any more.
        let back: ReadOnlySharedVec<f64> =
            unsafe { SharedVec::open_readonly(path) }.unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&back[..], &written[..]);
        println!("reopened {path}: {} values, identical", back.len());
    }
}
