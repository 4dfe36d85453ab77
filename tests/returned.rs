//! Functions that return `Result`: with `on_error = "collect"` an `Err(e)` fails its item with
//! `Cause::Returned(e.to_string())`, on every engine, in `parmap!` and `parmap_iter!`; with
//! `on_error = "fail"` the `Result`s are values. A child process checks what collected
//! failures print on stderr.

mod common;

use common::{ENGINES, WORKERS, run_child};
use parfor::{Cause, TaskError, parmap, parmap_iter};
use std::num::ParseIntError;
use std::process::Command;

const WORDS: [&str; 6] = ["4", "x", "15", "", "16", "7y"];

fn parse(s: &str) -> Result<u32, ParseIntError> {
    s.parse()
}

/// What a collecting call over `WORDS` must give: the parsed numbers, and for the others
/// the parse error's display (computed by `str::parse`, not by parfor).
fn want() -> Vec<Result<u32, String>> {
    WORDS.iter().map(|w| w.parse::<u32>().map_err(|e| e.to_string())).collect()
}

fn check<T: PartialEq<u32> + std::fmt::Debug>(got: &[Result<T, TaskError>], what: &str) {
    assert_eq!(got.len(), WORDS.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want()).enumerate() {
        match (g, w) {
            (Ok(g), Ok(w)) => assert!(*g == w, "{what} item {i}: {g:?} != {w}"),
            (Err(e), Err(msg)) => {
                assert_eq!(e.index(), i, "{what}");
                assert_eq!(e.cause(), &Cause::Returned(msg.clone()), "{what}");
                assert_eq!(e.to_string(), format!("item {i} failed: returned an error: {msg}"));
            }
            (g, w) => panic!("{what} item {i}: got {g:?}, want {w:?}"),
        }
    }
}

/// A result that the fork engine encodes (not plain old data).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Num(String);

impl PartialEq<u32> for Num {
    fn eq(&self, n: &u32) -> bool {
        self.0 == n.to_string()
    }
}

#[test]
fn collect_turns_returned_errors_into_task_errors() {
    for &engine in ENGINES {
        for &workers in WORKERS {
            let what = format!("{engine:?} workers={workers}");
            // Plain-old-data results (the fork engine's raw path) ...
            let got: Vec<Result<u32, TaskError>> =
                parmap!(parse, WORDS; on_error = "collect", engine = engine, workers = workers);
            check(&got, &what);
            // ... encoded ones, from a closure, one item per block.
            let got: Vec<Result<Num, TaskError>> = parmap!(
                |s: &str| s.parse::<u32>().map(|n| Num(n.to_string())), WORDS;
                on_error = "collect", engine = engine, workers = workers, chunk = 1
            );
            check(&got, &what);
            // A lazy single source.
            let got = parmap!(
                parse, WORDS.iter().copied();
                on_error = "collect", engine = engine, workers = workers
            );
            check(&got, &format!("{what} lazy"));
        }
    }
}

#[test]
fn a_product_names_each_sources_index() {
    let divisors = [1u32, 0, 3];
    for &engine in ENGINES {
        let got = parmap!(
            |n: u32, d: u32| n.checked_div(d).ok_or_else(|| format!("{n} / 0")),
            [6u32, 9], divisors;
            on_error = "collect", engine = engine, workers = 2
        );
        assert_eq!(got.len(), 6);
        for (i, r) in got.iter().enumerate() {
            let (n, d) = ([6u32, 9][i / 3], divisors[i % 3]);
            match r {
                Ok(q) => assert_eq!((d != 0, *q), (true, n / d), "{engine:?}"),
                Err(e) => {
                    assert_eq!((d, e.indices()), (0, &[i / 3, 1][..]), "{engine:?}");
                    assert_eq!(e.cause(), &Cause::Returned(format!("{n} / 0")));
                }
            }
        }
    }
}

#[test]
fn streams_collect_returned_errors_too() {
    for &engine in ENGINES {
        let got: Vec<Result<u32, TaskError>> =
            parmap_iter!(parse, WORDS; on_error = "collect", engine = engine, workers = 2)
                .collect();
        check(&got, &format!("{engine:?} stream"));
        let mut tagged: Vec<(usize, Result<u32, TaskError>)> = parmap_iter!(
            parse, WORDS; on_error = "collect", ordered = false, engine = engine, workers = 2
        )
        .collect();
        tagged.sort_by_key(|t| t.0);
        let got: Vec<_> = tagged.into_iter().map(|t| t.1).collect();
        check(&got, &format!("{engine:?} unordered stream"));
    }
}

#[test]
fn fail_mode_keeps_results_as_values() {
    for &engine in ENGINES {
        // `on_error = "fail"`: the `Result`s are the items' values, errors included.
        let got: Vec<Result<u32, String>> =
            parmap!(|s: &str| s.parse::<u32>().map_err(|e| e.to_string()), WORDS; engine = engine);
        assert_eq!(got, want(), "{engine:?}");
    }
    // An error type without `Display` is a value in `collect` mode too.
    #[derive(Debug, PartialEq)]
    struct Odd(u32);
    let got = parmap!(
        |n: u32| if n % 2 == 1 { Err(Odd(n)) } else { Ok(n) }, 0..3u32;
        on_error = "collect", engine = "threads"
    );
    assert_eq!(got, vec![Ok(Ok(0)), Ok(Err(Odd(1))), Ok(Ok(2))]);
    // To keep a `Display` error as a value while collecting panics: wrap the result.
    let got = parmap!(|s: &str| (parse(s),), WORDS; on_error = "collect", engine = "threads");
    assert_eq!(got[1].as_ref().map(|r| r.0.is_err()), Ok(true));
}

/// What the child process runs: panics and returned errors collected on the fork engine
/// (and the threads engine), with `RUST_BACKTRACE=1`.
fn child_collects() {
    let f = |i: u32| -> Result<u32, String> {
        match i % 4 {
            1 => panic!("item {i} panics\nwith a second line"),
            3 => Err(format!("item {i} returns an error")),
            _ => Ok(i),
        }
    };
    for engine in [parfor::Engine::Fork, parfor::Engine::Threads] {
        let got = parmap!(f, 0..8u32; on_error = "collect", engine = engine, workers = 2);
        let failed = got.iter().filter(|r| r.is_err()).count();
        println!("{engine:?}: {failed} failed");
        let failed = parmap_iter!(f, 0..8u32; on_error = "collect", engine = engine, workers = 2)
            .filter(|r| r.is_err())
            .count();
        println!("{engine:?} stream: {failed} failed");
    }
}

#[test]
fn collected_failures_print_one_line_per_panic_and_none_per_error() {
    if std::env::var_os("PARFOR_TEST_RETURNED_CHILD").is_some() {
        return child_collects();
    }
    let (status, stdout, stderr) = run_child(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "collected_failures_print_one_line_per_panic_and_none_per_error"])
            .args(["--test-threads=1", "--nocapture"])
            .env("PARFOR_TEST_RETURNED_CHILD", "1")
            .env("RUST_BACKTRACE", "1")
            .env_remove("PARFOR_ENGINE"),
    );
    assert!(status.success(), "the child failed:\n{stdout}{stderr}");
    for run in ["Fork", "Threads", "Fork stream", "Threads stream"] {
        assert!(stdout.contains(&format!("{run}: 4 failed")), "{run}: {stdout}");
    }
    // Two panicking items per call, one line each; the returned errors print nothing.
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 8, "stderr:\n{stderr}");
    for l in &lines {
        assert!(l.contains("(collected as its TaskError)") && l.contains("panics [...]"), "{l}");
        assert!(!l.contains("returns an error"), "{l}");
    }
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}
