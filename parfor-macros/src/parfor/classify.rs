//! The analysis pass: MATLAB-style classification of the variables a loop body touches, on
//! the shared [`Walk`]. It only records: what every outer variable is (reduction, sliced
//! output, broadcast, and which broadcasts are changed through `&self`) goes into [`Usage`],
//! and every construct a parallel loop cannot have is reported straight into the error
//! context. It never changes the body; [`crate::parfor::rewrite`] does, after this pass found
//! no mistake.

use crate::ctxt::Ctxt;
use crate::parfor::ast::{Interior, Loop, RedOp, Reduction, SlicedVar, Usage, Use, UseKind, tidy};
use crate::parfor::is_parfor_attr;
use crate::parfor::scope::{Continue, Pass, Place, Walk, walk};
use crate::parfor::syntax::{
    MUTATING_METHODS, Root, array_indices_mut, array_place, array_reduction_form, expr_attrs_mut,
    is_assign_op, is_concat, is_interior_mutation, is_min_max, item_names, operand_mut, path_ident,
    reduction_form, root, strip_parens, strip_parens_mut,
};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use std::collections::BTreeMap;
use syn::spanned::Spanned;
use syn::{Expr, Ident};

/// The analysis pass; see the module docs.
struct Classify<'a> {
    cx: &'a Ctxt,
    usage: Usage,
    /// Declared `reduce(x = f)` functions, by variable.
    reducers: BTreeMap<String, TokenStream>,
}

/// Classifies the variables of `lp`'s body, reporting its mistakes into `cx`.
pub(crate) fn classify(cx: &Ctxt, lp: &mut Loop) -> Usage {
    let pass = Classify { cx, usage: Usage::default(), reducers: lp.args.reducers() };
    walk(lp, pass).usage
}

impl Classify<'_> {
    fn use_(&mut self, id: &Ident, span: Span, kind: UseKind) {
        self.usage.uses.push(Use { name: id.to_string(), span, kind });
    }

    fn mark_sliced(&mut self, id: &Ident) {
        self.usage.sliced.entry(id.to_string()).or_insert_with(|| SlicedVar { ident: id.clone() });
    }

    fn record_reduction(
        &mut self,
        id: &Ident,
        op: &RedOp,
        at: &dyn ToTokens,
        array: bool,
        rows: bool,
    ) {
        let name = id.to_string();
        let slot = self.usage.reductions.len();
        match self.usage.reductions.get(&name) {
            Some(r) if r.array && array && r.rows != rows => {
                let msg = format!(
                    "`{name}` is updated both with one index (`{name}[k] += e`) and with two \
                     (`{name}[r][c] += e`); an array reduction uses one form, so use a second \
                     variable"
                );
                self.cx.error_spanned_by(at.to_token_stream(), msg);
            }
            Some(r) if r.array != array => {
                let msg = format!(
                    "`{name}` is updated both as a whole (`{name} += e`) and element by element \
                     (`{name}[k] += e`); a reduction variable is one or the other, so use a \
                     second variable"
                );
                self.cx.error_spanned_by(at.to_token_stream(), msg);
            }
            Some(r) if !r.op.same(op) => {
                let msg = format!(
                    "reduction variable `{name}` is combined with {} here but with {} elsewhere \
                     in the loop; a reduction variable takes one operator, so use a second \
                     variable and combine both after the loop",
                    op.describe(),
                    r.op.describe()
                );
                self.cx.error_spanned_by(at.to_token_stream(), msg);
            }
            Some(_) => {}
            None => {
                let r = Reduction { ident: id.clone(), op: op.clone(), slot, array, rows };
                self.usage.reductions.insert(name, r);
            }
        }
    }

    fn not_a_reduction(&self, id: &Ident) {
        let name = id.to_string();
        let msg = if let Some(f) = self.reducers.get(&name) {
            format!(
                "`{name}` is declared `reduce({name} = {f})`, so the loop must update it as \
                 `{name} = {f}({name}, value)`",
                f = tidy(f)
            )
        } else {
            format!(
                "cannot assign to `{name}` inside a `#[parfor]` loop: iterations run in no \
                 fixed order, so its value would depend on the schedule; make it a reduction \
                 (`{name} += e`, `{name} = {name}.max(e)`, `{name}.push(e)`, or \
                 `#[parfor(reduce({name} = f))]` with `{name} = f({name}, e)`) or declare it \
                 inside the loop body with `let` (a temporary)"
            )
        };
        self.cx.error_spanned_by(id, msg);
    }

    fn write_through(&self, id: &Ident, place: &Expr) {
        let msg = format!(
            "cannot write to `{}` inside a `#[parfor]` loop: `{id}` is shared by all \
             iterations, which run in no fixed order; accumulate into a local reduction \
             variable (`let mut total = 0; ... total += e;`) and store it after the loop, or \
             write a sliced output `out[i] = e`",
            tidy(&place.to_token_stream())
        );
        self.cx.error_spanned_by(place, msg);
    }

    /// The identifiers of opaque tokens: outer variables count as read; the loop variable may
    /// not reach a macro, which could rebind or assign it.
    fn scan_opaque(w: &mut Walk<Self>, tokens: TokenStream, what: &str) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(id) => {
                    let name = id.to_string();
                    if w.scope.is_index_name(&name) {
                        let msg = format!(
                            "the loop variable `{name}` cannot be passed to {what} inside a \
                             `#[parfor]` loop: parfor cannot see what the macro does with it \
                             (it could rebind or change it, and each iteration must own the \
                             elements at `{name}`); bind a copy first (`let k = {name};`) and \
                             pass `k`, or use a function"
                        );
                        w.pass.cx.error_at(id.span(), msg);
                    } else if !w.scope.is_local(&name) {
                        w.pass.use_(&id, id.span(), UseKind::Macro);
                    }
                }
                TokenTree::Group(g) => Self::scan_opaque(w, g.stream(), what),
                _ => {}
            }
        }
    }

    /// `x = rhs`, `x op= rhs` and `out[i] = rhs`.
    fn assignment(w: &mut Walk<Self>, e: &mut Expr) {
        let left = match &*e {
            Expr::Assign(a) => &a.left,
            Expr::Binary(b) => &b.left,
            _ => unreachable!("called on assignments only"),
        };
        match root(left) {
            Root::Bare(id) if !w.scope.is_local(&id.to_string()) => {
                let id = id.clone();
                let name = id.to_string();
                let Some((red, which)) = reduction_form(&name, e, &w.pass.reducers) else {
                    match &*e {
                        Expr::Binary(b) if !w.pass.reducers.contains_key(&name) => {
                            let op = b.op.to_token_stream();
                            let msg = format!(
                                "`{op}` is not a reduction operator: `{name} {op} e` in a \
                                 `#[parfor]` loop would depend on the order of iterations; \
                                 reductions use `+=`, `-=`, `*=`, `|=`, `&=`, `^=`, `max`, \
                                 `min`, `push`, `extend` or `#[parfor(reduce({name} = f))]`"
                            );
                            w.pass.cx.error_spanned_by(b.op, msg);
                        }
                        _ => w.pass.not_a_reduction(&id),
                    }
                    match e {
                        Expr::Assign(a) => w.expr(&mut a.right, Place::Read),
                        Expr::Binary(b) => w.expr(&mut b.right, Place::Read),
                        _ => {}
                    }
                    return;
                };
                let at: TokenStream = match &*e {
                    Expr::Assign(a) => a.eq_token.to_token_stream(),
                    Expr::Binary(b) => b.op.to_token_stream(),
                    _ => TokenStream::new(),
                };
                w.pass.record_reduction(&id, &red, &at, false, false);
                let rhs = match e {
                    Expr::Assign(a) => &mut a.right,
                    Expr::Binary(b) => &mut b.right,
                    _ => unreachable!(),
                };
                w.expr(operand_mut(rhs, which), Place::Read);
            }
            Root::Indexed(id) if !w.scope.is_local(&id.to_string()) => {
                let id = id.clone();
                if !Self::array_reduction(w, e, &id) {
                    w.children(e, Place::Read);
                }
            }
            Root::Through(id) | Root::Bare(id) if !w.scope.is_local(&id.to_string()) => {
                let (id, place) = (id.clone(), left.clone());
                w.pass.write_through(&id, &place);
                w.children(e, Place::Read);
            }
            _ => w.children(e, Place::Read),
        }
    }

    /// `hist[k] op= v` (and `hist[k] = hist[k].max(v)`, ...) with `k` not the loop variable,
    /// or `grid[r][c] op= v` with `r` not the loop variable: an array reduction. Walks the
    /// indices and the contribution; `false` when `e` is not one.
    fn array_reduction(w: &mut Walk<Self>, e: &mut Expr, id: &Ident) -> bool {
        let left = match &*e {
            Expr::Assign(a) => &a.left,
            Expr::Binary(b) => &b.left,
            _ => return false,
        };
        let Some((var, indices)) = array_place(left) else {
            return Self::deep_array_reduction(w, e, id);
        };
        // The first index picks what an iteration owns when it is the loop variable (a sliced
        // output `out[i]`, `grid[i][j]`).
        if var != id || w.scope.is_index(indices[0]) {
            return false;
        }
        let rows = indices.len() == 2;
        let Some((red, which)) = array_reduction_form(strip_parens(left), e) else {
            return false;
        };
        if matches!(red, RedOp::Concat | RedOp::Call { .. })
            && !matches!(&red, RedOp::Call { func, .. } if is_min_max(func))
        {
            return false;
        }
        let at: TokenStream = match &*e {
            Expr::Assign(a) => a.eq_token.to_token_stream(),
            Expr::Binary(b) => b.op.to_token_stream(),
            _ => TokenStream::new(),
        };
        w.pass.record_reduction(id, &red, &at, true, rows);
        let (left, rhs) = match e {
            Expr::Assign(a) => (&mut a.left, &mut a.right),
            Expr::Binary(b) => (&mut b.left, &mut b.right),
            _ => unreachable!(),
        };
        for index in array_indices_mut(left) {
            w.expr(index, Place::Read);
        }
        w.expr(operand_mut(rhs, which), Place::Read);
        true
    }

    /// `cube[a][b][c] op= v` with `a` not the loop variable: a reduction into an element
    /// three or more indices deep, which array reductions do not take. Reports it (once, at
    /// the place) and walks the indices and the value; `false` when `e` is not one.
    fn deep_array_reduction(w: &mut Walk<Self>, e: &mut Expr, id: &Ident) -> bool {
        let left = match &*e {
            Expr::Assign(a) => &a.left,
            Expr::Binary(b) => &b.left,
            _ => return false,
        };
        let mut place = strip_parens(left);
        let mut depth = 0;
        while let Expr::Index(ix) = place {
            depth += 1;
            if path_ident(&ix.expr) == Some(id) && w.scope.is_index(&ix.index) {
                return false;
            }
            place = strip_parens(&ix.expr);
        }
        if depth < 3 || path_ident(place) != Some(id) {
            return false;
        }
        let Some((_, which)) = array_reduction_form(strip_parens(left), e) else {
            return false;
        };
        let msg = format!(
            "`{id}` is updated as an array reduction with {depth} indices, but array \
             reductions take one or two (`{id}[k] += v`, `{id}[row][col] += v`); index a flat \
             array by one computed index instead (`{id}[(x * ny + y) * nz + z] += v`), or \
             rows of one (`{id}[x * ny + y][z] += v`), and reshape after the loop"
        );
        w.pass.cx.error_spanned_by(left, msg);
        let (left, rhs) = match e {
            Expr::Assign(a) => (&mut a.left, &mut a.right),
            Expr::Binary(b) => (&mut b.left, &mut b.right),
            _ => unreachable!(),
        };
        let mut place = strip_parens_mut(left);
        while let Expr::Index(ix) = place {
            w.expr(&mut ix.index, Place::Read);
            place = strip_parens_mut(&mut ix.expr);
        }
        w.expr(operand_mut(rhs, which), Place::Read);
        true
    }

    fn method_call(w: &mut Walk<Self>, e: &mut Expr) {
        let Expr::MethodCall(m) = &*e else { unreachable!() };
        let method = m.method.to_string();
        match root(&m.receiver) {
            Root::Bare(id) if !w.scope.is_local(&id.to_string()) => {
                let id = id.clone();
                if is_concat(&method, m.args.len()) {
                    if w.pass.reducers.contains_key(&id.to_string()) {
                        w.pass.not_a_reduction(&id);
                    }
                    let m_ident = m.method.clone();
                    w.pass.record_reduction(&id, &RedOp::Concat, &m_ident, false, false);
                    let Expr::MethodCall(m) = e else { unreachable!() };
                    w.expr(&mut m.args[0], Place::Read);
                    return;
                }
                if MUTATING_METHODS.contains(&method.as_str()) {
                    let msg = format!(
                        "`{id}.{method}(..)` changes `{id}`, which all iterations of the \
                         `#[parfor]` loop share and run in no fixed order; the only updates of \
                         an outer variable a loop may make are reductions such as \
                         `{id}.push(e)` or `{id}.extend(e)`; otherwise work on a copy made in \
                         the body, or change `{id}` after the loop"
                    );
                    w.pass.cx.error_spanned_by(&m.method, msg);
                } else if is_interior_mutation(&method) {
                    w.pass.interior(&id, m);
                }
            }
            Root::Through(id)
                if !w.scope.is_local(&id.to_string()) && is_interior_mutation(&method) =>
            {
                let id = id.clone();
                w.pass.interior(&id, m);
            }
            Root::Indexed(id)
                if !w.scope.is_local(&id.to_string())
                    && (MUTATING_METHODS.contains(&method.as_str())
                        || is_concat(&method, m.args.len())
                        || method.ends_with("_mut")) =>
            {
                let id = id.clone();
                w.pass.mark_sliced(&id);
            }
            _ => {}
        }
        w.children(e, Place::Read);
    }

    fn interior(&mut self, id: &Ident, m: &syn::ExprMethodCall) {
        let call = format!("{}.{}(..)", tidy(&m.receiver.to_token_stream()), m.method);
        self.usage.interior.push(Interior { var: id.to_string(), call, span: m.method.span() });
    }
}

impl Pass for Classify<'_> {
    const REWRITES: bool = false;

    fn expr(w: &mut Walk<Self>, e: &mut Expr, place: Place) {
        if !matches!(e, Expr::ForLoop(_))
            && let Some(attrs) = expr_attrs_mut(e)
            && let Some(a) = attrs.iter().find(|a| is_parfor_attr(a))
        {
            w.pass.cx.error_spanned_by(a, "`#[parfor]` goes on a `for` loop");
        }
        match e {
            Expr::Path(_) => {
                if let Some(id) = w.scope.outer(e) {
                    let id = id.clone();
                    w.pass.use_(&id, id.span(), UseKind::Read);
                }
            }
            Expr::Assign(_) => Self::assignment(w, e),
            Expr::Binary(b) if is_assign_op(&b.op) => Self::assignment(w, e),
            Expr::MethodCall(_) => Self::method_call(w, e),
            Expr::Index(ix) if w.scope.outer(&ix.expr).is_some() => {
                let id = w.scope.outer(&ix.expr).cloned().expect("checked");
                let ok = w.scope.is_index(&ix.index);
                let kind = if ok { UseKind::IndexOk } else { UseKind::IndexOther };
                w.pass.use_(&id, ix.index.span(), kind);
                if place == Place::Write {
                    w.pass.mark_sliced(&id);
                }
                w.expr(&mut ix.index, Place::Read);
            }
            Expr::Reference(r) if r.mutability.is_some() => {
                if let Root::Bare(id) | Root::Through(id) = root(&r.expr)
                    && !w.scope.is_local(&id.to_string())
                {
                    let msg = format!(
                        "cannot borrow `{id}` mutably inside a `#[parfor]` loop: all \
                         iterations share it and run in no fixed order; update it through a \
                         reduction or a sliced output `{id}[i]`, or borrow a copy made in the \
                         body"
                    );
                    w.pass.cx.error_spanned_by(&*e, msg);
                }
                w.children(e, place);
            }
            Expr::Break(b) if !w.scope.in_closure() => {
                if !w.scope.break_stays(b.label.as_ref()) {
                    let what = match &b.label {
                        Some(l) => format!("`break {l}`"),
                        None => "`break`".to_owned(),
                    };
                    let msg = format!(
                        "{what} cannot leave a `#[parfor]` loop: all of its iterations run, in \
                         parallel; use `continue` to end this iteration early, or compute a \
                         flag with a reduction (`found |= cond;`) and act on it after the loop"
                    );
                    w.pass.cx.error_spanned_by(b.break_token, msg);
                }
                w.children(e, place);
            }
            Expr::Continue(c) if !w.scope.in_closure() => {
                if w.scope.continue_target(c.label.as_ref()) == Continue::Outside {
                    let l = c.label.as_ref().map(ToString::to_string).unwrap_or_default();
                    let msg = format!(
                        "`continue {l}` jumps to a loop outside the `#[parfor]` loop, whose \
                         iterations run independently, in parallel; use `continue` to end this \
                         iteration"
                    );
                    w.pass.cx.error_spanned_by(&*c, msg);
                }
            }
            Expr::Return(r) if !w.scope.in_closure() => {
                w.pass.cx.error_spanned_by(
                    r.return_token,
                    "`return` cannot leave the function from inside a `#[parfor]` loop, whose \
                     iterations run in parallel; use `continue` to end this iteration, or \
                     collect what you need with a reduction and return after the loop",
                );
                w.children(e, place);
            }
            Expr::Try(t) if !w.scope.in_closure() => {
                w.pass.cx.error_spanned_by(
                    t.question_token,
                    "the `?` operator cannot return from the function inside a `#[parfor]` \
                     loop; handle the error in the body (`match`, `unwrap_or`, `expect`), or \
                     collect the results with `results.push(r)` and check them after the loop",
                );
                w.children(e, place);
            }
            Expr::Await(a) if !w.scope.in_closure() => {
                let (dot, aw) = (a.dot_token, a.await_token);
                w.pass.cx.error_spanned_by(
                    quote::quote!(#dot #aw),
                    "`.await` cannot be used in a `#[parfor]` loop, whose body runs as a plain \
                     function on worker threads; await before or after the loop",
                );
                w.children(e, place);
            }
            _ => w.children(e, place),
        }
    }

    fn captured(w: &mut Walk<Self>, id: &Ident) {
        w.pass.use_(id, id.span(), UseKind::Read);
    }

    fn opaque_macro(w: &mut Walk<Self>, mac: &syn::Macro) {
        let name = mac.path.to_token_stream();
        let what = format!("the macro `{}!`", tidy(&name));
        Self::scan_opaque(w, mac.tokens.clone(), &what);
    }

    fn item(w: &mut Walk<Self>, item: &syn::Item) {
        if let syn::Item::Macro(m) = item {
            let what = match &m.ident {
                Some(id) => format!("the macro definition `{id}`"),
                None => format!("the macro `{}!`", tidy(&m.mac.path.to_token_stream())),
            };
            Self::scan_opaque(w, m.mac.tokens.clone(), &what);
            return;
        }
        match item_names(item) {
            Some(names) => {
                for id in names {
                    if w.scope.is_index_name(&id.to_string()) {
                        let msg = format!(
                            "this item is named `{id}` like the loop variable, which it \
                             would shadow in the body of the `#[parfor]` loop; rename it"
                        );
                        w.pass.cx.error_spanned_by(&id, msg);
                    } else {
                        w.pass.usage.items.push(id);
                    }
                }
            }
            None => w.pass.cx.error_spanned_by(
                item,
                "a glob import inside a `#[parfor]` loop body could shadow the loop variable \
                 or the variables the loop shares; import the names you need one by one, or \
                 put the `use` outside the loop",
            ),
        }
    }
}
