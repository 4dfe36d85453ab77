//! `progress = true`: a progress bar (items done / total, rate, ETA) on stderr when stderr
//! is a terminal, and plain lines (every 10 % of the items or 10 seconds) when it is not, so
//! the logs of batch jobs (Slurm, CI) show how far a call got.
//!
//! Counting happens in the parent process, per finished range of items (a block, normally),
//! by wrapping the call's [`Job`]: no engine needs to know about it, fork workers included
//! (the parent counts the ranges whose results it receives). Workers only add to an atomic
//! counter, once per block; a ticker thread of the caller redraws the bar ten times a second
//! (or decides whether a plain line is due), so no worker ever waits on the terminal.

use crate::job::{Around, Job, Wrapped};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the bar is redrawn (and plain lines are considered).
const TICK: Duration = Duration::from_millis(100);

/// The longest time between two plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(10);

/// Counts a job's items as its ranges finish (see [`Wrapped`]).
#[derive(Default)]
struct Counter {
    done: AtomicU64,
}

impl Around for Counter {
    fn finished(&self, n: usize) {
        self.done.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl Counter {
    fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// Runs `execute` on `job`, reporting the progress of its `total` items on stderr: a bar
/// when stderr is a terminal, plain lines otherwise. `label` names the call.
pub(crate) fn with_progress(
    job: &dyn Job,
    total: usize,
    label: Option<&str>,
    execute: impl FnOnce(&dyn Job),
) {
    if !std::io::stderr().is_terminal() {
        let mut lines = Lines::new(total as u64, label, Instant::now());
        run_tracked(job, |done, last| lines.tick(done, last, Instant::now()), execute);
        return;
    }
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    let template = match label {
        Some(_) => {
            "{prefix} {bar:40} {human_pos}/{human_len} items  {rate}  ETA {eta}  elapsed {elapsed}"
        }
        None => "{bar:40} {human_pos}/{human_len} items  {rate}  ETA {eta}  elapsed {elapsed}",
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} items/s", state.per_sec());
        });
    bar.set_style(style);
    if let Some(label) = label {
        bar.set_prefix(label.to_owned());
    }
    run_tracked(job, |done, _| bar.set_position(done), execute);
    bar.finish();
}

/// A progress bar of `total` items on stderr when stderr is a terminal (logs and CI stay
/// clean); `None` otherwise.
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) fn terminal_bar(total: usize) -> Option<ProgressBar> {
    stream_bar(Some(total))
}

/// A progress bar for a stream of `total` items (unknown for a lazy source: then the count
/// and the rate, without total or ETA), when stderr is a terminal.
pub(crate) fn stream_bar(total: Option<usize>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let template = match total {
        Some(_) => "{bar:40} {human_pos}/{human_len} items  {rate}  ETA {eta}  elapsed {elapsed}",
        None => "{human_pos} items  {rate}  elapsed {elapsed}",
    };
    let bar = ProgressBar::with_draw_target(total.map(|n| n as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} items/s", state.per_sec());
        });
    bar.set_style(style);
    Some(bar)
}

/// Runs `execute` on `job` wrapped in a [`Counter`], calling `tick(done, last)` from a ticker
/// thread every [`TICK`], and once more with `last` set when `execute` has returned (or
/// unwound).
fn run_tracked(
    job: &dyn Job,
    mut tick: impl FnMut(u64, bool) + Send,
    execute: impl FnOnce(&dyn Job),
) {
    let tracked = Wrapped::new(job, Counter::default());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let ticker = s.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                std::thread::park_timeout(TICK);
                if !stop.load(Ordering::Acquire) {
                    tick(tracked.around.done(), false);
                }
            }
            tick(tracked.around.done(), true);
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
}

/// The plain progress lines of one call: one at every further 10 % of the items, one at
/// least every [`LINE_EVERY`] while the call runs, and one at the end.
struct Lines<'l> {
    total: u64,
    label: Option<&'l str>,
    start: Instant,
    /// When the last line was written.
    last: Instant,
    /// The next tenth of the items (1 to 10) that earns a line.
    next_tenth: u64,
    /// The count of the last line written.
    written: Option<u64>,
}

impl<'l> Lines<'l> {
    fn new(total: u64, label: Option<&'l str>, start: Instant) -> Lines<'l> {
        Lines { total, label, start, last: start, next_tenth: 1, written: None }
    }

    /// The line due at `now` with `done` items finished (`end`: the call has returned), if any.
    fn due(&mut self, done: u64, end: bool, now: Instant) -> Option<String> {
        let tenth = (done.saturating_mul(10)).checked_div(self.total).unwrap_or(10);
        let due = tenth >= self.next_tenth
            || now.duration_since(self.last) >= LINE_EVERY
            || (end && self.written != Some(done));
        if !due {
            return None;
        }
        self.next_tenth = self.next_tenth.max(tenth + 1);
        self.last = now;
        self.written = Some(done);
        Some(self.line(done, now))
    }

    fn line(&self, done: u64, now: Instant) -> String {
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let percent = (done * 100).checked_div(self.total).unwrap_or(100);
        let name = self.label.unwrap_or("progress");
        let mut line = format!(
            "parfor: {name}: {done}/{} items ({percent}%), {elapsed:.1}s elapsed",
            self.total
        );
        if done > 0 && done < self.total {
            let eta = elapsed * (self.total - done) as f64 / done as f64;
            line.push_str(&format!(", ETA {eta:.1}s"));
        }
        line.push('\n');
        line
    }

    fn tick(&mut self, done: u64, end: bool, now: Instant) {
        if let Some(line) = self.due(done, end, now) {
            write_stderr(&line);
        }
    }
}

/// Writes `text` to stderr with plain `write(2)` calls, without taking the lock of Rust's
/// `Stderr`: a thread of the caller that held that lock when a fork worker was made would
/// leave the worker's own prints waiting forever.
pub(crate) fn write_stderr(text: &str) {
    #[cfg(unix)]
    {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            match nix::unistd::write(std::io::stderr(), rest) {
                Ok(0) => return,
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        use std::io::Write;
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Engine;
    use crate::engine::ItemHook;
    use crate::error::{Cause, OnError};
    use crate::job::{Failures, Remote};
    use crate::protocol::{Decoder, Encoder};
    use std::ops::Range;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count {
        items: AtomicUsize,
        failures: Failures,
    }

    impl Job for Count {
        fn run(&self, _block: usize, range: Range<usize>) {
            self.items.fetch_add(range.len(), Ordering::Relaxed);
        }
        fn failures(&self) -> &Failures {
            &self.failures
        }
        fn fail(&self, _: usize, _: Cause) {}
        fn remote(&self) -> Option<&dyn Remote> {
            Some(self)
        }
    }

    impl Remote for Count {
        fn raw_size(&self) -> Option<usize> {
            None
        }
        fn encode(
            &self,
            _: usize,
            _: Range<usize>,
            _: ItemHook,
            _: &mut [u8],
            _: &mut Encoder<'_>,
        ) -> Result<(), Cause> {
            Ok(())
        }
        fn store(
            &self,
            _: usize,
            range: Range<usize>,
            _: &[u8],
            _: Decoder<'_>,
        ) -> Result<(), Cause> {
            self.items.fetch_add(range.len(), Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn bar_counts_every_finished_item() {
        let job = Count {
            items: AtomicUsize::new(0),
            failures: Failures::new(Engine::Threads, OnError::Fail),
        };
        let bar = ProgressBar::hidden();
        let plan = crate::plan::Plan::new(10_000, Some(7));
        run_tracked(
            &job,
            |done, _| bar.set_position(done),
            |tracked| {
                for b in 0..plan.blocks() {
                    if b % 2 == 0 {
                        tracked.run(b, plan.range(b));
                    } else {
                        let remote = tracked.remote().expect("a remote job");
                        remote.store(b, plan.range(b), &[], Decoder::new(&[])).unwrap();
                    }
                }
            },
        );
        assert_eq!(bar.position(), 10_000);
        assert_eq!(job.items.load(Ordering::Relaxed), 10_000);
    }

    #[test]
    fn plain_lines_every_tenth_every_ten_seconds_and_at_the_end() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut lines = Lines::new(1000, Some("sweep"), t0);
        assert_eq!(lines.due(0, false, at(100)), None);
        assert_eq!(lines.due(99, false, at(200)), None);
        let l = lines.due(100, false, at(300)).unwrap();
        assert_eq!(l, "parfor: sweep: 100/1000 items (10%), 0.3s elapsed, ETA 2.7s\n");
        assert_eq!(lines.due(150, false, at(400)), None, "the next line is at 20 %");
        // a jump over several tenths writes one line
        assert!(lines.due(450, false, at(500)).unwrap().contains("450/1000 items (45%)"));
        assert_eq!(lines.due(480, false, at(600)), None);
        // nothing for ten seconds: a line anyway
        assert_eq!(lines.due(490, false, at(10_499)), None);
        assert!(lines.due(490, false, at(10_500)).unwrap().contains("490/1000"));
        let end = lines.due(1000, true, at(11_000)).unwrap();
        assert_eq!(end, "parfor: sweep: 1000/1000 items (100%), 11.0s elapsed\n");
        assert_eq!(lines.due(1000, true, at(11_100)), None, "the end is written once");

        let mut unlabeled = Lines::new(0, None, t0);
        assert_eq!(
            unlabeled.due(0, true, at(50)).unwrap(),
            "parfor: progress: 0/0 items (100%), 0.1s elapsed\n"
        );
    }
}
