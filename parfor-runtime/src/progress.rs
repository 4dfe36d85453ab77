//! `progress = true`: a progress bar (items done / total, rate, ETA) on stderr, drawn only
//! when stderr is a terminal.
//!
//! Counting happens in the parent process, per finished range of items (a block, normally),
//! by wrapping the call's [`Job`]: no engine needs to know about it, fork workers included
//! (the parent counts the ranges whose results it receives). Workers only add to an atomic
//! counter, once per block; a ticker thread of the caller redraws the bar ten times a second,
//! so no worker ever waits on the terminal.

use crate::error::Cause;
use crate::job::{Failures, Job};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// A job that counts its items as its ranges finish.
pub(crate) struct Tracked<'a> {
    inner: &'a dyn Job,
    done: AtomicU64,
}

impl<'a> Tracked<'a> {
    fn new(inner: &'a dyn Job) -> Tracked<'a> {
        Tracked { inner, done: AtomicU64::new(0) }
    }

    fn add(&self, range_len: usize) {
        self.done.fetch_add(range_len as u64, Ordering::Relaxed);
    }

    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// Runs `execute` on `job`, with a progress bar of `total` items on stderr when stderr is a
/// terminal (logs and CI stay clean); without one otherwise.
pub(crate) fn with_progress(job: &dyn Job, total: usize, execute: impl FnOnce(&dyn Job)) {
    let Some(bar) = terminal_bar(total) else {
        return execute(job);
    };
    run_tracked(job, &bar, execute);
    bar.finish();
}

/// A progress bar of `total` items on stderr when stderr is a terminal (logs and CI stay
/// clean); `None` otherwise.
pub(crate) fn terminal_bar(total: usize) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{bar:40} {human_pos}/{human_len} items  {rate}  ETA {eta}  elapsed {elapsed}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0} items/s", state.per_sec());
    });
    bar.set_style(style);
    Some(bar)
}

/// Runs `execute` on `job` wrapped in a [`Tracked`], moving `bar` along from a ticker thread.
fn run_tracked(job: &dyn Job, bar: &ProgressBar, execute: impl FnOnce(&dyn Job)) {
    let tracked = Tracked::new(job);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let ticker = s.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                std::thread::park_timeout(TICK);
                bar.set_position(tracked.done());
            }
        });
        // Stop the ticker even if `execute` unwinds (a failed call panics in the caller).
        struct Stop<'s>(&'s AtomicBool, &'s std::thread::Thread);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
                self.1.unpark();
            }
        }
        let _stop = Stop(&stop, ticker.thread());
        execute(&tracked);
    });
    bar.set_position(tracked.done());
}

impl Job for Tracked<'_> {
    fn run(&self, block: usize, range: Range<usize>) {
        let len = range.len();
        self.inner.run(block, range);
        self.add(len);
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
        let len = range.len();
        let r = self.inner.store_encoded(block, range, bytes);
        self.add(len);
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
        let len = range.len();
        let r = self.inner.store_pod(block, range, src, bytes);
        self.add(len);
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
        let bar = ProgressBar::hidden();
        let plan = crate::plan::Plan::new(10_000, Some(7));
        run_tracked(&job, &bar, |tracked| {
            for b in 0..plan.blocks() {
                if b % 2 == 0 {
                    tracked.run(b, plan.range(b));
                } else {
                    tracked.store_encoded(b, plan.range(b), &[]).unwrap();
                }
            }
        });
        assert_eq!(bar.position(), 10_000);
        assert_eq!(job.items.load(Ordering::Relaxed), 10_000);
    }
}
