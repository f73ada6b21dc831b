//! Validation: turns the raw syntax into the scope model, or into errors at the offending spans.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Block, Expr};

use crate::parse::RawScope;

/// A valid `gpu_scope!` invocation.
pub struct Scope {
    /// The path of the runtime crate, from the `macro_rules!` front.
    pub krate: proc_macro2::TokenStream,
    /// The stream expression, evaluated once.
    pub stream: Expr,
    pub block: Block,
}

/// The outcome of validation: the model, or every error found plus the block to emit anyway.
pub enum Validated {
    Ok(Scope),
    Err { errors: Vec<syn::Error>, block: Option<Block> },
}

const KEYS: &[&str] = &["stream"];
const SYNTAX: &str = "gpu_scope!(stream = s, { ... })";

pub fn validate(raw: RawScope) -> Validated {
    let mut errors = raw.errors;
    let mut stream: Option<(Span, Expr)> = None;
    let mut missing_value = false;
    for arg in raw.args {
        let name = arg.key.to_string();
        if let Some(span) = arg.bare_span {
            let message = if stream.is_some() || missing_value {
                format!("expected a block `{{ ... }}` after the stream: wrap this code in braces, as in `{SYNTAX}`")
            } else {
                format!("expected `stream = <expr>`: name the argument, as in `{SYNTAX}`")
            };
            errors.push(syn::Error::new(span, message));
            missing_value = true;
            continue;
        }
        if !KEYS.contains(&name.as_str()) {
            let hint = match closest_key(&name) {
                Some(k) => format!("unknown key `{name}`, did you mean `{k}`? expected `stream`"),
                None => format!("unknown key `{name}`, expected `stream`"),
            };
            errors.push(syn::Error::new(arg.key.span(), hint));
            missing_value = true;
            continue;
        }
        let Some(value) = arg.value else {
            errors.push(syn::Error::new(
                arg.key.span(),
                "expected an expression after `stream =`, such as the name of a `Stream`",
            ));
            missing_value = true;
            continue;
        };
        if let Some((first, _)) = &stream {
            let mut e = syn::Error::new(arg.key.span(), "`stream` set twice: give one stream per scope");
            e.combine(syn::Error::new(*first, "first set here"));
            errors.push(e);
            continue;
        }
        stream = Some((arg.key.span(), value));
    }
    let Some(block) = raw.block else {
        if errors.is_empty() {
            errors.push(syn::Error::new(raw.whole, format!("expected a block after the stream: `{SYNTAX}`")));
        }
        return Validated::Err { errors, block: None };
    };
    if let Some(trailing) = raw.trailing {
        errors.push(syn::Error::new(
            trailing.span(),
            "unexpected tokens after the block: the block must be the last argument of `gpu_scope!`",
        ));
    }
    if stream.is_none() && !missing_value && errors.is_empty() {
        errors.push(syn::Error::new(
            block.brace_token.span.open(),
            format!("missing `stream = <expr>` before the block: `{SYNTAX}`"),
        ));
    }
    let mut awaits = AwaitFinder::default();
    awaits.visit_block(&block);
    errors.extend(awaits.found.into_iter().map(|span| {
        syn::Error::new(
            span,
            "`.await` inside `gpu_scope!`: the scope's stream is current for this thread only, and a task may \
             resume on another thread; end the scope before awaiting",
        )
    }));
    match (stream, errors.is_empty()) {
        (Some((_, stream)), true) => Validated::Ok(Scope { krate: raw.krate, stream, block }),
        _ => Validated::Err { errors, block: Some(block) },
    }
}

/// The known key within edit distance 2 of `name`, for "did you mean" hints.
fn closest_key(name: &str) -> Option<&'static str> {
    KEYS.iter().copied().find(|k| edit_distance(name, k) <= 2)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Finds `.await` in the block itself (not in nested async blocks, closures or items, which run later).
#[derive(Default)]
struct AwaitFinder {
    found: Vec<Span>,
}

impl<'ast> Visit<'ast> for AwaitFinder {
    fn visit_expr_await(&mut self, e: &'ast syn::ExprAwait) {
        self.found.push(e.await_token.span);
        syn::visit::visit_expr_await(self, e);
    }
    fn visit_expr_async(&mut self, _: &'ast syn::ExprAsync) {}
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {}
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("steam", "stream"), 1);
        assert_eq!(edit_distance("stream", "stream"), 0);
        assert_eq!(closest_key("strem"), Some("stream"));
        assert_eq!(closest_key("device"), None);
    }
}
