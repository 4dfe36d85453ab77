//! parfor: MATLAB-style `parfor` loops and `parmap!` parameter sweeps for Rust, on a serial
//! loop, rayon threads or copy-on-write worker processes, with the same results, bit for bit,
//! on every engine and worker count.
//!
//! - [`parmap!`] maps a function over the Cartesian product (or the zip) of collections;
//!   with the cargo feature `async`, an `async fn` runs on the async engine, and
//!   [`parmap_async!`] is the same call for async code.
//! - [`parmap_iter!`] streams the same results as they complete ([`ParIter`]), from
//!   collections, a lazy iterator or a user collection ([`Source`]), through a bounded window;
//!   [`scope`] lets a stream borrow local data.
//! - [`#[parfor]`](macro@parfor) runs the `for` loops marked inside a function in parallel,
//!   after classifying every variable the body touches as MATLAB does.
//! - [`Engine`] chooses where items run: per call (`engine = "fork"`), for the program
//!   ([`set_default_engine`]), or from the environment (`PARFOR_ENGINE`).
//! - [`TaskError`] reports the failure of one item; [`SharedVec`] is memory that fork
//!   workers write in place.
//!
#![doc = include_str!("../README.md")]
//!
#![doc = include_str!("parmap.md")]

mod loop_support;

pub use parfor_macros::{parfor, parmap, parmap_iter};

/// The async engine's `parmap!` for async code (cargo feature `async`).
///
/// ```
/// # #[cfg(feature = "async")] {
/// use parfor::parmap_async;
///
/// async fn square(x: u64) -> u64 {
///     tokio::task::yield_now().await;
///     x * x
/// }
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let squares = rt.block_on(async { parmap_async!(square, 1..=4u64; concurrency = 2).await });
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # }
/// ```
pub use parfor_macros::parmap_async;
pub use parfor_runtime::{
    Cause, Config, ConfigError, DEFAULT_CONCURRENCY, Engine, OnError, Pod, TaskError,
    clear_default_engine, clear_default_workers, default_engine, default_workers,
    set_default_engine, set_default_workers, with, worker_id,
};
pub use parfor_runtime::{Detached, ParIter, Source, StreamScope, scope};

#[cfg(unix)]
pub use parfor_runtime::{ReadOnlySharedVec, SharedVec};

/// Implementation details of the macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use parfor_runtime::__call_of as call_of;
    pub use parfor_runtime::__wire_of as wire_of;
    pub use parfor_runtime::asynch::{
        check_async_engine, check_async_feature, check_chunk, check_fork_result, check_lazy,
        check_parmap_async, check_sync_engine, check_workers, concurrency,
    };
    pub use parfor_runtime::source::{
        Arg, AsSource, IntRange, Source, fork_result, fork_state, probe_any, probe_item, probe_ref,
        sig1, sig2, sig3, sig4, sig5, sig6, sig7, sig8, sig9, sig10, sig11, sig12,
    };
    pub use parfor_runtime::wire::{self, Probe, Wire, probe_elem, probe_ret, probe_val};
    pub use parfor_runtime::{
        ArrayPart, Cursor, Options, Shape, SliceOut, Sliced, SlotCell, Slots, fold, map, try_map,
    };

    pub use parfor_runtime::stream::{
        self,
        single::{
            LazyInProduct, LazyInVariable, Natural, Own, Pass, SingleBorrowedIterator, SingleLazy,
            SingleRange, SingleSource, indexed, indexed_single, probe_single, single_fn,
        },
    };

    pub use crate::loop_support::{
        ARRAY_REDUCTION_BLOCKS, AnyOps, ConcatBuf, IntOps, IntoAcc, LoopIndex, LoopRange,
        LoopSlice, LoopSliceMut, PlainOps, WrapOps, WrappingInt, concat_buf, none, shared,
    };
}
