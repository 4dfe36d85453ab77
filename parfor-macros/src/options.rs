//! The options shared by `parmap!` and `#[parfor]`: `engine`, `workers`, `chunk`, `on_error`,
//! `timeout`, `progress` and `crate`, parsed from `name = value` pairs, checked where they are
//! literals, and turned into a `parfor::__private::Options` builder expression.

use crate::ctxt::Ctxt;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, Token};

/// The engines a literal `engine = "..."` accepts. Keep in sync with `parfor_runtime::Engine`.
pub(crate) const ENGINES: &[(&str, &str)] =
    &[("serial", "Serial"), ("threads", "Threads"), ("fork", "Fork"), ("mpi", "Mpi")];

/// The values of `schedule = "..."` and their `parfor::Schedule` variants.
const SCHEDULES: &[(&str, &str)] = &[("dynamic", "Dynamic"), ("static", "Static")];

/// One `name = value` or `name(...)` option.
///
/// ```text
/// option := name '=' expr | name '(' tokens ')'
/// name   := identifier | 'crate'
/// ```
pub(crate) struct RawOption {
    pub(crate) name: Ident,
    pub(crate) value: RawValue,
}

/// The value of a [`RawOption`].
pub(crate) enum RawValue {
    /// `name = expr`
    Expr(Expr),
    /// `name(tokens)`, for options with their own grammar such as `reduce(acc = merge)`.
    List(TokenStream),
}

impl Parse for RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = Ident::parse_any(input)?;
        if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            return Ok(RawOption { name, value: RawValue::List(content.parse()?) });
        }
        let eq: Option<Token![=]> = input.parse()?;
        if eq.is_none() {
            return Err(syn::Error::new(
                name.span(),
                format!("expected `{name} = value` for the parfor option `{name}`"),
            ));
        }
        Ok(RawOption { name, value: RawValue::Expr(input.parse()?) })
    }
}

impl RawOption {
    /// The option's expression, or an error for the `name(...)` form.
    pub(crate) fn expr(&self, cx: &Ctxt) -> Option<&Expr> {
        match &self.value {
            RawValue::Expr(e) => Some(e),
            RawValue::List(_) => {
                cx.error_at(self.name.span(), format!("expected `{} = value`", self.name));
                None
            }
        }
    }
}

/// Parses comma-separated options (a trailing comma is fine).
pub(crate) fn parse_options(input: ParseStream<'_>) -> syn::Result<Vec<RawOption>> {
    Ok(input.parse_terminated(RawOption::parse, Token![,])?.into_iter().collect())
}

/// How an option's value is given.
#[derive(Clone)]
pub(crate) enum Value<T> {
    /// A literal checked at compile time, with its span.
    Lit(T, Span),
    /// Any expression, evaluated at run time.
    Expr(Expr),
}

/// What `on_error` asks for; only a literal, since it changes the result type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnError {
    Fail,
    Collect,
}

/// The common options of one call.
#[derive(Default)]
pub(crate) struct Common {
    pub(crate) engine: Option<Value<&'static str>>,
    pub(crate) workers: Option<Value<u64>>,
    pub(crate) chunk: Option<Value<u64>>,
    pub(crate) on_error: Option<(OnError, Span)>,
    pub(crate) timeout: Option<Value<std::time::Duration>>,
    pub(crate) progress: Option<Expr>,
    pub(crate) krate: Option<syn::Path>,
    pub(crate) schedule: Option<(&'static str, Span)>,
}

/// The names [`Common::accept`] handles, for "expected one of" messages.
pub(crate) const COMMON_NAMES: &[&str] =
    &["engine", "workers", "chunk", "on_error", "timeout", "progress", "crate", "schedule"];

fn str_lit(e: &Expr) -> Option<&syn::LitStr> {
    match e {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s),
        _ => None,
    }
}

fn int_lit(e: &Expr) -> Option<&syn::LitInt> {
    match e {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => Some(i),
        _ => None,
    }
}

/// A list such as "`a`, `b` or `c`".
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Why a `timeout` literal was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BadDuration {
    /// Not a number followed by `ms`, `s`, `m`, `min` or `h`.
    Invalid,
    /// Zero (or less than a nanosecond).
    Zero,
    /// More than a `Duration` can hold (`u64::MAX` seconds).
    TooLarge,
}

/// Parses a duration literal such as `"10s"`, `"250ms"`, `"2m"`, `"1.5h"`, exactly (decimal
/// digits, no floating point), to the nanosecond.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, BadDuration> {
    const NANOS: u128 = 1_000_000_000;
    /// Fraction digits beyond these change the value by far less than a nanosecond (a unit
    /// is at most an hour, 3.6e12 ns), and fewer keep the arithmetic inside `u128`.
    const FRACTION_DIGITS: usize = 20;
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or(BadDuration::Invalid)?;
    let (num, unit) = s.split_at(split);
    let unit: u128 = match unit.trim() {
        "ms" => NANOS / 1000,
        "s" => NANOS,
        "m" | "min" => 60 * NANOS,
        "h" => 3600 * NANOS,
        _ => return Err(BadDuration::Invalid),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(BadDuration::Invalid);
    }
    // Only digits are left, so parsing fails only on overflow.
    let int: u128 =
        if int.is_empty() { 0 } else { int.parse().map_err(|_| BadDuration::TooLarge)? };
    let frac = &frac[..frac.len().min(FRACTION_DIGITS)];
    let (frac_value, scale) = match frac {
        "" => (0, 1),
        f => (f.parse::<u128>().map_err(|_| BadDuration::Invalid)?, 10u128.pow(f.len() as u32)),
    };
    let nanos = int
        .checked_mul(unit)
        .and_then(|n| n.checked_add(frac_value * unit / scale))
        .ok_or(BadDuration::TooLarge)?;
    if nanos == 0 {
        return Err(BadDuration::Zero);
    }
    let secs = u64::try_from(nanos / NANOS).map_err(|_| BadDuration::TooLarge)?;
    Ok(std::time::Duration::new(secs, (nanos % NANOS) as u32))
}

/// The engines that can stop an item that runs too long, for `timeout`. Keep in sync with the
/// runtime's check.
pub(crate) const TIMEOUT_ENGINES: &[&str] = &["fork"];

impl Common {
    /// Takes `opt` if it is a common option; returns `false` for a name it does not know.
    pub(crate) fn accept(&mut self, cx: &Ctxt, opt: &RawOption) -> bool {
        let name = opt.name.to_string();
        if !COMMON_NAMES.contains(&name.as_str()) {
            return false;
        }
        let Some(e) = opt.expr(cx) else { return true };
        let dup = |cx: &Ctxt| cx.error_at(opt.name.span(), format!("duplicate option `{name}`"));
        match name.as_str() {
            "engine" => {
                if self.engine.is_some() {
                    return {
                        dup(cx);
                        true
                    };
                }
                self.engine = Some(match str_lit(e) {
                    // Engine names are accepted in any case, like `PARFOR_ENGINE`.
                    Some(s) => {
                        match ENGINES.iter().find(|(n, _)| n.eq_ignore_ascii_case(&s.value())) {
                            Some(("mpi", _)) if !cfg!(feature = "mpi") => {
                                cx.error_spanned_by(
                                    s,
                                    "`engine = \"mpi\"` needs parfor's `mpi` cargo feature: \
                                 `parfor = { version = \"...\", features = [\"mpi\"] }` (it \
                                 needs an MPI library such as Open MPI)",
                                );
                                return true;
                            }
                            Some((n, _)) => Value::Lit(*n, s.span()),
                            None => {
                                let names: Vec<&str> = ENGINES.iter().map(|e| e.0).collect();
                                cx.error_spanned_by(
                                    s,
                                    format!(
                                        "unknown engine `{}`; expected one of {}",
                                        s.value(),
                                        one_of(&names)
                                    ),
                                );
                                return true;
                            }
                        }
                    }
                    None => Value::Expr(e.clone()),
                });
            }
            "workers" | "chunk" => {
                let slot = if name == "workers" { &mut self.workers } else { &mut self.chunk };
                if slot.is_some() {
                    dup(cx);
                    return true;
                }
                *slot = Some(match int_lit(e) {
                    Some(i) => match i.base10_parse::<u64>() {
                        Ok(n) if n >= 1 => Value::Lit(n, i.span()),
                        _ => {
                            cx.error_spanned_by(
                                i,
                                format!("`{name}` must be a whole number of at least 1"),
                            );
                            return true;
                        }
                    },
                    None => Value::Expr(e.clone()),
                });
            }
            "on_error" => {
                if self.on_error.is_some() {
                    dup(cx);
                    return true;
                }
                match str_lit(e).map(|s| (s.value(), s.span())) {
                    Some((v, span)) if v == "fail" => self.on_error = Some((OnError::Fail, span)),
                    Some((v, span)) if v == "collect" => {
                        self.on_error = Some((OnError::Collect, span));
                    }
                    _ => cx.error_spanned_by(
                        e,
                        "`on_error` must be the literal \"fail\" or \"collect\" (it decides the \
                         result type)",
                    ),
                }
            }
            "timeout" => {
                if self.timeout.is_some() {
                    dup(cx);
                    return true;
                }
                self.timeout = Some(match str_lit(e) {
                    Some(s) => match parse_duration(&s.value()) {
                        Ok(d) => Value::Lit(d, s.span()),
                        Err(BadDuration::TooLarge) => {
                            cx.error_spanned_by(
                                s,
                                format!(
                                    "`timeout` {:?} is too large: a `std::time::Duration` \
                                     holds at most {} seconds (about 584 billion years)",
                                    s.value(),
                                    u64::MAX
                                ),
                            );
                            return true;
                        }
                        Err(BadDuration::Invalid | BadDuration::Zero) => {
                            cx.error_spanned_by(
                                s,
                                "invalid `timeout`; expected a positive duration such as \
                                 \"500ms\", \"10s\", \"2m\" or \"1h\", or a \
                                 `std::time::Duration` expression",
                            );
                            return true;
                        }
                    },
                    None => Value::Expr(e.clone()),
                });
            }
            "schedule" => {
                if self.schedule.is_some() {
                    dup(cx);
                    return true;
                }
                match str_lit(e).and_then(|s| {
                    SCHEDULES.iter().find(|(n, _)| *n == s.value()).map(|(n, _)| (*n, s.span()))
                }) {
                    Some(v) => self.schedule = Some(v),
                    None => cx.error_spanned_by(
                        e,
                        "`schedule` must be the literal \"dynamic\" or \"static\" (how the mpi \
                         engine shares blocks among its ranks)",
                    ),
                }
            }
            "progress" => {
                if self.progress.is_some() {
                    dup(cx);
                    return true;
                }
                self.progress = Some(e.clone());
            }
            "crate" => {
                if self.krate.is_some() {
                    dup(cx);
                    return true;
                }
                let path = match str_lit(e) {
                    Some(s) => s.parse::<syn::Path>(),
                    None => syn::parse2::<syn::Path>(e.to_token_stream()),
                };
                match path {
                    Ok(p) => self.krate = Some(p),
                    Err(_) => cx.error_spanned_by(e, "`crate` must be a path such as `::parfor`"),
                }
            }
            _ => unreachable!("COMMON_NAMES and the match agree"),
        }
        true
    }

    /// The path of the parfor crate in generated code: `::parfor` or the `crate = ...` option.
    pub(crate) fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(p) => p.to_token_stream(),
            None => quote!(::parfor),
        }
    }

    /// Fills unset options from `defaults` (the outer `#[parfor(...)]` attribute).
    #[allow(dead_code)] // used by `#[parfor]` only
    pub(crate) fn inherit(&mut self, defaults: &Common) {
        fn take<T: Clone>(slot: &mut Option<T>, d: &Option<T>) {
            if slot.is_none() {
                slot.clone_from(d);
            }
        }
        take(&mut self.engine, &defaults.engine);
        take(&mut self.workers, &defaults.workers);
        take(&mut self.chunk, &defaults.chunk);
        take(&mut self.on_error, &defaults.on_error);
        take(&mut self.timeout, &defaults.timeout);
        take(&mut self.progress, &defaults.progress);
        take(&mut self.krate, &defaults.krate);
        take(&mut self.schedule, &defaults.schedule);
    }

    /// An expression of type `parfor::__private::Options` for these options (`on_error` is
    /// left to the caller, which picks `map` or `try_map`).
    pub(crate) fn to_options(&self) -> TokenStream {
        let krate = self.krate();
        let mut out = quote!(#krate::__private::Options::new());
        if let Some(engine) = &self.engine {
            let value = match engine {
                Value::Lit(name, span) => {
                    let variant = ENGINES.iter().find(|e| e.0 == *name).map_or("Threads", |e| e.1);
                    let variant = Ident::new(variant, *span);
                    quote_spanned!(*span=> #krate::Engine::#variant)
                }
                Value::Expr(e) => {
                    quote_spanned!(e.span()=> { let __parfor_engine: #krate::Engine = #e; __parfor_engine })
                }
            };
            out = quote!(#out.engine(#value));
        }
        for (name, slot) in [("workers", &self.workers), ("chunk", &self.chunk)] {
            let method = Ident::new(name, Span::call_site());
            match slot {
                Some(Value::Lit(n, span)) => {
                    let lit = syn::LitInt::new(&format!("{n}usize"), *span);
                    out = quote!(#out.#method(#lit));
                }
                Some(Value::Expr(e)) => {
                    let v = quote_spanned!(e.span()=> { let __parfor_n: usize = #e; __parfor_n });
                    out = quote!(#out.#method(#v));
                }
                None => {}
            }
        }
        if let (Some(Value::Lit(engine, _)), Some(timeout)) = (&self.engine, &self.timeout)
            && !TIMEOUT_ENGINES.contains(engine)
        {
            // Checked here, after `#[parfor]` loops inherit their function's options, so an
            // engine and a timeout from different attributes are caught too.
            let msg = format!(
                "`timeout` needs the {} engine: the `{engine}` engine cannot stop an item that \
                 runs too long; remove `timeout`, or use `engine = \"fork\"`",
                one_of(TIMEOUT_ENGINES)
            );
            let error = match timeout {
                Value::Lit(_, span) => syn::Error::new(*span, msg),
                Value::Expr(e) => syn::Error::new_spanned(e, msg),
            };
            let error = error.to_compile_error();
            out = quote!({ #error; #out });
        }
        match &self.timeout {
            Some(Value::Lit(d, span)) => {
                let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
                out = quote_spanned!(*span=> #out.timeout(::core::time::Duration::new(#secs, #nanos)));
            }
            Some(Value::Expr(e)) => {
                let v = quote_spanned!(e.span()=> { let __parfor_d: ::core::time::Duration = #e; __parfor_d });
                out = quote!(#out.timeout(#v));
            }
            None => {}
        }
        if let Some(p) = &self.progress {
            let v = quote_spanned!(p.span()=> { let __parfor_p: bool = #p; __parfor_p });
            out = quote!(#out.progress(#v));
        }
        if let Some((name, span)) = self.schedule {
            let variant = SCHEDULES.iter().find(|s| s.0 == name).map_or("Dynamic", |s| s.1);
            let variant = Ident::new(variant, span);
            out = quote!(#out.schedule(#krate::Schedule::#variant));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> (Common, Result<(), String>, Vec<String>) {
        let opts = syn::parse::Parser::parse_str(parse_options, src).unwrap();
        let cx = Ctxt::new();
        let mut c = Common::default();
        let mut unknown = Vec::new();
        for o in &opts {
            if !c.accept(&cx, o) {
                unknown.push(o.name.to_string());
            }
        }
        (c, cx.check().map_err(|e| e.to_string()), unknown)
    }

    #[test]
    fn literals_are_checked() {
        let (_, r, _) = parse(r#"engine = "gpu""#);
        assert_eq!(
            r.unwrap_err(),
            "unknown engine `gpu`; expected one of `serial`, `threads`, `fork` or `mpi`"
        );
        let (_, r, _) = parse(r#"schedule = "guided""#);
        assert!(r.unwrap_err().contains("\"dynamic\" or \"static\""));
        let (c, r, _) = parse(r#"schedule = "static""#);
        assert!(r.is_ok());
        assert!(c.to_options().to_string().contains("Schedule :: Static"));
        let (_, r, _) = parse(r#"engine = "mpi""#);
        assert_eq!(r.is_ok(), cfg!(feature = "mpi"));
        let (_, r, _) = parse("workers = 0");
        assert!(r.unwrap_err().contains("at least 1"));
        let (_, r, _) = parse(r#"timeout = "soon""#);
        assert!(r.unwrap_err().contains("invalid `timeout`"));
        let (_, r, _) = parse(r#"engine = "serial", engine = "fork""#);
        assert_eq!(r.unwrap_err(), "duplicate option `engine`");
    }

    #[test]
    fn unknown_names_are_left_to_the_caller() {
        let (c, r, unknown) = parse(r#"engine = "fork", zip = true, workers = n, crate = "::x""#);
        assert!(r.is_ok());
        assert_eq!(unknown, ["zip"]);
        assert!(matches!(c.engine, Some(Value::Lit("fork", _))));
        assert!(matches!(c.workers, Some(Value::Expr(_))));
        // Engine names in any case, kept as the canonical name.
        for (lit, name) in [("Fork", "fork"), ("THREADS", "threads"), ("Serial", "serial")] {
            let (c, r, _) = parse(&format!("engine = {lit:?}"));
            assert!(r.is_ok(), "{lit}");
            assert!(matches!(c.engine, Some(Value::Lit(n, _)) if n == name), "{lit}");
        }
        assert_eq!(c.krate().to_string(), ":: x");
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 0.1ms "), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.000000001s"), Ok(Duration::new(1, 1)));
        assert_eq!(
            parse_duration("0.333333333333333333333333333333s"),
            Ok(Duration::new(0, 333_333_333))
        );
        assert_eq!(parse_duration("0s"), Err(BadDuration::Zero));
        assert_eq!(parse_duration("0.0000000001s"), Err(BadDuration::Zero));
        assert_eq!(parse_duration("s"), Err(BadDuration::Invalid));
        assert_eq!(parse_duration("."), Err(BadDuration::Invalid));
        assert_eq!(parse_duration("1.2.3s"), Err(BadDuration::Invalid));
        assert_eq!(parse_duration("10"), Err(BadDuration::Invalid));
        assert_eq!(parse_duration("10d"), Err(BadDuration::Invalid));
        assert_eq!(parse_duration("-1s"), Err(BadDuration::Invalid));
        // The largest `Duration`, and just above it.
        let max = format!("{}.999999999s", u64::MAX);
        assert_eq!(parse_duration(&max), Ok(Duration::MAX));
        assert_eq!(
            parse_duration(&format!("{}s", u128::from(u64::MAX) + 1)),
            Err(BadDuration::TooLarge)
        );
        assert_eq!(parse_duration("18446744073709551616s"), Err(BadDuration::TooLarge));
        assert_eq!(parse_duration("5124095576030432h"), Err(BadDuration::TooLarge));
        assert_eq!(parse_duration(&format!("{}h", "9".repeat(60))), Err(BadDuration::TooLarge));
    }

    #[test]
    fn timeouts_are_refused_at_compile_time_on_engines_that_cannot_stop_items() {
        for (src, refused) in [
            (r#"engine = "threads", timeout = "1s""#, true),
            (r#"timeout = t, engine = "serial""#, true),
            (r#"engine = "fork", timeout = "1s""#, false),
            (r#"engine = e, timeout = "1s""#, false),
            (r#"timeout = "1s""#, false),
            (r#"engine = "threads""#, false),
        ] {
            let (c, r, _) = parse(src);
            assert!(r.is_ok(), "{src}");
            let tokens = c.to_options().to_string();
            assert_eq!(tokens.contains("compile_error"), refused, "{src}: {tokens}");
            if refused {
                assert!(tokens.contains("`timeout` needs the `fork` engine"), "{tokens}");
            }
        }
        // Inherited from the function's attribute.
        let (mut c, _, _) = parse(r#"timeout = "1s""#);
        let (d, _, _) = parse(r#"engine = "serial""#);
        c.inherit(&d);
        assert!(c.to_options().to_string().contains("the `serial` engine cannot stop"));
    }

    #[test]
    fn literal_timeouts_become_exact_durations() {
        let (_, r, _) = parse(r#"timeout = "99999999999999999999h""#);
        assert!(r.unwrap_err().contains("is too large"));
        let (c, r, _) = parse(r#"timeout = "18446744073709551615.5s""#);
        assert!(r.is_ok());
        let tokens = c.to_options().to_string();
        assert!(
            tokens.contains("Duration :: new (18446744073709551615u64 , 500000000u32)"),
            "{tokens}"
        );
    }
}
