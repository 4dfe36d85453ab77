//! The code `parmap!` generates.
//!
//! ```text
//! parmap!(f, xs, 0..n; args = (k,), zip = false)
//! ```
//! becomes (every identifier below is `Span::mixed_site()`, so user code cannot name it)
//! ```text
//! {
//!     let __parfor_f = &(f);                       // evaluated once, borrowed
//!     let __parfor_b0 = &(xs);                     // borrowed, never moved or cloned
//!     let __parfor_s0 = {
//!         use AsSource as _;
//!         __parfor_b0.parmap_source_must_be_a_slice_or_an_integer_range()
//!     };
//!     let __parfor_b1 = &(0..n);
//!     let __parfor_s1 = {
//!         use AsSource as _;
//!         __parfor_b1.parmap_source_must_be_a_slice_or_an_integer_range()
//!     };
//!     let __parfor_a0 = &(k);
//!     let __parfor_opts = Options::new();
//!     let __parfor_item = move |[__parfor_i0, __parfor_i1]: [usize; 2]| {
//!         __parfor_f(
//!             Arg::arg(Source::get(&__parfor_s0, __parfor_i0)),
//!             Arg::arg(Source::get(&__parfor_s1, __parfor_i1)),
//!             Arg::arg(__parfor_a0),
//!         )
//!     };
//!     let __parfor_wire = wire_of!(probe_ret(&__parfor_item));
//!     // `SyncCall` or, when the function returns a future, `AsyncCall`; then one check per
//!     // option that suits only one of them (`check_workers(__parfor_call);`, ...), and
//!     // `check_async_feature(__parfor_call);`
//!     let __parfor_call = call_of!(probe_ret(&__parfor_item));
//!     __parfor_call.map(Shape::product([Source::len(&__parfor_s0), Source::len(&__parfor_s1)]),
//!         &__parfor_opts, __parfor_wire, __parfor_item)
//! }
//! ```
//! `parmap_async!` wraps the same statements in `async { ... }` and awaits `map_async`.
//! A closure literal with unannotated parameters is wrapped in `sigN(probe.., closure)`, which
//! gives it its parameter types; those parameters then get the elements unconverted.

use super::args::{Options, Pairing};
use crate::options::{OnError, Value};
use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Pat};

/// The most parameters of a closure with unannotated parameters; keep in sync with
/// `parfor_runtime::source::MAX_INFERRED_ARITY`.
pub(crate) const MAX_INFERRED_ARITY: usize = 12;

/// `tokens` with every span set to `span` (so an error in generated code points at the user
/// tokens it stands for).
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut t| {
            if let TokenTree::Group(g) = &t {
                let mut ng = Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                t = TokenTree::Group(ng);
            } else {
                t.set_span(span);
            }
            t
        })
        .collect()
}

fn ident(name: &str, k: usize) -> syn::Ident {
    format_ident!("__parfor_{}{}", name, k, span = Span::mixed_site())
}

fn named(name: &str) -> syn::Ident {
    format_ident!("__parfor_{}", name, span = Span::mixed_site())
}

/// How each parameter of the mapped function gets its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Through `Arg::arg`, which converts to the type the parameter asks for.
    Convert,
    /// As the source yields it (`&T`, or the integer), giving a closure its parameter type.
    Natural,
}

/// The closure literal `func` is, seen through parentheses.
pub(crate) fn closure(func: &Expr) -> Option<&syn::ExprClosure> {
    match func {
        Expr::Closure(c) => Some(c),
        Expr::Paren(p) => closure(&p.expr),
        _ => None,
    }
}

/// How each of the `arity` parameters is passed: `None` when every one goes through
/// `Arg::arg` (the function's signature is known), else one entry per closure parameter.
pub(crate) fn passing(func: &Expr) -> Option<Vec<Pass>> {
    let c = closure(func)?;
    let pass: Vec<Pass> = c
        .inputs
        .iter()
        .map(|p| if matches!(p, Pat::Type(_)) { Pass::Convert } else { Pass::Natural })
        .collect();
    pass.contains(&Pass::Natural).then_some(pass)
}

/// Which macro a call comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// `parmap!`: blocks until every item is done and returns the `Vec`.
    Blocking,
    /// `parmap_async!`: a future of the `Vec`, for async code.
    Async,
    /// `parmap_iter!`: an iterator of the results as they complete.
    Stream,
}

/// The span of an option's value.
fn value_span<T>(v: &Value<T>) -> Span {
    match v {
        Value::Lit(_, span) => *span,
        Value::Expr(e) => e.span(),
    }
}

/// The checks of the options that suit only a plain function or only an async function
/// (`parfor_runtime::asynch::check_*`): a call of the wrong kind fails a trait bound, so the
/// mistake is a compile error. Every token of a check is located at the option, so the error
/// points there.
fn kind_checks(p: &TokenStream, opts: &Options, kind: &syn::Ident) -> TokenStream {
    let mut checks = TokenStream::new();
    let at = |id: &syn::Ident, span: Span| {
        syn::Ident::new(&id.to_string(), Span::mixed_site().located_at(span))
    };
    let mut check = |name: &str, span: Span, extra: TokenStream| {
        // Every token mixed-site, like the others of the expansion, so rustc keeps the error
        // at the option rather than widening it to the whole macro call.
        let span = Span::mixed_site().located_at(span);
        let ps = respan(p.clone(), span);
        let f = syn::Ident::new(name, span);
        let k = at(kind, span);
        checks.extend(quote_spanned!(span=> #ps::#f(#k #extra);));
    };
    if let Some(Value::Lit(name, span)) = &opts.common.engine {
        check("check_sync_engine", *span, TokenStream::new());
        if *name == "fork" {
            check("check_fork_result", *span, TokenStream::new());
        }
        // The mpi engine's ranks exchange the results: the same requirement.
        if *name == "mpi" {
            check("check_mpi_result", *span, TokenStream::new());
        }
    }
    if let Some(span) = opts.async_engine {
        check("check_async_engine", span, TokenStream::new());
    }
    for (name, slot) in
        [("check_workers", &opts.common.workers), ("check_chunk", &opts.common.chunk)]
    {
        if let Some(v) = slot {
            check(name, value_span(v), TokenStream::new());
        }
    }
    if let Some(v) = &opts.concurrency {
        let span = value_span(v);
        let n = match v {
            Value::Lit(n, span) => syn::LitInt::new(&format!("{n}usize"), *span).to_token_stream(),
            Value::Expr(e) => quote_spanned!(span=> { let __parfor_n: usize = #e; __parfor_n }),
        };
        let span = Span::mixed_site().located_at(span);
        let ps = respan(p.clone(), span);
        let k = at(kind, span);
        checks.extend(quote_spanned!(span=> let #k = #ps::concurrency(#k, #n);));
    }
    checks
}

/// Whether `e` is a place expression (a variable, a field, an element, a dereference): a
/// single source written so is borrowed, never moved; any other expression is a value that
/// the call may own (an iterator it pulls).
fn is_place(e: &Expr) -> bool {
    match e {
        Expr::Path(_) | Expr::Field(_) | Expr::Index(_) => true,
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Deref(_)),
        Expr::Paren(p) => is_place(&p.expr),
        Expr::Group(g) => is_place(&g.expr),
        _ => false,
    }
}

/// Whether a single source goes through the single-source path (`SingleSource`), which also
/// takes a lazy iterator: every source of a stream; for `parmap!`, a source written as an
/// expression that is neither a place, a reference, a range, an array nor a macro call
/// (`lines()`, `v.iter()`, a channel), which may be an iterator. The others keep the indexed
/// path, which also serves async functions.
fn single_path(sources: &[Expr], form: Form) -> bool {
    fn indexed_form(e: &Expr) -> bool {
        match e {
            Expr::Reference(_) | Expr::Range(_) | Expr::Lit(_) | Expr::Array(_) => true,
            // `vec![..]` and other macros that build a collection.
            Expr::Macro(_) => true,
            Expr::Paren(p) => indexed_form(&p.expr),
            Expr::Group(g) => indexed_form(&g.expr),
            e => is_place(e),
        }
    }
    match (sources, form) {
        ([_], Form::Stream) => true,
        ([src], Form::Blocking) => !indexed_form(src),
        _ => false,
    }
}

/// The call's expression, for `parmap!`, `parmap_async!` or `parmap_iter!`.
pub(crate) fn expand_form(
    func: &Expr,
    sources: &[Expr],
    opts: &Options,
    form: Form,
) -> TokenStream {
    let krate = opts.common.krate();
    let p = quote!(#krate::__private);
    let k = sources.len();
    let f = named("f");
    let stream = opts.stream.as_ref().filter(|_| form == Form::Stream);
    let mut stmts = TokenStream::new();

    // A closure literal goes through `sigN` even when every parameter is annotated: its
    // parameter types then come from the call, with the sources' lifetime, rather than being
    // higher-ranked, so it may return something that borrows its arguments (an `async move`
    // block reading a `&str` element, say).
    // With `init`, the function's first parameter is the worker's state, passed as `&mut`.
    let state = usize::from(opts.init.is_some());
    let pass = passing(func).or_else(|| {
        let c = closure(func)?;
        let n = c.inputs.len();
        (n <= MAX_INFERRED_ARITY && n == state + sources.len() + opts.args.len())
            .then(|| vec![Pass::Convert; n])
    });
    if pass.is_none() {
        // A stream's threads may outlive this expression: it owns its function.
        stmts.extend(if stream.is_some() {
            quote!(let #f = (#func);)
        } else {
            quote!(let #f = &(#func);)
        });
    }
    // A single source may be lazy (any iterator); several need random access.
    let single = single_path(sources, form);

    let mut lens = Vec::new();
    let mut idx = Vec::new();
    let mut call_args = Vec::new();
    let mut probes = Vec::new();
    // (`valid` rejects a closure whose arity does not match; default defensively anyway.)
    let pass_of =
        |i: usize| pass.as_ref().and_then(|p| p.get(state + i).copied()).unwrap_or(Pass::Convert);
    // `init = make_state`: borrowed, checked to be a function of no arguments, at the option.
    let init = named("init");
    let st = named("st");
    if let Some((e, _)) = &opts.init {
        let span = Span::call_site().located_at(e.span());
        let ps = respan(p.clone(), span);
        stmts.extend(quote_spanned!(span=> let #init = #ps::init_fn(#e);));
    }
    let elem = named("e");
    for (i, src) in sources.iter().enumerate() {
        let (b, s, ix) = (ident("b", i), ident("s", i), ident("i", i));
        // Generated tokens standing for this source: located at it, resolved at the call site.
        let span = Span::call_site().located_at(src.span());
        let ps = respan(p.clone(), span);
        if single {
            let own = named("own");
            let held = if is_place(src) { quote!(&(#src)) } else { quote!((#src)) };
            stmts.extend(quote_spanned! {span=>
                let mut #own = #ps::Own::new(#held);
                let #s = {
                    use #ps::AsSource as _;
                    use #ps::SingleRange as _;
                    use #ps::SingleLazy as _;
                    use #ps::SingleBorrowedIterator as _;
                    (&mut #own).parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source()
                };
            });
            match pass_of(i) {
                Pass::Convert => {
                    call_args.push(quote_spanned!(span=> #ps::Arg::arg(#ps::Pass::pass(#elem))));
                    probes.push(quote!(#p::probe_any()));
                }
                Pass::Natural => {
                    call_args.push(quote_spanned!(span=> #ps::Natural::natural(#elem)));
                    probes.push(quote!(#p::probe_single(&#s)));
                }
            }
            continue;
        }
        // An iterator in a variable is rejected with the fix that suits the call: alone, move
        // it in; among several sources, collect it.
        let (lazy, check) = if k == 1 {
            (quote!(LazyInVariable), quote!(indexed_single))
        } else {
            (quote!(LazyInProduct), quote!(indexed))
        };
        stmts.extend(quote_spanned! {span=>
            let #b = &(#src);
            let #s = #ps::#check({
                use #ps::AsSource as _;
                use #ps::#lazy as _;
                #b.parmap_source_must_be_a_slice_or_an_integer_range()
            });
        });
        lens.push(quote!(#p::Source::len(&#s)));
        let get = quote_spanned!(span=> #ps::Source::get(&#s, #ix));
        match pass_of(i) {
            Pass::Convert => {
                call_args.push(quote_spanned!(span=> #ps::Arg::arg(#get)));
                probes.push(quote!(#p::probe_any()));
            }
            Pass::Natural => {
                call_args.push(get);
                probes.push(quote!(#p::probe_item(&#s)));
            }
        }
        idx.push(ix);
    }
    for (j, arg) in opts.args.iter().enumerate() {
        let a = ident("a", j);
        let span = Span::call_site().located_at(arg.span());
        let ps = respan(p.clone(), span);
        if stream.is_some() {
            // Owned by the stream, borrowed by each call.
            let own = ident("own_a", j);
            stmts.extend(quote_spanned!(span=> let #own = (#arg);));
            match pass_of(k + j) {
                Pass::Convert => {
                    call_args.push(quote_spanned!(span=> #ps::Arg::arg(&#own)));
                    probes.push(quote!(#p::probe_any()));
                }
                Pass::Natural => {
                    call_args.push(quote!(&#own));
                    probes.push(quote!(#p::probe_ref(&#own)));
                }
            }
            continue;
        }
        stmts.extend(quote_spanned!(span=> let #a = &(#arg);));
        match pass_of(k + j) {
            Pass::Convert => {
                call_args.push(quote_spanned!(span=> #ps::Arg::arg(#a)));
                probes.push(quote!(#p::probe_any()));
            }
            Pass::Natural => {
                call_args.push(quote!(#a));
                probes.push(quote!(#p::probe_ref(#a)));
            }
        }
    }

    if pass.is_some() {
        if state == 1 {
            // Never a stream (`parmap_iter!` refuses `init`).
            let sig = format_ident!("sigw{}", probes.len());
            stmts.extend(quote!(let #f = &#p::#sig(#p::probe_init(&#init), #(#probes,)* #func);));
        } else {
            let sig = format_ident!("sig{}", probes.len());
            stmts.extend(if stream.is_some() {
                quote!(let #f = #p::#sig(#(#probes,)* #func);)
            } else {
                quote!(let #f = &#p::#sig(#(#probes,)* #func);)
            });
        }
    }

    let opts_ident = named("opts");
    let options = opts.common.to_options();
    stmts.extend(quote!(let #opts_ident = #options;));

    let item = named("item");
    let wire = named("wire");
    let shape = match &opts.zip {
        Pairing::Product => quote!(#p::Shape::product([#(#lens),*])),
        Pairing::Zip => quote!(#p::Shape::zip([#(#lens),*])),
        Pairing::Expr(e) => {
            let z = named("zip");
            let check = quote_spanned!(e.span()=> let #z: ::core::primitive::bool = #e;);
            quote!({
                #check
                if #z {
                    #p::Shape::zip([#(#lens),*])
                } else {
                    #p::Shape::product([#(#lens),*])
                }
            })
        }
    };
    // The engine kind follows from the function's return type (a future: the async engine);
    // a literal `engine = "fork"` needs serde results: both are checked at compile time, at
    // the options (`kind_checks`).
    let kind = named("call");
    let mut checks = kind_checks(&p, opts, &kind);
    let collect = matches!(opts.common.on_error, Some((OnError::Collect, _)));
    // Located at the function, so an arity or type mismatch, or a future without the `async`
    // feature, points at it.
    let fspan = Span::mixed_site().located_at(func.span());
    // An async function needs the `async` feature; `parmap_async!` needs an async function;
    // a stream or a lazy source needs a plain one: the errors point at the function.
    let fp = respan(p.clone(), fspan);
    let fk = syn::Ident::new(&kind.to_string(), fspan);
    checks.extend(quote_spanned!(fspan=> #fp::check_async_feature(#fk);));
    if form == Form::Async {
        checks.extend(quote_spanned!(fspan=> #fp::check_parmap_async(#fk);));
    }
    if single {
        checks.extend(quote_spanned!(fspan=> #fp::check_lazy(#fk);));
    }
    let s0 = ident("s", 0);
    if let Some((_, span)) = &opts.init {
        // At the option: an async function, or a lazy single source, cannot take a state.
        let span = Span::mixed_site().located_at(*span);
        let ps = respan(p.clone(), span);
        let k = syn::Ident::new(&kind.to_string(), span);
        checks.extend(quote_spanned!(span=> #ps::check_init(#k);));
        if single {
            let s0 = syn::Ident::new(&s0.to_string(), span);
            checks.extend(quote_spanned!(span=> #ps::init_source(&#s0);));
        }
    }
    let f_at = syn::Ident::new("__parfor_f", fspan);
    let mut call = if state == 1 {
        quote_spanned!(fspan=> #f_at(#st, #(#call_args),*))
    } else {
        quote_spanned!(fspan=> #f_at(#(#call_args),*))
    };
    if collect {
        // A function that returns `Result<T, E: Display>` (or a future of one) fails the item
        // with its `Err` (`parfor_runtime::returned`), picked by the return type.
        let r = named("r");
        call = quote_spanned! {fspan=> {
            let #r = #call;
            use #fp::ReturnedResultKind as _;
            use #fp::ReturnedFutureKind as _;
            use #fp::ReturnedValueKind as _;
            (&&&#fp::ReturnedProbe(&#r)).parfor_returned_kind().apply(#r)
        }};
    }
    let closure = match (single, state == 1) {
        (true, false) => quote!(#p::single_fn(&#s0, move |#elem| #call)),
        (true, true) => {
            quote!(#p::single_fn_init(&#s0, #p::probe_init(&#init), move |#st, #elem| #call))
        }
        (false, false) => quote!(move |[#(#idx),*]: [::core::primitive::usize; #k]| #call),
        (false, true) => quote! {
            move |#st: &mut _, [#(#idx),*]: [::core::primitive::usize; #k]| #call
        },
    };
    let probe_ret = if state == 1 { quote!(probe_ret_init) } else { quote!(probe_ret) };
    let body = quote! {
        #stmts
        let #item = #closure;
        let #wire = #p::wire_of!(#p::#probe_ret(&#item));
        let #kind = #p::call_of!(#p::#probe_ret(&#item));
        #checks
    };
    if let Some(st) = stream {
        let ordered = st.ordered.is_none_or(|o| o.0);
        let flatten = st.flatten.is_some_and(|f| f.0);
        let mode = match (ordered, flatten, collect) {
            (true, false, false) => "Plain",
            (false, false, false) => "Tagged",
            (true, false, true) => "Try",
            (false, false, true) => "TryTagged",
            (true, true, false) => "Flat",
            (false, true, false) => "FlatTagged",
            (true, true, true) => "TryFlat",
            (false, true, true) => "TryFlatTagged",
        };
        let mode = syn::Ident::new(mode, Span::call_site());
        let mut cfg = quote!(#p::stream::Cfg::new().ordered(#ordered));
        match &st.window {
            Some(Value::Lit(n, span)) => {
                let lit = syn::LitInt::new(&format!("{n}usize"), *span);
                cfg = quote!(#cfg.window(#lit));
            }
            Some(Value::Expr(e)) => {
                let v = quote_spanned!(e.span()=> { let __parfor_n: usize = #e; __parfor_n });
                cfg = quote!(#cfg.window(#v));
            }
            None => {}
        }
        let spawn = match &st.scope {
            Some(e) => quote_spanned!(e.span()=> {
                let __parfor_scope: &#krate::StreamScope<'_, '_> = #e;
                __parfor_scope
            }),
            None => quote!(#p::stream::Detached),
        };
        let mode = quote!(#p::stream::emit::#mode);
        let run = if single {
            quote!(#p::SingleSource::stream(#s0, #spawn, &#opts_ident, #cfg, #wire, #mode, #item))
        } else {
            quote!(#p::stream::iter_shape(#spawn, #shape, &#opts_ident, #cfg, #wire, #mode, #item))
        };
        return quote! {{
            #body
            #run
        }};
    }
    // With `init`, the state's maker goes before the item function.
    let init_arg = if state == 1 { quote!(&#init,) } else { TokenStream::new() };
    if single {
        let run = match (collect, state == 1) {
            (false, false) => quote!(map),
            (true, false) => quote!(try_map),
            (false, true) => quote!(map_init),
            (true, true) => quote!(try_map_init),
        };
        return quote! {{
            #body
            #p::SingleSource::#run(#s0, &#opts_ident, #wire, #init_arg #item)
        }};
    }
    let run = match (form, collect) {
        (Form::Async, false) => "map_async",
        (Form::Async, true) => "try_map_async",
        (_, false) => "map",
        (_, true) => "try_map",
    };
    let run = if state == 1 { format!("{run}_init") } else { run.to_string() };
    let run = syn::Ident::new(&run, fspan);
    match form {
        Form::Async => quote! {
            async {
                #body
                #kind.#run(#shape, &#opts_ident, #wire, #item).await
            }
        },
        _ => quote! {{
            #body
            #kind.#run(#shape, &#opts_ident, #wire, #init_arg #item)
        }},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass_of(src: &str) -> Option<Vec<Pass>> {
        passing(&syn::parse_str(src).unwrap())
    }

    #[test]
    fn closures_with_unannotated_parameters_get_natural_elements() {
        use Pass::{Convert, Natural};
        assert_eq!(pass_of("hypot"), None);
        assert_eq!(pass_of("f64::hypot"), None);
        assert_eq!(pass_of("|a: f64, b: &Image| a"), None);
        assert_eq!(pass_of("|a, b| a * b"), Some(vec![Natural, Natural]));
        assert_eq!(pass_of("(move |a: f64, b| a * b)"), Some(vec![Convert, Natural]));
        assert_eq!(pass_of("|&a| a"), Some(vec![Natural]));
    }
}
