//! The threads engine's resources are bounded: a call never starts more threads than it has
//! blocks, nor more than the cap (4 per core, at most 256), whatever `workers` or
//! `PARFOR_WORKERS` asks; only a few pools are kept; and inside a user's rayon pool a call
//! without a `workers` option runs on that pool.
//!
//! Threads are counted in `/proc/self/task`, so this binary holds a single test (no other
//! test's threads come and go meanwhile), and the `PARFOR_WORKERS` cases run in a child
//! process of this binary started with that variable.
#![cfg(target_os = "linux")]

mod common;

use common::run_child;
use parfor::parmap;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

/// The threads of this process now.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The names of the threads of this process now.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .collect()
}

/// The documented cap: 4 threads per core, and never more than 256.
fn cap() -> usize {
    (4 * std::thread::available_parallelism().map_or(1, |n| n.get())).min(256)
}

/// The most threads this process had while the items of a `workers`-thread call over `n`
/// items (one block each) ran, minus those it had before.
fn new_threads_during(n: usize, workers: Option<usize>) -> usize {
    let before = threads();
    let seen = match workers {
        Some(w) => parmap!(|_i: usize| threads(), 0..n; engine = "threads", workers = w, chunk = 1),
        None => parmap!(|_i: usize| threads(), 0..n; engine = "threads", chunk = 1),
    };
    seen.into_iter().max().unwrap().saturating_sub(before)
}

/// The name of the thread that ran each item of a call over `n` items (one block each).
fn item_threads(n: usize, workers: Option<usize>) -> BTreeSet<String> {
    let name = |_i: usize| {
        assert!(rayon::current_thread_index().is_some() || n <= 1, "items run on a rayon pool");
        std::thread::current().name().unwrap_or("").to_owned()
    };
    let names = match workers {
        Some(w) => parmap!(name, 0..n; engine = "threads", workers = w, chunk = 1),
        None => parmap!(name, 0..n; engine = "threads", chunk = 1),
    };
    names.into_iter().collect()
}

/// A user's pool of `n` threads named `user-pool-{i}`.
fn user_pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("user-pool-{i}"))
        .build()
        .unwrap()
}

/// Inside a user's pool, a call without a `workers` option runs on that pool's threads and
/// starts none.
fn check_user_pool_is_used() {
    let pool = user_pool(3);
    let (names, new) = pool.install(|| {
        let before = threads();
        let names = item_threads(64, None);
        (names, threads().saturating_sub(before))
    });
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| n.starts_with("user-pool-")), "{names:?}");
    assert_eq!(new, 0, "no thread started for a call inside the user's pool");
    // The user's pool of one thread: the items run in the calling thread, of that pool.
    let one = user_pool(1);
    let names = one.install(|| item_threads(8, None));
    assert_eq!(names, BTreeSet::from(["user-pool-0".to_owned()]));
}

/// What the child process started with `PARFOR_WORKERS=1000` checks.
fn child_with_parfor_workers_1000() {
    assert_eq!(std::env::var("PARFOR_WORKERS").as_deref(), Ok("1000"));
    let new = new_threads_during(2, None);
    assert!(new <= 2, "PARFOR_WORKERS=1000 on a 2-item call started {new} threads");
    let new = new_threads_during(10 * cap(), None);
    assert!(new <= cap(), "PARFOR_WORKERS=1000 started {new} threads, above the cap {}", cap());
    // PARFOR_WORKERS does not take a call inside a user's pool off that pool.
    check_user_pool_is_used();
}

#[test]
fn threads_engine_resources_are_bounded() {
    if std::env::var_os("PARFOR_TEST_BOUNDS_CHILD").is_some() {
        return child_with_parfor_workers_1000();
    }

    // `workers = 1000` on 2 items: at most 2 new threads (1000 before the cap existed).
    let new = new_threads_during(2, Some(1000));
    assert!(new <= 2, "`workers = 1000` on a 2-item call started {new} threads");
    assert!(new >= 1, "the call ran on a pool of its own ({new} new threads)");
    // Many blocks: at most the cap.
    let new = new_threads_during(10 * cap(), Some(1000));
    assert!(new <= cap(), "`workers = 1000` started {new} threads, above the cap {}", cap());

    check_user_pool_is_used();
    // A `workers` option inside a user's pool of another size runs on parfor's own pool.
    let names = user_pool(3).install(|| item_threads(16, Some(2)));
    assert!(names.iter().all(|n| n.starts_with("parfor-")), "{names:?}");

    // Pools built for distinct `workers` values are not kept forever: after calls with 11
    // different counts, the threads of all but the few most recent pools exit. Their exit is
    // asynchronous, so wait for it (a deadline only against a hang).
    for w in 2..=12 {
        new_threads_during(64, Some(w));
    }
    let pools = || -> BTreeSet<String> {
        thread_names()
            .into_iter()
            .filter_map(|n| Some(n.strip_prefix("parfor-")?.split('-').next()?.to_owned()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while pools().len() > 4 {
        assert!(Instant::now() < deadline, "pools of sizes {:?} are still alive", pools());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(threads() <= 2 + 4 * cap() + 4, "{} threads alive", threads());

    // `PARFOR_WORKERS=1000`, in a child process of this binary.
    let (status, stdout, stderr) = run_child(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "threads_engine_resources_are_bounded", "--test-threads=1"])
            .env("PARFOR_TEST_BOUNDS_CHILD", "1")
            .env("PARFOR_WORKERS", "1000")
            .env_remove("PARFOR_ENGINE"),
    );
    assert!(status.success(), "the PARFOR_WORKERS=1000 child failed:\n{stdout}{stderr}");
    assert!(stdout.contains("1 passed"), "the child ran the test:\n{stdout}");
}
