//! The syntax of one `parmap!` call.

use crate::options::{RawOption, parse_options};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Token};

/// One `parmap!` call, as written.
///
/// ```text
/// parmap   := function ',' source (',' source)* ','? (';' options)?
/// function := expr            (a path, a closure, or any expression of a `Fn` type)
/// source   := expr            (anything that derefs to a slice, or an integer range)
/// options  := (option (',' option)* ','?)?
/// option   := name '=' expr | name '(' tokens ')'
/// ```
pub(crate) struct Input {
    pub(crate) func: Expr,
    pub(crate) sources: Vec<Expr>,
    /// `None` without a `;`.
    pub(crate) options: Vec<RawOption>,
}

const USAGE: &str = "`parmap!(f, xs, ys, ...; option = value, ...)`";

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                format!("`parmap!` needs a function and at least one source: {USAGE}"),
            ));
        }
        if input.peek(Token![;]) || input.peek(Token![,]) {
            return Err(
                input.error(format!("expected the function to map before this token: {USAGE}"))
            );
        }
        let func: Expr = input.parse()?;
        let mut sources = Vec::new();
        loop {
            if input.is_empty() || input.peek(Token![;]) {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error(format!(
                    "expected `,` before the next source or `;` before the options: {USAGE}"
                )));
            }
            input.parse::<Token![,]>()?;
            if input.is_empty() || input.peek(Token![;]) {
                break;
            }
            sources.push(input.parse::<Expr>()?);
        }
        if sources.is_empty() {
            return Err(syn::Error::new_spanned(
                &func,
                format!(
                    "`parmap!` needs at least one source after the function (a slice, `Vec`, \
                     array or integer range): {USAGE}"
                ),
            ));
        }
        let options = if input.parse::<Option<Token![;]>>()?.is_some() {
            parse_options(input)?
        } else {
            Vec::new()
        };
        Ok(Input { func, sources, options })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Input, String> {
        syn::parse_str::<Input>(src).map_err(|e| e.to_string())
    }

    fn err(src: &str) -> String {
        match parse(src) {
            Ok(_) => panic!("`{src}` parsed"),
            Err(e) => e,
        }
    }

    #[test]
    fn function_sources_and_options() {
        let i = parse("|a, b| a * b, x, &y[2..], 0..=n; zip = true, engine = \"serial\",").unwrap();
        assert!(matches!(i.func, Expr::Closure(_)));
        assert_eq!(i.sources.len(), 3);
        assert!(matches!(i.sources[2], Expr::Range(_)));
        let names: Vec<String> = i.options.iter().map(|o| o.name.to_string()).collect();
        assert_eq!(names, ["zip", "engine"]);
        let i = parse("f64::hypot, x, x,").unwrap();
        assert_eq!(i.sources.len(), 2);
        assert!(i.options.is_empty());
        assert!(parse("f, x;").unwrap().options.is_empty());
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(err("").contains("needs a function and at least one source"));
        assert!(err("; engine = \"serial\"").contains("expected the function"));
        assert!(err(", x").contains("expected the function"));
        assert!(err("f").contains("at least one source"));
        assert!(err("f,").contains("at least one source"));
        assert!(err("f; zip = true").contains("at least one source"));
        assert!(err("f x").contains("expected `,`"));
        assert!(err("f, x; zip").contains("zip = value"));
    }
}
