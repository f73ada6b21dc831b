//! The rewrite: calls to streamdsl ops written in the block become their explicit-stream forms.
//!
//! | written in the block | becomes |
//! | --- | --- |
//! | `randn::<T>(shape)`, `zeros`, `ones`, `full`, `randn_with`, `mm(&a, &b)` (unqualified) | `$crate::ops::randn_on::<T>(stream, shape)`, … |
//! | `x.mm(&y)`, `x.add_scalar(v)` (and `sub_`/`mul_`/`div_scalar`), `x.mean()`, `x.to_dtype::<U>()`, `x.fill_(v)`, `x.copy_(&y)` | `$crate::ops::mm_on(stream, &x, &y)`, … |
//!
//! Left alone (they still run on the scope's stream, because the scope makes it current): qualified paths
//! such as `ops::mm(..)` or `crate::mm(..)` (the way to opt out), the methods and operators whose names
//! std shares (`add`, `sub`, `mul`, `div`, `sum`, `+ - * /`), code inside closures, async blocks and nested
//! items (their ops take the stream that is current when they run, not when they are created), and macro
//! invocations.

use proc_macro2::Span;
use quote::quote_spanned;
use syn::punctuated::Punctuated;
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident};

/// Unqualified free functions and the explicit form each becomes.
const FREE_FUNCTIONS: &[(&str, &str)] = &[
    ("randn", "randn_on"),
    ("randn_with", "randn_with_on"),
    ("zeros", "zeros_on"),
    ("ones", "ones_on"),
    ("full", "full_on"),
    ("mm", "mm_on"),
];

/// Tensor methods whose names std does not use, and their explicit forms (receiver passed by reference).
const METHODS: &[(&str, &str)] = &[
    ("mm", "mm_on"),
    ("add_scalar", "add_scalar_on"),
    ("sub_scalar", "sub_scalar_on"),
    ("mul_scalar", "mul_scalar_on"),
    ("div_scalar", "div_scalar_on"),
    ("mean", "mean_on"),
    ("fill_", "fill_on"),
    ("copy_", "copy_on"),
    ("to_dtype", "to_dtype_on"),
];

/// Rewrites op calls in a block to name `stream` (an identifier bound by the expansion).
pub struct Rewriter {
    pub stream: Ident,
    /// The path of the runtime crate (`$crate` of the `macro_rules!` front).
    pub krate: proc_macro2::TokenStream,
}

fn lookup(table: &[(&str, &'static str)], name: &Ident) -> Option<&'static str> {
    table.iter().find(|(from, _)| name == from).map(|(_, to)| *to)
}

impl VisitMut for Rewriter {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        // Rewrite inner expressions first, so `mm(&randn(..)?, &b)` rewrites both calls.
        syn::visit_mut::visit_expr_mut(self, expr);
        let stream = &self.stream;
        let replacement = match expr {
            Expr::Call(call) => {
                let Expr::Path(path) = &*call.func else { return };
                if path.qself.is_some() || path.path.leading_colon.is_some() || path.path.segments.len() != 1 {
                    return;
                }
                let segment = &path.path.segments[0];
                let Some(explicit) = lookup(FREE_FUNCTIONS, &segment.ident) else { return };
                let name = Ident::new(explicit, segment.ident.span());
                let generics = &segment.arguments;
                let args = &call.args;
                let span = segment.ident.span();
                let krate = located_at(&self.krate, span);
                quote_spanned!(span=> #krate::ops::#name #generics (#stream, #args))
            }
            Expr::MethodCall(call) => {
                let Some(explicit) = lookup(METHODS, &call.method) else { return };
                let name = Ident::new(explicit, call.method.span());
                let receiver = &call.receiver;
                let args: &Punctuated<Expr, syn::Token![,]> = &call.args;
                let span = call.method.span();
                let krate = located_at(&self.krate, span);
                let comma = (!args.is_empty()).then(|| quote_spanned!(span=> ,));
                if call.method == "to_dtype" {
                    // `x.to_dtype::<U>()` → `to_dtype_on::<_, U>(stream, &x)`.
                    let target = call.turbofish.as_ref().map(|t| &t.args);
                    let generics = target.map(|t| quote_spanned!(span=> ::<_, #t>));
                    quote_spanned!(span=> #krate::ops::#name #generics (#stream, &(#receiver) #comma #args))
                } else {
                    let generics = &call.turbofish;
                    quote_spanned!(span=> #krate::ops::#name #generics (#stream, &(#receiver) #comma #args))
                }
            }
            _ => return,
        };
        *expr = Expr::Verbatim(replacement);
    }

    // Closures, async blocks and nested items run later, under whatever stream is current then.
    fn visit_expr_closure_mut(&mut self, _: &mut syn::ExprClosure) {}
    fn visit_expr_async_mut(&mut self, _: &mut syn::ExprAsync) {}
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// `tokens` shown at `span` in diagnostics, still resolved where they were written: the crate path `$crate`
/// from the `macro_rules!` front spans the whole invocation, and a call's diagnostics should point at the call.
pub fn located_at(tokens: &proc_macro2::TokenStream, span: Span) -> proc_macro2::TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut tt| {
            tt.set_span(tt.span().located_at(span));
            tt
        })
        .collect()
}

/// The identifier the expansion binds the stream to; mixed-site hygiene keeps it out of the user's reach.
pub fn stream_ident() -> Ident {
    Ident::new("__streamdsl_stream", Span::mixed_site())
}

/// `use PATH::ops::{every target};` for `[PATH]` (see `check_rewrite_targets!`).
pub fn check_targets(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let parsed = syn::parse::Parser::parse2(
        |input: syn::parse::ParseStream<'_>| {
            let path;
            syn::bracketed!(path in input);
            path.parse::<proc_macro2::TokenStream>()
        },
        input,
    );
    let krate = match parsed {
        Ok(krate) => krate,
        Err(e) => return e.to_compile_error(),
    };
    let mut names: Vec<&str> = FREE_FUNCTIONS.iter().chain(METHODS).map(|(_, to)| *to).collect();
    names.sort_unstable();
    names.dedup();
    let names = names.into_iter().map(|n| Ident::new(n, Span::call_site()));
    quote::quote! {
        #[allow(unused_imports)]
        use #krate::ops::{#(#names),*};
    }
}
