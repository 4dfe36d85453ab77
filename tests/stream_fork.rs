//! `parmap_iter!` on the fork engine: results that arrive from the worker processes one by
//! one, equality with `parmap!`, crashed and timed-out workers, and early drops that leave no
//! process and no descriptor behind.
#![cfg(unix)]

mod common;

use common::{WORKERS, run_child};
use parfor::{Cause, TaskError, parmap, parmap_iter};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn f(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

/// Waits until `marker` exists (at most `cap`, so a broken engine fails instead of hanging);
/// whether it appeared.
fn wait_for(marker: &std::path::Path, cap: Duration) -> bool {
    let t0 = Instant::now();
    while !marker.exists() {
        if t0.elapsed() > cap {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn marker(name: &str) -> PathBuf {
    let m = std::env::temp_dir().join(format!("parfor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_file(&m);
    m
}

/// Kills the calling process with `SIGKILL`.
fn die() {
    // SAFETY: sends a signal to this (worker) process; no memory is touched.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
}

#[test]
fn unordered_results_arrive_while_a_slow_item_still_runs() {
    let m = marker("slow");
    let gate = m.clone();
    let mut it = parmap_iter!(
        move |i: u64| {
            // Runs until the consumer has seen other results (the marker is created only
            // after them), so it cannot have finished before them.
            if i == 0 && !wait_for(&gate, Duration::from_secs(30)) {
                return u64::MAX;
            }
            f(i)
        },
        0..64u64;
        engine = "fork", workers = 2, ordered = false
    );
    let early: Vec<(usize, u64)> = it.by_ref().take(10).collect();
    std::fs::write(&m, b"").unwrap();
    assert!(
        early.iter().all(|&(i, _)| i != 0),
        "results must not wait for the slow item 0: {early:?}"
    );
    let mut all: Vec<(usize, u64)> = early.into_iter().chain(it).collect();
    let _ = std::fs::remove_file(&m);
    all.sort_unstable();
    let want: Vec<(usize, u64)> = (0..64u64).map(|i| (i as usize, f(i))).collect();
    assert_eq!(all, want);
}

#[test]
fn ordered_results_arrive_before_a_later_slow_item_finishes() {
    let m = marker("later");
    let gate = m.clone();
    let mut it = parmap_iter!(
        move |i: u64| {
            // Item 40 ends only once the consumer has seen items 0..40 (the marker is created
            // only then); if they waited for it, it ends after the cap with a wrong value.
            if i == 40 && !wait_for(&gate, Duration::from_secs(30)) {
                return u64::MAX;
            }
            f(i)
        },
        0..64u64;
        // Batches of one item: a result waits for nothing but its own item (in a batch of
        // several, a result can wait for the next item of its batch to end).
        engine = "fork", workers = 2, chunk = 1
    );
    let early: Vec<u64> = it.by_ref().take(40).collect();
    std::fs::write(&m, b"").unwrap();
    let rest: Vec<u64> = it.collect();
    let _ = std::fs::remove_file(&m);
    assert_eq!(early, (0..40).map(f).collect::<Vec<_>>());
    assert_eq!(rest, (40..64).map(f).collect::<Vec<_>>());
}

#[test]
fn fork_streams_equal_parmap_on_every_worker_count() {
    let want = parmap!(f, 0..3000u64);
    let flat_want: Vec<u64> =
        parmap!(|i: u64| vec![f(i); (i % 3) as usize], 0..500u64).into_iter().flatten().collect();
    let text: String = (0..700).map(|i| format!("line {i} {}\n", "x".repeat(i % 13))).collect();
    let lens_want = parmap!(|l: &str| l.len() as u64 * 7, text.lines().collect::<Vec<_>>());
    for &w in WORKERS {
        let got: Vec<u64> =
            parmap_iter!(f, 0..3000u64; engine = "fork", workers = w, progress = w == 2).collect();
        assert_eq!(got, want, "ordered, {w} workers");
        let mut got: Vec<(usize, u64)> =
            parmap_iter!(f, 0..3000u64; engine = "fork", workers = w, ordered = false).collect();
        got.sort_unstable();
        assert!(got.iter().enumerate().all(|(k, &(i, y))| i == k && y == want[k]), "{w}");
        assert_eq!(got.len(), want.len());
        let got: Vec<u64> =
            parmap_iter!(f, 0..3000u64; engine = "fork", workers = w, window = 7, chunk = 3)
                .collect();
        assert_eq!(got, want, "window 7, chunk 3, {w} workers");
        let got: Vec<u64> = parmap_iter!(
            |i: u64| vec![f(i); (i % 3) as usize], 0..500u64;
            engine = "fork", workers = w, flatten = true
        )
        .collect();
        assert_eq!(got, flat_want, "flattened, {w} workers");
        let got: Vec<u64> = parmap_iter!(
            |l: String| l.len() as u64 * 7, text.lines().map(str::to_owned);
            engine = "fork", workers = w, window = 50
        )
        .collect();
        assert_eq!(got, lens_want, "lazy source, {w} workers");
    }
}

#[test]
fn a_worker_that_kills_itself_fails_that_item_and_the_rest_succeed() {
    let mut got: Vec<(usize, Result<u32, TaskError>)> = parmap_iter!(
        |i: u32| {
            if i == 7 {
                die();
            }
            i * 3
        },
        0..40u32;
        engine = "fork", workers = 2, on_error = "collect", ordered = false
    )
    .collect();
    got.sort_by_key(|p| p.0);
    assert_eq!(got.len(), 40);
    for (i, r) in got {
        if i == 7 {
            let e = r.unwrap_err();
            assert_eq!(e.index(), 7);
            assert!(matches!(e.cause(), Cause::Signal { name, .. } if name == "SIGKILL"), "{e}");
            let text = e.to_string();
            assert!(text.contains('7') && text.contains("SIGKILL"), "{text}");
        } else {
            assert_eq!(r.unwrap(), i as u32 * 3);
        }
    }
    // A lazy source: the worker of that batch dies, a new one runs the rest of it.
    let got: Vec<Result<u64, TaskError>> = parmap_iter!(
        |s: String| {
            if s == "13" {
                die();
            }
            s.parse::<u64>().unwrap()
        },
        (0..60u64).map(|i| i.to_string());
        engine = "fork", workers = 2, on_error = "collect"
    )
    .collect();
    assert_eq!(got.len(), 60);
    for (i, r) in got.iter().enumerate() {
        match r {
            Err(e) => assert!(i == 13 && matches!(e.cause(), Cause::Signal { .. }), "{e}"),
            Ok(v) => assert_eq!(*v, i as u64),
        }
    }
}

#[test]
fn in_fail_mode_a_killed_worker_ends_the_stream_after_the_items_before_it() {
    let mut seen = Vec::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let it = parmap_iter!(
            |i: u32| {
                if i == 20 {
                    die();
                }
                i
            },
            0..100u32;
            engine = "fork", workers = 2
        );
        for x in it {
            seen.push(x);
        }
    }));
    let msg = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("20") && msg.contains("SIGKILL"), "{msg}");
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
}

#[test]
fn a_timed_out_item_fails_and_its_worker_is_replaced() {
    let got: Vec<(usize, Result<u64, TaskError>)> = parmap_iter!(
        |i: u64| {
            if i % 10 == 3 {
                std::thread::sleep(Duration::from_secs(600));
            }
            f(i)
        },
        0..30u64;
        engine = "fork", workers = 2, on_error = "collect", timeout = "300ms",
        ordered = false
    )
    .collect();
    assert_eq!(got.len(), 30);
    for (i, r) in got {
        if i % 10 == 3 {
            let e = r.unwrap_err();
            assert_eq!(e.index(), i);
            assert!(matches!(e.cause(), Cause::Timeout(_)), "{e}");
        } else {
            assert_eq!(r.unwrap(), f(i as u64));
        }
    }
}

#[test]
fn a_timed_out_item_of_a_lazy_source_fails_and_the_rest_of_its_batch_runs() {
    let got: Vec<Result<u64, TaskError>> = parmap_iter!(
        |i: u64| {
            if i == 5 {
                std::thread::sleep(Duration::from_secs(600));
            }
            f(i)
        },
        (0..40u64).step_by(1);
        engine = "fork", workers = 2, on_error = "collect", timeout = "300ms"
    )
    .collect();
    assert_eq!(got.len(), 40);
    for (i, r) in got.into_iter().enumerate() {
        match r {
            Err(e) => assert!(i == 5 && matches!(e.cause(), Cause::Timeout(_)), "{i}: {e}"),
            Ok(v) => assert_eq!(v, f(i as u64)),
        }
    }
}

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Whether this process has no child at all, running or a zombie.
fn no_children() -> bool {
    let mut status = 0;
    // SAFETY: polls for any child's status into a live local; does not block.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

#[test]
fn child_early_drops_leave_no_worker_and_no_descriptor() {
    if std::env::var_os("PARFOR_TEST_STREAM_FORK_CHILD").is_none() {
        return;
    }
    let slow = |i: u64| {
        std::thread::sleep(Duration::from_millis(2));
        f(i)
    };
    let fds = open_fds();
    assert!(no_children());
    // Dropped after two results, with workers busy and batches queued.
    let mut it = parmap_iter!(slow, 0..1_000_000u64; engine = "fork", workers = 3);
    assert_eq!(it.next(), Some(f(0)));
    assert_eq!(it.next(), Some(f(1)));
    assert!(!no_children(), "the workers run");
    drop(it);
    assert!(no_children(), "every worker reaped after the drop");
    assert_eq!(open_fds(), fds, "no descriptor left open after the drop");
    // A stream consumed to its end ends its workers at once, before it is dropped.
    let mut it = parmap_iter!(f, 0..100u64; engine = "fork", workers = 2);
    assert_eq!(it.by_ref().count(), 100);
    assert!(no_children(), "the workers of an ended stream are reaped");
    assert_eq!(open_fds(), fds);
    drop(it);
    // A lazy source, unordered.
    let mut it = parmap_iter!(
        slow, (0..u64::MAX).map(|i| i * 2);
        engine = "fork", workers = 2, ordered = false
    );
    assert!(it.next().is_some());
    drop(it);
    assert!(no_children(), "every one-task worker reaped");
    assert_eq!(open_fds(), fds);
    // A consumer that panics while the stream is alive.
    let r = std::panic::catch_unwind(|| {
        let mut it = parmap_iter!(slow, 0..1_000_000u64; engine = "fork", workers = 2);
        let _ = it.next();
        panic!("the consumer failed");
    });
    assert!(r.is_err());
    assert!(no_children(), "a panicking consumer leaves no worker behind");
    assert_eq!(open_fds(), fds);
    // A program that restored `SIGPIPE`'s default action (which ends the process) is not
    // killed when the stream hands a task to a worker that just died.
    // SAFETY: sets the default action of a signal; this child runs only this test.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    for _ in 0..5 {
        let got: Vec<Result<u64, TaskError>> = parmap_iter!(
            |i: u64| {
                if i.is_multiple_of(3) {
                    die();
                }
                i
            },
            0..60u64;
            engine = "fork", workers = 3, on_error = "collect", chunk = 1
        )
        .collect();
        assert_eq!(got.iter().filter(|r| r.is_err()).count(), 20);
    }
    assert!(no_children());
    assert_eq!(open_fds(), fds);
    println!("child checks done");
}

#[test]
fn early_drops_leave_no_worker_and_no_descriptor() {
    let (status, stdout, stderr) = run_child(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_early_drops_leave_no_worker_and_no_descriptor",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("PARFOR_TEST_STREAM_FORK_CHILD", "1"),
    );
    assert!(
        status.success() && stdout.contains("child checks done"),
        "the child failed:\n{stdout}{stderr}"
    );
}
