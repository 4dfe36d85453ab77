//! Compile-fail (`tests/ui`, one user mistake per file) and compile-pass (`tests/pass`) cases
//! for the macros. Regenerate snapshots with `TRYBUILD=overwrite cargo test --test
//! compiletest` (and again with `--features async`, for `tests/ui-async`, and with `--features
//! mpi`, for `tests/ui-mpi`) and review the diff.
//!
//! The cases of `tests/ui` and `tests/pass` give the same output with and without the `async`
//! feature; `tests/ui-async` (async functions and options that do not suit them) needs the
//! feature, and `tests/ui-no-async` (an async function without it) its absence.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
    // `engine = "mpi"` is refused at compile time without the feature ...
    #[cfg(not(feature = "mpi"))]
    t.compile_fail("tests/ui-no-mpi/*.rs");
    // ... and checked like `engine = "fork"` with it.
    #[cfg(feature = "mpi")]
    t.compile_fail("tests/ui-mpi/*.rs");
    #[cfg(feature = "async")]
    t.compile_fail("tests/ui-async/*.rs");
    #[cfg(not(feature = "async"))]
    t.compile_fail("tests/ui-no-async/*.rs");
}
