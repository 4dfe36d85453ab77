//! The fork engine against lomp's own workloads (issue "the fork engine beats lomp on lomp's
//! own workloads"): the binaries `lomp_report` and `lomp_report_huge` (the same program with
//! [`parfor::HugePages`] as its global allocator) run this module.
//!
//! ```text
//! cargo run --release -p parfor-bench --bin lomp_report -- [--quick] [--10x] [--reps N] [--workers N] [--markdown]
//! ```
//!
//! The contract (the same sizes, data and timed region as the Python side of the comparison,
//! which stays outside the repository):
//!
//! - `big_images`: 32 images of 2048 x 2048 `f64` (1 GiB; 320 images, 10 GiB, with `--10x`),
//!   pixel `i` of image `k` is `uniform(k, i)`; per image the count of pixels above 0.5 and
//!   the mean, as `parmap!(analyze, images)`.
//! - `slice_mean`: `n` = 1e7 (and 1e8) `f64` values `uniform(7, i)`; 95 windows of `n / 20`
//!   values every `n / 100`; the mean of each window, as `parmap!` over the window indices.
//! - `shared_output`: `out[i] = 3 * x[i]` over 1e6 `f64` (`x[i] = i / 2`), a `#[parfor]` loop
//!   writing a sliced output: into a new `SharedVec` and into a new `Vec` (the allocation and
//!   first touch of the output are timed: they are part of what the user pays).
//!
//! Every measurement is a fresh process (`--one`): it builds the data (untimed), warms the
//! engine up with a trivial call made before the data exists (the threads engine's pool, the
//! fork engine's panic hook), and times the one parallel call. The repetitions are
//! interleaved (the order of the runners rotates each repetition, so drift on a noisy machine
//! spreads over all of them) and a cell is the median. The checksums of every runner of a row
//! must agree bit for bit.
#![allow(dead_code, unreachable_pub)]

#[path = "rng.rs"]
mod rng;
#[path = "table.rs"]
mod table;

use parfor::{Engine, SharedVec, parfor, parmap};
use rng::uniform;
use std::process::Command;
use std::time::Instant;
use table::{load_average, print_table};

/// Who runs a workload, in which kind of process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    /// The plain Rust loop, no parfor.
    Plain,
    /// A parfor engine; `huge`: the process's allocator advises huge pages for large
    /// allocations (the `lomp_report_huge` binary).
    Parfor { engine: Engine, huge: bool },
}

const RUNNERS: [Runner; 5] = [
    Runner::Parfor { engine: Engine::Threads, huge: false },
    Runner::Parfor { engine: Engine::Fork, huge: false },
    Runner::Parfor { engine: Engine::Threads, huge: true },
    Runner::Parfor { engine: Engine::Fork, huge: true },
    Runner::Plain,
];

impl Runner {
    fn arg(self) -> &'static str {
        match self {
            Runner::Plain => "plain",
            Runner::Parfor { engine: Engine::Threads, .. } => "threads",
            Runner::Parfor { engine: Engine::Fork, .. } => "fork",
            Runner::Parfor { .. } => unreachable!("only threads and fork are measured"),
        }
    }

    fn huge(self) -> bool {
        matches!(self, Runner::Parfor { huge: true, .. })
    }

    fn parse(s: &str, huge: bool) -> Runner {
        match s {
            "plain" => Runner::Plain,
            "threads" => Runner::Parfor { engine: Engine::Threads, huge },
            "fork" => Runner::Parfor { engine: Engine::Fork, huge },
            other => panic!("unknown runner `{other}`"),
        }
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
enum Workload {
    BigImages {
        count: usize,
        side: usize,
    },
    SliceMean {
        n: usize,
    },
    /// `shared`: into a `SharedVec`, else into a `Vec`.
    SharedOutput {
        n: usize,
        shared: bool,
    },
}

impl Workload {
    fn label(self) -> String {
        match self {
            Workload::BigImages { count, side } => {
                format!(
                    "big_images, {count} x {side}x{side} f64 ({})",
                    size(count * side * side * 8)
                )
            }
            Workload::SliceMean { n } => {
                format!("slice_mean, {} f64 ({}), 95 windows", sci(n), size(n * 8))
            }
            Workload::SharedOutput { n, shared: true } => {
                format!("shared_output {}, `#[parfor]` into `SharedVec`", sci(n))
            }
            Workload::SharedOutput { n, shared: false } => {
                format!("shared_output {}, `#[parfor]` into `Vec`", sci(n))
            }
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            Workload::BigImages { count, side } => {
                vec!["big_images".into(), count.to_string(), side.to_string()]
            }
            Workload::SliceMean { n } => vec!["slice_mean".into(), n.to_string()],
            Workload::SharedOutput { n, shared } => {
                let kind = if shared { "shared_output" } else { "vec_output" };
                vec![kind.into(), n.to_string()]
            }
        }
    }

    fn parse(args: &[String]) -> Workload {
        let num = |k: usize| -> usize {
            args.get(k).and_then(|a| a.parse().ok()).expect("a workload size")
        };
        match args.first().map(String::as_str) {
            Some("big_images") => Workload::BigImages { count: num(1), side: num(2) },
            Some("slice_mean") => Workload::SliceMean { n: num(1) },
            Some("shared_output") => Workload::SharedOutput { n: num(1), shared: true },
            Some("vec_output") => Workload::SharedOutput { n: num(1), shared: false },
            other => panic!("unknown workload {other:?}"),
        }
    }
}

/// `bytes` in MiB, or GiB from 1 GiB on.
fn size(bytes: usize) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    if mib >= 1024.0 { format!("{:.0} GiB", mib / 1024.0) } else { format!("{mib:.0} MiB") }
}

/// `10000000` as `1e7`.
fn sci(n: usize) -> String {
    let digits = n.to_string();
    let significant = digits.trim_end_matches('0');
    if n < 10_000 || significant.len() > 2 {
        return digits;
    }
    let exp = digits.len() - 1;
    match significant.len() {
        1 => format!("{significant}e{exp}"),
        _ => format!("{}.{}e{exp}", &significant[..1], &significant[1..]),
    }
}

/// Per image: the number of pixels above 0.5 and the mean. (`parmap!` hands each element of
/// a `Vec<Vec<f64>>` by reference, as a `&Vec<f64>`.)
#[allow(clippy::ptr_arg)]
fn analyze(img: &Vec<f64>) -> (u64, f64) {
    let bright = img.iter().filter(|&&p| p > 0.5).count() as u64;
    (bright, img.iter().sum::<f64>() / img.len() as f64)
}

fn window_mean(data: &[f64], k: usize, window: usize, step: usize) -> f64 {
    data[k * step..k * step + window].iter().sum::<f64>() / window as f64
}

#[parfor]
fn triple(x: &[f64], out: &mut [f64], engine: Engine, workers: usize) {
    #[parfor(engine = engine, workers = workers)]
    for i in 0..x.len() {
        out[i] = 3.0 * x[i];
    }
}

/// One measurement in this process: the seconds the call took and the checksum's bits.
fn run_one(w: Workload, runner: Runner, workers: usize) -> (f64, u64) {
    if let Runner::Parfor { engine, .. } = runner {
        // Warm-up before the data exists: one-time costs (the thread pool, hooks) are not
        // the call's.
        let warm: Vec<usize> =
            parmap!(|i: usize| i + 1, 0..4usize; engine = engine, workers = workers);
        assert_eq!(warm, [1, 2, 3, 4]);
    }
    match w {
        Workload::BigImages { count, side } => {
            let images: Vec<Vec<f64>> = (0..count)
                .map(|k| (0..side * side).map(|i| uniform(k as u64, i as u64)).collect())
                .collect();
            let t0 = Instant::now();
            let stats: Vec<(u64, f64)> = match runner {
                Runner::Plain => images.iter().map(analyze).collect(),
                Runner::Parfor { engine, .. } => {
                    parmap!(analyze, images; engine = engine, workers = workers)
                }
            };
            let dt = t0.elapsed().as_secs_f64();
            let sum = stats.iter().fold(0.0, |s, &(c, m)| s + c as f64 + m);
            (dt, sum.to_bits())
        }
        Workload::SliceMean { n } => {
            let (window, step) = (n / 20, n / 100);
            let count = (n - window) / step;
            let data: Vec<f64> = (0..n).map(|i| uniform(7, i as u64)).collect();
            let t0 = Instant::now();
            let means: Vec<f64> = match runner {
                Runner::Plain => (0..count).map(|k| window_mean(&data, k, window, step)).collect(),
                Runner::Parfor { engine, .. } => parmap!(
                    |k: usize| window_mean(&data, k, window, step), 0..count;
                    engine = engine, workers = workers
                ),
            };
            let dt = t0.elapsed().as_secs_f64();
            (dt, means.iter().sum::<f64>().to_bits())
        }
        Workload::SharedOutput { n, shared } => {
            let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.5).collect();
            let t0 = Instant::now();
            let (dt, sum) = match (runner, shared) {
                (Runner::Plain, _) => {
                    let mut out = vec![0.0; n];
                    for i in 0..n {
                        out[i] = 3.0 * x[i];
                    }
                    (t0.elapsed().as_secs_f64(), out.iter().sum::<f64>())
                }
                (Runner::Parfor { engine, .. }, true) => {
                    let mut out = SharedVec::<f64>::zeroed(n);
                    triple(&x, &mut out, engine, workers);
                    (t0.elapsed().as_secs_f64(), out.iter().sum::<f64>())
                }
                (Runner::Parfor { engine, .. }, false) => {
                    let mut out = vec![0.0; n];
                    triple(&x, &mut out, engine, workers);
                    (t0.elapsed().as_secs_f64(), out.iter().sum::<f64>())
                }
            };
            (dt, sum.to_bits())
        }
    }
}

struct Args {
    quick: bool,
    ten_x: bool,
    reps: usize,
    workers: usize,
    markdown: bool,
}

impl Args {
    fn parse(args: &[String]) -> Args {
        let mut a = Args { quick: false, ten_x: false, reps: 5, workers: 2, markdown: false };
        let mut it = args.iter();
        while let Some(s) = it.next() {
            match s.as_str() {
                "--quick" => a.quick = true,
                "--10x" => a.ten_x = true,
                "--markdown" => a.markdown = true,
                "--reps" => a.reps = it.next().and_then(|r| r.parse().ok()).expect("--reps N"),
                "--workers" => {
                    a.workers = it
                        .next()
                        .and_then(|r| r.parse().ok())
                        .filter(|&w| w >= 1)
                        .expect("--workers N (at least 1)");
                }
                other => panic!(
                    "unknown argument `{other}`; expected --quick, --10x, --reps N, --workers N, --markdown"
                ),
            }
        }
        a
    }

    fn workloads(&self) -> Vec<Workload> {
        if self.quick {
            return vec![
                Workload::BigImages { count: 8, side: 512 },
                Workload::SliceMean { n: 1_000_000 },
                Workload::SharedOutput { n: 100_000, shared: true },
                Workload::SharedOutput { n: 100_000, shared: false },
            ];
        }
        let mut w = vec![
            Workload::BigImages { count: 32, side: 2048 },
            Workload::SliceMean { n: 10_000_000 },
            Workload::SliceMean { n: 100_000_000 },
            Workload::SharedOutput { n: 1_000_000, shared: true },
            Workload::SharedOutput { n: 1_000_000, shared: false },
            // The size at which the issue measured sliced outputs into a `Vec`.
            Workload::SharedOutput { n: 10_000_000, shared: false },
        ];
        if self.ten_x {
            w.insert(1, Workload::BigImages { count: 320, side: 2048 });
        }
        w
    }
}

/// The binary that runs `runner`: this one, or its huge-pages twin next to it.
fn binary(runner: Runner) -> Option<std::path::PathBuf> {
    let me = std::env::current_exe().expect("the path of this program");
    let mine_is_huge = me.file_name().is_some_and(|n| n.to_string_lossy().ends_with("_huge"));
    if runner.huge() == mine_is_huge {
        return Some(me);
    }
    let name = if runner.huge() { "lomp_report_huge" } else { "lomp_report" };
    let other = me.with_file_name(name);
    other.exists().then_some(other)
}

/// Runs one measurement in a fresh process.
fn measure(bin: &std::path::Path, w: Workload, runner: Runner, workers: usize) -> (f64, u64) {
    let out = Command::new(bin)
        .arg("--one")
        .arg(runner.arg())
        .arg(workers.to_string())
        .args(w.args())
        .output()
        .expect("start a measurement process");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} on {runner:?} failed ({}):\n{text}\n{}",
        w.label(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut it = text.split_whitespace();
    let secs = it.next().and_then(|s| s.parse().ok()).expect("seconds");
    let bits = it.next().and_then(|s| u64::from_str_radix(s, 16).ok()).expect("checksum");
    (secs, bits)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn ms(s: Option<f64>) -> String {
    s.map_or_else(|| "—".to_owned(), |s| format!("{:.1} ms", s * 1e3))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "—".to_owned(),
    }
}

/// The driver (no `--one`), or one measurement (`--one RUNNER WORKERS WORKLOAD SIZES...`,
/// printing the seconds and the checksum's bits in hex).
pub fn main(huge: bool) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--one") {
        let runner = Runner::parse(&args[1], huge);
        let workers = args[2].parse().expect("workers");
        let w = Workload::parse(&args[3..]);
        let (secs, bits) = run_one(w, runner, workers);
        println!("{secs:e} {bits:x}");
        return;
    }
    let a = Args::parse(&args);
    let runners: Vec<(Runner, std::path::PathBuf)> =
        RUNNERS.iter().filter_map(|&r| binary(r).map(|b| (r, b))).collect();
    println!(
        "lomp workloads: {} workers, median of {} fresh processes per cell, load average {}",
        a.workers,
        a.reps,
        load_average()
    );
    let header = [
        "workload",
        "parfor threads",
        "parfor fork",
        "threads, huge pages",
        "fork, huge pages",
        "plain Rust loop",
        "fork / threads",
        "fork huge / threads",
    ];
    let mut rows = Vec::new();
    for w in a.workloads() {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
        let mut want: Option<u64> = None;
        for rep in 0..a.reps {
            for k in 0..runners.len() {
                let k = (k + rep) % runners.len();
                let (runner, bin) = &runners[k];
                let (secs, bits) = measure(bin, w, *runner, a.workers);
                let want = *want.get_or_insert(bits);
                assert_eq!(
                    bits,
                    want,
                    "{}: {runner:?} gave checksum {:e}, another runner {:e}",
                    w.label(),
                    f64::from_bits(bits),
                    f64::from_bits(want)
                );
                times[k].push(secs);
            }
        }
        let cell = |r: Runner| -> Option<f64> {
            runners.iter().position(|(x, _)| *x == r).map(|k| median(times[k].clone()))
        };
        let [threads, fork, threads_huge, fork_huge, plain] = RUNNERS.map(cell);
        let row = vec![
            w.label(),
            ms(threads),
            ms(fork),
            ms(threads_huge),
            ms(fork_huge),
            ms(plain),
            ratio(fork, threads),
            ratio(fork_huge, threads),
        ];
        if !a.markdown {
            eprintln!("{}", row.join("  "));
        }
        rows.push(row);
    }
    print_table(&header, &rows, a.markdown, &[0]);
    println!("load average after the run: {}", load_average());
}
