//! The engine-neutral unit of work: a [`Job`] runs ranges of items and stores their results;
//! engines only decide where and when each block runs.

use crate::config::{Engine, Workers};
use crate::error::{Cause, OnError};
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

    /// Runs the items of `range` in a worker process and appends their encoded results (and
    /// failures) to `out`, for [`Job::store_encoded`] in the parent.
    ///
    /// # Errors
    /// The job's results cannot cross a process boundary (no serde), or encoding failed.
    fn run_encoded(
        &self,
        block: usize,
        range: Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), Cause>;

    /// Stores results that [`Job::run_encoded`] produced for `range` in a worker process.
    ///
    /// # Errors
    /// The bytes do not decode.
    fn store_encoded(&self, block: usize, range: Range<usize>, bytes: &[u8]) -> Result<(), Cause>;

    /// Bytes per result when the results are plain old data (see [`crate::wire::Pod`]): the
    /// fork engine then has workers write them into a shared mapping with
    /// [`Job::run_pod`] instead of encoding them.
    fn pod_size(&self) -> Option<usize> {
        None
    }

    /// Like [`Job::run_encoded`], but writes the result of item `i` as raw bytes at
    /// `dst[(i - range.start) * size..]` (`size` from [`Job::pod_size`]) and appends only
    /// the failures to `out`, as records of a little-endian `u64` item index and a cause.
    ///
    /// # Errors
    /// As for [`Job::run_encoded`].
    fn run_pod(
        &self,
        block: usize,
        range: Range<usize>,
        dst: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Cause> {
        let _ = dst;
        self.run_encoded(block, range, out)
    }

    /// Where the parent may put the raw bytes that [`Job::run_pod`] produced for `range`,
    /// when they can go straight to their final place (the results themselves are the
    /// output's elements); `None`: the engine keeps them in a buffer of its own.
    ///
    /// The pointer is valid for `range.len() * size` bytes of writes until the range is
    /// stored with [`Job::store_pod`], provided `range` lies inside one block of the plan
    /// and no other range overlapping it is stored meanwhile.
    fn pod_target(&self, range: Range<usize>) -> Option<*mut u8> {
        let _ = range;
        None
    }

    /// Stores results that [`Job::run_pod`] wrote to `src` (and failures it appended to
    /// `bytes`) for `range`. `src` may be the memory [`Job::pod_target`] gave for `range`.
    ///
    /// # Errors
    /// The bytes do not decode.
    fn store_pod(
        &self,
        block: usize,
        range: Range<usize>,
        src: &[u8],
        bytes: &[u8],
    ) -> Result<(), Cause> {
        let _ = src;
        self.store_encoded(block, range, bytes)
    }

    /// The call's failure record.
    fn failures(&self) -> &Failures;

    /// Records a failure the engine observed itself (a crashed worker, a time-out) for
    /// item `index`, storing an error result for it when the call collects errors.
    fn fail(&self, index: usize, cause: Cause);
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

/// Encodes a failure cause for the trip from a worker process to the parent.
pub(crate) fn encode_cause(cause: &Cause, out: &mut Vec<u8>) {
    let (tag, text) = match cause {
        Cause::Panic(m) => (0u8, m.clone()),
        Cause::Engine(m) => (1u8, m.clone()),
        other => (1u8, other.to_string()),
    };
    out.push(tag);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Decodes what [`encode_cause`] wrote, advancing `input`.
pub(crate) fn decode_cause(input: &mut &[u8]) -> Result<Cause, Cause> {
    let bad = || Cause::Engine("corrupt failure record from a worker process".into());
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| bad())?;
    if rest.len() < len {
        return Err(bad());
    }
    let text = String::from_utf8_lossy(&rest[..len]).into_owned();
    *input = &rest[len..];
    Ok(if tag == 0 { Cause::Panic(text) } else { Cause::Engine(text) })
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

    #[test]
    fn causes_round_trip() {
        let mut buf = Vec::new();
        encode_cause(&Cause::Panic("déjà".into()), &mut buf);
        encode_cause(&Cause::Engine("x".into()), &mut buf);
        let mut input = &buf[..];
        assert_eq!(decode_cause(&mut input).unwrap(), Cause::Panic("déjà".into()));
        assert_eq!(decode_cause(&mut input).unwrap(), Cause::Engine("x".into()));
        assert!(input.is_empty());
        assert!(decode_cause(&mut input).is_err());
    }
}
