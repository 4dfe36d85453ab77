//! What a caught panic prints: with `on_error = "collect"` an item's panic is a value (its
//! [`crate::TaskError`]), so instead of the standard panic report (a few lines, and a whole
//! backtrace under `RUST_BACKTRACE=1`) it prints one line on stderr:
//!
//! ```text
//! parfor: item panicked at src/main.rs:7:9 (collected as its TaskError): division by zero
//! ```
//!
//! Every block of a collecting call runs inside [`Quiet`], which marks the running thread;
//! a panic hook, installed once and chained to the one it replaces, writes the line for
//! panics on a marked thread and hands every other panic to the previous hook. Blocks of
//! other calls (`fail` mode, where the report is the only trace of the item's panic before
//! the call's own) unmark the thread, so a nested call keeps its own behaviour.

use crate::engine::ItemHook;
use crate::error::Cause;
use crate::job::{Failures, Job, Remote};
use crate::protocol::{Decoder, Encoder};
use std::cell::Cell;
use std::ops::Range;

thread_local! {
    /// Whether this thread runs a block of a call that collects its failures.
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread marked as running a collecting call's block (or not).
pub(crate) fn marked<T>(collecting: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COLLECTING.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COLLECTING.with(|c| c.replace(collecting)));
    f()
}

/// Installs the hook that reports a collected panic in one line (once per process). Not
/// from a thread that is unwinding (a call made in a `Drop` during a panic), where the
/// standard library refuses to change the hook by aborting: a later call installs it.
pub(crate) fn install_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    if std::thread::panicking() {
        return;
    }
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match collected_report(info) {
            Some(line) => crate::progress::write_stderr(&line),
            None => previous(info),
        }));
    });
}

/// The message of a panic payload (a `&str` or a `String`), or a placeholder.
pub(crate) fn payload_str(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string panic payload>")
}

/// The one-line report of a panic on a thread that runs a block of a collecting call (in
/// this process or in a fork worker), or `None` for any other panic.
pub(crate) fn collected_report(info: &std::panic::PanicHookInfo<'_>) -> Option<String> {
    COLLECTING.with(Cell::get).then(|| one_line(payload_str(info.payload()), info.location()))
}

/// The report of a collected panic: the first line of its message, where it happened.
fn one_line(msg: &str, at: Option<&std::panic::Location<'_>>) -> String {
    let mut lines = msg.lines();
    let first = lines.next().unwrap_or("");
    let more = if lines.next().is_some() { " [...]" } else { "" };
    match at {
        Some(at) => {
            format!("parfor: item panicked at {at} (collected as its TaskError): {first}{more}\n")
        }
        None => format!("parfor: item panicked (collected as its TaskError): {first}{more}\n"),
    }
}

/// A call's job whose blocks run with the thread marked as collecting (or not).
pub(crate) struct Quiet<'a> {
    inner: &'a dyn Job,
    /// The inner job's [`Remote`], which `Quiet` wraps too.
    remote: Option<&'a dyn Remote>,
    collecting: bool,
}

impl<'a> Quiet<'a> {
    pub(crate) fn new(inner: &'a dyn Job) -> Quiet<'a> {
        let collecting = inner.failures().collect();
        if collecting {
            install_hook();
        }
        Quiet { inner, remote: inner.remote(), collecting }
    }

    /// The inner job's [`Remote`]; only called through [`Job::remote`], which says it exists.
    fn inner_remote(&self) -> &dyn Remote {
        self.remote.expect("parfor: internal error: a job without remote outcomes was encoded")
    }
}

impl Job for Quiet<'_> {
    fn run(&self, block: usize, range: Range<usize>) {
        marked(self.collecting, || self.inner.run(block, range));
    }

    fn failures(&self) -> &Failures {
        self.inner.failures()
    }

    fn fail(&self, index: usize, cause: Cause) {
        self.inner.fail(index, cause);
    }

    fn remote(&self) -> Option<&dyn Remote> {
        self.remote.is_some().then_some(self)
    }
}

impl Remote for Quiet<'_> {
    fn raw_size(&self) -> Option<usize> {
        self.inner_remote().raw_size()
    }

    fn encode(
        &self,
        block: usize,
        range: Range<usize>,
        hook: ItemHook,
        raw: &mut [u8],
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        marked(self.collecting, || self.inner_remote().encode(block, range, hook, raw, out))
    }

    fn store(
        &self,
        block: usize,
        range: Range<usize>,
        raw: &[u8],
        entries: Decoder<'_>,
    ) -> Result<(), Cause> {
        self.inner_remote().store(block, range, raw, entries)
    }

    fn raw_target(&self, range: Range<usize>) -> Option<*mut u8> {
        self.inner_remote().raw_target(range)
    }

    fn per_worker(&self) -> bool {
        self.inner_remote().per_worker()
    }

    fn fold_worker(
        &self,
        block: usize,
        range: Range<usize>,
        hook: ItemHook,
        out: &mut Encoder<'_>,
    ) -> Result<bool, Cause> {
        marked(self.collecting, || self.inner_remote().fold_worker(block, range, hook, out))
    }

    fn encode_worker(
        &self,
        folded: &[(usize, Range<usize>)],
        by_address: bool,
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        self.inner_remote().encode_worker(folded, by_address, out)
    }

    fn store_worker(
        &self,
        entries: Decoder<'_>,
        worker: i32,
    ) -> Result<Option<crate::job::Folded>, Cause> {
        self.inner_remote().store_worker(entries, worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_panic() {
        let at = std::panic::Location::caller();
        let line = one_line("division by zero", Some(at));
        assert!(line.starts_with("parfor: item panicked at "), "{line}");
        assert!(line.ends_with("(collected as its TaskError): division by zero\n"), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
        let line = one_line("first\nsecond\nthird", None);
        assert_eq!(line, "parfor: item panicked (collected as its TaskError): first [...]\n");
    }

    #[test]
    fn marks_nest_and_restore() {
        assert!(!COLLECTING.with(Cell::get));
        marked(true, || {
            assert!(COLLECTING.with(Cell::get));
            marked(false, || assert!(!COLLECTING.with(Cell::get)));
            assert!(COLLECTING.with(Cell::get));
            let _ = std::panic::catch_unwind(|| marked(false, || panic!("unwinds")));
            assert!(COLLECTING.with(Cell::get), "restored on unwind too");
        });
        assert!(!COLLECTING.with(Cell::get));
    }
}
