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

#[cfg(test)]
mod never_panics {
    //! Property test: whatever tokens reach the macro (pieces of its grammar in any order and nesting, and
    //! valid invocations with tokens deleted, repeated or swapped), parsing, validation and expansion return
    //! tokens (the expansion or `compile_error!`s), never a panic.

    use proc_macro2::TokenStream;
    use proptest::prelude::*;

    /// Tokens from the macro's grammar and its neighbourhood, each balanced so the whole parses as tokens.
    fn piece() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("stream".to_string()),
            Just("steam".to_string()),
            Just("device".to_string()),
            Just("=".to_string()),
            Just("==".to_string()),
            Just(",".to_string()),
            Just(";".to_string()),
            Just("s".to_string()),
            Just("&s".to_string()),
            Just("42".to_string()),
            Just("::".to_string()),
            Just("crate".to_string()),
            Just("self".to_string()),
            Just("[::streamdsl]".to_string()),
            Just("[]".to_string()),
            Just("x.await".to_string()),
            Just("async { x.await }".to_string()),
            Just("|| zeros::<f32>([2])".to_string()),
            Just("mm(&a, &b)?".to_string()),
            Just("a.to_dtype::<f16>()?".to_string()),
            Just("x.mean()".to_string()),
            Just("fn f() {}".to_string()),
            Just("let a = randn::<f32>([4])?;".to_string()),
            Just("return".to_string()),
            Just("'a".to_string()),
            "[a-z_][a-z0-9_]{0,6}".prop_map(|s| s),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop::collection::vec(inner, 0..6).prop_flat_map(|items| {
                let body = items.join(" ");
                prop_oneof![Just(format!("{{ {body} }}")), Just(format!("( {body} )")), Just(format!("[ {body} ]")),]
            })
        })
    }

    fn expand(src: &str) {
        if let Ok(tokens) = src.parse::<TokenStream>() {
            let _ = super::gpu_scope(tokens);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_token_sequences(pieces in prop::collection::vec(piece(), 0..12)) {
            expand(&pieces.join(" "));
        }

        #[test]
        fn mutated_valid_invocations(
            edits in prop::collection::vec((0usize..40, 0usize..3, piece()), 1..4),
        ) {
            let valid = "[::streamdsl] stream = &streams[i], { let a = randn::<f32>([4, 4])?; let b = a.mm(&a)?.to_dtype::<f16>()?; x.fill_(0.0)?; (b, a.mean()?) }";
            let mut tokens: Vec<String> = valid.parse::<TokenStream>().unwrap().into_iter().map(|t| t.to_string()).collect();
            for (at, kind, piece) in edits {
                let at = at % (tokens.len() + 1);
                match kind {
                    0 if at < tokens.len() => { tokens.remove(at); }
                    1 => tokens.insert(at, piece),
                    _ if at + 1 < tokens.len() => tokens.swap(at, at + 1),
                    _ => tokens.push(piece),
                }
            }
            expand(&tokens.join(" "));
        }
    }
}
