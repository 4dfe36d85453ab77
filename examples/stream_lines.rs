//! Streams a large generated text file through `parmap_iter!`, line by line: the file is read
//! on the caller's thread only as fast as the window allows, results are printed as they
//! come, and memory stays flat whatever the file's size. Runs on the threads and the fork
//! engine and reports, for each, the first result's latency, the total time and the peak
//! resident memory above the baseline.
//!
//! ```text
//! cargo run --release --example stream_lines [-- --mib 1024] [--quick]
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::{Engine, parmap_iter};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

/// A line's "analysis": a checksum of its words (something a worker does per line).
fn analyze(line: String) -> (usize, u64) {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in line.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (line.split_whitespace().count(), h)
}

/// Resets the peak resident memory (`VmHWM`) to the current one (Linux), and returns that.
fn reset_peak() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    common::pss::status_mib("VmRSS:")
}

/// Writes `mib` MiB of text lines to a temporary file.
fn generate(mib: usize) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("parfor-stream-lines-{}.txt", std::process::id()));
    let mut w = BufWriter::new(std::fs::File::create(&path).expect("create the input file"));
    let mut written = 0;
    let mut i = 0u64;
    while written < mib << 20 {
        let words = 3 + (common::uniform(3, i) * 12.0) as usize;
        let mut line = format!("{i}");
        for k in 0..words {
            line.push_str(&format!(" w{:x}", (common::uniform(5, i * 31 + k as u64) * 1e6) as u64));
        }
        line.push('\n');
        w.write_all(line.as_bytes()).expect("write the input file");
        written += line.len();
        i += 1;
    }
    w.flush().expect("flush the input file");
    path
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--mib takes a number of MiB"))
        .unwrap_or(if common::quick() { 32 } else { 1024 });
    let path = generate(mib);
    println!("input: {mib} MiB of text lines in {}", path.display());
    let mut engines = vec![Engine::Threads];
    if cfg!(unix) {
        engines.push(Engine::Fork);
    }
    for engine in engines {
        let baseline = reset_peak();
        let reader = BufReader::new(std::fs::File::open(&path).expect("open the input file"));
        let t0 = Instant::now();
        // The file's lines are pulled here, on this thread, only as the window allows; the
        // function and the lines are owned, so the stream needs no scope.
        let results = parmap_iter!(analyze, reader.lines().map(|l| l.expect("a UTF-8 line")); engine = engine);
        let (mut lines, mut words, mut check, mut first) = (0usize, 0usize, 0u64, None);
        for (w, h) in results {
            if first.is_none() {
                first = Some(t0.elapsed());
                println!("  {engine:?}: first result after {:.2?} ({w} words)", t0.elapsed());
            }
            lines += 1;
            words += w;
            check ^= h.rotate_left((lines % 64) as u32);
            if lines.is_power_of_two() && lines >= 1 << 16 {
                println!("  {engine:?}: {lines} lines after {:.2?}", t0.elapsed());
            }
        }
        let peak = common::pss::status_mib("VmHWM:") - baseline;
        println!(
            "  {engine:?}: {lines} lines, {words} words, checksum {check:016x} in {:.2?}; \
             first result after {:.2?}; peak memory {peak:.1} MiB above the baseline",
            t0.elapsed(),
            first.unwrap_or_default()
        );
        assert!(peak < 64.0, "the stream's memory must stay under 64 MiB above the baseline");
    }
    let _ = std::fs::remove_file(&path);
}
