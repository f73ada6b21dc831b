//! `#[kernel]`: parse → model → validate → lower (CUDA C and Rust) → expand.
//!
//! | stage | module | what |
//! | --- | --- | --- |
//! | parse | `parse` | the attribute's options; syntax to the model, with a `syn::Error` at each construct outside the subset |
//! | model | `model` | the subset as a typed tree (types as variables, solved later) |
//! | validate | `validate` | type inference as Rust does it, mismatches and unknowns as errors |
//! | lower | `lower_cuda`, `lower_rust` | the model to CUDA C (a string) and to Rust (tokens), with the same types |
//! | expand | `expand` | the items users call and the runtime glue |
//!
//! Never panics: every problem is a `syn::Error`, and the item is still emitted (with bodies that never run) so
//! that one mistake gives one error.

mod expand;
mod lower_cuda;
mod lower_rust;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

/// `#[kernel(attr)] item`.
pub fn kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    let (options, mut errors) = parse::options(attr);
    let f: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new_spanned(
                &item,
                "`#[kernel]` goes on a function: `#[kernel] fn gelu(x: f32) -> f32 { .. }`",
            )
            .to_compile_error();
            return quote!(#e #item);
        }
    };
    if !errors.is_empty() {
        // The attribute itself is wrong: say only that, with the form the signature suggests.
        let sig = parse::signature(&f);
        let grid = sig.params.iter().any(|(_, ty)| matches!(ty, Some(model::ParamTy::Slice { .. })));
        let form = if grid { model::Form::Grid } else { options.form };
        return expand::stub(&f, &options.krate, form, sig, errors);
    }
    let built = parse::kernel(options.form, &f).and_then(|mut k| {
        lower_cuda::name_locals(&mut k);
        let types = validate::check(&k)?;
        let signature = expand::signature_text(&f, options.form);
        let cuda = lower_cuda::Cuda::new(&k, &types).lower(&signature)?;
        Ok((k, types, cuda))
    });
    match built {
        Ok((k, types, cuda)) if errors.is_empty() => expand::kernel(&f, &options.krate, &k, &types, &cuda),
        other => {
            if let Err(e) = other {
                errors.extend(e);
            }
            expand::stub(&f, &options.krate, options.form, parse::signature(&f), errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    fn expand(attr: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
        super::kernel(attr, item).to_string()
    }

    #[test]
    fn odd_input_is_an_error_never_a_panic() {
        let items = [
            quote!(
                struct S;
            ),
            quote!(
                fn f() {}
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    x
                }
            ),
            quote!(
                fn f<T>(x: T) -> T {
                    x
                }
            ),
            quote!(
                async fn f(x: f32) -> f32 {
                    x
                }
            ),
            quote!(
                fn f(self) -> f32 {
                    1.0
                }
            ),
            quote!(
                fn f((a, b): (f32, f32)) -> f32 {
                    a
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    let (a, b) = (x, x);
                    a + b + c
                }
            ),
            quote!(
                fn f(x: f32) -> () {
                    x
                }
            ),
            quote!(
                fn f(x: &mut [f32]) {
                    x[0] = 1;
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    loop {
                        break 1.0;
                    }
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    'a: loop {
                        break 'a;
                    }
                    x
                }
            ),
            quote!(
                fn f(x: f32) -> (f32, f32) {
                    if x > 0.0 {
                        (x, x)
                    } else {
                        x
                    }
                }
            ),
            quote!(
                fn f(x: f32) -> (f32, f32) {
                    (x, x, x)
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    g(1.0)
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    -u32::MAX as f32 + (1u32 - 2).abs() as f32
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    x.powi(1.0) + x.min()
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    x[0]
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    *x
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    x.0
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    true as f32
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    return;
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    x += 1.0;
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    for i in 0.. {}
                    x
                }
            ),
        ];
        // Left to rustc (the Rust form keeps the user's spans): overflowing literals, uninitialised locals.
        let for_rustc = [
            quote!(
                fn f(x: f32) -> f32 {
                    1e40f32 + 0xffu32 as f32 + 99999999999999999999999i32 as f32
                }
            ),
            quote!(
                fn f(x: f32) -> f32 {
                    let y;
                    y
                }
            ),
        ];
        let attrs = [quote!(), quote!(grid), quote!(device), quote!(grid, device), quote!(crate = 1), quote!(nope)];
        for attr in &attrs {
            for item in items.iter().chain(&for_rustc) {
                let out = expand(attr.clone(), item.clone());
                assert!(!out.is_empty(), "#[kernel({attr})] {item}");
            }
        }
        // Each of these has a mistake: the expansion carries an error.
        for item in &items[3..] {
            let out = expand(quote!(), item.clone());
            assert!(out.contains("compile_error"), "no error for {item}:\n{out}");
        }
    }

    #[test]
    fn literals_take_the_type_rust_infers() {
        let out = expand(
            quote!(),
            quote!(
                fn f(x: f32) -> f32 {
                    let k = 2.0;
                    let n = 3;
                    x * k + n as f32
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("x * k + (float)n"), "{out}");
        assert!(out.contains("float k = 2.0f;") && out.contains("i32 n = 3;"), "{out}");
        assert!(out.contains("2.0f32") && out.contains("3i32"), "the Rust form is typed too: {out}");
        let out = expand(
            quote!(),
            quote!(
                fn f(x: f64) -> f64 {
                    0.1 * x
                }
            ),
        );
        assert!(out.contains("return 0.1 * x;"), "{out}");
    }
}
