//! `parfor::mpi`: the rank of this process in an MPI job and the few collective helpers an
//! SPMD program needs around its parfor calls (the `mpi` feature), and the launch detection
//! every build uses to warn about calls that compute everything once per rank.

use crate::config::Engine;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The number of ranks the MPI launcher started, from its environment
/// (`OMPI_COMM_WORLD_SIZE` for Open MPI's `mpirun`, `PMI_SIZE` for MPICH, Intel MPI and
/// Slurm's `srun --mpi=pmi2`, `PMIX_RANK` with `SLURM_STEP_NUM_TASKS` for `srun --mpi=pmix`);
/// `None` when not launched by one. Read once: the launcher sets it before the program starts.
pub(crate) fn launched_size() -> Option<usize> {
    static SIZE: OnceLock<Option<usize>> = OnceLock::new();
    *SIZE.get_or_init(|| {
        env_number(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]).or_else(|| {
            std::env::var_os("PMIX_RANK")
                .map(|_| env_number(&["SLURM_STEP_NUM_TASKS"]).unwrap_or(1))
        })
    })
}

/// This process's rank according to the launcher's environment (0 when not launched).
fn launched_rank() -> usize {
    static RANK: OnceLock<usize> = OnceLock::new();
    *RANK
        .get_or_init(|| env_number(&["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]).unwrap_or(0))
}

/// The first of `vars` that holds a number.
fn env_number(vars: &[&str]) -> Option<usize> {
    vars.iter().find_map(|v| std::env::var(v).ok()?.trim().parse::<usize>().ok())
}

/// Whether this process draws progress bars and prints parfor's warnings: rank 0 of an MPI
/// job, or any process that is not part of one.
pub(crate) fn is_root_process() -> bool {
    #[cfg(feature = "mpi")]
    if let Some(w) = crate::engine::mpi::world() {
        return w.rank() == 0;
    }
    launched_rank() == 0
}

/// Warns once, on rank 0, when a program launched by `mpirun` with several ranks makes a call
/// on an engine other than `mpi`: every rank then computes every item.
pub(crate) fn warn_if_launched(engine: Engine) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    #[cfg(feature = "mpi")]
    if crate::engine::mpi::in_call() {
        return;
    }
    if WARNED.load(Ordering::Relaxed) {
        return;
    }
    let Some(size) = launched_size().filter(|&s| s > 1) else { return };
    if launched_rank() != 0 || WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    let fix = if cfg!(feature = "mpi") {
        "use `engine = \"mpi\"` or `PARFOR_ENGINE=mpi` to share the items among the ranks"
    } else {
        "build with parfor's `mpi` feature and use `engine = \"mpi\"` or `PARFOR_ENGINE=mpi` \
         to share the items among the ranks"
    };
    eprintln!(
        "parfor: warning: this program runs as {size} MPI ranks, but a call runs on the \
         `{engine}` engine, so every rank computes all of its items; {fix}"
    );
}

#[cfg(feature = "mpi")]
pub use helpers::*;

#[cfg(feature = "mpi")]
mod helpers {
    use crate::engine::mpi;

    fn check_outside_call(what: &str) {
        if mpi::in_call() {
            panic!(
                "parfor::mpi::{what} called inside a call on the mpi engine: only one rank runs \
                 each item, so the other ranks would never join; call it before or after the call"
            );
        }
    }

    /// This process's rank in the MPI job (0 when the program was not launched by `mpirun` or
    /// `srun`). Initialises MPI on first use.
    ///
    /// ```
    /// assert!(parfor::mpi::rank() < parfor::mpi::size());
    /// ```
    pub fn rank() -> usize {
        mpi::world().map_or(0, |w| w.rank())
    }

    /// The number of ranks in the MPI job (1 when the program was not launched by `mpirun` or
    /// `srun`). Initialises MPI on first use.
    ///
    /// ```
    /// assert!(parfor::mpi::size() >= 1);
    /// ```
    pub fn size() -> usize {
        mpi::world().map_or(1, |w| w.size())
    }

    /// Whether this is rank 0: put side effects (printing the table, writing files) under
    /// `if parfor::mpi::is_root()`, so they happen once.
    ///
    /// ```
    /// if parfor::mpi::is_root() {
    ///     println!("written once, by rank 0");
    /// }
    /// ```
    pub fn is_root() -> bool {
        rank() == 0
    }

    /// Waits until every rank has called `barrier`. Every rank must call it, at the same
    /// point, outside parfor calls.
    ///
    /// ```
    /// parfor::mpi::barrier();
    /// ```
    pub fn barrier() {
        check_outside_call("barrier");
        if let Some(w) = mpi::world() {
            w.barrier();
        }
    }

    /// Gives every rank rank 0's `value`: for inputs that would differ between ranks (a
    /// random seed, a directory listing, the time), which parfor calls must see identically
    /// on every rank. Every rank must call it, at the same point, outside parfor calls.
    ///
    /// # Panics
    /// When `value` does not encode or decode with postcard, or inside a parfor call.
    ///
    /// ```
    /// let mut seed: u64 = std::process::id().into(); // differs between ranks
    /// parfor::mpi::broadcast(&mut seed); // now rank 0's everywhere
    /// ```
    pub fn broadcast<T: serde::Serialize + serde::de::DeserializeOwned>(value: &mut T) {
        check_outside_call("broadcast");
        let Some(w) = mpi::world() else { return };
        let mut bytes = if w.rank() == 0 {
            postcard::to_stdvec(value)
                .unwrap_or_else(|e| panic!("parfor::mpi::broadcast: cannot encode the value: {e}"))
        } else {
            Vec::new()
        };
        w.broadcast_bytes(&mut bytes);
        if w.rank() != 0 {
            *value = postcard::from_bytes(&bytes).unwrap_or_else(|e| {
                panic!("parfor::mpi::broadcast: cannot decode rank 0's value: {e}")
            });
        }
    }
}
