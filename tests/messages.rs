//! What a user sees: configuration errors name the user's call (file and line), engine names
//! are accepted in any case, `progress = true` writes plain lines when stderr is not a
//! terminal, and a collected panic prints one line. Each case re-runs this test binary as a
//! child process with the environment it needs and reads the child's output.

mod common;

use parfor::{Config, Engine, TaskError, parfor, parmap};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the child test `name` of this binary with `env` set, killed after a generous
/// deadline instead of hanging the suite; its exit status and its stdout and stderr.
fn rerun(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for var in ["PARFOR_ENGINE", "PARFOR_WORKERS", "RUST_BACKTRACE", "PARFOR_CHILD"] {
        cmd.env_remove(var);
    }
    cmd.env("PARFOR_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        assert!(text.contains("1 passed"), "the child ran no test: {text}");
    }
    (out.status.success(), text)
}

fn in_child() -> bool {
    std::env::var_os("PARFOR_CHILD").is_some()
}

/// The line of this file where the child's `parmap!` call is.
const PARMAP_LINE: u32 = line!() + 7;

#[test]
fn child_parmap_default_engine() {
    if !in_child() {
        return;
    }
    let r = parmap!(|i: usize| i + 1, 0..10usize);
    assert_eq!(r[9], 10);
}

#[parfor]
fn squares(out: &mut [u64]) {
    #[parfor]
    for i in 0..out.len() {
        out[i] = (i * i) as u64;
    }
}

#[test]
fn child_parfor_default_engine() {
    if !in_child() {
        return;
    }
    let mut out = vec![0u64; 10];
    squares(&mut out);
    assert_eq!(out[3], 9);
}

#[test]
fn a_bad_engine_names_the_users_call() {
    let (ok, out) = rerun("child_parmap_default_engine", &[("PARFOR_ENGINE", "gpu")]);
    assert!(!ok, "{out}");
    assert!(out.contains("invalid PARFOR_ENGINE value `gpu`"), "{out}");
    let at = format!("tests/messages.rs:{PARMAP_LINE}:");
    assert!(out.contains(&at), "the panic names the parmap! call ({at}): {out}");
    assert!(!out.contains("parfor-runtime/src"), "{out}");

    let (ok, out) = rerun("child_parfor_default_engine", &[("PARFOR_WORKERS", "many")]);
    assert!(!ok, "{out}");
    assert!(out.contains("invalid PARFOR_WORKERS value `many`"), "{out}");
    assert!(out.contains("tests/messages.rs:"), "the panic names the #[parfor] loop: {out}");
    assert!(!out.contains("parfor-runtime/src"), "{out}");
}

#[test]
fn engine_names_in_any_case() {
    for name in ["Fork", "SERIAL", "Threads"] {
        let (ok, out) = rerun("child_parmap_default_engine", &[("PARFOR_ENGINE", name)]);
        assert!(ok, "PARFOR_ENGINE={name}: {out}");
    }
    assert_eq!("Fork".parse::<Engine>().unwrap(), Engine::Fork);
}

#[test]
fn child_progress() {
    if !in_child() {
        return;
    }
    let engine: Engine = std::env::var("CHILD_ENGINE").unwrap().parse().unwrap();
    let r = parfor::with(
        Config::new().label("sweep"),
        || parmap!(|i: u32| { std::thread::sleep(Duration::from_millis(2)); i }, 0..200u32; engine = engine, chunk = 5, progress = true),
    );
    assert_eq!(r.len(), 200);
    let r = parmap!(|i: u32| i, 0..50u32; engine = engine, progress = true);
    assert_eq!(r.len(), 50);
}

#[test]
fn progress_lines_when_stderr_is_not_a_terminal() {
    for &engine in common::ENGINES {
        let (ok, out) = rerun("child_progress", &[("CHILD_ENGINE", engine.name())]);
        assert!(ok, "{engine}: {out}");
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("parfor: sweep: ")).collect();
        assert!(lines.len() >= 2 && lines.len() <= 12, "{engine}: {lines:?}");
        assert!(lines.last().unwrap().contains("200/200 items (100%)"), "{engine}: {lines:?}");
        for l in &lines {
            assert!(l.contains(" items (") && l.contains("s elapsed"), "{engine}: {l}");
        }
        assert!(out.contains("parfor: progress: 50/50 items (100%)"), "{engine}: {out}");
    }
}

fn fragile(i: u32) -> u32 {
    assert!(i % 4 != 1, "item {i} is unlucky\nsecond line of the message");
    i
}

#[test]
fn child_collect() {
    if !in_child() {
        return;
    }
    let engine: Engine = std::env::var("CHILD_ENGINE").unwrap().parse().unwrap();
    let r: Vec<Result<u32, TaskError>> =
        parmap!(fragile, 0..12u32; engine = engine, workers = 2, on_error = "collect");
    assert_eq!(r.iter().filter(|x| x.is_err()).count(), 3);
}

#[test]
fn a_collected_panic_prints_one_line() {
    for engine in [Engine::Serial, Engine::Threads] {
        let env = [("CHILD_ENGINE", engine.name()), ("RUST_BACKTRACE", "1")];
        let (ok, out) = rerun("child_collect", &env);
        assert!(ok, "{engine}: {out}");
        let reports: Vec<&str> = out.lines().filter(|l| l.contains("unlucky")).collect();
        assert_eq!(reports.len(), 3, "{engine}: {out}");
        for r in reports {
            assert!(r.starts_with("parfor: item panicked at tests/messages.rs:"), "{r}");
            assert!(r.ends_with("[...]"), "{r}");
        }
        assert!(!out.contains("second line"), "{engine}: {out}");
        assert!(!out.contains("stack backtrace"), "{engine}: {out}");
    }
}
