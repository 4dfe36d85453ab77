//! The engines, one module each, behind one interface: [`Backend::execute`] runs every block
//! of a [`Plan`] through a [`Job`]. Engines decide only where and when blocks run; what a
//! block computes and how its results are stored and combined is the job's business, which is
//! what makes every engine return the same values.

mod fork;
#[cfg(feature = "mpi")]
pub(crate) mod mpi;

#[cfg(unix)]
pub(crate) use fork::stream as fork_stream;
pub(crate) use fork::{ItemHook, write_into_parent};
mod serial;
mod threads;

use crate::config::{self, Engine, Workers, WorkersFrom};
use crate::job::{Job, Run};
use crate::options::Options;
use crate::plan::Plan;

/// One engine.
pub(crate) trait Backend: Sync {
    /// Runs the blocks of `plan` through `job` until all have run or the job's failures say
    /// stop. Returns when no worker touches `job` any more.
    fn execute(&self, job: &dyn Job, plan: &Plan, run: &Run);
}

fn backend(engine: Engine) -> &'static dyn Backend {
    match engine {
        Engine::Serial => &serial::Serial,
        Engine::Threads => &threads::Threads,
        Engine::Fork => &fork::Fork,
        #[cfg(feature = "mpi")]
        Engine::Mpi => &mpi::Mpi,
        #[cfg(not(feature = "mpi"))]
        Engine::Mpi => unreachable!("`resolve` refuses the mpi engine without the `mpi` feature"),
    }
}

/// Resolves a call's options into the engine and workers it runs on.
///
/// Panics with a message naming the variable and the valid values when `PARFOR_ENGINE` or
/// `PARFOR_WORKERS` is invalid: a silent fallback would run a user's program on an engine
/// they did not ask for. Panics too on a `timeout` for an engine that cannot stop an item
/// (every engine but fork), naming the option, the engine and where it came from, and on the
/// mpi engine in a build without the `mpi` feature. These panics point at the user's call
/// (`#[track_caller]` up to the macros' entry points).
#[track_caller]
pub(crate) fn resolve(opts: &Options) -> Run {
    let (mut engine, from) = match opts.engine {
        Some(e) => (e, config::EngineFrom::Option),
        None => match config::default_engine_from() {
            Ok(found) => found,
            Err(e) => config_error(e),
        },
    };
    // Checked against the engine the call asked for: inside a fork worker, a nested call
    // with a timeout runs serially below (bounded by the outer item's own timeout, if any).
    if let Err(e) = config::check_timeout(engine, from, opts.timeout) {
        config_error(e);
    }
    if let Err(e) = config::check_available(engine, from) {
        config_error(e);
    }
    #[cfg(feature = "mpi")]
    if engine == Engine::Mpi && mpi::in_call() {
        // A call made by an item of an mpi call runs in that rank only: a collective there
        // would wait for ranks that never make it.
        engine = Engine::Serial;
    }
    if engine != Engine::Mpi && !fork::in_worker_process() {
        crate::mpi_api::warn_if_launched(engine);
    }
    let mut workers = match config::resolve_workers(opts.workers) {
        Ok(w) => w,
        Err(e) => config_error(e),
    };
    if fork::in_worker_process() {
        // Inside a fork worker everything runs serially: never start threads or processes
        // there (a rayon pool inherited through fork() would hang).
        engine = Engine::Serial;
        workers = Workers { count: 1, from: WorkersFrom::Option };
    }
    let label = match opts.progress {
        true => opts.label.clone().or_else(|| config::scoped_label().map(str::to_owned)),
        false => None,
    };
    Run {
        engine,
        workers,
        timeout: opts.timeout,
        progress: opts.progress,
        label,
        site: std::panic::Location::caller(),
        schedule: opts.schedule,
    }
}

/// The panic of a configuration error, at the user's call.
#[track_caller]
#[cold]
fn config_error(e: config::ConfigError) -> ! {
    panic!("parfor: {e}")
}

/// Runs `job` over `plan` on the engine chosen in `run`.
pub(crate) fn execute(job: &dyn Job, plan: &Plan, run: &Run) {
    if plan.is_empty() {
        return;
    }
    // A collecting call reports each caught panic in one line (see `quiet`).
    let quiet = crate::quiet::quiet(job);
    // The progress bar of an mpi call is drawn by the root rank only.
    if run.progress && (run.engine != Engine::Mpi || crate::mpi_api::is_root_process()) {
        crate::progress::with_progress(&quiet, plan.len(), run.label.as_deref(), |job| {
            backend(run.engine).execute(job, plan, run);
        });
    } else {
        backend(run.engine).execute(&quiet, plan, run);
    }
}
