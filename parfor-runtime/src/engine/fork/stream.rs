//! Worker processes for a stream (`parmap_iter!` on the fork engine): a [`Pool`] of workers
//! forked when the stream starts, each fed tasks (batches of item indices) and sending every
//! item's outcome back as soon as it is worth a message.
//!
//! The same protocol as a `parmap!` call's workers ([`crate::protocol`]): a task travels to a
//! worker as a [`Header`] of kind [`Kind::Task`] naming the task and its items, and the
//! outcomes come back as [`Kind::Results`] frames of entries (one value or failure per item)
//! for consecutive items of the task, or one [`Kind::Error`] frame. A worker ships what it has
//! when its task ends, when its buffer is big, or when the last message left more than
//! [`FLUSH_AFTER`] ago, so cheap items travel hundreds to a message and a slow item holds
//! nothing back for long.
//!
//! Two kinds of workers:
//! - *fed* workers (indexed sources: the items are indices into data every worker reads
//!   copy-on-write) live as long as the stream and read their tasks from a pipe;
//! - *one-task* workers (lazy sources, whose items are produced after the stream started):
//!   each is forked for one task, whose items it reads copy-on-write from the parent's memory,
//!   then ends. The items never need to cross a process boundary.
//!
//! A worker that dies fails the item its slot names (with the signal, exit code or time-out
//! that ended it), and the unfinished rest of its tasks is handed back to the stream, which
//! gives it to a replacement. Dropping the pool kills and reaps every worker.

use super::ItemHook;
use super::child::{self, MACHINERY_FAILED, write_all};
use super::ctl::{BETWEEN_ITEMS, Shared, now_ns, until_first_due};
use super::parent::{clean_exit, reap, status_cause};
use super::reader::{Expect, FrameReader, Read};
use super::spawn;
use super::sys::{self, CallFd, WaitableChildren};
use crate::error::Cause;
use crate::protocol::{self, Encoder, HEADER, Header, Kind};
use crate::worker::as_worker;
use nix::errno::Errno;
use nix::poll::PollTimeout;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::ops::Range;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A worker ships what it has when the last message left longer ago than this.
pub(crate) const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// A worker ships what it has once its buffer holds this many bytes.
const FLUSH_BYTES: usize = 256 * 1024;

/// A batch of items for one worker: items `range` of the stream, task `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Task {
    pub(crate) seq: usize,
    pub(crate) range: Range<usize>,
}

/// A stream's work as its worker processes run it.
pub(crate) trait StreamJob: Sync {
    /// In a worker: runs the items of `task` in order, telling `hook` which one runs, and
    /// appends one entry per item (its encoded value or its failure) through `sink`, calling
    /// [`Sink::done`] after each.
    ///
    /// # Errors
    /// The results cannot cross a process boundary: the whole task fails with that cause.
    fn run(&self, task: &Task, hook: ItemHook, sink: &mut Sink) -> Result<(), Cause>;
}

/// A worker's outgoing frames: collects entries and ships them when due.
pub(crate) struct Sink {
    fd: RawFd,
    worker: usize,
    seq: usize,
    /// A header's room, then the entries not shipped yet.
    buf: Vec<u8>,
    /// The first item not shipped yet.
    from: usize,
    /// When the last frame left ([`now_ns`]).
    shipped_at: u64,
    /// When the items of the next frame started running (the task's start, or the last frame).
    clock: u64,
    /// Items before the next look at the clock, and how many the last look waited.
    countdown: u32,
    every: u32,
    /// When the clock was last looked at ([`now_ns`]).
    looked_at: u64,
    /// Writing to the parent failed: the worker ends.
    broken: bool,
}

impl Sink {
    /// The encoder of the current item's entry.
    #[inline(always)]
    pub(crate) fn entries(&mut self) -> Encoder<'_> {
        Encoder::new(&mut self.buf)
    }

    /// Item `i`'s entry is appended: ships what is buffered when due. `false` when the parent
    /// cannot be written to any more (the worker then stops).
    #[inline(always)]
    pub(crate) fn done(&mut self, i: usize) -> bool {
        self.countdown -= 1;
        if self.countdown == 0 || self.buf.len() >= FLUSH_BYTES {
            self.look(i);
        }
        !self.broken
    }

    /// Looks at the clock (not after every cheap item: reading it costs as much as one).
    #[cold]
    fn look(&mut self, i: usize) {
        let now = now_ns();
        let since = now.saturating_sub(self.shipped_at);
        // How long the items since the last look took (not the time since the last frame
        // left, which includes the wait for this task: cheap items would then look at the
        // clock after every item until the next frame).
        let run = now.saturating_sub(self.looked_at);
        self.looked_at = now;
        if since >= FLUSH_AFTER.as_nanos() as u64 || self.buf.len() >= FLUSH_BYTES {
            self.ship(i + 1);
            self.every = 1;
        } else if run < FLUSH_AFTER.as_nanos() as u64 / 64 {
            // Items are cheap: look less often.
            self.every = (self.every * 2).min(256);
        }
        self.countdown = self.every;
    }

    fn begin(&mut self, task: &Task) {
        self.seq = task.seq;
        self.from = task.range.start;
        self.buf.clear();
        self.buf.resize(HEADER, 0);
        self.countdown = 1;
        self.every = 1;
        self.clock = now_ns();
        self.looked_at = self.clock;
    }

    /// Ships the entries of items `from..end` (if any).
    fn ship(&mut self, end: usize) {
        if end <= self.from || self.broken {
            return;
        }
        protocol::push_time(&mut self.buf, now_ns().saturating_sub(self.clock));
        self.send(Kind::Results, end);
    }

    /// Ships items `from..end` as one failure.
    fn fail(&mut self, end: usize, cause: &Cause) {
        self.buf.truncate(HEADER);
        protocol::encode_error(cause, &mut self.buf);
        self.send(Kind::Error, end);
    }

    fn send(&mut self, kind: Kind, end: usize) {
        let header = Header {
            kind,
            worker: self.worker,
            block: self.seq,
            range: self.from..end,
            raw: 0,
            encoded: self.buf.len() - HEADER,
        };
        self.buf[..HEADER].copy_from_slice(&header.to_bytes());
        self.broken = write_all(self.fd, &self.buf).is_err();
        self.buf.truncate(HEADER);
        self.from = end;
        self.shipped_at = now_ns();
        self.clock = self.shipped_at;
    }
}

/// One live worker process.
struct Kid {
    pid: Pid,
    results: CallFd,
    /// Fed workers only.
    tasks: Option<CallFd>,
    reader: FrameReader,
    /// Its tasks, in the order it runs them; the first is running.
    queue: VecDeque<Task>,
    /// The first item of the first task whose outcome has not arrived.
    next: usize,
    /// Set when the pool killed it for running an item past the time-out.
    timed_out: Option<Duration>,
}

/// What [`Pool::wait`] saw.
pub(crate) enum Event<'b> {
    /// The outcomes of items `range` of task `seq`: their entries, and how long the worker
    /// took to run them.
    Results { seq: usize, range: Range<usize>, entries: &'b [u8], took: Duration },
    /// Items `range` of task `seq` failed together (their results cannot cross).
    Failed { seq: usize, range: Range<usize>, cause: Cause },
    /// A worker ended before finishing its tasks: `failed` is the item it died in (its task,
    /// the item, why), `rerun` what it left undone. `give_up` when workers keep dying
    /// between items: what to fail the rest of the stream with.
    Died { failed: Option<(usize, usize, Cause)>, rerun: Vec<Task>, give_up: Option<Cause> },
}

/// A stream's worker processes. Dropping it kills and reaps every worker.
pub(crate) struct Pool {
    shared: Shared,
    /// By worker slot.
    kids: Vec<Option<Kid>>,
    fed: bool,
    timeout: Option<Duration>,
    /// Workers that died between items since the last frame arrived.
    idle_deaths: usize,
    /// Declared last: dropped after `Drop::drop` has reaped every worker.
    _waitable: WaitableChildren,
}

/// The frames a worker may send: outcomes of the next items of the task it runs.
struct Next<'a>(Option<&'a Task>, usize);

impl Expect for Next<'_> {
    fn valid(&self, h: &Header) -> bool {
        let Next(Some(task), next) = *self else { return false };
        matches!(h.kind, Kind::Results | Kind::Error)
            && h.raw == 0
            && h.block == task.seq
            && h.range.start == next
            && next < h.range.end
            && h.range.end <= task.range.end
    }

    fn raw_size(&self) -> Option<usize> {
        None
    }

    fn raw_target(&self, _: Range<usize>) -> Option<*mut u8> {
        None
    }
}

impl Pool {
    /// A pool of at most `workers` workers (none started yet): `fed` workers take tasks
    /// through [`Pool::send`], the others run the one task they are forked with.
    pub(crate) fn new(workers: usize, fed: bool, timeout: Option<Duration>) -> Result<Pool, Cause> {
        child::install_panic_hook();
        let waitable = WaitableChildren::enter();
        let shared = Shared::new(workers.max(1))
            .map_err(|e| Cause::Engine(format!("cannot map shared memory: {e}")))?;
        Ok(Pool {
            shared,
            kids: (0..workers.max(1)).map(|_| None).collect(),
            fed,
            timeout,
            idle_deaths: 0,
            _waitable: waitable,
        })
    }

    /// How many workers the pool may have.
    pub(crate) fn slots(&self) -> usize {
        self.kids.len()
    }

    /// Whether worker slot `w` has a live worker.
    pub(crate) fn alive(&self, w: usize) -> bool {
        self.kids[w].is_some()
    }

    /// Whether any worker is alive.
    pub(crate) fn any_alive(&self) -> bool {
        self.kids.iter().any(Option::is_some)
    }

    /// How many tasks worker `w` holds (0 for a free slot).
    pub(crate) fn queued(&self, w: usize) -> usize {
        self.kids[w].as_ref().map_or(0, |k| k.queue.len())
    }

    /// Forks a worker into free slot `w`, running `job`: a fed worker waits for tasks, a
    /// one-task worker runs `task`.
    pub(crate) fn spawn(
        &mut self,
        w: usize,
        job: &dyn StreamJob,
        task: Option<Task>,
    ) -> Result<(), Errno> {
        debug_assert!(self.kids[w].is_none() && (task.is_some() != self.fed));
        let shared = &self.shared;
        let timed = self.timeout.is_some();
        let parent = nix::unistd::getpid();
        let own = task.clone();
        let main = move |ends: spawn::Ends| -> std::convert::Infallible {
            child::exit_with(|| serve(job, shared, w, parent, ends, own, timed))
        };
        // SAFETY: `serve` runs inside `exit_with`, which never returns into the caller's code
        // nor unwinds, and leaves with `_exit`; it runs the job and audited code that takes
        // no lock another thread could hold at the fork (the allocator's excepted). What it
        // needs was built before the fork.
        let (pid, pipes) = unsafe { spawn::fork_worker(self.fed, main) }?;
        let kid = Kid {
            pid,
            results: pipes.results,
            tasks: pipes.tasks,
            reader: FrameReader::new(),
            next: task.as_ref().map_or(0, |t| t.range.start),
            queue: task.into_iter().collect(),
            timed_out: None,
        };
        self.kids[w] = Some(kid);
        Ok(())
    }

    /// Hands `task` to the fed worker in slot `w`. A worker that died meanwhile is noticed
    /// by [`Pool::wait`], which hands the task back.
    pub(crate) fn send(&mut self, w: usize, task: Task) {
        let kid = self.kids[w].as_mut().expect("a live worker");
        let header = Header {
            kind: Kind::Task,
            worker: w,
            block: task.seq,
            range: task.range.clone(),
            raw: 0,
            encoded: 0,
        };
        if let Some(fd) = &kid.tasks {
            // A few dozen bytes, into a pipe that holds at most a few tasks: never blocks.
            let _ = write_quietly(fd.raw(), &header.to_bytes());
        }
        if kid.queue.is_empty() {
            kid.next = task.range.start;
        }
        kid.queue.push_back(task);
    }

    /// Waits until a worker sends something or ends (or an item is due to time out), and
    /// hands what happened to `on`.
    pub(crate) fn wait(&mut self, on: &mut dyn FnMut(Event<'_>)) {
        let live: Vec<usize> = (0..self.kids.len()).filter(|&w| self.kids[w].is_some()).collect();
        if live.is_empty() {
            return;
        }
        let timeout = self.poll_timeout();
        let ready = sys::readable(
            live.iter().map(|&w| &self.kids[w].as_ref().expect("live").results),
            timeout,
        );
        for (k, &w) in live.iter().enumerate() {
            if ready[k] {
                self.service(w, on);
            }
        }
        self.kill_late();
    }

    /// How long to wait: forever without a time-out, else until the earliest running item
    /// is due.
    fn poll_timeout(&self) -> PollTimeout {
        let started = self.kids.iter().enumerate();
        until_first_due(
            self.timeout,
            started.filter_map(|(w, kid)| kid.as_ref().and_then(|k| self.started(w, k))),
        )
    }

    /// When the item worker `w` runs started, if it runs one that may still time out.
    fn started(&self, w: usize, kid: &Kid) -> Option<u64> {
        if kid.timed_out.is_some() || kid.queue.is_empty() || self.shared.busy(w).is_none() {
            return None;
        }
        let slot = self.shared.slot(w);
        let _ = slot.current.load(Ordering::Acquire);
        let started = slot.started.load(Ordering::Relaxed);
        (started != BETWEEN_ITEMS).then_some(started)
    }

    /// Kills the workers whose item ran past the time-out.
    fn kill_late(&mut self) {
        let Some(d) = self.timeout else { return };
        let d_ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = now_ns();
        for w in 0..self.kids.len() {
            let Some(kid) = &self.kids[w] else { continue };
            if self.started(w, kid).is_some_and(|s| now.saturating_sub(s) > d_ns) {
                let _ = kill(kid.pid, Signal::SIGKILL);
                if let Some(kid) = &mut self.kids[w] {
                    kid.timed_out = Some(d);
                }
            }
        }
    }

    /// Reads what worker `w` sent (one `read`); hands a complete frame to `on`; handles the
    /// worker's end.
    fn service(&mut self, w: usize, on: &mut dyn FnMut(Event<'_>)) {
        let Some(kid) = self.kids[w].as_mut() else { return };
        let expect = Next(kid.queue.front(), kid.next);
        let header = match kid.reader.read(kid.results.raw(), &expect) {
            Read::More => return,
            Read::Frame(header) => header,
            Read::End => return self.exited(w, on),
            Read::Broken => {
                let _ = kill(kid.pid, Signal::SIGKILL);
                return self.exited(w, on);
            }
        };
        self.idle_deaths = 0;
        let (seq, range) = (header.block, header.range.clone());
        let (_, payload) = kid.reader.outcome();
        match (header.kind, protocol::split_time(payload)) {
            (Kind::Results, Some((entries, ns))) => {
                let took = Duration::from_nanos(ns);
                on(Event::Results { seq, range: range.clone(), entries, took });
            }
            (Kind::Results, None) => on(Event::Failed {
                seq,
                range: range.clone(),
                cause: Cause::Engine("corrupt results from a worker".into()),
            }),
            _ => on(Event::Failed {
                seq,
                range: range.clone(),
                cause: protocol::decode_error(payload),
            }),
        }
        kid.reader.next_frame();
        kid.next = range.end;
        if kid.queue.front().is_some_and(|t| t.range.end == range.end) {
            kid.queue.pop_front();
            kid.next = kid.queue.front().map_or(0, |t| t.range.start);
        }
    }

    /// Handles the end of worker `w`: reaps it and reports the item it died in and the work
    /// it left.
    fn exited(&mut self, w: usize, on: &mut dyn FnMut(Event<'_>)) {
        let Some(kid) = self.kids[w].take() else { return };
        let status = reap(kid.pid);
        let slot = self.shared.slot(w);
        let busy = self.shared.busy(w);
        let current = slot.current.load(Ordering::Acquire);
        // The slot is free for a replacement.
        slot.busy.store(false, Ordering::Release);
        slot.between_items();
        let Kid { mut queue, next, timed_out, results, tasks, .. } = kid;
        drop((results, tasks));
        let cause = match timed_out {
            Some(d) => Cause::Timeout(d),
            None => status_cause(status),
        };
        let mut rerun = Vec::new();
        let mut failed = None;
        if let Some(head) = queue.pop_front() {
            let end = head.range.end;
            let named = busy.is_some_and(|b| b.block == head.seq) && (next..end).contains(&current);
            if named {
                failed = Some((head.seq, current, cause.clone()));
                for r in [next..current, current + 1..end] {
                    if !r.is_empty() {
                        rerun.push(Task { seq: head.seq, range: r });
                    }
                }
            } else if next < end {
                rerun.push(Task { seq: head.seq, range: next..end });
            }
        }
        rerun.extend(queue);
        let mut give_up = None;
        if failed.is_none() && !clean_exit(&status) {
            self.idle_deaths += 1;
            if self.idle_deaths > 2 * self.kids.len() + 2 {
                give_up = Some(Cause::Engine(format!(
                    "worker processes keep dying between items (the last one: {cause})"
                )));
            }
        }
        if failed.is_some() || !rerun.is_empty() || give_up.is_some() {
            on(Event::Died { failed, rerun, give_up });
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for kid in self.kids.iter_mut().filter_map(Option::take) {
            let _ = kill(kid.pid, Signal::SIGKILL);
            let _ = reap(kid.pid);
        }
    }
}

/// Writes `bytes` to the pipe `fd` without dying of `SIGPIPE` when its reader is gone (a
/// worker that just died): the signal is blocked in this thread for the write, and the one
/// the write raised, if any, is taken back. (Rust programs ignore `SIGPIPE`, but a program may
/// have restored its default action, which ends the process.)
fn write_quietly(fd: RawFd, bytes: &[u8]) -> Result<(), ()> {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    let mut old = SigSet::empty();
    let blocked = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&pipe), Some(&mut old)).is_ok();
    let pending_before = {
        // SAFETY: an all-zero `sigset_t` is a valid (empty) set, filled in by `sigpending`.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: writes the pending signals into the live local set, then reads it.
        unsafe { libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGPIPE) == 1 }
    };
    let r = write_all(fd, bytes);
    if blocked && r.is_err() && !pending_before && !old.contains(Signal::SIGPIPE) {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: takes the pending `SIGPIPE` this write raised (the set and the timeout are
        // live locals); it is blocked, so nothing else runs for it.
        unsafe { libc::sigtimedwait(pipe.as_ref(), std::ptr::null_mut(), &zero) };
    }
    if blocked {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    r
}

/// A worker: runs its task, or the tasks it reads, shipping their outcomes; the exit code.
fn serve(
    job: &dyn StreamJob,
    shared: &Shared,
    worker: usize,
    parent: Pid,
    ends: spawn::Ends,
    mut task: Option<Task>,
    timed: bool,
) -> i32 {
    if child::setup(&ends.close, parent).is_err() {
        return MACHINERY_FAILED;
    }
    let slot = shared.slot(worker);
    // SAFETY: the slot lies in the pool's shared mapping, which stays mapped in this process
    // until it ends (it leaves with `_exit`, never returning to the code that unmaps it).
    let hook = unsafe { ItemHook::new(slot, timed) };
    let mut sink = Sink {
        fd: ends.results,
        worker,
        seq: 0,
        buf: Vec::with_capacity(1 << 16),
        from: 0,
        shipped_at: now_ns(),
        clock: now_ns(),
        looked_at: 0,
        countdown: 1,
        every: 1,
        broken: false,
    };
    as_worker(worker, || {
        loop {
            let task = match task.take() {
                Some(t) => t,
                None => match ends.tasks.map(read_task) {
                    Some(Ok(Some(t))) => t,
                    // End of the tasks pipe (the stream is over), or a one-task worker done.
                    Some(Ok(None)) | None => return 0,
                    Some(Err(())) => return MACHINERY_FAILED,
                },
            };
            slot.block.store(task.seq, Ordering::Relaxed);
            slot.start.store(task.range.start, Ordering::Relaxed);
            slot.end.store(task.range.end, Ordering::Relaxed);
            slot.item(task.range.start, timed);
            slot.busy.store(true, Ordering::Release);
            sink.begin(&task);
            match job.run(&task, hook, &mut sink) {
                Ok(()) => sink.ship(task.range.end),
                Err(cause) => sink.fail(task.range.end, &cause),
            }
            if timed {
                slot.between_items();
            }
            if sink.broken {
                return MACHINERY_FAILED;
            }
            slot.busy.store(false, Ordering::Release);
        }
    })
}

/// Reads the next task from `fd`: `None` at the end of the pipe.
fn read_task(fd: RawFd) -> Result<Option<Task>, ()> {
    let mut bytes = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        // SAFETY: reads into the live array's remaining bytes, from this worker's own pipe.
        let n = unsafe { libc::read(fd, bytes[got..].as_mut_ptr().cast(), HEADER - got) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(());
        }
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(()) };
        }
        got += n.unsigned_abs();
    }
    match Header::parse(&bytes) {
        Some(h) if h.kind == Kind::Task => Ok(Some(Task { seq: h.block, range: h.range })),
        _ => Err(()),
    }
}
