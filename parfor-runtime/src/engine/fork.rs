//! The fork engine: copy-on-write worker processes.

use super::Backend;
use crate::error::Cause;
use crate::job::{Job, Run};
use crate::plan::Plan;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct Fork;

/// Set in a fork worker process right after `fork()`.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Whether this process is a fork worker.
pub(crate) fn in_worker_process() -> bool {
    IN_WORKER.load(Ordering::Relaxed)
}

impl Backend for Fork {
    fn execute(&self, job: &dyn Job, plan: &Plan, _run: &Run) {
        job.fail(
            0,
            Cause::Engine("the fork engine is not implemented yet".into()),
        );
        let _ = plan;
    }
}
