//! Crash isolation on the fork engine: among 16 items one segfaults and one panics; every
//! other item completes, and the two failures come back with their indices and causes.
//!
//! ```text
//! cargo run --release --example crash_isolation
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::{TaskError, parmap};

/// Item 5 dies of SIGSEGV, as a crashing C library would; item 11 panics; the others return
/// a square.
fn risky(i: u32) -> u32 {
    if i == 5 {
        // SAFETY: restoring the default action and raising the signal touch no memory; the
        // default action ends the worker process, which is what this example survives. (Rust
        // installs a SIGSEGV handler for stack overflows that ignores a raised SIGSEGV, hence
        // the reset.)
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::raise(libc::SIGSEGV);
        }
    }
    if i == 11 {
        panic!("item {i} cannot be computed");
    }
    i * i
}

fn main() {
    let (results, t) = common::timed(|| {
        let r: Vec<Result<u32, TaskError>> =
            parmap!(risky, 0..16u32; engine = "fork", workers = 2, on_error = "collect");
        r
    });
    println!("engine: fork (2 worker processes), {} items in {t:.2?}", results.len());
    for r in &results {
        match r {
            Ok(v) => print!("{v} "),
            Err(_) => print!("[failed] "),
        }
    }
    println!();
    let failures: Vec<&TaskError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    for e in &failures {
        println!("  {e}");
    }
    assert_eq!(failures.len(), 2);
    assert_eq!((failures[0].index(), failures[1].index()), (5, 11));
    assert!(failures[0].to_string().contains("SIGSEGV"));
    assert!(failures[1].to_string().contains("cannot be computed"));
    assert!(results.iter().enumerate().all(|(i, r)| i == 5 || i == 11 || r == &Ok((i * i) as u32)));
    println!("the caller is still running: the other {} items completed", results.len() - 2);
}
