//! The threads engine: blocks run on rayon worker threads, one task per thread claiming the
//! next block from a shared counter (OpenMP's dynamic schedule). The default worker count
//! uses rayon's global pool; an explicit count uses a pool of exactly that many threads,
//! built on first use and kept for the program's life.

use super::Backend;
use crate::job::{Job, Run};
use crate::plan::Plan;
use crate::worker::as_worker;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Threads;

impl Backend for Threads {
    fn execute(&self, job: &dyn Job, plan: &Plan, run: &Run) {
        // One worker or one block: nothing to share out, so no hand-off to the pool (about
        // 15 us) either.
        if run.workers.count == 1 || plan.blocks() == 1 {
            return super::serial::run_in_caller(job, plan);
        }
        // OpenMP's dynamic schedule: one task per thread, each claiming the next block from a
        // shared counter until none is left. A claim is one atomic add, so the per-block cost
        // stays a few nanoseconds, where splitting the block range the rayon way costs a
        // task hand-out (about a microsecond) per split; balance is per block either way.
        let next = AtomicUsize::new(0);
        let tasks = run.workers.count.min(plan.blocks());
        let body = || {
            rayon::scope(|s| {
                for _ in 0..tasks {
                    s.spawn(|_| {
                        let id = rayon::current_thread_index().unwrap_or(0);
                        as_worker(id, || {
                            while !job.failures().stopped() {
                                let b = next.fetch_add(1, Ordering::Relaxed);
                                if b >= plan.blocks() {
                                    break;
                                }
                                job.run(b, plan.range(b));
                            }
                        });
                    });
                }
            });
        };
        match pool(run.workers.explicit.then_some(run.workers.count)) {
            Some(pool) => pool.install(body),
            None => body(),
        }
    }
}

/// The dedicated pool for `count` threads (`None`: use the global pool, also when `count`
/// equals its size).
fn pool(count: Option<usize>) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let count = count?;
    if count == rayon::current_num_threads() && rayon::current_thread_index().is_none() {
        return None;
    }
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == count) {
        return Some(Arc::clone(p));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(count)
        .thread_name(move |i| format!("parfor-{count}-{i}"))
        .build()
        .unwrap_or_else(|e| panic!("parfor: cannot start {count} worker threads: {e}"));
    let pool = Arc::new(pool);
    pools.push((count, Arc::clone(&pool)));
    Some(pool)
}
