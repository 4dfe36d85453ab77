//! Where a stream's worker threads run, and why that is sound.
//!
//! An iterator can be leaked (`mem::forget`), so its worker threads must never outlive the
//! data they borrow. A stream either borrows nothing shorter than `'static` ([`Detached`]
//! workers, stopped when the iterator is dropped, on threads that later streams reuse: see
//! `pool`), or runs inside [`scope`], whose threads
//! are scoped: the scope stops every stream started in it when its closure returns, then
//! joins their threads before it returns, as [`std::thread::scope`] does.

use std::sync::{Arc, Mutex, Weak};

/// Something to stop when its scope ends (a stream's shared state).
#[doc(hidden)]
pub trait Cancel: Send + Sync {
    /// Stops dispatching and wakes every worker, which then ends.
    fn cancel(&self);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Detached {}
    impl Sealed for &super::StreamScope<'_, '_> {}
}

/// Starts a stream's worker threads: [`Detached`] or a [`StreamScope`] (sealed).
pub trait Spawner<'a>: sealed::Sealed {
    /// Starts `work` on a new thread, detached: the stream counts its workers out itself
    /// (a leaked join handle would keep a `std::thread::scope` waiting forever).
    #[doc(hidden)]
    fn spawn_worker(&self, work: Box<dyn FnOnce() + Send + 'a>) -> std::io::Result<()>;

    /// Registers a stream to stop when the scope ends.
    #[doc(hidden)]
    fn register(&self, stream: Weak<dyn Cancel + 'a>);
}

/// Worker threads that may outlive the caller's stack frame: the function and the items of a
/// stream on them own their data (`'static`). What `parmap_iter!` uses without `scope = s`.
///
/// ```
/// use parfor::parmap_iter;
///
/// let data = std::sync::Arc::new(vec![1.0f64, 4.0, 9.0]);
/// let d = data.clone();
/// // A `move` closure owning what it uses, over a range: nothing borrowed.
/// let roots: Vec<f64> = parmap_iter!(move |i: usize| d[i].sqrt(), 0..3usize).collect();
/// assert_eq!(roots, [1.0, 2.0, 3.0]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Detached;

impl Spawner<'static> for Detached {
    fn spawn_worker(&self, work: Box<dyn FnOnce() + Send + 'static>) -> std::io::Result<()> {
        // Owned work may run on a thread an earlier stream used (see `pool`).
        super::pool::run(work)
    }

    fn register(&self, _stream: Weak<dyn Cancel + 'static>) {}
}

/// A scope for streams over borrowed data: what [`scope`] lends its closure, and what
/// `parmap_iter!(...; scope = s)` takes.
///
/// ```
/// use parfor::{StreamScope, parmap_iter};
///
/// // What the stream borrows must outlive the scope's threads (`'s`).
/// fn longest<'s>(words: &'s [String], s: &StreamScope<'s, '_>) -> Option<usize> {
///     parmap_iter!(|w: &String| w.len(), words; scope = s).max()
/// }
///
/// let words = vec!["a".to_string(), "abc".into()];
/// assert_eq!(parfor::scope(|s| longest(&words, s)), Some(3));
/// ```
pub struct StreamScope<'scope, 'env> {
    threads: &'scope std::thread::Scope<'scope, 'env>,
    streams: Arc<Mutex<Vec<Weak<dyn Cancel + 'scope>>>>,
}

impl std::fmt::Debug for StreamScope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScope").finish_non_exhaustive()
    }
}

impl<'scope, 'env> Spawner<'scope> for &StreamScope<'scope, 'env> {
    fn spawn_worker(&self, work: Box<dyn FnOnce() + Send + 'scope>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("parfor-stream".into())
            .spawn_scoped(self.threads, work)
            .map(drop)
    }

    fn register(&self, stream: Weak<dyn Cancel + 'scope>) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|s| s.strong_count() > 0);
        streams.push(stream);
    }
}

/// Runs `f` with a scope in which `parmap_iter!(...; scope = s)` streams may borrow local
/// data (the function's captures, slices, iterators of references).
///
/// When `f` returns (or panics), every stream started in the scope stops dispatching and its
/// worker threads end after their current item; `scope` returns once they have. A stream
/// cannot escape the scope, so its threads never outlive what they borrow, even if the
/// iterator is leaked with `mem::forget`.
///
/// ```
/// use parfor::parmap_iter;
///
/// let words = vec!["alpha".to_string(), "beta".into(), "gamma".into()];
/// let lens: Vec<usize> = parfor::scope(|s| {
///     parmap_iter!(|w: &String| w.len(), words; scope = s).collect()
/// });
/// assert_eq!(lens, [5, 4, 5]);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&StreamScope<'scope, 'env>) -> T,
{
    std::thread::scope(|threads| {
        let scope = StreamScope { threads, streams: Arc::new(Mutex::new(Vec::new())) };
        // Stops the streams also when `f` unwinds, so the scope's join cannot wait forever
        // on workers of a stream nobody consumes any more.
        struct StopAll<'s>(Arc<Mutex<Vec<Weak<dyn Cancel + 's>>>>);
        impl Drop for StopAll<'_> {
            fn drop(&mut self) {
                let streams =
                    std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
                for s in streams {
                    if let Some(s) = s.upgrade() {
                        s.cancel();
                    }
                }
            }
        }
        let _stop = StopAll(Arc::clone(&scope.streams));
        f(&scope)
    })
}
