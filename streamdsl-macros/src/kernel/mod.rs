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
