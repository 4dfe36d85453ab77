//! The worker process side: what a child runs between `fork()` and `_exit()`.
//!
//! Only this audited code and the job's own per-item code run here. The child has a single
//! thread (the one that called `fork()`); locks held by the parent's other threads at the
//! moment of the fork stay locked forever in the child, so this code takes none besides
//! the allocator's (glibc and musl make `malloc` usable after `fork()`), never touches
//! rayon, never flushes stdio (the buffers hold the parent's pending output) and leaves
//! with `_exit`, which runs no destructor and no `atexit` handler of the parent's program.

use super::ctl::{Shared, Slot};
use super::{Frame, HEADER, SLOT, TIMED};
use crate::job::{Job, encode_cause};
use crate::plan::Plan;
use crate::shm::Mapping;
use crate::worker::as_worker;
use std::ops::Range;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

/// Exit code of a worker whose own machinery failed (a panic outside the items, a broken
/// pipe to the parent).
pub(super) const MACHINERY_FAILED: i32 = 120;

/// Everything a worker needs, prepared by the parent before `fork()` so that the child
/// allocates as little as possible before it runs the job.
pub(super) struct Child<'a> {
    pub(super) job: &'a dyn Job,
    pub(super) plan: &'a Plan,
    pub(super) shared: &'a Shared,
    pub(super) pod: Option<&'a Mapping>,
    pub(super) worker: usize,
    pub(super) parent: nix::unistd::Pid,
    /// The write end of this worker's pipe.
    pub(super) fd: RawFd,
    /// Inherited descriptors that belong to the parent (the read ends of every worker's pipe).
    pub(super) close: Vec<RawFd>,
    /// Ranges to run before pulling blocks: the unfinished parts of a block whose worker died.
    pub(super) pending: Vec<(usize, Range<usize>)>,
    pub(super) timed: bool,
}

/// Runs the worker and ends the process; never returns, never unwinds.
pub(super) fn main(child: Child<'_>) -> ! {
    let code = match catch_unwind(AssertUnwindSafe(|| serve(child))) {
        Ok(code) => code,
        Err(payload) => {
            // A payload whose destructor panics would unwind out of here; forget it.
            std::mem::forget(payload);
            MACHINERY_FAILED
        }
    };
    // SAFETY: `_exit` ends the process at once, without running destructors or `atexit`
    // handlers that belong to the parent's program and must run there only.
    unsafe { libc::_exit(code) }
}

fn setup(child: &Child<'_>) -> Result<(), ()> {
    super::IN_WORKER.store(true, Ordering::Relaxed);
    for &fd in &child.close {
        // SAFETY: `fd` is an inherited copy of a descriptor the parent owns; nothing in this
        // process uses it (the parent's `OwnedFd` values are never dropped here: the child
        // leaves with `_exit`).
        unsafe { libc::close(fd) };
    }
    // Ctrl-C reaches the workers too (they are in the caller's process group): let it kill
    // them even when the caller ignores SIGINT or blocks it in this thread.
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
    // SAFETY: restoring the default disposition installs no handler.
    let _ = unsafe { signal(Signal::SIGINT, SigHandler::SigDfl) };
    let mut int = SigSet::empty();
    int.add(Signal::SIGINT);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&int), None);
    // Die with the parent. The signal follows the parent *thread* that forked us, which
    // waits in the call until every worker is gone, so it lives as long as we do.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    if nix::unistd::getppid() != child.parent {
        // The parent died before the death signal was armed.
        return Err(());
    }
    let slot: &Slot = child.shared.slot(child.worker);
    SLOT.store(std::ptr::from_ref(slot).cast_mut(), Ordering::Relaxed);
    TIMED.store(child.timed, Ordering::Relaxed);
    Ok(())
}

fn serve(mut child: Child<'_>) -> i32 {
    if setup(&child).is_err() {
        return MACHINERY_FAILED;
    }
    let ctl = child.shared.control();
    let slot = child.shared.slot(child.worker);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    child.pending.reverse();
    as_worker(child.worker, || {
        loop {
            if ctl.stop.load(Ordering::Relaxed) {
                return 0;
            }
            let (block, range) = match child.pending.pop() {
                Some(p) => p,
                None => {
                    let b = ctl.next_block.fetch_add(1, Ordering::Relaxed);
                    if b >= child.plan.blocks() {
                        return 0;
                    }
                    (b, child.plan.range(b))
                }
            };
            slot.block.store(block, Ordering::Relaxed);
            slot.start.store(range.start, Ordering::Relaxed);
            slot.end.store(range.end, Ordering::Relaxed);
            slot.item(range.start, child.timed);
            slot.busy.store(true, Ordering::Release);

            buf.clear();
            buf.resize(HEADER, 0);
            let outcome = match child.pod {
                Some(map) => {
                    let size = child.job.pod_size().unwrap_or(0);
                    // SAFETY: the parent sized the mapping for `plan.len()` items of `size`
                    // bytes; the bytes of `range` belong to this worker alone until it sends
                    // the range's frame (ranges are handed out once), and the mapping
                    // outlives the child (it never unmaps: it leaves with `_exit`).
                    let dst = unsafe { pod_range(map, size, &range) };
                    child.job.run_pod(block, range.clone(), dst, &mut buf)
                }
                None => child.job.run_encoded(block, range.clone(), &mut buf),
            };
            let kind = match outcome {
                Ok(()) => Frame::RESULTS,
                Err(cause) => {
                    buf.truncate(HEADER);
                    encode_cause(&cause, &mut buf);
                    Frame::ERROR
                }
            };
            let header = Frame { kind, worker: child.worker, block, range: range.clone() }
                .header(buf.len() - HEADER);
            buf[..HEADER].copy_from_slice(&header);
            if write_all(child.fd, &buf).is_err() {
                return MACHINERY_FAILED;
            }
            slot.busy.store(false, Ordering::Release);
            ctl.done.fetch_add(range.len(), Ordering::Relaxed);
        }
    })
}

/// The bytes of the items of `range` in the plain-old-data output mapping.
///
/// # Safety
/// `map` holds at least `range.end * size` bytes, and nothing else reads or writes the
/// returned bytes while the slice lives.
#[allow(clippy::mut_from_ref)] // exclusive access is the caller's contract
pub(super) unsafe fn pod_range<'m>(
    map: &'m Mapping,
    size: usize,
    range: &Range<usize>,
) -> &'m mut [u8] {
    let (start, len) = (range.start * size, range.len() * size);
    assert!(start + len <= map.len(), "parfor: internal error: output range out of bounds");
    // SAFETY: in bounds (asserted), initialized (the mapping is zero filled), exclusive by
    // the caller's contract.
    unsafe { std::slice::from_raw_parts_mut(map.ptr().add(start), len) }
}

fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), ()> {
    while !bytes.is_empty() {
        // SAFETY: writes from a live buffer of `bytes.len()` bytes to a descriptor this
        // process owns.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                continue;
            }
            return Err(());
        }
        bytes = &bytes[n.unsigned_abs()..];
    }
    Ok(())
}
