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
    Cause, Config, ConfigError, DEFAULT_CONCURRENCY, Engine, OnError, Schedule, TaskError,
    clear_default_engine, clear_default_workers, default_engine, default_workers,
    set_default_engine, set_default_workers, with, worker_id,
};
pub use parfor_runtime::{Detached, ParIter, Source, StreamScope, scope};
pub use parfor_runtime::{LAZY_BLOCKS_PER_WORKER, LAZY_CHUNK, LAZY_FORK_BLOCKS_PER_WORKER};

/// Plain old data: values that are nothing but their bytes. This is bytemuck's `Pod` trait
/// and its derive: the fork engine copies such results (and sliced outputs) straight into the
/// caller's output instead of serializing them, and a [`SharedVec`] holds them.
///
/// The primitive numbers and arrays of them are `Pod`; derive it (with [`Zeroable`]) for a
/// `#[repr(C)]` struct of `Pod` fields without padding. The derive names the `bytemuck`
/// crate: add `#[bytemuck(crate = "parfor::bytemuck")]` unless your crate depends on bytemuck.
///
/// ```
/// use parfor::{Pod, Zeroable};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[bytemuck(crate = "parfor::bytemuck")]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// fn assert_pod<T: parfor::Pod>() {}
/// assert_pod::<Point>();
/// assert_pod::<[u32; 4]>();
/// # #[cfg(unix)] {
/// let mut v = parfor::SharedVec::<Point>::zeroed(2);
/// v[1] = Point { x: 1.0, y: 2.0 };
/// assert_eq!(v[0], Point { x: 0.0, y: 0.0 });
/// # }
/// ```
pub use parfor_runtime::Pod;

/// Types for which all-zero bytes are a valid value: bytemuck's `Zeroable` trait and its
/// derive, the supertrait of [`Pod`] (derive both). [`SharedVec::zeroed`] starts from zeros.
///
/// ```
/// use parfor::Zeroable;
///
/// #[derive(Clone, Copy, Zeroable)]
/// #[bytemuck(crate = "parfor::bytemuck")]
/// #[repr(C)]
/// struct Stats {
///     count: u64,
///     sum: f64,
/// }
///
/// let s = Stats::zeroed();
/// assert_eq!((s.count, s.sum), (0, 0.0));
/// ```
pub use parfor_runtime::Zeroable;

/// The bytemuck crate, which the derives of [`Pod`] and [`Zeroable`] name: write
/// `#[bytemuck(crate = "parfor::bytemuck")]` next to them in a crate that does not depend on
/// bytemuck itself.
///
/// ```
/// let bytes = parfor::bytemuck::bytes_of(&1.0f64);
/// assert_eq!(bytes.len(), 8);
/// ```
pub use parfor_runtime::bytemuck;

#[cfg(unix)]
pub use parfor_runtime::{ReadOnlySharedVec, SharedVec};

pub use parfor_runtime::HugePages;

/// The MPI job this process belongs to, for programs run with `mpirun -n N` or `srun` on the
/// `mpi` engine (the `mpi` feature): which rank this is, and the collective helpers an SPMD
/// program needs around its parfor calls. Without `mpirun` the program is one rank.
///
/// ```
/// use parfor::parmap;
///
/// let mut seed = 42u64;
/// parfor::mpi::broadcast(&mut seed); // rank 0's seed on every rank
/// let v = parmap!(|i: u64| i ^ seed, 0..100u64; engine = "mpi"); // every rank: all 100
/// if parfor::mpi::is_root() {
///     println!("{} results on {} ranks", v.len(), parfor::mpi::size());
/// }
/// ```
#[cfg(feature = "mpi")]
pub mod mpi {
    pub use parfor_runtime::mpi_api::{barrier, broadcast, is_root, rank, size};
}

/// Implementation details of the macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use parfor_runtime::__call_of as call_of;
    pub use parfor_runtime::__private::{
        Arg, AsSource, Cursor, Dense, DenseAddSub, DenseBits, DenseElem, DenseMinMax, DenseMul,
        DensePart, IntRange, Options, Part, PartKind, Probe, ReturnedFutureKind, ReturnedProbe,
        ReturnedResultKind, ReturnedValueKind, RowsPart, Shape, SliceOut, Sliced, SlotCell, Slots,
        Source, Sparse, SparseArray, SparsePart, Wire, fold, fork_result, fork_state, init_fn, map,
        mpi_state, probe_any, probe_elem, probe_init, probe_item, probe_ref, probe_ret,
        probe_ret_init, probe_val, sig1, sig2, sig3, sig4, sig5, sig6, sig7, sig8, sig9, sig10,
        sig11, sig12, sigw1, sigw2, sigw3, sigw4, sigw5, sigw6, sigw7, sigw8, sigw9, sigw10,
        sigw11, try_map, wire, wire_of,
    };
    pub use parfor_runtime::__private::{
        LAZY_BLOCKS_PER_WORKER, LAZY_CHUNK, LAZY_FORK_BLOCKS_PER_WORKER, Lazy, LoopCall, LoopCheck,
        LoopDomain, LoopHold, LoopHoldIndexed, LoopHoldLazy, LoopHoldLazyMut, LoopItems, LoopRef,
    };
    pub use parfor_runtime::asynch::{
        check_async_engine, check_async_feature, check_chunk, check_fork_result, check_init,
        check_lazy, check_mpi_result, check_parmap_async, check_sync_engine, check_workers,
        concurrency,
    };

    pub use parfor_runtime::stream::{
        self,
        single::{
            LazyInProduct, LazyInVariable, Natural, Own, Pass, SingleBorrowedIterator, SingleLazy,
            SingleRange, SingleSource, indexed, indexed_single, init_source, probe_single,
            single_fn, single_fn_init,
        },
    };

    pub use crate::loop_support::{
        ARRAY_REDUCTION_BLOCKS, AnyOps, ConcatBuf, IntOps, IntoAcc, LoopIndex, LoopRange,
        LoopSliceMut, PlainOps, WrapOps, WrappingInt, concat_buf, none, probe_row_elem, row_lens,
        row_mut, shared,
    };
}
