//! `on_error = "collect"` with a function that returns `Result`: an `Err(e)` fails its item
//! with [`Cause::Returned`] holding `e`'s display, like a panic, and `Ok(v)` is the item's
//! value `v`. The generated call picks the treatment by the function's return type (autoref
//! specialization, so a concrete type decides at compile time):
//!
//! - `Result<T, E>` with `E: Display`: [`ResultTag`], the item's value is a `T`;
//! - a future of such a `Result` (async engine): [`FutureTag`], a future of `T`;
//! - anything else, including a `Result` whose error has no `Display`: [`ValueTag`], the
//!   value as it is.
//!
//! ```text
//! let r = f(args);
//! use Returned{Result,Future,Value}Kind as _;
//! (&&&ReturnedProbe(&r)).parfor_returned_kind().apply(r)
//! ```
//!
//! An `Err` travels to the engine's per-item failure handling (the `catch_unwind` that
//! every engine runs each item under, in this process, a worker thread, a fork worker or an
//! MPI rank) as an unwinding payload raised with `resume_unwind`: no panic hook runs, so
//! nothing is printed, and [`Cause::from_panic`] turns the payload into
//! `Cause::Returned`. Calls with `on_error = "fail"` do not go through here: their results
//! are the function's values, `Result`s included.
//!
//! [`Cause::Returned`]: crate::Cause::Returned
//! [`Cause::from_panic`]: crate::Cause

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The unwinding payload of an item whose function returned `Err`: the error's display.
pub(crate) struct ReturnedError(pub(crate) String);

/// Fails the running item with `e`'s display (see the module documentation).
#[cold]
#[inline(never)]
fn fail_item(e: &dyn Display) -> ! {
    std::panic::resume_unwind(Box::new(ReturnedError(e.to_string())))
}

/// A borrowed item result, whose type picks the treatment of the result.
pub struct ReturnedProbe<'a, R>(pub &'a R);

/// The treatment of a `Result<T, E: Display>`: `Ok(v)` is `v`, `Err(e)` fails the item.
#[derive(Clone, Copy, Debug)]
pub struct ResultTag;
/// The treatment of a future of a `Result<T, E: Display>`: [`ResultTag`]'s, on its output.
#[derive(Clone, Copy, Debug)]
pub struct FutureTag;
/// The treatment of any other result: kept as it is.
#[derive(Clone, Copy, Debug)]
pub struct ValueTag;

/// Picks [`ResultTag`] (highest priority: three references deep).
pub trait ReturnedResultKind {
    /// The treatment.
    #[inline(always)]
    fn parfor_returned_kind(&self) -> ResultTag {
        ResultTag
    }
}
impl<T, E: Display> ReturnedResultKind for &&ReturnedProbe<'_, Result<T, E>> {}

/// Picks [`FutureTag`].
pub trait ReturnedFutureKind {
    /// The treatment.
    #[inline(always)]
    fn parfor_returned_kind(&self) -> FutureTag {
        FutureTag
    }
}
impl<F, T, E> ReturnedFutureKind for &ReturnedProbe<'_, F>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
}

/// Picks [`ValueTag`] (the fallback).
pub trait ReturnedValueKind {
    /// The treatment.
    #[inline(always)]
    fn parfor_returned_kind(&self) -> ValueTag {
        ValueTag
    }
}
impl<R> ReturnedValueKind for ReturnedProbe<'_, R> {}

impl ResultTag {
    /// `Ok(v)`: `v`; `Err(e)`: fails the item with `e`'s display.
    #[inline(always)]
    pub fn apply<T, E: Display>(self, r: Result<T, E>) -> T {
        match r {
            Ok(v) => v,
            Err(e) => fail_item(&e),
        }
    }
}

impl FutureTag {
    /// A future of what [`ResultTag::apply`] makes of `f`'s output.
    #[inline(always)]
    pub fn apply<F, T, E>(self, f: F) -> ReturnedFuture<F>
    where
        F: Future<Output = Result<T, E>>,
        E: Display,
    {
        ReturnedFuture(f)
    }
}

impl ValueTag {
    /// `r` itself.
    #[inline(always)]
    pub fn apply<R>(self, r: R) -> R {
        r
    }
}

/// A future of a `Result<T, E: Display>` whose output is the `Ok` value; an `Err` fails the
/// item (see [`ResultTag::apply`]).
#[derive(Debug)]
pub struct ReturnedFuture<F>(F);

impl<F, T, E> Future for ReturnedFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // SAFETY: structural pinning of the only field: `ReturnedFuture` never moves `F` out
        // (no method gives it out, there is no `Drop` impl), and it is `Unpin` only when `F`
        // is (the auto trait), so a pinned `ReturnedFuture` keeps `F` pinned.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.0) };
        inner.poll(cx).map(|r| ResultTag.apply(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::needless_borrow, reason = "the references pick the treatment")]
    fn the_return_type_picks_the_treatment() {
        let ok: Result<u8, String> = Ok(3);
        let tag = (&&&ReturnedProbe(&ok)).parfor_returned_kind();
        let v: u8 = tag.apply(ok);
        assert_eq!(v, 3);
        // An error type without `Display` keeps the `Result` as a value.
        struct NoDisplay;
        let kept: Result<u8, NoDisplay> = Err(NoDisplay);
        let tag = (&&&ReturnedProbe(&kept)).parfor_returned_kind();
        let kept: Result<u8, NoDisplay> = tag.apply(kept);
        assert!(kept.is_err());
        let plain = (&&&ReturnedProbe(&7u8)).parfor_returned_kind().apply(7u8);
        assert_eq!(plain, 7);
    }

    #[test]
    fn an_err_unwinds_with_its_display_and_no_hook() {
        let payload = std::panic::catch_unwind(|| {
            let r: Result<u8, std::num::ParseIntError> = "x".parse::<u8>();
            (&&&ReturnedProbe(&r)).parfor_returned_kind().apply(r)
        })
        .unwrap_err();
        let cause = crate::error::Cause::from_panic(&*payload);
        assert_eq!(cause, crate::Cause::Returned("invalid digit found in string".into()));
    }
}
