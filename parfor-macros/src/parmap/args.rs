//! The options of `parmap!`: the common ones plus `zip`, `args` and `init`, and for async
//! functions `concurrency` and `engine = "async"`; `parmap_iter!` adds `ordered`, `flatten`,
//! `window` and `scope`.

use crate::ctxt::Ctxt;
use crate::options::{COMMON_NAMES, Common, ENGINES, RawOption, RawValue, Value, one_of};
use proc_macro2::Span;
use syn::{Expr, ExprLit, Lit};

/// The options only `parmap_iter!` accepts.
const STREAM_NAMES: &[&str] = &["ordered", "flatten", "window", "scope"];

/// The names a call accepts, for "expected one of" messages.
fn names(stream: bool) -> Vec<&'static str> {
    let mut names = COMMON_NAMES.to_vec();
    names.extend(["zip", "args", "init", "concurrency"]);
    if stream {
        names.extend(STREAM_NAMES);
    }
    names
}

/// The streaming options of a `parmap_iter!` call.
#[derive(Default)]
pub(crate) struct Stream {
    /// `ordered = false` (a literal: it decides the item type).
    pub(crate) ordered: Option<(bool, Span)>,
    /// `flatten = true` (a literal: it decides the item type).
    pub(crate) flatten: Option<(bool, Span)>,
    pub(crate) window: Option<Value<u64>>,
    /// `scope = s`: the `parfor::scope` the stream's threads run in.
    pub(crate) scope: Option<Expr>,
}

/// How the sources combine.
#[derive(Clone)]
pub(crate) enum Pairing {
    /// Their Cartesian product (the default, `zip = false`).
    Product,
    /// Element-wise (`zip = true`).
    Zip,
    /// Decided at run time by a `bool` expression.
    Expr(Expr),
}

/// The options of one call.
pub(crate) struct Options {
    pub(crate) common: Common,
    pub(crate) zip: Pairing,
    /// The fixed trailing arguments (`args = (a, b)`).
    pub(crate) args: Vec<Expr>,
    /// Whether `args` was given but malformed (the call's arity is then unknown).
    pub(crate) args_invalid: bool,
    /// `init = make_state`: the function that makes each worker's state, and the span of the
    /// option's name.
    pub(crate) init: Option<(Expr, Span)>,
    /// Whether `init` was given but refused (the call's arity is then unknown).
    pub(crate) init_refused: bool,
    /// `concurrency = n` (async functions only).
    pub(crate) concurrency: Option<Value<u64>>,
    /// The span of a literal `engine = "async"`, which `common.engine` then leaves unset.
    pub(crate) async_engine: Option<Span>,
    /// `Some` for `parmap_iter!`.
    pub(crate) stream: Option<Stream>,
}

/// Reads the options of `parmap!`, recording every mistake in `cx`.
#[cfg(test)]
pub(crate) fn parse(cx: &Ctxt, raw: &[RawOption]) -> Options {
    parse_call(cx, raw, false)
}

/// Reads the options of `parmap!` or (`stream`) `parmap_iter!`.
pub(crate) fn parse_call(cx: &Ctxt, raw: &[RawOption], stream: bool) -> Options {
    let mut st = Stream::default();
    let mut common = Common::default();
    let mut zip: Option<(Pairing, Span)> = None;
    let mut args: Option<Vec<Expr>> = None;
    let mut args_invalid = false;
    let mut concurrency: Option<Value<u64>> = None;
    let mut init: Option<(Expr, Span)> = None;
    let mut init_seen = false;
    let mut init_refused = false;
    let mut async_engine: Option<Span> = None;
    for opt in raw {
        if let Some(span) = async_engine_literal(opt) {
            if async_engine.is_some() || common.engine.is_some() {
                cx.error_at(opt.name.span(), "duplicate option `engine`");
            }
            async_engine = Some(span);
            continue;
        }
        if async_engine.is_some() && opt.name == "engine" {
            cx.error_at(opt.name.span(), "duplicate option `engine`");
            continue;
        }
        if let Some(s) = unknown_engine_literal(opt) {
            // `Common` lists the engines of `#[parfor]`; `parmap!` also takes "async".
            let mut names: Vec<&str> = ENGINES.iter().map(|e| e.0).collect();
            names.push("async");
            cx.error_spanned_by(
                s,
                format!("unknown engine `{}`; expected one of {}", s.value(), one_of(&names)),
            );
            continue;
        }
        if common.accept(cx, opt) {
            continue;
        }
        let name = opt.name.to_string();
        match name.as_str() {
            "zip" => {
                if zip.is_some() {
                    cx.error_at(opt.name.span(), "duplicate option `zip`");
                    continue;
                }
                let Some(e) = opt.expr(cx) else { continue };
                match e {
                    Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => {
                        zip = Some((if b.value { Pairing::Zip } else { Pairing::Product }, b.span));
                    }
                    Expr::Lit(lit) => cx.error_spanned_by(
                        lit,
                        "`zip` must be `true`, `false` or a `bool` expression",
                    ),
                    e => zip = Some((Pairing::Expr(e.clone()), opt.name.span())),
                }
            }
            "args" => {
                if args.is_some() || args_invalid {
                    cx.error_at(opt.name.span(), "duplicate option `args`");
                    continue;
                }
                let bad = "expected `args = (a, b, ...)`: the fixed trailing arguments of every \
                           call, in parentheses";
                match &opt.value {
                    RawValue::Expr(Expr::Tuple(t)) => {
                        args = Some(t.elems.iter().cloned().collect());
                    }
                    RawValue::Expr(Expr::Paren(p)) => args = Some(vec![(*p.expr).clone()]),
                    RawValue::Expr(e) => {
                        cx.error_spanned_by(e, bad);
                        args_invalid = true;
                    }
                    RawValue::List(tokens) => {
                        cx.error_at(opt.name.span(), format!("{bad}: `args = ({tokens})`"));
                        args_invalid = true;
                    }
                }
            }
            "init" => {
                if init_seen {
                    cx.error_at(opt.name.span(), "duplicate option `init`");
                    continue;
                }
                init_seen = true;
                init_refused = true;
                let bad = "expected `init = make_state`: a function of no arguments that makes \
                           each worker's state (`init = State::new`, `init = || vec![0; 64]`)";
                match &opt.value {
                    RawValue::Expr(Expr::Lit(lit)) => cx.error_spanned_by(lit, bad),
                    RawValue::Expr(_) if stream => cx.error_at(
                        opt.name.span(),
                        "`init` is not supported by `parmap_iter!`: its engines hand items to \
                         workers window by window (the fork engine forks new workers for each \
                         window), so a state could not be kept once per worker for the whole \
                         stream; use `parmap!`, which returns every result at once",
                    ),
                    RawValue::Expr(e) => {
                        init = Some((e.clone(), opt.name.span()));
                        init_refused = false;
                    }
                    RawValue::List(_) => cx.error_at(opt.name.span(), bad),
                }
            }
            "concurrency" => {
                if concurrency.is_some() {
                    cx.error_at(opt.name.span(), "duplicate option `concurrency`");
                    continue;
                }
                let Some(e) = opt.expr(cx) else { continue };
                match e {
                    Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<u64>() {
                        Ok(n) if n >= 1 => concurrency = Some(Value::Lit(n, i.span())),
                        _ => cx.error_spanned_by(
                            i,
                            "`concurrency` must be a whole number of at least 1",
                        ),
                    },
                    e => concurrency = Some(Value::Expr(e.clone())),
                }
            }
            n if stream && STREAM_NAMES.contains(&n) => stream_option(cx, opt, n, &mut st),
            n if STREAM_NAMES.contains(&n) => cx.error_at(
                opt.name.span(),
                format!(
                    "`{n}` is an option of `parmap_iter!`, which streams the results; \
                     `parmap!` returns them all at once"
                ),
            ),
            _ => {
                let mac = if stream { "parmap_iter!" } else { "parmap!" };
                let mut msg = format!(
                    "unknown {mac} option `{name}`; expected one of {}",
                    one_of(&names(stream))
                );
                if let Some(near) = names(stream).into_iter().find(|n| near_miss(&name, n)) {
                    msg.push_str(&format!(" (did you mean `{near}`?)"));
                }
                cx.error_at(opt.name.span(), msg);
            }
        }
    }
    Options {
        common,
        zip: zip.map_or(Pairing::Product, |z| z.0),
        args: args.unwrap_or_default(),
        args_invalid,
        init,
        init_refused,
        concurrency,
        async_engine,
        stream: stream.then_some(st),
    }
}

/// The literal when `opt` is `engine = "..."` naming no engine.
fn unknown_engine_literal(opt: &RawOption) -> Option<&syn::LitStr> {
    match &opt.value {
        RawValue::Expr(Expr::Lit(ExprLit { lit: Lit::Str(s), .. }))
            if opt.name == "engine"
                && !ENGINES.iter().any(|e| e.0.eq_ignore_ascii_case(&s.value()))
                && !s.value().eq_ignore_ascii_case("async") =>
        {
            Some(s)
        }
        _ => None,
    }
}

/// The span of the literal when `opt` is `engine = "async"`.
fn async_engine_literal(opt: &RawOption) -> Option<Span> {
    match &opt.value {
        RawValue::Expr(Expr::Lit(ExprLit { lit: Lit::Str(s), .. }))
            if opt.name == "engine" && s.value().eq_ignore_ascii_case("async") =>
        {
            Some(s.span())
        }
        _ => None,
    }
}

/// Reads one of `parmap_iter!`'s own options.
fn stream_option(cx: &Ctxt, opt: &RawOption, name: &str, st: &mut Stream) {
    let Some(e) = opt.expr(cx) else { return };
    let taken = match name {
        "ordered" => st.ordered.is_some(),
        "flatten" => st.flatten.is_some(),
        "window" => st.window.is_some(),
        _ => st.scope.is_some(),
    };
    if taken {
        cx.error_at(opt.name.span(), format!("duplicate option `{name}`"));
        return;
    }
    match name {
        "ordered" | "flatten" => match e {
            Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => {
                let v = Some((b.value, b.span));
                if name == "ordered" { st.ordered = v } else { st.flatten = v }
            }
            e => cx.error_spanned_by(
                e,
                format!(
                    "`{name}` must be the literal `true` or `false` (it decides the type of \
                     the items the stream yields)"
                ),
            ),
        },
        "window" => match e {
            Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse::<u64>() {
                Ok(n) if n >= 1 => st.window = Some(Value::Lit(n, i.span())),
                _ => cx.error_spanned_by(
                    i,
                    "`window` must be a whole number of at least 1: the most items dispatched \
                     and not yet consumed",
                ),
            },
            e => st.window = Some(Value::Expr(e.clone())),
        },
        _ => st.scope = Some(e.clone()),
    }
}

/// Whether `a` is one edit (insertion, deletion, substitution or adjacent swap) from `b`.
fn near_miss(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match (ra.len(), rb.len()) {
        (x, y) if x == y + 1 => ra[1..] == *rb,
        (x, y) if y == x + 1 => rb[1..] == *ra,
        (x, y) if x == y => {
            ra[1..] == rb[1..] || (x >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{OnError, parse_options};

    fn parse_str(src: &str) -> (Options, Result<(), String>) {
        let raw = syn::parse::Parser::parse_str(parse_options, src).unwrap();
        let cx = Ctxt::new();
        let opts = parse(&cx, &raw);
        (opts, cx.check().map_err(|e| e.to_string()))
    }

    #[test]
    fn zip_and_args() {
        let (o, r) = parse_str("zip = true, args = (a, b + 1), on_error = \"collect\"");
        assert!(r.is_ok());
        assert!(matches!(o.zip, Pairing::Zip));
        assert_eq!(o.args.len(), 2);
        assert!(matches!(o.common.on_error, Some((OnError::Collect, _))));
        let (o, r) = parse_str("zip = z, args = (a)");
        assert!(r.is_ok());
        assert!(matches!(o.zip, Pairing::Expr(_)));
        assert_eq!(o.args.len(), 1);
        let (o, r) = parse_str("zip = false, args = (a,), workers = 2");
        assert!(r.is_ok());
        assert!(matches!(o.zip, Pairing::Product));
        assert_eq!(o.args.len(), 1);
        assert!(matches!(o.common.workers, Some(Value::Lit(2, _))));
    }

    #[test]
    fn mistakes() {
        let (_, r) = parse_str("engin = \"threads\"");
        assert_eq!(
            r.unwrap_err(),
            "unknown parmap! option `engin`; expected one of `engine`, `workers`, `chunk`, \
             `on_error`, `timeout`, `progress`, `crate`, `schedule`, `zip`, `args`, `init` or \
             `concurrency` (did you mean `engine`?)"
        );
        let (_, r) = parse_str("zip = 1");
        assert!(r.unwrap_err().contains("`zip` must be `true`, `false` or a `bool` expression"));
        let (o, r) = parse_str("args = a");
        assert!(r.unwrap_err().contains("expected `args = (a, b, ...)`"));
        assert!(o.args_invalid);
        let (_, r) = parse_str("zip = true, zip = false");
        assert_eq!(r.unwrap_err(), "duplicate option `zip`");
        let (_, r) = parse_str("args = (a), args = (b)");
        assert_eq!(r.unwrap_err(), "duplicate option `args`");
        let (_, r) = parse_str("args(a, b)");
        assert!(r.unwrap_err().contains("expected `args = (a, b, ...)`"));
        let (_, r) = parse_str("concurrency = 0");
        assert_eq!(r.unwrap_err(), "`concurrency` must be a whole number of at least 1");
        let (_, r) = parse_str("concurrency = 2, concurrency = 3");
        assert_eq!(r.unwrap_err(), "duplicate option `concurrency`");
        let (_, r) = parse_str("engine = \"async\", engine = \"threads\"");
        assert_eq!(r.unwrap_err(), "duplicate option `engine`");
        let (_, r) = parse_str("engine = \"threads\", engine = \"async\"");
        assert_eq!(r.unwrap_err(), "duplicate option `engine`");
    }

    #[test]
    fn init() {
        let (o, r) = parse_str("init = State::new, workers = 2");
        assert!(r.is_ok());
        assert!(matches!(o.init, Some((Expr::Path(_), _))));
        let (o, r) = parse_str("init = || vec![0u8; 64]");
        assert!(r.is_ok());
        assert!(matches!(o.init, Some((Expr::Closure(_), _))));
        let (_, r) = parse_str("init = a, init = b");
        assert_eq!(r.unwrap_err(), "duplicate option `init`");
        let (o, r) = parse_str("init = 3");
        assert!(r.unwrap_err().contains("expected `init = make_state`"));
        assert!(o.init.is_none() && o.init_refused);
        let (_, r) = parse_str("init(rng = Rng::new())");
        assert!(r.unwrap_err().contains("expected `init = make_state`"));
        let raw = syn::parse::Parser::parse_str(parse_options, "init = State::new").unwrap();
        let cx = Ctxt::new();
        let o = parse_call(&cx, &raw, true);
        assert!(o.init.is_none());
        let e = cx.check().unwrap_err().to_string();
        assert!(e.contains("`init` is not supported by `parmap_iter!`"), "{e}");
    }

    #[test]
    fn async_options() {
        let (o, r) = parse_str("engine = \"async\", concurrency = 32");
        assert!(r.is_ok());
        assert!(o.async_engine.is_some() && o.common.engine.is_none());
        assert!(matches!(o.concurrency, Some(Value::Lit(32, _))));
        let (o, r) = parse_str("concurrency = n * 2");
        assert!(r.is_ok());
        assert!(matches!(o.concurrency, Some(Value::Expr(_))));
        let (_, r) = parse_str("engine = \"gpu\"");
        assert_eq!(
            r.unwrap_err(),
            "unknown engine `gpu`; expected one of `serial`, `threads`, `fork`, `mpi` or `async`"
        );
        let (_, r) = parse_str("concurency = 3");
        assert!(r.unwrap_err().contains("(did you mean `concurrency`?)"));
    }

    #[test]
    fn near_misses() {
        assert!(near_miss("engin", "engine"));
        assert!(near_miss("wrokers", "workers"));
        assert!(near_miss("chunks", "chunk"));
        assert!(near_miss("zap", "zip"));
        assert!(!near_miss("zip", "zip"));
        assert!(!near_miss("speed", "engine"));
    }
}
