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
pub(crate) mod syntax;
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
    /// The variables of the function (parameters and `let` bindings anywhere in it).
    vars: std::collections::BTreeSet<String>,
    /// How many marked loops the function has.
    loops: usize,
}

/// The names `func` binds as variables: its parameters and every `let` in its body.
fn fn_vars(func: &syn::ItemFn) -> std::collections::BTreeSet<String> {
    struct Lets(std::collections::BTreeSet<String>);
    impl<'ast> syn::visit::Visit<'ast> for Lets {
        fn visit_item(&mut self, _: &'ast syn::Item) {}
        fn visit_local(&mut self, l: &'ast syn::Local) {
            self.0.extend(syntax::bindings(&l.pat));
            syn::visit::visit_local(self, l);
        }
    }
    let mut lets = Lets(Default::default());
    for input in &func.sig.inputs {
        if let syn::FnArg::Typed(t) = input {
            lets.0.extend(syntax::bindings(&t.pat));
        }
    }
    syn::visit::Visit::visit_block(&mut lets, &func.block);
    lets.0
}

/// Whether `tokens` hold a `#[parfor...]` attribute.
fn has_parfor_attr(tokens: &TokenStream) -> bool {
    let mut prev_hash = false;
    for tt in tokens.clone() {
        match &tt {
            proc_macro2::TokenTree::Group(g) => {
                if prev_hash
                    && g.delimiter() == proc_macro2::Delimiter::Bracket
                    && let Ok(meta) = syn::parse2::<syn::Meta>(g.stream())
                    && is_parfor_attr(&syn::Attribute {
                        pound_token: Default::default(),
                        style: syn::AttrStyle::Outer,
                        bracket_token: Default::default(),
                        meta,
                    })
                {
                    return true;
                }
                if has_parfor_attr(&g.stream()) {
                    return true;
                }
                prev_hash = false;
            }
            proc_macro2::TokenTree::Punct(p) => prev_hash = p.as_char() == '#',
            _ => prev_hash = false,
        }
    }
    false
}

/// Reports the marked loops inside a nested item, which the function's `#[parfor]` does not
/// rewrite, and removes their marks (so rustc adds no error of its own).
struct NestedItem<'a> {
    cx: &'a Ctxt,
    what: String,
}

impl VisitMut for NestedItem<'_> {
    fn visit_item_mut(&mut self, item: &mut syn::Item) {
        if let syn::Item::Fn(f) = item
            && f.attrs.iter().any(is_parfor_attr)
        {
            return; // its own `#[parfor]` rewrites it
        }
        visit_mut::visit_item_mut(self, item);
    }

    fn visit_impl_item_fn_mut(&mut self, f: &mut syn::ImplItemFn) {
        if !f.attrs.iter().any(is_parfor_attr) {
            visit_mut::visit_impl_item_fn_mut(self, f);
        }
    }

    fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
        if let syn::Expr::ForLoop(f) = e
            && let Some(a) = f.attrs.iter().find(|a| is_parfor_attr(a))
        {
            let msg = format!(
                "this `#[parfor]` loop is inside {}, which the `#[parfor]` of the function \
                 around it does not rewrite; put `#[parfor]` on that function too",
                self.what
            );
            self.cx.error_spanned_by(a, msg);
            f.attrs.retain(|a| !is_parfor_attr(a));
        }
        visit_mut::visit_expr_mut(self, e);
    }
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
                lp.fn_vars = self.vars.clone();
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
    fn visit_item_mut(&mut self, item: &mut syn::Item) {
        let what = match item {
            syn::Item::Fn(f) if f.attrs.iter().any(is_parfor_attr) => return,
            syn::Item::Fn(f) => format!("the nested function `{}`", f.sig.ident),
            _ => "a nested item".to_owned(),
        };
        NestedItem { cx: self.cx, what }.visit_item_mut(item);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        if has_parfor_attr(&mac.tokens) {
            let name = mac.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
            self.cx.error_spanned_by(
                &mac.path,
                format!(
                    "a `#[parfor]` loop inside the macro call `{name}!` cannot be rewritten: \
                     `#[parfor]` sees the macro's tokens before they expand; move the loop out \
                     of the macro call"
                ),
            );
        }
    }

    fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
        if let syn::Expr::ForLoop(f) = e
            && f.attrs.iter().any(is_parfor_attr)
        {
            let f = f.clone();
            self.loops += 1;
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
        Err(_) if syn::parse2::<syn::ExprForLoop>(item.clone()).is_ok() => {
            // rustc hands a marked loop to the macro (after its own E0658) when the function
            // around it has no `#[parfor]`.
            cx.error_at(
                Span::call_site(),
                "this `#[parfor]` loop is in a function without `#[parfor]`, so it cannot be \
                 rewritten (and rustc rejects an attribute on an expression); put `#[parfor]` \
                 on the function around the loop",
            );
            let err = cx.check().err().map(|e| e.to_compile_error());
            return quote::quote!({ #err #item });
        }
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
    if let Some(c) = &func.sig.constness {
        cx.error_spanned_by(
            c,
            "`#[parfor]` cannot go on a `const fn`: its loops run on threads or worker \
             processes, which compile-time evaluation cannot use; remove `const` or `#[parfor]`",
        );
    }
    let original = func.clone();
    let mut finder = Finder { cx: &cx, defaults: &defaults, vars: fn_vars(&func), loops: 0 };
    finder.visit_block_mut(&mut func.block);
    if finder.loops == 0 && !cx.has_errors() {
        // A deprecation warning is the one warning a stable proc macro can raise.
        let note = format!(
            "`#[parfor]` on `{}` has no effect: no `for` loop inside it is marked \
             `#[parfor]`; mark the loops to run in parallel, or remove the attribute",
            func.sig.ident
        );
        let warn: syn::Stmt = syn::parse_quote_spanned! {Span::call_site()=>
            {
                #[deprecated(note = #note)]
                #[allow(non_camel_case_types)]
                struct parfor_without_loops;
                let _ = parfor_without_loops;
            }
        };
        func.block.stmts.insert(0, warn);
    }
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
