//! The threads engine: blocks run on rayon worker threads, one task per thread claiming the
//! next block from a shared counter (OpenMP's dynamic schedule).
//!
//! Which threads: a call without a `workers` option runs on the current rayon pool (the
//! user's pool inside its `ThreadPool::install`, the pool of the item that makes a nested
//! call, else rayon's global pool). A `workers` option (or `PARFOR_WORKERS`, outside any rayon
//! pool) runs on a pool of parfor's own, of `min(workers, blocks, cap)` threads, where the cap
//! is [`thread_cap`]: a call never starts more threads than it has blocks or than the cap,
//! whatever it asks for. Pools are reused: a pool of `s` threads serves every call that runs
//! at most `s` tasks and whose clamped `workers` is at least `s`. Only the [`CACHED_POOLS`]
//! most recently used pools are kept; an older one is dropped, and its threads exit once the
//! calls using it are done.

use super::Backend;
use crate::config::{Workers, WorkersFrom, thread_cap};
use crate::job::{Job, Run};
use crate::plan::Plan;
use crate::worker::as_worker;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Threads;

impl Backend for Threads {
    fn execute(&self, job: &dyn Job, plan: &Plan, run: &Run) {
        match place(run.workers, plan.blocks()) {
            // One worker or one block: nothing to share out, so no hand-off to a pool (about
            // 15 us) either.
            Place::Caller => super::serial::run_in_caller(job, plan),
            Place::Current(tasks) => run_tasks(job, plan, tasks),
            Place::Pool(pool, tasks) => pool.install(|| run_tasks(job, plan, tasks)),
        }
    }
}

/// Where a call's blocks run.
enum Place {
    /// In the calling thread, in order.
    Caller,
    /// As this many tasks on the current rayon pool.
    Current(usize),
    /// As this many tasks on one of parfor's pools.
    Pool(Arc<rayon::ThreadPool>, usize),
}

/// Chooses where a call with `workers` runs its `blocks` blocks.
fn place(workers: Workers, blocks: usize) -> Place {
    if blocks <= 1 {
        return Place::Caller;
    }
    let in_pool = rayon::current_thread_index().is_some();
    let own_pool = match workers.from {
        WorkersFrom::Option | WorkersFrom::Scoped => true,
        WorkersFrom::Env | WorkersFrom::Program => !in_pool,
        WorkersFrom::Default => false,
    };
    if !own_pool {
        // Outside any pool this is rayon's global pool (started on first use with one thread
        // per core, or `RAYON_NUM_THREADS`), shared with the program's other rayon code; a
        // default of one worker does not start it.
        if !in_pool && workers.count == 1 {
            return Place::Caller;
        }
        let tasks = rayon::current_num_threads().min(blocks);
        return if tasks <= 1 { Place::Caller } else { Place::Current(tasks) };
    }
    let want = workers.count.min(thread_cap());
    let tasks = want.min(blocks);
    if tasks <= 1 {
        return Place::Caller;
    }
    // Already on a pool that fits (a nested call with the same `workers`, or a user's pool of
    // that size): use it rather than blocking this thread on another pool.
    if in_pool && (tasks..=want).contains(&rayon::current_num_threads()) {
        return Place::Current(tasks);
    }
    Place::Pool(POOLS.get(tasks, want), tasks)
}

/// OpenMP's dynamic schedule on the current pool: `tasks` tasks, each claiming the next block
/// from a shared counter until none is left. A claim is one atomic add, so the per-block cost
/// stays a few nanoseconds, where splitting the block range the rayon way costs a task
/// hand-out (about a microsecond) per split; balance is per block either way.
fn run_tasks(job: &dyn Job, plan: &Plan, tasks: usize) {
    let next = AtomicUsize::new(0);
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
}

/// How many of parfor's pools are kept for reuse (the most recently used ones), so at most
/// this many times [`thread_cap`] idle threads stay alive between calls.
const CACHED_POOLS: usize = 4;

/// parfor's pools, least recently used first.
static POOLS: Pools = Pools(Mutex::new(Vec::new()));

struct Pools(Mutex<Vec<Arc<rayon::ThreadPool>>>);

impl Pools {
    /// A pool of between `tasks` and `want` threads: the most recently used one that fits,
    /// else a new one of `tasks` threads (which evicts the least recently used pool when
    /// [`CACHED_POOLS`] are kept already).
    fn get(&self, tasks: usize, want: usize) -> Arc<rayon::ThreadPool> {
        let mut pools = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fits = |p: &Arc<rayon::ThreadPool>| (tasks..=want).contains(&p.current_num_threads());
        let pool = match pools.iter().rposition(fits) {
            Some(i) => pools.remove(i),
            None => Arc::new(build(tasks)),
        };
        pools.push(Arc::clone(&pool));
        if pools.len() > CACHED_POOLS {
            // Its threads exit once no call uses it any more (rayon terminates a pool when
            // its last handle is dropped).
            pools.remove(0);
        }
        pool
    }

    /// The sizes of the kept pools, least recently used first.
    #[cfg(test)]
    fn sizes(&self) -> Vec<usize> {
        let pools = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pools.iter().map(|p| p.current_num_threads()).collect()
    }
}

fn build(count: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(count)
        .thread_name(move |i| format!("parfor-{count}-{i}"))
        .build()
        .unwrap_or_else(|e| panic!("parfor: cannot start {count} worker threads: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(count: usize) -> Workers {
        Workers { count, from: WorkersFrom::Option }
    }

    fn tasks(p: &Place) -> usize {
        match p {
            Place::Caller => 1,
            Place::Current(t) | Place::Pool(_, t) => *t,
        }
    }

    #[test]
    fn a_call_never_asks_for_more_threads_than_blocks_or_the_cap() {
        let cap = thread_cap();
        assert!(matches!(place(option(1000), 1), Place::Caller));
        assert!(matches!(place(option(1), 1000), Place::Caller));
        let p = place(option(1000), 2);
        assert!(matches!(&p, Place::Pool(pool, 2) if pool.current_num_threads() == 2));
        let p = place(option(1000), 100_000);
        assert_eq!(tasks(&p), cap);
        if let Place::Pool(pool, _) = &p {
            assert!(pool.current_num_threads() <= cap);
        }
        let p = place(option(3), 100_000);
        assert!(matches!(&p, Place::Pool(pool, 3) if pool.current_num_threads() == 3));
    }

    #[test]
    fn pools_are_reused_and_few_are_kept() {
        // A cache of its own: other tests of this binary use the global one.
        let pools = Pools(Mutex::new(Vec::new()));
        let p = pools.get(2, 2);
        assert!(Arc::ptr_eq(&p, &pools.get(2, 2)), "the same size reuses the pool");
        let big = pools.get(5, 5);
        assert!(Arc::ptr_eq(&big, &pools.get(3, 5)), "a bigger pool serves a smaller call");
        for n in 6..30 {
            let p = pools.get(n, n);
            assert_eq!(p.current_num_threads(), n);
            assert!(pools.sizes().len() <= CACHED_POOLS, "{:?}", pools.sizes());
        }
        assert!(pools.sizes().contains(&29), "the most recent pool is kept");
        assert!(!pools.sizes().contains(&6), "the oldest are dropped: {:?}", pools.sizes());
        assert_eq!(big.current_num_threads(), 5, "a dropped pool stays usable by its holder");
        big.install(|| assert_eq!(rayon::current_num_threads(), 5));
    }
}
