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

/// Maps a function over the Cartesian product (or the zip) of collections, in parallel.
///
/// ```text
/// parmap!(f, s1, s2, ...; zip = bool, args = (a, ...), engine = "threads", workers = n,
///         chunk = n, on_error = "fail" | "collect", timeout = "10s", progress = bool,
///         crate = path)
/// ```
///
/// Returns `Vec<R>` (`Vec<Result<R, TaskError>>` with `on_error = "collect"`) holding
/// `f(s1[i], s2[j], ..., a, ...)` for every `i`, `j`, ... in row-major order (first source
/// outermost). With `on_error = "collect"`, an `f` that returns `Result<T, E>` with
/// `E: Display` gives `Vec<Result<T, TaskError>>`: an `Err(e)` is its item's `TaskError`,
/// with cause `Cause::Returned(e.to_string())` (with `"fail"`, the `Result`s are values). Sources are slices (anything that derefs to one) and integer ranges, borrowed;
/// slice elements reach a parameter `T: Copy` by value and a parameter `&T` by reference;
/// unannotated closure parameters get `&T` (slices) or the integer (ranges). See the crate
/// documentation of `parfor` for the full description and examples.
///
/// `parmap!(f, xs, 0..n; args = (k,))` expands to (temporaries are hygienic):
///
/// ```ignore
/// {
///     let __parfor_f = &(f);
///     let __parfor_b0 = &(xs);
///     let __parfor_s0 = __parfor_b0.parmap_source_must_be_a_slice_or_an_integer_range();
///     let __parfor_b1 = &(0..n);
///     let __parfor_s1 = __parfor_b1.parmap_source_must_be_a_slice_or_an_integer_range();
///     let __parfor_a0 = &(k);
///     let __parfor_opts = ::parfor::__private::Options::new();
///     let __parfor_item = move |[__parfor_i0, __parfor_i1]: [usize; 2]| {
///         __parfor_f(
///             Arg::arg(Source::get(&__parfor_s0, __parfor_i0)),
///             Arg::arg(Source::get(&__parfor_s1, __parfor_i1)),
///             Arg::arg(__parfor_a0),
///         )
///     };
///     let __parfor_wire = wire_of!(probe_ret(&__parfor_item));
///     // `SyncCall` here; `AsyncCall` (the async engine) when `f` returns a future
///     let __parfor_call = call_of!(probe_ret(&__parfor_item));
///     check_async_feature(__parfor_call);
///     __parfor_call.map(
///         Shape::product([Source::len(&__parfor_s0), Source::len(&__parfor_s1)]),
///         &__parfor_opts,
///         __parfor_wire,
///         __parfor_item,
///     )
/// }
/// ```
#[proc_macro]
pub fn parmap(input: TokenStream) -> TokenStream {
    parmap::expand(input.into()).into()
}

/// `parmap!` for async code: the same arguments and options, as a future to `.await`.
///
/// ```text
/// parmap_async!(f, s1, s2, ...; concurrency = n, ...).await
/// ```
///
/// `f` returns a future (an `async fn`, or a closure returning an `async` block); the
/// futures run on the executor that polls the returned future, at most `concurrency` at
/// once. It expands to `async { ... }` around the statements of `parmap!`, ending with
/// `__parfor_call.map_async(..).await` in place of the blocking `map`. See the crate
/// documentation of `parfor` (needs its `async` feature).
#[proc_macro]
pub fn parmap_async(input: TokenStream) -> TokenStream {
    parmap::expand_async(input.into()).into()
}

/// Maps a function over collections or a lazy iterator in parallel, returning an iterator
/// that yields the results as they complete.
///
/// ```text
/// parmap_iter!(f, s1, s2, ...; ordered = bool, window = n, flatten = bool, scope = s,
///              zip = bool, args = (a, ...), engine = "threads", workers = n, chunk = n,
///              on_error = "fail" | "collect", timeout = "10s", progress = bool, crate = path)
/// ```
///
/// The same call shape as `parmap!`. Ordered by default (item order, through a bounded
/// reorder window); `ordered = false` yields `(item index, result)` in completion order;
/// `flatten = true` yields every element of the `IntoIterator` each call returns. With
/// `on_error = "collect"`, a function returning `Result<T, E: Display>` fails its item with
/// its `Err`, as in `parmap!`. A single source may be any iterator, pulled on the caller's
/// thread only as the window allows.
///
/// It runs on the serial, threads and fork engines. On fork, worker processes are forked when
/// the stream starts (an indexed source is read copy-on-write and only indices travel; each
/// batch of a lazy source's items runs in a worker forked for it) and every result travels
/// back as soon as it is done; a worker that dies fails its item and is replaced, and dropping
/// the iterator kills and reaps every worker. See the crate documentation of `parfor` for the
/// rules and examples.
#[proc_macro]
pub fn parmap_iter(input: TokenStream) -> TokenStream {
    parmap::expand_iter(input.into()).into()
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
/// into a fresh accumulator; the blocks are combined in order after the loop; what every
/// iteration reads besides the user's variables reaches the body by value, `ctx`):
///
/// ```ignore
/// fn norm2(v: &[f64], out: &mut [f64]) -> f64 {
///     let mut sum = 0.0;
///     let opts = parfor::__private::Options::new().workers(4);
///     let range = 0..v.len();
///     let out_slices = parfor::__private::SliceOut::new(&mut out[..], 0, None);
///     let out_slots = out_slices.slots();
///     let blocks: Vec<(Option<f64>,)> = parfor::__private::fold(
///         v.len(), &opts, false, None, &[&out_slices], &|p| format!("i = {p}"),
///         (range.clone(), out_slots),
///         || (None,),
///         |state, (range, out_slots), positions, cursor| {
///             for pos in positions {
///                 cursor.at(pos);
///                 let i = range.start + pos;
///                 // SAFETY: iteration `i` is the only one that touches `out[i]`.
///                 unsafe { *out_slots.slot(i) = v[i] * v[i] };
///                 let value = unsafe { *out_slots.slot(i) };
///                 state.0 = Some(match state.0.take() { None => value, Some(a) => a + value });
///             }
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
