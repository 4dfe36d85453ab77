//! Failures of single items, and what a call does about them.

use std::fmt;

/// What a call does when an item fails: `on_error = "fail"` (the default) or
/// `on_error = "collect"` in `parmap!`.
///
/// ```
/// use parfor::{parmap, TaskError};
///
/// fn checked_sqrt(x: f64) -> f64 {
///     assert!(x >= 0.0, "negative input {x}");
///     x.sqrt()
/// }
/// let xs = [4.0, -1.0, 9.0];
/// // "collect": every item runs, failures come back as values
/// let r: Vec<Result<f64, TaskError>> = parmap!(checked_sqrt, xs; on_error = "collect");
/// assert_eq!((r[0].clone(), r[2].clone()), (Ok(2.0), Ok(3.0)));
/// // "fail" (the default): the call panics naming the item
/// let caught = std::panic::catch_unwind(|| parmap!(checked_sqrt, xs; engine = "threads"));
/// assert!(caught.is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnError {
    /// Stop handing out work and panic in the caller with a message naming the failed item
    /// (the serial engine re-raises the item's own panic at once).
    #[default]
    Fail,
    /// Run every item; return one `Result` per item. A caught panic prints one line on
    /// stderr (where, and the first line of its message) instead of the standard panic
    /// report. A function that returns `Result<T, E>` with `E: Display` fails its item with
    /// its `Err` ([`Cause::Returned`], nothing printed), so the call gives
    /// `Vec<Result<T, TaskError>>`; with [`OnError::Fail`] its `Result`s are values.
    ///
    /// ```
    /// use parfor::{parmap, Cause};
    ///
    /// let r = parmap!(|s: &str| s.parse::<u8>(), ["7", "300"]; on_error = "collect");
    /// assert_eq!(r[0], Ok(7));
    /// let cause = r[1].as_ref().unwrap_err().cause();
    /// assert_eq!(cause, &Cause::Returned("number too large to fit in target type".into()));
    /// ```
    Collect,
}

/// Why an item failed, as [`TaskError::cause`] tells it.
///
/// ```
/// use parfor::{parmap, Cause, TaskError};
///
/// fn risky(i: u32) -> u32 {
///     if i == 1 {
///         panic!("no ones");
///     }
///     i
/// }
/// let r: Vec<Result<u32, TaskError>> = parmap!(risky, 0..3u32; on_error = "collect");
/// let err = r[1].as_ref().unwrap_err();
/// assert_eq!(err.cause(), &Cause::Panic("no ones".into()));
/// assert_eq!(err.cause().to_string(), "panicked: no ones");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The item panicked; the panic message (or a placeholder for non-string payloads).
    Panic(String),
    /// The worker process running the item was killed by a signal (fork engine).
    Signal {
        /// Signal number.
        signo: i32,
        /// Signal name, such as `SIGSEGV`.
        name: String,
    },
    /// The worker process running the item exited with this code (fork engine).
    Exit(i32),
    /// The item ran longer than the call's time-out (fork engine: its worker was killed;
    /// async engine: its future was dropped).
    Timeout(std::time::Duration),
    /// The engine could not run or return the item (for example a result that cannot cross
    /// a process boundary).
    Engine(String),
    /// The item's function returned `Err(e)` (with `on_error = "collect"`, a function that
    /// returns `Result<T, E>` with `E: Display`); `e`'s display.
    Returned(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Panic(msg) => write!(f, "panicked: {msg}"),
            Cause::Signal { signo, name } => write!(f, "killed by signal {name} ({signo})"),
            Cause::Exit(code) => write!(f, "worker process exited with code {code}"),
            Cause::Timeout(d) => write!(f, "timed out after {d:?}"),
            Cause::Engine(msg) => write!(f, "engine error: {msg}"),
            Cause::Returned(msg) => write!(f, "returned an error: {msg}"),
        }
    }
}

impl Cause {
    /// Turns a caught panic payload into a cause, keeping its message (an item whose function
    /// returned `Err` unwinds with its error, see [`crate::returned`]).
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Cause {
        if let Some(e) = payload.downcast_ref::<crate::returned::ReturnedError>() {
            return Cause::Returned(e.0.clone());
        }
        let msg = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "<non-string panic payload>".to_owned()
        };
        Cause::Panic(msg)
    }
}

/// The failure of one item of a `parmap!` call or one iteration of a `#[parfor]` loop.
///
/// ```
/// use parfor::{parmap, TaskError};
///
/// fn inv(x: i32) -> i32 {
///     assert!(x != 0, "division by zero");
///     100 / x
/// }
/// let xs = [5, 0, 10];
/// let results: Vec<Result<i32, TaskError>> = parmap!(inv, xs; on_error = "collect");
/// assert_eq!(results[0], Ok(20));
/// let err = results[1].as_ref().unwrap_err();
/// assert_eq!(err.index(), 1);
/// assert!(err.to_string().contains("division by zero"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError {
    index: usize,
    indices: Vec<usize>,
    cause: Cause,
}

impl TaskError {
    /// Builds an error for flat item `index`, whose index in each source is `indices`.
    pub(crate) fn new(index: usize, indices: Vec<usize>, cause: Cause) -> TaskError {
        TaskError { index, indices, cause }
    }

    /// The item's flat index (its position in the result).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The item's index in each source, first source first (one entry for a single source
    /// or a loop).
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Why it failed.
    pub fn cause(&self) -> &Cause {
        &self.cause
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}", self.index)?;
        if self.indices.len() > 1 {
            f.write_str(" (")?;
            for (k, i) in self.indices.iter().enumerate() {
                if k > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "source {k} index {i}")?;
            }
            f.write_str(")")?;
        }
        write!(f, " failed: {}", self.cause)
    }
}

impl std::error::Error for TaskError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_item_sources_and_cause() {
        let e = TaskError::new(7, vec![2, 1], Cause::Panic("boom".into()));
        assert_eq!(
            e.to_string(),
            "item 7 (source 0 index 2, source 1 index 1) failed: panicked: boom"
        );
        let e = TaskError::new(3, vec![3], Cause::Exit(4));
        assert_eq!(e.to_string(), "item 3 failed: worker process exited with code 4");
    }
}
