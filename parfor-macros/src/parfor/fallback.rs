//! What the macro emits when it found mistakes: the user's function as written, minus the
//! `#[parfor]` attributes on its loops (so it compiles as plain serial loops and the only
//! errors are ours), followed by the errors (thiserror's fallback, tokio's
//! `token_stream_with_error`).

use crate::parfor::is_parfor_attr;
use crate::parfor::syntax::expr_attrs_mut;
use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit_mut::{self, VisitMut};

struct Strip;

impl VisitMut for Strip {
    fn visit_item_mut(&mut self, item: &mut syn::Item) {
        // A nested function with its own `#[parfor]` keeps its marks for that expansion.
        if let syn::Item::Fn(f) = item
            && f.attrs.iter().any(is_parfor_attr)
        {
            return;
        }
        visit_mut::visit_item_mut(self, item);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        mac.tokens = strip_tokens(mac.tokens.clone());
    }

    fn visit_expr_mut(&mut self, e: &mut syn::Expr) {
        if let Some(attrs) = expr_attrs_mut(e) {
            attrs.retain(|a| !is_parfor_attr(a));
        }
        visit_mut::visit_expr_mut(self, e);
    }

    fn visit_local_mut(&mut self, l: &mut syn::Local) {
        l.attrs.retain(|a| !is_parfor_attr(a));
        visit_mut::visit_local_mut(self, l);
    }
}

/// `tokens` without their `#[parfor...]` attributes.
fn strip_tokens(tokens: TokenStream) -> TokenStream {
    let mut out: Vec<TokenTree> = Vec::new();
    for tt in tokens {
        match tt {
            TokenTree::Group(g) => {
                let is_mark = g.delimiter() == Delimiter::Bracket
                    && matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == '#')
                    && syn::parse2::<syn::Meta>(g.stream()).is_ok_and(|m| {
                        let p: Vec<String> =
                            m.path().segments.iter().map(|s| s.ident.to_string()).collect();
                        p == ["parfor"] || p == ["parfor", "parfor"]
                    });
                if is_mark {
                    out.pop();
                    continue;
                }
                let mut ng = Group::new(g.delimiter(), strip_tokens(g.stream()));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// Removes every `#[parfor]` attribute inside `block`.
pub(crate) fn strip(block: &mut syn::Block) {
    Strip.visit_block_mut(block);
}

/// The function `func` (with inner `#[parfor]` attributes removed) and the errors.
pub(crate) fn emit(mut func: syn::ItemFn, err: &syn::Error) -> TokenStream {
    strip(&mut func.block);
    let mut out = func.into_token_stream();
    out.extend(crate::ctxt::to_compile_errors(err));
    out
}
