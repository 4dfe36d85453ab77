//! Code generation: a `#[parfor]` loop becomes one call of the runtime's `LoopDomain::run` on
//! its domain (found by its type: an indexed source runs as one call of `fold`, a lazy
//! iterator as one call per window of items), whose body closure runs a range of iterations
//! of the rewritten loop body (so the item loop is compiled with the body, and what it reads
//! every iteration arrives by value in `ctx` and `items`) and whose block states carry the
//! reductions, combined into the loop's variables window by window in block order; sliced
//! outputs become `SliceOut`s, and every iteration gets one `SlotCell` per sliced output, on
//! its own element.
//!
//! Synthesized identifiers use `Span::mixed_site()`, so the user's code can neither name nor
//! shadow them; the user's tokens keep their spans; every path is absolute.
//!
//! # Soundness
//!
//! The generated code relies on three `unsafe` operations; each holds by construction, not by
//! a check of names that a macro or a shadowing item could slip past (README, "Soundness"):
//!
//! 1. `SlotCell::new(slots, i)` — iteration `pos` gets the handle on element
//!    `i = offset + pos` of each sliced output. `pos` comes from the `Range` the engine hands
//!    the body closure, never from the user's tokens: the plan cuts `0..n` into disjoint
//!    blocks and every engine runs each position at most once per call (after a caught panic
//!    it resumes at the next position). `i` is an injective function of `pos` (the range
//!    loop's value `start + pos` converted by `LoopIndex`, or the item's index, which is
//!    `pos` itself, or `window start + pos` in a lazy loop's window, whose sliced outputs the
//!    runtime shifts alike), and a value that
//!    does not fit becomes `usize::MAX`, out of bounds of every slice. So two live handles
//!    never designate one element. Within an iteration, every `out[i]` becomes
//!    `*out.get()` / `*out.get_mut()` on that one local handle, so the borrow checker rejects
//!    what it rejects in a plain loop (`f(&mut out[i], &out[i])`, two `&mut out[i]`, two
//!    scoped threads writing `out[i]`), and a borrow of the element cannot outlive the
//!    iteration (it borrows the local; storing it in a broadcast fails with E0597).
//! 2. `Slots::slot(pos)` for `&mut v` / `v.iter_mut()` domains — the element at position
//!    `pos`, once per position by the same argument, as `iter_mut` yields each element once.
//! 3. The `Send`/`Sync` impls of `SliceOut`/`Slots`/`SlotCell`, which require `T: Send` (and
//!    `T: Sync` to share a `SlotCell`).
//! 4. `LoopItems::item(items, pos)` — the item of iteration `pos`: an element or an integer
//!    of an indexed domain, or, for a lazy domain, the item pulled into the window at `pos`,
//!    moved out once; each position runs at most once per call, by the argument of point 1,
//!    and only inside the call that holds the window.
//!
//! Outside the handles, the body cannot reach a sliced output: `SliceOut::new(&mut out[..])`
//! holds a mutable borrow of `out` for the whole call, so any other mention of `out` that
//! reaches the closure (for example through a `macro_rules!` defined around the loop) is a
//! borrow-check error. The body closure is `Fn + Sync`, so it cannot assign or `&mut`-borrow
//! any captured variable; reductions write only the block state it is given.

use crate::options::Value;
use crate::parfor::ast::{DomainKind, Loop, RedOp, Reduction, Usage};
use crate::parfor::rewrite::{self, Names, combine, items_label};
use crate::parmap::expand::respan;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use std::collections::BTreeMap;
use syn::Ident;

fn ms() -> Span {
    Span::mixed_site()
}

fn ident(name: &str) -> Ident {
    Ident::new(name, ms())
}

/// The block that replaces `lp`.
pub(crate) fn expand_loop(lp: &mut Loop, usage: &Usage) -> TokenStream {
    let krate = lp.args.common.krate();
    let mut opts = lp.args.common.to_options();
    if let Some(i) = usage.interior.first() {
        let what = format!("`{}` changes the broadcast variable `{}`", i.call, i.var);
        opts = quote_spanned!(ms()=> #opts.interior_mutation(#what));
    }
    if usage.reductions.values().any(|r| r.array) {
        // Every block holds a private copy of the array: a few blocks, not 256.
        opts = quote_spanned!(ms()=> #opts.max_blocks(#krate::__private::ARRAY_REDUCTION_BLOCKS));
    }
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
    // A literal `engine = "fork"`: every value that crosses a process boundary must be serde,
    // said at compile time at the variable that carries it.
    // The same for a literal `engine = "mpi"`, whose ranks exchange those values.
    let fork_literal = matches!(lp.args.common.engine, Some(Value::Lit("fork" | "mpi", _)));
    let mut fork_checks = TokenStream::new();
    let fork_state = match lp.args.common.engine {
        Some(Value::Lit("mpi", _)) => p(quote!(mpi_state)),
        _ => p(quote!(fork_state)),
    };
    let pat = lp.pat.clone();
    let expr = lp.domain.expr.clone();
    // Trait errors ("cannot iterate over `HashMap`") point at the user's domain expression.
    let espan = syn::spanned::Spanned::span(&expr);

    // The domain: `dom` (a `LoopDomain`), and how iteration `pos` binds the pattern. The
    // domain expression is a `match` scrutinee, so its temporaries (`v.to_vec().iter()`) live
    // for the whole loop, as in a plain `for`.
    let mut outputs: Vec<Ident> = Vec::new();
    // What every iteration reads besides the user's variables and its item, all `Copy`: the
    // handles of the sliced outputs. The body gets them by value with each block of
    // iterations (`ctx`), so they stay in registers across the block; likewise the items.
    let dom_slots = ident("__parfor_dom_slots");
    let items = ident("__parfor_items");
    let mut ctx: Vec<Ident> = Vec::new();
    let sl = ident("__parfor_dom_slice");
    let it = ident("__parfor_it");
    let hold = ident("__parfor_hold");

    let item_of = quote_spanned! {ms()=>
        // SAFETY (of the generated block): see the module docs, point 4.
        unsafe { #krate::__private::LoopItems::item(#items, #pos) }
    };
    let (scrutinee, binding, setup, elem) = match lp.domain.kind {
        DomainKind::Range => (
            quote_spanned!(espan=> #krate::__private::LoopRange::__parfor_range(&(#expr))),
            dom.clone(),
            quote_spanned! {ms()=>
                let #n: ::core::primitive::usize = #krate::__private::Source::len(&#dom);
            },
            item_of,
        ),
        DomainKind::Slice => {
            let f = quote_spanned! {espan=>
                #krate::__private::LoopRef::parfor_loop_over_a_slice_vec_array_or_parfor_source
            };
            (quote_spanned!(espan=> #f(&(#expr))), dom.clone(), TokenStream::new(), item_of)
        }
        DomainKind::Iter => (
            quote_spanned!(espan=> ::core::iter::IntoIterator::into_iter(#expr)),
            it.clone(),
            quote_spanned! {espan=>
                let mut #hold = #krate::__private::LoopHold::new(#it);
                let #dom = {
                    #[allow(unused_imports)]
                    use #krate::__private::{LoopHoldIndexed as _, LoopHoldLazy as _, LoopHoldLazyMut as _};
                    (&mut #hold).parfor_loop_domain()
                };
                {
                    #[allow(unused_imports)]
                    use #krate::__private::LoopCheck as _;
                    { &#dom }.parfor_check_items();
                }
            },
            item_of,
        ),
        DomainKind::SliceMut | DomainKind::IterMut => {
            let scrutinee = if lp.domain.kind == DomainKind::SliceMut {
                let f =
                    quote_spanned!(espan=> #krate::__private::LoopSliceMut::__parfor_as_mut_slice);
                quote_spanned!(ms()=> #f(&mut #expr))
            } else {
                quote_spanned!(ms()=> (#expr).__parfor_as_mut_slice())
            };
            let w = ident("__parfor_dom_wire");
            let so = ident("__parfor_dom_out");
            outputs.push(so.clone());
            ctx.push(dom_slots.clone());
            (
                scrutinee,
                sl.clone(),
                quote_spanned! {ms()=>
                    let #n: ::core::primitive::usize = #sl.len();
                    let #w = #wire_of!(#probe_elem(&*#sl));
                    let #so = #slice_out::new(#sl, 0, #w);
                    let #dom_slots = #so.slots();
                    let #dom = #krate::__private::IntRange::positions(#n);
                },
                // SAFETY (of the generated block): see the module docs, point 2.
                quote_spanned!(ms()=> { let _ = #items; unsafe { #dom_slots.slot(#pos) } }),
            )
        }
    };
    let bind = if lp.domain.enumerate {
        quote_spanned! {ms()=>
            let #pat = (#krate::__private::LoopItems::index(#items, #pos), #elem);
        }
    } else {
        quote_spanned!(ms()=> let #pat = #elem;)
    };

    // Sliced outputs: iteration `pos` owns element `offset + pos` of each.
    let mut cells = BTreeMap::new();
    let mut sliced_setup = TokenStream::new();
    let mut cell_setup = TokenStream::new();
    if !usage.sliced.is_empty() {
        let offset = ident("__parfor_offset");
        let elem_index = if lp.domain.kind == DomainKind::Range {
            sliced_setup.extend(quote_spanned! {ms()=>
                let #offset: ::core::primitive::i128 = if #n == 0 {
                    0
                } else {
                    #krate::__private::LoopIndex::__parfor_offset(
                        #krate::__private::Source::get(&#dom, 0),
                    )
                };
            });
            quote_spanned! {ms()=>
                #krate::__private::LoopIndex::__parfor_index(
                    #krate::__private::Source::get(&#items, #pos),
                )
            }
        } else {
            sliced_setup.extend(quote_spanned!(ms()=> let #offset: ::core::primitive::i128 = 0;));
            quote_spanned!(ms()=> #krate::__private::LoopItems::index(#items, #pos))
        };
        for (i, (name, s)) in usage.sliced.iter().enumerate() {
            let so = ident(&format!("__parfor_out{i}"));
            let w = ident(&format!("__parfor_out{i}_wire"));
            let v = &s.ident;
            // The body writes through a `Copy` handle of its own, which it gets in `ctx`.
            let slots = ident(&format!("__parfor_out{i}_slots"));
            if fork_literal {
                // Before the output is borrowed mutably for the loop.
                let (span, f) = (v.span(), respan(fork_state.clone(), v.span()));
                sliced_setup.extend(quote_spanned! {span=>
                    #f(&#probe_elem(&(#v)[..]));
                });
            }
            sliced_setup.extend(quote_spanned! {ms()=>
                let #w = #wire_of!(#probe_elem(&(#v)[..]));
                let #so = #slice_out::new(&mut (#v)[..], #offset, #w);
                let #slots = #so.slots();
            });
            ctx.push(slots.clone());
            outputs.push(so);
            // Named like the output, so the borrow checker's messages say `out`.
            let cell = ident(name);
            cell_setup.extend(quote_spanned! {ms()=>
                #[allow(unused_mut, unused_variables)]
                // SAFETY (of the generated block): see the module docs, point 1.
                let mut #cell = unsafe { #krate::__private::SlotCell::new(#slots, #elem_index) };
            });
            cells.insert(name.clone(), cell);
        }
        // The body's `out[i]` become the handles, which do not read `i`; it is used all the
        // same, as in the plain loop.
        if let Some(i) = &lp.index {
            cell_setup.extend(quote_spanned!(ms()=> let _ = &#i;));
        }
    }

    // Reductions: one accumulator per variable in the block state, in first-use order.
    let mut reds: Vec<&Reduction> = usage.reductions.values().collect();
    reds.sort_by_key(|r| r.slot);
    let mut probes = TokenStream::new();
    let mut inits = Vec::new();
    let mut parts = Vec::new();
    let mut combine_parts = TokenStream::new();
    let mut ops = BTreeMap::new();
    let mut lens = BTreeMap::new();
    // Whether every reduction is an array reduction whose partial arrays combine exactly in
    // any grouping (decided by their kinds at run time): then a worker keeps one partial array
    // for all its blocks.
    let mut per_worker: Vec<TokenStream> = Vec::new();
    let all_arrays = !reds.is_empty() && reds.iter().all(|r| r.array);
    for r in &reds {
        let probe = ident(&format!("__parfor_probe{}", r.slot));
        let part = ident(&format!("__parfor_part{}", r.slot));
        let x = &r.ident;
        let b = ident("__parfor_b");
        if r.array {
            // The element type and the length (of every row); the array itself is not
            // captured by the body.
            let len = ident(&format!("__parfor_len{}", r.slot));
            if r.rows {
                let (probe_row, row_lens) = (p(quote!(probe_row_elem)), p(quote!(row_lens)));
                probes.extend(quote_spanned! {ms()=>
                    let #probe = #probe_row(&(#x)[..]);
                    let #len: ::std::vec::Vec<::core::primitive::usize> = #row_lens(&mut (#x)[..]);
                });
            } else {
                probes.extend(quote_spanned! {ms()=>
                    let #probe = #probe_elem(&(#x)[..]);
                    let #len: ::core::primitive::usize = (#x)[..].len();
                });
            }
            lens.insert(x.to_string(), len);
        } else {
            probes.extend(quote_spanned!(ms()=> let #probe = #probe_val(&#x);));
        }
        if fork_literal {
            let f = respan(fork_state.clone(), x.span());
            fork_checks.extend(quote_spanned!(x.span()=> #f(&#probe);));
        }
        if let RedOp::Concat = r.op {
            inits.push(quote_spanned!(ms()=> #krate::__private::concat_buf(&#probe)));
            combine_parts.extend(quote_spanned! {ms()=>
                #krate::__private::ConcatBuf::__parfor_append(&mut #x, #part);
            });
        } else {
            let op = ident(&format!("__parfor_ops{}", r.slot));
            probes.extend(quote_spanned! {ms()=>
                let #op = {
                    #[allow(unused_imports)]
                    use #krate::__private::{AnyOps as _, IntOps as _};
                    (&&#probe).__parfor_ops()
                };
            });
            if r.array {
                // The representation of the partial arrays, from the element type and the
                // operator (autoref dispatch: a `Dense*` trait on `&Probe<T>` wins over
                // `SparseArray` on `Probe<T>`).
                let kind = ident(&format!("__parfor_kind{}", r.slot));
                let method = rewrite::array_kind_method(&r.op);
                probes.extend(quote_spanned! {ms()=>
                    let #kind = {
                        #[allow(unused_imports)]
                        use #krate::__private::{
                            DenseAddSub as _, DenseBits as _, DenseMinMax as _, DenseMul as _,
                            SparseArray as _,
                        };
                        (&&#probe).#method()
                    };
                });
                inits.push(if r.rows {
                    let rows_part = p(quote!(RowsPart));
                    quote_spanned!(ms()=> #rows_part::new(#kind))
                } else {
                    quote_spanned!(ms()=> #kind.part())
                });
                per_worker.push(quote_spanned!(ms()=> #kind.exact()));
                let (a, v) = (ident("__parfor_a"), ident("__parfor_v"));
                // Merging adds what a dense `-=` accumulated (`identity - v0 - ...`) and
                // subtracts what a sparse one summed; every other operator merges with itself.
                let (dense, sparse) = match &r.op {
                    RedOp::Sub => (
                        quote_spanned!(ms()=> #op.add(#a, #v)),
                        quote_spanned!(ms()=> #op.sub(#a, #v)),
                    ),
                    other => {
                        let m = combine(other, &op, ms(), a.to_token_stream(), v.to_token_stream());
                        (m.clone(), m)
                    }
                };
                let row = if r.rows {
                    let row_mut = p(quote!(row_mut));
                    quote_spanned!(ms()=> #row_mut,)
                } else {
                    TokenStream::new()
                };
                combine_parts.extend(quote_spanned! {ms()=>
                    #part.merge_into(&mut (#x)[..], #row |#a, #v| #dense, |#a, #v| #sparse);
                });
                ops.insert(x.to_string(), op);
                parts.push(part);
                continue;
            }
            inits.push(quote_spanned!(ms()=> #krate::__private::none(&#probe)));
            let update = match &r.op {
                // `x op= b` for the operators without arithmetic overflow, so the user's code
                // stays lint-clean (`x` keeps its span).
                RedOp::Bin(o @ ("|" | "&" | "^")) => {
                    let op: TokenStream = format!("{o}=").parse().unwrap_or_default();
                    quote!(#x #op #b)
                }
                RedOp::Sub => quote_spanned!(ms()=> #x = #op.sub(#x, #b)),
                other => {
                    let value = combine(other, &op, ms(), x.to_token_stream(), b.to_token_stream());
                    quote!(#x = #value)
                }
            };
            combine_parts.extend(quote_spanned! {ms()=>
                if let ::core::option::Option::Some(#b) = #part {
                    #update;
                }
            });
            ops.insert(x.to_string(), op);
        }
        parts.push(part);
    }

    let per_worker = if all_arrays {
        quote_spanned!(ms()=> #(#per_worker)&&*)
    } else {
        quote_spanned!(ms()=> false)
    };
    let names = Names { state: state.clone(), cells, ops, lens, krate: krate.clone() };
    rewrite::rewrite(lp, &names, &usage.reductions);
    let body = &lp.body;

    let describe = match (&lp.domain.kind, &lp.index) {
        (DomainKind::Range, Some(i)) => {
            let name = i.to_string();
            quote_spanned!(ms()=> &|#pos: ::core::primitive::usize| ::std::format!("{} = {:?}", #name, #krate::__private::Source::get(&#dom, #pos)))
        }
        (_, Some(i)) if lp.domain.enumerate => {
            let name = i.to_string();
            quote_spanned!(ms()=> &|#pos: ::core::primitive::usize| ::std::format!("{} = {}", #name, #pos))
        }
        _ => {
            quote_spanned!(ms()=> &|#pos: ::core::primitive::usize| ::std::format!("at item {}", #pos))
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
                #combine_parts
            }
        }
    };
    let run = p(quote!(LoopDomain::run));
    let call = p(quote!(LoopCall));
    // A domain that is not one (a `&v` of the wrong type) is reported at the user's tokens.
    let dom_arg = quote_spanned!(espan=> { #dom });
    // Per-worker variables: made by `local_init` once per worker, borrowed mutably by every
    // iteration that worker runs (`rng` is a `&mut` in the body).
    let (local_init, local) = (ident("__parfor_local_init"), ident("__parfor_local"));
    let local_exprs: Vec<&syn::Expr> = lp.args.init.iter().map(|d| &d.expr).collect();
    let local_vars: Vec<&Ident> = lp.args.init.iter().map(|d| &d.var).collect();
    let bind_locals = if local_vars.is_empty() {
        quote_spanned!(ms()=> let _ = &#local;)
    } else {
        quote_spanned! {ms()=>
            #[allow(unused_variables)]
            let ( #(#local_vars,)* ) = &mut *#local;
        }
    };
    let (range, cursor, items_label) =
        (ident("__parfor_range"), ident("__parfor_cursor"), items_label());
    let mut_slice_trait = if lp.domain.kind == DomainKind::IterMut {
        quote_spanned!(ms()=> #[allow(unused_imports)] use #krate::__private::LoopSliceMut as _;)
    } else {
        TokenStream::new()
    };
    quote_spanned! {ms()=>
        {
            let #opts_id: #krate::__private::Options = #opts;
            #mut_slice_trait
            match #scrutinee {
                #binding => {
                    #setup
                    #sliced_setup
                    #probes
                    #fork_checks
                    let #init = move || ( #(#inits,)* );
                    let #local_init = || ( #(#local_exprs,)* );
                    let #wire = #wire_of!(#probe_val(&#init()));
                    #[allow(clippy::undocumented_unsafe_blocks, unused_braces)]
                    for #states in #run(
                        #dom_arg,
                        #call {
                            opts: &#opts_id,
                            per_worker: #per_worker,
                            wire: #wire,
                            outputs: &[ #( &#outputs as &dyn #sliced_dyn ),* ],
                            describe: #describe,
                            ctx: ( #(#ctx,)* ),
                            init: #init,
                            local_init: #local_init,
                        },
                        |#state, #local, ( #(#ctx,)* ), #items, #range, #cursor| {
                            #items_label: for #pos in #range {
                                #cursor.at(#pos);
                                #bind_locals
                                #bind
                                #cell_setup
                                #body
                            }
                        },
                    ) {
                        #combine_loop
                    }
                }
            }
        }
    }
}
