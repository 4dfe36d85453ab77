//! The fork engine of a stream: worker processes forked when the stream starts
//! ([`crate::engine::fork_stream::Pool`]) run batches of items and send each item's outcome
//! back as soon as it is worth a message; the caller's thread decodes them, turns them into
//! output values (flattening, error values) and yields them as they come (unordered) or in
//! item order (ordered, from a reorder buffer bounded by the window).
//!
//! An indexed source is read copy-on-write by workers that live as long as the stream: only
//! the indices of each batch travel to them. A lazy source is pulled on the caller's thread
//! as the window allows; each batch of its items is run by a worker forked for that batch,
//! which reads the items copy-on-write, so they never need to cross a process boundary (and
//! need no serde). Results travel through the call's [`Wire`].
//!
//! Batches are sized as on the threads engine ([`Sizing`]: the first ones double from one
//! item, then about 200 us of work each; for lazy sources about 5 ms, which amortizes a fork),
//! so cheap items travel hundreds to a message and a slow item never waits behind others.
//! A worker that dies fails the item it ran (naming the signal, exit code or time-out) and a
//! replacement runs the rest of its batches. Dropping the stream kills and reaps every worker.

use super::items::{Feed, Items, Work};
use super::threads::{DEPTH_PER_WORKER, Sizing};
use super::{Done, Emit, Pump};
use crate::engine::ItemHook;
use crate::engine::fork_stream::{Event, Pool, Sink, StreamJob, Task};
use crate::error::{Cause, TaskError};
use crate::protocol::{Decoder, Entry};
use crate::wire::{Wire, required};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Duration;

/// How long a batch of a lazy source should take: each is run by a new worker process.
const LAZY_BATCH: Duration = Duration::from_millis(5);

/// The items of a lazy source's batch, kept until every outcome arrived (a worker that dies
/// leaves the rest of its batch to a new worker, which reads them from here).
struct Batch<T> {
    start: usize,
    elems: Vec<Option<T>>,
    /// Items whose outcome has not arrived.
    left: usize,
}

/// What the workers run: the stream's function and, for a lazy source, its batches.
struct Job<X: Items> {
    items: X,
    wire: Option<Wire<X::R>>,
    /// Task → its items (lazy sources only).
    batches: Mutex<HashMap<usize, Batch<X::T>>>,
    /// The stream collects failures: a worker reports a caught panic in one line (see
    /// `crate::quiet`).
    collect: bool,
}

impl<X: Items> StreamJob for Job<X> {
    fn run(&self, task: &Task, hook: ItemHook, sink: &mut Sink) -> Result<(), Cause> {
        let wire = required(self.wire, "results")?;
        crate::quiet::marked(self.collect, || self.run_items(task, wire, hook, sink));
        Ok(())
    }
}

impl<X: Items> Job<X> {
    /// Runs the items of `task`, appending an entry per item to `sink`.
    fn run_items(&self, task: &Task, wire: Wire<X::R>, hook: ItemHook, sink: &mut Sink) {
        // A lazy task's items: taken from this worker's copy of the batch.
        let mut elems: Option<(usize, Vec<Option<X::T>>)> = {
            let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
            batches.get_mut(&task.seq).map(|b| {
                let (a, z) = (task.range.start - b.start, task.range.end - b.start);
                (task.range.start, b.elems[a..z].iter_mut().map(Option::take).collect())
            })
        };
        for i in task.range.clone() {
            let t = elems.as_mut().and_then(|(start, v)| v[i - *start].take());
            hook.started(i);
            let r = catch_unwind(AssertUnwindSafe(|| self.items.one(i, t)));
            hook.finished();
            let mut out = sink.entries();
            match r {
                Ok(r) => {
                    if let Err(why) = out.value(|buf| wire.encode(&r, buf)) {
                        out.failure(i, &Cause::Engine(why));
                    }
                }
                Err(payload) => {
                    let cause = Cause::from_panic(&*payload);
                    // A payload whose destructor panics would unwind from here; forget it.
                    std::mem::forget(payload);
                    out.failure(i, &cause);
                }
            }
            if !sink.done(i) {
                break;
            }
        }
    }
}

/// The output values of consecutive items.
struct Seg<Y> {
    items: usize,
    out: Vec<Y>,
    failure: Option<TaskError>,
}

pub(crate) struct ForkPump<'a, X: Items, M: Emit<X::R>> {
    /// Boxed: workers read it at the address it had when they were forked.
    job: Box<Job<X>>,
    mode: M,
    feed: Feed<'a, X::T>,
    /// `None` when the pool could not be set up: every item fails with `broken`.
    pool: Option<Pool>,
    sizing: Sizing,
    ordered: bool,
    /// Batches (or parts of batches) whose worker died, to hand out first.
    retry: VecDeque<Task>,
    /// A lazy source's batches pulled ahead (one per worker), so that a worker slot that
    /// frees up gets its next batch at once.
    prepared: VecDeque<Task>,
    /// Ordered: outcomes by first item, and the next item to yield.
    parked: BTreeMap<usize, Seg<M::Y>>,
    cursor: usize,
    /// Unordered: outcomes in arrival order.
    ready: VecDeque<Seg<M::Y>>,
    /// Items dispatched and not yet consumed (the window), and the items of the batch the
    /// iterator holds.
    outstanding: usize,
    held: usize,
    /// Items dispatched whose outcome has not arrived.
    in_flight: usize,
    seq: usize,
    feed_done: bool,
    /// A failure stopped the stream (fail mode): nothing more is dispatched.
    stopped: bool,
    /// The failure was yielded: the stream is over.
    over: bool,
    /// Workers cannot be kept alive: every item not run yet fails with this.
    broken: Option<Cause>,
}

impl<'a, X: Items, M: Emit<X::R>> ForkPump<'a, X, M> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        items: X,
        mode: M,
        feed: Feed<'a, X::T>,
        wire: Option<Wire<X::R>>,
        sizing: Sizing,
        workers: usize,
        timeout: Option<Duration>,
        ordered: bool,
    ) -> Self {
        let fed = feed.len().is_some();
        let empty = feed.len() == Some(0);
        let sizing = if fed { sizing } else { sizing.target(LAZY_BATCH) };
        let (pool, broken) = match Pool::new(workers, fed, timeout) {
            Ok(p) => (Some(p), None),
            Err(cause) => (None, Some(cause)),
        };
        let mut pump = ForkPump {
            job: Box::new(Job {
                items,
                wire,
                batches: Mutex::new(HashMap::new()),
                collect: M::COLLECT,
            }),
            mode,
            feed,
            pool,
            sizing,
            ordered,
            retry: VecDeque::new(),
            prepared: VecDeque::new(),
            parked: BTreeMap::new(),
            cursor: 0,
            ready: VecDeque::new(),
            outstanding: 0,
            held: 0,
            in_flight: 0,
            seq: 0,
            feed_done: empty,
            stopped: false,
            over: false,
            broken,
        };
        if fed {
            // The workers start with the stream (and read its indexed source as it is now);
            // a lazy source is pulled only when the caller asks for results.
            pump.dispatch();
        }
        pump
    }

    /// The next new batch from the feed, if the window has room.
    fn next_task(&mut self) -> Option<Task> {
        if self.feed_done || self.stopped {
            return None;
        }
        let b = self.sizing.next(self.outstanding);
        if b == 0 {
            return None;
        }
        let Some(work) = self.feed.next(b) else {
            self.feed_done = true;
            return None;
        };
        let n = work.len();
        let seq = self.seq;
        self.seq += 1;
        let range = match work {
            Work::Range(r) => r,
            Work::Items(start, v) => {
                let elems = v.into_iter().map(Some).collect();
                let batch = Batch { start, elems, left: n };
                self.job.batches.lock().unwrap_or_else(|e| e.into_inner()).insert(seq, batch);
                start..start + n
            }
        };
        self.outstanding += n;
        self.in_flight += n;
        Some(Task { seq, range })
    }

    /// Hands out batches while workers have room and the window allows.
    fn dispatch(&mut self) {
        if self.broken.is_some() {
            while let Some(t) = self.take_task() {
                let cause = self.broken.clone().expect("checked");
                self.failed(t.seq, t.range, &cause);
            }
            return;
        }
        let Some(pool) = self.pool.as_mut() else { return };
        let fed = self.feed.len().is_some();
        let depth = if fed { DEPTH_PER_WORKER } else { 1 };
        let slots = pool.slots();
        // Level by level: every idle worker gets a batch before any gets a second one (a
        // batch queued behind a slow item waits for it).
        for level in 1..=depth {
            for w in 0..slots {
                let pool = self.pool.as_mut().expect("checked");
                // A one-task worker takes its slot until it has ended.
                if pool.queued(w) >= level || (!fed && pool.alive(w)) {
                    continue;
                }
                let Some(task) = self.take_task() else {
                    return;
                };
                let pool = self.pool.as_mut().expect("checked");
                let started = if !fed {
                    pool.spawn(w, &*self.job, Some(task.clone()))
                } else if !pool.alive(w) {
                    // A worker is forked when there is work for it (at the start, or to
                    // replace one that died).
                    pool.spawn(w, &*self.job, None)
                } else {
                    Ok(())
                };
                match started {
                    Ok(()) if fed => pool.send(w, task),
                    Ok(()) => {}
                    Err(e) => {
                        self.retry.push_front(task);
                        self.no_worker(e);
                        if self.broken.is_some() {
                            return self.dispatch();
                        }
                    }
                }
            }
        }
        if !fed {
            while self.prepared.len() < slots {
                match self.next_task() {
                    Some(t) => self.prepared.push_back(t),
                    None => break,
                }
            }
        }
    }

    /// The next batch to hand out: a retry, a batch pulled ahead, or a new one.
    fn take_task(&mut self) -> Option<Task> {
        self.retry.pop_front().or_else(|| self.prepared.pop_front()).or_else(|| self.next_task())
    }

    /// A worker could not be forked: carry on with the others, or fail what is left when
    /// none is alive.
    fn no_worker(&mut self, e: nix::errno::Errno) {
        if !self.pool.as_ref().is_some_and(Pool::any_alive) {
            self.broken = Some(Cause::Engine(format!("cannot start a worker process: {e}")));
        }
    }

    /// Items `range` of task `seq` arrived (or failed): the lazy batch's bookkeeping.
    fn arrived(&mut self, seq: usize, n: usize) {
        self.in_flight -= n;
        let mut batches = self.job.batches.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = batches.get_mut(&seq) {
            b.left -= n;
            if b.left == 0 {
                batches.remove(&seq);
            }
        }
    }

    /// Files the output of items `range`.
    fn file(&mut self, range: Range<usize>, seg: Seg<M::Y>) {
        if seg.failure.is_some() {
            self.stopped = true;
        }
        if self.ordered {
            self.parked.insert(range.start, seg);
        } else {
            self.ready.push_back(seg);
        }
    }

    /// The output of a failed item (an error value, or the failure in fail mode).
    fn error_seg(&self, e: TaskError) -> Seg<M::Y> {
        match self.mode.fail(e.clone()) {
            Some(y) => Seg { items: 1, out: vec![y], failure: None },
            None => Seg { items: 1, out: Vec::new(), failure: Some(e) },
        }
    }

    /// Items `range` of task `seq` failed with `cause`, each of them.
    fn failed(&mut self, seq: usize, range: Range<usize>, cause: &Cause) {
        self.arrived(seq, range.len());
        for i in range {
            let seg = self.error_seg(self.job.items.error(i, cause.clone()));
            self.file(i..i + 1, seg);
        }
    }

    /// Decodes the entries of items `range` into output values.
    fn results(&mut self, seq: usize, range: Range<usize>, entries: &[u8]) {
        self.arrived(seq, range.len());
        let wire = self.job.wire.expect("workers send values only with a wire");
        let mut dec = Decoder::new(entries);
        let mut out = Vec::with_capacity(range.len());
        let mut failure = None;
        for i in range.clone() {
            let e = match dec.next(|input| wire.decode(input).map_err(Cause::Engine)) {
                Some(Ok(Entry::Value(r))) => {
                    let mark = out.len();
                    let mode = self.mode;
                    match catch_unwind(AssertUnwindSafe(|| mode.emit(i, r, &mut out))) {
                        Ok(()) => continue,
                        Err(p) => {
                            let cause = Cause::from_panic(&*p);
                            std::mem::forget(p);
                            out.truncate(mark);
                            self.job.items.error(i, cause)
                        }
                    }
                }
                Some(Ok(Entry::Failed(_, cause))) | Some(Err(cause)) => {
                    self.job.items.error(i, cause)
                }
                None => self.job.items.error(
                    i,
                    Cause::Engine("a worker's results ended early (corrupt frame)".into()),
                ),
            };
            match self.mode.fail(e.clone()) {
                Some(y) => out.push(y),
                None => {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.file(range.clone(), Seg { items: range.len(), out, failure });
    }

    fn event(&mut self, ev: Event<'_>) {
        match ev {
            Event::Results { seq, range, entries, took } => {
                self.sizing.observe(range.len(), took);
                self.results(seq, range, entries);
            }
            Event::Failed { seq, range, cause } => self.failed(seq, range, &cause),
            Event::Died { failed, rerun, give_up } => {
                if let Some((seq, i, cause)) = failed {
                    self.failed(seq, i..i + 1, &cause);
                }
                self.retry.extend(rerun);
                if give_up.is_some() {
                    self.broken = give_up;
                }
            }
        }
    }

    /// The next output to yield, if one is ready.
    fn take(&mut self) -> Option<Seg<M::Y>> {
        if self.ordered {
            let seg = self.parked.remove(&self.cursor)?;
            self.cursor += seg.items;
            Some(seg)
        } else {
            self.ready.pop_front()
        }
    }
}

impl<X: Items, M: Emit<X::R>> Pump<M::Y> for ForkPump<'_, X, M> {
    fn refill(&mut self) -> Option<Done<M::Y>> {
        self.outstanding -= self.held;
        self.held = 0;
        loop {
            if self.over {
                // The stream is over: its workers end now, not when the iterator is dropped.
                self.pool = None;
                return None;
            }
            self.dispatch();
            if let Some(seg) = self.take() {
                self.held = seg.items;
                self.over = seg.failure.is_some();
                return Some(Done { seq: 0, items: seg.items, out: seg.out, failure: seg.failure });
            }
            let idle = self.in_flight == 0 && self.retry.is_empty();
            if idle && (self.feed_done || self.stopped) {
                self.pool = None;
                return None;
            }
            // Split borrows: the pool reports, the rest of the pump listens.
            let Some(mut pool) = self.pool.take() else {
                unreachable!(
                    "without a pool every item fails at dispatch, and an ended stream returns above"
                )
            };
            if !pool.any_alive() {
                self.pool = Some(pool);
                if self.broken.is_none() {
                    // Nothing runs and nothing could be dispatched: the window is full of
                    // outcomes that wait for an earlier one (never the case), or workers
                    // could not start.
                    self.broken = Some(Cause::Engine("no worker process is running".into()));
                }
                continue;
            }
            pool.wait(&mut |ev| self.event(ev));
            self.pool = Some(pool);
        }
    }
}
