//! Checks that need the whole call: the arity of a closure literal, and a closure literal
//! that changes what it captures.

use super::args::Options;
use super::ast::Input;
use super::expand::{MAX_INFERRED_ARITY, closure, passing};
use crate::ctxt::Ctxt;

/// Records mistakes in `cx`; `false` when a closure literal's arity does not match the call
/// or it changes a captured variable (the expansion would only add rustc's errors about
/// generated code).
pub(crate) fn check(cx: &Ctxt, input: &Input, opts: &Options) -> bool {
    let Some(c) = closure(&input.func) else {
        return true;
    };
    if !captures_unchanged(cx, c) {
        return false;
    }
    if opts.args_invalid || opts.init_refused {
        return true;
    }
    let (k, n) = (input.sources.len(), opts.args.len());
    let state = usize::from(opts.init.is_some());
    let expected = state + k + n;
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if c.inputs.len() != expected {
        let mut msg = format!(
            "this closure takes {} but `parmap!` passes {}: ",
            plural(c.inputs.len(), "parameter"),
            plural(expected, "argument"),
        );
        if state == 1 {
            msg.push_str("the worker's state (`init`, as `&mut`), then ");
        }
        msg.push_str(&format!("one per source ({k})"));
        if n > 0 {
            msg.push_str(&format!(" and one per `args` value ({n})"));
        }
        cx.error_at(closure_params_span(c), msg);
        return false;
    }
    if passing(&input.func).is_some() && expected > MAX_INFERRED_ARITY {
        cx.error_at(
            closure_params_span(c),
            format!(
                "a closure with more than {MAX_INFERRED_ARITY} parameters needs a type on \
                 each, such as `|a: f64, b: &Image|`"
            ),
        );
        return false;
    }
    true
}

/// The span of a closure's `|...|` (its first `|` on stable Rust).
fn closure_params_span(c: &syn::ExprClosure) -> proc_macro2::Span {
    let open = c.inputs_begin.span;
    open.join(c.inputs_end.span).unwrap_or(open)
}

/// Reports every change a closure literal makes to a variable it captures (`calls += 1`,
/// `seen.push(x)`, `&mut total`): `parmap!` runs the items in parallel, so its function is
/// `Fn`. Names bound anywhere in the closure count as its own (rustc still catches a change
/// that this misses).
fn captures_unchanged(cx: &Ctxt, c: &syn::ExprClosure) -> bool {
    use crate::parfor::syntax::{MUTATING_METHODS, Root, bindings, guards, is_concat, root};
    use syn::visit::Visit;

    struct Finder {
        locals: std::collections::BTreeSet<String>,
        changed: Vec<syn::Ident>,
    }
    impl Finder {
        fn place(&mut self, e: &syn::Expr) {
            if let Root::Bare(id) | Root::Indexed(id) | Root::Through(id) = root(e)
                && !self.locals.contains(&id.to_string())
            {
                self.changed.push(id.clone());
            }
        }
    }
    impl<'ast> Visit<'ast> for Finder {
        fn visit_pat(&mut self, p: &'ast syn::Pat) {
            self.locals.extend(bindings(p));
            for g in guards(p) {
                self.visit_expr(g);
            }
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
        fn visit_expr(&mut self, e: &'ast syn::Expr) {
            match e {
                syn::Expr::Assign(a) => self.place(&a.left),
                syn::Expr::Binary(b) if crate::parfor::syntax::is_assign_op(&b.op) => {
                    self.place(&b.left);
                }
                syn::Expr::Reference(r) if r.mutability.is_some() => self.place(&r.expr),
                syn::Expr::MethodCall(m) => {
                    let name = m.method.to_string();
                    if MUTATING_METHODS.contains(&name.as_str()) || is_concat(&name, m.args.len()) {
                        self.place(&m.receiver);
                    }
                }
                _ => {}
            }
            syn::visit::visit_expr(self, e);
        }
    }
    let mut f = Finder { locals: Default::default(), changed: Vec::new() };
    // Bindings first (parameters, `let`s, patterns anywhere), then the changes.
    for p in &c.inputs {
        f.visit_pat(p);
    }
    struct Binds<'a>(&'a mut std::collections::BTreeSet<String>);
    impl<'ast> Visit<'ast> for Binds<'_> {
        fn visit_pat(&mut self, p: &'ast syn::Pat) {
            self.0.extend(bindings(p));
            for g in guards(p) {
                self.visit_expr(g);
            }
        }
    }
    Binds(&mut f.locals).visit_expr(&c.body);
    f.visit_expr(&c.body);
    for id in &f.changed {
        cx.error_spanned_by(
            id,
            format!(
                "the function of `parmap!` cannot change `{id}`, which it captures: the items \
                 run in parallel, in no fixed order; return what you need from the function \
                 (a tuple, say) and combine the results after the call, or use a `#[parfor]` \
                 loop with a reduction (`{id} += ..`, `{id}.push(..)`)"
            ),
        );
    }
    f.changed.is_empty()
}
