//! `progress = true`: a progress bar (items done / total, rate, ETA) on stderr, drawn only
//! when stderr is a terminal.
//!
//! Counting happens in the parent process, per finished range of items (a block, normally),
//! by wrapping the call's [`Job`]: no engine needs to know about it, fork workers included
//! (the parent counts the ranges whose results it receives), and the cost is one atomic add
//! per block.

use crate::error::Cause;
use crate::job::{Failures, Job};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::ops::Range;

/// A job that advances a progress bar as its ranges finish.
pub(crate) struct Tracked<'a> {
    inner: &'a dyn Job,
    bar: ProgressBar,
}

impl<'a> Tracked<'a> {
    /// Wraps `inner` with a bar of `total` items, or returns `None` when stderr is not a
    /// terminal (logs and CI stay clean).
    pub(crate) fn new(inner: &'a dyn Job, total: usize) -> Option<Tracked<'a>> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}  elapsed {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Some(Tracked { inner, bar })
    }

    /// Wraps `inner` with `bar`, drawn wherever `bar` draws.
    #[cfg(test)]
    fn with_bar(inner: &'a dyn Job, bar: ProgressBar) -> Tracked<'a> {
        Tracked { inner, bar }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish();
    }
}

impl Job for Tracked<'_> {
    fn run(&self, block: usize, range: Range<usize>) {
        let len = range.len() as u64;
        self.inner.run(block, range);
        self.bar.inc(len);
    }

    fn run_encoded(
        &self,
        block: usize,
        range: Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), Cause> {
        self.inner.run_encoded(block, range, out)
    }

    fn store_encoded(&self, block: usize, range: Range<usize>, bytes: &[u8]) -> Result<(), Cause> {
        let len = range.len() as u64;
        let r = self.inner.store_encoded(block, range, bytes);
        self.bar.inc(len);
        r
    }

    fn pod_size(&self) -> Option<usize> {
        self.inner.pod_size()
    }

    fn run_pod(
        &self,
        block: usize,
        range: Range<usize>,
        dst: &mut [u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Cause> {
        self.inner.run_pod(block, range, dst, out)
    }

    fn pod_target(&self, range: Range<usize>) -> Option<*mut u8> {
        self.inner.pod_target(range)
    }

    fn store_pod(
        &self,
        block: usize,
        range: Range<usize>,
        src: &[u8],
        bytes: &[u8],
    ) -> Result<(), Cause> {
        let len = range.len() as u64;
        let r = self.inner.store_pod(block, range, src, bytes);
        self.bar.inc(len);
        r
    }

    fn failures(&self) -> &Failures {
        self.inner.failures()
    }

    fn fail(&self, index: usize, cause: Cause) {
        self.inner.fail(index, cause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Engine;
    use crate::error::OnError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count {
        items: AtomicUsize,
        failures: Failures,
    }

    impl Job for Count {
        fn run(&self, _block: usize, range: Range<usize>) {
            self.items.fetch_add(range.len(), Ordering::Relaxed);
        }
        fn run_encoded(&self, _: usize, _: Range<usize>, _: &mut Vec<u8>) -> Result<(), Cause> {
            Ok(())
        }
        fn store_encoded(&self, _: usize, range: Range<usize>, _: &[u8]) -> Result<(), Cause> {
            self.items.fetch_add(range.len(), Ordering::Relaxed);
            Ok(())
        }
        fn failures(&self) -> &Failures {
            &self.failures
        }
        fn fail(&self, _: usize, _: Cause) {}
    }

    #[test]
    fn bar_counts_every_finished_item() {
        let job = Count {
            items: AtomicUsize::new(0),
            failures: Failures::new(Engine::Threads, OnError::Fail),
        };
        let tracked = Tracked::with_bar(&job, ProgressBar::hidden());
        let plan = crate::plan::Plan::new(10_000, Some(7));
        for b in 0..plan.blocks() {
            if b % 2 == 0 {
                tracked.run(b, plan.range(b));
            } else {
                tracked.store_encoded(b, plan.range(b), &[]).unwrap();
            }
        }
        assert_eq!(tracked.bar.position(), 10_000);
        assert_eq!(job.items.load(Ordering::Relaxed), 10_000);
    }
}
