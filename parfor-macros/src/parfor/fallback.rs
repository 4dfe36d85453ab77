//! What the macro emits when it found mistakes: the user's function as written, minus the
//! `#[parfor]` attributes on its loops (so it compiles as plain serial loops and the only
//! errors are ours), followed by the errors (thiserror's fallback, tokio's
//! `token_stream_with_error`).

use crate::parfor::is_parfor_attr;
use crate::parfor::syntax::expr_attrs_mut;
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::visit_mut::{self, VisitMut};

struct Strip;

impl VisitMut for Strip {
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

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
