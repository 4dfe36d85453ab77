//! Compile-fail (`tests/ui`, one user mistake per file) and compile-pass (`tests/pass`) cases
//! for the macros. Regenerate snapshots with `TRYBUILD=overwrite cargo test --test
//! compiletest` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/pass/*.rs");
}
