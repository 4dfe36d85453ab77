//! What a caught panic prints: with `on_error = "collect"` an item's panic is a value (its
//! [`crate::TaskError`]), so instead of the standard panic report (a few lines, and a whole
//! backtrace under `RUST_BACKTRACE=1`) it prints one line on stderr:
//!
//! ```text
//! parfor: item panicked at src/main.rs:7:9 (collected as its TaskError): division by zero
//! ```
//!
//! Every block of a collecting call runs inside [`quiet`]'s wrapper, which marks the running
//! thread; a panic hook, installed once and chained to the one it replaces, writes the line for
//! panics on a marked thread and hands every other panic to the previous hook. Blocks of
//! other calls (`fail` mode, where the report is the only trace of the item's panic before
//! the call's own) unmark the thread, so a nested call keeps its own behaviour.

use crate::job::{Around, Job, Wrapped};
use std::cell::Cell;

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

/// Marks the threads that run a call's items as collecting its failures (or not): what
/// [`quiet`] wraps each call's job in (see [`Wrapped`]).
pub(crate) struct Marks {
    collecting: bool,
}

impl Around for Marks {
    fn running<R>(&self, f: impl FnOnce() -> R) -> R {
        marked(self.collecting, f)
    }
}

/// `job` with its items run on threads marked as collecting when the call collects its
/// failures; installs the hook that reports those panics in one line.
pub(crate) fn quiet(job: &dyn Job) -> Wrapped<'_, Marks> {
    let collecting = job.failures().collect();
    if collecting {
        install_hook();
    }
    Wrapped::new(job, Marks { collecting })
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
