//! Runtime of [parfor](https://docs.rs/parfor): the block plan, engine selection, and the
//! serial, threads and fork engines behind one interface.
//!
//! This crate is an implementation detail; depend on `parfor`, which re-exports its public
//! items.

mod array_part;
pub mod asynch;
mod config;
mod engine;
mod error;
mod fold;
mod job;
mod locals;
mod map;
mod memory;
pub mod mpi_api;
mod options;
mod plan;
mod progress;
#[cfg(unix)]
mod shared_vec;
#[cfg(unix)]
mod shm;
mod slice_out;
pub mod source;
pub mod wire;
mod worker;

pub use array_part::ArrayPart;
pub use asynch::DEFAULT_CONCURRENCY;
pub use config::{
    Config, ConfigError, Engine, clear_default_engine, clear_default_workers, default_engine,
    default_workers, set_default_engine, set_default_workers, with,
};
pub use error::{Cause, OnError, TaskError};
pub use fold::{Cursor, fold};
pub use map::{Shape, map, try_map};
pub use options::{Options, Schedule};
pub use plan::Plan;
#[cfg(unix)]
pub use shared_vec::{ReadOnlySharedVec, SharedVec};
pub use slice_out::{SliceOut, Sliced, SlotCell, Slots};
pub use wire::Pod;
pub use worker::worker_id;
