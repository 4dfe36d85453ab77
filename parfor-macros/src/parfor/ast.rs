//! The loop IR: a `#[parfor]` loop's label, pattern, domain and body, and what the
//! classification found about the variables it touches.

use crate::parfor::args::Args;
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use std::collections::BTreeMap;
use syn::{Expr, ExprForLoop, Ident, Pat};

/// The forms a loop's domain can take, named in the error for anything else.
pub(crate) const SUPPORTED_DOMAINS: &str = "`a..b`, `a..=b`, `&v` (a slice, `Vec`, array or \
     `parfor::Source`), `&mut v`, `v.iter_mut()`, any iterator (`v.iter()`, `reader.lines()`, \
     `rx.iter()`), each optionally followed by `.enumerate()`";

/// How a loop walks its domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DomainKind {
    /// `a..b` or `a..=b`.
    Range,
    /// `&v`: a slice, `Vec`, array or `parfor::Source`, found by the type of `v`.
    Slice,
    /// `&mut v`.
    SliceMut,
    /// `v.iter_mut()`: like `SliceMut`, but `v` may be a `&mut` binding (method reborrow).
    IterMut,
    /// Any other expression: an iterator (after `IntoIterator::into_iter`), indexed when its
    /// type keeps random access (a slice's `iter()`, an integer range), lazy otherwise.
    Iter,
}

/// The domain of a loop.
pub(crate) struct Domain {
    pub(crate) kind: DomainKind,
    /// The range expression, the slice-like expression `v`, or the iterator expression.
    pub(crate) expr: Expr,
    pub(crate) enumerate: bool,
}

/// One `#[parfor]` loop.
pub(crate) struct Loop {
    pub(crate) args: Args,
    pub(crate) label: Option<syn::Lifetime>,
    pub(crate) pat: Pat,
    pub(crate) domain: Domain,
    /// The variable that sliced outputs are indexed by: a range loop's variable or the index
    /// of `.enumerate()`.
    pub(crate) index: Option<Ident>,
    pub(crate) body: syn::Block,
    /// The names the enclosing function binds as variables (parameters and `let`s): their
    /// reads in the body are checked to be `Sync` where they are written.
    pub(crate) fn_vars: std::collections::BTreeSet<String>,
}

fn strip_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Reads the domain of `for pat in expr`; `Err` names the supported forms.
pub(crate) fn parse_domain(expr: &Expr) -> syn::Result<Domain> {
    let e = strip_parens(expr);
    let unsupported = |what: &dyn ToTokens, hint: &str| {
        syn::Error::new_spanned(
            what.to_token_stream(),
            format!(
                "a `#[parfor]` loop cannot run over this domain{hint}; supported: {SUPPORTED_DOMAINS}"
            ),
        )
    };
    let slice_form = |e: &Expr, enumerate: bool| -> Option<Domain> {
        match strip_parens(e) {
            Expr::Reference(r) => Some(Domain {
                kind: if r.mutability.is_some() { DomainKind::SliceMut } else { DomainKind::Slice },
                expr: (*r.expr).clone(),
                enumerate,
            }),
            Expr::MethodCall(m)
                if m.args.is_empty() && m.turbofish.is_none() && m.method == "iter_mut" =>
            {
                Some(Domain { kind: DomainKind::IterMut, expr: (*m.receiver).clone(), enumerate })
            }
            _ => None,
        }
    };
    let iter_form = |e: &Expr, enumerate: bool| -> syn::Result<Domain> {
        match strip_parens(e) {
            Expr::Range(r) if r.start.is_none() || r.end.is_none() => {
                Err(unsupported(r, " (the range needs both ends)"))
            }
            e => Ok(slice_form(e, enumerate).unwrap_or_else(|| Domain {
                kind: DomainKind::Iter,
                expr: e.clone(),
                enumerate,
            })),
        }
    };
    match e {
        Expr::Range(r) => {
            if r.start.is_none() || r.end.is_none() {
                return Err(unsupported(r, " (the range needs both ends)"));
            }
            Ok(Domain { kind: DomainKind::Range, expr: e.clone(), enumerate: false })
        }
        Expr::MethodCall(m)
            if m.method == "enumerate" && m.args.is_empty() && m.turbofish.is_none() =>
        {
            iter_form(&m.receiver, true)
        }
        _ => iter_form(e, false),
    }
}

impl Loop {
    /// Builds the IR of `for_loop` (its `#[parfor]` attribute already removed).
    pub(crate) fn new(args: Args, for_loop: ExprForLoop) -> syn::Result<Loop> {
        let domain = parse_domain(&for_loop.expr)?;
        let pat = *for_loop.pat;
        let index = match (&domain.kind, domain.enumerate, &pat) {
            (DomainKind::Range, _, Pat::Ident(p)) if p.subpat.is_none() => {
                check_index_binding(p)?;
                Some(p.ident.clone())
            }
            (DomainKind::Range, _, Pat::Wild(_)) => None,
            (DomainKind::Range, _, other) => {
                return Err(syn::Error::new_spanned(
                    other,
                    "the variable of a range loop must be a plain identifier such as `i`",
                ));
            }
            (_, true, Pat::Tuple(t)) => match t.elems.first() {
                Some(Pat::Ident(p)) if p.subpat.is_none() => {
                    check_index_binding(p)?;
                    Some(p.ident.clone())
                }
                _ => None,
            },
            _ => None,
        };
        Ok(Loop {
            args,
            label: for_loop.label.map(|l| l.name),
            pat,
            domain,
            index,
            body: for_loop.body,
            fn_vars: Default::default(),
        })
    }
}

/// The loop's index variable is bound once per iteration and never changes: each iteration
/// owns the elements of the sliced outputs at its index.
fn check_index_binding(p: &syn::PatIdent) -> syn::Result<()> {
    let what = match (&p.by_ref, &p.mutability) {
        (None, None) => return Ok(()),
        (Some(_), Some(_)) => "`ref mut`",
        (Some(_), None) => "`ref`",
        (None, Some(_)) => "`mut`",
    };
    let tokens = match (&p.by_ref, &p.mutability) {
        (Some(r), Some(m)) => quote::quote!(#r #m),
        (Some(r), None) => r.to_token_stream(),
        (None, Some(m)) => m.to_token_stream(),
        (None, None) => unreachable!(),
    };
    Err(syn::Error::new_spanned(
        tokens,
        format!(
            "the loop variable `{i}` of a `#[parfor]` loop cannot be declared {what}: each \
             iteration owns the elements at its index, so the index never changes; copy it \
             into a temporary (`let mut j = {i};`) to compute with it",
            i = p.ident
        ),
    ))
}

/// How a reduction variable is combined; one per variable.
#[derive(Clone, Debug)]
pub(crate) enum RedOp {
    /// `x += e`, `x = x + e`, `x = e + x` (and `*`, `|`, `&`, `^`); the operator's name.
    Bin(&'static str),
    /// `x -= e` or `x = x - e`: the subtracted terms are summed, then subtracted.
    Sub,
    /// `x = x.max(e)` / `x = x.min(e)`.
    Method(Ident),
    /// `x = f(x, e)` (or `f(e, x)` when `swapped`): `max`, `min` or a declared `reduce(x = f)`.
    Call { func: TokenStream, swapped: bool },
    /// `x.push(e)` / `x.extend(e)`: concatenation in iteration order.
    Concat,
}

impl RedOp {
    /// How the operator reads in messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            RedOp::Bin(op) => format!("`{op}`"),
            RedOp::Sub => "`-`".into(),
            RedOp::Method(m) => format!("`.{m}(..)`"),
            RedOp::Call { func, swapped: false } => format!("`{}(x, ..)`", tidy(func)),
            RedOp::Call { func, swapped: true } => format!("`{}(.., x)`", tidy(func)),
            RedOp::Concat => "`push`/`extend`".into(),
        }
    }

    /// Whether two sites combine the same way.
    pub(crate) fn same(&self, other: &RedOp) -> bool {
        match (self, other) {
            (RedOp::Bin(a), RedOp::Bin(b)) => a == b,
            (RedOp::Sub, RedOp::Sub) | (RedOp::Concat, RedOp::Concat) => true,
            (RedOp::Method(a), RedOp::Method(b)) => a == b,
            (RedOp::Call { func: a, swapped: x }, RedOp::Call { func: b, swapped: y }) => {
                x == y && a.to_string() == b.to_string()
            }
            _ => false,
        }
    }
}

/// A path's tokens as written (`std :: cmp :: max` → `std::cmp::max`).
pub(crate) fn tidy(t: &TokenStream) -> String {
    t.to_string().replace(' ', "")
}

/// A reduction variable.
pub(crate) struct Reduction {
    /// The variable, as written at its first reduction.
    pub(crate) ident: Ident,
    pub(crate) op: RedOp,
    /// Position of its accumulator in the block state.
    pub(crate) slot: usize,
    /// An array reduction (`hist[k] += v`): the block state holds a partial array.
    pub(crate) array: bool,
    /// A two-index array reduction (`grid[r][c] += w`): a partial array per row.
    pub(crate) rows: bool,
}

/// A sliced output.
pub(crate) struct SlicedVar {
    pub(crate) ident: Ident,
}

/// A use of an outer variable that matters for validation.
pub(crate) struct Use {
    pub(crate) name: String,
    pub(crate) span: Span,
    pub(crate) kind: UseKind,
}

/// See [`Use`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UseKind {
    /// The variable itself (not as a reduction's target, not indexed).
    Read,
    /// `v[e]` where `e` is the loop's index variable.
    IndexOk,
    /// `v[e]` with any other `e` (the span is `e`'s).
    IndexOther,
    /// Named in the tokens of a macro parfor cannot parse.
    Macro,
}

/// A method call that changes a broadcast variable through `&self` (a lock, an atomic, a
/// cell, a channel): fine on threads, lost in fork workers.
pub(crate) struct Interior {
    /// The variable the call is rooted in.
    pub(crate) var: String,
    /// The call as written, for messages (`hits.fetch_add(..)`).
    pub(crate) call: String,
    pub(crate) span: Span,
}

/// What the classification found in one loop body.
#[derive(Default)]
pub(crate) struct Usage {
    pub(crate) reductions: BTreeMap<String, Reduction>,
    pub(crate) sliced: BTreeMap<String, SlicedVar>,
    pub(crate) uses: Vec<Use>,
    /// Calls that change broadcast variables through `&self`.
    pub(crate) interior: Vec<Interior>,
    /// The names of items declared in the body.
    pub(crate) items: Vec<Ident>,
}
