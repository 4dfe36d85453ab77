//! `parmap!(f, s1, s2, ...; options)`: parse ([`ast`]), read the options ([`args`]), check
//! ([`valid`]), generate ([`expand`]). On a mistake the call still expands to code of a
//! plausible type next to the `compile_error!`s, so one mistake gives one error.

mod args;
mod ast;
pub(crate) mod expand;
mod valid;

use crate::ctxt::{Ctxt, to_compile_errors};
use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    expand_form(input, expand::Form::Blocking)
}

/// `parmap_async!(...)`: the same call as a future, for async code.
pub(crate) fn expand_async(input: TokenStream) -> TokenStream {
    expand_form(input, expand::Form::Async)
}

/// `parmap_iter!(f, s1, s2, ...; options)`: the same call, streamed.
pub(crate) fn expand_iter(input: TokenStream) -> TokenStream {
    expand_form(input, expand::Form::Stream)
}

fn expand_form(input: TokenStream, form: expand::Form) -> TokenStream {
    let stream = form == expand::Form::Stream;
    let generate = |input: &ast::Input, opts: &args::Options| {
        expand::expand_form(&input.func, &input.sources, opts, form)
    };
    let fallback = |err: &syn::Error, stream: bool| match form {
        expand::Form::Async => {
            let errors = to_compile_errors(err);
            quote!({ #errors ::core::future::ready(::std::vec::Vec::new()) })
        }
        _ => fallback(err, stream),
    };
    let input = match syn::parse2::<ast::Input>(input) {
        Ok(input) => input,
        Err(err) => return fallback(&err, stream),
    };
    let cx = Ctxt::new();
    let opts = args::parse_call(&cx, &input.options, stream);
    // The call's arity is unknown or wrong: the expansion would only add errors.
    let mut arity_unknown =
        !valid::check(&cx, &input, &opts) || opts.args_invalid || opts.init_refused;
    if let (expand::Form::Async, Some((_, span))) = (form, &opts.init) {
        cx.error_at(
            *span,
            "`init` does not apply to `parmap_async!`: it maps an async function, whose futures \
             run concurrently and so cannot share one `&mut` state; make the state inside the \
             async function",
        );
        // The function's parameters include the state: the expansion would only add errors.
        arity_unknown = true;
    }
    let arity_errors = cx.has_errors();
    let errors = match cx.check() {
        Ok(()) => return generate(&input, &opts),
        Err(err) => err,
    };
    if arity_unknown && arity_errors {
        return fallback(&errors, stream);
    }
    // Expand with the options that were valid, so the result keeps its type and mistakes in
    // the function or the sources are still reported.
    let expansion = generate(&input, &opts);
    let errors = to_compile_errors(&errors);
    quote!({ #errors #expansion })
}

/// The errors, and a stand-in `Vec` (or, for a stream, an empty iterator) of an unconstrained
/// type (so `let v: Vec<f64> = parmap!(..)` reports only the real mistake).
fn fallback(err: &syn::Error, stream: bool) -> TokenStream {
    let errors = to_compile_errors(err);
    if stream {
        quote!({ #errors ::std::iter::empty() })
    } else {
        quote!({ #errors ::std::vec::Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(src: &str) -> String {
        expand(src.parse().unwrap()).to_string()
    }

    #[test]
    fn valid_calls_expand_without_errors() {
        for src in [
            "hypot, x, y",
            "|a, b| a * b, x, &y[1..]; zip = true",
            "|a: f64, k| a * k, x; args = (k,), on_error = \"collect\", crate = ::other",
            "f, 0..n, a..=b; zip = n > 3, engine = e, workers = w, chunk = 8",
        ] {
            let out = expand_str(src);
            assert!(!out.contains("compile_error"), "{src}: {out}");
        }
        assert!(expand_str("f, x; on_error = \"collect\"").contains("try_map"));
        assert!(expand_str("f, x, y; zip = true").contains("Shape :: zip"));
        assert!(expand_str("f, x; crate = ::other").contains(":: other :: __private :: call_of"));
        let out = expand_str("f, x; concurrency = 8, engine = \"async\"");
        assert!(out.contains("check_async_engine (__parfor_call)"), "{out}");
        assert!(out.contains("concurrency (__parfor_call , 8usize)"), "{out}");
        let out = expand_async(quote!(f, x; on_error = "collect")).to_string();
        assert!(out.starts_with("async {") && out.contains("try_map_async"), "{out}");
    }

    #[test]
    fn mistakes_give_errors_never_panics() {
        for src in [
            "",
            ";",
            ",",
            "f",
            "f,",
            "f x",
            "f, x; engin = 1",
            "f, x; engine = \"gpu\", workers = 0, chunk = 0",
            "f, x; args = k",
            "f, x; args(k)",
            "f, x; zip",
            "f, x; zip = 1",
            "|a, b| a, x",
            "f, x; = 3",
            "f, x; on_error = \"ignore\"",
            "f, x; 3 = 4",
            "f, x; concurrency = 0",
            "f, x; concurrency(4)",
        ] {
            let out = expand_str(src);
            assert!(out.contains("compile_error"), "{src}: {out}");
            let out = expand_async(src.parse().unwrap()).to_string();
            assert!(out.contains("compile_error"), "parmap_async!({src}): {out}");
        }
    }

    #[test]
    fn streams_expand_and_their_mistakes_give_errors_never_panics() {
        let iter = |src: &str| expand_iter(src.parse().unwrap()).to_string();
        for src in [
            "f, x; ordered = false, window = 8, flatten = true, scope = s",
            "f, 0..n; window = w, on_error = \"collect\", chunk = 4",
            "|l| l.len(), reader.lines()",
            "|a, b, k| a + b + k, x, y; zip = true, args = (k,)",
        ] {
            let out = iter(src);
            assert!(!out.contains("compile_error"), "{src}: {out}");
        }
        assert!(iter("f, x, y").contains("iter_shape"));
        assert!(iter("f, x").contains("SingleSource :: stream"));
        assert!(iter("f, x; ordered = false").contains("Tagged"));
        assert!(iter("f, x; flatten = true, on_error = \"collect\"").contains("TryFlat"));
        assert!(iter("f, x; scope = s").contains("__parfor_scope"));
        assert!(iter("f, x").contains("Detached"));
        for src in [
            "",
            "f",
            "f, x; ordered = o",
            "f, x; flatten = 1",
            "f, x; window = 0",
            "f, x; window = 1, window = 2",
            "f, x; ordered = true, ordered = false",
            "f, x; scope(s)",
            "f, x; windwo = 3",
        ] {
            let out = iter(src);
            assert!(out.contains("compile_error"), "{src}: {out}");
        }
        // Stream options are refused by `parmap!`, with the reason.
        let out = expand_str("f, x; window = 8");
        assert!(out.contains("is an option of `parmap_iter!`"), "{out}");
        // A single source written as an expression that may be an iterator takes the path that
        // accepts iterators; a place, a reference, a range and several sources keep random
        // access (and the async engine).
        assert!(expand_str("f, lines.iter()").contains("SingleSource :: map"));
        assert!(iter("f, x").contains("SingleSource :: stream"));
        for src in ["f, x", "f, &x[1..]", "f, 0..n", "f, x, y"] {
            let out = expand_str(src);
            assert!(out.contains("indexed") && !out.contains("SingleSource"), "{src}: {out}");
        }
    }

    #[test]
    fn option_mistakes_keep_the_expansion() {
        // The result keeps its type, so the mistake is the only error.
        let out = expand_str("f, x; engine = \"gpu\"");
        assert!(out.contains("compile_error") && out.contains(". map ("), "{out}");
        // Without a usable `args`, the arity is unknown: no expansion.
        let out = expand_str("f, x; args = k");
        assert!(out.contains("compile_error") && !out.contains(". map ("), "{out}");
    }
}
