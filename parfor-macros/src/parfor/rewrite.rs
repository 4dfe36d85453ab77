//! The rewrite pass: turns a loop body, which [`crate::parfor::classify`] found free of
//! mistakes, into the body of the runtime's `fold` closure, on the shared [`Walk`]. It only
//! writes tokens:
//!
//! - a reduction `x op= e` folds `e` into the block's accumulator of `x`;
//! - a concatenation `v.push(e)` appends to the block's buffer of `v`;
//! - a sliced output `out[i]` becomes `*out.get()` or `*out.get_mut()`, where `out` is the
//!   iteration's own handle on its element (a hygienic local the user cannot name; see the
//!   soundness argument in `expand.rs`);
//! - a `continue` that ends the iteration continues the generated item loop;
//! - `#[parfor]` on loops nested in the body is dropped (they run as plain loops).

use crate::parfor::ast::{Loop, RedOp, Reduction};
use crate::parfor::is_parfor_attr;
use crate::parfor::scope::{Continue, Pass, Place, Walk, walk};
use crate::parfor::syntax::{
    Root, array_indices_mut, array_reduction_form, expr_attrs_mut, is_assign_op, is_concat,
    operand_mut, path_ident, reduction_form, root, strip_parens,
};
use crate::parmap::expand::respan;
use proc_macro2::{Punct, Spacing, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use std::collections::BTreeMap;
use syn::spanned::Spanned;
use syn::{Expr, Ident};

/// The generated names the rewritten body refers to.
pub(crate) struct Names {
    /// The body closure's `&mut` block state.
    pub(crate) state: Ident,
    /// The iteration's element handle of every sliced output, by output name.
    pub(crate) cells: BTreeMap<String, Ident>,
    /// The arithmetic of every reduction, by variable (`WrapOps` or `PlainOps`).
    pub(crate) ops: BTreeMap<String, Ident>,
    /// The length of every array reduction's array, by variable.
    pub(crate) lens: BTreeMap<String, Ident>,
    pub(crate) krate: TokenStream,
}

struct Rewrite<'a> {
    names: &'a Names,
    fn_vars: &'a std::collections::BTreeSet<String>,
    reductions: &'a BTreeMap<String, Reduction>,
    reducers: BTreeMap<String, TokenStream>,
}

/// Rewrites `lp`'s body in place for the `fold` closure.
pub(crate) fn rewrite(lp: &mut Loop, names: &Names, reductions: &BTreeMap<String, Reduction>) {
    let fn_vars = lp.fn_vars.clone();
    let pass = Rewrite { names, fn_vars: &fn_vars, reductions, reducers: lp.args.reducers() };
    walk(lp, pass);
}

/// The variable a path or a chain of fields (`p.a.b`) starts from.
fn field_chain_root(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Field(f) => field_chain_root(&f.base),
        Expr::Path(_) => path_ident(e),
        _ => None,
    }
}

fn ms() -> Span {
    Span::mixed_site()
}

fn ident(name: &str) -> Ident {
    Ident::new(name, ms())
}

fn op_token(op: &str, span: Span) -> TokenStream {
    let mut p = Punct::new(op.chars().next().unwrap_or('+'), Spacing::Alone);
    p.set_span(span);
    p.into_token_stream()
}

fn slot_index(r: &Reduction) -> syn::Index {
    syn::Index { index: r.slot as u32, span: ms() }
}

/// The label of the generated loop over a block's iterations (hygienic: the user cannot
/// name it).
pub(crate) fn items_label() -> syn::Lifetime {
    syn::Lifetime::new("'__parfor_items", ms())
}

/// How a reduction combines an accumulator `a` with a value `v`: integer `+`, `-` and `*`
/// through the reduction's arithmetic `ops` (wrapping for primitive integers, so that a
/// block's partial result never overflows where the plain loop does not), everything else
/// with the operator or function as written.
pub(crate) fn combine(
    op: &RedOp,
    ops: &Ident,
    op_span: Span,
    a: TokenStream,
    v: TokenStream,
) -> TokenStream {
    match op {
        RedOp::Bin("+") | RedOp::Sub => quote_spanned!(op_span=> #ops.add(#a, #v)),
        RedOp::Bin("*") => quote_spanned!(op_span=> #ops.mul(#a, #v)),
        RedOp::Bin(op) => {
            let op = op_token(op, op_span);
            quote!(#a #op #v)
        }
        RedOp::Method(m) => quote!(#a.#m(#v)),
        RedOp::Call { func, swapped: false } => quote!(#func(#a, #v)),
        RedOp::Call { func, swapped: true } => quote!(#func(#v, #a)),
        RedOp::Concat => unreachable!("concatenations use `concat`"),
    }
}

/// How an array reduction folds a contribution `v` into a block's accumulator `a`: the step
/// of a dense partial array (whose elements start from the operator's identity) and that of a
/// sparse one (whose elements start from the first contribution). They differ for `-=` only:
/// a dense element accumulates `identity - v0 - v1 - ...`, which the merge adds (so an
/// untouched element, `-0.0` for floats, leaves the target's bits as they are), a sparse one
/// sums the subtracted terms, which the merge subtracts.
pub(crate) fn array_steps(
    op: &RedOp,
    ops: &Ident,
    op_span: Span,
    a: &Ident,
    v: &Ident,
) -> (TokenStream, TokenStream) {
    let (a, v) = (a.to_token_stream(), v.to_token_stream());
    match op {
        RedOp::Sub => {
            (quote_spanned!(op_span=> #ops.sub(#a, #v)), quote_spanned!(op_span=> #ops.add(#a, #v)))
        }
        other => {
            let step = combine(other, ops, op_span, a, v);
            (step.clone(), step)
        }
    }
}

/// The method of the `SparseArray` / `Dense*` traits that picks the representation of an
/// array reduction's partial arrays for operator `op`.
pub(crate) fn array_kind_method(op: &RedOp) -> Ident {
    let name = match op {
        RedOp::Bin("+") => "add",
        RedOp::Sub => "sub",
        RedOp::Bin("*") => "mul",
        RedOp::Bin("|") => "or",
        RedOp::Bin("&") => "and",
        RedOp::Bin("^") => "xor",
        RedOp::Method(m) if m == "min" => "min",
        RedOp::Method(m) if m == "max" => "max",
        // `max(a, v)` may be any function named `max`: no identity is known.
        _ => "any",
    };
    ident(&format!("__parfor_array_{name}"))
}

impl Rewrite<'_> {
    /// `x op= e` and friends: fold `e` into the block's accumulator of `x`.
    ///
    /// The accumulator is `None` until the block's first contribution, which becomes its
    /// value (so no identity element is needed); later contributions combine with the
    /// operator. For `-=` the block sums the subtracted terms; the caller subtracts the sum
    /// after the loop.
    fn contribution(&self, r: &Reduction, op_span: Span, e: TokenStream) -> TokenStream {
        let (st, k, krate) = (&self.names.state, slot_index(r), &self.names.krate);
        let (v, a) = (ident("__parfor_v"), ident("__parfor_a"));
        let ops = &self.names.ops[&r.ident.to_string()];
        let combined = combine(&r.op, ops, op_span, a.to_token_stream(), v.to_token_stream());
        quote_spanned! {ms()=>
            {
                let #v = #e;
                #st.#k = ::core::option::Option::Some(
                    match ::core::option::Option::take(&mut #st.#k) {
                        ::core::option::Option::None => #krate::__private::IntoAcc::into_acc(#v),
                        ::core::option::Option::Some(#a) => #combined,
                    },
                );
            }
        }
    }

    /// `v.push(e)` / `v.extend(e)` / `s.push_str(e)`: append to the block's buffer.
    fn concat(&self, r: &Reduction, method: &Ident, e: TokenStream) -> TokenStream {
        let (st, k) = (&self.names.state, slot_index(r));
        quote_spanned!(ms()=> #st.#k.#method(#e))
    }

    /// The reduction that assignment `e` makes, with its contribution operand.
    fn assignment(w: &mut Walk<Self>, e: &mut Expr) -> bool {
        let left = match &*e {
            Expr::Assign(a) => &a.left,
            Expr::Binary(b) => &b.left,
            _ => return false,
        };
        let (id, array) = match root(left) {
            Root::Bare(id) => (id, false),
            Root::Indexed(id) => (id, true),
            _ => return false,
        };
        let name = id.to_string();
        if w.scope.is_local(&name) {
            return false;
        }
        let Some(r) = w.pass.reductions.get(&name) else { return false };
        if r.array != array {
            return false;
        }
        if array {
            return Self::array_assignment(w, e, r);
        }
        let Some((_, which)) = reduction_form(&name, e, &w.pass.reducers) else { return false };
        let op_span = match &*e {
            Expr::Assign(a) => a.eq_token.span,
            Expr::Binary(b) => b.op.span(),
            _ => unreachable!(),
        };
        let rhs = match e {
            Expr::Assign(a) => &mut a.right,
            Expr::Binary(b) => &mut b.right,
            _ => unreachable!(),
        };
        let contribution = operand_mut(rhs, which);
        w.expr(contribution, Place::Read);
        let value = strip_parens(contribution).to_token_stream();
        *e = Expr::Verbatim(w.pass.contribution(r, op_span, value));
        true
    }
}

impl Rewrite<'_> {
    /// `hist[k] op= v`: fold `v` into the block's partial array at `k`.
    fn array_assignment(w: &mut Walk<Self>, e: &mut Expr, r: &Reduction) -> bool {
        let left = match &*e {
            Expr::Assign(a) => &a.left,
            Expr::Binary(b) => &b.left,
            _ => return false,
        };
        let Some((_, which)) = array_reduction_form(strip_parens(left), e) else {
            return false;
        };
        let op_span = match &*e {
            Expr::Assign(a) => a.eq_token.span,
            Expr::Binary(b) => b.op.span(),
            _ => unreachable!(),
        };
        let (left, rhs) = match e {
            Expr::Assign(a) => (&mut a.left, &mut a.right),
            Expr::Binary(b) => (&mut b.left, &mut b.right),
            _ => unreachable!(),
        };
        let mut indices = Vec::new();
        for index in array_indices_mut(left) {
            w.expr(index, Place::Read);
            indices.push(index.to_token_stream());
        }
        if indices.len() != if r.rows { 2 } else { 1 } {
            return false;
        }
        let contribution = operand_mut(rhs, which);
        w.expr(contribution, Place::Read);
        let value = strip_parens(contribution).to_token_stream();
        let names = w.pass.names;
        let (st, k, krate) = (&names.state, slot_index(r), &names.krate);
        let len = &names.lens[&r.ident.to_string()];
        let ops = &names.ops[&r.ident.to_string()];
        let (v, a, o) = (ident("__parfor_v"), ident("__parfor_a"), ident("__parfor_o"));
        let usize_ = quote_spanned!(ms()=> ::core::primitive::usize);
        // The indices in the order the plain loop evaluates them (after the value, as for a
        // compound assignment to a primitive).
        let (ids, at) = if r.rows {
            let (ri, ci) = (ident("__parfor_r"), ident("__parfor_c"));
            let (rv, cv) = (&indices[0], &indices[1]);
            let at = quote_spanned!(ms()=> &#len, #ri, #ci);
            (quote_spanned!(ms()=> let #ri: #usize_ = #rv; let #ci: #usize_ = #cv;), at)
        } else {
            let i = ident("__parfor_k");
            let iv = &indices[0];
            (quote_spanned!(ms()=> let #i: #usize_ = #iv;), quote_spanned!(ms()=> #len, #i))
        };
        let (dense, sparse) = array_steps(&r.op, ops, op_span, &a, &v);
        // The block's partial array takes the step of its representation (`DensePart` or
        // `SparsePart`, chosen from the element type and the operator): a dense element starts
        // from the operator's identity, a sparse one from the first contribution.
        *e = Expr::Verbatim(quote_spanned! {ms()=>
            {
                let #v = #value;
                #ids
                #st.#k.update(
                    #at,
                    #v,
                    |#a, #v| #dense,
                    |#o, #v| match #o {
                        ::core::option::Option::None => #krate::__private::IntoAcc::into_acc(#v),
                        ::core::option::Option::Some(#a) => #sparse,
                    },
                );
            }
        });
        true
    }
}

impl Pass for Rewrite<'_> {
    const REWRITES: bool = true;

    fn expr(w: &mut Walk<Self>, e: &mut Expr, place: Place) {
        if let Some(attrs) = expr_attrs_mut(e) {
            attrs.retain(|a| !is_parfor_attr(a));
        }
        match e {
            Expr::Assign(_) => {
                if !Self::assignment(w, e) {
                    w.children(e, place);
                }
            }
            Expr::Binary(b) if is_assign_op(&b.op) => {
                if !Self::assignment(w, e) {
                    w.children(e, place);
                }
            }
            Expr::MethodCall(m)
                if is_concat(&m.method.to_string(), m.args.len())
                    && let Some(id) = w.scope.outer(&m.receiver)
                    && let Some(r) = w.pass.reductions.get(&id.to_string()) =>
            {
                let method = m.method.clone();
                w.expr(&mut m.args[0], Place::Read);
                *e = Expr::Verbatim(w.pass.concat(r, &method, m.args[0].to_token_stream()));
            }
            Expr::Index(ix)
                if let Some(id) = w.scope.outer(&ix.expr)
                    && let Some(cell) = w.pass.names.cells.get(&id.to_string()) =>
            {
                // The analysis proved that the index is the loop variable; the element is the
                // iteration's own, which `cell` already designates.
                debug_assert!(path_ident(&ix.index).is_some());
                let at = ms().located_at(ix.span());
                let cell = Ident::new(&cell.to_string(), ms().located_at(ix.expr.span()));
                let get = match place {
                    Place::Read => Ident::new("get", at),
                    Place::Write | Place::Receiver => Ident::new("get_mut", at),
                };
                *e = Expr::Verbatim(quote_spanned!(at=> (*#cell.#get())));
            }
            // A broadcast variable of the function, read: through `shared`, whose `Sync`
            // bound reports a non-`Sync` capture (an `Rc`, a `RefCell`) at this use rather than
            // at the attribute. A whole field chain (`p.scale`) goes through it, so the body
            // captures what it captured before.
            Expr::Path(_) | Expr::Field(_)
                if place != Place::Write
                    && let Some(id) = field_chain_root(e)
                    && !w.scope.is_local(&id.to_string())
                    && w.pass.fn_vars.contains(&id.to_string())
                    && !w.pass.reductions.contains_key(&id.to_string())
                    && !w.pass.names.cells.contains_key(&id.to_string()) =>
            {
                let span = e.span();
                let krate = &w.pass.names.krate;
                let f = respan(quote!(#krate::__private::shared), span);
                *e = Expr::Verbatim(quote_spanned!(span=> (*#f(&#e))));
            }
            Expr::Call(c) if matches!(&*c.func, Expr::Path(_)) => {
                // The callee is a function's name, not a captured value.
                for a in &mut c.args {
                    w.expr(a, Place::Read);
                }
            }
            Expr::Continue(c)
                if !w.scope.in_closure()
                    && w.scope.continue_target(c.label.as_ref()) == Continue::EndsIteration =>
            {
                let label = items_label();
                *e = Expr::Verbatim(quote_spanned!(ms()=> continue #label));
            }
            _ => w.children(e, place),
        }
    }
}
