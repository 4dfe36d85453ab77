//! parfor: MATLAB-style `parfor` loops and `parmap!` parameter sweeps.
#![doc = "See the README."]
#![doc = include_str!("parmap.md")]

pub use parfor_macros::{parfor, parmap};
pub use parfor_runtime::{
    Cause, ConfigError, Engine, OnError, TaskError, clear_default_engine, default_engine,
    default_workers, set_default_engine, worker_id,
};

/// Implementation details of the macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use parfor_runtime::__wire_of as wire_of;
    pub use parfor_runtime::source::{
        Arg, AsSource, IntRange, Source, fork_result, probe_any, probe_item, probe_ref, sig1, sig2,
        sig3, sig4, sig5, sig6, sig7, sig8, sig9, sig10, sig11, sig12,
    };
    pub use parfor_runtime::wire::{self, Probe, Wire, probe_elem, probe_ret, probe_val};
    pub use parfor_runtime::{Options, Shape, SliceOut, Sliced, fold, map, try_map};
}
