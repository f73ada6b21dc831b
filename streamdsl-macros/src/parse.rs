//! Parsing: the raw syntax of `gpu_scope!(KEY = EXPR, ... , { BLOCK })`, keeping every span. The runtime's
//! `macro_rules!` front passes the crate's path first, in brackets (`[$crate] stream = s, { .. }`), so a
//! renamed dependency works.
//!
//! Parsing is lenient: it collects whatever `KEY = EXPR` pairs stand before the block and the tokens that
//! follow it, so that validation (in `model`) can report each mistake at its own span with a message that
//! names the fix, and so the user's block can still be emitted when the header is wrong.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Block, Expr, Token};

/// One `key = value` argument before the block.
pub struct KeyValue {
    pub key: syn::Ident,
    /// `None` when nothing followed `key =`.
    pub value: Option<Expr>,
    /// A value written without its key (`gpu_scope!(s, { .. })`) has no key; its span is kept here.
    pub bare_span: Option<Span>,
}

/// What the macro was given, before validation.
pub struct RawScope {
    /// The path of the runtime crate: `[$crate]` as `streamdsl::gpu_scope!` passes it first, else `::streamdsl`.
    pub krate: TokenStream,
    /// The span of the whole input, for errors about something missing.
    pub whole: Span,
    pub args: Vec<KeyValue>,
    /// Errors met while parsing (bad tokens in the header).
    pub errors: Vec<syn::Error>,
    pub block: Option<Block>,
    /// Anything after the block (other than one trailing comma).
    pub trailing: Option<TokenStream>,
}

impl Parse for RawScope {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let whole = Span::call_site();
        let krate = if input.peek(syn::token::Bracket) {
            let path;
            syn::bracketed!(path in input);
            path.parse()?
        } else {
            quote::quote!(::streamdsl)
        };
        let mut raw = RawScope { krate, whole, args: Vec::new(), errors: Vec::new(), block: None, trailing: None };
        while !input.is_empty() {
            if input.peek(syn::token::Brace) {
                raw.block = Some(input.parse()?);
                let _ = input.parse::<Option<Token![,]>>()?;
                if !input.is_empty() {
                    raw.trailing = Some(input.parse()?);
                }
                break;
            }
            if input.peek(syn::Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
                let key: syn::Ident = input.parse()?;
                input.parse::<Token![=]>()?;
                let value = if input.is_empty() || input.peek(Token![,]) || is_body(input) {
                    None
                } else {
                    Some(Expr::parse_without_eager_brace(input)?)
                };
                raw.args.push(KeyValue { key, value, bare_span: None });
            } else {
                // Something that is neither `key = value` nor the block: most likely a stream without its key.
                match Expr::parse_without_eager_brace(input) {
                    Ok(expr) => {
                        let span = expr.span();
                        let key = syn::Ident::new("stream", span);
                        raw.args.push(KeyValue { key, value: Some(expr), bare_span: Some(span) });
                    }
                    Err(e) => {
                        raw.errors.push(e);
                        // Skip to the block, if there is one, so it can still be emitted.
                        skip_to_block(input)?;
                        continue;
                    }
                }
            }
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            } else if !input.is_empty() && !input.peek(syn::token::Brace) {
                raw.errors.push(input.error("expected `,` here"));
                skip_to_block(input)?;
            } else if input.peek(syn::token::Brace) {
                raw.errors.push(syn::Error::new(
                    input.span(),
                    "expected `,` between the stream and the block: `gpu_scope!(stream = s, { ... })`",
                ));
            }
        }
        Ok(raw)
    }
}

/// Whether the braces ahead are the body (nothing but an optional comma follows them), rather than a
/// block expression used as the stream (`stream = { .. }, { body }`).
fn is_body(input: ParseStream<'_>) -> bool {
    if !input.peek(syn::token::Brace) {
        return false;
    }
    let fork = input.fork();
    if fork.parse::<Block>().is_err() {
        return true;
    }
    let _ = fork.parse::<Option<Token![,]>>();
    fork.is_empty()
}

fn skip_to_block(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(syn::token::Brace) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}
