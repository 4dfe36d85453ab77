//! Runtime of [parfor](https://docs.rs/parfor): the block plan, engine selection, and the
//! serial, threads and fork engines behind one interface.
//!
//! This crate is an implementation detail; depend on `parfor`, which re-exports its public
//! items: the engine and its configuration ([`Engine`], [`Config`], [`with`], the program
//! defaults), the failure of an item ([`TaskError`], [`Cause`], [`OnError`]), shared memory
//! ([`SharedVec`], [`Pod`]) and [`worker_id`]. What the macros' generated code calls sits in
//! the hidden module `__private`, which is not a stable interface.
//!
//! ```
//! use parfor_runtime::{Config, Engine};
//!
//! let engine = parfor_runtime::with(Config::new().engine(Engine::Serial), || {
//!     parfor_runtime::default_engine().unwrap()
//! });
//! assert_eq!(engine, Engine::Serial);
//! ```

mod array_part;
pub mod asynch;
mod collection;
mod config;
mod domain;
mod engine;
mod error;
mod fold;
mod huge_pages;
mod job;
mod locals;
mod map;
mod memory;
pub mod mpi_api;
mod options;
mod plan;
mod progress;
mod protocol;
mod quiet;
mod returned;
#[cfg(unix)]
mod shared_vec;
#[cfg(unix)]
mod shm;
mod slice_out;
#[doc(hidden)]
pub mod source;
pub mod stream;
#[doc(hidden)]
pub mod wire;
mod worker;

pub use asynch::DEFAULT_CONCURRENCY;
/// The bytemuck crate, for `#[bytemuck(crate = "parfor::bytemuck")]` on a derive of
/// [`Pod`] in a crate that does not depend on bytemuck itself.
pub use bytemuck;
/// Zero bytes are a valid value: the supertrait of [`Pod`] (bytemuck's), derived with it.
pub use bytemuck::Zeroable;
pub use collection::Source;
pub use config::{
    Config, ConfigError, Engine, clear_default_engine, clear_default_workers, default_engine,
    default_workers, set_default_engine, set_default_workers, with,
};
pub use domain::{LAZY_BLOCKS_PER_WORKER, LAZY_CHUNK, LAZY_FORK_BLOCKS_PER_WORKER};
pub use error::{Cause, OnError, TaskError};
pub use huge_pages::HugePages;
pub use options::Schedule;
#[cfg(unix)]
pub use shared_vec::{ReadOnlySharedVec, SharedVec};
pub use stream::{Detached, ParIter, StreamScope, scope};
pub use wire::Pod;
pub use worker::worker_id;

/// What the code that `#[parfor]` and `parmap!` generate calls, re-exported by
/// `parfor::__private`. Not a public interface: it changes with the macros.
#[doc(hidden)]
pub mod __private {
    pub use crate::__wire_of as wire_of;
    pub use crate::array_part::{
        Dense, DenseAddSub, DenseBits, DenseElem, DenseMinMax, DenseMul, DensePart, Part, PartKind,
        RowsPart, Sparse, SparseArray, SparsePart,
    };
    pub use crate::domain::{
        LAZY_BLOCKS_PER_WORKER, LAZY_CHUNK, LAZY_FORK_BLOCKS_PER_WORKER, Lazy, LoopCheck,
        LoopDomain, LoopHold, LoopHoldIndexed, LoopHoldLazy, LoopHoldLazyMut, LoopItem, LoopItems,
        LoopRef, Window,
    };
    pub use crate::fold::{Cursor, LoopCall, fold};
    pub use crate::map::Shape;
    pub use crate::map::{map, map_init, try_map, try_map_init};
    pub use crate::options::Options;
    pub use crate::returned::{
        FutureTag, ResultTag, ReturnedFuture, ReturnedFutureKind, ReturnedProbe,
        ReturnedResultKind, ReturnedValueKind, ValueTag,
    };
    pub use crate::slice_out::{SliceOut, Sliced, SlotCell, Slots};
    pub use crate::source::{
        Arg, AsSource, IntRange, Source, fork_result, fork_state, init_fn, mpi_state, probe_any,
        probe_init, probe_item, probe_ref, sig1, sig2, sig3, sig4, sig5, sig6, sig7, sig8, sig9,
        sig10, sig11, sig12, sigw1, sigw2, sigw3, sigw4, sigw5, sigw6, sigw7, sigw8, sigw9, sigw10,
        sigw11,
    };
    pub use crate::wire::{self, Probe, Wire, probe_elem, probe_ret, probe_ret_init, probe_val};
}
