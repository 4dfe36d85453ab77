//! The worker process side: what a child runs between `fork()` and `_exit()`.
//!
//! Only this audited code and the job's own per-item code run here. The child has a single
//! thread (the one that called `fork()`); locks held by the parent's other threads at the
//! moment of the fork stay locked forever in the child, so this code takes none besides
//! the allocator's (glibc and musl make `malloc` usable after `fork()`), never touches
//! rayon, never flushes stdio (the buffers hold the parent's pending output) and leaves
//! with `_exit`, which runs no destructor and no `atexit` handler of the parent's program.

use super::ItemHook;
use super::ctl::{ACK_DONE, ACK_RESEND, ACK_WAIT, Shared};
use crate::job::Remote;
use crate::plan::Plan;
use crate::protocol::{self, Encoder, HEADER, Header, Kind};
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
    pub(super) remote: &'a dyn Remote,
    pub(super) plan: &'a Plan,
    pub(super) shared: &'a Shared,
    pub(super) worker: usize,
    pub(super) parent: nix::unistd::Pid,
    /// The write end of this worker's pipe.
    pub(super) fd: RawFd,
    /// Inherited descriptors that are not this worker's: those of every fork call running in
    /// the parent (the read ends of this call's pipes, and every descriptor of other calls).
    pub(super) close: Vec<RawFd>,
    /// Ranges to run before pulling blocks: the unfinished parts of a block whose worker died.
    pub(super) pending: Vec<(usize, Range<usize>)>,
    pub(super) timed: bool,
}

/// Makes panics in worker processes report without taking any lock of the parent's.
///
/// The standard panic hook takes a process-wide backtrace lock (and stderr's): when another
/// thread of the parent holds one of them at the moment of `fork()` (it was panicking or
/// printing), a worker whose item panics would wait for it forever. Installed once, before
/// the first fork, this hook hands every panic outside a worker to the hook it replaced,
/// and reports a worker's panic with one plain `write(2)` to stderr: the one line of a
/// collected panic (see `crate::quiet`) for an item of a call with `on_error = "collect"`,
/// else the message in full. (A program that later installs a hook of its own without
/// chaining to the previous one loses this protection.)
///
/// A call made while the calling thread unwinds (from a `Drop`) cannot install it (the
/// standard library refuses to change the hook then); the next call does. Until then workers
/// report panics through the hook in place.
pub(super) fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    if std::thread::panicking() {
        return;
    }
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !super::in_worker_process() {
                return previous(info);
            }
            // A collecting call's item: one line, as in the parent (see `crate::quiet`).
            let text = crate::quiet::collected_report(info).unwrap_or_else(|| {
                let msg = crate::quiet::payload_str(info.payload());
                let pid = std::process::id();
                match info.location() {
                    Some(at) => format!("parfor fork worker {pid}: panicked at {at}:\n{msg}\n"),
                    None => format!("parfor fork worker {pid}: panicked:\n{msg}\n"),
                }
            });
            let _ = write_all(2, text.as_bytes());
        }));
    });
}

/// Runs the worker and ends the process; never returns, never unwinds.
pub(super) fn main(child: Child<'_>) -> ! {
    exit_with(|| serve(child))
}

/// Runs `body` and ends the process with the code it returns ([`MACHINERY_FAILED`] if it
/// panics); never returns, never unwinds.
pub(super) fn exit_with(body: impl FnOnce() -> i32) -> ! {
    let code = match catch_unwind(AssertUnwindSafe(body)) {
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

/// Makes this process a worker: closes the inherited descriptors `close`, lets Ctrl-C kill
/// it, and arms its death with `parent`. `Err` when the parent is already gone.
pub(super) fn setup(close: &[RawFd], parent: nix::unistd::Pid) -> Result<(), ()> {
    super::IN_WORKER.store(true, Ordering::Relaxed);
    PARENT.store(parent.as_raw(), Ordering::Relaxed);
    for &fd in close {
        // SAFETY: `fd` is an inherited copy of a descriptor the parent's fork calls own;
        // nothing in this process uses it (the parent's `OwnedFd` values are never dropped
        // here: the child leaves with `_exit`).
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
    if nix::unistd::getppid() != parent {
        // The parent died before the death signal was armed.
        return Err(());
    }
    Ok(())
}

fn serve(mut child: Child<'_>) -> i32 {
    if setup(&child.close, child.parent).is_err() {
        return MACHINERY_FAILED;
    }
    let ctl = child.shared.control();
    let slot = child.shared.slot(child.worker);
    slot.ack.store(ACK_WAIT, Ordering::Relaxed);
    // SAFETY: the slot lies in the call's control mapping, which stays mapped until this
    // process ends (it leaves with `_exit`, never returning to the code that unmaps it).
    let hook = unsafe { ItemHook::new(slot, child.timed) };
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let raw_size = child.remote.raw_size();
    // `u128` words: aligned for any plain-old-data result.
    let mut scratch: Vec<u128> = Vec::new();
    // Try to write results straight into the parent's output (see `placed`).
    let mut place = cfg!(any(target_os = "linux", target_os = "android"));
    child.pending.reverse();
    // With a per-worker state: the ranges folded into it and not sent yet.
    let per_worker = child.remote.per_worker();
    let mut folded: Vec<(usize, Range<usize>)> = Vec::new();
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
                        return send_folded(&child, &mut buf, &folded);
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
            if per_worker {
                // Folded into this worker's state, sent at its end; a failure is the range's
                // outcome, sent now.
                let outcome = child.remote.fold_worker(
                    block,
                    range.clone(),
                    hook,
                    &mut Encoder::new(&mut buf),
                );
                if child.timed {
                    slot.between_items();
                }
                let kind = match outcome {
                    Ok(true) => {
                        folded.push((block, range));
                        slot.busy.store(false, Ordering::Release);
                        continue;
                    }
                    Ok(false) => Kind::Results,
                    Err(cause) => {
                        buf.truncate(HEADER);
                        protocol::encode_error(&cause, &mut buf);
                        Kind::Error
                    }
                };
                if send(&child, &mut buf, kind, block, range, &[]).is_err() {
                    return MACHINERY_FAILED;
                }
                slot.busy.store(false, Ordering::Release);
                continue;
            }
            // Plain-old-data results go raw, from a scratch buffer reused for every range
            // (warm in cache, no page faults), between the header and the encoded entries.
            let raw_len = raw_size.map_or(0, |size| range.len() * size);
            let words = raw_len.div_ceil(size_of::<u128>());
            if scratch.len() < words {
                scratch.resize(words, 0);
            }
            let raw = &mut as_bytes(&mut scratch)[..raw_len];
            let outcome =
                child.remote.encode(block, range.clone(), hook, raw, &mut Encoder::new(&mut buf));
            if child.timed {
                // Sending is not running: the time-out bounds items only.
                slot.between_items();
            }
            let (kind, raw) = match outcome {
                Ok(()) if raw_size.is_some() => {
                    let raw = &as_bytes(&mut scratch)[..raw_len];
                    if place && placed(&child, &range, raw) {
                        (Kind::Placed, &[][..])
                    } else {
                        // Not possible here (no such call, or not permitted): use the pipe
                        // from now on.
                        place = false;
                        (Kind::Results, raw)
                    }
                }
                Ok(()) => (Kind::Results, &[][..]),
                Err(cause) => {
                    buf.truncate(HEADER);
                    protocol::encode_error(&cause, &mut buf);
                    (Kind::Error, &[][..])
                }
            };
            if send(&child, &mut buf, kind, block, range, raw).is_err() {
                return MACHINERY_FAILED;
            }
            slot.busy.store(false, Ordering::Release);
        }
    })
}

/// Sends the frame of `kind` for `range` of `block`: its header (written into the first
/// [`HEADER`] bytes of `buf`), the raw results `raw`, then the entries that follow the header
/// in `buf`.
fn send(
    child: &Child<'_>,
    buf: &mut [u8],
    kind: Kind,
    block: usize,
    range: Range<usize>,
    raw: &[u8],
) -> Result<(), ()> {
    let header = Header {
        kind,
        worker: child.worker,
        block,
        range,
        raw: raw.len(),
        encoded: buf.len() - HEADER,
    };
    buf[..HEADER].copy_from_slice(&header.to_bytes());
    write_all(child.fd, &buf[..HEADER])
        .and_then(|()| write_all(child.fd, raw))
        .and_then(|()| write_all(child.fd, &buf[HEADER..]))
}

/// At the end of a worker that folded `folded` into its own state: sends that state (a
/// [`Kind::Folded`] frame), or the error that kept it from being encoded, which fails the
/// first folded range (so the call stops rather than running the ranges again). The exit code.
///
/// On Linux the state's large partial arrays do not go through the pipe: the frame gives
/// their addresses here, the parent copies them straight out of this process with
/// `process_vm_readv` (one copy, into the arrays it keeps, instead of an encoding, two pipe
/// copies and a decoding), and this worker waits for its answer in its slot before it
/// ends, which keeps the arrays alive and unchanged meanwhile. When the parent cannot read
/// them (the system refuses), it answers so and the state goes whole through the pipe.
fn send_folded(child: &Child<'_>, buf: &mut Vec<u8>, folded: &[(usize, Range<usize>)]) -> i32 {
    let ctl = child.shared.control();
    let by_address = cfg!(any(target_os = "linux", target_os = "android"))
        && !ctl.inline_folded.load(Ordering::Relaxed);
    if by_address {
        match send_state(child, buf, folded, true) {
            Ok(Kind::Folded) => {}
            Ok(_) => return 0,
            Err(()) => return MACHINERY_FAILED,
        }
        let slot = child.shared.slot(child.worker);
        loop {
            match slot.ack.load(Ordering::Acquire) {
                ACK_DONE => return 0,
                ACK_RESEND => break,
                _ if ctl.stop.load(Ordering::Relaxed) => return 0,
                _ => std::thread::sleep(std::time::Duration::from_micros(20)),
            }
        }
    }
    match send_state(child, buf, folded, false) {
        Ok(_) => 0,
        Err(()) => MACHINERY_FAILED,
    }
}

/// Sends this worker's state (see [`send_folded`]): the kind of frame sent.
fn send_state(
    child: &Child<'_>,
    buf: &mut Vec<u8>,
    folded: &[(usize, Range<usize>)],
    by_address: bool,
) -> Result<Kind, ()> {
    let Some((block, first)) = folded.first() else { return Ok(Kind::Error) };
    buf.clear();
    buf.resize(HEADER, 0);
    let encoded = child.remote.encode_worker(folded, by_address, &mut Encoder::new(buf));
    let (kind, range) = match encoded {
        Ok(()) => (Kind::Folded, first.start..first.start),
        Err(cause) => {
            buf.truncate(HEADER);
            protocol::encode_error(&cause, buf);
            (Kind::Error, first.clone())
        }
    };
    send(child, buf, kind, *block, range, &[]).map(|()| kind)
}

/// Writes the plain-old-data results `raw` of `range` straight into the parent's output
/// slots with `process_vm_writev` (one copy, made by this worker, instead of two through the
/// pipe and the parent's time). The slots' address in the parent is the one
/// [`Remote::raw_target`] gives here: the output was allocated before `fork()`, so it has the
/// same address in both processes, and the parent keeps it alive until this worker is dead
/// (its guard kills and reaps the workers before the output can be freed).
///
/// Whether every byte was written; `false` when the job has no such target or the kernel
/// refuses (no permission to write into the parent, or the call is filtered).
fn placed(child: &Child<'_>, range: &Range<usize>, raw: &[u8]) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let Some(target) = child.remote.raw_target(range.clone()) else { return false };
        if raw.is_empty() {
            return true;
        }
        let local = libc::iovec { iov_base: raw.as_ptr().cast_mut().cast(), iov_len: raw.len() };
        let remote = libc::iovec { iov_base: target.cast(), iov_len: raw.len() };
        // SAFETY: reads `raw` (live, borrowed) in this process and writes the parent's output
        // slots of `range`, which no one else writes and the parent reads only after the
        // range's frame arrived.
        let n = unsafe { libc::process_vm_writev(child.parent.as_raw(), &local, 1, &remote, 1, 0) };
        n >= 0 && n.unsigned_abs() == raw.len()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (child, range, raw);
        false
    }
}

/// The process that forked this worker (0 outside workers, or once writing into it was
/// refused): see [`write_into_parent`].
static PARENT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// In a fork worker: copies the `len` bytes at `at` to the same address in the parent, with
/// `process_vm_writev` (Linux). Whether every byte was written; `false` outside a worker, on
/// other systems, or when the kernel refuses (then never tried again in this worker).
///
/// # Safety
/// `at..at + len` is readable here, and in the parent it is memory allocated before the
/// fork that the parent neither reads nor writes until this worker's frame for it arrived,
/// and keeps alive until then (the parent's guard reaps or kills its workers before the call
/// returns): a sliced output's elements of the range this worker just ran.
pub(super) unsafe fn write_into_parent(at: *const u8, len: usize) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let parent = PARENT.load(Ordering::Relaxed);
        if parent == 0 {
            return false;
        }
        if len == 0 {
            return true;
        }
        let local = libc::iovec { iov_base: at.cast_mut().cast(), iov_len: len };
        let remote = libc::iovec { iov_base: at.cast_mut().cast(), iov_len: len };
        // SAFETY: reads `len` live bytes here and writes the parent's copy of the same
        // range, which the caller's contract reserves for this worker.
        let n = unsafe { libc::process_vm_writev(parent, &local, 1, &remote, 1, 0) };
        if n < 0 {
            // Not permitted (or not available): the pipe from now on.
            PARENT.store(0, Ordering::Relaxed);
        }
        n >= 0 && n.unsigned_abs() == len
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (at, len);
        false
    }
}

/// The bytes of `words`.
fn as_bytes(words: &mut [u128]) -> &mut [u8] {
    // SAFETY: the same memory, borrowed mutably, viewed as initialized bytes (every `u128`
    // byte is initialized and any byte value is a valid `u128` byte).
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size_of_val(words)) }
}

pub(super) fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), ()> {
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
