//! Code generation: a `#[parfor]` loop becomes one call of the runtime's `fold`, whose body
//! closure runs a range of iterations of the rewritten loop body (so the item loop is
//! compiled with the body, and what it reads every iteration arrives by value in `ctx`) and
//! whose block states carry the reductions; sliced outputs become `SliceOut`s that each
//! iteration writes at its own index.
//!
//! Synthesized identifiers use `Span::mixed_site()`, so the user's code can neither name nor
//! shadow them; the user's tokens keep their spans; every path is absolute.

use crate::parfor::ast::{DomainKind, Loop, RedOp, Reduction, Usage};
use crate::parfor::classify::{self, Rewrite};
use proc_macro2::{Punct, Spacing, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use std::collections::BTreeMap;
use syn::Ident;

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

/// `x op= e` and friends, inside the body: fold `e` into the block's accumulator of `x`.
///
/// The accumulator is `None` until the block's first contribution, which becomes its value
/// (so no identity element is needed); later contributions combine with the operator. For
/// `-=` the block sums the subtracted terms; the caller subtracts the sum after the loop.
pub(crate) fn contribution(
    rw: &Rewrite,
    r: &Reduction,
    op_span: Span,
    e: TokenStream,
) -> TokenStream {
    let (st, k, krate) = (&rw.state, slot_index(r), &rw.krate);
    let (v, a) = (ident("__parfor_v"), ident("__parfor_a"));
    let combined = match &r.op {
        RedOp::Bin(op) => {
            let op = op_token(op, op_span);
            quote!(#a #op #v)
        }
        RedOp::Sub => {
            let op = op_token("+", op_span);
            quote!(#a #op #v)
        }
        RedOp::Method(m) => quote!(#a.#m(#v)),
        RedOp::Call { func, swapped: false } => quote!(#func(#a, #v)),
        RedOp::Call { func, swapped: true } => quote!(#func(#v, #a)),
        RedOp::Concat => unreachable!("concatenations use `concat`"),
    };
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

/// `v.push(e)` / `v.extend(e)` inside the body: append to the block's buffer.
pub(crate) fn concat(rw: &Rewrite, r: &Reduction, method: &Ident, e: TokenStream) -> TokenStream {
    let (st, k) = (&rw.state, slot_index(r));
    quote_spanned!(ms()=> #st.#k.#method(#e))
}

/// `out[i]` inside the body, for a sliced output.
pub(crate) fn slot_access(so: &Ident, index: &syn::Expr) -> TokenStream {
    // SAFETY (of the generated block): `index` is the loop's own index variable (validated by
    // `valid::check`: every use of a sliced output is `out[i]` with `i` the unshadowed loop
    // variable or `.enumerate()` index), and each value of it belongs to exactly one
    // iteration, so no two iterations reach the same element; `slot` checks the bounds. The
    // returned reference lives only for the enclosing expression.
    quote_spanned!(ms()=> (*unsafe { #so.slot(#index) }))
}

/// The label of the generated loop over a block's iterations (hygienic: the user cannot
/// name it).
fn items_label() -> syn::Lifetime {
    syn::Lifetime::new("'__parfor_items", ms())
}

/// An unlabeled `continue` at the top of the body: end this iteration.
pub(crate) fn end_iteration() -> TokenStream {
    let label = items_label();
    quote_spanned!(ms()=> continue #label)
}

/// The block that replaces `lp`.
pub(crate) fn expand_loop(lp: &Loop, usage: &Usage) -> TokenStream {
    let krate = lp.args.common.krate();
    let opts = lp.args.common.to_options();
    let p = |path: TokenStream| quote!(#krate::__private::#path);
    let (dom, n, pos, state) = (
        ident("__parfor_dom"),
        ident("__parfor_n"),
        ident("__parfor_pos"),
        ident("__parfor_state"),
    );
    let (opts_id, init, wire, states) = (
        ident("__parfor_opts"),
        ident("__parfor_init"),
        ident("__parfor_wire"),
        ident("__parfor_states"),
    );
    let slice_out = p(quote!(SliceOut));
    let wire_of = p(quote!(wire_of));
    let probe_elem = p(quote!(probe_elem));
    let probe_val = p(quote!(probe_val));
    let pat = &lp.pat;
    let expr = &lp.domain.expr;
    // Trait errors ("cannot iterate over `HashMap`") point at the user's domain expression.
    let espan = syn::spanned::Spanned::span(expr);
    let as_slice = quote_spanned!(espan=> #krate::__private::LoopSlice::__parfor_as_slice(&#expr));

    // The domain: `dom` and its length `n`, and how iteration `pos` binds the pattern.
    let mut outputs: Vec<Ident> = Vec::new();
    // What every iteration reads besides the user's variables, all `Copy`: the domain and the
    // handles of the sliced outputs. The body gets them by value with each block of
    // iterations (`ctx`), so they stay in registers across the block.
    let dom_slots = ident("__parfor_dom_slots");
    let mut ctx: Vec<Ident> = vec![match lp.domain.kind {
        DomainKind::Range | DomainKind::Slice => dom.clone(),
        DomainKind::SliceMut | DomainKind::IterMut => dom_slots.clone(),
    }];
    let (setup, elem) = match lp.domain.kind {
        DomainKind::Range => (
            quote_spanned! {ms()=>
                let #dom = #krate::__private::LoopRange::__parfor_range(&(#expr));
                let #n: ::core::primitive::usize = #krate::__private::Source::len(&#dom);
            },
            quote_spanned!(ms()=> #krate::__private::Source::get(&#dom, #pos)),
        ),
        DomainKind::Slice => (
            quote_spanned! {ms()=>
                let #dom = #as_slice;
                let #n: ::core::primitive::usize = #dom.len();
            },
            quote_spanned!(ms()=> &#dom[#pos]),
        ),
        DomainKind::SliceMut | DomainKind::IterMut => {
            let (sl, w) = (ident("__parfor_dom_slice"), ident("__parfor_dom_wire"));
            let slice = if lp.domain.kind == DomainKind::SliceMut {
                let f =
                    quote_spanned!(espan=> #krate::__private::LoopSliceMut::__parfor_as_mut_slice);
                quote_spanned!(ms()=> #f(&mut #expr))
            } else {
                quote_spanned!(ms()=> {
                    use #krate::__private::LoopSliceMut as _;
                    (#expr).__parfor_as_mut_slice()
                })
            };
            outputs.push(dom.clone());
            (
                quote_spanned! {ms()=>
                    let #sl = #slice;
                    let #n: ::core::primitive::usize = #sl.len();
                    let #w = #wire_of!(#probe_elem(&*#sl));
                    let #dom = #slice_out::new(#sl, 0, #w);
                    let #dom_slots = #dom.slots();
                },
                // SAFETY (of the generated block): iteration `pos` is the only one that
                // touches element `pos` of the domain (one iteration per element).
                quote_spanned!(ms()=> unsafe { #dom_slots.slot(#pos) }),
            )
        }
    };
    let bind = if lp.domain.enumerate {
        quote_spanned!(ms()=> let #pat = (#pos, #elem);)
    } else {
        quote_spanned!(ms()=> let #pat = #elem;)
    };

    // Sliced outputs: iteration `pos` writes element `offset + pos`.
    let mut sliced = BTreeMap::new();
    let mut sliced_setup = TokenStream::new();
    if !usage.sliced.is_empty() {
        let offset = ident("__parfor_offset");
        sliced_setup.extend(if lp.domain.kind == DomainKind::Range {
            quote_spanned! {ms()=>
                let #offset: ::core::primitive::usize =
                    if #n == 0 { 0 } else { #krate::__private::Source::get(&#dom, 0) };
            }
        } else {
            quote_spanned!(ms()=> let #offset: ::core::primitive::usize = 0;)
        });
        for (i, (name, s)) in usage.sliced.iter().enumerate() {
            let so = ident(&format!("__parfor_out{i}"));
            let w = ident(&format!("__parfor_out{i}_wire"));
            let v = &s.ident;
            sliced_setup.extend(quote_spanned! {ms()=>
                let #w = #wire_of!(#probe_elem(&(#v)[..]));
                let #so = #slice_out::new(&mut (#v)[..], #offset, #w);
            });
            // The body writes through a `Copy` handle of its own, which it gets in `ctx`.
            let slots = ident(&format!("__parfor_out{i}_slots"));
            sliced_setup.extend(quote_spanned! {ms()=> let #slots = #so.slots(); });
            ctx.push(slots.clone());
            outputs.push(so.clone());
            sliced.insert(name.clone(), slots);
        }
    }

    // Reductions: one accumulator per variable in the block state, in first-use order.
    let mut reds: Vec<&Reduction> = usage.reductions.values().collect();
    reds.sort_by_key(|r| r.slot);
    let mut probes = TokenStream::new();
    let mut inits = Vec::new();
    let mut parts = Vec::new();
    let mut combine = TokenStream::new();
    for r in &reds {
        let probe = ident(&format!("__parfor_probe{}", r.slot));
        let part = ident(&format!("__parfor_part{}", r.slot));
        let x = &r.ident;
        let b = ident("__parfor_b");
        if let RedOp::Concat = r.op {
            probes.extend(quote_spanned!(ms()=> let #probe = #probe_elem(&#x);));
            inits.push(quote_spanned!(ms()=> #krate::__private::new_vec(&#probe)));
            combine.extend(quote_spanned!(ms()=> #x.extend(#part);));
        } else {
            probes.extend(quote_spanned!(ms()=> let #probe = #probe_val(&#x);));
            inits.push(quote_spanned!(ms()=> #krate::__private::none(&#probe)));
            let value = match &r.op {
                // `x op= b` rather than `x = x op b`: the same for the types reductions take,
                // and lint-clean in the user's code (`x` keeps its span).
                RedOp::Bin(op) => {
                    let op: TokenStream = format!("{op}=").parse().unwrap_or_default();
                    quote!(#x #op #b)
                }
                RedOp::Sub => quote_spanned!(ms()=> #x -= #b),
                RedOp::Method(m) => quote!(#x.#m(#b)),
                RedOp::Call { func, swapped: false } => quote!(#func(#x, #b)),
                RedOp::Call { func, swapped: true } => quote!(#func(#b, #x)),
                RedOp::Concat => unreachable!(),
            };
            let update = match &r.op {
                RedOp::Bin(_) | RedOp::Sub => value,
                _ => quote!(#x = #value),
            };
            combine.extend(quote_spanned! {ms()=>
                if let ::core::option::Option::Some(#b) = #part {
                    #update;
                }
            });
        }
        parts.push(part);
    }

    let rw = Rewrite { state: state.clone(), sliced, krate: krate.clone() };
    let body = classify::rewrite(lp, &rw, &usage.reductions);

    let describe = match (&lp.domain.kind, &lp.index) {
        (DomainKind::Range, Some(i)) => {
            let name = i.to_string();
            quote_spanned!(ms()=> &|#pos: ::core::primitive::usize| ::std::format!("{} = {:?}", #name, #krate::__private::Source::get(&#dom, #pos)))
        }
        _ => {
            quote_spanned!(ms()=> &|#pos: ::core::primitive::usize| ::std::format!("at position {}", #pos))
        }
    };
    let sliced_dyn = p(quote!(Sliced));
    let st = ident("__parfor_st");
    let combine_loop = if reds.is_empty() {
        quote_spanned!(ms()=> let _ = #states;)
    } else {
        quote_spanned! {ms()=>
            for #st in #states {
                let ( #(#parts,)* ) = #st;
                #combine
            }
        }
    };
    let fold = p(quote!(fold));
    let (range, cursor, items_label) =
        (ident("__parfor_range"), ident("__parfor_cursor"), items_label());
    quote_spanned! {ms()=>
        {
            let #opts_id: #krate::__private::Options = #opts;
            #setup
            #sliced_setup
            #probes
            let #init = move || ( #(#inits,)* );
            let #wire = #wire_of!(#probe_val(&#init()));
            #[allow(clippy::undocumented_unsafe_blocks, unused_braces)]
            let #states = #fold(
                #n,
                &#opts_id,
                #wire,
                &[ #( &#outputs as &dyn #sliced_dyn ),* ],
                #describe,
                ( #(#ctx,)* ),
                #init,
                |#state, ( #(#ctx,)* ), #range, #cursor| {
                    #items_label: for #pos in #range {
                        #cursor.at(#pos);
                        #bind
                        #body
                    }
                },
            );
            #combine_loop
        }
    }
}
