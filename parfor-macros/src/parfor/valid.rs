//! Checks across a loop's classification: reads of reduction variables, sliced outputs used
//! other than as `out[i]`, variables that are both, items that shadow the loop's variables,
//! broadcasts changed through `&self` on the fork engine, and unused `reduce(...)`
//! declarations.

use crate::ctxt::Ctxt;
use crate::options::Value;
use crate::parfor::ast::{Loop, RedOp, Usage, UseKind};
use std::collections::BTreeSet;

/// Records in `cx` every mistake of `lp` given its classification `usage`.
pub(crate) fn check(cx: &Ctxt, lp: &Loop, usage: &Usage) {
    // Process engines: each worker process (fork) or rank (mpi) changes only its own copy.
    // A `SharedVec` is shared by fork workers, not by the ranks of an MPI job.
    let engine = match lp.args.common.engine {
        Some(Value::Lit("fork", _)) => Some((
            "on the fork engine changes only a worker process's",
            "write results into a `parfor::SharedVec`, ",
        )),
        Some(Value::Lit("mpi", _)) => Some(("on the mpi engine changes only one rank's", "")),
        _ => None,
    };
    if let Some((copy, shared)) = engine {
        for i in &usage.interior {
            cx.error_at(
                i.span,
                format!(
                    "`{call}` changes the broadcast variable `{var}` through a shared \
                     reference, which {copy} copy (the change is lost); make `{var}` a \
                     reduction (`{var} += 1`, `{var}.push(e)`), {shared}or run the loop on \
                     `engine = \"threads\"`",
                    call = i.call,
                    var = i.var
                ),
            );
        }
    }
    for id in &usage.items {
        let name = id.to_string();
        if usage.sliced.contains_key(&name) || usage.reductions.contains_key(&name) {
            cx.error_spanned_by(
                id,
                format!(
                    "this item is named `{name}` like a variable the `#[parfor]` loop writes,                      which it would shadow in the loop body; rename it"
                ),
            );
        }
    }
    let index = lp.index.as_ref().map(ToString::to_string);
    let mut reported = BTreeSet::new();
    for u in &usage.uses {
        if let Some(r) = usage.reductions.get(&u.name) {
            if usage.sliced.contains_key(&u.name) {
                continue;
            }
            if r.array {
                cx.error_at(
                    u.span,
                    format!(
                        "`{name}` is an array reduction of this `#[parfor]` loop (its elements \
                         are updated as `{name}[k] {op}= ..`), so the body may only update its \
                         elements that way: reading `{name}` in the loop would depend on the \
                         order of iterations; read it after the loop",
                        name = u.name,
                        op = match &r.op {
                            RedOp::Bin(o) => *o,
                            RedOp::Sub => "-",
                            _ => "",
                        }
                    ),
                );
                continue;
            }
            let how = match r.op {
                RedOp::Concat => "concatenation",
                _ => "reduction",
            };
            cx.error_at(
                u.span,
                format!(
                    "cannot read {how} variable `{name}` inside the `#[parfor]` loop: each \
                     iteration only contributes to it, and its value is known after the loop; \
                     read it after the loop, or use a temporary (`let`) for per-iteration \
                     values",
                    name = u.name
                ),
            );
        } else if let Some(s) = usage.sliced.get(&u.name) {
            match (u.kind, &index) {
                (UseKind::IndexOk, _) => {}
                (UseKind::IndexOther, Some(i)) => cx.error_at(
                    u.span,
                    format!(
                        "sliced output `{name}` must be indexed by the loop variable `{i}`, \
                         so that each iteration owns one element; write `{name}[{i}]`, or, to \
                         accumulate into any element from every iteration, update it only \
                         with a reduction operator (`{name}[k] += v`, an array reduction, \
                         never read in the loop)",
                        name = s.ident
                    ),
                ),
                (UseKind::IndexOther, None) => cx.error_at(
                    u.span,
                    format!(
                        "`{name}` is written in a `#[parfor]` loop that has no index \
                         variable; loop over a range (`for i in 0..n`) or use `.enumerate()` \
                         so that each iteration writes its own element `{name}[i]`",
                        name = s.ident
                    ),
                ),
                (UseKind::Macro, _) => cx.error_at(
                    u.span,
                    format!(
                        "the sliced output `{name}` cannot be passed to a macro inside a \
                         `#[parfor]` loop: parfor cannot see what the macro does with it, and \
                         each iteration may only touch its own element; pass `{name}[{i}]` \
                         through a temporary (`let v = {name}[{i}];`), or use a function",
                        name = s.ident,
                        i = index.as_deref().unwrap_or("i"),
                    ),
                ),
                (UseKind::Read, _) => {
                    if reported.insert((u.name.clone(), format!("{:?}", u.span))) {
                        let i = index.as_deref().unwrap_or("i");
                        cx.error_at(
                            u.span,
                            format!(
                                "`{name}` is a sliced output of this `#[parfor]` loop (it is \
                                 written as `{name}[{i}]`), so the body may only use it as \
                                 `{name}[{i}]`",
                                name = s.ident
                            ),
                        );
                    }
                }
            }
        }
    }
    for (name, r) in &usage.reductions {
        if usage.sliced.contains_key(name) {
            cx.error_spanned_by(
                &r.ident,
                format!(
                    "`{name}` is used both as a sliced output (`{name}[i] = ..`) and as a \
                     reduction variable; use two variables"
                ),
            );
        }
    }
    for d in &lp.args.reduce {
        if !usage.reductions.contains_key(&d.var.to_string()) {
            cx.error_spanned_by(
                &d.var,
                format!(
                    "`reduce({v} = ..)` names `{v}`, which this loop never updates as `{v} = \
                     f({v}, value)`",
                    v = d.var
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::parfor::test_util::loop_errors;

    #[test]
    fn reads_of_reductions() {
        let e = loop_errors(quote::quote! {
            for i in 0..n { sum += x[i]; if sum > 1.0 { y += 1; } }
        });
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("cannot read reduction variable `sum`"), "{e:?}");
    }

    #[test]
    fn sliced_index_and_conflicts() {
        let e = loop_errors(quote::quote! {
            for i in 0..n { out[i + 1] = 1.0; out[i] = 2.0; }
        });
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("sliced output `out` must be indexed by the loop variable `i`"));
        let e = loop_errors(quote::quote! {
            for i in 0..n { out[i] = 1.0; out += 1.0; }
        });
        assert!(e.iter().any(|e| e.contains("both as a sliced output")), "{e:?}");
        let e = loop_errors(quote::quote! {
            for x in v.iter() { out[0] = *x; }
        });
        assert!(e[0].contains("has no index variable"), "{e:?}");
    }

    #[test]
    fn sliced_reads_are_fine_when_indexed_by_the_loop_variable() {
        let e = loop_errors(quote::quote! {
            for i in 0..n { out[i] = out[i] * 2.0 + inp[i + 1]; }
        });
        assert!(e.is_empty(), "{e:?}");
        let e = loop_errors(quote::quote! {
            for i in 0..n { out[i] = 1.0; let l = out.len(); }
        });
        assert!(e[0].contains("may only use it as `out[i]`"), "{e:?}");
    }
}
