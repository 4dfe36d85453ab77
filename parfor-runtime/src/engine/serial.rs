//! The serial engine: a plain loop over the blocks, in order, in the caller's thread.

use super::Backend;
use crate::job::{Job, Run};
use crate::plan::Plan;
use crate::worker::as_worker;

pub(crate) struct Serial;

impl Backend for Serial {
    fn execute(&self, job: &dyn Job, plan: &Plan, _run: &Run) {
        run_in_caller(job, plan);
    }
}

/// Runs every block in order in the calling thread, as worker 0, until the job stops.
pub(crate) fn run_in_caller(job: &dyn Job, plan: &Plan) {
    as_worker(0, || {
        for b in 0..plan.blocks() {
            if job.failures().stopped() {
                break;
            }
            job.run(b, plan.range(b));
        }
    });
}
