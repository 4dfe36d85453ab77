//! Per-worker state (`#[parfor(init(rng = ...))]`): made once per worker (thread or worker
//! process) that runs items of a call, kept for every block that worker runs, dropped with the
//! call.

use std::sync::Mutex;
use std::thread::ThreadId;

/// The per-worker states of one call, keyed by the worker (process and thread) that owns
/// each. A worker takes its state out while it runs a block and puts it back after, so no
/// two workers ever share one.
pub(crate) struct Locals<W> {
    idle: Mutex<Vec<((u32, ThreadId), W)>>,
}

impl<W> Locals<W> {
    pub(crate) fn new() -> Locals<W> {
        Locals { idle: Mutex::new(Vec::new()) }
    }

    /// Runs `f` with this worker's state, made with `init` on the worker's first block. A
    /// state whose block panicked out of `f` is dropped, and the worker makes a new one.
    pub(crate) fn with<R>(&self, init: &impl Fn() -> W, f: impl FnOnce(&mut W) -> R) -> R {
        if size_of::<W>() == 0 && !std::mem::needs_drop::<W>() {
            // No state (a loop without `init`): nothing to keep.
            let mut w = init();
            return f(&mut w);
        }
        let key = (std::process::id(), std::thread::current().id());
        let mine = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.iter().position(|(k, _)| *k == key).map(|i| idle.swap_remove(i).1)
        };
        let mut w = mine.unwrap_or_else(init);
        let r = f(&mut w);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push((key, w));
        r
    }

    /// The state of the calling worker (process and thread), taken out.
    pub(crate) fn take_mine(&self) -> Option<W> {
        let key = (std::process::id(), std::thread::current().id());
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter().position(|(k, _)| *k == key).map(|i| idle.swap_remove(i).1)
    }

    /// The states of the workers, in no particular order.
    pub(crate) fn into_states(self) -> impl Iterator<Item = W> {
        self.idle.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().map(|(_, w)| w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_state_per_thread_kept_across_blocks() {
        let made = AtomicUsize::new(0);
        let locals = Locals::new();
        let init = || {
            made.fetch_add(1, Ordering::Relaxed);
            Vec::<usize>::new()
        };
        std::thread::scope(|s| {
            for t in 0..3 {
                let (locals, init) = (&locals, &init);
                s.spawn(move || {
                    for b in 0..5 {
                        locals.with(init, |w| w.push(t * 10 + b));
                    }
                });
            }
        });
        assert_eq!(made.load(Ordering::Relaxed), 3);
        let idle = locals.idle.into_inner().unwrap();
        assert_eq!(idle.len(), 3);
        for (_, w) in idle {
            assert_eq!(w.len(), 5, "{w:?}");
            assert!(w.iter().all(|v| v / 10 == w[0] / 10), "one thread's blocks: {w:?}");
        }
    }
}
