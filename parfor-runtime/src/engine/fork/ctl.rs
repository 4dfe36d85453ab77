//! The control block that a call's parent process and its worker processes share: the
//! next-block counter workers pull blocks from, the stop flag, and one slot per worker
//! saying which range and item it runs (so the parent can name the item of a worker that
//! died, and time items out). Progress is counted by the parent as results arrive.

use crate::shm::Mapping;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Call-wide state.
#[repr(C)]
pub(super) struct Control {
    /// The next block of the plan to hand out (workers `fetch_add` it; values past the last
    /// block mean "no more blocks").
    pub(super) next_block: AtomicUsize,
    /// Set by the parent when the call stops (fail mode): workers claim no more blocks.
    pub(super) stop: AtomicBool,
    /// Set by the parent when it cannot read its workers' memory: workers send their
    /// per-worker states whole, through the pipe (see `child::send_folded`).
    pub(super) inline_folded: AtomicBool,
}

/// [`Slot::ack`] before the parent has handled the worker's per-worker state.
pub(super) const ACK_WAIT: u32 = 0;
/// [`Slot::ack`]: the parent has read the worker's state (or given up on it): the worker may
/// end.
pub(super) const ACK_DONE: u32 = 1;
/// [`Slot::ack`]: the parent could not read the worker's state from its memory: the worker
/// sends it whole, through the pipe.
pub(super) const ACK_RESEND: u32 = 2;

/// What one worker process is doing. Padded to its own cache lines: each worker writes its
/// slot once per item.
#[repr(C, align(128))]
pub(crate) struct Slot {
    /// Set (release) once `block`, `start`, `end` describe the range the worker runs;
    /// cleared after the range's results were sent.
    pub(super) busy: AtomicBool,
    pub(super) block: AtomicUsize,
    pub(super) start: AtomicUsize,
    pub(super) end: AtomicUsize,
    /// The item the worker runs (stored with release, after `started`).
    pub(crate) current: AtomicUsize,
    /// When the current item started, in [`now_ns`] nanoseconds, or [`BETWEEN_ITEMS`] once it
    /// returned (only kept up to date when the call has a time-out).
    pub(crate) started: AtomicU64,
    /// The parent's answer to a per-worker state sent by address ([`ACK_WAIT`],
    /// [`ACK_DONE`], [`ACK_RESEND`]); reset by each worker as it starts.
    pub(super) ack: AtomicU32,
}

/// The start time of "no item": a worker that ships results is never late.
pub(crate) const BETWEEN_ITEMS: u64 = u64::MAX;

impl Slot {
    /// Marks the start of item `i`; `timed`: also record the time.
    #[inline(always)]
    pub(crate) fn item(&self, i: usize, timed: bool) {
        if timed {
            self.started.store(now_ns(), Ordering::Relaxed);
        }
        self.current.store(i, Ordering::Release);
    }

    /// Marks the end of the current item (calls with a time-out only).
    #[inline(always)]
    pub(crate) fn between_items(&self) {
        self.started.store(BETWEEN_ITEMS, Ordering::Relaxed);
    }
}

/// The range a worker was running, as its slot tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Busy {
    pub(super) block: usize,
    pub(super) start: usize,
    pub(super) end: usize,
}

/// The shared mapping holding one [`Control`] and `workers` [`Slot`]s.
pub(super) struct Shared {
    map: Mapping,
    workers: usize,
}

const fn slots_offset() -> usize {
    size_of::<Control>().next_multiple_of(align_of::<Slot>())
}

impl Shared {
    pub(super) fn new(workers: usize) -> io::Result<Shared> {
        let map = Mapping::anonymous(slots_offset() + workers * size_of::<Slot>())?;
        Ok(Shared { map, workers })
    }

    pub(super) fn control(&self) -> &Control {
        // SAFETY: the mapping is page aligned, large enough for a `Control` at offset 0, and
        // zero filled, which is a valid `Control` (all atomics); other processes touch it
        // only through these atomics. The reference borrows `self`, which owns the mapping.
        unsafe { &*self.map.ptr().cast::<Control>() }
    }

    pub(super) fn slot(&self, w: usize) -> &Slot {
        assert!(w < self.workers, "parfor: internal error: no slot for worker {w}");
        // SAFETY: slot `w` lies inside the mapping (`w < workers`), is aligned (the offset is a
        // multiple of the slot's alignment, the mapping page aligned) and zero filled or
        // written through atomics only, like `control`.
        unsafe { &*self.map.ptr().add(slots_offset()).cast::<Slot>().add(w) }
    }

    /// The range worker `w` runs, if any.
    pub(super) fn busy(&self, w: usize) -> Option<Busy> {
        let s = self.slot(w);
        s.busy.load(Ordering::Acquire).then(|| Busy {
            block: s.block.load(Ordering::Relaxed),
            start: s.start.load(Ordering::Relaxed),
            end: s.end.load(Ordering::Relaxed),
        })
    }
}

/// How long the parent may wait for its workers' pipes: forever without a time-out, else until
/// the earliest of the running items that `started` (on the [`now_ns`] clock) is due, in whole
/// milliseconds rounded up.
pub(super) fn until_first_due(
    timeout: Option<std::time::Duration>,
    started: impl Iterator<Item = u64>,
) -> nix::poll::PollTimeout {
    use nix::poll::PollTimeout;
    let Some(d) = timeout else { return PollTimeout::NONE };
    let d_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let now = now_ns();
    let wait = started.fold(d_ns, |wait, t| wait.min(t.saturating_add(d_ns).saturating_sub(now)));
    let ms = (wait / 1_000_000 + 1).min(i32::MAX as u64) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// Monotonic clock in nanoseconds, comparable across the processes of one machine.
pub(crate) fn now_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    u64::try_from(t.tv_sec()).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap_or(0)
}
