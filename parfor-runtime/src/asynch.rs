//! The async engine: `parmap!` / `parmap_async!` over a function that returns a future.
//!
//! Which engine a call runs on is decided where the macro expands, at the type level, by
//! autoref specialization on the mapped function's return type (as [`crate::wire`] picks a
//! wire): `(&&Probe::<R>::new()).parmap_call()` picks [`ViaFuture`] when `R: Future`, giving
//! an [`AsyncCall`], and falls back to [`ViaPlain`], giving a [`SyncCall`] (the serial, threads
//! and fork engines) otherwise. So a function that returns a future can never produce a `Vec`
//! of futures that nobody polls. Options that make sense only for one kind of call (`workers`,
//! `chunk` or a non-async `engine` for an async function; `concurrency` or
//! `engine = "async"` for a plain one) are checked by free functions (`check_workers`, ...)
//! whose bound the wrong kind of call cannot meet, so the mistake is a compile error at the
//! option, with a message of its own (`#[diagnostic::on_unimplemented]`). So is an async
//! function without the `async` feature ([`AsyncFeature`]).
//!
//! The engine itself (cargo feature `async`) polls the futures on the calling thread, at most
//! `concurrency` at once, in a `FuturesUnordered`: no spawning, so the futures need be
//! neither `Send` nor `'static`. Items start in item order; each result is stored at its
//! item's position, so the output is in item order whatever order the futures finish in.
//! Each future runs under `catch_unwind` (a panic fails its item) and, with a `timeout`,
//! under `tokio::time::timeout` (the future is dropped when the time is up). The blocking
//! form (`parmap!`) runs them on a current-thread tokio runtime of its own; `parmap_async!`
//! returns the future, for the caller's executor.

use crate::error::TaskError;
use crate::map::Shape;
use crate::options::Options;
use crate::wire::{Probe, Wire};
use std::future::Future;
use std::marker::PhantomData;

/// How many futures an async call keeps running at once when it has no `concurrency` option.
///
/// ```
/// assert_eq!(parfor::DEFAULT_CONCURRENCY, 64);
/// ```
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Futures that the async engine can run: every `Future` when parfor's `async` feature is on,
/// none without it (so an async function gets a compile error naming the feature, never a
/// `Vec` of futures).
#[diagnostic::on_unimplemented(
    message = "this function returns a future (`{Self}`): mapping it needs parfor's `async` \
               feature",
    label = "an async function runs on the async engine, which the `async` feature provides",
    note = "enable it where parfor is a dependency: `parfor = {{ version = \"...\", features = \
            [\"async\"] }}`"
)]
pub trait AsyncFeature {}

#[cfg(feature = "async")]
impl<F: Future> AsyncFeature for F {}

/// `workers` with an async function (never implemented).
#[diagnostic::on_unimplemented(
    message = "`workers` does not apply to an async function: its futures run concurrently on \
               one thread",
    label = "this call maps a function that returns a future",
    note = "limit how many futures run at once with `concurrency = N` instead"
)]
pub trait WorkersNeedAPlainFunction {}

/// `chunk` with an async function (never implemented).
#[diagnostic::on_unimplemented(
    message = "`chunk` does not apply to an async function: its futures start one by one, up \
               to `concurrency` at once",
    label = "this call maps a function that returns a future",
    note = "remove `chunk`; limit how many futures run at once with `concurrency = N`"
)]
pub trait ChunkNeedsAPlainFunction {}

/// A literal non-async `engine` with an async function (never implemented).
#[diagnostic::on_unimplemented(
    message = "this engine cannot run an async function: a function that returns a future runs \
               on the async engine",
    label = "this call maps a function that returns a future",
    note = "remove the `engine` option, or write `engine = \"async\"`"
)]
pub trait EngineNeedsAPlainFunction {}

/// `concurrency` with a function that does not return a future (never implemented).
#[diagnostic::on_unimplemented(
    message = "`concurrency` applies only to an async function, but this function returns \
               `{Self}`, not a future",
    label = "for a plain function",
    note = "to run fewer items at once on the threads or fork engine, use `workers = N`"
)]
pub trait ConcurrencyNeedsAnAsyncFunction {}

/// `engine = "async"` with a function that does not return a future (never implemented).
#[diagnostic::on_unimplemented(
    message = "`engine = \"async\"` runs functions that return futures, but this function \
               returns `{Self}`",
    label = "for a plain function",
    note = "use `engine = \"serial\"`, `\"threads\"` or `\"fork\"`, or make the function \
            `async`"
)]
pub trait AsyncEngineNeedsAnAsyncFunction {}

/// `parmap_async!` with a function that does not return a future (never implemented).
#[diagnostic::on_unimplemented(
    message = "`parmap_async!` maps functions that return futures, but this function returns \
               `{Self}`",
    label = "not an async function",
    note = "use `parmap!` for a plain function"
)]
pub trait ParmapAsyncNeedsAnAsyncFunction {}

/// An async function over a lazy source or in `parmap_iter!` (never implemented).
#[diagnostic::on_unimplemented(
    message = "this function returns a future (`{Self}`), and async functions run over \
               collections, not over a lazy iterator or as a `parmap_iter!` stream",
    label = "an async function",
    note = "collect the items first (`.collect::<Vec<_>>()`) and call `parmap!` on the `Vec`"
)]
pub trait LazyNeedsAPlainFunction {}

/// `init` with an async function (never implemented).
#[diagnostic::on_unimplemented(
    message = "`init` does not apply to an async function: its futures run concurrently, so \
               they cannot share one `&mut` state",
    label = "this call maps a function that returns a future",
    note = "make the state inside the async function, or share it explicitly (an `Arc<Mutex<_>>` \
            passed with `args = (..)`)"
)]
pub trait InitNeedsAPlainFunction {}

/// A call of a function that does not return a future: the serial, threads and fork engines.
pub struct SyncCall<R>(PhantomData<fn() -> R>);

/// A call of a function that returns futures of type `Fut`: the async engine.
pub struct AsyncCall<Fut> {
    concurrency: Option<usize>,
    _fut: PhantomData<fn() -> Fut>,
}

impl<R> Clone for SyncCall<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for SyncCall<R> {}

impl<Fut> Clone for AsyncCall<Fut> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Fut> Copy for AsyncCall<Fut> {}

/// Chosen by the probe when the function returns a future.
pub trait ViaFuture<T> {
    /// An [`AsyncCall`].
    fn parmap_call(&self) -> AsyncCall<T>;
}

impl<T: Future> ViaFuture<T> for &Probe<T> {
    fn parmap_call(&self) -> AsyncCall<T> {
        AsyncCall { concurrency: None, _fut: PhantomData }
    }
}

/// Chosen by the probe when the function does not return a future.
pub trait ViaPlain<T> {
    /// A [`SyncCall`].
    fn parmap_call(&self) -> SyncCall<T>;
}

impl<T> ViaPlain<T> for Probe<T> {
    fn parmap_call(&self) -> SyncCall<T> {
        SyncCall(PhantomData)
    }
}

/// The [`SyncCall`] or [`AsyncCall`] for the type `R` of a probe expression (`Probe<R>`), by
/// autoref specialization.
#[doc(hidden)]
#[macro_export]
macro_rules! __call_of {
    ($probe:expr) => {{
        #[allow(unused_imports)]
        use $crate::asynch::{ViaFuture as _, ViaPlain as _};
        (&&$probe).parmap_call()
    }};
}

// The checks of the options that suit only one kind of call. Each is a free function whose
// bound only the right kind of call meets (the wrong kind fails one of the never-implemented
// traits above, whose message explains the mistake); the macro locates the call at the
// option, so the compile error points there.

/// `workers`: plain functions only.
pub trait AllowsWorkers {}
impl<R> AllowsWorkers for SyncCall<R> {}
impl<Fut: WorkersNeedAPlainFunction> AllowsWorkers for AsyncCall<Fut> {}

/// `workers`: plain functions only.
#[inline(always)]
pub fn check_workers<C: AllowsWorkers>(_: C) {}

/// A lazy single source or a `parmap_iter!` stream: plain functions only.
pub trait AllowsLazy {}
impl<R> AllowsLazy for SyncCall<R> {}
impl<Fut: LazyNeedsAPlainFunction> AllowsLazy for AsyncCall<Fut> {}

/// A lazy single source or a `parmap_iter!` stream: plain functions only.
#[inline(always)]
pub fn check_lazy<C: AllowsLazy>(_: C) {}

/// `chunk`: plain functions only.
pub trait AllowsChunk {}
impl<R> AllowsChunk for SyncCall<R> {}
impl<Fut: ChunkNeedsAPlainFunction> AllowsChunk for AsyncCall<Fut> {}

/// `chunk`: plain functions only.
#[inline(always)]
pub fn check_chunk<C: AllowsChunk>(_: C) {}

/// A literal `engine = "serial"`, `"threads"` or `"fork"`: plain functions only.
pub trait AllowsSyncEngine {}
impl<R> AllowsSyncEngine for SyncCall<R> {}
impl<Fut: EngineNeedsAPlainFunction> AllowsSyncEngine for AsyncCall<Fut> {}

/// A literal `engine = "serial"`, `"threads"` or `"fork"`: plain functions only.
#[inline(always)]
pub fn check_sync_engine<C: AllowsSyncEngine>(_: C) {}

/// `engine = "async"`: async functions only.
pub trait AllowsAsyncEngine {}
impl<R: AsyncEngineNeedsAnAsyncFunction> AllowsAsyncEngine for SyncCall<R> {}
impl<Fut> AllowsAsyncEngine for AsyncCall<Fut> {}

/// `engine = "async"`: async functions only.
#[inline(always)]
pub fn check_async_engine<C: AllowsAsyncEngine>(_: C) {}

/// `parmap_async!`: async functions only.
pub trait AllowsParmapAsync {}
impl<R: ParmapAsyncNeedsAnAsyncFunction> AllowsParmapAsync for SyncCall<R> {}
impl<Fut> AllowsParmapAsync for AsyncCall<Fut> {}

/// `parmap_async!`: async functions only.
#[inline(always)]
pub fn check_parmap_async<C: AllowsParmapAsync>(_: C) {}

/// `init`: plain functions only.
pub trait AllowsInit {}
impl<R> AllowsInit for SyncCall<R> {}
impl<Fut: InitNeedsAPlainFunction> AllowsInit for AsyncCall<Fut> {}

/// `init`: plain functions only.
#[inline(always)]
pub fn check_init<C: AllowsInit>(_: C) {}

/// An async function needs the `async` feature.
pub trait AllowsAsyncFeature {}
impl<R> AllowsAsyncFeature for SyncCall<R> {}
impl<Fut: AsyncFeature> AllowsAsyncFeature for AsyncCall<Fut> {}

/// An async function needs the `async` feature.
#[inline(always)]
pub fn check_async_feature<C: AllowsAsyncFeature>(_: C) {}

/// What the options of a plain call apply to: its result type (nothing for an async call,
/// which [`check_sync_engine`] refuses on its own).
pub trait CallKind: Copy {
    /// The function's result for a plain call; `()` for an async call.
    type Plain;
}

impl<R> CallKind for SyncCall<R> {
    type Plain = R;
}

impl<Fut> CallKind for AsyncCall<Fut> {
    type Plain = ();
}

/// A literal `engine = "fork"` needs results that cross a process boundary (checked at
/// compile time; an engine chosen at run time reports a missing wire when the fork engine
/// runs).
#[inline(always)]
pub fn check_fork_result<C: CallKind>(_: C)
where
    C::Plain: crate::source::ForkResult,
{
}

/// A literal `engine = "mpi"` needs results that the ranks can exchange (checked at compile
/// time, like `engine = "fork"`).
#[inline(always)]
pub fn check_mpi_result<C: CallKind>(_: C)
where
    C::Plain: crate::source::MpiResult,
{
}

/// `concurrency = n`: async functions only.
pub trait WithConcurrency {
    /// The call with at most `n` futures at once (zero is treated as one).
    fn with_concurrency(self, n: usize) -> Self;
}

impl<R: ConcurrencyNeedsAnAsyncFunction> WithConcurrency for SyncCall<R> {
    fn with_concurrency(self, _: usize) -> Self {
        self
    }
}

impl<Fut> WithConcurrency for AsyncCall<Fut> {
    fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }
}

/// `concurrency = n`: the call with at most `n` futures at once; refused at compile time for
/// a plain function.
#[inline(always)]
pub fn concurrency<C: WithConcurrency>(call: C, n: usize) -> C {
    call.with_concurrency(n)
}

impl<R> SyncCall<R> {
    /// Runs the call on the serial, threads or fork engine (`parmap!`'s map); a configuration
    /// error panics naming the user's call.
    // The caller's location names the call site for the mpi engine's same-call check.
    #[track_caller]
    pub fn map<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<R>>,
        f: F,
    ) -> Vec<R>
    where
        R: Send,
        F: Fn([usize; K]) -> R + Sync,
    {
        crate::map::map(shape, opts, wire, f)
    }

    /// Runs the call on the serial, threads or fork engine, collecting failures
    /// (`on_error = "collect"`); a configuration error panics naming the user's call.
    // The caller's location names the call site for the mpi engine's same-call check.
    #[track_caller]
    pub fn try_map<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<R>>,
        f: F,
    ) -> Vec<Result<R, TaskError>>
    where
        R: Send,
        F: Fn([usize; K]) -> R + Sync,
    {
        crate::map::try_map(shape, opts, wire, f)
    }

    /// As [`SyncCall::map`], with per-worker state made by `init` (`init = make_state`).
    #[track_caller]
    pub fn map_init<const K: usize, F, W, L>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        f: F,
    ) -> Vec<R>
    where
        R: Send,
        F: Fn(&mut W, [usize; K]) -> R + Sync,
        W: Send,
        L: Fn() -> W + Sync,
    {
        crate::map::map_init(shape, opts, wire, init, f)
    }

    /// As [`SyncCall::try_map`], with per-worker state made by `init`.
    #[track_caller]
    pub fn try_map_init<const K: usize, F, W, L>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        f: F,
    ) -> Vec<Result<R, TaskError>>
    where
        R: Send,
        F: Fn(&mut W, [usize; K]) -> R + Sync,
        W: Send,
        L: Fn() -> W + Sync,
    {
        crate::map::try_map_init(shape, opts, wire, init, f)
    }

    /// `parmap_async!` with a plain function: refused at compile time (see
    /// [`check_parmap_async`]).
    pub fn map_async<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<R>>,
        f: F,
    ) -> std::future::Ready<Vec<R>> {
        let _ = (shape, opts, wire, f);
        unreachable!("refused at compile time by `check_parmap_async`")
    }

    /// `parmap_async!` with a plain function: refused at compile time (see
    /// [`check_parmap_async`]).
    pub fn try_map_async<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<R>>,
        f: F,
    ) -> std::future::Ready<Vec<Result<R, TaskError>>> {
        let _ = (shape, opts, wire, f);
        unreachable!("refused at compile time by `check_parmap_async`")
    }
}

impl<Fut: Future> AsyncCall<Fut> {
    /// The number of futures polled at once.
    fn limit(&self) -> usize {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY)
    }

    /// `init` with an async function: refused at compile time (see [`check_init`]).
    pub fn map_init<const K: usize, F, W, L>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<Fut>>,
        init: L,
        f: F,
    ) -> Vec<Fut::Output> {
        let _ = (shape, opts, wire, init, f);
        unreachable!("refused at compile time by `check_init`")
    }

    /// `init` with an async function: refused at compile time (see [`check_init`]).
    pub fn try_map_init<const K: usize, F, W, L>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<Fut>>,
        init: L,
        f: F,
    ) -> Vec<Result<Fut::Output, TaskError>> {
        let _ = (shape, opts, wire, init, f);
        unreachable!("refused at compile time by `check_init`")
    }

    /// Runs the futures on a current-thread tokio runtime of parfor's own, blocking until all
    /// are done; in `fail` mode, panics naming the failed item.
    ///
    /// # Panics
    /// Also when called inside a tokio runtime (use `parmap_async!` there) or when the call's
    /// options choose another engine at run time.
    pub fn map<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<Fut>>,
        f: F,
    ) -> Vec<Fut::Output>
    where
        F: Fn([usize; K]) -> Fut,
    {
        let _ = wire;
        #[cfg(feature = "async")]
        {
            engine::fail_mode(engine::block_on(engine::run(
                shape,
                opts,
                self.limit(),
                &f,
                engine::Fail,
            )))
        }
        #[cfg(not(feature = "async"))]
        {
            let _ = (shape, opts, f, self.limit());
            unreachable!("refused at compile time by `check_async_feature`")
        }
    }

    /// As [`AsyncCall::map`], running every item and collecting failures.
    ///
    /// # Panics
    /// As [`AsyncCall::map`], except for failed items.
    pub fn try_map<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<Fut>>,
        f: F,
    ) -> Vec<Result<Fut::Output, TaskError>>
    where
        F: Fn([usize; K]) -> Fut,
    {
        let _ = wire;
        #[cfg(feature = "async")]
        {
            engine::collect_mode(engine::block_on(engine::run(
                shape,
                opts,
                self.limit(),
                &f,
                engine::Collect,
            )))
        }
        #[cfg(not(feature = "async"))]
        {
            let _ = (shape, opts, f, self.limit());
            unreachable!("refused at compile time by `check_async_feature`")
        }
    }

    /// The future of `parmap_async!`: runs the futures on the executor that polls it; in
    /// `fail` mode, panics naming the failed item.
    pub fn map_async<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<Fut>>,
        f: F,
    ) -> impl Future<Output = Vec<Fut::Output>>
    where
        F: Fn([usize; K]) -> Fut,
    {
        let _ = wire;
        let limit = self.limit();
        async move {
            #[cfg(feature = "async")]
            {
                engine::fail_mode(engine::run(shape, opts, limit, &f, engine::Fail).await)
            }
            #[cfg(not(feature = "async"))]
            {
                let _ = (shape, opts, f, limit);
                unreachable!("refused at compile time by `check_async_feature`")
            }
        }
    }

    /// As [`AsyncCall::map_async`], running every item and collecting failures.
    pub fn try_map_async<const K: usize, F>(
        self,
        shape: Shape<K>,
        opts: &Options,
        wire: Option<Wire<Fut>>,
        f: F,
    ) -> impl Future<Output = Vec<Result<Fut::Output, TaskError>>>
    where
        F: Fn([usize; K]) -> Fut,
    {
        let _ = wire;
        let limit = self.limit();
        async move {
            #[cfg(feature = "async")]
            {
                engine::collect_mode(engine::run(shape, opts, limit, &f, engine::Collect).await)
            }
            #[cfg(not(feature = "async"))]
            {
                let _ = (shape, opts, f, limit);
                unreachable!("refused at compile time by `check_async_feature`")
            }
        }
    }
}

#[cfg(feature = "async")]
mod engine {
    use crate::error::{Cause, TaskError};
    use crate::map::Shape;
    use crate::options::Options;
    use futures_util::FutureExt as _;
    use futures_util::stream::{FuturesUnordered, StreamExt as _};
    use std::future::Future;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    /// How a call stores its results: `R` itself (`fail`) or `Result<R, TaskError>`
    /// (`collect`).
    pub(super) trait Mode<R> {
        type Slot;
        /// Whether failures are collected (a collected panic is then reported in one line).
        const COLLECT: bool;
        /// The slot of a failed item when failures are collected; `None` stops the call.
        fn err(&self, e: TaskError) -> Option<Self::Slot>;
        fn ok(&self, r: R) -> Self::Slot;
    }

    pub(super) struct Fail;
    pub(super) struct Collect;

    impl<R> Mode<R> for Fail {
        type Slot = R;
        const COLLECT: bool = false;
        fn err(&self, _: TaskError) -> Option<R> {
            None
        }
        fn ok(&self, r: R) -> R {
            r
        }
    }

    impl<R> Mode<R> for Collect {
        type Slot = Result<R, TaskError>;
        const COLLECT: bool = true;
        fn err(&self, e: TaskError) -> Option<Self::Slot> {
            Some(Err(e))
        }
        fn ok(&self, r: R) -> Self::Slot {
            Ok(r)
        }
    }

    pub(super) fn fail_mode<R>(r: Result<Vec<R>, TaskError>) -> Vec<R> {
        r.unwrap_or_else(|e| panic!("parfor: {e}"))
    }

    pub(super) fn collect_mode<R>(r: Result<Vec<R>, TaskError>) -> Vec<R> {
        r.unwrap_or_else(|e| panic!("parfor: internal error: a collecting call stopped: {e}"))
    }

    /// Runs `fut` to completion on a new current-thread tokio runtime (with every driver the
    /// program's tokio features provide: time, and I/O when tokio has `net`).
    ///
    /// # Panics
    /// Inside a tokio runtime, where blocking the thread would stall (or deadlock) the
    /// runtime: the message names `parmap_async!`.
    pub(super) fn block_on<T>(fut: impl Future<Output = T>) -> T {
        if tokio::runtime::Handle::try_current().is_ok() {
            panic!(
                "parfor: `parmap!` over an async function blocks its thread until every future \
                 is done, so it cannot run inside an async runtime (this thread is in a tokio \
                 runtime); write `parmap_async!(...).await` there instead, with the same \
                 arguments and options"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("parfor: cannot start the async engine's runtime: {e}"));
        rt.block_on(fut)
    }

    /// Item `i`'s future under `catch_unwind` and, with `timeout`, `tokio::time::timeout`.
    /// Every poll runs marked as collecting or not (`collecting`), so that a collected panic is
    /// reported in one line, whichever thread polls it.
    async fn one<Fut: Future>(
        i: usize,
        fut: Fut,
        timeout: Option<Duration>,
        collecting: bool,
    ) -> (usize, Result<Fut::Output, Cause>) {
        // The future is dropped right after a panic, never polled again, so no broken
        // invariant it holds can be observed: asserting unwind safety is sound here, as for
        // the other engines' per-item `catch_unwind`.
        let mut caught = std::pin::pin!(AssertUnwindSafe(fut).catch_unwind());
        let fut = std::future::poll_fn(move |cx| {
            crate::quiet::marked(collecting, || caught.as_mut().poll(cx))
        });
        let out = match timeout {
            None => fut.await,
            Some(d) => match tokio::time::timeout(d, fut).await {
                Ok(out) => out,
                Err(_) => return (i, Err(Cause::Timeout(d))),
            },
        };
        (i, out.map_err(|p| Cause::from_panic(&*p)))
    }

    /// Runs item futures of `f` over `shape`, at most `limit` at once; the results in item
    /// order, or the first failure in `fail` mode (the futures still running are dropped).
    pub(super) async fn run<const K: usize, Fut, F, M>(
        shape: Shape<K>,
        opts: &Options,
        limit: usize,
        f: &F,
        mode: M,
    ) -> Result<Vec<M::Slot>, TaskError>
    where
        Fut: Future,
        F: Fn([usize; K]) -> Fut,
        M: Mode<Fut::Output>,
    {
        if let Some(engine) = opts.engine {
            panic!(
                "parfor: this call maps an async function, which runs on the async engine, but \
                 its `engine` option chooses `{engine}`; remove the `engine` option (an async \
                 function always runs on the async engine) or write `engine = \"async\"`"
            );
        }
        if opts.timeout.is_some() && tokio::runtime::Handle::try_current().is_err() {
            panic!(
                "parfor: `timeout` on the async engine needs a tokio runtime with its time \
                 driver: await `parmap_async!` inside one, or call `parmap!` outside any runtime"
            );
        }
        if M::COLLECT {
            crate::quiet::install_hook();
        }
        let n = shape.len();
        let limit = limit.max(1);
        let bar = if opts.progress { crate::progress::terminal_bar(n) } else { None };
        let mut slots: Vec<Option<M::Slot>> = Vec::with_capacity(n);
        slots.resize_with(n, || None);
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        let failed = |i: usize, cause: Cause, slots: &mut Vec<Option<M::Slot>>| {
            let e = TaskError::new(i, shape.indices(i).to_vec(), cause);
            match mode.err(e.clone()) {
                Some(slot) => {
                    slots[i] = Some(slot);
                    Ok(())
                }
                None => Err(e),
            }
        };
        loop {
            while running.len() < limit && next < n {
                let i = next;
                next += 1;
                let idx = shape.indices(i);
                // Calling the function only builds the future, but a closure may panic before
                // returning it: that fails the item too.
                let made =
                    crate::quiet::marked(M::COLLECT, || catch_unwind(AssertUnwindSafe(|| f(idx))));
                match made {
                    Ok(fut) => running.push(one(i, fut, opts.timeout, M::COLLECT)),
                    Err(p) => {
                        failed(i, Cause::from_panic(&*p), &mut slots)?;
                        if let Some(bar) = &bar {
                            bar.inc(1);
                        }
                    }
                }
            }
            let Some((i, outcome)) = running.next().await else { break };
            match outcome {
                Ok(v) => slots[i] = Some(mode.ok(v)),
                Err(cause) => failed(i, cause, &mut slots)?,
            }
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        if let Some(bar) = &bar {
            bar.finish();
        }
        Ok(slots
            .into_iter()
            .map(|s| s.expect("parfor: internal error: an async item never finished"))
            .collect())
    }
}
