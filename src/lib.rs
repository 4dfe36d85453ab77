//! parfor: MATLAB-style `parfor` loops and `parmap!` parameter sweeps.
//!
//! ## `#[parfor]` loops
//!
//! Put `#[parfor]` on a function (or method, or `main`) and on the `for` loops inside it that
//! should run in parallel. Options on the function are defaults for its loops; unmarked loops
//! are left alone. A marked loop inside another marked loop runs as a plain loop within each
//! iteration of the outer one.
//!
//! ```
//! use parfor::parfor;
//!
//! #[parfor]
//! fn stats(data: &[f64], out: &mut [f64]) -> (f64, f64, Vec<usize>) {
//!     let mut sum = 0.0;
//!     let mut best = f64::MIN;
//!     let mut hits = Vec::new();
//!     #[parfor(engine = "threads")]
//!     for i in 0..data.len() {
//!         let y = data[i].sqrt();          // temporary
//!         out[i] = y;                      // sliced output
//!         sum += y;                        // reduction
//!         best = best.max(y);              // reduction
//!         if y > 0.5 { hits.push(i); }     // concatenation, in iteration order
//!     }
//!     (sum, best, hits)
//! }
//!
//! let data = [0.04, 0.25, 0.81];
//! let mut out = [0.0; 3];
//! let (sum, best, hits) = stats(&data, &mut out);
//! assert_eq!(out, [0.2, 0.5, 0.9]);
//! assert!((sum - 1.6).abs() < 1e-12);
//! assert_eq!((best, hits), (0.9, vec![2]));
//! ```
//!
//! Loop domains: integer ranges `a..b` and `a..=b`; slices, `Vec`s and arrays by reference
//! (`&v`, `v.iter()`), mutably (`&mut v`, `v.iter_mut()`; each iteration owns its element), and
//! `.enumerate()` of those. Options: `engine`, `workers`, `chunk`, `timeout`, `progress`,
//! `crate`, `on_error = "fail"` (the only mode for a loop; collect per-item errors with
//! `parmap!` instead) and `reduce(var = function, ...)`.
//!
//! ### How variables are classified
//!
//! Every variable the body touches is classified as MATLAB does:
//!
//! | kind | what it is | example |
//! |---|---|---|
//! | loop variable | the pattern of the loop | `i`, `(k, x)` |
//! | temporary | declared in the body (`let`, `match`/closure patterns); shadows outer names | `let y = data[i].sqrt();` |
//! | broadcast | an outer variable that is only read (indexing, fields, `&self` methods) | `data[i]`, `p.scale`, `self.weights[i]` |
//! | sliced output | an outer slice, `Vec` or array written only at the loop's index | `out[i] = y;`, `out[i] += y;`, `grid[i][j] = v;` |
//! | reduction | an outer variable combined with one associative operator | `sum += y;`, `n -= 1;`, `p *= x;`, `m |= b;`, `best = best.max(y);`, `lo = min(lo, y);`, `hits.push(i);`, `v.extend(xs);`, `acc = merge(acc, x);` with `reduce(acc = merge)` |
//!
//! Reductions may sit inside `if`/`match`, and `x = x op e` (or `x = e op x` for commutative
//! operators) is the same as `x op= e`. Each variable takes one operator. An unlabeled
//! `continue` ends the iteration.
//!
//! A user-defined reduction names an associative function:
//!
//! ```
//! use parfor::parfor;
//!
//! fn merge(a: String, b: String) -> String {
//!     a + &b
//! }
//!
//! #[parfor]
//! fn digits(n: u32) -> String {
//!     let mut acc = String::new();
//!     #[parfor(reduce(acc = merge))]
//!     for i in 0..n {
//!         acc = merge(acc, i.to_string());
//!     }
//!     acc
//! }
//!
//! assert_eq!(digits(12), "01234567891011");
//! ```
//!
//! Rejected at compile time, each with a hint: `break`, `return`, `?`, `.await`, a labeled
//! `continue`/`break` to a loop outside; assigning an outer variable that is not a reduction
//! (`last = i;` depends on the order of iterations); reading a reduction variable in the body;
//! two operators on one reduction variable; a sliced output indexed by anything but the loop
//! variable (`out[i + 1]`); one variable both sliced and reduced; well-known mutating methods
//! on outer variables (`v.sort()`, `map.insert(..)`, ...). Anything else that needs `&mut` to
//! an outer variable is rejected by rustc, because the body becomes an `Fn + Sync` closure
//! (which also requires broadcasts to be `Sync`).
//!
//! ```compile_fail
//! use parfor::parfor;
//!
//! #[parfor]
//! fn last_positive(v: &[i64]) -> usize {
//!     let mut last = 0;
//!     #[parfor]
//!     for i in 0..v.len() {
//!         if v[i] > 0 {
//!             last = i; // error: order-dependent; use a reduction such as `last = last.max(i)`
//!         }
//!     }
//!     last
//! }
//! ```
//!
//! ### Results and determinism
//!
//! The runtime cuts the iterations into blocks that depend only on the number of iterations
//! and `chunk`. Each block folds its own iterations into fresh accumulators (the first
//! contribution becomes the value, so no identity element is needed); after the loop the
//! block results are combined into the variable in block order: `sum = ((sum ⊕ b0) ⊕ b1) ⊕ …`.
//! Integer reductions and concatenations therefore equal the plain loop exactly, and float
//! reductions are bit-identical on every engine and worker count. They can differ in the last
//! bits from a plain left-to-right loop, which computes `((sum ⊕ x0) ⊕ x1) ⊕ …`; `-=` sums the
//! subtracted terms of a block and subtracts the sum. The same code with a different `chunk`
//! may round differently.
//!
//! ### From MATLAB and OpenMP
//!
//! | MATLAB `parfor` | OpenMP | parfor |
//! |---|---|---|
//! | loop variable | loop index (`private`) | the `for` pattern |
//! | temporary | `private` | a `let` in the body |
//! | broadcast | `shared` (read-only) | any outer variable the body only reads |
//! | sliced (output) | `shared` array, disjoint writes | `out[i] = e` where `i` is the loop variable |
//! | reduction | `reduction(+:x)`, `reduction(max:x)` | `x += e`, `x = x.max(e)`, `v.push(e)`, `reduce(x = f)` |
//! | — | `schedule(static, n)` | `chunk = n` (blocks of `n` iterations, dynamically balanced) |
//! | `parpool(n)` | `num_threads(n)` | `workers = n` |

mod loop_support;

pub use parfor_macros::{parfor, parmap};
pub use parfor_runtime::{
    Cause, ConfigError, Engine, OnError, Pod, TaskError, clear_default_engine, default_engine,
    default_workers, set_default_engine, worker_id,
};

#[cfg(unix)]
pub use parfor_runtime::SharedVec;

/// Implementation details of the macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use parfor_runtime::__wire_of as wire_of;
    pub use parfor_runtime::wire::{self, Probe, Wire, probe_elem, probe_ret, probe_val};
    pub use parfor_runtime::{Options, Shape, SliceOut, Sliced, fold, map, try_map};

    pub use crate::loop_support::{
        IntoAcc, LoopSlice, LoopSliceMut, new_vec, none, range_len, range_nth,
    };
}
