//! Code generation: the model (or the errors) to plain Rust.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;

use crate::model::{validate, Validated};
use crate::parse::RawScope;
use crate::rewrite::{stream_ident, Rewriter};

/// `gpu_scope!` from input tokens to output tokens; never panics.
pub fn gpu_scope(input: TokenStream) -> TokenStream {
    let raw: RawScope = match syn::parse2(input) {
        Ok(raw) => raw,
        Err(e) => return e.to_compile_error(),
    };
    match validate(raw) {
        Validated::Ok(scope) => {
            let stream = stream_ident();
            let owner = syn::Ident::new("__streamdsl_owner", proc_macro2::Span::mixed_site());
            let guard = syn::Ident::new("__streamdsl_guard", proc_macro2::Span::mixed_site());
            let mut block = scope.block;
            Rewriter { stream: stream.clone() }.visit_block_mut(&mut block);
            let stmts = &block.stmts;
            let expr = &scope.stream;
            // `as_stream` at the expression's span: a non-stream is reported there.
            let as_stream = quote_spanned!(expr.span()=> ::streamdsl::__private::as_stream(#owner));
            // `match &(EXPR)` evaluates EXPR once, keeps temporaries alive for the whole block and borrows a
            // named stream for it, so moving or dropping that stream inside is a borrow error.
            quote! {
                match &(#expr) {
                    #owner => {
                        let #stream: &::streamdsl::Stream = #as_stream;
                        let #guard = ::streamdsl::__private::enter(#stream);
                        #(#stmts)*
                    }
                }
            }
        }
        Validated::Err { errors, block } => {
            let errors = errors.iter().map(syn::Error::to_compile_error);
            // Emit the user's block anyway, so one mistake in the header gives one error, not a cascade.
            match block {
                Some(block) => quote! { { #(#errors)* #block } },
                None => quote! { { #(#errors)* } },
            }
        }
    }
}
