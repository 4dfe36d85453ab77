//! `parmap!(f, s1, s2, ...; options)`: parse ([`ast`]), read the options ([`args`]), check
//! ([`valid`]), generate ([`expand`]). On a mistake the call still expands to code of a
//! plausible type next to the `compile_error!`s, so one mistake gives one error.

mod args;
mod ast;
mod expand;
mod valid;

use crate::ctxt::{Ctxt, to_compile_errors};
use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<ast::Input>(input) {
        Ok(input) => input,
        Err(err) => return fallback(&err),
    };
    let cx = Ctxt::new();
    let opts = args::parse(&cx, &input.options);
    // The call's arity is unknown or wrong: the expansion would only add errors.
    let arity_unknown = !valid::check(&cx, &input, &opts) || opts.args_invalid;
    let arity_errors = cx.has_errors();
    let errors = match cx.check() {
        Ok(()) => return expand::expand(&input.func, &input.sources, &opts),
        Err(err) => err,
    };
    if arity_unknown && arity_errors {
        return fallback(&errors);
    }
    // Expand with the options that were valid, so the result keeps its type and mistakes in
    // the function or the sources are still reported.
    let expansion = expand::expand(&input.func, &input.sources, &opts);
    let errors = to_compile_errors(&errors);
    quote!({ #errors #expansion })
}

/// The errors, and a stand-in `Vec` of an unconstrained type (so `let v: Vec<f64> = parmap!(..)`
/// reports only the real mistake).
fn fallback(err: &syn::Error) -> TokenStream {
    let errors = to_compile_errors(err);
    quote!({ #errors ::std::vec::Vec::new() })
}
