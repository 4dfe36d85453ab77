//! The async engine: `parmap!` / `parmap_async!` over functions that return futures (feature
//! `async`). Timing is checked on tokio's paused clock (`start_paused`), where a sleep takes
//! exactly its virtual duration and no real time, so the checks are exact and instant.
#![cfg(feature = "async")]

mod common;

use parfor::{Cause, DEFAULT_CONCURRENCY, Engine, TaskError, parmap, parmap_async};
use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::{Instant, sleep};

/// Serializes the tests that change the program's default engine.
static DEFAULT_ENGINE: Mutex<()> = Mutex::new(());

/// Runs `fut` on a current-thread runtime whose clock is paused (and advances by itself
/// whenever every task waits on a timer), failing instead of hanging if it never finishes: a
/// day of virtual time passes at once when nothing else can run.
fn paused<T>(fut: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(86_400), fut)
                .await
                .expect("the test hung: a day of virtual time passed")
        })
}

/// Runs `f` on a thread of its own, failing the test if it takes longer than a minute (so a
/// broken timeout fails instead of hanging the suite).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("the test hung for a minute"),
    }
}

/// The message of the panic `f` raises; fails the test if it returns.
fn panic_message<R>(f: impl FnOnce() -> R) -> String {
    let payload = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("the call returned instead of panicking"),
        Err(p) => p,
    };
    match (payload.downcast_ref::<String>(), payload.downcast_ref::<&str>()) {
        (Some(s), _) => s.clone(),
        (_, Some(s)) => (*s).to_owned(),
        _ => String::from("(not a string)"),
    }
}

/// Sleeps `ms` virtual milliseconds and returns `x`.
async fn slow(x: u64, ms: u64) -> u64 {
    sleep(Duration::from_millis(ms)).await;
    x
}

/// Counts the futures in flight and the most seen at once.
#[derive(Default)]
struct InFlight {
    now: Cell<usize>,
    max: Cell<usize>,
}

impl InFlight {
    async fn sleep_ms(&self, ms: u64) {
        self.now.set(self.now.get() + 1);
        self.max.set(self.max.get().max(self.now.get()));
        sleep(Duration::from_millis(ms)).await;
        self.now.set(self.now.get() - 1);
    }
}

#[test]
fn results_come_in_item_order_whatever_order_the_futures_finish_in() {
    paused(async {
        // Later items finish first.
        let start = Instant::now();
        let r = parmap_async!(|i: u64| slow(i, 100 - i), 0..100u64; concurrency = 100).await;
        assert_eq!(r, (0..100).collect::<Vec<_>>());
        assert_eq!(start.elapsed(), Duration::from_millis(100));
    })
}

#[test]
fn at_most_concurrency_futures_run_at_once() {
    paused(async {
        // The goal on the paused clock: 1000 sleeps of 10 ms take 1000 / N * 10 ms.
        for (n, want_ms) in [(1usize, 10_000u64), (10, 1000), (100, 100), (1000, 10), (5000, 10)] {
            let flight = &InFlight::default();
            let start = Instant::now();
            let r = parmap_async!(|i: u64| async move { flight.sleep_ms(10).await; i }, 0..1000u64;
                              concurrency = n)
            .await;
            assert_eq!(start.elapsed(), Duration::from_millis(want_ms), "concurrency {n}");
            assert_eq!(flight.max.get(), n.min(1000), "concurrency {n}");
            assert_eq!(r.len(), 1000);
            assert!(r.iter().enumerate().all(|(i, &x)| x == i as u64));
        }
    })
}

#[test]
fn a_slow_first_item_does_not_hold_back_the_others() {
    paused(async {
        // Item 0 sleeps 1 s; the other 99 items (10 ms each) pass it on the 9 remaining slots.
        let flight = &InFlight::default();
        let start = Instant::now();
        let r = parmap_async!(
            |i: u64| async move {
                flight.sleep_ms(if i == 0 { 1000 } else { 10 }).await;
                i
            },
            0..100u64;
            concurrency = 10
        )
        .await;
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        assert_eq!(flight.max.get(), 10);
        assert_eq!(r[0], 0);
    })
}

#[test]
fn the_default_concurrency_is_the_documented_constant() {
    paused(async {
        let flight = InFlight::default();
        let start = Instant::now();
        let n = 2 * DEFAULT_CONCURRENCY as u64;
        parmap_async!(|_i: u64| flight.sleep_ms(10), 0..n).await;
        assert_eq!(flight.max.get(), DEFAULT_CONCURRENCY);
        assert_eq!(start.elapsed(), Duration::from_millis(20));
    })
}

#[test]
fn the_blocking_form_runs_the_futures_on_a_runtime_of_its_own() {
    let flight = &InFlight::default();
    let r = parmap!(|i: u64| async move { flight.sleep_ms(1).await; i * i }, 0..50u64;
                    concurrency = 7);
    assert_eq!(r, (0..50u64).map(|i| i * i).collect::<Vec<_>>());
    assert_eq!(flight.max.get(), 7);
    // `engine = "async"` may be written; an `async fn` path works like a closure.
    assert_eq!(parmap!(slow, [3u64, 4], [0u64]; engine = "async"), [3, 4]);
}

#[test]
fn futures_need_be_neither_send_nor_static() {
    let names = vec!["ab".to_string(), "cde".to_string()];
    let shared = Rc::new(Cell::new(0usize));
    // The future holds an `Rc` (not `Send`) and a `&str` into `names` (not `'static`).
    let lens = parmap!(
        |s: &str| {
            let shared = Rc::clone(&shared);
            async move {
                tokio::task::yield_now().await;
                shared.set(shared.get() + s.len());
                s.len()
            }
        },
        names
    );
    assert_eq!(lens, [2, 3]);
    assert_eq!(shared.get(), 5);
    // Unannotated parameters get the elements as `&String`.
    assert_eq!(parmap!(|s| async move { s.to_uppercase() }, names), ["AB", "CDE"]);
}

async fn weighted(a: f64, b: u32, w: &[f64]) -> f64 {
    tokio::task::yield_now().await;
    a * f64::from(b) * w.iter().sum::<f64>()
}

#[test]
fn products_zip_and_args_work_as_in_parmap() {
    let xs = [1.0, 2.0];
    let w = vec![0.5, 0.5];
    let grid = parmap!(weighted, xs, 1..=3u32; args = (w,));
    assert_eq!(grid, [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]);
    let zipped = parmap!(weighted, xs, [10u32, 20]; zip = true, args = (w,), concurrency = 1);
    assert_eq!(zipped, [10.0, 40.0]);
    let z = xs.len() > 1;
    let zipped = parmap!(|a: f64, b: f64| async move { a + b }, xs, [3.0, 4.0]; zip = z);
    assert_eq!(zipped, [4.0, 6.0]);
}

async fn fragile(i: u32) -> u32 {
    tokio::task::yield_now().await;
    assert!(i % 3 != 1, "item {i} refuses");
    i * 10
}

#[test]
fn collect_turns_panicking_futures_into_errors() {
    let r: Vec<Result<u32, TaskError>> = parmap!(fragile, 0..6u32; on_error = "collect");
    for (i, r) in r.iter().enumerate() {
        if i % 3 == 1 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.index(), i);
            assert_eq!(e.cause(), &Cause::Panic(format!("item {i} refuses")));
        } else {
            assert_eq!(r, &Ok(i as u32 * 10));
        }
    }
    // A closure that panics before returning its future fails its item too.
    let r = parmap!(
        |a: u32, b: u32| {
            assert!(a != b, "diagonal");
            async move { a + b }
        },
        0..2u32, 0..2u32;
        on_error = "collect"
    );
    assert_eq!(r[1], Ok(1));
    let e = r[3].as_ref().unwrap_err();
    assert_eq!((e.index(), e.indices()), (3, &[1usize, 1][..]));
    assert_eq!(
        e.to_string(),
        "item 3 (source 0 index 1, source 1 index 1) failed: panicked: diagonal"
    );
}

async fn parse_later(s: &str) -> Result<u32, std::num::ParseIntError> {
    tokio::task::yield_now().await;
    s.parse()
}

#[test]
fn collect_turns_returned_errors_of_futures_into_task_errors() {
    let words = ["4", "x", "15", ""];
    let want: Vec<Result<u32, String>> =
        words.iter().map(|w| w.parse::<u32>().map_err(|e| e.to_string())).collect();
    let check = |got: Vec<Result<u32, TaskError>>| {
        assert_eq!(got.len(), words.len());
        for (i, (g, w)) in got.into_iter().zip(&want).enumerate() {
            match (g, w) {
                (Ok(g), Ok(w)) => assert_eq!(g, *w),
                (Err(e), Err(msg)) => {
                    assert_eq!(e.index(), i);
                    assert_eq!(e.cause(), &Cause::Returned(msg.clone()));
                }
                (g, w) => panic!("item {i}: got {g:?}, want {w:?}"),
            }
        }
    };
    check(parmap!(parse_later, words; on_error = "collect"));
    check(paused(async { parmap_async!(parse_later, words; on_error = "collect").await }));
    // `on_error = "fail"`: the `Result`s are values.
    let kept: Vec<Result<u32, std::num::ParseIntError>> = parmap!(parse_later, words);
    assert_eq!(kept.iter().map(|r| r.is_ok()).collect::<Vec<_>>(), [true, false, true, false]);
}

#[test]
fn fail_mode_panics_naming_the_item_and_starts_no_more_items() {
    let started = Cell::new(0u32);
    let msg = panic_message(|| {
        parmap!(
            |i: u32| {
                started.set(started.get() + 1);
                fragile(i)
            },
            0..1000u32;
            concurrency = 4
        )
    });
    assert_eq!(msg, "parfor: item 1 failed: panicked: item 1 refuses");
    assert!(started.get() < 1000, "started {}", started.get());
    // The same from async code. (Several failing items running at once: the first to fail
    // is reported, so one at a time here.)
    let msg =
        panic_message(|| paused(async { parmap_async!(fragile, 0..10u32; concurrency = 1).await }));
    assert_eq!(msg, "parfor: item 1 failed: panicked: item 1 refuses");
}

/// Counts the futures dropped before they finished.
struct DropCount<'a>(&'a Cell<u32>);

impl Drop for DropCount<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn timeout_drops_the_late_future_and_reports_a_time_out() {
    paused(async {
        let (dropped, finished) = (&Cell::new(0u32), &Cell::new(0u32));
        let start = Instant::now();
        let r = parmap_async!(
            |ms: u64| async move {
                let guard = DropCount(dropped);
                sleep(Duration::from_millis(ms)).await;
                std::mem::forget(guard);
                finished.set(finished.get() + 1);
                ms
            },
            [10u64, 500, 20, 10_000];
            timeout = "100ms", on_error = "collect"
        )
        .await;
        assert_eq!(start.elapsed(), Duration::from_millis(100), "nothing waits past the timeout");
        assert_eq!(r[0], Ok(10));
        assert_eq!(r[2], Ok(20));
        for i in [1, 3] {
            let e = r[i].as_ref().unwrap_err();
            assert_eq!(e.cause(), &Cause::Timeout(Duration::from_millis(100)));
            assert_eq!(e.to_string(), format!("item {i} failed: timed out after 100ms"));
        }
        assert_eq!((finished.get(), dropped.get()), (2, 2), "the late futures were dropped");
    })
}

#[test]
fn a_time_out_in_fail_mode_panics_naming_the_item() {
    let msg = panic_message(|| {
        paused(async {
            let t = Duration::from_millis(50);
            parmap_async!(|ms: u64| slow(ms, ms), [10u64, 60]; timeout = t).await
        })
    });
    assert_eq!(msg, "parfor: item 1 failed: timed out after 50ms");
}

#[test]
fn the_blocking_form_enforces_timeouts_on_its_own_runtime() {
    // A future that never finishes cannot hold up the call.
    let r = within_a_minute(|| {
        parmap!(
        |i: u32| async move {
            if i == 1 {
                std::future::pending::<()>().await;
            }
            i
        },
        0..3u32;
        timeout = "20ms", on_error = "collect"
        )
    });
    assert_eq!(r[0], Ok(0));
    assert_eq!(r[1].as_ref().unwrap_err().cause(), &Cause::Timeout(Duration::from_millis(20)));
    assert_eq!(r[2], Ok(2));
}

#[tokio::test]
async fn the_blocking_form_inside_a_runtime_panics_naming_parmap_async() {
    let ran = &Cell::new(false);
    let msg = panic_message(|| {
        parmap!(
            |i: u32| async move {
                ran.set(true);
                i
            },
            0..3u32
        )
    });
    assert!(msg.contains("write `parmap_async!(...).await` there instead"), "{msg}");
    assert!(msg.contains("cannot run inside an async runtime"), "{msg}");
    assert!(!ran.get(), "no item ran");
}

#[test]
fn parmap_async_with_a_timeout_outside_tokio_says_what_it_needs() {
    let msg = panic_message(|| {
        let fut = std::pin::pin!(parmap_async!(slow, [1u64], [1u64]; timeout = "1s"));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let _ = fut.poll(&mut cx);
    });
    assert!(msg.contains("`timeout` on the async engine needs a tokio runtime"), "{msg}");
}

#[test]
fn parmap_async_without_a_timeout_runs_on_any_executor() {
    // Polled by hand: no tokio runtime at all.
    let mut fut = std::pin::pin!(parmap_async!(|i: u32| async move { i + 1 }, 0..4u32));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => assert_eq!(v, [1, 2, 3, 4]),
        std::task::Poll::Pending => panic!("ready futures left the call pending"),
    }
}

#[test]
fn async_functions_ignore_the_default_engine_and_refuse_an_engine_expression() {
    let _g = DEFAULT_ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    for engine in [Engine::Serial, Engine::Threads, Engine::Fork] {
        parfor::set_default_engine(engine);
        let r = parmap!(|i: u64| slow(i, 1), 0..10u64);
        assert_eq!(r, (0..10).collect::<Vec<_>>(), "default {engine}");
    }
    parfor::clear_default_engine();
    let ran = &Cell::new(false);
    let e = Engine::Threads;
    let msg =
        panic_message(|| parmap!(|i: u32| async move { ran.set(true); i }, 0..3u32; engine = e));
    assert!(msg.contains("its `engine` option chooses `threads`"), "{msg}");
    assert!(msg.contains("write `engine = \"async\"`"), "{msg}");
    assert!(!ran.get(), "no item ran");
}

#[test]
fn progress_and_empty_sources_work() {
    let r = parmap!(|i: u32| async move { i }, 0..5u32; progress = true, concurrency = 2);
    assert_eq!(r, [0, 1, 2, 3, 4]);
    let empty: Vec<u32> = parmap!(|i: u32| async move { i }, 0..0u32);
    assert!(empty.is_empty());
}

#[test]
fn an_async_call_inside_a_threads_item_runs_on_that_thread() {
    // Rayon worker threads are not in a runtime: the nested blocking form works there.
    let r = parmap!(
        |k: u64| parmap!(|i: u64| async move { i * k }, 0..4u64).iter().sum::<u64>(),
        0..8u64;
        engine = "threads", workers = 2
    );
    assert_eq!(r, (0..8u64).map(|k| 6 * k).collect::<Vec<_>>());
}

#[test]
fn parmap_async_is_send_when_its_futures_are() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    let v: Vec<u64> = (0..8).collect();
    // Owned inputs moved into an outer `async move` block: a `'static + Send` task, as
    // `tokio::spawn` on a multi-thread runtime needs.
    let task =
        assert_send(async move { parmap_async!(|x: u64| slow(x, 1), v; concurrency = 3).await });
    assert_eq!(paused(task), (0..8).collect::<Vec<_>>());
}

/// Run by [`async_functions_ignore_parfor_engine`] in a child process with `PARFOR_ENGINE`
/// set; does nothing otherwise.
#[test]
fn child_async_call_under_parfor_engine() {
    if std::env::var_os("PARFOR_ASYNC_CHILD").is_none() {
        return;
    }
    let r = parmap!(|i: u64| slow(i, 1), 0..10u64; concurrency = 2);
    assert_eq!(r, (0..10).collect::<Vec<_>>());
    println!("async call done");
}

#[test]
fn async_functions_ignore_parfor_engine() {
    for engine in ["serial", "threads", "fork", "not-an-engine"] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_async_call_under_parfor_engine", "--nocapture"])
            .env("PARFOR_ASYNC_CHILD", "1")
            .env("PARFOR_ENGINE", engine)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed after a generous deadline rather than hanging the suite.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{engine}: the child hung");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("async call done"), "{engine}: {text}");
    }
}

/// What the child process runs: an async function that panics in two of its items (the
/// first one before its first `.await`, the second after it), collected, with
/// `RUST_BACKTRACE=1`.
fn child_collects_async_panics() {
    async fn fragile(i: u32) -> u32 {
        assert!(i != 1, "item {i} panics\nwith a second line");
        sleep(Duration::from_millis(1)).await;
        assert!(i != 6, "item {i} panics\nwith a second line");
        i
    }
    let got: Vec<Result<u32, TaskError>> = parmap!(fragile, 0..8u32; on_error = "collect");
    println!("async: {} failed", got.iter().filter(|r| r.is_err()).count());
}

#[test]
fn a_collected_async_panic_prints_one_line() {
    if std::env::var_os("PARFOR_TEST_ASYNC_CHILD").is_some() {
        return child_collects_async_panics();
    }
    let (status, stdout, stderr) = common::run_child(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "a_collected_async_panic_prints_one_line"])
            .args(["--test-threads=1", "--nocapture"])
            .env("PARFOR_TEST_ASYNC_CHILD", "1")
            .env("RUST_BACKTRACE", "1")
            .env_remove("PARFOR_ENGINE"),
    );
    assert!(status.success(), "the child failed:\n{stdout}{stderr}");
    assert!(stdout.contains("async: 2 failed"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "stderr:\n{stderr}");
    for l in &lines {
        assert!(l.contains("(collected as its TaskError)") && l.contains("panics [...]"), "{l}");
    }
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}
