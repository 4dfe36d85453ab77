//! Procedural macros of parfor: `#[parfor]` and `parmap!`. Depend on `parfor` instead, which
//! re-exports them with their documentation.
//!
//! Each macro goes parse -> classify/validate -> expand in its own modules, all on
//! `proc_macro2`, so every stage can be unit-tested; the entry points below only convert.

mod ctxt;
mod options;
mod parfor;
mod parmap;

use proc_macro::TokenStream;

/// Maps a function over the Cartesian product of collections, in parallel.
#[proc_macro]
pub fn parmap(input: TokenStream) -> TokenStream {
    parmap::expand(input.into()).into()
}

/// Runs the `for` loops marked `#[parfor]` inside a function in parallel.
///
/// Variables are classified as in MATLAB: the loop variable, temporaries (`let` in the body),
/// broadcasts (outer variables only read), sliced outputs (`out[i] = e` with `i` the loop
/// variable) and reductions (`x += e`, `x = x.max(e)`, `v.push(e)`, `reduce(x = f)` with
/// `x = f(x, e)`). See the `parfor` crate docs for the rules and the options.
///
/// ```ignore
/// #[parfor]
/// fn norm2(v: &[f64], out: &mut [f64]) -> f64 {
///     let mut sum = 0.0;
///     #[parfor(workers = 4)]
///     for i in 0..v.len() {
///         out[i] = v[i] * v[i];
///         sum += out[i];
///     }
///     sum
/// }
/// ```
///
/// expands to roughly this hand-written code (each block of the plan folds its iterations
/// into a fresh accumulator; the blocks are combined in order after the loop):
///
/// ```ignore
/// fn norm2(v: &[f64], out: &mut [f64]) -> f64 {
///     let mut sum = 0.0;
///     let opts = parfor::__private::Options::new().workers(4);
///     let range = 0..v.len();
///     let out_slices = parfor::__private::SliceOut::new(&mut out[..], 0, None);
///     let blocks: Vec<(Option<f64>,)> = parfor::__private::fold(
///         v.len(), &opts, None, &[&out_slices], &|p| format!("i = {p}"),
///         || (None,),
///         |state, pos| {
///             let i = range.start + pos;
///             // SAFETY: iteration `i` is the only one that touches `out[i]`.
///             unsafe { *out_slices.slot(i) = v[i] * v[i] };
///             let value = unsafe { *out_slices.slot(i) };
///             state.0 = Some(match state.0.take() { None => value, Some(a) => a + value });
///         },
///     );
///     for (block,) in blocks {
///         if let Some(b) = block { sum = sum + b; }
///     }
///     sum
/// }
/// ```
#[proc_macro_attribute]
pub fn parfor(args: TokenStream, item: TokenStream) -> TokenStream {
    parfor::expand(args.into(), item.into()).into()
}
