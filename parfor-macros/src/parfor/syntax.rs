//! Purely syntactic helpers shared by the analysis and the rewrite of a loop body: what an
//! expression is rooted in, which assignments are reductions, what a pattern binds, and the
//! lists of well-known method and macro names.

use crate::parfor::ast::RedOp;
use proc_macro2::TokenStream;
use quote::ToTokens;
use std::collections::{BTreeMap, BTreeSet};
use syn::{BinOp, Expr, Ident, Pat};

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
    "remove",
    "reserve",
    "resize",
    "retain",
    "reverse",
    "rotate_left",
    "rotate_right",
    "shrink_to_fit",
    "sort",
    "sort_by",
    "sort_by_key",
    "sort_unstable",
    "sort_unstable_by",
    "sort_unstable_by_key",
    "split_off",
    "swap_remove",
    "truncate",
    "as_mut",
    "last_mut",
    "first_mut",
];

/// Methods that change a value through a shared reference (interior mutability): atomics,
/// `Mutex`, `RwLock`, `Cell`, `RefCell`, `OnceLock`, channels. On a broadcast variable they
/// work on threads but change only a fork worker's copy, so a fork loop refuses them.
pub(crate) fn is_interior_mutation(method: &str) -> bool {
    const EXACT: &[&str] = &[
        "lock",
        "try_lock",
        "write",
        "try_write",
        "store",
        "swap",
        "set",
        "replace",
        "take",
        "borrow_mut",
        "try_borrow_mut",
        "get_or_init",
        "get_or_try_init",
        "send",
        "try_send",
        "compare_and_swap",
    ];
    EXACT.contains(&method)
        || method.starts_with("fetch_")
        || method.starts_with("compare_exchange")
}

/// Macros whose arguments are comma-separated expressions; they are parsed and walked like
/// code. Any other macro is opaque.
pub(crate) const EXPR_MACROS: &[&str] = &[
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

/// Whether `name` is one of [`EXPR_MACROS`].
pub(crate) fn is_expr_macro(mac: &syn::Macro) -> bool {
    let name = mac.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
    EXPR_MACROS.contains(&name.as_str())
}

/// The names `pat` binds. A match arm's guard (`Some(x) if let Ok(y) = f(x)`) binds what its
/// `let`s bind; the expressions inside a pattern (a guard, a `const { .. }` block, a range's
/// bounds) bind nothing of the pattern's own, so closures and blocks there are not walked.
pub(crate) fn bindings(pat: &Pat) -> BTreeSet<String> {
    struct B(BTreeSet<String>);
    impl<'ast> syn::visit::Visit<'ast> for B {
        fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
            self.0.insert(p.ident.to_string());
            syn::visit::visit_pat_ident(self, p);
        }
        fn visit_pat_guard(&mut self, g: &'ast syn::PatGuard) {
            self.visit_pat(&g.pat);
            self.0.extend(cond_bindings(&g.guard));
        }
        fn visit_expr(&mut self, _: &'ast Expr) {}
    }
    let mut b = B(BTreeSet::new());
    syn::visit::Visit::visit_pat(&mut b, pat);
    b.0
}

/// The bindings of a `let` condition (`if let`, `while let`, `a && let ..`).
pub(crate) fn cond_bindings(cond: &Expr) -> BTreeSet<String> {
    match cond {
        Expr::Let(l) => bindings(&l.pat),
        Expr::Binary(b) if matches!(b.op, BinOp::And(_)) => {
            let mut s = cond_bindings(&b.left);
            s.extend(cond_bindings(&b.right));
            s
        }
        Expr::Paren(p) => cond_bindings(&p.expr),
        _ => BTreeSet::new(),
    }
}

/// The guard expressions of `pat` (a match arm's `if ..`, which syn keeps in the pattern).
pub(crate) fn guards_mut(pat: &mut Pat) -> Vec<&mut Expr> {
    match pat {
        Pat::Guard(g) => {
            let mut out = guards_mut(&mut g.pat);
            out.push(&mut g.guard);
            out
        }
        Pat::Paren(p) => guards_mut(&mut p.pat),
        Pat::Or(o) => o.cases.iter_mut().flat_map(guards_mut).collect(),
        _ => Vec::new(),
    }
}

/// The guard expressions of `pat`; see [`guards_mut`].
pub(crate) fn guards(pat: &Pat) -> Vec<&Expr> {
    match pat {
        Pat::Guard(g) => {
            let mut out = guards(&g.pat);
            out.push(&g.guard);
            out
        }
        Pat::Paren(p) => guards(&p.pat),
        Pat::Or(o) => o.cases.iter().flat_map(guards).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn strip_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

pub(crate) fn strip_parens_mut(mut e: &mut Expr) -> &mut Expr {
    while let Expr::Paren(p) = e {
        e = &mut p.expr;
    }
    e
}

/// Whether a reduction's function is `max` or `min` (`std::cmp::max`, ...).
pub(crate) fn is_min_max(func: &TokenStream) -> bool {
    let s = func.to_string().replace(' ', "");
    s.ends_with("max") || s.ends_with("min")
}

/// The identifier of a plain one-segment path expression.
pub(crate) fn path_ident(e: &Expr) -> Option<&Ident> {
    match strip_parens(e) {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        _ => None,
    }
}

/// The variable and the indices of an array element `v[k]` or `v[r][c]` (outermost index
/// first); `None` for any other place.
pub(crate) fn array_place(e: &Expr) -> Option<(&Ident, Vec<&Expr>)> {
    let Expr::Index(ix) = strip_parens(e) else { return None };
    if let Some(id) = path_ident(&ix.expr) {
        return Some((id, vec![&*ix.index]));
    }
    let Expr::Index(outer) = strip_parens(&ix.expr) else { return None };
    let id = path_ident(&outer.expr)?;
    Some((id, vec![&*outer.index, &*ix.index]))
}

/// The indices of an array element `v[k]` or `v[r][c]`, mutably (see [`array_place`]).
pub(crate) fn array_indices_mut(e: &mut Expr) -> Vec<&mut Expr> {
    let Expr::Index(ix) = strip_parens_mut(e) else { return Vec::new() };
    match strip_parens_mut(&mut ix.expr) {
        Expr::Index(outer) => vec![&mut *outer.index, &mut *ix.index],
        _ => vec![&mut *ix.index],
    }
}

/// Where a place expression is rooted.
pub(crate) enum Root<'e> {
    /// The place is the variable itself.
    Bare(&'e Ident),
    /// The place goes through `v[e]` first.
    Indexed(&'e Ident),
    /// The place goes through a field or a dereference of `v` first.
    Through(&'e Ident),
    /// Not rooted in a variable (a call result, ...).
    None,
}

pub(crate) fn root(e: &Expr) -> Root<'_> {
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

/// The operator of a binary expression, and whether it is the assignment form.
pub(crate) fn bin_op(op: &BinOp) -> Option<(&'static str, bool)> {
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

pub(crate) fn is_assign_op(op: &BinOp) -> bool {
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

/// Which operand of a reduction's right-hand side is the contribution.
#[derive(Clone, Copy)]
pub(crate) enum Which {
    /// The whole right-hand side (`x op= e`).
    All,
    Left,
    Right,
    Arg(usize),
}

/// The contribution operand of a reduction's right-hand side.
pub(crate) fn operand_mut(rhs: &mut Expr, which: Which) -> &mut Expr {
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

/// The reduction that the assignment `e` to the outer variable `x` makes, if any:
/// `x op= v`, `x = x op v`, `x = v op x`, `x = x.max(v)`, `x = max(x, v)`, or a declared
/// `reduce(x = f)` as `x = f(x, v)`. `reducers` maps declared variables to their function.
pub(crate) fn reduction_form(
    x: &str,
    e: &Expr,
    reducers: &BTreeMap<String, TokenStream>,
) -> Option<(RedOp, Which)> {
    let is_x = |e: &Expr| path_ident(e).is_some_and(|id| id == x);
    form(&is_x, e, reducers.get(x))
}

/// The reduction that the assignment `e` to the array element `place` (`hist[k]`) makes, if
/// any: the forms of [`reduction_form`] where `x` is the same element, written the same way.
pub(crate) fn array_reduction_form(place: &Expr, e: &Expr) -> Option<(RedOp, Which)> {
    let place = place.to_token_stream().to_string();
    let is_x = |e: &Expr| strip_parens(e).to_token_stream().to_string() == place;
    form(&is_x, e, None)
}

fn form(
    is_x: &dyn Fn(&Expr) -> bool,
    e: &Expr,
    declared: Option<&TokenStream>,
) -> Option<(RedOp, Which)> {
    let rhs = match e {
        Expr::Assign(a) => &a.right,
        Expr::Binary(b) => {
            if declared.is_some() {
                return None;
            }
            return match bin_op(&b.op) {
                Some((o, true)) => Some((red_op(o), Which::All)),
                _ => None,
            };
        }
        _ => return None,
    };
    let rhs = strip_parens(rhs);
    if let Some(func) = declared {
        if let Expr::Call(c) = rhs
            && c.args.len() == 2
            && c.func.to_token_stream().to_string() == func.to_string()
        {
            if is_x(&c.args[0]) {
                return Some((RedOp::Call { func: func.clone(), swapped: false }, Which::Arg(1)));
            }
            if is_x(&c.args[1]) {
                return Some((RedOp::Call { func: func.clone(), swapped: true }, Which::Arg(0)));
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

/// Whether `v.method(arg)` on an outer variable is a concatenation reduction.
pub(crate) fn is_concat(method: &str, args: usize) -> bool {
    matches!(method, "push" | "extend" | "push_str") && args == 1
}

/// The `{name}` captures of a format string.
pub(crate) fn format_captures(s: &str) -> Vec<String> {
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

/// The names an item in a loop body declares in the body's scope (`fn i`, `const i`,
/// `static i`, `struct i;`, `use a::b as i;`); `None` for a glob import, whose names are
/// unknown.
pub(crate) fn item_names(item: &syn::Item) -> Option<Vec<Ident>> {
    fn use_names(tree: &syn::UseTree, out: &mut Vec<Ident>) -> bool {
        match tree {
            syn::UseTree::Path(p) => use_names(&p.tree, out),
            syn::UseTree::Name(n) => {
                out.push(n.ident.clone());
                true
            }
            syn::UseTree::Rename(r) => {
                out.push(r.rename.clone());
                true
            }
            syn::UseTree::Glob(_) => false,
            syn::UseTree::Group(g) => g.items.iter().all(|t| use_names(t, out)),
        }
    }
    let id = match item {
        syn::Item::Const(i) => &i.ident,
        syn::Item::Static(i) => &i.ident,
        syn::Item::Fn(i) => &i.sig.ident,
        syn::Item::Struct(i) => &i.ident,
        syn::Item::Enum(i) => &i.ident,
        syn::Item::Union(i) => &i.ident,
        syn::Item::Mod(i) => &i.ident,
        syn::Item::Trait(i) => &i.ident,
        syn::Item::Type(i) => &i.ident,
        syn::Item::ExternCrate(i) => i.rename.as_ref().map_or(&i.ident, |(_, r)| r),
        syn::Item::Use(u) => {
            let mut out = Vec::new();
            return use_names(&u.tree, &mut out).then_some(out);
        }
        _ => return Some(Vec::new()),
    };
    Some(vec![id.clone()])
}
