//! The fork engine: copy-on-write worker processes.
//!
//! At each call the parent maps a shared control block (see [`ctl`]), then forks
//! `workers` children (one even for a single worker: isolation is the point), which see the
//! call's inputs through copy-on-write memory without a copy. Children pull blocks from a
//! shared counter (dynamic scheduling), run them through [`Job::run_encoded`] and send each
//! range's results to the parent through their own pipe, as one length-prefixed frame. The
//! parent polls all pipes (so a worker writing a big frame never blocks on a full pipe),
//! stores the frames it receives, and reaps every child.
//!
//! Plain-old-data `parmap!` results ([`crate::wire::Pod`]) take a faster road: a worker
//! writes them with [`Job::run_pod`] into a private scratch buffer, then copies them straight
//! into the parent's output with `process_vm_writev` (Linux), or else sends their raw bytes,
//! which the parent reads straight into the output.
//!
//! A child that dies (abort, a signal, `exit`, a time-out kill) fails the item its slot names;
//! when the call collects failures, a replacement worker re-runs the rest of that block, as
//! the sub-ranges before and after the failed item, and carries on with the remaining blocks.
//! In `fail` mode the parent sets the stop flag instead: workers finish their current range
//! and claim no more. A child that dies where its slot names nothing (killed while claiming a
//! block, or before it started the ranges it was handed) loses nothing either: the parent
//! counts what came back and, once no worker is left, hands out the rest of the claimed
//! blocks again. A time-out bounds each item's own run: a worker marks its slot "between
//! items" when an item returns, so encoding and sending results is never timed out.
//!
//! Process-wide state the engine keeps sound across concurrent calls (see [`sys`]): every
//! worker closes the descriptors of every fork call of the process but its own pipe (a pipe
//! end left open in another call's worker would keep its parent waiting for that worker),
//! and `SIGCHLD` is kept waitable while calls run. Standard output is flushed before each
//! fork, so that an item leaving through `exit` does not write the parent's buffer again.
//!
//! What a worker may not do: items run in a child process that has only the thread that
//! forked it. Locks held by the parent's other threads at the fork stay held there, so an
//! item that prints while another parent thread held stdout's lock, or that calls into rayon
//! directly, can hang (nested `parmap!`/`#[parfor]` calls are safe: they run serially in a
//! worker). Writes to ordinary memory stay in the worker; use return values, sliced outputs
//! or a [`crate::SharedVec`].
//!
//! On systems other than Unix the engine runs nothing: every item fails with
//! [`Cause::Engine`] saying that the fork engine needs a Unix system.

use super::Backend;
use crate::error::Cause;
use crate::job::{Job, Run};
use crate::plan::Plan;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(unix)]
mod child;
#[cfg(unix)]
mod ctl;
#[cfg(unix)]
mod parent;
#[cfg(unix)]
mod sys;

pub(crate) struct Fork;

/// Set in a fork worker process right after `fork()`.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a fork worker.
pub(crate) fn in_worker_process() -> bool {
    IN_WORKER.load(Ordering::Relaxed)
}

/// In a worker process, this worker's slot in the call's control block; null elsewhere.
#[cfg(unix)]
static SLOT: std::sync::atomic::AtomicPtr<ctl::Slot> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
/// In a worker process, whether the call has a time-out (items then record their start time).
#[cfg(unix)]
static TIMED: AtomicBool = AtomicBool::new(false);

/// Tells the parent which item this worker process runs: jobs take one per range (reading the
/// worker's slot and the call's time-out once) and call [`ItemHook::started`] before each item
/// in [`Job::run_encoded`] and [`Job::run_pod`]. Does nothing outside a worker.
#[derive(Clone, Copy)]
pub(crate) struct ItemHook {
    #[cfg(unix)]
    slot: *const ctl::Slot,
    #[cfg(unix)]
    timed: bool,
}

impl ItemHook {
    /// The hook of this process: live in a fork worker, inert elsewhere.
    #[inline]
    pub(crate) fn current() -> ItemHook {
        #[cfg(unix)]
        {
            ItemHook { slot: SLOT.load(Ordering::Relaxed), timed: TIMED.load(Ordering::Relaxed) }
        }
        #[cfg(not(unix))]
        ItemHook {}
    }

    /// Records that item `i` starts now.
    #[inline(always)]
    pub(crate) fn started(self, i: usize) {
        #[cfg(unix)]
        if !self.slot.is_null() {
            // SAFETY: a non-null `slot` was read from `SLOT`, which is only set in a worker
            // process, to its slot in the control mapping; that stays mapped until the process
            // ends (a worker never returns to the code that would unmap it: it leaves with
            // `_exit`).
            unsafe { (*self.slot).item(i, self.timed) };
        }
        #[cfg(not(unix))]
        let _ = i;
    }

    /// Records that the current item returned: what follows (encoding and sending its
    /// result) is shipping, which the call's time-out does not bound.
    #[inline(always)]
    pub(crate) fn finished(self) {
        #[cfg(unix)]
        if self.timed && !self.slot.is_null() {
            // SAFETY: as in `started`.
            unsafe { (*self.slot).between_items() };
        }
    }
}

impl Backend for Fork {
    fn execute(&self, job: &dyn Job, plan: &Plan, run: &Run) {
        #[cfg(unix)]
        parent::execute(job, plan, run);
        #[cfg(not(unix))]
        {
            let _ = run;
            let cause = Cause::Engine(
                "the fork engine needs a Unix system (it runs items in forked child \
                 processes); use `engine = \"threads\"` here"
                    .into(),
            );
            fail_range(job, 0..plan.len(), &cause);
        }
    }
}

/// Fails the items of `range` with `cause`: each of them when the call collects failures,
/// else the first (which stops the call).
fn fail_range(job: &dyn Job, range: Range<usize>, cause: &Cause) {
    if job.failures().collect() {
        for i in range {
            job.fail(i, cause.clone());
        }
    } else if !range.is_empty() {
        job.fail(range.start, cause.clone());
    }
}

/// Bytes in a frame header.
#[cfg(unix)]
const HEADER: usize = 40;

/// One message from a worker to the parent: the outcome of one range. On the wire, a
/// [`HEADER`]-byte header (kind, worker, block, range, payload length; little endian)
/// followed by the payload.
#[cfg(unix)]
#[derive(Clone, Debug, PartialEq, Eq)]
struct Frame {
    kind: u8,
    worker: usize,
    block: usize,
    range: Range<usize>,
}

#[cfg(unix)]
impl Frame {
    /// The payload holds the range's encoded results (and failures).
    const RESULTS: u8 = 0;
    /// The payload holds an encoded [`Cause`] that failed the whole range.
    const ERROR: u8 = 1;
    /// Like `RESULTS`, but the plain-old-data results were already written into the
    /// parent's output slots ([`Job::pod_target`]); the payload holds the failures only.
    const PLACED: u8 = 2;

    fn header(&self, payload: usize) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0] = self.kind;
        h[4..8].copy_from_slice(&(self.worker as u32).to_le_bytes());
        h[8..16].copy_from_slice(&(self.block as u64).to_le_bytes());
        h[16..24].copy_from_slice(&(self.range.start as u64).to_le_bytes());
        h[24..32].copy_from_slice(&(self.range.end as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(payload as u64).to_le_bytes());
        h
    }

    /// The frame and its payload length.
    fn parse(h: &[u8; HEADER]) -> (Frame, usize) {
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            u64::from_le_bytes(b) as usize
        };
        let mut w = [0u8; 4];
        w.copy_from_slice(&h[4..8]);
        let frame = Frame {
            kind: h[0],
            worker: u32::from_le_bytes(w) as usize,
            block: word(8),
            range: word(16)..word(24),
        };
        (frame, word(32))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_round_trip() {
        let f = Frame { kind: Frame::ERROR, worker: 3, block: 77, range: 700..710 };
        let h = f.header(12345);
        assert_eq!(Frame::parse(&h), (f, 12345));
    }
}
