//! Which engine and how many workers a `parmap!` call uses: the call's option, then
//! `parfor::set_default_engine`, then `PARFOR_ENGINE` / `PARFOR_WORKERS`, then threads.
//!
//! Every test here takes [`LOCK`]: the program default is global. The environment cases
//! re-run this test binary with the variables set (`child_*` tests do nothing otherwise).

use parfor::{Engine, parmap, worker_id};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::thread::ThreadId;

static LOCK: Mutex<()> = Mutex::new(());

/// Serializes the tests of this file and resets the program default engine, also when a
/// test fails.
struct Guard(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Drop for Guard {
    fn drop(&mut self) {
        parfor::clear_default_engine();
    }
}

fn lock() -> Guard {
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    parfor::clear_default_engine();
    Guard(g)
}

/// The threads each item ran on, for a call without an engine option.
fn threads_of_default_call() -> Vec<ThreadId> {
    parmap!(|_i: usize| std::thread::current().id(), 0..64usize; workers = 2)
}

/// Whether every item ran on the calling thread (the serial engine), or none did (the
/// threads engine with two workers runs items on its pool).
fn ran_serially(ids: &[ThreadId]) -> bool {
    let me = std::thread::current().id();
    if ids.iter().all(|id| *id == me) {
        return true;
    }
    assert!(ids.iter().all(|id| *id != me), "items ran both on the caller and elsewhere");
    false
}

/// Runs the child test `name` of this binary with `env` set; its exit status and output.
fn rerun(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for var in ["PARFOR_ENGINE", "PARFOR_WORKERS", "RAYON_NUM_THREADS", "PARFOR_CHILD"] {
        cmd.env_remove(var);
    }
    cmd.env("PARFOR_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
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

#[test]
fn option_beats_program_default_beats_built_in_default() {
    let _g = lock();
    if std::env::var_os("PARFOR_ENGINE").is_none() {
        assert!(!ran_serially(&threads_of_default_call()), "the built-in default is threads");
    }
    parfor::set_default_engine(Engine::Serial);
    assert!(ran_serially(&threads_of_default_call()));
    let ids = parmap!(|_i: usize| std::thread::current().id(), 0..64usize; engine = "threads", workers = 2);
    assert!(!ran_serially(&ids), "the call's option wins over the program default");
    parfor::set_default_engine(Engine::Threads);
    let ids = parmap!(|_i: usize| std::thread::current().id(), 0..64usize; engine = "serial", workers = 2);
    assert!(ran_serially(&ids));
    parfor::clear_default_engine();
    assert_eq!(worker_id(), None);
}

#[test]
fn child_env_engine_serial() {
    let _g = lock();
    if !in_child() {
        return;
    }
    assert!(ran_serially(&threads_of_default_call()));
    // The call's option wins over the environment.
    let ids = parmap!(|_i: usize| std::thread::current().id(), 0..64usize; engine = "threads", workers = 2);
    assert!(!ran_serially(&ids));
}

#[test]
fn child_program_default_beats_env() {
    let _g = lock();
    if !in_child() {
        return;
    }
    parfor::set_default_engine(Engine::Threads);
    assert!(!ran_serially(&threads_of_default_call()));
}

#[test]
fn child_env_workers() {
    let _g = lock();
    if !in_child() {
        return;
    }
    assert_eq!(parfor::default_workers().unwrap(), 3);
    let ids = parmap!(|_i: usize| worker_id().unwrap(), 0..300usize; engine = "threads", chunk = 1);
    assert!(ids.iter().all(|&w| w < 3), "{ids:?}");
}

#[test]
fn child_env_invalid() {
    let _g = lock();
    if !in_child() {
        return;
    }
    let _ = parmap!(|i: usize| i, 0..10usize);
}

#[test]
fn environment_selects_the_engine() {
    let _g = lock();
    let (ok, out) = rerun("child_env_engine_serial", &[("PARFOR_ENGINE", "serial")]);
    assert!(ok, "{out}");
    let (ok, out) = rerun("child_program_default_beats_env", &[("PARFOR_ENGINE", "serial")]);
    assert!(ok, "{out}");
    let (ok, out) = rerun("child_env_workers", &[("PARFOR_WORKERS", "3")]);
    assert!(ok, "{out}");
}

#[test]
fn child_checks_can_fail() {
    let _g = lock();
    // Without the variable the child's assertions fail: the re-run cases are not vacuous.
    let (ok, _) = rerun("child_env_engine_serial", &[]);
    assert!(!ok);
    let (ok, _) = rerun("child_env_workers", &[("PARFOR_WORKERS", "4")]);
    assert!(!ok);
}

#[test]
fn invalid_environment_is_reported() {
    let _g = lock();
    let (ok, out) = rerun("child_env_invalid", &[("PARFOR_ENGINE", "gpu")]);
    assert!(!ok);
    assert!(
        out.contains(
            "invalid PARFOR_ENGINE value `gpu`; expected one of `serial`, `threads`, `fork`"
        ),
        "{out}"
    );
    let (ok, out) = rerun("child_env_invalid", &[("PARFOR_WORKERS", "0")]);
    assert!(!ok);
    assert!(
        out.contains("invalid PARFOR_WORKERS value `0`; expected a whole number of at least 1"),
        "{out}"
    );
}
