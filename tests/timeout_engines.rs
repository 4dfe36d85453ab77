//! A `timeout` is never ignored: only the fork engine can stop a running item, so a call with a
//! timeout that resolves to `serial` or `threads` panics before running any item, with a
//! message naming the option, the engine and where the engine came from (the literal cases
//! are compile errors: `tests/ui/*timeout*`).
#![cfg(unix)]

mod common;

use common::run_child;
use parfor::{Engine, parfor, parmap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The message of the panic `f` raises; fails the test if it returns.
fn panic_message<R>(f: impl FnOnce() -> R) -> String {
    let payload = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("the call ran, ignoring its timeout"),
        Err(p) => p,
    };
    match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (_, Some(s)) => (*s).to_owned(),
        _ => String::from("(not a string)"),
    }
}

#[test]
fn parmap_refuses_a_timeout_on_serial_and_threads() {
    for engine in [Engine::Serial, Engine::Threads] {
        let ran = AtomicUsize::new(0);
        let msg = panic_message(|| {
            parmap!(|i: usize| ran.fetch_add(1, Ordering::Relaxed) + i, 0..100usize;
                    engine = engine, timeout = "1s", workers = 2)
        });
        assert!(msg.contains("the `timeout` option (1s) needs the `fork` engine"), "{msg}");
        assert!(msg.contains(&format!("runs on `{engine}` (from its `engine` option)")), "{msg}");
        assert!(msg.contains("engine = \"fork\""), "{msg}");
        assert_eq!(ran.load(Ordering::Relaxed), 0, "{engine}: no item runs");
        // Collecting failures does not turn the refusal into per-item errors.
        let msg = panic_message(|| {
            parmap!(|i: usize| i, 0..10usize;
                    engine = engine, timeout = Duration::from_millis(1500), on_error = "collect")
        });
        assert!(msg.contains("(1.5s) needs the `fork` engine"), "{msg}");
    }
}

#[parfor]
fn squares(out: &mut [u64], engine: Engine, timeout: Duration) {
    #[parfor(engine = engine, timeout = timeout, workers = 2)]
    for i in 0..out.len() {
        out[i] = (i * i) as u64;
    }
}

#[test]
fn parfor_loops_refuse_a_timeout_on_serial_and_threads_and_honour_it_on_fork() {
    let t = Duration::from_secs(60);
    for engine in [Engine::Serial, Engine::Threads] {
        let mut out = vec![0; 10];
        let msg = panic_message(|| squares(&mut out, engine, t));
        assert!(
            msg.contains(&format!("needs the `fork` engine, but this call runs on `{engine}`"))
        );
        assert_eq!(out, [0; 10], "{engine}: no item ran");
    }
    let mut out = vec![0; 10];
    squares(&mut out, Engine::Fork, t);
    assert_eq!(out[9], 81);
}

#[test]
fn fork_calls_keep_their_timeout_also_when_nested() {
    // Inside a fork worker a nested call runs serially, bounded by the outer item's timeout:
    // its own timeout is no mistake of the program, so it is not refused there.
    let got = parmap!(|i: u64| {
        parmap!(|j: u64| i * j, 0..4u64; engine = "fork", timeout = "10s").iter().sum::<u64>()
    }, 0..3u64; engine = "fork", timeout = "60s");
    assert_eq!(got, [0, 6, 12]);
}

/// The child process of [`the_engine_from_the_environment_or_the_program_is_named`]: a call
/// with a timeout and no engine, under `PARFOR_ENGINE=threads`, then under
/// `set_default_engine(Engine::Serial)`.
#[test]
fn child_parfor_engine_threads() {
    if std::env::var_os("PARFOR_TEST_TIMEOUT_CHILD").is_none() {
        return;
    }
    assert_eq!(std::env::var("PARFOR_ENGINE").as_deref(), Ok("threads"));
    let msg = panic_message(|| parmap!(|i: u32| i, 0..8u32; timeout = "2m"));
    assert!(
        msg.contains(
            "(120s) needs the `fork` engine, but this call runs on `threads` (from the \
                      PARFOR_ENGINE environment variable)"
        ),
        "{msg}"
    );
    // SAFETY: this child process runs only this test (`--exact`, one test thread), and no
    // other thread of it reads or writes the environment meanwhile: the refused calls above
    // started none.
    unsafe { std::env::remove_var("PARFOR_ENGINE") };
    let msg = panic_message(|| parmap!(|i: u32| i, 0..8u32; timeout = "2m"));
    assert!(msg.contains("runs on `threads` (from the built-in default"), "{msg}");
    parfor::set_default_engine(Engine::Serial);
    let msg = panic_message(|| parmap!(|i: u32| i, 0..8u32; timeout = "2m"));
    assert!(msg.contains("runs on `serial` (from `parfor::set_default_engine`)"), "{msg}");
    parfor::set_default_engine(Engine::Fork);
    assert_eq!(parmap!(|i: u32| i * 2, 0..4u32; timeout = "2m"), [0, 2, 4, 6]);
    println!("child checks done");
}

#[test]
fn the_engine_from_the_environment_or_the_program_is_named() {
    let (status, stdout, stderr) = run_child(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_parfor_engine_threads", "--test-threads=1", "--nocapture"])
            .env("PARFOR_TEST_TIMEOUT_CHILD", "1")
            .env("PARFOR_ENGINE", "threads")
            .env_remove("PARFOR_WORKERS"),
    );
    assert!(
        status.success() && stdout.contains("child checks done"),
        "the child failed:\n{stdout}{stderr}"
    );
}
