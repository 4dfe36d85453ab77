//! The arguments of `#[parfor(...)]`: the options shared with `parmap!` plus, on a loop,
//! `reduce(var = path, ...)`.
//!
//! ```text
//! args    := (option (',' option)* ','?)?
//! option  := common-option | 'reduce' '(' decl (',' decl)* ','? ')'
//! decl    := identifier '=' path
//! ```

use crate::ctxt::Ctxt;
use crate::options::{COMMON_NAMES, Common, OnError, RawValue, one_of, parse_options};
use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Token};

/// A user-defined reduction: `reduce(acc = merge)`.
pub(crate) struct ReduceDecl {
    pub(crate) var: Ident,
    pub(crate) func: syn::Path,
}

impl Parse for ReduceDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let var: Ident = input.parse()?;
        let _: Token![=] = input.parse()?;
        let func: syn::Path = input.parse()?;
        Ok(ReduceDecl { var, func })
    }
}

/// A per-worker variable: `init(rng = Rng::new(worker_id()))`.
pub(crate) struct InitDecl {
    pub(crate) var: Ident,
    pub(crate) expr: syn::Expr,
}

impl Parse for InitDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let var: Ident = input.parse()?;
        let _: Token![=] = input.parse()?;
        let expr: syn::Expr = input.parse()?;
        Ok(InitDecl { var, expr })
    }
}

/// The parsed arguments of one `#[parfor(...)]` attribute.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) common: Common,
    pub(crate) reduce: Vec<ReduceDecl>,
    pub(crate) init: Vec<InitDecl>,
}

impl Args {
    /// The declared `reduce(x = f)` functions, by variable.
    pub(crate) fn reducers(&self) -> std::collections::BTreeMap<String, TokenStream> {
        self.reduce
            .iter()
            .map(|d| (d.var.to_string(), quote::ToTokens::to_token_stream(&d.func)))
            .collect()
    }
}

/// Where an attribute sits: on the function (defaults for its loops) or on a loop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Fn,
    Loop,
}

/// Parses `tokens`, recording every problem in `cx`.
pub(crate) fn parse_args(cx: &Ctxt, tokens: TokenStream, place: Place) -> Args {
    let mut args = Args::default();
    let opts = match parse_options.parse2(tokens) {
        Ok(opts) => opts,
        Err(e) => {
            cx.syn_error(e);
            return args;
        }
    };
    for opt in &opts {
        if args.common.accept(cx, opt) {
            continue;
        }
        if opt.name == "reduce" {
            let RawValue::List(list) = &opt.value else {
                cx.error_at(
                    opt.name.span(),
                    "expected `reduce(var = function, ...)`, for example `reduce(acc = merge)`",
                );
                continue;
            };
            if place == Place::Fn {
                cx.error_at(
                    opt.name.span(),
                    "`reduce(...)` goes on the `#[parfor]` loop that updates the variable, not \
                     on the function",
                );
                continue;
            }
            match Punctuated::<ReduceDecl, Token![,]>::parse_terminated.parse2(list.clone()) {
                Ok(decls) => {
                    for d in decls {
                        if args.reduce.iter().any(|o| o.var == d.var) {
                            cx.error_spanned_by(
                                &d.var,
                                format!("duplicate reduction for `{}`", d.var),
                            );
                        } else {
                            args.reduce.push(d);
                        }
                    }
                }
                Err(e) => cx.syn_error(syn::Error::new(
                    e.span(),
                    format!("{e}; expected `reduce(var = function, ...)`, for example `reduce(acc = merge)`"),
                )),
            }
            continue;
        }
        if opt.name == "init" {
            let RawValue::List(list) = &opt.value else {
                cx.error_at(
                    opt.name.span(),
                    "expected `init(var = expression, ...)`, for example \
                     `init(rng = Rng::new(parfor::worker_id()))`",
                );
                continue;
            };
            if place == Place::Fn {
                cx.error_at(
                    opt.name.span(),
                    "`init(...)` goes on the `#[parfor]` loop whose body uses the per-worker \
                     variables, not on the function",
                );
                continue;
            }
            match Punctuated::<InitDecl, Token![,]>::parse_terminated.parse2(list.clone()) {
                Ok(decls) => {
                    for d in decls {
                        if args.init.iter().any(|o| o.var == d.var) {
                            cx.error_spanned_by(
                                &d.var,
                                format!("duplicate per-worker variable `{}`", d.var),
                            );
                        } else {
                            args.init.push(d);
                        }
                    }
                }
                Err(e) => cx.syn_error(syn::Error::new(
                    e.span(),
                    format!(
                        "{e}; expected `init(var = expression, ...)`, for example \
                         `init(rng = Rng::new(parfor::worker_id()))`"
                    ),
                )),
            }
            continue;
        }
        let mut names = COMMON_NAMES.to_vec();
        names.push("reduce");
        names.push("init");
        cx.error_at(
            opt.name.span(),
            format!("unknown parfor option `{}`; expected one of {}", opt.name, one_of(&names)),
        );
    }
    if let Some((OnError::Collect, span)) = args.common.on_error {
        cx.error_at(
            span,
            "`on_error = \"collect\"` does not fit a `#[parfor]` loop, whose iterations update \
             shared results; a loop fails as a whole (`on_error = \"fail\"`, the default). To \
             collect per-item errors, compute the items with `parmap!(f, items; on_error = \
             \"collect\")` instead",
        );
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors(tokens: TokenStream, place: Place) -> Result<Args, String> {
        let cx = Ctxt::new();
        let args = parse_args(&cx, tokens, place);
        cx.check()
            .map(|()| args)
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
    }

    #[test]
    fn reduce_and_common_options() {
        let a = errors(quote!(engine = "threads", reduce(acc = merge, m = ::x::y)), Place::Loop)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.reduce.len(), 2);
        assert_eq!(a.reduce[1].var, "m");
        assert!(a.common.engine.is_some());
    }

    #[test]
    fn mistakes() {
        let e = errors(quote!(engin = "threads"), Place::Loop).err().unwrap();
        assert!(e.starts_with("unknown parfor option `engin`; expected one of `engine`"), "{e}");
        assert!(e.ends_with("`crate`, `schedule`, `reduce` or `init`"), "{e}");
        let e = errors(quote!(on_error = "collect"), Place::Loop).err().unwrap();
        assert!(e.contains("parmap!"), "{e}");
        let e = errors(quote!(reduce(a = f)), Place::Fn).err().unwrap();
        assert!(e.contains("goes on the `#[parfor]` loop"), "{e}");
        let e = errors(quote!(reduce(a = f, a = g)), Place::Loop).err().unwrap();
        assert_eq!(e, "duplicate reduction for `a`");
        let e = errors(quote!(reduce = f), Place::Loop).err().unwrap();
        assert!(e.starts_with("expected `reduce(var = function"), "{e}");
    }
}
