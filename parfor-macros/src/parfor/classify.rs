//! MATLAB-style classification of the variables a loop body touches, and the rewrite that
//! turns the body into the runtime's `fold` body.
//!
//! One walker serves both passes so that they agree on scoping: the first pass (on a copy of
//! the body) records what every outer variable is (reduction, sliced output, broadcast) and
//! every construct a parallel loop cannot have; the second pass, run only when the first
//! found no mistake, rewrites reductions, sliced outputs and `continue`.
//!
//! Scoping is lexical: `let`, closure parameters, `match` arms, `if let`/`while let` and
//! nested `for` patterns bind temporaries that shadow outer names. The walk stops at nested
//! items; inside closures and async blocks `return`, `?` and `.await` belong to the closure.
//! Macro bodies are treated conservatively: the arguments of well-known macros (`println!`,
//! `format!`, `assert!`, ...) are parsed as expressions (including `{name}` captures in format
//! strings), and every identifier in any other macro counts as a read.

use crate::parfor::ast::{Loop, RedOp, Reduction, SlicedVar, Usage, Use, UseKind, tidy};
use crate::parfor::{expand, is_parfor_attr};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use std::collections::{BTreeMap, BTreeSet};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{BinOp, Expr, Ident, Pat, Token};

/// Methods that take `&mut self` on common std types; calling one on an outer variable is an
/// order-dependent write. Anything else that needs `&mut` is caught by rustc, because the
/// loop body becomes an `Fn` closure.
pub(crate) const MUTATING_METHODS: &[&str] = &[
    "append",
    "clear",
    "dedup",
    "dedup_by",
    "dedup_by_key",
    "drain",
    "entry",
    "fill",
    "fill_with",
    "get_mut",
    "insert",
    "iter_mut",
    "pop",
    "pop_back",
    "pop_front",
    "push_back",
    "push_front",
    "push_str",
    "remove",
    "reserve",
    "resize",
    "retain",
    "reverse",
    "rotate_left",
    "rotate_right",
    "set",
    "shrink_to_fit",
    "sort",
    "sort_by",
    "sort_by_key",
    "sort_unstable",
    "sort_unstable_by",
    "sort_unstable_by_key",
    "split_off",
    "swap",
    "swap_remove",
    "take",
    "truncate",
    "replace",
    "as_mut",
    "borrow_mut",
    "last_mut",
    "first_mut",
];

/// Macros whose arguments are comma-separated expressions.
const EXPR_MACROS: &[&str] = &[
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "dbg",
    "eprint",
    "eprintln",
    "format",
    "format_args",
    "panic",
    "print",
    "println",
    "todo",
    "unimplemented",
    "unreachable",
    "vec",
    "write",
    "writeln",
];

/// What the rewrite pass needs: the names of the generated items.
pub(crate) struct Rewrite {
    /// The body closure's `&mut` state parameter.
    pub(crate) state: Ident,
    /// The `SliceOut` of every sliced output.
    pub(crate) sliced: BTreeMap<String, Ident>,
    pub(crate) krate: TokenStream,
}

/// Which operand of a reduction's right-hand side is the contribution.
#[derive(Clone, Copy)]
enum Which {
    Left,
    Right,
    Arg(usize),
}

/// Walks a loop body; see the module docs.
pub(crate) struct Walker<'a> {
    pub(crate) usage: Usage,
    rewrite: Option<&'a Rewrite>,
    /// Slots and operators of the reductions (rewrite pass).
    reductions: Option<&'a BTreeMap<String, Reduction>>,
    index: Option<String>,
    own_label: Option<String>,
    reducers: BTreeMap<String, TokenStream>,
    scopes: Vec<BTreeSet<String>>,
    loop_depth: usize,
    labels: Vec<String>,
    closure_depth: usize,
}

/// Classifies the variables of `lp`'s body.
pub(crate) fn classify(lp: &Loop) -> Usage {
    let mut w = Walker::new(lp, None, None);
    let mut body = lp.body.clone();
    w.walk_body(&mut body);
    w.usage
}

/// Rewrites `lp`'s body for the `fold` closure; only after [`classify`] found no mistake.
pub(crate) fn rewrite(
    lp: &Loop,
    rw: &Rewrite,
    reductions: &BTreeMap<String, Reduction>,
) -> syn::Block {
    let mut w = Walker::new(lp, Some(rw), Some(reductions));
    let mut body = lp.body.clone();
    w.walk_body(&mut body);
    body
}

/// The names `pat` binds.
pub(crate) fn bindings(pat: &Pat) -> BTreeSet<String> {
    struct B(BTreeSet<String>);
    impl<'ast> syn::visit::Visit<'ast> for B {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.insert(p.ident.to_string());
            syn::visit::visit_pat_ident(self, p);
        }
    }
    let mut b = B(BTreeSet::new());
    syn::visit::Visit::visit_pat(&mut b, pat);
    b.0
}

fn strip_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// The identifier of a plain one-segment path expression.
fn path_ident(e: &Expr) -> Option<&Ident> {
    match strip_parens(e) {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        _ => None,
    }
}

/// Where a place expression is rooted.
enum Root<'e> {
    /// The place is the variable itself.
    Bare(&'e Ident),
    /// The place goes through `v[e]` first.
    Indexed(&'e Ident),
    /// The place goes through a field or a dereference of `v` first.
    Through(&'e Ident),
    /// Not rooted in a variable (a call result, ...).
    None,
}

fn root(e: &Expr) -> Root<'_> {
    match strip_parens(e) {
        Expr::Path(_) => path_ident(e).map_or(Root::None, Root::Bare),
        Expr::Index(ix) => match root(&ix.expr) {
            Root::Bare(id) => Root::Indexed(id),
            other => other,
        },
        Expr::Field(f) => match root(&f.base) {
            Root::Bare(id) => Root::Through(id),
            other => other,
        },
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => match root(&u.expr) {
            Root::Bare(id) => Root::Through(id),
            other => other,
        },
        Expr::MethodCall(m)
            if m.method == "as_mut_slice" || m.method.to_string().ends_with("_mut") =>
        {
            match root(&m.receiver) {
                Root::Bare(id) => Root::Through(id),
                other => other,
            }
        }
        _ => Root::None,
    }
}

fn bin_op(op: &BinOp) -> Option<(&'static str, bool)> {
    // (operator, is it an assignment form)
    Some(match op {
        BinOp::Add(_) => ("+", false),
        BinOp::Sub(_) => ("-", false),
        BinOp::Mul(_) => ("*", false),
        BinOp::BitOr(_) => ("|", false),
        BinOp::BitAnd(_) => ("&", false),
        BinOp::BitXor(_) => ("^", false),
        BinOp::AddAssign(_) => ("+", true),
        BinOp::SubAssign(_) => ("-", true),
        BinOp::MulAssign(_) => ("*", true),
        BinOp::BitOrAssign(_) => ("|", true),
        BinOp::BitAndAssign(_) => ("&", true),
        BinOp::BitXorAssign(_) => ("^", true),
        _ => return None,
    })
}

fn is_assign_op(op: &BinOp) -> bool {
    matches!(
        op,
        BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_)
            | BinOp::RemAssign(_)
            | BinOp::BitXorAssign(_)
            | BinOp::BitAndAssign(_)
            | BinOp::BitOrAssign(_)
            | BinOp::ShlAssign(_)
            | BinOp::ShrAssign(_)
    )
}

fn red_op(op: &'static str) -> RedOp {
    if op == "-" { RedOp::Sub } else { RedOp::Bin(op) }
}

fn operand_mut(rhs: &mut Expr, which: Which) -> &mut Expr {
    let mut rhs = rhs;
    while let Expr::Paren(p) = rhs {
        rhs = &mut p.expr;
    }
    match (rhs, which) {
        (Expr::Binary(b), Which::Left) => &mut b.left,
        (Expr::Binary(b), Which::Right) => &mut b.right,
        (Expr::MethodCall(m), Which::Arg(i)) => &mut m.args[i],
        (Expr::Call(c), Which::Arg(i)) => &mut c.args[i],
        (other, _) => other,
    }
}

/// The `{name}` captures of a format string.
fn format_captures(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' {
            if chars.peek() == Some(&'{') {
                chars.next();
                continue;
            }
            let name: String =
                chars.clone().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') && name != "_" {
                out.push(name);
            }
        }
    }
    out
}

impl<'a> Walker<'a> {
    fn new(
        lp: &Loop,
        rewrite: Option<&'a Rewrite>,
        reductions: Option<&'a BTreeMap<String, Reduction>>,
    ) -> Walker<'a> {
        Walker {
            usage: Usage::default(),
            rewrite,
            reductions,
            index: lp.index.as_ref().map(ToString::to_string),
            own_label: lp.label.as_ref().map(|l| l.ident.to_string()),
            reducers: lp
                .args
                .reduce
                .iter()
                .map(|d| (d.var.to_string(), d.func.to_token_stream()))
                .collect(),
            scopes: vec![bindings(&lp.pat)],
            loop_depth: 0,
            labels: Vec::new(),
            closure_depth: 0,
        }
    }

    fn walk_body(&mut self, body: &mut syn::Block) {
        self.visit_block_mut(body);
    }

    fn error<T: ToTokens>(&mut self, tokens: T, msg: impl std::fmt::Display) {
        if self.rewrite.is_none() {
            self.usage.errors.push(syn::Error::new_spanned(tokens, msg));
        }
    }

    fn is_local(&self, name: &str) -> bool {
        self.scopes.iter().any(|s| s.contains(name))
    }

    /// The variable `e` names, when it is an outer (non-local) variable.
    fn outer<'e>(&self, e: &'e Expr) -> Option<&'e Ident> {
        path_ident(e).filter(|id| !self.is_local(&id.to_string()))
    }

    fn is_index_var(&self, e: &Expr) -> bool {
        let Some(id) = path_ident(e) else { return false };
        let name = id.to_string();
        self.index.as_deref() == Some(name.as_str())
            && self.scopes[0].contains(&name)
            && !self.scopes[1..].iter().any(|s| s.contains(&name))
    }

    fn use_(&mut self, id: &Ident, span: Span, kind: UseKind) {
        if self.rewrite.is_none() {
            self.usage.uses.push(Use { name: id.to_string(), span, kind });
        }
    }

    fn mark_sliced(&mut self, id: &Ident) {
        if self.rewrite.is_none() {
            self.usage
                .sliced
                .entry(id.to_string())
                .or_insert_with(|| SlicedVar { ident: id.clone() });
        }
    }

    fn record_reduction(&mut self, id: &Ident, op: &RedOp, at: &dyn ToTokens) {
        if self.rewrite.is_some() {
            return;
        }
        let name = id.to_string();
        let slot = self.usage.reductions.len();
        match self.usage.reductions.get(&name) {
            Some(r) if !r.op.same(op) => {
                let msg = format!(
                    "reduction variable `{name}` is combined with {} here but with {} elsewhere \
                     in the loop; a reduction variable takes one operator, so use a second \
                     variable and combine both after the loop",
                    op.describe(),
                    r.op.describe()
                );
                self.error(at.to_token_stream(), msg);
            }
            Some(_) => {}
            None => {
                self.usage
                    .reductions
                    .insert(name, Reduction { ident: id.clone(), op: op.clone(), slot });
            }
        }
    }

    fn reduction_form(&self, x: &str, rhs: &Expr) -> Option<(RedOp, Which)> {
        let is_x = |e: &Expr| path_ident(e).is_some_and(|id| id == x);
        let rhs = strip_parens(rhs);
        if let Some(func) = self.reducers.get(x) {
            if let Expr::Call(c) = rhs
                && c.args.len() == 2
                && c.func.to_token_stream().to_string() == func.to_string()
            {
                if is_x(&c.args[0]) {
                    return Some((
                        RedOp::Call { func: func.clone(), swapped: false },
                        Which::Arg(1),
                    ));
                }
                if is_x(&c.args[1]) {
                    return Some((
                        RedOp::Call { func: func.clone(), swapped: true },
                        Which::Arg(0),
                    ));
                }
            }
            return None;
        }
        match rhs {
            Expr::Binary(b) => {
                let (op, false) = bin_op(&b.op)? else { return None };
                if is_x(&b.left) {
                    Some((red_op(op), Which::Right))
                } else if is_x(&b.right) && op != "-" {
                    Some((red_op(op), Which::Left))
                } else {
                    None
                }
            }
            Expr::MethodCall(m)
                if (m.method == "max" || m.method == "min")
                    && m.args.len() == 1
                    && is_x(&m.receiver) =>
            {
                Some((RedOp::Method(m.method.clone()), Which::Arg(0)))
            }
            Expr::Call(c) if c.args.len() == 2 => {
                let Expr::Path(f) = &*c.func else { return None };
                let last = f.path.segments.last()?.ident.to_string();
                if last != "max" && last != "min" {
                    return None;
                }
                let func = c.func.to_token_stream();
                if is_x(&c.args[0]) {
                    Some((RedOp::Call { func, swapped: false }, Which::Arg(1)))
                } else if is_x(&c.args[1]) {
                    Some((RedOp::Call { func, swapped: true }, Which::Arg(0)))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn not_a_reduction(&mut self, id: &Ident) {
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
        self.error(id, msg);
    }

    fn write_through(&mut self, id: &Ident, place: &Expr) {
        let msg = format!(
            "cannot write to `{}` inside a `#[parfor]` loop: `{id}` is shared by all \
             iterations, which run in no fixed order; accumulate into a local reduction \
             variable (`let mut total = 0; ... total += e;`) and store it after the loop, or \
             write a sliced output `out[i] = e`",
            tidy(&place.to_token_stream())
        );
        self.error(place, msg);
    }

    /// `x = rhs`, `x op= rhs` and `out[i] = rhs`.
    fn visit_assignment(&mut self, e: &mut Expr) {
        let (left, op): (&Expr, Option<&BinOp>) = match &*e {
            Expr::Assign(a) => (&a.left, None),
            Expr::Binary(b) => (&b.left, Some(&b.op)),
            _ => unreachable!("called on assignments only"),
        };
        match root(left) {
            Root::Bare(id) if !self.is_local(&id.to_string()) => {
                let id = id.clone();
                let name = id.to_string();
                let form = match (op, &*e) {
                    (None, Expr::Assign(a)) => self.reduction_form(&name, &a.right),
                    (Some(op), _) if !self.reducers.contains_key(&name) => match bin_op(op) {
                        Some((o, true)) => Some((red_op(o), Which::Right)),
                        _ => None,
                    },
                    _ => None,
                };
                let Some((red, which)) = form else {
                    if let Some(op) = op.filter(|_| !self.reducers.contains_key(&name)) {
                        let msg = format!(
                            "`{}` is not a reduction operator: `{name} {} e` in a `#[parfor]` \
                             loop would depend on the order of iterations; reductions use \
                             `+=`, `-=`, `*=`, `|=`, `&=`, `^=`, `max`, `min`, `push`, `extend` \
                             or `#[parfor(reduce({name} = f))]`",
                            op.to_token_stream(),
                            op.to_token_stream()
                        );
                        self.error(op, msg);
                    } else {
                        self.not_a_reduction(&id);
                    }
                    match e {
                        Expr::Assign(a) => self.visit_expr_mut(&mut a.right),
                        Expr::Binary(b) => self.visit_expr_mut(&mut b.right),
                        _ => {}
                    }
                    return;
                };
                let at: TokenStream = match &*e {
                    Expr::Assign(a) => a.eq_token.to_token_stream(),
                    Expr::Binary(b) => b.op.to_token_stream(),
                    _ => TokenStream::new(),
                };
                self.record_reduction(&id, &red, &at);
                let op_span = at.clone().into_iter().next().map_or(id.span(), |t| t.span());
                let contribution: &mut Expr = match e {
                    Expr::Assign(a) => operand_mut(&mut a.right, which),
                    Expr::Binary(b) => &mut b.right,
                    _ => unreachable!(),
                };
                self.visit_expr_mut(contribution);
                if let (Some(rw), Some(reds)) = (self.rewrite, self.reductions)
                    && let Some(r) = reds.get(&name)
                {
                    let value = strip_parens(contribution).to_token_stream();
                    let tokens = expand::contribution(rw, r, op_span, value);
                    *e = Expr::Verbatim(tokens);
                }
            }
            Root::Indexed(id) if !self.is_local(&id.to_string()) => {
                let id = id.clone();
                self.mark_sliced(&id);
                visit_mut::visit_expr_mut(self, e);
            }
            Root::Through(id) | Root::Bare(id) if !self.is_local(&id.to_string()) => {
                let (id, place) = (id.clone(), left.clone());
                self.write_through(&id, &place);
                visit_mut::visit_expr_mut(self, e);
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_method_call(&mut self, e: &mut Expr) {
        let Expr::MethodCall(m) = &*e else { unreachable!() };
        let method = m.method.to_string();
        match root(&m.receiver) {
            Root::Bare(id) if !self.is_local(&id.to_string()) => {
                let id = id.clone();
                if (method == "push" || method == "extend") && m.args.len() == 1 {
                    let name = id.to_string();
                    if self.reducers.contains_key(&name) {
                        self.not_a_reduction(&id);
                    }
                    let m_ident = m.method.clone();
                    self.record_reduction(&id, &RedOp::Concat, &m_ident);
                    let Expr::MethodCall(m) = e else { unreachable!() };
                    self.visit_expr_mut(&mut m.args[0]);
                    if let (Some(rw), Some(reds)) = (self.rewrite, self.reductions)
                        && let Some(r) = reds.get(&name)
                    {
                        let tokens = expand::concat(rw, r, &m_ident, m.args[0].to_token_stream());
                        *e = Expr::Verbatim(tokens);
                    }
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
                    self.error(&m.method, msg);
                }
            }
            Root::Indexed(id)
                if !self.is_local(&id.to_string())
                    && (MUTATING_METHODS.contains(&method.as_str())
                        || method == "push"
                        || method == "extend"
                        || method.ends_with("_mut")) =>
            {
                let id = id.clone();
                self.mark_sliced(&id);
            }
            _ => {}
        }
        visit_mut::visit_expr_mut(self, e);
    }

    fn in_closure(&self) -> bool {
        self.closure_depth > 0
    }

    fn with_scope<R>(&mut self, names: BTreeSet<String>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.scopes.push(names);
        let r = f(self);
        self.scopes.pop();
        r
    }

    fn in_loop<R>(&mut self, label: Option<&syn::Label>, f: impl FnOnce(&mut Self) -> R) -> R {
        self.loop_depth += 1;
        if let Some(l) = label {
            self.labels.push(l.name.ident.to_string());
        }
        let r = f(self);
        if label.is_some() {
            self.labels.pop();
        }
        self.loop_depth -= 1;
        r
    }

    fn in_closure_scope<R>(
        &mut self,
        names: BTreeSet<String>,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        let depth = std::mem::replace(&mut self.loop_depth, 0);
        let labels = std::mem::take(&mut self.labels);
        self.closure_depth += 1;
        let r = self.with_scope(names, f);
        self.closure_depth -= 1;
        self.labels = labels;
        self.loop_depth = depth;
        r
    }

    fn cond_bindings(cond: &Expr) -> BTreeSet<String> {
        match cond {
            Expr::Let(l) => bindings(&l.pat),
            Expr::Binary(b) if matches!(b.op, BinOp::And(_)) => {
                let mut s = Self::cond_bindings(&b.left);
                s.extend(Self::cond_bindings(&b.right));
                s
            }
            Expr::Paren(p) => Self::cond_bindings(&p.expr),
            _ => BTreeSet::new(),
        }
    }

    fn scan_opaque(&mut self, tokens: TokenStream) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(id) => {
                    let name = id.to_string();
                    if !self.is_local(&name) {
                        self.use_(&id, id.span(), UseKind::Read);
                    }
                }
                TokenTree::Group(g) => self.scan_opaque(g.stream()),
                _ => {}
            }
        }
    }
}

impl VisitMut for Walker<'_> {
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_block_mut(&mut self, b: &mut syn::Block) {
        self.with_scope(BTreeSet::new(), |w| visit_mut::visit_block_mut(w, b));
    }

    fn visit_local_mut(&mut self, l: &mut syn::Local) {
        if let Some(a) = l.attrs.iter().find(|a| is_parfor_attr(a)) {
            let a = a.clone();
            self.error(a, "`#[parfor]` goes on a `for` loop");
        }
        l.attrs.retain(|a| !is_parfor_attr(a));
        if let Some(init) = &mut l.init {
            self.visit_expr_mut(&mut init.expr);
            if let Some((_, diverge)) = &mut init.diverge {
                self.visit_expr_mut(diverge);
            }
        }
        let names = bindings(&l.pat);
        if let Some(scope) = self.scopes.last_mut() {
            scope.extend(names);
        }
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        let name = mac.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
        if EXPR_MACROS.contains(&name.as_str())
            && let Ok(mut args) =
                Punctuated::<Expr, Token![,]>::parse_terminated.parse2(mac.tokens.clone())
        {
            for arg in &args {
                if let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = arg {
                    for cap in format_captures(&s.value()) {
                        if !self.is_local(&cap) {
                            let id = Ident::new(&cap, s.span());
                            self.use_(&id, s.span(), UseKind::Read);
                        }
                    }
                }
            }
            for arg in args.iter_mut() {
                self.visit_expr_mut(arg);
            }
            if self.rewrite.is_some() {
                mac.tokens = args.to_token_stream();
            }
            return;
        }
        self.scan_opaque(mac.tokens.clone());
    }

    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Path(_) => {
                if let Some(id) = self.outer(e) {
                    let id = id.clone();
                    self.use_(&id, id.span(), UseKind::Read);
                }
            }
            Expr::Assign(_) => self.visit_assignment(e),
            Expr::Binary(b) if is_assign_op(&b.op) => self.visit_assignment(e),
            Expr::MethodCall(_) => self.visit_method_call(e),
            Expr::Index(ix) => {
                let Some(id) = self.outer(&ix.expr).cloned() else {
                    return visit_mut::visit_expr_mut(self, e);
                };
                let ok = self.is_index_var(&ix.index);
                let span = ix.index.span();
                self.use_(&id, span, if ok { UseKind::IndexOk } else { UseKind::IndexOther });
                self.visit_expr_mut(&mut ix.index);
                if let Some(rw) = self.rewrite
                    && let Some(so) = rw.sliced.get(&id.to_string())
                {
                    *e = Expr::Verbatim(expand::slot_access(so, &ix.index));
                }
            }
            Expr::Reference(r) if r.mutability.is_some() => match root(&r.expr) {
                Root::Indexed(id) if !self.is_local(&id.to_string()) => {
                    let id = id.clone();
                    self.mark_sliced(&id);
                    visit_mut::visit_expr_mut(self, e);
                }
                Root::Bare(id) | Root::Through(id) if !self.is_local(&id.to_string()) => {
                    let id = id.clone();
                    let msg = format!(
                        "cannot borrow `{id}` mutably inside a `#[parfor]` loop: all \
                         iterations share it and run in no fixed order; update it through a \
                         reduction or a sliced output `{id}[i]`, or borrow a copy made in the \
                         body"
                    );
                    self.error(&*e, msg);
                    visit_mut::visit_expr_mut(self, e);
                }
                _ => visit_mut::visit_expr_mut(self, e),
            },
            Expr::Closure(c) => {
                let mut names = BTreeSet::new();
                for p in &c.inputs {
                    names.extend(bindings(p));
                }
                self.in_closure_scope(names, |w| w.visit_expr_mut(&mut c.body));
            }
            Expr::Async(a) => {
                self.in_closure_scope(BTreeSet::new(), |w| w.visit_block_mut(&mut a.block));
            }
            Expr::ForLoop(f) => {
                // A marked loop inside a `#[parfor]` loop runs as a plain loop within each
                // iteration of the outer one.
                f.attrs.retain(|a| !is_parfor_attr(a));
                self.visit_expr_mut(&mut f.expr);
                let names = bindings(&f.pat);
                let label = f.label.clone();
                self.in_loop(label.as_ref(), |w| {
                    w.with_scope(names, |w| w.visit_block_mut(&mut f.body));
                });
            }
            Expr::While(wh) => {
                self.visit_expr_mut(&mut wh.cond);
                let names = Self::cond_bindings(&wh.cond);
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
                let label = b.label.clone();
                // A labeled block is a `break` target but not a loop.
                if let Some(l) = &label {
                    self.labels.push(l.name.ident.to_string());
                }
                self.visit_block_mut(&mut b.block);
                if label.is_some() {
                    self.labels.pop();
                }
            }
            Expr::If(i) => {
                self.visit_expr_mut(&mut i.cond);
                let names = Self::cond_bindings(&i.cond);
                self.with_scope(names, |w| w.visit_block_mut(&mut i.then_branch));
                if let Some((_, els)) = &mut i.else_branch {
                    self.visit_expr_mut(els);
                }
            }
            Expr::Let(l) => self.visit_expr_mut(&mut l.expr),
            Expr::Match(m) => {
                self.visit_expr_mut(&mut m.expr);
                for arm in &mut m.arms {
                    let names = bindings(&arm.pat);
                    self.with_scope(names, |w| {
                        if let Some((_, g)) = &mut arm.guard {
                            w.visit_expr_mut(g);
                        }
                        w.visit_expr_mut(&mut arm.body);
                    });
                }
            }
            Expr::Break(b) if !self.in_closure() => {
                let ok = match &b.label {
                    Some(l) => self.labels.contains(&l.ident.to_string()),
                    None => self.loop_depth > 0,
                };
                if !ok {
                    let what = match &b.label {
                        Some(l) => format!("`break {l}`"),
                        None => "`break`".to_owned(),
                    };
                    let msg = format!(
                        "{what} cannot leave a `#[parfor]` loop: all of its iterations run, in \
                         parallel; use `continue` to end this iteration early, or compute a \
                         flag with a reduction (`found |= cond;`) and act on it after the loop"
                    );
                    self.error(b.break_token, msg);
                }
                visit_mut::visit_expr_mut(self, e);
            }
            Expr::Continue(c) if !self.in_closure() => {
                let ends_iteration = match &c.label {
                    None => self.loop_depth == 0,
                    Some(l) => {
                        let name = l.ident.to_string();
                        if self.labels.contains(&name) {
                            false
                        } else if self.own_label.as_deref() == Some(name.as_str()) {
                            true
                        } else {
                            let msg = format!(
                                "`continue {l}` jumps to a loop outside the `#[parfor]` loop, \
                                 whose iterations run independently, in parallel; use \
                                 `continue` to end this iteration"
                            );
                            self.error(&*c, msg);
                            false
                        }
                    }
                };
                if ends_iteration && self.rewrite.is_some() {
                    *e = Expr::Verbatim(expand::end_iteration());
                }
            }
            Expr::Return(r) if !self.in_closure() => {
                self.error(
                    r.return_token,
                    "`return` cannot leave the function from inside a `#[parfor]` loop, whose \
                     iterations run in parallel; use `continue` to end this iteration, or \
                     collect what you need with a reduction and return after the loop",
                );
                visit_mut::visit_expr_mut(self, e);
            }
            Expr::Try(t) if !self.in_closure() => {
                let q = t.question_token;
                self.error(
                    q,
                    "the `?` operator cannot return from the function inside a `#[parfor]` \
                     loop; handle the error in the body (`match`, `unwrap_or`, `expect`), or \
                     collect the results with `results.push(r)` and check them after the loop",
                );
                visit_mut::visit_expr_mut(self, e);
            }
            Expr::Await(a) if !self.in_closure() => {
                let (dot, aw) = (a.dot_token, a.await_token);
                self.error(
                    quote::quote!(#dot #aw),
                    "`.await` cannot be used in a `#[parfor]` loop, whose body runs as a plain \
                     function on worker threads; await before or after the loop",
                );
                visit_mut::visit_expr_mut(self, e);
            }
            _ => {
                if let Some(attrs) = expr_attrs_mut(e) {
                    attrs.retain(|a| !is_parfor_attr(a));
                }
                visit_mut::visit_expr_mut(self, e);
            }
        }
    }
}

/// The attributes of an expression, for the kinds that can carry `#[parfor]`.
pub(crate) fn expr_attrs_mut(e: &mut Expr) -> Option<&mut Vec<syn::Attribute>> {
    Some(match e {
        Expr::ForLoop(x) => &mut x.attrs,
        Expr::While(x) => &mut x.attrs,
        Expr::Loop(x) => &mut x.attrs,
        Expr::Block(x) => &mut x.attrs,
        Expr::If(x) => &mut x.attrs,
        Expr::Match(x) => &mut x.attrs,
        Expr::Call(x) => &mut x.attrs,
        Expr::MethodCall(x) => &mut x.attrs,
        Expr::Macro(x) => &mut x.attrs,
        Expr::Closure(x) => &mut x.attrs,
        Expr::Unsafe(x) => &mut x.attrs,
        Expr::Assign(x) => &mut x.attrs,
        Expr::Binary(x) => &mut x.attrs,
        _ => return None,
    })
}
