//! The items of a stream: where they come from ([`Feed`]), how a batch of them travels to a
//! worker ([`Work`]), and how a worker runs one ([`Items`]).

use super::emit::Emit;
use crate::error::{Cause, TaskError};
use crate::map::Shape;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

/// A batch of items: consecutive indices of an indexed source, or elements pulled from a
/// lazy one (with the index of the first).
pub(crate) enum Work<T> {
    Range(Range<usize>),
    Items(usize, Vec<T>),
}

impl<T> Work<T> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Work::Range(r) => r.len(),
            Work::Items(_, v) => v.len(),
        }
    }
}

/// Where a stream's items come from.
pub(crate) enum Feed<'a, T> {
    /// Indices `next..n`.
    Range { next: usize, n: usize },
    /// A lazy iterator, pulled on the caller's thread; `next` items pulled so far.
    Pull { it: Box<dyn Iterator<Item = T> + 'a>, next: usize, done: bool },
}

impl<'a, T> Feed<'a, T> {
    pub(crate) fn range(n: usize) -> Feed<'a, T> {
        Feed::Range { next: 0, n }
    }

    pub(crate) fn pull(it: Box<dyn Iterator<Item = T> + 'a>) -> Feed<'a, T> {
        Feed::Pull { it, next: 0, done: false }
    }

    /// The number of items, when known in advance.
    pub(crate) fn len(&self) -> Option<usize> {
        match self {
            Feed::Range { n, .. } => Some(*n),
            Feed::Pull { .. } => None,
        }
    }

    /// The next batch of at most `max` items (at least one), or `None` when there are no
    /// more. A lazy feed pulls its iterator here, on the calling thread.
    pub(crate) fn next(&mut self, max: usize) -> Option<Work<T>> {
        let max = max.max(1);
        match self {
            Feed::Range { next, n } => {
                if *next >= *n {
                    return None;
                }
                let end = (*n).min(next.saturating_add(max));
                let r = *next..end;
                *next = end;
                Some(Work::Range(r))
            }
            Feed::Pull { it, next, done } => {
                if *done {
                    return None;
                }
                let mut v = Vec::with_capacity(max.min(4096));
                while v.len() < max {
                    match it.next() {
                        Some(x) => v.push(x),
                        None => {
                            *done = true;
                            break;
                        }
                    }
                }
                if v.is_empty() {
                    return None;
                }
                let start = *next;
                *next += v.len();
                Some(Work::Items(start, v))
            }
        }
    }
}

/// A stream's per-item function, as workers run it.
pub(crate) trait Items: Send + Sync {
    /// What a lazy source's batch carries (indexed streams carry indices only).
    type T: Send;
    /// One item's result.
    type R: Send;

    /// Runs `work`, appending its output values to `out` (see [`run_items`]).
    fn exec<M: Emit<Self::R>>(
        &self,
        work: Work<Self::T>,
        mode: M,
        catch: bool,
        cancel: &AtomicBool,
        out: &mut Vec<M::Y>,
    ) -> Option<TaskError>;

    /// Item `i` alone (the fork engine's windows); `t` is its element for a lazy source.
    fn one(&self, i: usize, t: Option<Self::T>) -> Self::R;

    /// The error for item `i`.
    fn error(&self, i: usize, cause: Cause) -> TaskError;
}

/// Indexed items: `f` gets each item's index in every source.
pub(crate) struct Indexed<const K: usize, F> {
    pub(crate) shape: Shape<K>,
    pub(crate) f: F,
}

/// Elements of a lazy source: `g` gets each element.
pub(crate) struct Lazy<T, G> {
    g: G,
    _t: std::marker::PhantomData<fn(T)>,
}

impl<T, G> Lazy<T, G> {
    pub(crate) fn new(g: G) -> Lazy<T, G> {
        Lazy { g, _t: std::marker::PhantomData }
    }
}

/// The uninhabited element of an indexed stream's batches.
pub(crate) enum Never {}

impl<const K: usize, R, F> Items for Indexed<K, F>
where
    R: Send,
    F: Fn([usize; K]) -> R + Send + Sync,
{
    type T = Never;
    type R = R;

    fn exec<M: Emit<R>>(
        &self,
        work: Work<Never>,
        mode: M,
        catch: bool,
        cancel: &AtomicBool,
        out: &mut Vec<M::Y>,
    ) -> Option<TaskError> {
        let Work::Range(range) = work else { unreachable!("indexed streams carry ranges") };
        if K == 1 {
            // One source: item `i` is its element `i` (no odometer to keep in step).
            let item = |i: usize| (self.f)([i; K]);
            return run_items(range, mode, catch, cancel, out, item, |i, c| self.error(i, c));
        }
        // The odometer, resynchronized after a panic skipped an item.
        let mut expect = range.start;
        let mut idx = self.shape.indices(range.start);
        let item = |i: usize| {
            if i != expect {
                idx = self.shape.indices(i);
            }
            expect = i + 1;
            let cur = idx;
            self.shape.advance(&mut idx);
            (self.f)(cur)
        };
        run_items(range, mode, catch, cancel, out, item, |i, c| self.error(i, c))
    }

    fn one(&self, i: usize, _: Option<Never>) -> R {
        (self.f)(self.shape.indices(i))
    }

    fn error(&self, i: usize, cause: Cause) -> TaskError {
        TaskError::new(i, self.shape.indices(i).to_vec(), cause)
    }
}

impl<T, R, G> Items for Lazy<T, G>
where
    T: Send,
    R: Send,
    G: Fn(T) -> R + Send + Sync,
{
    type T = T;
    type R = R;

    fn exec<M: Emit<R>>(
        &self,
        work: Work<T>,
        mode: M,
        catch: bool,
        cancel: &AtomicBool,
        out: &mut Vec<M::Y>,
    ) -> Option<TaskError> {
        let Work::Items(start, v) = work else { unreachable!("lazy streams carry elements") };
        let range = start..start + v.len();
        let mut elems = v.into_iter();
        // Items run in order, once each, so the next element is item `i`'s (a panicking item
        // consumed its own).
        let item = |_i: usize| match elems.next() {
            Some(t) => (self.g)(t),
            None => unreachable!("one element per item"),
        };
        run_items(range, mode, catch, cancel, out, item, |i, c| self.error(i, c))
    }

    fn one(&self, _i: usize, t: Option<T>) -> R {
        match t {
            Some(t) => (self.g)(t),
            None => unreachable!("a lazy item has its element"),
        }
    }

    fn error(&self, i: usize, cause: Cause) -> TaskError {
        TaskError::new(i, vec![i], cause)
    }
}

/// Runs the items of `range` in order through `item`, appending each one's output values to
/// `out`. With `catch`, a panicking item's partial output is discarded and it fails: in
/// collect mode its error value is appended and the rest run; in fail mode the batch stops
/// and the failure is returned. Without `catch` the panic goes through. Stops early (with
/// what it has) once `cancel` is set.
pub(crate) fn run_items<R, M: Emit<R>>(
    range: Range<usize>,
    mode: M,
    catch: bool,
    cancel: &AtomicBool,
    out: &mut Vec<M::Y>,
    mut item: impl FnMut(usize) -> R,
    error: impl Fn(usize, Cause) -> TaskError,
) -> Option<TaskError> {
    // A collected panic prints one line (see `crate::quiet`); other calls' panics, the
    // standard report.
    crate::quiet::marked(M::COLLECT, || {
        run_marked(range, mode, catch, cancel, out, &mut item, &error)
    })
}

/// Appends `value(i)` for every `i` of `items` to `out`, which has room for them all, until
/// `cancel` is set (looked at before each item). When `value` panics, the values of the
/// items before it stay in `out` (its length counts them), which is what tells
/// [`run_marked`] which item failed.
///
/// # Panics
/// When `out` has no room for every item (before running any).
#[inline(always)]
fn push_kept<Y>(
    out: &mut Vec<Y>,
    items: Range<usize>,
    cancel: &AtomicBool,
    mut value: impl FnMut(usize) -> Y,
) {
    assert!(out.capacity() - out.len() >= items.len(), "no room for the batch's values");
    /// Sets the vector's length to the values written so far, when the loop ends or unwinds.
    struct Written<'v, Y> {
        out: &'v mut Vec<Y>,
        len: usize,
    }
    impl<Y> Drop for Written<'_, Y> {
        fn drop(&mut self) {
            // SAFETY: the first `len` elements are initialized: the `out.len()` the loop
            // started from, and one written before each increment below, all within the
            // capacity checked above.
            unsafe { self.out.set_len(self.len) };
        }
    }
    let len = out.len();
    let mut w = Written { out, len };
    let base = w.out.as_mut_ptr();
    for i in items {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let y = value(i);
        // SAFETY: `w.len < capacity` (one write per item, room checked above); the element
        // is past the initialized ones, so nothing is overwritten, and `base` stays valid
        // (nothing reallocates `out` while `w` borrows it).
        unsafe { base.add(w.len).write(y) };
        w.len += 1;
    }
}

/// Where the item running is: its index, and how many values `out` held before it.
struct At {
    cur: usize,
    mark: usize,
}

/// [`run_items`] once the thread is marked.
///
/// In modes that yield one value per item ([`Emit::ONE`]) the items of a batch are written
/// into its pre-reserved room ([`push_kept`]: no per-item capacity check or bookkeeping), and
/// the item that panicked is the one whose value is missing; otherwise each item's place is
/// recorded as it starts. Either way the cancel flag is looked at before each item, so a
/// dropped stream's workers stop after the item they run, however long the batch.
fn run_marked<R, M: Emit<R>>(
    range: Range<usize>,
    mode: M,
    catch: bool,
    cancel: &AtomicBool,
    out: &mut Vec<M::Y>,
    mut item: impl FnMut(usize) -> R,
    error: impl Fn(usize, Cause) -> TaskError,
) -> Option<TaskError> {
    let end = range.end;
    if M::ONE {
        out.reserve(range.len());
    }
    // Runs the items from `from` to the end (or until cancelled).
    let mut run = |from: usize, out: &mut Vec<M::Y>, at: &mut At| {
        if M::ONE {
            push_kept(out, from..end, cancel, |i| mode.value(i, item(i)));
        } else {
            for i in from..end {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                *at = At { cur: i, mark: out.len() };
                mode.emit(i, item(i), out);
            }
        }
    };
    let mut start = range.start;
    if !catch {
        run(start, out, &mut At { cur: start, mark: out.len() });
        return None;
    }
    while start < end {
        let mut at = At { cur: start, mark: out.len() };
        match catch_unwind(AssertUnwindSafe(|| run(start, out, &mut at))) {
            Ok(()) => return None,
            Err(payload) => {
                let cause = Cause::from_panic(&*payload);
                // A payload whose destructor panics would abort; forget it instead.
                std::mem::forget(payload);
                if M::ONE {
                    // Every item before the failed one left its one value.
                    at = At { cur: start + (out.len() - at.mark), mark: out.len() };
                }
                out.truncate(at.mark);
                let e = error(at.cur, cause);
                match mode.fail(e.clone()) {
                    Some(y) => out.push(y),
                    None => return Some(e),
                }
                start = at.cur + 1;
            }
        }
    }
    None
}
