//! The serial engine: one item per `next()`, run on the caller's thread (a lazy source is
//! pulled one element at a time).

use super::items::{Feed, Items};
use super::{Done, Emit, Pump};
use std::sync::atomic::AtomicBool;

pub(crate) struct SerialPump<'a, X: Items, M> {
    items: X,
    mode: M,
    feed: Feed<'a, X::T>,
    seq: u64,
    never: AtomicBool,
}

impl<'a, X: Items, M: Emit<X::R>> SerialPump<'a, X, M> {
    pub(crate) fn new(items: X, mode: M, feed: Feed<'a, X::T>) -> Self {
        SerialPump { items, mode, feed, seq: 0, never: AtomicBool::new(false) }
    }
}

impl<X: Items, M: Emit<X::R>> Pump<M::Y> for SerialPump<'_, X, M> {
    fn refill(&mut self) -> Option<Done<M::Y>> {
        let work = self.feed.next(1)?;
        let mut out = Vec::new();
        // As `parmap!` on this engine: in fail mode the item's own panic goes through.
        let failure = crate::worker::as_worker(0, || {
            self.items.exec(work, self.mode, M::COLLECT, &self.never, &mut out)
        });
        self.seq += 1;
        Some(Done { seq: self.seq - 1, items: 1, out, failure })
    }
}
