//! The mpi engine under `mpirun` (a `harness = false` test of the `mpi` feature).
//!
//! Run by `cargo test --features mpi`, this binary is the driver: it launches itself with
//! `mpirun --oversubscribe -n N` for N = 1, 2 and 4, once per scenario, and checks what every
//! rank printed. Each launch is bounded by a deadline, after which mpirun is killed and the
//! test fails, so a hang fails instead of stalling. Launched by mpirun (the launcher's
//! variables are set), the binary is one rank and runs the scenario named by its argument:
//!
//! - `equal`: results equal to the serial engine's, bit for bit, on every rank (plain-old-data
//!   and serde results, both schedules, several threads per rank, collected failures,
//!   reductions, pushes, sliced outputs, tiny and empty calls, nested calls, `broadcast`);
//! - `fail`: a failing item fails the call on every rank with the same error;
//! - `mismatch`: ranks that make different calls all fail, showing each rank's view;
//! - `die` / `exit`: a rank that aborts or exits inside a call makes mpirun fail.
#![allow(clippy::needless_range_loop)]

use parfor::{Engine, Schedule, parfor, parmap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most one launch may take (a hang fails the test after it).
const DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    let launched =
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"].iter().any(|v| std::env::var_os(v).is_some());
    let args: Vec<String> = std::env::args().collect();
    if launched {
        match args.get(1).map(String::as_str) {
            Some("equal") => equal(),
            Some("fail") => fail(),
            Some("mismatch") => mismatch(),
            Some("die") => die(false),
            Some("exit") => die(true),
            other => panic!("unknown scenario {other:?}"),
        }
        return;
    }
    // `cargo test` passes harness flags (`--quiet`, filters): this binary runs every check.
    drive();
}

// ---------------------------------------------------------------- driver

struct Launch {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs this binary as `n` ranks on `scenario`, killing mpirun after [`DEADLINE`].
fn launch(n: usize, scenario: &str) -> Launch {
    launch_with(n, scenario, &[])
}

/// [`launch`] with extra environment variables for the ranks.
fn launch_with(n: usize, scenario: &str, env: &[(&str, &str)]) -> Launch {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = std::env::temp_dir();
    let out_path = dir.join(format!("parfor-mpi-{}-{n}-{scenario}.out", std::process::id()));
    let err_path = dir.join(format!("parfor-mpi-{}-{n}-{scenario}.err", std::process::id()));
    let mut child = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-n"])
        .arg(n.to_string())
        .arg(&exe)
        .arg(scenario)
        .env_remove("PARFOR_ENGINE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("mpirun must be installed to test the mpi engine (apt-get install openmpi-bin)");
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for mpirun") {
            break status.code();
        }
        if start.elapsed() > DEADLINE {
            // SIGTERM first: mpirun then kills its ranks; SIGKILL if it does not go.
            // SAFETY: `kill` on the pid of a child we have not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpirun -n {n} {scenario} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let l = Launch { code, stdout: read(&out_path), stderr: read(&err_path) };
    let _ = std::fs::remove_file(out_path);
    let _ = std::fs::remove_file(err_path);
    l
}

/// The lines `rank R <tag> <rest>` that the ranks printed, as (R, rest), sorted by rank.
fn tagged(out: &str, tag: &str) -> Vec<(usize, String)> {
    let mut v: Vec<(usize, String)> = out
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("rank ")?;
            let (r, rest) = rest.split_once(' ')?;
            let rest = rest.strip_prefix(tag)?.strip_prefix(' ')?;
            Some((r.parse().ok()?, rest.to_string()))
        })
        .collect();
    v.sort();
    v
}

fn drive() {
    let mut failed = Vec::new();
    let mut check = |name: String, ok: bool, detail: &dyn Fn() -> String| {
        println!("{} {name}", if ok { "ok    " } else { "FAILED" });
        if !ok {
            println!("{}", detail());
            failed.push(name);
        }
    };
    for n in [1, 2, 4] {
        let l = launch(n, "equal");
        let oks = tagged(&l.stdout, "ok");
        let same = oks.windows(2).all(|w| w[0].1 == w[1].1);
        check(
            format!("-n {n}: results equal serial on every rank"),
            l.code == Some(0) && oks.len() == n && same,
            &|| format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", l.code, l.stdout, l.stderr),
        );
        let warned = l.stderr.matches("every rank computes all of its items").count();
        check(
            format!("-n {n}: the warning about a threads call under mpirun, once, on rank 0"),
            warned == usize::from(n > 1),
            &|| format!("{warned} warnings\nstderr:\n{}", l.stderr),
        );

        let l = launch(n, "fail");
        let errs = tagged(&l.stdout, "error");
        // Each rank prints its two errors; every rank's pair must be rank 0's.
        let of = |r: usize| errs.iter().filter(|e| e.0 == r).map(|e| &e.1).collect::<Vec<_>>();
        let same = (0..n).all(|r| of(r) == of(0));
        check(
            format!("-n {n}: a failing item gives the same error on every rank"),
            l.code == Some(0)
                && errs.len() == 2 * n
                && same
                && errs.iter().all(|e| e.1.contains("item 37") || e.1.contains("i = 37")),
            &|| format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", l.code, l.stdout, l.stderr),
        );

        if n > 1 {
            // Rank 0's progress thread (on by default only across nodes) changes nothing.
            let l = launch_with(n, "equal", &[("PARFOR_MPI_PROGRESS", "1")]);
            let progress_oks = tagged(&l.stdout, "ok");
            check(
                format!("-n {n}: the same results with rank 0's progress thread"),
                l.code == Some(0) && progress_oks == oks,
                &|| format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", l.code, l.stdout, l.stderr),
            );
            let l = launch(n, "mismatch");
            let errs = tagged(&l.stdout, "mismatch");
            let shows_all =
                errs.iter().all(|e| (0..n).all(|r| e.1.contains(&format!("rank {r}: "))));
            // Every rank's message names the call site of every rank (two lines of this file).
            let sites = tagged(&l.stdout, "site");
            let named = |m: &str| m.matches("tests/mpi_spmd.rs:").count();
            let shows_sites =
                sites.len() == n && sites.iter().all(|e| e.1 == sites[0].1 && named(&e.1) == n);
            check(
                format!("-n {n}: ranks making different calls all fail, showing each view"),
                l.code == Some(0) && errs.len() == n && shows_all && shows_sites,
                &|| format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", l.code, l.stdout, l.stderr),
            );
            for scenario in ["die", "exit"] {
                let l = launch(n, scenario);
                check(
                    format!("-n {n}: a rank that {scenario}s inside a call makes mpirun fail"),
                    l.code.is_some_and(|c| c != 0),
                    &|| format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", l.code, l.stdout, l.stderr),
                );
            }
        }
    }
    if !failed.is_empty() {
        eprintln!("{} mpi checks failed: {failed:#?}", failed.len());
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- ranks

fn rank() -> usize {
    parfor::mpi::rank()
}

/// A float whose value depends on the order of additions.
fn wobble(i: usize) -> f64 {
    let x = i as f64;
    (x * 0.7).sin() * 1e3 + 1.0 / (x + 1.0)
}

#[parfor(engine = engine, workers = workers)]
fn sums(n: usize, engine: Engine, workers: usize) -> (f64, Vec<usize>, Vec<f64>) {
    let mut total = 0.0;
    let mut evens = Vec::new();
    let mut out = vec![0.0; n];
    #[parfor(chunk = 7)]
    for i in 0..n {
        total += wobble(i);
        if i % 2 == 0 {
            evens.push(i);
        }
        out[i] = wobble(i) * 2.0;
    }
    (total, evens, out)
}

fn fnv(h: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *h = (*h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
}

fn equal() {
    let r = rank();
    let mut digest = 0xcbf2_9ce4_8422_2325u64;
    let mpi = Engine::Mpi;
    let serial = Engine::Serial;
    for n in [0usize, 1, 3, 8, 1000, 100_003] {
        for chunk in [1usize, 13, 4096] {
            for (schedule, workers) in
                [(Schedule::Dynamic, 1), (Schedule::Static, 1), (Schedule::Dynamic, 2)]
            {
                let want = parmap!(wobble, 0..n; engine = serial, chunk = chunk);
                let got = parmap!(wobble, 0..n; engine = mpi, chunk = chunk, workers = workers);
                let stat =
                    parmap!(wobble, 0..n; engine = "mpi", chunk = chunk, schedule = "static");
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "f64 n={n} chunk={chunk} {schedule:?}");
                assert_eq!(bits(&stat), bits(&want), "static n={n} chunk={chunk}");
                for x in &got {
                    fnv(&mut digest, &x.to_le_bytes());
                }
                if n <= 1000 {
                    let s = |i: usize| format!("item {i}: {:.3}", wobble(i));
                    let want = parmap!(s, 0..n; engine = serial, chunk = chunk);
                    let got = parmap!(s, 0..n; engine = mpi, chunk = chunk, workers = workers);
                    assert_eq!(got, want, "String n={n} chunk={chunk}");
                    let a = |i: usize| [i as u32, (i * i) as u32];
                    let want = parmap!(a, 0..n; engine = serial, chunk = chunk);
                    let got = parmap!(a, 0..n; engine = mpi, chunk = chunk);
                    assert_eq!(got, want, "arrays n={n} chunk={chunk}");
                }
                let _ = schedule;
            }
        }
        for workers in [1, 3] {
            let want = sums(n, serial, 1);
            let got = sums(n, mpi, workers);
            assert_eq!(got.0.to_bits(), want.0.to_bits(), "reduction n={n}");
            assert_eq!(got.1, want.1, "push n={n}");
            assert_eq!(got.2, want.2, "sliced n={n}");
            fnv(&mut digest, &got.0.to_le_bytes());
        }
    }
    // The static schedule gives rank r the r-th contiguous run of blocks: every rank works.
    let size = parfor::mpi::size();
    let who = parmap!(|_i: usize| parfor::mpi::rank(), 0..64usize; engine = mpi, chunk = 1, schedule = "static");
    let expect: Vec<usize> =
        (0..64).map(|b| (0..size).find(|&r| b < (r + 1) * 64 / size).unwrap()).collect();
    assert_eq!(who, expect, "static schedule on {size} ranks");
    // Collected failures: the same Vec on every rank as on the serial engine.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let f = |i: usize| {
        assert!(i % 17 != 5, "bad item {i}");
        i * 3
    };
    let want = parmap!(f, 0..200usize; engine = serial, on_error = "collect", chunk = 3);
    let got = parmap!(f, 0..200usize; engine = mpi, on_error = "collect", chunk = 3);
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
    fnv(&mut digest, format!("{got:?}").as_bytes());
    let g = |i: u64| -> f64 {
        assert!(i != 11, "bad pod item");
        i as f64
    };
    let want = parmap!(g, 0..40u64; engine = serial, on_error = "collect");
    let got = parmap!(g, 0..40u64; engine = mpi, on_error = "collect");
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
    // A function returning `Result`: its `Err`s are collected failures on every rank.
    let h = |i: u32| -> Result<u32, String> {
        if i % 5 == 2 { Err(format!("no {i}")) } else { Ok(i * 2) }
    };
    let want = parmap!(h, 0..30u32; engine = serial, on_error = "collect");
    let got = parmap!(h, 0..30u32; engine = mpi, on_error = "collect", chunk = 4);
    assert_eq!(format!("{got:?}"), format!("{want:?}"));
    assert_eq!(got[7].as_ref().unwrap_err().cause(), &parfor::Cause::Returned("no 7".into()));
    // A timeout is refused on this engine.
    let t = catch_unwind(|| parmap!(|x: u32| x, 0..4u32; engine = mpi, timeout = "1s"));
    std::panic::set_hook(prev);
    let msg = t.err().and_then(|p| p.downcast_ref::<String>().cloned()).unwrap_or_default();
    assert!(msg.contains("runs on `mpi`"), "{msg}");
    // Nested calls run inside the rank.
    let nested = parmap!(|i: usize| parmap!(|j: usize| i * j, 0..5usize; engine = mpi).iter().sum::<usize>(), 0..20usize; engine = mpi);
    assert_eq!(nested, (0..20).map(|i| i * 10).collect::<Vec<_>>());
    // broadcast: rank 0's value everywhere.
    let mut seed = 1000 + r as u64;
    let mut names = vec![format!("from rank {r}")];
    parfor::mpi::broadcast(&mut seed);
    parfor::mpi::broadcast(&mut names);
    assert_eq!((seed, names), (1000, vec!["from rank 0".to_string()]));
    parfor::mpi::barrier();
    assert_eq!(
        parfor::mpi::size(),
        std::env::var("OMPI_COMM_WORLD_SIZE").map_or(1, |s| s.parse().unwrap())
    );
    // A fork call inside a rank: its worker processes never run the rank's MPI exit hook
    // (which would finalize or abort the job), so the job still exits 0.
    let forked = parmap!(|x: u64| x * x, 0..50u64; engine = "fork", workers = 2);
    assert_eq!(forked, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    // A call on another engine under mpirun: warned about once, on rank 0.
    let _ = parmap!(|x: u32| x, 0..4u32; engine = Engine::Threads);
    let _ = parmap!(|x: u32| x, 0..4u32; engine = Engine::Threads);
    println!("rank {r} ok {digest:016x}");
}

#[parfor(engine = "mpi")]
fn failing_loop(n: usize) -> u64 {
    let mut s = 0u64;
    #[parfor]
    for i in 0..n {
        assert!(i < 37, "iteration {i} fails");
        s += i as u64;
    }
    s
}

fn message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn fail() {
    let r = rank();
    std::panic::set_hook(Box::new(|_| {}));
    let e = catch_unwind(|| {
        parmap!(|i: usize| {
            assert!(i != 37 && i != 80, "item {i} is bad");
            i as f64
        }, 0..200usize; engine = "mpi", chunk = 1)
    });
    println!("rank {r} error {}", message(e.expect_err("the call must fail")));
    let e = catch_unwind(AssertUnwindSafe(|| failing_loop(100)));
    println!("rank {r} error {}", message(e.expect_err("the loop must fail")));
}

fn mismatch() {
    let r = rank();
    std::panic::set_hook(Box::new(|_| {}));
    let e = catch_unwind(|| parmap!(|i: usize| i, 0..(10 + r); engine = "mpi"));
    let msg = message(e.expect_err("ranks with different n must fail")).replace('\n', " | ");
    println!("rank {r} mismatch {msg}");
    // The same number of items at different call sites.
    let e = catch_unwind(|| {
        if r == 0 {
            parmap!(|i: usize| i, 0..10usize; engine = "mpi")
        } else {
            parmap!(|i: usize| i + 1, 0..10usize; engine = "mpi")
        }
    });
    let msg = message(e.expect_err("ranks at different call sites must fail")).replace('\n', " | ");
    println!("rank {r} site {msg}");
}

fn die(exit: bool) {
    let v = parmap!(|i: usize| {
        if i == 5 {
            if exit {
                std::process::exit(3);
            }
            std::process::abort();
        }
        std::thread::sleep(Duration::from_millis(1));
        i
    }, 0..64usize; engine = "mpi", chunk = 1);
    println!("rank {} finished with {} results: the job should have failed", rank(), v.len());
}
