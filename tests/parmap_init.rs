//! `parmap!(f, xs; init = make_state)`: `make_state()` runs exactly once per worker (thread
//! or worker process) that runs items of the call, and `f` gets that worker's state as `&mut`.
//!
//! Every `make_state()` call writes a file (so calls made in fork worker processes are
//! counted too), and every item returns who ran it and which state it used.

mod common;

use common::{ENGINES, WORKERS};
use parfor::{Engine, parmap};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A worker: its process and a number for its thread (unique within the process; a fork
/// worker's copy of the number is told apart by its pid).
type Who = (u32, u64);

fn who() -> Who {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local!(static ID: u64 = NEXT.fetch_add(1, Ordering::Relaxed));
    (std::process::id(), ID.with(|id| *id))
}

/// A fresh directory for one call's log of `make_state()` calls.
fn log_dir(tag: &str) -> PathBuf {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "parfor-init-{}-{tag}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The workers that called `make_state()`, with how many times each did.
fn inits(dir: &Path) -> BTreeMap<Who, usize> {
    let mut made = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(rest) = name.strip_prefix("init-") else { continue };
        let mut parts = rest.split('-').map(|p| p.parse::<u64>().unwrap());
        let (pid, thread) = (parts.next().unwrap() as u32, parts.next().unwrap());
        *made.entry((pid, thread)).or_insert(0) += 1;
    }
    made
}

/// A worker's state: who made it, and a scratch buffer.
struct State {
    made_by: Who,
    buf: Vec<u64>,
}

impl State {
    fn new(dir: &Path) -> State {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let me = who();
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        std::fs::write(dir.join(format!("init-{}-{}-{n}", me.0, me.1)), b"").unwrap();
        State { made_by: me, buf: Vec::new() }
    }
}

/// What each item returns: its result, who ran it and whose state it used.
type Seen = (u64, Who, Who);

fn square(s: &mut State, x: &u64) -> Seen {
    // Scratch use only: the result does not depend on what the state held before.
    s.buf.clear();
    s.buf.extend([*x, *x]);
    (s.buf[0] * s.buf[1], who(), s.made_by)
}

/// Checks that every worker that ran items made exactly one state, used it for every item it
/// ran, and that nobody else made one.
fn check_once_per_worker(what: &str, seen: &[Who], used: &[Who], made: &BTreeMap<Who, usize>) {
    for (ran, state) in seen.iter().zip(used) {
        assert_eq!(ran, state, "{what}: an item used another worker's state");
    }
    let ran: BTreeSet<Who> = seen.iter().copied().collect();
    let made_by: BTreeSet<Who> = made.keys().copied().collect();
    assert_eq!(ran, made_by, "{what}: the workers that ran items are those that made a state");
    for (w, n) in made {
        assert_eq!(*n, 1, "{what}: worker {w:?} made {n} states");
    }
}

#[test]
fn make_state_runs_once_per_worker_that_ran_items() {
    let xs: Vec<u64> = (0..60).collect();
    for &e in ENGINES {
        for &w in WORKERS {
            let dir = log_dir("map");
            let out = parmap!(square, &xs; init = || State::new(&dir), engine = e, workers = w,
                              chunk = 4);
            let what = format!("{e:?} x{w}");
            let values: Vec<u64> = out.iter().map(|o| o.0).collect();
            assert_eq!(values, xs.iter().map(|x| x * x).collect::<Vec<_>>(), "{what}");
            let ran: Vec<Who> = out.iter().map(|o| o.1).collect();
            let used: Vec<Who> = out.iter().map(|o| o.2).collect();
            check_once_per_worker(&what, &ran, &used, &inits(&dir));
            let workers: BTreeSet<Who> = ran.iter().copied().collect();
            assert!(workers.len() <= w, "{what}: {} workers", workers.len());
            if e == Engine::Serial || w == 1 {
                assert_eq!(workers.len(), 1, "{what}");
            }
            if e == Engine::Fork {
                assert!(ran.iter().all(|r| r.0 != std::process::id()), "{what}: ran in the parent");
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}

#[test]
fn collecting_calls_and_several_sources_keep_one_state_per_worker() {
    let xs: Vec<u64> = (0..12).collect();
    for &e in ENGINES {
        let dir = log_dir("collect");
        // A closure with unannotated parameters: the state, then one per source.
        let out = parmap!(|s, a, b| {
            let s: &mut State = s;
            assert!(*a != 5 || b != 2, "item ({a}, {b}) fails");
            (a * 10 + b as u64, who(), s.made_by)
        }, &xs, 0..3usize; init = || State::new(&dir), engine = e, workers = 2,
           on_error = "collect");
        let what = format!("{e:?}");
        let mut ran = Vec::new();
        let mut used = Vec::new();
        for (i, r) in out.iter().enumerate() {
            match r {
                Ok((v, by, state)) => {
                    assert_eq!(*v, (i / 3 * 10 + i % 3) as u64, "{what}");
                    ran.push(*by);
                    used.push(*state);
                }
                Err(err) => {
                    assert_eq!(i, 5 * 3 + 2, "{what}: {err}");
                    assert!(err.to_string().contains("item (5, 2) fails"), "{what}: {err}");
                }
            }
        }
        assert_eq!(ran.len(), out.len() - 1, "{what}");
        // A panicking item does not cost its worker its state.
        check_once_per_worker(&what, &ran, &used, &inits(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

fn count(n: &mut u64, _x: u64) -> u64 {
    *n += 1;
    *n
}

#[test]
fn state_carries_from_item_to_item_of_one_worker() {
    // One worker: every item sees the state the previous one left.
    for &e in ENGINES {
        let out = parmap!(count, 0..10u64; init = || 0u64, engine = e, workers = 1);
        assert_eq!(out, (1..=10).collect::<Vec<u64>>(), "{e:?}");
    }
    // Several workers: each worker's counts run 1, 2, 3, .. over the items it ran, so they
    // sum to the number of items only per worker; the total of the last counts is the
    // number of items.
    let out = parmap!(|n: &mut u64, x: u64| { *n += 1; (x, *n, who()) }, 0..100u64;
                      init = || 0u64, engine = "threads", workers = 3);
    let mut last: BTreeMap<Who, u64> = BTreeMap::new();
    for (_, n, by) in &out {
        let prev = last.insert(*by, *n).unwrap_or(0);
        assert!(*n > prev, "{by:?}: {n} after {prev}");
    }
    assert_eq!(last.values().sum::<u64>(), 100);
}

#[test]
fn a_lazy_looking_single_source_takes_the_state_too() {
    let xs: Vec<u64> = (0..20).collect();
    let dir = log_dir("single");
    // `xs.iter()` is a slice iterator: random access, no stream.
    let out = parmap!(square, xs.iter(); init = || State::new(&dir), engine = "threads",
                      workers = 2);
    assert_eq!(
        out.iter().map(|o| o.0).collect::<Vec<_>>(),
        (0..20u64).map(|x| x * x).collect::<Vec<_>>()
    );
    let ran: Vec<Who> = out.iter().map(|o| o.1).collect();
    let used: Vec<Who> = out.iter().map(|o| o.2).collect();
    check_once_per_worker("single", &ran, &used, &inits(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fork worker that dies in an item is replaced; the replacement makes its own state.
#[cfg(unix)]
#[test]
fn a_replacement_fork_worker_makes_its_own_state() {
    let xs: Vec<u64> = (0..40).collect();
    for w in [1, 2] {
        let dir = log_dir("replace");
        let crash = dir.join("crashed");
        let out = parmap!(|s: &mut State, x: &u64| {
            if *x == 13 {
                std::fs::write(&crash, std::process::id().to_string()).unwrap();
                // SAFETY: raising a signal in this process has no memory-safety preconditions.
                unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            }
            square(s, x)
        }, &xs; init = || State::new(&dir), engine = "fork", workers = w, chunk = 40,
           on_error = "collect");
        let what = format!("x{w}");
        let dead: u32 = std::fs::read_to_string(&crash).unwrap().parse().unwrap();
        let mut ran = Vec::new();
        let mut used = Vec::new();
        for (i, r) in out.iter().enumerate() {
            match r {
                Ok((v, by, state)) => {
                    assert_eq!(*v, (i * i) as u64, "{what}");
                    ran.push(*by);
                    used.push(*state);
                }
                Err(e) => {
                    assert_eq!(i, 13, "{what}: {e}");
                    assert!(e.to_string().contains("signal"), "{what}: {e}");
                }
            }
        }
        // One block of 40 items: after item 13 its worker is gone, so the rest of the block
        // ran in a replacement process.
        let after: BTreeSet<u32> = ran[13..].iter().map(|r| r.0).collect();
        assert!(!after.contains(&dead), "{what}: items after the crash ran in the dead worker");
        assert_eq!(after.len(), 1, "{what}: {after:?}");
        let mut made = inits(&dir);
        // The dead worker made its state once too; its results never arrived.
        let dead_made: Vec<(Who, usize)> =
            made.iter().filter(|(w, _)| w.0 == dead).map(|(w, n)| (*w, *n)).collect();
        assert_eq!(dead_made.len(), 1, "{what}: {made:?}");
        assert_eq!(dead_made[0].1, 1, "{what}: {made:?}");
        made.remove(&dead_made[0].0);
        check_once_per_worker(&what, &ran, &used, &made);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
