//! parfor: MATLAB-style `parfor` loops and `parmap!` parameter sweeps for Rust, on a serial
//! loop, rayon threads or copy-on-write worker processes, with the same results, bit for bit,
//! on every engine and worker count.
//!
//! - [`parmap!`] maps a function over the Cartesian product (or the zip) of collections;
//!   with the cargo feature `async`, an `async fn` runs on the async engine, and
//!   [`parmap_async!`] is the same call for async code.
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

pub use parfor_macros::{parfor, parmap};

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
    Cause, Config, ConfigError, DEFAULT_CONCURRENCY, Engine, OnError, Pod, Schedule, TaskError,
    clear_default_engine, clear_default_workers, default_engine, default_workers,
    set_default_engine, set_default_workers, with, worker_id,
};

#[cfg(unix)]
pub use parfor_runtime::{ReadOnlySharedVec, SharedVec};

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
    pub use parfor_runtime::__wire_of as wire_of;
    pub use parfor_runtime::asynch::{
        check_async_engine, check_async_feature, check_chunk, check_fork_result, check_mpi_result,
        check_parmap_async, check_sync_engine, check_workers, concurrency,
    };
    pub use parfor_runtime::source::{
        Arg, AsSource, IntRange, Source, fork_result, fork_state, mpi_state, probe_any, probe_item,
        probe_ref, sig1, sig2, sig3, sig4, sig5, sig6, sig7, sig8, sig9, sig10, sig11, sig12,
    };
    pub use parfor_runtime::wire::{self, Probe, Wire, probe_elem, probe_ret, probe_val};
    pub use parfor_runtime::{
        ArrayPart, Cursor, Options, Shape, SliceOut, Sliced, SlotCell, Slots, fold, map, try_map,
    };

    pub use crate::loop_support::{
        ARRAY_REDUCTION_BLOCKS, AnyOps, ConcatBuf, IntOps, IntoAcc, LoopIndex, LoopRange,
        LoopSlice, LoopSliceMut, PlainOps, WrapOps, WrappingInt, concat_buf, none, shared,
    };
}
