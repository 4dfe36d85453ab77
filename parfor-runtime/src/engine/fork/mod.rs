//! The fork engine: copy-on-write worker processes.
//!
//! At each call the parent maps a shared control block (see [`ctl`]), then forks
//! `workers` children (one even for a single worker: isolation is the point), which see the
//! call's inputs through copy-on-write memory without a copy. Children pull blocks from a
//! shared counter (dynamic scheduling), run them through the job's [`Remote::encode`] and send
//! each range's outcome to the parent through their own pipe, as one frame (a
//! [`crate::protocol::Header`] and what it announces). The parent polls all pipes (so a worker
//! writing a big frame never blocks on a full pipe), reads each frame with one
//! [`reader::FrameReader`] per worker, stores it with [`Remote::store`], and reaps every
//! child.
//!
//! Plain-old-data `parmap!` results ([`crate::wire::Pod`]) take a faster road: a worker
//! writes them raw into a private scratch buffer, then copies them straight into the parent's
//! output ([`Remote::raw_target`]) with `process_vm_writev` (Linux), or else sends their raw
//! bytes, which the parent reads straight into the output.
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
//! [`Cause::Engine`](crate::Cause::Engine) saying that the fork engine needs a Unix system.

use super::Backend;
#[cfg(not(unix))]
use crate::error::Cause;
#[cfg(doc)]
use crate::job::Remote;
#[cfg(not(unix))]
use crate::job::fail_range;
use crate::job::{Job, Run};
use crate::plan::Plan;
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(unix)]
mod child;
#[cfg(unix)]
mod ctl;
#[cfg(unix)]
mod parent;
#[cfg(unix)]
mod reader;
#[cfg(unix)]
mod spawn;
#[cfg(unix)]
pub(crate) mod stream;
#[cfg(unix)]
mod sys;

pub(crate) struct Fork;

/// Set in a fork worker process right after `fork()`.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a fork worker.
pub(crate) fn in_worker_process() -> bool {
    IN_WORKER.load(Ordering::Relaxed)
}

/// Tells the parent which item a worker process runs: a worker makes one from its slot and
/// hands it to every [`crate::job::Remote::encode`], whose per-item loop calls
/// [`ItemHook::started`] before each item and [`ItemHook::finished`] after it.
/// [`ItemHook::NONE`] does nothing (engines that need no such reports).
#[derive(Clone, Copy)]
pub(crate) struct ItemHook {
    #[cfg(unix)]
    slot: *const ctl::Slot,
    #[cfg(unix)]
    timed: bool,
}

impl ItemHook {
    /// The hook that does nothing.
    pub(crate) const NONE: ItemHook = ItemHook {
        #[cfg(unix)]
        slot: std::ptr::null(),
        #[cfg(unix)]
        timed: false,
    };

    /// The hook of a worker process whose slot is `slot`; `timed`: the call has a time-out
    /// (items then record their start time).
    ///
    /// # Safety
    /// `slot` must stay mapped for as long as the hook (or a copy) is used: true of a worker's
    /// slot in the call's control mapping, which stays mapped until the worker process ends
    /// (a worker never returns to the code that would unmap it: it leaves with `_exit`).
    #[cfg(unix)]
    unsafe fn new(slot: &ctl::Slot, timed: bool) -> ItemHook {
        ItemHook { slot, timed }
    }

    /// Records that item `i` starts now.
    #[inline(always)]
    pub(crate) fn started(self, i: usize) {
        #[cfg(unix)]
        if !self.slot.is_null() {
            // SAFETY: a non-null `slot` was given to `ItemHook::new`, whose caller promised
            // that it stays mapped while the hook is used.
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
