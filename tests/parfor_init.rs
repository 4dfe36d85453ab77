//! `#[parfor(init(var = expr))]`: per-worker state, made exactly once by every worker (thread
//! or worker process) that runs items, and used mutably by the body.

mod common;

use common::{ENGINES, WORKERS};
use parfor::{Engine, parfor};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

static MADE: AtomicU64 = AtomicU64::new(0);

/// A worker's state: who made it, and a scratch buffer.
struct Scratch {
    made_by: (u32, String),
    serial: u64,
    buf: Vec<u64>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            made_by: (std::process::id(), format!("{:?}", std::thread::current().id())),
            serial: MADE.fetch_add(1, Ordering::Relaxed),
            buf: Vec::new(),
        }
    }
}

type Seen = ((u32, String), u64, (u32, String));

#[parfor(engine = engine, workers = workers)]
fn squares(engine: Engine, workers: usize, n: u64) -> (Vec<u64>, Vec<Seen>) {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    #[parfor(init(scratch = Scratch::new()), chunk = 3)]
    for i in 0..n {
        scratch.buf.clear();
        scratch.buf.extend([i, i]);
        out.push(scratch.buf[0] * scratch.buf[1]);
        let here = (std::process::id(), format!("{:?}", std::thread::current().id()));
        seen.push((scratch.made_by.clone(), scratch.serial, here));
    }
    (out, seen)
}

#[test]
fn each_worker_makes_its_state_exactly_once() {
    for &e in ENGINES {
        for &w in WORKERS {
            let (out, seen) = squares(e, w, 40);
            assert_eq!(out, (0..40u64).map(|i| i * i).collect::<Vec<_>>(), "{e:?} x{w}");
            // Every worker that ran items used one state, made by itself.
            let mut per_worker: BTreeMap<&(u32, String), BTreeSet<(u32, u64)>> = BTreeMap::new();
            for (made_by, serial, here) in &seen {
                assert_eq!(made_by, here, "{e:?} x{w}: a state crossed workers");
                per_worker.entry(here).or_default().insert((made_by.0, *serial));
            }
            for (worker, states) in &per_worker {
                assert_eq!(states.len(), 1, "{e:?} x{w}: {worker:?} made {states:?}");
            }
            assert!(per_worker.len() <= w.max(1), "{e:?} x{w}: {} workers", per_worker.len());
            if e == Engine::Serial || w == 1 {
                assert_eq!(per_worker.len(), 1, "{e:?} x{w}");
            }
        }
    }
}

#[parfor]
fn sum_with_rng(seed: u64, n: u64) -> u64 {
    let mut total = 0u64;
    #[parfor(init(state = seed), engine = "threads", workers = 2)]
    for i in 0..n {
        // Scratch use only: the result does not depend on which worker ran the item.
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(i);
        total += i;
    }
    total
}

#[test]
fn a_per_worker_variable_is_a_mutable_reference() {
    assert_eq!(sum_with_rng(7, 100), 4950);
}
