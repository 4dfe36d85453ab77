//! The threads engine of a stream: worker threads take batches from a shared queue and put
//! their output values back; the caller's thread takes them in order (or as they come).
//!
//! The window: at most `window` items are dispatched and not yet consumed (an item counts as
//! consumed once the caller has taken every value of its batch), so memory stays O(window)
//! whatever the input's length. Batches are kept a few per worker deep in the queue, and
//! sized so that one takes about [`TARGET_BATCH`] (measured on the batches already run; the
//! first batches double from one item): cheap items travel hundreds to a message, slow ones
//! one by one, so a slow item never holds up a batch of others. Indexed streams are topped up
//! by the workers themselves; a lazy source is pulled only on the caller's thread, inside
//! `next()`.

use super::items::{Feed, Items, Work};
use super::scope::{Cancel, Spawner};
use super::{Done, Emit, Pump};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long one batch should take.
const TARGET_BATCH: Duration = Duration::from_micros(200);

/// Batches queued or running per worker.
pub(crate) const DEPTH_PER_WORKER: usize = 2;

/// The most items per worker the default window grows to for cheap items.
pub(crate) const GROWN_WINDOW_PER_WORKER: usize = 64 * 1024;

/// How big the next batch is, and (for the default window) how big the window is.
pub(crate) struct Sizing {
    window: usize,
    /// The window was left to its default: it may grow for cheap items (see [`Sizing::next`]).
    grows: bool,
    /// The largest window it may grow to.
    window_cap: usize,
    /// The input's length, when known.
    total: Option<usize>,
    depth: usize,
    fixed: Option<usize>,
    /// How long one batch should take.
    target: Duration,
    /// Measured nanoseconds per item (running average), once a batch has run.
    ns_per_item: Option<f64>,
    last: usize,
}

impl Sizing {
    /// `window`: the user's window, or `None` for the default of `default` items (which grows
    /// to about [`TARGET_BATCH`] of work per queued batch when items are cheap, up to
    /// [`GROWN_WINDOW_PER_WORKER`] items per worker).
    pub(crate) fn new(
        window: Option<usize>,
        default: usize,
        workers: usize,
        chunk: Option<usize>,
        total: Option<usize>,
    ) -> Sizing {
        let depth = DEPTH_PER_WORKER * workers.max(1);
        Sizing {
            window: window.unwrap_or(default).max(1),
            grows: window.is_none(),
            window_cap: GROWN_WINDOW_PER_WORKER.saturating_mul(workers.max(1)).max(default),
            total,
            depth,
            fixed: chunk,
            target: TARGET_BATCH,
            ns_per_item: None,
            last: 0,
        }
    }

    /// Batches that take about `target` each, rather than [`TARGET_BATCH`].
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn target(mut self, target: Duration) -> Sizing {
        self.target = target;
        self
    }

    /// The largest batch: enough batches in the window to keep every worker busy, and (for a
    /// known length) enough batches to balance the input over the workers.
    fn max_batch(&self) -> usize {
        let mut m = (self.window / self.depth).max(1);
        if let Some(n) = self.total {
            m = m.min((n / (4 * self.depth)).max(1));
        }
        m
    }

    /// The size of the next batch when `outstanding` items are dispatched and not consumed
    /// (zero: the window is full).
    pub(crate) fn next(&mut self, outstanding: usize) -> usize {
        let room = self.window.saturating_sub(outstanding);
        if room == 0 {
            return 0;
        }
        let max = self.max_batch();
        let want = match (self.fixed, self.ns_per_item) {
            (Some(c), _) => c,
            (None, None) => (self.last * 2).clamp(1, max),
            (None, Some(ns)) => {
                let n = self.target.as_nanos() as f64 / ns.max(0.1);
                (n as usize).clamp(1, max)
            }
        };
        self.last = want;
        want.min(room)
    }

    pub(crate) fn observe(&mut self, items: usize, took: Duration) {
        if items == 0 {
            return;
        }
        let x = took.as_nanos() as f64 / items as f64;
        let ns = match self.ns_per_item {
            None => x,
            Some(avg) => 0.75 * avg + 0.25 * x,
        };
        self.ns_per_item = Some(ns);
        if self.grows {
            // Cheap items: a window of `depth` batches of TARGET_BATCH each, so each hand-off
            // between threads carries enough work to be worth it. Never shrinks (memory is
            // bounded by the cap either way).
            let want = (self.depth as f64 * self.target.as_nanos() as f64 / ns.max(0.1)) as usize;
            self.window = self.window.max(want.min(self.window_cap));
        }
    }
}

struct State<T, Y> {
    queue: VecDeque<(u64, Work<T>)>,
    done: VecDeque<Done<Y>>,
    /// The indices not dispatched yet, when workers may top the queue up themselves
    /// (indexed sources).
    counter: Option<std::ops::Range<usize>>,
    sizing: Sizing,
    /// Items dispatched and not yet consumed.
    outstanding: usize,
    /// Batches queued or running.
    in_flight: usize,
    /// The next batch's sequence number.
    seq: u64,
    /// No more batches will be queued (the input ended, or a failure stopped the stream).
    closed: bool,
    /// Worker threads still running.
    live: usize,
}

struct Shared<T, Y> {
    state: Mutex<State<T, Y>>,
    /// Signalled when a batch is queued, or the stream closes or is cancelled.
    work: Condvar,
    /// Signalled when a batch is done or a worker ends.
    done: Condvar,
    /// Read by the workers before each item: on a cache line of its own, so that the lock
    /// and condition variables the other threads write do not evict it on every hand-off.
    cancel: CancelFlag,
}

/// The cancel flag, alone on its cache line (128 bytes: adjacent-line prefetching pairs
/// 64-byte lines on x86).
#[repr(align(128))]
struct CancelFlag(AtomicBool);

impl std::ops::Deref for CancelFlag {
    type Target = AtomicBool;

    fn deref(&self) -> &AtomicBool {
        &self.0
    }
}

impl<T, Y> Shared<T, Y> {
    fn lock(&self) -> MutexGuard<'_, State<T, Y>> {
        // Workers never panic while holding the lock (items run outside it), so a poisoned
        // lock still holds consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Send, Y: Send> Cancel for Shared<T, Y> {
    fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
        let mut st = self.lock();
        st.closed = true;
        st.queue.clear();
        drop(st);
        self.work.notify_all();
        self.done.notify_all();
    }
}

/// Queues batches from the feed while the queue is shallow and the window has room.
fn top_up<T, Y>(st: &mut State<T, Y>, work: &Condvar) {
    let State { counter, sizing, queue, outstanding, in_flight, seq, closed, .. } = st;
    let Some(f) = counter else { return };
    while !*closed && *in_flight < sizing.depth {
        let b = sizing.next(*outstanding);
        if b == 0 {
            break;
        }
        let w = (f.start < f.end).then(|| {
            let end = f.end.min(f.start.saturating_add(b));
            let r = f.start..end;
            f.start = end;
            Work::Range(r)
        });
        match w {
            Some(w) => {
                *outstanding += w.len();
                *in_flight += 1;
                queue.push_back((*seq, w));
                *seq += 1;
                work.notify_one();
            }
            None => {
                *closed = true;
                work.notify_all();
            }
        }
    }
}

pub(crate) struct ThreadsPump<'a, T, Y> {
    shared: Arc<Shared<T, Y>>,
    /// A lazy source, pulled here on the caller's thread.
    feed: Option<Feed<'a, T>>,
    ordered: bool,
    /// The next batch to yield (ordered).
    want: u64,
    /// Items of the batch the iterator holds.
    held: usize,
    /// The lazy source panicked while being pulled: the stream cannot go on.
    broken: bool,
}

impl<'a, T: Send + 'a, Y: Send + 'a> ThreadsPump<'a, T, Y> {
    pub(crate) fn start<'s: 'a, X, M, S>(
        spawn: &S,
        items: X,
        mode: M,
        feed: Feed<'a, T>,
        sizing: Sizing,
        ordered: bool,
    ) -> ThreadsPump<'a, T, Y>
    where
        S: Spawner<'s>,
        X: Items<T = T> + 's,
        T: 's,
        Y: 's,
        M: Emit<X::R, Y = Y>,
    {
        let workers = sizing.depth / DEPTH_PER_WORKER;
        let (counter, feed) = match feed.len() {
            Some(n) => (Some(0..n), None),
            None => (None, Some(feed)),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                done: VecDeque::new(),
                counter,
                sizing,
                outstanding: 0,
                in_flight: 0,
                seq: 0,
                closed: false,
                live: 0,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            cancel: CancelFlag(AtomicBool::new(false)),
        });
        let weak: std::sync::Weak<dyn Cancel + 's> = Arc::downgrade(&shared) as _;
        spawn.register(weak);
        let items = Arc::new(items);
        for id in 0..workers {
            shared.lock().live += 1;
            let (sh, it) = (Arc::clone(&shared), Arc::clone(&items));
            match spawn.spawn_worker(Box::new(move || worker(id, &sh, it, mode))) {
                Ok(()) => {}
                Err(e) => {
                    shared.lock().live -= 1;
                    if id == 0 {
                        panic!("parfor: cannot start a stream worker thread: {e}");
                    }
                    break;
                }
            }
        }
        ThreadsPump { shared, feed, ordered, want: 0, held: 0, broken: false }
    }
}

/// Pulls batches from a lazy source into the queue, while the queue is shallow and the window
/// has room. Called with the lock held; releases it while pulling (the source may be slow).
/// `broken` is set while the source runs, so a panic in it leaves the stream marked.
fn pull<'g, T, Y>(
    shared: &'g Shared<T, Y>,
    feed: &mut Feed<'_, T>,
    broken: &mut bool,
    mut st: MutexGuard<'g, State<T, Y>>,
) -> MutexGuard<'g, State<T, Y>> {
    while !st.closed && st.in_flight < st.sizing.depth {
        let outstanding = st.outstanding;
        let b = st.sizing.next(outstanding);
        if b == 0 {
            break;
        }
        // Reserve the room, then pull without the lock.
        st.outstanding += b;
        st.in_flight += 1;
        drop(st);
        *broken = true;
        let work = feed.next(b);
        *broken = false;
        st = shared.lock();
        st.outstanding -= b;
        st.in_flight -= 1;
        match work {
            Some(w) if !st.closed => {
                st.outstanding += w.len();
                st.in_flight += 1;
                let seq = st.seq;
                st.queue.push_back((seq, w));
                st.seq += 1;
                shared.work.notify_one();
            }
            _ => {
                st.closed = true;
                shared.work.notify_all();
            }
        }
    }
    st
}

impl<'a, T: Send + 'a, Y: Send + 'a> Pump<Y> for ThreadsPump<'a, T, Y> {
    fn refill(&mut self) -> Option<Done<Y>> {
        assert!(!self.broken, "parfor: this stream's source panicked earlier; it cannot go on");
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        st.outstanding -= self.held;
        self.held = 0;
        loop {
            top_up(&mut st, &shared.work);
            if let Some(feed) = self.feed.as_mut() {
                st = pull(&shared, feed, &mut self.broken, st);
            }
            let pos = if self.ordered {
                st.done.iter().position(|d| d.seq == self.want)
            } else {
                (!st.done.is_empty()).then_some(0)
            };
            if let Some(p) = pos {
                let d = st.done.remove(p).expect("found above");
                self.want += 1;
                self.held = d.items;
                return Some(d);
            }
            if st.closed && st.in_flight == 0 {
                // Every batch was taken (ordered: `want` reached the last sequence number)
                // or the stream was stopped.
                return None;
            }
            if st.live == 0 {
                panic!("parfor: internal error: the stream's worker threads ended early");
            }
            st = shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<T, Y> Drop for ThreadsPump<'_, T, Y> {
    /// Stops the stream and waits until every worker has ended (each finishes the item it
    /// runs, and has dropped its handle on the items' function, before it counts out).
    fn drop(&mut self) {
        self.shared.cancel.store(true, Ordering::Relaxed);
        let mut st = self.shared.lock();
        st.closed = true;
        st.queue.clear();
        self.shared.work.notify_all();
        while st.live > 0 {
            st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A worker thread: takes batches until the stream closes or is cancelled.
fn worker<X, M>(id: usize, sh: &Shared<X::T, M::Y>, items: Arc<X>, mode: M)
where
    X: Items,
    M: Emit<X::R>,
{
    // Counts this worker out however it ends, so the caller never waits for it.
    struct Out<'s, T, Y>(&'s Shared<T, Y>);
    impl<T, Y> Drop for Out<'_, T, Y> {
        fn drop(&mut self) {
            self.0.lock().live -= 1;
            self.0.done.notify_all();
        }
    }
    let _out = Out(sh);
    crate::worker::as_worker(id, || run_worker(sh, &*items, mode));
    // Before counting out: once the caller sees no worker left, nothing of the stream's
    // function is held on this thread any more.
    drop(items);
}

fn run_worker<X, M>(sh: &Shared<X::T, M::Y>, items: &X, mode: M)
where
    X: Items,
    M: Emit<X::R>,
{
    {
        loop {
            let (seq, work) = {
                let mut st = sh.lock();
                loop {
                    if sh.cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(task) = st.queue.pop_front() {
                        break task;
                    }
                    if st.closed {
                        return;
                    }
                    st = sh.work.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            let items_n = work.len();
            let t0 = Instant::now();
            // One value per item, unless flattened (then the vector grows as needed).
            let mut out = Vec::with_capacity(items_n);
            let failure = items.exec(work, mode, true, &sh.cancel, &mut out);
            let took = t0.elapsed();
            let mut st = sh.lock();
            st.in_flight -= 1;
            st.sizing.observe(items_n, took);
            if failure.is_some() {
                // Fail mode: dispatch nothing more, and drop the queued batches after this
                // one; those before it still run, so an ordered stream yields every item
                // before the failed one.
                st.closed = true;
                let (mut batches, mut dropped) = (0, 0);
                st.queue.retain(|(s, w)| {
                    let keep = *s < seq;
                    if !keep {
                        batches += 1;
                        dropped += w.len();
                    }
                    keep
                });
                st.in_flight -= batches;
                st.outstanding -= dropped;
                sh.work.notify_all();
            }
            st.done.push_back(Done { seq, items: items_n, out, failure });
            top_up(&mut st, &sh.work);
            drop(st);
            sh.done.notify_one();
        }
    }
}
