//! Code generation: the model (or the errors) to plain Rust.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;

use crate::model::{validate, Validated};
use crate::parse::RawScope;
use crate::rewrite::{located_at, stream_ident, Rewriter};

/// `gpu_scope!` from input tokens to output tokens; never panics.
pub fn gpu_scope(input: TokenStream) -> TokenStream {
    let raw: RawScope = match syn::parse2(input) {
        Ok(raw) => raw,
        Err(e) => return e.to_compile_error(),
    };
    match validate(raw) {
        Validated::Ok(scope) => {
            let stream = stream_ident();
            let guard = syn::Ident::new("__streamdsl_guard", proc_macro2::Span::mixed_site());
            let mut block = scope.block;
            let krate = scope.krate;
            Rewriter { stream: stream.clone(), krate: krate.clone() }.visit_block_mut(&mut block);
            let stmts = &block.stmts;
            let expr = &scope.stream;
            // `as_stream` at the expression's span, so a non-stream is reported there. As a `match`
            // scrutinee, EXPR is evaluated once, its temporaries live for the whole block, and a named
            // stream stays borrowed for it, so moving or dropping that stream inside is a borrow error.
            let at_expr = located_at(&krate, expr.span());
            let as_stream = quote_spanned!(expr.span()=> #at_expr::__private::as_stream(&(#expr)));
            // The arm's braces are the user's, so "dropped here" notes point at the block's end.
            let mut body = proc_macro2::Group::new(
                proc_macro2::Delimiter::Brace,
                quote! {
                    let #guard = #krate::__private::enter(#stream);
                    #(#stmts)*
                },
            );
            body.set_span(block.brace_token.span.join());
            quote! {
                match #as_stream {
                    #stream => #body
                }
            }
        }
        Validated::Err { errors, block } => {
            let errors = errors.iter().map(syn::Error::to_compile_error);
            // Emit the user's block anyway, so one mistake in the header gives one error, not a cascade.
            match block {
                Some(block) => {
                    let stmts = &block.stmts;
                    quote! { { #(#errors)* #(#stmts)* } }
                }
                None => quote! { { #(#errors)* } },
            }
        }
    }
}

#[cfg(test)]
mod snapshots {
    //! The formatted expansion of representative blocks, so a change to the generated code shows in review.
    //! Update with `INSTA_UPDATE=always cargo test -p streamdsl-macros` and read the diff.

    use quote::quote;

    /// Whether the checked-in snapshots are here (not on a machine that only got the test binary).
    fn have_snapshots() -> bool {
        let here = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/snapshots")).is_dir();
        if !here {
            // The real stderr: the harness hides what passing tests print.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"skipped: the snapshot files are not on this machine\n",
            );
        }
        here
    }

    fn expand(input: proc_macro2::TokenStream) -> String {
        let body = super::gpu_scope(input);
        let file: syn::File = syn::parse2(quote!(fn expansion() { #body })).expect("the expansion parses");
        prettyplease::unparse(&file)
    }

    #[test]
    fn free_functions_become_explicit() {
        if !have_snapshots() {
            return;
        }
        insta::assert_snapshot!(expand(quote!(stream = s, {
            let a = randn::<f32>([10, 5])?;
            let b = randn::<f32>([5, 10])?;
            mm(&a, &b)?
        })));
    }

    #[test]
    fn tensor_methods_become_explicit() {
        if !have_snapshots() {
            return;
        }
        insta::assert_snapshot!(expand(quote!(stream = &streams[i], {
            let h = x.mm(&y)?.to_dtype::<f16>()?;
            x.fill_(0.0)?;
            let m = x.add_scalar(1.0)?.mean()?;
            (h, m)
        })));
    }

    #[test]
    fn shared_names_qualified_paths_and_closures_are_left_alone() {
        if !have_snapshots() {
            return;
        }
        insta::assert_snapshot!(expand(quote!(stream = s, {
            let total = a.add(&b)?.sum()?;
            let sum: f32 = values.iter().sum();
            let mine = crate::mm(2, 3);
            let later = || zeros::<f32>([2]);
            let inner = gpu_scope!(stream = t, { ones::<f32>([1])? });
            (total, sum, mine, later, inner)
        })));
    }

    #[test]
    fn errors_keep_the_block() {
        if !have_snapshots() {
            return;
        }
        insta::assert_snapshot!(expand(quote!(steam = s, { zeros::<f32>([2]) })));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for input in [
            quote!(),
            quote!(,),
            quote!(stream),
            quote!(stream =),
            quote!(= s),
            quote!({} {}),
            quote!(stream = s, {}, {}),
        ] {
            let out = super::gpu_scope(input).to_string();
            assert!(out.contains("compile_error"), "{out}");
        }
    }
}
