//! The fork engine of a stream, window by window: the caller's thread takes the next window
//! of items (pulling a lazy source into memory first, so the workers read the elements
//! copy-on-write and only results travel), runs it with the fork engine's `map` (workers
//! forked per window, crashes and time-outs handled as in `parmap!`), and yields its results.
//! The first result therefore arrives when the first window is done, not when the first item
//! is; so the first window is small (4 items per worker) and each next one doubles, up to the
//! stream's window. Results and failures are those of `parmap!`.

use super::items::{Feed, Items, Work};
use super::{Done, Emit, Pump};
use crate::map::{Shape, try_map};
use crate::options::Options;
use crate::wire::Wire;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

pub(crate) struct ForkPump<'a, X: Items, M> {
    items: X,
    mode: M,
    feed: Feed<'a, X::T>,
    opts: Options,
    wire: Option<Wire<X::R>>,
    window: usize,
    /// The size of the next window (grows to `window`).
    next_window: usize,
    seq: u64,
}

impl<'a, X: Items, M: Emit<X::R>> ForkPump<'a, X, M> {
    pub(crate) fn new(
        items: X,
        mode: M,
        feed: Feed<'a, X::T>,
        opts: &Options,
        wire: Option<Wire<X::R>>,
        window: usize,
        workers: usize,
    ) -> Self {
        // The stream draws its own progress bar, per window.
        let opts = opts.clone().progress(false);
        let next_window = (4 * workers.max(1)).min(window).max(1);
        ForkPump { items, mode, feed, opts, wire, window, next_window, seq: 0 }
    }
}

impl<X: Items, M: Emit<X::R>> Pump<M::Y> for ForkPump<'_, X, M> {
    fn refill(&mut self) -> Option<Done<M::Y>> {
        let work = self.feed.next(self.next_window)?;
        self.next_window = self.next_window.saturating_mul(2).min(self.window).max(1);
        let n = work.len();
        let (start, results) = match work {
            Work::Range(r) => {
                let start = r.start;
                let items = &self.items;
                (
                    start,
                    try_map(Shape::product([n]), &self.opts, self.wire, |[j]| {
                        items.one(start + j, None)
                    }),
                )
            }
            Work::Items(start, v) => {
                // Each element is taken by the one item that uses it (in whichever process runs
                // that item).
                let cells: Vec<Mutex<Option<X::T>>> =
                    v.into_iter().map(|t| Mutex::new(Some(t))).collect();
                let items = &self.items;
                let run = |[j]: [usize; 1]| {
                    let t = cells[j].lock().unwrap_or_else(|e| e.into_inner()).take();
                    items.one(start + j, t)
                };
                (start, try_map(Shape::product([n]), &self.opts, self.wire, run))
            }
        };
        let mut out = Vec::with_capacity(n);
        let mut failure = None;
        for (j, r) in results.into_iter().enumerate() {
            let i = start + j;
            let e = match r {
                Ok(r) => {
                    let mark = out.len();
                    let mode = self.mode;
                    match catch_unwind(AssertUnwindSafe(|| mode.emit(i, r, &mut out))) {
                        Ok(()) => continue,
                        Err(p) => {
                            let cause = crate::error::Cause::from_panic(&*p);
                            std::mem::forget(p);
                            out.truncate(mark);
                            self.items.error(i, cause)
                        }
                    }
                }
                Err(e) => self.items.error(i, e.cause().clone()),
            };
            match self.mode.fail(e.clone()) {
                Some(y) => out.push(y),
                None => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_some() {
            // Fail mode: nothing after the failed item runs.
            self.feed = Feed::range(0);
        }
        self.seq += 1;
        Some(Done { seq: self.seq - 1, items: n, out, failure })
    }
}
