//! Which worker runs the current item.

use std::cell::Cell;

thread_local! {
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index (0-based) of the worker running the current item, or `None` outside a task.
///
/// On the threads engine it is the worker thread's index in its pool, on the fork engine the
/// worker process's index, and on the serial engine 0.
///
/// ```
/// use parfor::{parmap, worker_id};
///
/// assert_eq!(worker_id(), None);
/// let ids = parmap!(|_i: usize| worker_id(), 0..100usize; workers = 2);
/// assert!(ids.iter().all(|w| matches!(w, Some(0 | 1))));
/// ```
pub fn worker_id() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// Runs `f` with [`worker_id`] returning `Some(id)`, restoring the previous value after (also
/// when `f` unwinds), so nested calls see their own worker.
pub(crate) fn as_worker<T>(id: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            WORKER.with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(WORKER.with(|w| w.replace(Some(id))));
    f()
}
