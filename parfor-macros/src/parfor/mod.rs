//! `#[parfor]` on a function and on the `for` loops inside it.
//!
//! Stages: [`args`] parses attribute arguments, [`ast`] builds the loop IR, [`classify`]
//! classifies the variables of each marked loop (an analysis pass on the [`scope`] walker),
//! [`valid`] checks the classification, [`expand`] generates the `fold` call (with the
//! [`rewrite`] pass on the same walker for the body; its module docs hold the soundness
//! argument), and [`fallback`] emits the function unchanged next to the errors when there
//! are any.

mod args;
mod ast;
mod classify;
mod expand;
mod fallback;
mod rewrite;
mod scope;
mod syntax;
mod valid;

use crate::ctxt::Ctxt;
use args::{Args, Place};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::visit_mut::{self, VisitMut};

/// Whether `attr` is `#[parfor]`, `#[parfor(...)]` or `#[parfor::parfor(...)]`.
pub(crate) fn is_parfor_attr(attr: &syn::Attribute) -> bool {
    let segs: Vec<String> = attr.path().segments.iter().map(|s| s.ident.to_string()).collect();
    segs == ["parfor"] || segs == ["parfor", "parfor"]
}

fn attr_args(attr: &syn::Attribute) -> syn::Result<TokenStream> {
    match &attr.meta {
        syn::Meta::Path(_) => Ok(TokenStream::new()),
        syn::Meta::List(l) => Ok(l.tokens.clone()),
        syn::Meta::NameValue(nv) => Err(syn::Error::new_spanned(
            nv,
            "expected `#[parfor]` or `#[parfor(option = value, ...)]`",
        )),
    }
}

/// Finds the marked loops of a function body and expands each.
struct Finder<'a> {
    cx: &'a Ctxt,
    defaults: &'a Args,
}

impl Finder<'_> {
    fn expand_for(&self, mut f: syn::ExprForLoop) -> Option<TokenStream> {
        let marks: Vec<syn::Attribute> =
            f.attrs.iter().filter(|a| is_parfor_attr(a)).cloned().collect();
        f.attrs.retain(|a| !is_parfor_attr(a));
        let lcx = Ctxt::new();
        if let Some(extra) = marks.get(1) {
            lcx.error_spanned_by(extra, "duplicate `#[parfor]` attribute on this loop");
        }
        let mark = &marks[0];
        let mut args = match attr_args(mark) {
            Ok(tokens) => args::parse_args(&lcx, tokens, Place::Loop),
            Err(e) => {
                lcx.syn_error(e);
                Args::default()
            }
        };
        args.common.inherit(&self.defaults.common);
        let result = match ast::Loop::new(args, f) {
            Ok(mut lp) => {
                let usage = classify::classify(&lcx, &mut lp);
                valid::check(&lcx, &lp, &usage);
                (!lcx.has_errors()).then(|| expand::expand_loop(&mut lp, &usage))
            }
            Err(e) => {
                lcx.syn_error(e);
                None
            }
        };
        if let Err(e) = lcx.check() {
            self.cx.syn_error(e);
        }
        result
    }
}

impl VisitMut for Finder<'_> {
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
        if let syn::Expr::ForLoop(f) = e
            && f.attrs.iter().any(is_parfor_attr)
        {
            let f = f.clone();
            if let Some(tokens) = self.expand_for(f) {
                *e = syn::Expr::Verbatim(tokens);
            }
            return;
        }
        if let Some(attrs) = syntax::expr_attrs_mut(e)
            && let Some(a) = attrs.iter().find(|a| is_parfor_attr(a))
        {
            self.cx.error_spanned_by(
                a,
                "`#[parfor]` goes on a `for` loop (or on the function around it)",
            );
            attrs.retain(|a| !is_parfor_attr(a));
        }
        visit_mut::visit_expr_mut(self, e);
    }

    fn visit_local_mut(&mut self, l: &mut syn::Local) {
        if let Some(a) = l.attrs.iter().find(|a| is_parfor_attr(a)) {
            self.cx.error_spanned_by(a, "`#[parfor]` goes on a `for` loop, not on a `let`");
            l.attrs.retain(|a| !is_parfor_attr(a));
        }
        visit_mut::visit_local_mut(self, l);
    }
}

/// Expands `#[parfor(args)]` on `item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let defaults = args::parse_args(&cx, args, Place::Fn);
    let mut func: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            match syn::parse2::<syn::TraitItemFn>(item.clone()) {
                Ok(t) if t.default.is_none() => cx.error_spanned_by(
                    &t.sig,
                    "`#[parfor]` needs a function body with `for` loops to run in parallel, \
                     and a trait method declaration has none; put `#[parfor]` on the method \
                     in the `impl` block instead",
                ),
                _ => cx.error_at(
                    Span::call_site(),
                    "`#[parfor]` goes on a function or method whose body has `#[parfor]` \
                     `for` loops",
                ),
            }
            let mut out = item;
            if let Err(e) = cx.check() {
                out.extend(e.to_compile_error());
            }
            return out;
        }
    };
    let original = func.clone();
    Finder { cx: &cx, defaults: &defaults }.visit_block_mut(&mut func.block);
    match cx.check() {
        Ok(()) => func.into_token_stream(),
        Err(e) => fallback::emit(original, &e),
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// The errors of the loop `tokens` (written without its `#[parfor]` attribute).
    pub(crate) fn loop_errors(tokens: TokenStream) -> Vec<String> {
        let f: syn::ExprForLoop = syn::parse2(tokens).expect("a for loop");
        let cx = Ctxt::new();
        match ast::Loop::new(Args::default(), f) {
            Ok(mut lp) => {
                let usage = classify::classify(&cx, &mut lp);
                valid::check(&cx, &lp, &usage);
            }
            Err(e) => cx.syn_error(e),
        }
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }
}
