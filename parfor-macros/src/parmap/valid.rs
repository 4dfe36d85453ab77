//! Checks that need the whole call: the arity of a closure literal.

use super::args::Options;
use super::ast::Input;
use super::expand::{MAX_INFERRED_ARITY, closure, passing};
use crate::ctxt::Ctxt;

/// Records mistakes in `cx`; `false` when a closure literal's arity does not match the call.
pub(crate) fn check(cx: &Ctxt, input: &Input, opts: &Options) -> bool {
    let Some(c) = closure(&input.func) else {
        return true;
    };
    if opts.args_invalid {
        return true;
    }
    let (k, n) = (input.sources.len(), opts.args.len());
    let expected = k + n;
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    if c.inputs.len() != expected {
        let mut msg = format!(
            "this closure takes {} but `parmap!` passes {}: one per source ({k})",
            plural(c.inputs.len(), "parameter"),
            plural(expected, "argument"),
        );
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
    let open = c.or1_token.span;
    open.join(c.or2_token.span).unwrap_or(open)
}
