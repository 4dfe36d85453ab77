//! `parmap_iter!`'s runtime: results streamed to the caller as they complete, through a
//! bounded window, from indexed sources (slices, ranges, their products, [`crate::Source`]
//! collections) or from a lazy iterator pulled on the caller's thread.
//!
//! The pieces:
//! - [`emit`]: what each item yields (its result, its flattened elements, with its index,
//!   as a `Result`).
//! - [`ParIter`]: the iterator the caller holds; it buffers one batch of output values and
//!   asks its pump for the next batch.
//! - the pumps: `serial` (one item per `next()`, on the caller's thread), `threads`
//!   (worker threads fed batches through a shared queue, never more than the window of items
//!   dispatched and not yet consumed) and `fork` (worker processes forked when the stream
//!   starts, fed batches the same way, sending every outcome back as it is done).
//! - [`scope`]: scoped worker threads for borrowed data, and the `'static` alternative.
//!
//! Results never depend on how items were batched: each item's output is a function of the
//! item alone, and ordered streams yield them in item order, so every engine, worker count,
//! window and chunk yields the same values as `parmap!`.

pub mod emit;
#[cfg(unix)]
mod fork;
pub(crate) mod items;
mod pool;
mod scope;
mod serial;
pub mod single;
mod threads;

pub use emit::Emit;
pub use scope::{Detached, Spawner, StreamScope, scope};

use crate::config::Engine;
use crate::error::TaskError;
use crate::map::Shape;
use crate::options::Options;
use crate::wire::Wire;
use items::{Indexed, Items, Lazy};

/// Items per worker in the default window of the threads and fork engines. When the items
/// turn out to be cheap, the default window grows (up to 64 Ki items per worker) so that each
/// hand-off between workers carries about 200 us of work; a `window` option is never exceeded.
pub const WINDOW_PER_WORKER: usize = 1024;

/// The streaming options of one `parmap_iter!` call (the common ones are in [`Options`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cfg {
    /// Yield results in item order (the default) rather than in completion order.
    pub ordered: bool,
    /// At most this many items dispatched and not yet consumed.
    pub window: Option<usize>,
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg { ordered: true, window: None }
    }
}

impl Cfg {
    /// Ordered, default window.
    pub fn new() -> Cfg {
        Cfg::default()
    }

    /// Results in item order (`true`) or in completion order with their index (`false`).
    #[must_use]
    pub fn ordered(mut self, ordered: bool) -> Cfg {
        self.ordered = ordered;
        self
    }

    /// At most `window` items dispatched and not yet consumed (zero is treated as one).
    #[must_use]
    pub fn window(mut self, window: usize) -> Cfg {
        self.window = Some(window.max(1));
        self
    }
}

/// A batch of output values, as a pump hands it to the iterator.
pub(crate) struct Done<Y> {
    /// Dispatch order.
    pub(crate) seq: u64,
    /// How many items it covers (for the window and the progress bar).
    pub(crate) items: usize,
    /// Their output values, in item order.
    pub(crate) out: Vec<Y>,
    /// The failure that ended the batch (fail mode): yielded as a panic after `out`.
    pub(crate) failure: Option<TaskError>,
}

/// Produces the batches of one stream, in the order the iterator yields them.
pub(crate) trait Pump<Y> {
    /// The next batch; `None` when the stream is over.
    fn refill(&mut self) -> Option<Done<Y>>;
}

/// The iterator `parmap_iter!` returns: yields the call's results as they complete.
///
/// Ordered streams yield one value per item (or per element, with `flatten = true`) in item
/// order; unordered ones yield `(item index, value)` in completion order. Dropping it stops
/// the stream: no item is dispatched any more, worker threads finish the item they run and
/// end, fork worker processes are killed, and the drop returns once they have ended (so
/// nothing of the call keeps running).
///
/// ```
/// use parfor::parmap_iter;
///
/// let mut squares = parmap_iter!(|i: u64| i * i, 0..1_000_000u64; window = 64);
/// assert_eq!(squares.next(), Some(0));
/// assert_eq!(squares.next(), Some(1));
/// drop(squares); // stops the workers; the rest of the input is never run
/// ```
pub struct ParIter<'a, Y> {
    buf: std::vec::IntoIter<Y>,
    failure: Option<TaskError>,
    pump: Box<dyn Pump<Y> + 'a>,
    progress: Option<indicatif::ProgressBar>,
}

impl<Y> std::fmt::Debug for ParIter<'_, Y> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParIter").field("buffered", &self.buf.len()).finish_non_exhaustive()
    }
}

impl<'a, Y> ParIter<'a, Y> {
    fn new(pump: Box<dyn Pump<Y> + 'a>, progress: bool, total: Option<usize>) -> ParIter<'a, Y> {
        ParIter {
            buf: Vec::new().into_iter(),
            failure: None,
            pump,
            progress: progress.then(|| crate::progress::stream_bar(total)).flatten(),
        }
    }
}

impl<Y> Iterator for ParIter<'_, Y> {
    type Item = Y;

    #[inline]
    fn next(&mut self) -> Option<Y> {
        if let Some(y) = self.buf.next() {
            return Some(y);
        }
        self.next_batch()
    }

    /// Batch by batch: each batch's values are folded by the vector iterator's own `fold`,
    /// without a per-value check for the end of the batch (`sum`, `count`, `for_each` and
    /// `fold` itself go through here).
    fn fold<B, G: FnMut(B, Y) -> B>(mut self, init: B, mut g: G) -> B {
        let mut acc = std::mem::take(&mut self.buf).fold(init, &mut g);
        while self.refill_buf() {
            acc = std::mem::take(&mut self.buf).fold(acc, &mut g);
        }
        acc
    }
}

impl<Y> ParIter<'_, Y> {
    #[cold]
    fn next_batch(&mut self) -> Option<Y> {
        while self.refill_buf() {
            if let Some(y) = self.buf.next() {
                return Some(y);
            }
        }
        None
    }

    /// Replaces the (used up) buffer with the next batch's values; `false` when the stream is
    /// over. Panics with the failure that ended the previous batch, in fail mode.
    fn refill_buf(&mut self) -> bool {
        if let Some(e) = self.failure.take() {
            panic!("parfor: {e}");
        }
        let Some(done) = self.pump.refill() else { return false };
        if let Some(bar) = &self.progress {
            bar.inc(done.items as u64);
        }
        self.buf = done.out.into_iter();
        self.failure = done.failure;
        true
    }
}

impl<Y> Drop for ParIter<'_, Y> {
    fn drop(&mut self) {
        if let Some(bar) = &self.progress {
            bar.finish();
        }
    }
}

/// The engine a stream runs on, its workers, and its default window.
fn plan(opts: &Options) -> (Engine, usize, usize) {
    let run = crate::engine::resolve(opts);
    let workers = run.workers.count.max(1);
    (run.engine, workers, WINDOW_PER_WORKER.saturating_mul(workers))
}

/// Starts a stream whose workers (on `spawn`) live for `'s`, and whose feed (a lazy source,
/// pulled on the caller's thread) for `'a`.
#[allow(clippy::too_many_arguments)]
fn start<'s: 'a, 'a, X, M, S>(
    spawn: S,
    items: X,
    opts: &Options,
    cfg: Cfg,
    wire: Option<Wire<X::R>>,
    mode: M,
    feed: items::Feed<'a, X::T>,
) -> ParIter<'a, M::Y>
where
    S: Spawner<'s>,
    X: Items + 's,
    X::T: 's,
    M: Emit<X::R>,
    M::Y: 's,
{
    let (engine, workers, default_window) = plan(opts);
    if M::COLLECT {
        // Each collected panic prints one line (see `crate::quiet`); installed here, before
        // any worker thread or process exists.
        crate::quiet::install_hook();
    }
    let total = feed.len();
    let sizing = threads::Sizing::new(cfg.window, default_window, workers, opts.chunk, total);
    let pump: Box<dyn Pump<M::Y> + 'a> = match engine {
        Engine::Serial => Box::new(serial::SerialPump::new(items, mode, feed)),
        Engine::Threads => {
            Box::new(threads::ThreadsPump::start(&spawn, items, mode, feed, sizing, cfg.ordered))
        }
        #[cfg(unix)]
        Engine::Fork => Box::new(fork::ForkPump::new(
            items,
            mode,
            feed,
            wire,
            sizing,
            workers,
            opts.timeout,
            cfg.ordered,
        )),
        #[cfg(not(unix))]
        Engine::Fork => panic!(
            "parfor: the fork engine needs a Unix system (it runs items in forked child \
             processes); use `engine = \"threads\"` here"
        ),
        // Every rank would have to pull the same lazy source and agree on each window: not
        // built. Refused rather than run on every rank again.
        Engine::Mpi => panic!(
            "parfor: `parmap_iter!` does not run on the mpi engine; use `parmap!` (which \
             returns every result on every rank), or choose the threads or fork engine for \
             this stream"
        ),
    };
    ParIter::new(pump, opts.progress, total)
}

/// Streams `f` over `shape`: what `parmap_iter!` with indexed sources runs.
///
/// `spawn` decides where worker threads run: [`Detached`] for `'static` data, a [`StreamScope`] for
/// borrowed data.
pub fn iter_shape<'a, const K: usize, R, F, M, S>(
    spawn: S,
    shape: Shape<K>,
    opts: &Options,
    cfg: Cfg,
    wire: Option<Wire<R>>,
    mode: M,
    f: F,
) -> ParIter<'a, M::Y>
where
    S: Spawner<'a>,
    R: Send + 'a,
    F: Fn([usize; K]) -> R + Send + Sync + 'a,
    M: Emit<R>,
    M::Y: 'a,
{
    let n = shape.len();
    start(spawn, Indexed { shape, f }, opts, cfg, wire, mode, items::Feed::range(n))
}

/// Streams `g` over the items of a lazy iterator, which is pulled on the caller's thread
/// only as the window allows: what `parmap_iter!` with one lazy source runs.
///
/// The iterator itself never leaves the caller's thread, so it may borrow anything that lives
/// for `'a`; its items, the function and the results reach the workers, which live for `'s`.
pub fn iter_lazy<'s: 'a, 'a, I, R, G, M, S>(
    spawn: S,
    it: I,
    opts: &Options,
    cfg: Cfg,
    wire: Option<Wire<R>>,
    mode: M,
    g: G,
) -> ParIter<'a, M::Y>
where
    S: Spawner<'s>,
    I: Iterator + 'a,
    I::Item: Send + 's,
    R: Send + 's,
    G: Fn(I::Item) -> R + Send + Sync + 's,
    M: Emit<R>,
    M::Y: 's,
{
    let feed = items::Feed::pull(Box::new(it));
    start(spawn, Lazy::new(g), opts, cfg, wire, mode, feed)
}

#[cfg(test)]
mod tests;
