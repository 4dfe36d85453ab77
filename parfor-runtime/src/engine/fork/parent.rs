//! The parent side of a fork call: spawning workers, receiving their frames, noticing their
//! deaths and time-outs, and reaping every one of them.
//!
//! Whatever kills a worker, and whenever, every item of the call ends up stored or failed:
//! a worker that dies in a range fails the item its slot names and leaves the rest of the
//! range to a replacement; a worker that dies where its slot cannot tell what it held (while
//! claiming a block, or before it started the ranges it was handed) loses nothing either, since
//! the parent counts the items it received and, once its workers are gone, hands out again
//! whatever part of the claimed blocks never arrived.

use super::child::{self, Child};
use super::ctl::{ACK_DONE, ACK_RESEND, Busy, Shared, now_ns, until_first_due};
use super::reader::{Expect, FrameReader, Read};
use super::spawn;
use super::sys::{self, CallFd, WaitableChildren};
use crate::error::Cause;
use crate::job::{Job, Remote, Run, fail_range};
use crate::plan::Plan;
use crate::protocol::{self, Decoder, Header, Kind};
use nix::errno::Errno;
use nix::poll::PollTimeout;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One live worker process.
struct Kid {
    pid: Pid,
    worker: usize,
    /// The read end of its pipe.
    fd: CallFd,
    /// Receives its frames.
    reader: FrameReader,
    /// The range of the last frame received: if the worker dies while its slot still names
    /// that range, it died after sending it.
    last: Option<Busy>,
    /// Set when the parent killed it for running an item past the time-out.
    timed_out: Option<Duration>,
}

/// One call's workers and shared memory. Dropping it kills and reaps every worker still
/// alive (also when the parent unwinds), so a call never leaves a process behind.
struct Parent<'a> {
    job: &'a dyn Job,
    /// The job's outcomes as bytes.
    remote: &'a dyn Remote,
    plan: &'a Plan,
    timeout: Option<Duration>,
    shared: Shared,
    kids: Vec<Kid>,
    /// Unfinished parts of blocks whose worker died, for the next replacement worker.
    pending: Vec<(usize, Range<usize>)>,
    /// The ranges whose outcome arrived (frames) or that the parent failed itself (the item a
    /// worker died in), and how many items they hold: what the workers never returned is
    /// the rest of the claimed blocks.
    accounted: Vec<Range<usize>>,
    accounted_items: usize,
    /// Workers that died between ranges (not while running an item) since the last frame
    /// arrived, and how the last of them ended.
    idle_deaths: usize,
    last_idle_death: Option<Cause>,
    workers: usize,
    /// Keeps `SIGCHLD` waitable until every worker is reaped (also by `reap_later`).
    waitable: Option<WaitableChildren>,
}

pub(super) fn execute(job: &dyn Job, plan: &Plan, run: &Run) {
    let Some(remote) = job.remote() else {
        let cause = Cause::Engine("this call cannot run in worker processes".into());
        return fail_range(job, 0..plan.len(), &cause);
    };
    super::child::install_panic_hook();
    // Moved into the parent, which drops it once every worker is reaped.
    let waitable = WaitableChildren::enter();
    let workers = run.workers.count.clamp(1, plan.blocks().max(1));
    let shared = match Shared::new(workers) {
        Ok(s) => s,
        Err(e) => {
            let cause = Cause::Engine(format!("cannot map shared memory: {e}"));
            return fail_range(job, 0..plan.len(), &cause);
        }
    };
    // Where reading a worker's memory was refused once, workers send their states whole.
    shared.control().inline_folded.store(crate::array_part::fetch_refused(), Ordering::Relaxed);
    let mut parent = Parent {
        job,
        remote,
        plan,
        timeout: run.timeout,
        shared,
        kids: Vec::with_capacity(workers),
        pending: Vec::new(),
        accounted: Vec::new(),
        accounted_items: 0,
        idle_deaths: 0,
        last_idle_death: None,
        workers,
        waitable: Some(waitable),
    };
    for w in 0..workers {
        if let Err(e) = parent.spawn(w, Vec::new()) {
            if w == 0 {
                let cause = Cause::Engine(format!("cannot start a worker process: {e}"));
                return parent.abandon(&cause);
            }
            // Carry on with the workers we have.
            break;
        }
    }
    parent.serve();
}

impl Parent<'_> {
    /// Forks worker `worker`, which first runs `pending`.
    fn spawn(&mut self, worker: usize, pending: Vec<(usize, Range<usize>)>) -> Result<(), Errno> {
        let (remote, plan, shared) = (self.remote, self.plan, &self.shared);
        let timed = self.timeout.is_some();
        let parent = nix::unistd::getpid();
        // Kept to hand the ranges to the next worker if this one cannot start.
        let again = pending.clone();
        let main = move |ends: spawn::Ends| -> std::convert::Infallible {
            child::main(Child {
                remote,
                plan,
                shared,
                worker,
                parent,
                fd: ends.results,
                close: ends.close,
                pending,
                timed,
            })
        };
        // SAFETY: `child::main` never returns into the caller's code and leaves with `_exit`;
        // it runs the job and audited code that takes no lock another thread of this process
        // could hold at the fork, except the allocator's. Everything it needs was built
        // before the fork.
        match unsafe { spawn::fork_worker(false, main) } {
            Ok((pid, pipes)) => {
                self.kids.push(Kid {
                    pid,
                    worker,
                    fd: pipes.results,
                    reader: FrameReader::new(),
                    last: None,
                    timed_out: None,
                });
                Ok(())
            }
            Err(e) => {
                self.pending.extend(again);
                Err(e)
            }
        }
    }

    /// Whether blocks or parts of blocks are left to hand out.
    fn work_left(&self) -> bool {
        !self.job.failures().stopped()
            && (!self.pending.is_empty()
                || self.shared.control().next_block.load(Ordering::Relaxed) < self.plan.blocks())
    }

    /// Receives frames until every worker is gone and no work is left: the blocks and parts
    /// of blocks handed out but never returned (their worker died before its slot named
    /// them) go to a new worker.
    fn serve(&mut self) {
        loop {
            self.receive();
            if self.job.failures().stopped() {
                return;
            }
            let lost = self.lost();
            self.pending.extend(lost);
            if !self.work_left() {
                return;
            }
            if self.idle_deaths > self.idle_death_limit() {
                let cause = self.dying();
                return self.abandon(&cause);
            }
            let pending = std::mem::take(&mut self.pending);
            if let Err(e) = self.spawn(0, pending) {
                let cause = Cause::Engine(format!("cannot start a worker process: {e}"));
                return self.abandon(&cause);
            }
        }
    }

    /// How many workers in a row may die between items before the call gives up.
    fn idle_death_limit(&self) -> usize {
        2 * self.workers + 2
    }

    /// The failure of items that no worker could be kept alive long enough to run.
    fn dying(&self) -> Cause {
        match &self.last_idle_death {
            Some(cause) => Cause::Engine(format!(
                "worker processes keep dying between items (the last one: {cause})"
            )),
            None => Cause::Engine("worker processes keep dying between items".into()),
        }
    }

    /// Records that the outcome of `range` is known.
    fn account(&mut self, range: Range<usize>) {
        self.accounted_items += range.len();
        self.accounted.push(range);
    }

    /// The parts of claimed blocks that are neither accounted for nor pending: what workers
    /// took and died with before their slot said so. Only meaningful when no worker runs.
    fn lost(&mut self) -> Vec<(usize, Range<usize>)> {
        let claimed =
            self.shared.control().next_block.load(Ordering::Relaxed).min(self.plan.blocks());
        let end = if claimed == 0 { 0 } else { self.plan.range(claimed - 1).end };
        let pending: usize = self.pending.iter().map(|p| p.1.len()).sum();
        if self.accounted_items + pending >= end {
            return Vec::new();
        }
        let mut known: Vec<Range<usize>> = self.accounted.clone();
        known.extend(self.pending.iter().map(|p| p.1.clone()));
        known.sort_unstable_by_key(|r| r.start);
        let mut lost = Vec::new();
        let mut gap = |mut a: usize, b: usize| {
            while a < b {
                let block = self.plan.block_of(a);
                let e = b.min(self.plan.range(block).end);
                lost.push((block, a..e));
                a = e;
            }
        };
        let mut at = 0;
        for r in known {
            gap(at, r.start.min(end));
            at = at.max(r.end);
        }
        gap(at, end);
        lost
    }

    /// Whether the outcome of every item is known (stored or failed): the workers then have
    /// nothing left to send, and the call need not wait for them to end.
    fn all_in(&self) -> bool {
        self.accounted_items >= self.plan.len() && self.pending.is_empty()
    }

    /// Receives frames until every worker is gone, or every item's outcome is in.
    fn receive(&mut self) {
        while !self.kids.is_empty() && !self.all_in() {
            if self.job.failures().stopped() {
                self.shared.control().stop.store(true, Ordering::Relaxed);
                self.pending.clear();
            }
            let timeout = self.poll_timeout();
            let ready = sys::readable(self.kids.iter().map(|k| &k.fd), timeout);
            // Back to front: servicing a worker may remove it (and append a replacement).
            for k in (0..ready.len()).rev() {
                if ready[k] {
                    self.service(k);
                }
            }
            self.kill_late();
        }
    }

    /// How long to wait for the pipes: forever without a time-out, else until the earliest
    /// running item is due.
    fn poll_timeout(&self) -> PollTimeout {
        // `started` is `ctl::BETWEEN_ITEMS` (far in the future) while the worker ships
        // results: the time-out bounds only the items' own runs.
        let started =
            self.kids.iter().filter(|kid| kid.timed_out.is_none() && self.running(kid).is_some());
        until_first_due(
            self.timeout,
            started.map(|kid| self.shared.slot(kid.worker).started.load(Ordering::Relaxed)),
        )
    }

    /// The range `kid` runs and has not sent yet.
    fn running(&self, kid: &Kid) -> Option<Busy> {
        self.shared.busy(kid.worker).filter(|b| Some(*b) != kid.last)
    }

    /// Kills workers whose current item ran past the time-out.
    fn kill_late(&mut self) {
        let Some(d) = self.timeout else { return };
        let d_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = now_ns();
        for k in 0..self.kids.len() {
            let kid = &self.kids[k];
            if kid.timed_out.is_some() || self.running(kid).is_none() {
                continue;
            }
            let slot = self.shared.slot(kid.worker);
            let _ = slot.current.load(Ordering::Acquire);
            let started = slot.started.load(Ordering::Relaxed);
            if now.saturating_sub(started) > d_ns {
                let _ = kill(kid.pid, Signal::SIGKILL);
                self.kids[k].timed_out = Some(d);
            }
        }
    }

    /// Reads what worker `k` sent (one `read`); stores a frame once it is complete; handles
    /// the worker's exit at end of file.
    fn service(&mut self, k: usize) {
        let kid = &mut self.kids[k];
        let call = Call { remote: self.remote, plan: self.plan };
        let header = match kid.reader.read(kid.fd.raw(), &call) {
            Read::More => return,
            Read::Frame(header) => header,
            Read::End => return self.exited(k),
            Read::Broken => {
                // Treat a broken pipe like the worker's end.
                let _ = kill(kid.pid, Signal::SIGKILL);
                return self.exited(k);
            }
        };
        kid.last =
            Some(Busy { block: header.block, start: header.range.start, end: header.range.end });
        self.idle_deaths = 0;
        if header.kind == Kind::Folded {
            self.store_folded(k, &header);
        } else {
            self.account(header.range.clone());
            let (raw, encoded) = self.kids[k].reader.outcome();
            self.store(&header, raw, encoded);
        }
        self.kids[k].reader.next_frame();
    }

    /// Stores the state that worker `k` folded its ranges into, and accounts for those ranges
    /// (until it arrives they are not: a worker that dies before sending it leaves them to a
    /// replacement).
    fn store_folded(&mut self, k: usize, header: &Header) {
        let (_, encoded) = self.kids[k].reader.outcome();
        let stored = self.remote.store_worker(Decoder::new(encoded), self.kids[k].pid.as_raw());
        // The worker waits for this answer (when it sent its state by address) before it
        // ends; read, refused or failed, its state is no longer needed in its memory.
        let ack = match &stored {
            Ok(None) => ACK_RESEND,
            _ => ACK_DONE,
        };
        self.shared.slot(self.kids[k].worker).ack.store(ack, Ordering::Release);
        match stored {
            // Not readable there: the worker sends it again, whole (or dies, leaving its
            // ranges unaccounted, to run again).
            Ok(None) => {}
            Ok(Some(ranges)) => {
                for (block, range) in ranges {
                    let fits = block < self.plan.blocks()
                        && self.plan.range(block).start <= range.start
                        && range.start <= range.end
                        && range.end <= self.plan.range(block).end;
                    assert!(fits, "parfor: fork engine: corrupt folded ranges from a worker");
                    self.account(range);
                }
            }
            Err(cause) => self.job.fail(header.range.start, cause),
        }
    }

    /// Stores the outcome of one range: its raw results and encoded bytes.
    fn store(&self, header: &Header, raw: &[u8], encoded: &[u8]) {
        let (block, range) = (header.block, header.range.clone());
        let outcome = match header.kind {
            Kind::Results | Kind::Placed => {
                self.remote.store(block, range.clone(), raw, Decoder::new(encoded))
            }
            Kind::Error => Err(protocol::decode_error(encoded)),
            Kind::Folded => unreachable!("stored by `store_folded`"),
            Kind::Task => unreachable!("refused by `Call::valid`"),
        };
        if let Err(cause) = outcome {
            fail_range(self.job, range, &cause);
        }
    }

    /// Handles the end of worker `k`: reaps it, fails the item it died in, and starts a
    /// replacement while work is left.
    fn exited(&mut self, k: usize) {
        let kid = self.kids.remove(k);
        let status = reap(kid.pid);
        let running = self.running(&kid);
        let Kid { worker, fd, timed_out, .. } = kid;
        drop(fd);
        // The worker is gone: its slot is ours again, idle for its replacement.
        let slot = self.shared.slot(worker);
        let current = slot.current.load(Ordering::Acquire);
        slot.busy.store(false, Ordering::Release);
        if let Some(b) = running {
            let item = current.clamp(b.start, b.end.saturating_sub(1).max(b.start));
            let cause = match timed_out {
                Some(d) => Cause::Timeout(d),
                None => status_cause(status),
            };
            self.account(item..item + 1);
            self.job.fail(item, cause);
            if !self.job.failures().stopped() {
                for r in [b.start..item, item + 1..b.end] {
                    if !r.is_empty() {
                        self.pending.push((b.block, r));
                    }
                }
            }
        } else if !clean_exit(&status) {
            self.idle_deaths += 1;
            self.last_idle_death = Some(status_cause(status));
        }
        if self.work_left() && self.idle_deaths <= self.idle_death_limit() {
            // On failure the ranges stay pending; once no worker is left, `serve` tries
            // once more, then gives up on them.
            let pending = std::mem::take(&mut self.pending);
            let _ = self.spawn(worker, pending);
        }
    }

    /// Fails every item not handed out yet (pending parts of blocks, unclaimed blocks).
    fn abandon(&mut self, cause: &Cause) {
        for (_, r) in std::mem::take(&mut self.pending) {
            fail_range(self.job, r, cause);
        }
        let ctl = self.shared.control();
        loop {
            let b = ctl.next_block.fetch_add(1, Ordering::Relaxed);
            if b >= self.plan.blocks() {
                break;
            }
            fail_range(self.job, self.plan.range(b), cause);
        }
    }
}

/// What a call's workers may send: ranges of one block of the plan, with raw results exactly
/// when the job makes them.
struct Call<'a> {
    remote: &'a dyn Remote,
    plan: &'a Plan,
}

impl Expect for Call<'_> {
    fn valid(&self, h: &Header) -> bool {
        let raw = match (h.kind, self.remote.raw_size()) {
            (Kind::Results, Some(size)) => h.range.len() * size,
            _ => 0,
        };
        h.kind != Kind::Task
            && h.raw == raw
            && h.block < self.plan.blocks()
            && self.plan.range(h.block).start <= h.range.start
            && h.range.end <= self.plan.range(h.block).end
    }

    fn raw_size(&self) -> Option<usize> {
        self.remote.raw_size()
    }

    fn raw_target(&self, range: Range<usize>) -> Option<*mut u8> {
        self.remote.raw_target(range)
    }
}

impl Drop for Parent<'_> {
    fn drop(&mut self) {
        let done = self.all_in();
        let mut exiting = Vec::new();
        for kid in self.kids.drain(..) {
            // Every outcome is in, or the call is abandoned: what a live worker would still
            // do is irrelevant, and killing it bounds how long the reaping takes.
            let _ = kill(kid.pid, Signal::SIGKILL);
            if done {
                exiting.push(kid.pid);
            } else {
                let _ = reap(kid.pid);
            }
        }
        reap_later(exiting, self.waitable.take());
    }
}

/// Reaps workers that sent everything and are ending, off the call's critical path: a
/// process ends only after the kernel has torn down its copy of the address space (for a
/// worker of a large parent, tens of milliseconds of page-table work), and the caller has
/// its results already. Workers that have ended are reaped at once; the others go to the
/// process's reaper thread, which waits for each by pid (never `waitpid(-1)`: the program's
/// own children are not ours to reap). `waitable` is dropped once they are reaped: until
/// then their statuses stay waitable. Without a reaper (the system refuses a thread) the
/// call waits for them itself.
fn reap_later(pids: Vec<Pid>, waitable: Option<WaitableChildren>) {
    let mut left = Vec::new();
    for pid in pids {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => left.push(pid),
            _ => {}
        }
    }
    if left.is_empty() {
        return;
    }
    if let Err(Reap(left, waitable)) = Reaper::send(Reap(left, waitable)) {
        for pid in left {
            let _ = reap(pid);
        }
        drop(waitable);
    }
}

/// Workers for the reaper thread to reap, and the guard to drop after them.
struct Reap(Vec<Pid>, Option<WaitableChildren>);

/// The process's reaper thread: started by the first call that leaves workers behind, it
/// then waits for work for as long as the process lives (one parked thread, instead of a
/// thread per call).
struct Reaper {
    /// The process that started it: a process forked from this one inherits the value but
    /// not the thread, and starts its own.
    owner: u32,
    tx: std::sync::mpsc::Sender<Reap>,
}

static REAPER: std::sync::Mutex<Option<Reaper>> = std::sync::Mutex::new(None);

impl Reaper {
    /// Hands `work` to the reaper thread, starting it if need be; gives the work back when
    /// no thread can take it.
    fn send(work: Reap) -> Result<(), Reap> {
        let mut reaper = REAPER.lock().unwrap_or_else(|e| e.into_inner());
        let me = std::process::id();
        if reaper.as_ref().is_none_or(|r| r.owner != me) {
            // Inherited from the process this one was forked from, whose thread is not here:
            // forgotten, not dropped (nothing of it is ours to touch).
            std::mem::forget(reaper.take());
            let (tx, rx) = std::sync::mpsc::channel::<Reap>();
            let started =
                std::thread::Builder::new().name("parfor-reaper".into()).spawn(move || {
                    for Reap(pids, waitable) in rx {
                        for pid in pids {
                            let _ = reap(pid);
                        }
                        drop(waitable);
                    }
                });
            if started.is_err() {
                return Err(work);
            }
            *reaper = Some(Reaper { owner: me, tx });
        }
        let sent = match reaper.as_ref() {
            Some(r) => r.tx.send(work),
            None => return Err(work),
        };
        sent.map_err(|std::sync::mpsc::SendError(work)| {
            // The thread is gone (it never ends on its own): the next call starts another.
            *reaper = None;
            work
        })
    }
}

/// How a reaped worker ended, as [`reap`] found it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ended {
    /// Its wait status, decoded by nix.
    Status(WaitStatus),
    /// Killed by signal `signo`, one that nix does not name (a real-time signal).
    OtherSignal(i32),
    /// No status: the error of `waitpid` (`ECHILD` when the status is gone: the system
    /// discarded it because the program ignores `SIGCHLD`, see `WaitableChildren`, or
    /// another part of the program waited for the worker).
    Lost(Errno),
}

/// Waits for `pid` to end and says how it ended. nix decodes the status; a signal nix has
/// no name for (a real-time signal) is kept as its number instead of being lost with the
/// status, which `waitpid` consumes.
pub(super) fn reap(pid: Pid) -> Ended {
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: `raw` is a live, writable `c_int` for the whole call, the only memory
        // `waitpid` writes.
        let r = unsafe { libc::waitpid(pid.as_raw(), &mut raw, 0) };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Ended::Lost(e),
            }
        }
        return match WaitStatus::from_raw(pid, raw) {
            Ok(status) => Ended::Status(status),
            Err(_) if libc::WIFSIGNALED(raw) => Ended::OtherSignal(libc::WTERMSIG(raw)),
            Err(e) => Ended::Lost(e),
        };
    }
}

/// Whether a reaped worker exited normally with code 0.
pub(super) fn clean_exit(ended: &Ended) -> bool {
    matches!(ended, Ended::Status(WaitStatus::Exited(_, 0)))
}

/// Why a worker that ended as `ended` ended.
pub(super) fn status_cause(ended: Ended) -> Cause {
    match ended {
        Ended::Status(WaitStatus::Signaled(_, signal, _)) => {
            Cause::Signal { signo: signal as i32, name: signal.as_str().to_owned() }
        }
        Ended::Status(WaitStatus::Exited(_, code)) => Cause::Exit(code),
        Ended::Status(other) => {
            Cause::Engine(format!("worker process ended with wait status {other:?}"))
        }
        Ended::OtherSignal(signo) => Cause::Signal { signo, name: signal_name(signo) },
        Ended::Lost(e) => Cause::Engine(format!(
            "the worker process's exit status was lost ({e}): this program ignores SIGCHLD \
             (SIG_IGN or SA_NOCLDWAIT, which make the system discard it), or waited for the \
             worker itself (waitpid(-1) in a SIGCHLD handler, for example)"
        )),
    }
}

/// A name for signal `signo`, which nix does not name: `SIGRTMIN+n` for real-time signals.
fn signal_name(signo: i32) -> String {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let rtmin = libc::SIGRTMIN();
        if (rtmin..=libc::SIGRTMAX()).contains(&signo) {
            return format!("SIGRTMIN+{}", signo - rtmin);
        }
    }
    format!("signal {signo}")
}
