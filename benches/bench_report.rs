//! The performance report: every workload on the serial, threads and fork engines and as
//! hand-written rayon code, side by side in one run, plus the fork engine's fixed costs.
//!
//! ```text
//! cargo run --release -p parfor-bench --bin bench_report -- [--quick] [--json | --markdown] [--workers N] [--only NAME]...
//! ```
//!
//! Each workload is built once (untimed), run once per runner as a warm-up, then timed
//! `reps` times with the runners interleaved (their order rotates every repetition, so drift
//! on a noisy machine spreads over all of them); a row reports the median. The peak memory of
//! a row is the largest total PSS of this process and its children (fork workers) sampled
//! during one more, untimed, run of that runner (sampling costs too much CPU to run next to
//! the timed runs). Linux only (the memory figures come from `/proc`).
//!
//! Output: an aligned table (default), a Markdown table (`--markdown`), or one JSON object
//! per line (`--json`) with the keys `workload`, `engine`, `workers`, `n`, `wall_s`,
//! `vs_rayon`, `vs_serial`, `peak_pss_mb`, `input_mb` (and `gb_per_s`, `parent_mb` where they
//! apply).

#[path = "workloads/pss.rs"]
mod pss;
#[path = "stream/loops.rs"]
mod stream_loops;
#[path = "stream/report.rs"]
mod stream_report;
mod workloads;

use parfor::{Engine, parmap};
use pss::PeakPss;
use std::time::Instant;
use workloads::table::{load_average, print_table};
use workloads::{Runner, Workload};

const MB: f64 = 1024.0 * 1024.0;

/// The command line.
struct Args {
    quick: bool,
    /// Run only the workloads with these names (all when empty).
    only: Vec<String>,
    format: Format,
    workers: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Markdown,
    Json,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            quick: std::env::var_os("PARFOR_QUICK").is_some(),
            format: Format::Text,
            only: Vec::new(),
            workers: parfor::default_workers().unwrap_or_else(|e| panic!("{e}")),
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => args.quick = true,
                "--json" => args.format = Format::Json,
                "--markdown" => args.format = Format::Markdown,
                "--only" => args.only.push(it.next().expect("--only takes a workload name")),
                "--workers" => {
                    args.workers = it
                        .next()
                        .and_then(|w| w.parse().ok())
                        .filter(|&w| w >= 1)
                        .expect("--workers takes a number of at least 1");
                }
                other => panic!(
                    "unknown argument `{other}`; expected --quick, --json, --markdown, --workers N, --only NAME"
                ),
            }
        }
        args
    }
}

/// The sizes of one run of the report.
struct Sizes {
    reps: usize,
    sum: usize,
    sliced: usize,
    sqrt_sin: usize,
    hypot_side: usize,
    slice_mean: usize,
    images: (usize, usize),
    uneven: usize,
    returned: usize,
    tiny_reps: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                reps: 5,
                sum: 25_000_000,
                sliced: 2_500_000,
                sqrt_sin: 2_500_000,
                hypot_side: 1500,
                slice_mean: 2_500_000,
                images: (8, 5793), // 8 x 32 MiB
                uneven: 1000,
                returned: 25_000_000,
                tiny_reps: 9,
            }
        } else {
            Sizes {
                reps: 9,
                sum: 100_000_000,
                sliced: 10_000_000,
                sqrt_sin: 10_000_000,
                hypot_side: 3000,
                slice_mean: 10_000_000,
                images: (32, 5793), // 32 x 32 MiB
                uneven: 4000,
                returned: 100_000_000,
                tiny_reps: 21,
            }
        }
    }

    fn describe(&self) -> String {
        let (count, side) = self.images;
        format!(
            "sum_reduction {}, sliced_output {}, sqrt_sin_map {}, cartesian_hypot {side2}x{side2}, \
             slice_mean {} values (window {}, step {}), big_images {count} x {:.0} MiB, \
             uneven {} items (1..100 units), return_f64 {}",
            sci(self.sum),
            sci(self.sliced),
            sci(self.sqrt_sin),
            sci(self.slice_mean),
            sci(self.slice_mean / 20),
            sci(self.slice_mean / 100),
            (side * side) as f64 / MB,
            self.uneven,
            sci(self.returned),
            side2 = self.hypot_side,
        )
    }
}

/// `10000000` as `1e7` and `2500000` as `2.5e6`; numbers below 10000, or with more than
/// three significant digits, as they are.
fn sci(n: usize) -> String {
    let digits = n.to_string();
    let significant = digits.trim_end_matches('0');
    if n < 10_000 || significant.len() > 3 {
        return digits;
    }
    let exp = digits.len() - 1;
    match significant.split_at(1) {
        (first, "") => format!("{first}e{exp}"),
        (first, rest) => format!("{first}.{rest}e{exp}"),
    }
}

/// One line of the report.
struct Row {
    workload: &'static str,
    engine: &'static str,
    workers: usize,
    n: usize,
    wall_s: f64,
    vs_rayon: Option<f64>,
    vs_serial: Option<f64>,
    peak_pss_mb: f64,
    input_mb: f64,
    /// Gigabytes of results returned per second (the `return_f64` workload).
    gb_per_s: Option<f64>,
    /// The PSS of the parent before the call (the tiny fork calls).
    parent_mb: Option<f64>,
}

impl Row {
    fn json(&self) -> String {
        let num = |x: f64| if x.is_finite() { format!("{x:.6}") } else { "null".to_owned() };
        let opt = |x: Option<f64>| x.map_or_else(|| "null".to_owned(), num);
        let mut s = format!(
            "{{\"workload\":\"{}\",\"engine\":\"{}\",\"workers\":{},\"n\":{},\"wall_s\":{},\
             \"vs_rayon\":{},\"vs_serial\":{},\"peak_pss_mb\":{},\"input_mb\":{}",
            self.workload,
            self.engine,
            self.workers,
            self.n,
            num(self.wall_s),
            opt(self.vs_rayon),
            opt(self.vs_serial),
            num(self.peak_pss_mb),
            num(self.input_mb),
        );
        if let Some(g) = self.gb_per_s {
            s += &format!(",\"gb_per_s\":{}", num(g));
        }
        if let Some(p) = self.parent_mb {
            s += &format!(",\"parent_mb\":{}", num(p));
        }
        s + "}"
    }

    fn cells(&self) -> Vec<String> {
        let ratio = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
        let pss_vs_input = if self.input_mb >= 1.0 {
            format!("{:.2}", self.peak_pss_mb / self.input_mb)
        } else {
            "-".to_owned()
        };
        vec![
            self.workload.to_owned(),
            sci(self.n),
            self.engine.to_owned(),
            self.workers.to_string(),
            format_secs(self.wall_s),
            ratio(self.vs_rayon),
            ratio(self.vs_serial),
            format!("{:.0}", self.peak_pss_mb),
            format!("{:.1}", self.input_mb),
            pss_vs_input,
        ]
    }
}

const HEADER: [&str; 10] = [
    "workload",
    "n",
    "engine",
    "workers",
    "wall",
    "vs rayon",
    "vs serial",
    "peak PSS MiB",
    "input MiB",
    "PSS/input",
];

fn format_secs(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs `w` on every runner, interleaved, and returns one row per runner.
fn measure(w: &Workload, workers: usize, reps: usize) -> Vec<Row> {
    let mut runners = vec![
        Runner::Parfor(Engine::Serial),
        Runner::Parfor(Engine::Threads),
        Runner::Parfor(Engine::Fork),
    ];
    if w.has_rayon {
        runners.push(Runner::Rayon);
    }
    // Warm-up, and the checksums every later run must reproduce. The engines promise the
    // same bits as the serial loop; rayon's reductions may associate differently.
    let checks: Vec<f64> = runners.iter().map(|&r| (w.run)(r, workers)).collect();
    for (r, c) in runners.iter().zip(&checks) {
        if let Runner::Parfor(_) = r {
            assert_eq!(
                c.to_bits(),
                checks[0].to_bits(),
                "{}: {} differs from serial",
                w.name,
                r.name()
            );
        }
    }
    let mut times = vec![Vec::with_capacity(reps); runners.len()];
    let mut peaks = vec![0u64; runners.len()];
    for rep in 0..reps {
        for k in 0..runners.len() {
            let i = (k + rep) % runners.len();
            let t0 = Instant::now();
            let c = (w.run)(runners[i], workers);
            let dt = t0.elapsed();
            workloads::same_checksum(w.name, runners[i], c, checks[i]);
            times[i].push(dt.as_secs_f64());
        }
    }
    // The memory sampler reads `/proc/PID/smaps_rollup`, which walks the page tables: about
    // 10 ms per GiB resident and process, a core's worth of work next to a big workload. So
    // the peak comes from one more run per runner, untimed.
    for (i, &runner) in runners.iter().enumerate() {
        let peak = PeakPss::start();
        let c = (w.run)(runner, workers);
        peaks[i] = peak.stop();
        workloads::same_checksum(w.name, runner, c, checks[i]);
    }
    let walls: Vec<f64> = times.into_iter().map(median).collect();
    let serial = walls[0];
    let rayon = w.has_rayon.then(|| walls[walls.len() - 1]);
    runners
        .iter()
        .zip(walls.iter().zip(&peaks))
        .map(|(r, (&wall, &peak))| Row {
            workload: w.name,
            engine: r.name(),
            workers: if *r == Runner::Parfor(Engine::Serial) { 1 } else { workers },
            n: w.n,
            wall_s: wall,
            vs_rayon: rayon.map(|t| wall / t),
            vs_serial: Some(wall / serial),
            peak_pss_mb: peak as f64 / MB,
            input_mb: w.input_bytes as f64 / MB,
            gb_per_s: (w.name == "return_f64").then(|| (w.n * 8) as f64 / wall / 1e9),
            parent_mb: None,
        })
        .collect()
}

/// The median wall time of a fork call with two tiny items, and the parent's PSS.
fn tiny_fork_call(workers: usize, reps: usize) -> Row {
    let parent = pss::total_pss();
    let call = || parmap!(|i: usize| i as f64, 0..2; engine = Engine::Fork, workers = workers);
    assert_eq!(call(), [0.0, 1.0]);
    let wall = median(
        (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                std::hint::black_box(call());
                t0.elapsed().as_secs_f64()
            })
            .collect(),
    );
    Row {
        workload: "fork_tiny_call",
        engine: "fork",
        workers,
        n: 2,
        wall_s: wall,
        vs_rayon: None,
        vs_serial: None,
        peak_pss_mb: {
            let peak = PeakPss::start();
            call();
            peak.stop() as f64 / MB
        },
        input_mb: 0.0,
        gb_per_s: None,
        parent_mb: Some(parent as f64 / MB),
    }
}

/// One goal of the report, checked against the rows.
struct Goal {
    what: String,
    /// `None` when these sizes cannot tell.
    met: Option<bool>,
    detail: String,
}

fn goals(rows: &[Row], tiny: &[Row]) -> Vec<Goal> {
    let find = |w: &str, e: &str| rows.iter().find(|r| r.workload == w && r.engine == e);
    let mut goals = Vec::new();
    let mut workloads: Vec<&str> = rows.iter().map(|r| r.workload).collect();
    workloads.dedup();

    let mut slow = Vec::new();
    let mut worst: f64 = 0.0;
    for w in &workloads {
        if let Some(v) = find(w, "threads").and_then(|r| r.vs_rayon) {
            worst = worst.max(v);
            if v > 1.05 {
                slow.push(format!("{w} {v:.2}"));
            }
        }
    }
    goals.push(Goal {
        what: "threads within 5% of rayon".into(),
        met: Some(slow.is_empty()),
        detail: if slow.is_empty() {
            format!("worst threads/rayon {worst:.2}")
        } else {
            format!("threads/rayon: {}", slow.join(", "))
        },
    });

    if let (Some(f), Some(t)) =
        (find("cartesian_hypot", "fork"), find("cartesian_hypot", "threads"))
    {
        let v = f.wall_s / t.wall_s;
        goals.push(Goal {
            what: "fork within 1.3x of threads on tiny items (cartesian_hypot)".into(),
            met: Some(v <= 1.3),
            detail: format!("fork/threads {v:.2}"),
        });
    }

    if let Some(f) = find("big_images", "fork") {
        let v = f.peak_pss_mb / f.input_mb;
        goals.push(Goal {
            what: "peak PSS <= 1.10x input on big_images (fork)".into(),
            met: Some(v <= 1.10),
            detail: format!(
                "{:.0} MiB for {:.0} MiB of input = {v:.3}x",
                f.peak_pss_mb, f.input_mb
            ),
        });
    }

    let mut speedups = Vec::new();
    let mut met = true;
    for w in ["cartesian_hypot", "sqrt_sin_map", "uneven"] {
        for e in ["threads", "fork"] {
            if let Some(v) = find(w, e).and_then(|r| r.vs_serial) {
                let s = 1.0 / v;
                met &= s >= 1.8;
                speedups.push(format!("{w}/{e} {s:.2}x"));
            }
        }
    }
    goals.push(Goal {
        what: ">= 1.8x over serial on CPU-bound items".into(),
        met: Some(met),
        detail: speedups.join(", "),
    });

    // Array reductions (issue 11): the 100-bin histogram scales, the million-bin one (one
    // private copy of 8 MB per worker or block) still beats the serial loop.
    for (w, least, what) in [
        ("histogram", 1.8, "histogram (1e7 samples, 100 bins) >= 1.8x over serial"),
        ("histogram_1e6_bins", 1.0, "histogram_1e6_bins faster than serial"),
    ] {
        let got: Vec<(&str, f64)> = ["threads", "fork"]
            .into_iter()
            .filter_map(|e| find(w, e).and_then(|r| r.vs_serial).map(|v| (e, 1.0 / v)))
            .collect();
        goals.push(Goal {
            what: what.into(),
            met: (!got.is_empty()).then(|| got.iter().all(|&(_, s)| s >= least)),
            detail: got.iter().map(|(e, s)| format!("{e} {s:.2}x")).collect::<Vec<_>>().join(", "),
        });
    }

    if let Some(big) =
        tiny.iter().max_by(|a, b| a.parent_mb.unwrap_or(0.0).total_cmp(&b.parent_mb.unwrap_or(0.0)))
    {
        let small = &tiny[0];
        let parent = big.parent_mb.unwrap_or(0.0);
        goals.push(Goal {
            what: "fork tiny-call cost in a 1 GiB parent <= 60 ms".into(),
            // Only a parent of about 1 GiB (the full-size images) can show it.
            met: Some(big.wall_s <= 0.060).filter(|_| parent >= 900.0),
            detail: format!(
                "{} with {parent:.0} MiB resident, {} with {:.0} MiB",
                format_secs(big.wall_s),
                format_secs(small.wall_s),
                small.parent_mb.unwrap_or(0.0)
            ),
        });
    }

    if let Some(f) = find("return_f64", "fork") {
        let g = f.gb_per_s.unwrap_or(0.0);
        goals.push(Goal {
            what: format!(">= 1 GB/s returning {} f64 on fork", sci(f.n)),
            met: Some(g >= 1.0),
            detail: format!("{g:.2} GB/s ({})", format_secs(f.wall_s)),
        });
    }
    goals
}

fn main() {
    let args = Args::parse();
    let sizes = Sizes::new(args.quick);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers;
    let started = Instant::now();
    let text = args.format != Format::Json;
    if text {
        println!(
            "parfor performance report ({} sizes): {cores} cores, {workers} workers, median of {} \
             interleaved runs",
            if args.quick { "quick" } else { "full" },
            sizes.reps
        );
        println!("sizes: {}", sizes.describe());
        println!("load average at the start: {}", load_average());
        println!();
    }

    // The fixed cost of a fork call, first in this still-small process.
    let mut tiny = vec![tiny_fork_call(workers, sizes.tiny_reps)];

    type Build<'a> = Box<dyn Fn() -> Workload + 'a>;
    let suite: Vec<(&str, Build<'_>)> = vec![
        ("sum_reduction", Box::new(|| workloads::sum_reduction(sizes.sum))),
        ("sliced_output", Box::new(|| workloads::sliced_output(sizes.sliced))),
        ("histogram", Box::new(|| workloads::histogram(sizes.sliced, 100))),
        ("histogram_1e6_bins", Box::new(|| workloads::histogram(sizes.sliced, 1_000_000))),
        ("sqrt_sin_map", Box::new(|| workloads::sqrt_sin(sizes.sqrt_sin))),
        ("cartesian_hypot", Box::new(|| workloads::cartesian_hypot(sizes.hypot_side))),
        ("slice_mean", Box::new(|| workloads::slice_mean(sizes.slice_mean))),
        ("uneven", Box::new(|| workloads::uneven(sizes.uneven))),
        ("return_f64", Box::new(|| workloads::return_f64(sizes.returned))),
        ("big_images", Box::new(|| workloads::big_images(sizes.images.0, sizes.images.1))),
    ];
    let mut rows = Vec::new();
    for (name, build) in &suite {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        // Built one at a time and dropped after, so each workload runs in a parent holding
        // only its own input.
        let w = build();
        eprintln!("[{:>6.1?}] {} (n = {})", started.elapsed(), w.name, sci(w.n));
        let measured = measure(&w, workers, sizes.reps);
        if args.format == Format::Json {
            for r in &measured {
                println!("{}", r.json());
            }
        }
        rows.extend(measured);
        if w.name == "big_images" {
            // Again with the images resident.
            tiny.push(tiny_fork_call(workers, sizes.tiny_reps));
        }
    }

    if !text {
        for r in &tiny {
            println!("{}", r.json());
        }
        return;
    }
    let cells: Vec<Vec<String>> = rows.iter().map(Row::cells).collect();
    // The workload and engine columns are text; the others numbers.
    print_table(&HEADER, &cells, args.format == Format::Markdown, &[0, 2]);
    println!();
    println!("fork engine fixed costs:");
    for r in &tiny {
        println!(
            "- a call with 2 tiny items in a parent of {:.0} MiB PSS: {}",
            r.parent_mb.unwrap_or(0.0),
            format_secs(r.wall_s)
        );
    }
    if let Some(f) = rows.iter().find(|r| r.workload == "return_f64" && r.engine == "fork") {
        println!(
            "- returning {} f64 ({:.0} MB): {} = {:.2} GB/s",
            sci(f.n),
            (f.n * 8) as f64 / 1e6,
            format_secs(f.wall_s),
            f.gb_per_s.unwrap_or(0.0)
        );
    }
    println!();
    println!("goals{}:", if args.quick { " (quick sizes: indicative only)" } else { "" });
    for g in goals(&rows, &tiny) {
        let mark = match g.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured at these sizes",
        };
        println!("- {}: {mark} ({})", g.what, g.detail);
    }
    println!();
    if args.only.is_empty() || args.only.iter().any(|o| o == "stream") {
        eprintln!("[{:>6.1?}] streaming (parmap_iter!)", started.elapsed());
        println!("streaming (parmap_iter! against parmap!, on the same engine):");
        let mut rows = stream_report::stream_rows(Engine::Threads, workers, args.quick, sizes.reps);
        if cfg!(unix) {
            rows.extend(stream_report::stream_rows(Engine::Fork, workers, args.quick, sizes.reps));
            rows.extend(stream_report::fork_rows(workers, args.quick));
        }
        for r in rows {
            let v = r.value;
            let mark = if v <= r.limit { "met" } else { "NOT met" };
            println!("- {}: {v:.2} (goal <= {}): {mark} ({})", r.what, r.limit, r.detail);
        }
        println!();
    }
    if args.only.is_empty() || args.only.iter().any(|o| o == "lazy_loop") {
        eprintln!("[{:>6.1?}] lazy #[parfor] loops", started.elapsed());
        println!("#[parfor] over a lazy iterator against over a slice:");
        for r in stream_loops::loop_rows(workers, args.quick, sizes.reps) {
            let v = r.lazy_s / r.slice_s;
            let mark = if v <= r.limit { "met" } else { "NOT met" };
            println!("- {}: {v:.2} (goal <= {}): {mark} ({})", r.what, r.limit, r.detail);
        }
        println!();
    }
    println!("report took {:.1?}; load average at the end: {}", started.elapsed(), load_average());
}
