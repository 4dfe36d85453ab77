//! Compile-fail (`tests/ui`, one user mistake per file) and compile-pass (`tests/pass`) cases
//! for the macros. Regenerate snapshots with `TRYBUILD=overwrite cargo test --test
//! compiletest` (and `--features mpi` for `tests/ui-mpi`) and review the diff.

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
}
