//! The engine-neutral unit of work: a [`Job`] runs ranges of items and stores their results;
//! engines only decide where and when each block runs.
//!
//! Engines whose workers are other processes (fork, and engines across machines) also need a
//! range's outcome as bytes: that capability is a separate trait, [`Remote`], which a job
//! offers through [`Job::remote`]. Its byte layout is [`crate::protocol`]'s; jobs only say
//! how to encode and decode a value.

use crate::config::{Engine, Workers};
use crate::engine::ItemHook;
use crate::error::{Cause, OnError};
use crate::protocol::{Decoder, Encoder};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What an engine needs to know about one call, once its options are resolved.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) engine: Engine,
    pub(crate) workers: Workers,
    pub(crate) timeout: Option<Duration>,
    pub(crate) progress: bool,
    /// The call's name in its progress output.
    pub(crate) label: Option<String>,
    /// Where the call is made (the user's `parmap!` or `#[parfor]` loop), for the mpi engine's
    /// check that every rank reached the same call.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) site: &'static std::panic::Location<'static>,
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) schedule: crate::options::Schedule,
}

/// A call's work, as every engine sees it. Object safe, so each engine is compiled once; the
/// per-item loop lives in the job, monomorphized for the user's closure.
///
/// Ranges handed to a job lie inside one block of the call's plan; an engine normally hands
/// out whole blocks, and only splits one to carry on after a worker process died in it.
pub(crate) trait Job: Sync {
    /// Runs the items of `range` (in block `block`) in this process and stores their results.
    fn run(&self, block: usize, range: Range<usize>);

    /// The call's failure record.
    fn failures(&self) -> &Failures;

    /// Records a failure the engine observed itself (a crashed worker, a time-out) for
    /// item `index`, storing an error result for it when the call collects errors.
    fn fail(&self, index: usize, cause: Cause);

    /// What engines whose workers live in other processes need (fork, mpi); `None` when the
    /// job cannot run that way.
    fn remote(&self) -> Option<&dyn Remote> {
        None
    }
}

/// The ranges (block and items) that a worker's state covers.
pub(crate) type Folded = Vec<(usize, Range<usize>)>;

/// A job's outcomes as bytes, for process engines: a worker process runs a range with
/// [`Remote::encode`] and ships what it wrote (in the layout of [`crate::protocol`]); the
/// process that holds the call's output stores it with [`Remote::store`].
///
/// Plain-old-data results (see [`crate::wire::Pod`]) take a faster road: they travel as raw
/// bytes, one result per item ([`Remote::raw_size`]), which the receiving process may even
/// receive straight into the output ([`Remote::raw_target`]).
pub(crate) trait Remote: Sync {
    /// Bytes per result when the results travel raw; `None` when everything is encoded.
    fn raw_size(&self) -> Option<usize>;

    /// Runs the items of `range` (in block `block`) in this process, telling `hook` which
    /// item runs. With [`Remote::raw_size`] `Some(size)`, writes the result of item `i` at
    /// `raw[(i - range.start) * size..]` and only failures to `out`; otherwise `raw` is empty
    /// and every result and failure goes to `out`.
    ///
    /// # Errors
    /// The results cannot cross a process boundary (no serde), or encoding failed: the whole
    /// range fails with that cause.
    fn encode(
        &self,
        block: usize,
        range: Range<usize>,
        hook: ItemHook,
        raw: &mut [u8],
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause>;

    /// Stores the outcome that [`Remote::encode`] produced for `range` in another process:
    /// `raw` holds its raw results (empty unless [`Remote::raw_size`]; it may be the memory
    /// [`Remote::raw_target`] gave for `range`), `entries` the rest.
    ///
    /// # Errors
    /// The bytes do not decode; nothing of `range` is stored then.
    fn store(
        &self,
        block: usize,
        range: Range<usize>,
        raw: &[u8],
        entries: Decoder<'_>,
    ) -> Result<(), Cause>;

    /// Where the raw results of `range` may be written directly, when they can go straight to
    /// their final place (the results themselves are the output's elements); `None`: the
    /// engine keeps them in a buffer of its own.
    ///
    /// The pointer is valid for `range.len() * size` bytes of writes until the range is
    /// stored with [`Remote::store`], provided `range` lies inside one block of the plan and
    /// no other range overlapping it is stored meanwhile.
    fn raw_target(&self, range: Range<usize>) -> Option<*mut u8> {
        let _ = range;
        None
    }

    /// Whether a worker process folds every range it runs into one state of its own
    /// ([`Remote::fold_worker`]) and sends that state once, at its end
    /// ([`Remote::encode_worker`], a [`crate::protocol::Kind::Folded`] frame), instead of one
    /// outcome per range. A worker that dies before sending it sent nothing of those ranges,
    /// which the engine then runs again.
    fn per_worker(&self) -> bool {
        false
    }

    /// With [`Remote::per_worker`]: runs the items of `range` folding them into this
    /// process's state. `Ok(true)` when every item completed (nothing to send yet);
    /// `Ok(false)` when one failed, whose failure it wrote to `out` (the range's outcome).
    ///
    /// # Errors
    /// The state cannot cross a process boundary: the whole range fails.
    fn fold_worker(
        &self,
        block: usize,
        range: Range<usize>,
        hook: ItemHook,
        out: &mut Encoder<'_>,
    ) -> Result<bool, Cause> {
        let _ = (block, range, hook, out);
        Err(Cause::Engine("this job has no per-worker state".into()))
    }

    /// With [`Remote::per_worker`]: appends to `out` the entries of a
    /// [`crate::protocol::Kind::Folded`] frame: the ranges `folded` (block and items) that
    /// this process folded, and its state.
    ///
    /// With `by_address`, the state's large partial arrays are not copied into `out`: their
    /// addresses in this process are, for the parent to read them from here
    /// ([`Remote::store_worker`] with the worker's pid), and the state is kept, unchanged,
    /// until this process ends or a second call (without `by_address`) takes it. The caller
    /// then must not end (or change the state) before the parent has read it.
    ///
    /// # Errors
    /// The state cannot be encoded.
    fn encode_worker(
        &self,
        folded: &[(usize, Range<usize>)],
        by_address: bool,
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        let _ = (folded, by_address, out);
        Err(Cause::Engine("this job has no per-worker state".into()))
    }

    /// Stores a worker's state that [`Remote::encode_worker`] wrote in the worker process
    /// `worker`; returns the ranges it covers, or `None` when the state's partial arrays could
    /// not be read from the worker (nothing is stored then: the worker must send them again
    /// without `by_address`, or die, leaving its ranges to be run again).
    ///
    /// # Errors
    /// The bytes do not decode; nothing is stored then.
    fn store_worker(&self, entries: Decoder<'_>, worker: i32) -> Result<Option<Folded>, Cause> {
        let _ = (entries, worker);
        Err(Cause::Engine("this job has no per-worker state".into()))
    }
}

/// The failures of one call, shared by its workers.
#[derive(Debug)]
pub(crate) struct Failures {
    /// Catch panics per item (everywhere except the serial engine in `fail` mode, which lets
    /// the original panic through).
    catch: bool,
    on_error: OnError,
    stop: AtomicBool,
    first: Mutex<Option<(usize, Cause)>>,
}

impl Failures {
    pub(crate) fn new(engine: Engine, on_error: OnError) -> Failures {
        Failures {
            catch: !(engine == Engine::Serial && on_error == OnError::Fail),
            on_error,
            stop: AtomicBool::new(false),
            first: Mutex::new(None),
        }
    }

    /// Whether panics are caught per item.
    pub(crate) fn catch(&self) -> bool {
        self.catch
    }

    /// Whether every item runs and failures become per-item results.
    pub(crate) fn collect(&self) -> bool {
        self.on_error == OnError::Collect
    }

    /// Whether engines should stop handing out work.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records that item `index` failed. In `fail` mode this stops the call and keeps the
    /// failure with the lowest index, so the report does not depend on scheduling among the
    /// items that did run.
    pub(crate) fn record(&self, index: usize, cause: Cause) {
        if self.collect() {
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.as_ref().is_none_or(|(i, _)| index < *i) {
            *first = Some((index, cause));
        }
    }

    /// The failure that stops the call, if any.
    pub(crate) fn take_first(&self) -> Option<(usize, Cause)> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Fails the items of `range` with `cause`: each of them when the call collects failures,
/// else the first (which stops the call). For engines that lose a whole range.
pub(crate) fn fail_range(job: &dyn Job, range: Range<usize>, cause: &Cause) {
    if job.failures().collect() {
        for i in range {
            job.fail(i, cause.clone());
        }
    } else if !range.is_empty() {
        job.fail(range.start, cause.clone());
    }
}

/// What a [`Wrapped`] job adds around the job it wraps (a progress count, the thread marks
/// of a collecting call): every other method goes straight to the inner job.
pub(crate) trait Around: Sync {
    /// Runs `f`, which runs items of the inner job on this thread (its `run`, or a fork
    /// worker's `encode` and `fold_worker`).
    fn running<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }

    /// The outcomes of `n` more items are in, in this process (after `run`, or once a
    /// worker's results are stored).
    fn finished(&self, n: usize) {
        let _ = n;
    }
}

/// A call's job wrapped in `around` (see [`Around`]), its [`Remote`] side included.
pub(crate) struct Wrapped<'a, A> {
    inner: &'a dyn Job,
    /// The inner job's [`Remote`].
    remote: Option<&'a dyn Remote>,
    pub(crate) around: A,
}

impl<'a, A: Around> Wrapped<'a, A> {
    pub(crate) fn new(inner: &'a dyn Job, around: A) -> Wrapped<'a, A> {
        Wrapped { inner, remote: inner.remote(), around }
    }

    /// The inner job's [`Remote`]; only called through [`Job::remote`], which says it exists.
    fn inner_remote(&self) -> &dyn Remote {
        self.remote.expect("parfor: internal error: a job without remote outcomes was encoded")
    }
}

impl<A: Around> Job for Wrapped<'_, A> {
    fn run(&self, block: usize, range: Range<usize>) {
        let n = range.len();
        self.around.running(|| self.inner.run(block, range));
        self.around.finished(n);
    }

    fn failures(&self) -> &Failures {
        self.inner.failures()
    }

    fn fail(&self, index: usize, cause: Cause) {
        self.inner.fail(index, cause);
    }

    fn remote(&self) -> Option<&dyn Remote> {
        self.remote.is_some().then_some(self)
    }
}

impl<A: Around> Remote for Wrapped<'_, A> {
    fn raw_size(&self) -> Option<usize> {
        self.inner_remote().raw_size()
    }

    fn encode(
        &self,
        block: usize,
        range: Range<usize>,
        hook: ItemHook,
        raw: &mut [u8],
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        self.around.running(|| self.inner_remote().encode(block, range, hook, raw, out))
    }

    fn store(
        &self,
        block: usize,
        range: Range<usize>,
        raw: &[u8],
        entries: Decoder<'_>,
    ) -> Result<(), Cause> {
        let n = range.len();
        let stored = self.inner_remote().store(block, range, raw, entries);
        self.around.finished(n);
        stored
    }

    fn raw_target(&self, range: Range<usize>) -> Option<*mut u8> {
        self.inner_remote().raw_target(range)
    }

    fn per_worker(&self) -> bool {
        self.inner_remote().per_worker()
    }

    fn fold_worker(
        &self,
        block: usize,
        range: Range<usize>,
        hook: ItemHook,
        out: &mut Encoder<'_>,
    ) -> Result<bool, Cause> {
        self.around.running(|| self.inner_remote().fold_worker(block, range, hook, out))
    }

    fn encode_worker(
        &self,
        folded: &[(usize, Range<usize>)],
        by_address: bool,
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        self.inner_remote().encode_worker(folded, by_address, out)
    }

    fn store_worker(&self, entries: Decoder<'_>, worker: i32) -> Result<Option<Folded>, Cause> {
        let stored = self.inner_remote().store_worker(entries, worker);
        if let Ok(Some(ranges)) = &stored {
            self.around.finished(ranges.iter().map(|(_, r)| r.len()).sum());
        }
        stored
    }
}

/// Runs `body` over `range`, catching a panic per item when `catch` is set.
///
/// `body(sub, cur)` runs the items of `sub` in order and sets `*cur` to each item's index
/// before running it. After a panic at item `cur`, `on_panic(cur, cause)` says whether to go
/// on; if so, `body` is called again from `cur + 1`.
pub(crate) fn guarded(
    range: Range<usize>,
    catch: bool,
    mut body: impl FnMut(Range<usize>, &mut usize),
    mut on_panic: impl FnMut(usize, Cause) -> bool,
) {
    let mut start = range.start;
    if !catch {
        body(range, &mut start);
        return;
    }
    while start < range.end {
        let mut cur = start;
        let outcome = catch_unwind(AssertUnwindSafe(|| body(start..range.end, &mut cur)));
        match outcome {
            Ok(()) => return,
            Err(payload) => {
                let cause = Cause::from_panic(&*payload);
                // A payload whose destructor panics would abort; forget it instead.
                std::mem::forget(payload);
                if !on_panic(cur, cause) {
                    return;
                }
                start = cur + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_skips_only_the_panicking_items() {
        let mut seen = Vec::new();
        let mut failed = Vec::new();
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        guarded(
            0..10,
            true,
            |sub, cur| {
                for i in sub {
                    *cur = i;
                    assert!(i % 4 != 3, "bad {i}");
                    seen.push(i);
                }
            },
            |i, cause| {
                failed.push((i, cause));
                true
            },
        );
        std::panic::set_hook(prev);
        assert_eq!(seen, [0, 1, 2, 4, 5, 6, 8, 9]);
        assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), [3, 7]);
        assert_eq!(failed[1].1, Cause::Panic("bad 7".into()));
    }

    #[test]
    fn fail_mode_keeps_the_lowest_index() {
        let f = Failures::new(Engine::Threads, OnError::Fail);
        f.record(9, Cause::Exit(1));
        f.record(4, Cause::Exit(2));
        f.record(6, Cause::Exit(3));
        assert!(f.stopped());
        assert_eq!(f.take_first(), Some((4, Cause::Exit(2))));
    }
}
