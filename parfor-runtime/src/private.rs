//! The entry points of `parmap!` as the generated code calls them: the configuration is
//! resolved here, with `#[track_caller]`, so an invalid `PARFOR_ENGINE` or `PARFOR_WORKERS`
//! (or a timeout on an engine that cannot stop an item) panics naming the user's call, not
//! the runtime's source.

use crate::error::TaskError;
use crate::map::Shape;
use crate::options::Options;
use crate::wire::Wire;

/// Maps `f` over `shape`; in `fail` mode, panics naming the failed item.
///
/// `f` receives each item's index in every source. `wire` lets the fork engine ship results
/// back (see [`crate::wire`]).
#[track_caller]
pub fn map<const K: usize, R, F>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    f: F,
) -> Vec<R>
where
    R: Send,
    F: Fn([usize; K]) -> R + Sync,
{
    crate::engine::resolve(opts);
    crate::map::map(shape, opts, wire, f)
}

/// Maps `f` over `shape`, running every item; one `Result` per item.
#[track_caller]
pub fn try_map<const K: usize, R, F>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    f: F,
) -> Vec<Result<R, TaskError>>
where
    R: Send,
    F: Fn([usize; K]) -> R + Sync,
{
    crate::engine::resolve(opts);
    crate::map::try_map(shape, opts, wire, f)
}
