//! The walk of a loop body that both passes share, so that they agree on what every name
//! means: [`Walk`] keeps the lexical scopes (`let`, closure parameters, `match` arms, `if let`
//! / `while let`, nested `for` patterns), the loops and labels around each point, and how each
//! expression is used ([`Place`]); a [`Pass`] decides what to do at each expression.
//!
//! The walk stops at nested items (their names are reported to the pass); inside closures and
//! async blocks `return`, `?`, `.await`, `break` and `continue` belong to the closure. The
//! arguments of well-known macros (`println!`, `format!`, `assert!`, ...) are parsed and walked
//! as expressions, `{name}` captures in their format strings included; any other macro is
//! handed to the pass as opaque tokens.

use crate::parfor::ast::Loop;
use crate::parfor::syntax::{
    bindings, cond_bindings, format_captures, guards_mut, is_assign_op, is_expr_macro, path_ident,
};
use quote::ToTokens;
use std::collections::BTreeSet;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, Token};

/// How an expression is used: read, written (assigned, compound-assigned or borrowed with
/// `&mut`, directly or through fields, indexing and dereferences), or the receiver of a method
/// call (which may borrow it either way).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Place {
    #[default]
    Read,
    Write,
    Receiver,
}

/// Where a `continue` goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Continue {
    /// Ends the current iteration of the `#[parfor]` loop.
    EndsIteration,
    /// Continues a loop inside the body.
    Inner,
    /// Names a loop outside the `#[parfor]` loop.
    Outside,
}

/// What is in scope at a point of the body.
pub(crate) struct Scope {
    /// `frames[0]` holds the loop pattern's bindings; later frames, the body's own.
    frames: Vec<BTreeSet<String>>,
    index: Option<String>,
    own_label: Option<String>,
    loop_depth: usize,
    labels: Vec<String>,
    closure_depth: usize,
}

impl Scope {
    fn new(lp: &Loop) -> Scope {
        let mut frame = bindings(&lp.pat);
        // Per-worker variables are bound in the body like the loop pattern.
        frame.extend(lp.args.init.iter().map(|d| d.var.to_string()));
        Scope {
            frames: vec![frame],
            index: lp.index.as_ref().map(ToString::to_string),
            own_label: lp.label.as_ref().map(|l| l.ident.to_string()),
            loop_depth: 0,
            labels: Vec::new(),
            closure_depth: 0,
        }
    }

    /// Whether `name` is bound inside the loop (the loop pattern or the body).
    pub(crate) fn is_local(&self, name: &str) -> bool {
        self.frames.iter().any(|s| s.contains(name))
    }

    /// The variable `e` names, when it is a variable from outside the loop.
    pub(crate) fn outer<'e>(&self, e: &'e Expr) -> Option<&'e Ident> {
        path_ident(e).filter(|id| !self.is_local(&id.to_string()))
    }

    /// Whether `e` is the loop's index variable, not shadowed by a binding of the body.
    pub(crate) fn is_index(&self, e: &Expr) -> bool {
        path_ident(e).is_some_and(|id| self.is_index_name(&id.to_string()))
    }

    /// Whether `name` here means the loop's index variable.
    pub(crate) fn is_index_name(&self, name: &str) -> bool {
        self.index.as_deref() == Some(name)
            && self.frames[0].contains(name)
            && !self.frames[1..].iter().any(|s| s.contains(name))
    }

    /// Whether the point is inside a closure or async block of the body.
    pub(crate) fn in_closure(&self) -> bool {
        self.closure_depth > 0
    }

    /// Whether `break` (with `label`) stays inside the body.
    pub(crate) fn break_stays(&self, label: Option<&syn::Lifetime>) -> bool {
        match label {
            Some(l) => self.labels.contains(&l.ident.to_string()),
            None => self.loop_depth > 0,
        }
    }

    /// Where `continue` (with `label`) goes.
    pub(crate) fn continue_target(&self, label: Option<&syn::Lifetime>) -> Continue {
        match label {
            None if self.loop_depth == 0 => Continue::EndsIteration,
            None => Continue::Inner,
            Some(l) => {
                let name = l.ident.to_string();
                if self.labels.contains(&name) {
                    Continue::Inner
                } else if self.own_label.as_deref() == Some(name.as_str()) {
                    Continue::EndsIteration
                } else {
                    Continue::Outside
                }
            }
        }
    }
}

/// What a pass does at the points of the walk. Every hook has a default that only walks on.
pub(crate) trait Pass: Sized {
    /// Whether the parsed arguments of well-known macros are written back (the rewrite).
    const REWRITES: bool;

    /// `e`, used as `place`. The default walks its children ([`Walk::children`]).
    fn expr(w: &mut Walk<Self>, e: &mut Expr, place: Place) {
        w.children(e, place);
    }

    /// A variable named in a format string (`println!("{x}")`) that is not bound in the loop.
    fn captured(_w: &mut Walk<Self>, _id: &Ident) {}

    /// A macro call whose arguments are not expressions the walk understands.
    fn opaque_macro(_w: &mut Walk<Self>, _mac: &syn::Macro) {}

    /// An item declared in the body; the walk does not enter it.
    fn item(_w: &mut Walk<Self>, _item: &syn::Item) {}
}

/// Walks `lp`'s body with `pass` (which may rewrite it in place) and returns the pass.
pub(crate) fn walk<P: Pass>(lp: &mut Loop, pass: P) -> P {
    let mut body = std::mem::replace(&mut lp.body, syn::parse_quote!({}));
    let pass = Walk::new(lp, pass).run(&mut body);
    lp.body = body;
    pass
}

/// The walk of one loop body with pass `P`.
pub(crate) struct Walk<P> {
    pub(crate) scope: Scope,
    pub(crate) pass: P,
}

impl<P: Pass> Walk<P> {
    pub(crate) fn new(lp: &Loop, pass: P) -> Walk<P> {
        Walk { scope: Scope::new(lp), pass }
    }

    /// Walks `body`, returning the pass.
    pub(crate) fn run(mut self, body: &mut syn::Block) -> P {
        self.visit_block_mut(body);
        self.pass
    }

    /// Hands `e`, used as `place`, to the pass.
    pub(crate) fn expr(&mut self, e: &mut Expr, place: Place) {
        P::expr(self, e, place);
    }

    fn with_scope<R>(&mut self, names: BTreeSet<String>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scope.frames.push(names);
        let r = f(self);
        self.scope.frames.pop();
        r
    }

    fn in_loop<R>(&mut self, label: Option<&syn::Label>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scope.loop_depth += 1;
        if let Some(l) = label {
            self.scope.labels.push(l.name.ident.to_string());
        }
        let r = f(self);
        if label.is_some() {
            self.scope.labels.pop();
        }
        self.scope.loop_depth -= 1;
        r
    }

    fn in_closure<R>(&mut self, names: BTreeSet<String>, f: impl FnOnce(&mut Self) -> R) -> R {
        let depth = std::mem::replace(&mut self.scope.loop_depth, 0);
        let labels = std::mem::take(&mut self.scope.labels);
        self.scope.closure_depth += 1;
        let r = self.with_scope(names, f);
        self.scope.closure_depth -= 1;
        self.scope.labels = labels;
        self.scope.loop_depth = depth;
        r
    }

    /// Walks the children of `e` (used as `place`) in their scopes, each with how it is used.
    pub(crate) fn children(&mut self, e: &mut Expr, place: Place) {
        match e {
            Expr::Closure(c) => {
                let mut names = BTreeSet::new();
                for p in &c.inputs {
                    names.extend(bindings(p));
                }
                self.in_closure(names, |w| w.expr(&mut c.body, Place::Read));
            }
            Expr::Async(a) => {
                self.in_closure(BTreeSet::new(), |w| w.visit_block_mut(&mut a.block));
            }
            Expr::ForLoop(f) => {
                self.expr(&mut f.expr, Place::Read);
                let names = bindings(&f.pat);
                let label = f.label.clone();
                self.in_loop(label.as_ref(), |w| {
                    w.with_scope(names, |w| w.visit_block_mut(&mut f.body));
                });
            }
            Expr::While(wh) => {
                self.expr(&mut wh.cond, Place::Read);
                let names = cond_bindings(&wh.cond);
                let label = wh.label.clone();
                self.in_loop(label.as_ref(), |w| {
                    w.with_scope(names, |w| w.visit_block_mut(&mut wh.body));
                });
            }
            Expr::Loop(l) => {
                let label = l.label.clone();
                self.in_loop(label.as_ref(), |w| w.visit_block_mut(&mut l.body));
            }
            Expr::Block(b) if b.label.is_some() => {
                // A labeled block is a `break` target but not a loop.
                let label = b.label.as_ref().map(|l| l.name.ident.to_string());
                self.scope.labels.extend(label.clone());
                self.visit_block_mut(&mut b.block);
                if label.is_some() {
                    self.scope.labels.pop();
                }
            }
            Expr::If(i) => {
                self.expr(&mut i.cond, Place::Read);
                let names = cond_bindings(&i.cond);
                self.with_scope(names, |w| w.visit_block_mut(&mut i.then_branch));
                if let Some((_, els)) = &mut i.else_branch {
                    self.expr(els, Place::Read);
                }
            }
            Expr::Let(l) => self.expr(&mut l.expr, Place::Read),
            Expr::Match(m) => {
                self.expr(&mut m.expr, Place::Read);
                for arm in &mut m.arms {
                    let names = bindings(&arm.pat);
                    self.with_scope(names, |w| {
                        for g in guards_mut(&mut arm.pat) {
                            w.expr(g, Place::Read);
                        }
                        w.expr(&mut arm.body, Place::Read);
                    });
                }
            }
            Expr::Index(ix) => {
                self.expr(&mut ix.expr, place);
                self.expr(&mut ix.index, Place::Read);
            }
            Expr::Field(f) => self.expr(&mut f.base, place),
            Expr::Paren(p) => self.expr(&mut p.expr, place),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => self.expr(&mut u.expr, place),
            Expr::Reference(r) => {
                let inner = if r.mutability.is_some() { Place::Write } else { Place::Read };
                self.expr(&mut r.expr, inner);
            }
            Expr::MethodCall(m) => {
                self.expr(&mut m.receiver, Place::Receiver);
                for a in &mut m.args {
                    self.expr(a, Place::Read);
                }
            }
            Expr::Assign(a) => {
                self.expr(&mut a.left, Place::Write);
                self.expr(&mut a.right, Place::Read);
            }
            Expr::Binary(b) if is_assign_op(&b.op) => {
                self.expr(&mut b.left, Place::Write);
                self.expr(&mut b.right, Place::Read);
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }
}

impl<P: Pass> VisitMut for Walk<P> {
    fn visit_item_mut(&mut self, item: &mut syn::Item) {
        P::item(self, item);
    }

    fn visit_block_mut(&mut self, b: &mut syn::Block) {
        self.with_scope(BTreeSet::new(), |w| visit_mut::visit_block_mut(w, b));
    }

    fn visit_local_mut(&mut self, l: &mut syn::Local) {
        if let Some(init) = &mut l.init {
            self.expr(&mut init.expr, Place::Read);
            if let Some((_, diverge)) = &mut init.diverge {
                self.expr(diverge, Place::Read);
            }
        }
        let names = bindings(&l.pat);
        if let Some(scope) = self.scope.frames.last_mut() {
            scope.extend(names);
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        if is_expr_macro(mac)
            && let Ok(mut args) =
                Punctuated::<Expr, Token![,]>::parse_terminated.parse2(mac.tokens.clone())
        {
            for arg in &args {
                if let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = arg {
                    for cap in format_captures(&s.value()) {
                        if !self.scope.is_local(&cap) {
                            P::captured(self, &Ident::new(&cap, s.span()));
                        }
                    }
                }
            }
            for arg in args.iter_mut() {
                self.expr(arg, Place::Read);
            }
            if P::REWRITES {
                mac.tokens = args.to_token_stream();
            }
            return;
        }
        P::opaque_macro(self, mac);
    }

    /// Children that [`Walk::children`] leaves to syn's traversal are read.
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        P::expr(self, e, Place::Read);
    }
}
