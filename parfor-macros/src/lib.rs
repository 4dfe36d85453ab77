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
#[proc_macro_attribute]
pub fn parfor(args: TokenStream, item: TokenStream) -> TokenStream {
    parfor::expand(args.into(), item.into()).into()
}
