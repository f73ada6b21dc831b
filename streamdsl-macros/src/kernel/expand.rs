//! The generated items. For a kernel `name`:
//!
//! - the functions users call: `name(..)` (the current stream) and `name_on(&stream, ..)` for an elementwise
//!   kernel, `name(..) -> GridLaunch` for a grid kernel, `name(..)` (plain Rust, on the host) for a device
//!   function;
//! - a braced struct `name {}` (type namespace only, so it coexists with the function) whose associated items
//!   are the kernel's CUDA C (`name::CUDA_SOURCE`), its CPU form and its launch. Associated items, not a module:
//!   they resolve names where the kernel is written, even in a function body, so kernels find their device
//!   functions wherever they are.
//!
//! Every path into the runtime starts with the crate path of `#[kernel(crate = ..)]` (default `::streamdsl`).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

use super::lower_rust::{thread_ident, Ctx, RustGen};
use super::model::*;
use super::parse::Signature;
use super::validate::Types;

/// `tokens` with every span set to `span` (resolution unchanged).
pub fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(tt.span().located_at(span));
            }
            tt
        })
        .collect()
}

fn scalar(s: Scalar) -> TokenStream {
    let ident = Ident::new(s.rust(), Span::call_site());
    quote!(#ident)
}

fn form_code(form: Form) -> u8 {
    match form {
        Form::Elementwise => 0,
        Form::Grid => 1,
        Form::Device => 2,
    }
}

/// The kernel's signature as Rust text, for the CUDA C's comment.
pub fn signature_text(f: &syn::ItemFn, form: Form) -> String {
    let params: Vec<String> = f
        .sig
        .inputs
        .iter()
        .map(|a| {
            quote!(#a)
                .to_string()
                .replace(" : ", ": ")
                .replace("& ", "&")
                .replace(" [", "[")
                .replace("[ ", "[")
                .replace(" ]", "]")
        })
        .collect();
    let ret = match &f.sig.output {
        syn::ReturnType::Default => String::new(),
        syn::ReturnType::Type(_, t) => {
            format!(" -> {}", quote!(#t).to_string().replace(" ,", ",").replace("( ", "(").replace(" )", ")"))
        }
    };
    let attr = match form {
        Form::Elementwise => "#[kernel]",
        Form::Grid => "#[kernel(grid)]",
        Form::Device => "#[kernel(device)]",
    };
    format!("{attr} fn {}({}){ret}", f.sig.ident, params.join(", "))
}

struct Parts<'a> {
    f: &'a syn::ItemFn,
    krate: &'a TokenStream,
    form: Form,
    params: Vec<(Ident, ParamTy, bool)>,
    ret: RetTy,
}

impl Parts<'_> {
    fn rt(&self) -> TokenStream {
        let k = self.krate;
        quote!(#k::kernel::__rt)
    }

    fn source_const(&self, text: &str, deps: &[Ident]) -> TokenStream {
        let k = self.krate;
        let name = self.f.sig.ident.to_string();
        let code = form_code(self.form);
        let entry = match self.form {
            Form::Grid => super::lower_cuda::entry_name(&name),
            _ => name.clone(),
        };
        quote! {
            /// The CUDA C generated from this kernel, as NVRTC compiles it (after its device functions); print it
            /// with `{}`.
            pub const CUDA_SOURCE: #k::kernel::KernelSource =
                #k::kernel::KernelSource::__new(#code, #name, #entry, #text, &[#(&#deps::CUDA_SOURCE),*]);
        }
    }

    /// The struct that carries the associated items.
    fn holder(&self, items: TokenStream) -> TokenStream {
        let vis = &self.f.vis;
        let name = &self.f.sig.ident;
        let doc = format!(
            "The generated parts of the kernel [`{name}`](fn@{name}): its CUDA C is [`{name}::CUDA_SOURCE`]({name}::CUDA_SOURCE)."
        );
        quote! {
            #[doc = #doc]
            #[allow(non_camel_case_types, dead_code)]
            #vis struct #name {}

            #[allow(dead_code)]
            impl #name {
                #items
            }
        }
    }

    fn floats(&self) -> Vec<Scalar> {
        let mut out = Vec::new();
        let mut push = |s: Scalar| {
            if s.is_float() && !out.contains(&s) {
                out.push(s);
            }
        };
        for (_, ty, _) in &self.params {
            if let ParamTy::Scalar(s) = ty {
                push(*s);
            }
        }
        match &self.ret {
            RetTy::Scalar(s) => push(*s),
            RetTy::Tuple(items) => items.iter().for_each(|s| push(*s)),
            RetTy::Unit => {}
        }
        out
    }

    fn outputs(&self) -> Vec<Scalar> {
        match &self.ret {
            RetTy::Scalar(s) => vec![*s],
            RetTy::Tuple(items) => items.clone(),
            RetTy::Unit => Vec::new(),
        }
    }

    /// `name`, `name_on` and the launch, for an elementwise kernel; `cpu_fn` is the CPU form (or `None` for a
    /// stub after errors).
    fn elementwise(&self, cuda: &str, deps: &[Ident], cpu_fn: Option<(TokenStream, bool)>) -> TokenStream {
        let k = self.krate;
        let rt = self.rt();
        let f = self.f;
        let vis = &f.vis;
        let name = &f.sig.ident;
        let name_on = format_ident!("{}_on", name);
        let attrs = &f.attrs;
        let bounds: Vec<TokenStream> = self
            .floats()
            .into_iter()
            .map(|s| {
                let s = scalar(s);
                quote!(#k::kernel::Compute<#s>)
            })
            .collect();
        let outputs = self.outputs();
        let m = outputs.len();
        let tensors: Vec<TokenStream> = outputs.iter().map(|_| quote!(#k::Tensor<T>)).collect();
        let ret = if matches!(self.ret, RetTy::Tuple(_)) { quote!((#(#tensors),*)) } else { quote!(#k::Tensor<T>) };
        let mut wrapper_params = Vec::new();
        let mut launch_params = Vec::new();
        let mut forward = Vec::new();
        for (ident, ty, _) in &self.params {
            let s = match ty {
                ParamTy::Scalar(s) => *s,
                ParamTy::Slice { elem, .. } => *elem,
            };
            let st = scalar(s);
            if s.is_float() {
                wrapper_params.push(quote!(#ident: impl #k::kernel::IntoArg<'a, #st, T>));
                launch_params.push(quote!(#ident: #k::kernel::Arg<'a, #st, T>));
                forward.push(quote!(#k::kernel::IntoArg::into_arg(#ident)));
            } else {
                wrapper_params.push(quote!(#ident: #st));
                launch_params.push(quote!(#ident: #st));
                forward.push(quote!(#ident));
            }
        }
        let where_clause = quote!(where T: #(#bounds)+*);
        // Hygienic: a kernel parameter may be called `stream`.
        let stream = Ident::new("stream", Span::mixed_site());
        let on_doc =
            format!("[`{name}`](fn@{name}) on an explicit stream: enqueued on `stream`, whatever stream is current.");
        let wrappers = quote! {
            #(#attrs)*
            #vis fn #name<'a, T>(#(#wrapper_params),*) -> #k::Result<#ret> #where_clause {
                #name::__streamdsl_launch(::core::option::Option::None, #(#forward),*)
            }

            #[doc = #on_doc]
            #vis fn #name_on<'a, T>(#stream: &#k::Stream, #(#wrapper_params),*) -> #k::Result<#ret> #where_clause {
                #name::__streamdsl_launch(::core::option::Option::Some(#stream), #(#forward),*)
            }
        };
        let source = self.source_const(cuda, deps);
        let Some((cpu_fn, fallible)) = cpu_fn else {
            let launch = quote! {
                #[doc(hidden)]
                #[allow(unused_variables)]
                pub fn __streamdsl_launch<'a, T>(
                    #stream: ::core::option::Option<&#k::Stream>, #(#launch_params),*
                ) -> #k::Result<#ret> #where_clause {
                    ::core::panic!("this kernel did not compile")
                }
            };
            let holder = self.holder(quote!(#source #launch));
            return quote! { #wrappers #holder };
        };
        // The launch: the parameters for the CUDA form, and the CPU form's loop over a chunk of elements.
        let mut params = Vec::new();
        let mut prelude = Vec::new();
        let mut scratch = Vec::new();
        let mut slices = Vec::new();
        let mut call_args = Vec::new();
        let mut zip_items: Vec<(TokenStream, TokenStream)> = Vec::new();
        for (o, _) in outputs.iter().enumerate() {
            let out = Ident::new(&format!("__out{o}"), Span::mixed_site());
            zip_items.push((quote!(#out), quote!(#out.iter_mut())));
        }
        for (pos, (ident, ty, _)) in self.params.iter().enumerate() {
            let s = match ty {
                ParamTy::Scalar(s) => *s,
                ParamTy::Slice { elem, .. } => *elem,
            };
            let st = scalar(s);
            if s.is_float() {
                let value = Ident::new(&format!("__value{pos}"), Span::mixed_site());
                let buf = Ident::new(&format!("__scratch{pos}"), Span::mixed_site());
                let input = Ident::new(&format!("__in{pos}"), Span::mixed_site());
                let item = Ident::new(&format!("__x{pos}"), Span::mixed_site());
                prelude.push(quote!(let #value: ::core::option::Option<#st> = #ident.value();));
                params.push(quote!(#rt::Param::float(&#ident)));
                scratch.push(quote!(let mut #buf: ::std::vec::Vec<#st> = ::std::vec::Vec::new();));
                slices.push(quote!(let #input: &[#st] = __chunk.arg::<#st>(#pos, #value, &mut #buf)?;));
                zip_items.push((quote!(#item), quote!(#input.iter())));
                call_args.push(quote!(*#item));
            } else {
                params.push(quote!(#rt::Param::scalar(#ident)));
                call_args.push(quote!(#ident));
            }
        }
        let mut items = zip_items.into_iter();
        let (mut pat, mut iter) = items.next().unwrap_or_else(|| (quote!(_), quote!(::core::iter::empty::<()>())));
        for (p, i) in items {
            pat = quote!((#pat, #p));
            iter = quote!(#iter.zip(#i));
        }
        let outs: Vec<Ident> = (0..m).map(|o| Ident::new(&format!("__out{o}"), Span::mixed_site())).collect();
        let results: Vec<Ident> = (0..m).map(|o| Ident::new(&format!("__r{o}"), Span::mixed_site())).collect();
        let question = fallible.then(|| quote!(?));
        let bind = if matches!(self.ret, RetTy::Tuple(_)) { quote!((#(#results),*)) } else { quote!(#(#results)*) };
        let stores: Vec<TokenStream> = outputs
            .iter()
            .zip(&outs)
            .zip(&results)
            .map(|((s, o), r)| {
                let st = scalar(*s);
                quote!(*#o = <T as #k::kernel::Compute<#st>>::narrow(#r);)
            })
            .collect();
        let tensors_out: Vec<Ident> = (0..m).map(|o| Ident::new(&format!("__tensor{o}"), Span::mixed_site())).collect();
        let value =
            if matches!(self.ret, RetTy::Tuple(_)) { quote!((#(#tensors_out),*)) } else { quote!(#(#tensors_out)*) };
        let launch = quote! {
            #[doc(hidden)]
            #[allow(clippy::all)]
            pub fn __streamdsl_launch<'a, T>(
                #stream: ::core::option::Option<&#k::Stream>, #(#launch_params),*
            ) -> #k::Result<#ret> #where_clause {
                #(#prelude)*
                let __params = [#(#params),*];
                let [#(#tensors_out),*] = #rt::elementwise::<T, #m>(
                    #stream,
                    &Self::CUDA_SOURCE,
                    &__params,
                    move |__chunk: &#rt::Chunk<'_, T>, __outs: &mut [&mut [T]]| -> ::core::result::Result<(), #rt::Fault> {
                        #(#scratch)*
                        #(#slices)*
                        let [#(#outs),*] = __outs else { return ::core::result::Result::Err(#rt::Fault::internal()) };
                        for #pat in #iter {
                            let #bind = Self::__streamdsl_cpu(#(#call_args),*) #question;
                            #(#stores)*
                        }
                        ::core::result::Result::Ok(())
                    },
                )?;
                ::core::result::Result::Ok(#value)
            }
        };
        let holder = self.holder(quote!(#source #cpu_fn #launch));
        quote!(#wrappers #holder)
    }

    fn grid(&self, cuda: &str, deps: &[Ident], thread: Option<TokenStream>) -> TokenStream {
        let k = self.krate;
        let rt = self.rt();
        let f = self.f;
        let vis = &f.vis;
        let name = &f.sig.ident;
        let attrs = &f.attrs;
        let mut wrapper_params = Vec::new();
        let mut forward = Vec::new();
        let mut slices = Vec::new();
        let mut params = Vec::new();
        let mut binds = Vec::new();
        let mut rebinds = Vec::new();
        let mut slot = 0usize;
        for (ident, ty, mutable) in &self.params {
            forward.push(quote!(#ident));
            match ty {
                ParamTy::Slice { elem, mutable: write } => {
                    let st = scalar(*elem);
                    let text = ident.to_string();
                    if *write {
                        wrapper_params.push(quote!(#ident: &'a mut #k::Tensor<#st>));
                        slices.push(quote!(#rt::SliceArg::write(#ident)));
                        binds.push(quote!(let #ident = __blk.write::<#st>(#slot, #text)?;));
                    } else {
                        wrapper_params.push(quote!(#ident: &'a #k::Tensor<#st>));
                        slices.push(quote!(#rt::SliceArg::read(#ident)));
                        binds.push(quote!(let #ident = __blk.read::<#st>(#slot, #text)?;));
                    }
                    params.push(quote!(#rt::GridParam::Slice(#slot)));
                    slot += 1;
                }
                ParamTy::Scalar(s) => {
                    let st = scalar(*s);
                    wrapper_params.push(quote!(#ident: #st));
                    params.push(quote!(#rt::GridParam::scalar(#ident)));
                    if *mutable {
                        rebinds.push(quote!(let mut #ident: #st = #ident;));
                    }
                }
            }
        }
        let wrapper = quote! {
            #(#attrs)*
            #vis fn #name<'a>(#(#wrapper_params),*) -> #k::kernel::GridLaunch<'a> {
                #name::__streamdsl_launch(#(#forward),*)
            }
        };
        let source = self.source_const(cuda, deps);
        let body = match thread {
            Some(body) => {
                let (blk, tid, gid) = (thread_ident("__blk"), thread_ident("__tid"), thread_ident("__gid"));
                quote! {
                    ::std::sync::Arc::new(move |#blk: &#rt::GridBlock<'_>| -> ::core::result::Result<(), #rt::Fault> {
                        let __blk = #blk;
                        #(#binds)*
                        let __thread = |#tid: u32, #gid: u32| -> ::core::result::Result<(), #rt::Fault> {
                            #(#rebinds)*
                            #body
                        };
                        for __t in 0..__blk.active() {
                            __thread(__t, __blk.first() + __t).map_err(|f| f.at(__blk.first() + __t))?;
                        }
                        ::core::result::Result::Ok(())
                    })
                }
            }
            None => quote!(::core::panic!("this kernel did not compile")),
        };
        let launch = quote! {
            #[doc(hidden)]
            #[allow(unreachable_code, unused_parens, unused_braces, unused_variables, clippy::all)]
            pub fn __streamdsl_launch<'a>(#(#wrapper_params),*) -> #k::kernel::GridLaunch<'a> {
                let __slices = ::std::vec![#(#slices),*];
                let __params = ::std::vec![#(#params),*];
                #k::kernel::GridLaunch::__new(&Self::CUDA_SOURCE, __slices, __params, #body)
            }
        };
        let holder = self.holder(quote!(#source #launch));
        quote!(#wrapper #holder)
    }

    fn device(&self, cuda: &str, deps: &[Ident], cpu_fn: Option<TokenStream>) -> TokenStream {
        let k = self.krate;
        let f = self.f;
        let vis = &f.vis;
        let name = &f.sig.ident;
        let attrs = &f.attrs;
        let params: Vec<TokenStream> = self
            .params
            .iter()
            .map(|(ident, ty, _)| {
                let s = match ty {
                    ParamTy::Scalar(s) => *s,
                    ParamTy::Slice { elem, .. } => *elem,
                };
                let st = scalar(s);
                quote!(#ident: #st)
            })
            .collect();
        let idents: Vec<&Ident> = self.params.iter().map(|(i, _, _)| i).collect();
        let ret = match &self.ret {
            RetTy::Scalar(s) => scalar(*s),
            _ => quote!(()),
        };
        let source = self.source_const(cuda, deps);
        let body = match cpu_fn {
            Some(_) => quote! {
                match #name::__streamdsl_cpu(#(#idents),*) {
                    ::core::result::Result::Ok(v) => v,
                    ::core::result::Result::Err(fault) => fault.panic(),
                }
            },
            None => quote!(::core::panic!("this function did not compile")),
        };
        let allow = cpu_fn.is_none().then(|| quote!(#[allow(unused_variables)]));
        let wrapper = quote! {
            #(#attrs)*
            #allow
            #vis fn #name(#(#params),*) -> #ret {
                #body
            }
        };
        let _ = k;
        let holder = self.holder(quote!(#source #cpu_fn));
        quote!(#wrapper #holder)
    }
}

/// The CPU form of an elementwise or device function: `fn __streamdsl_cpu(params) -> R` (or `Result<R, Fault>`).
fn cpu_function(gen: &RustGen<'_>, ret: &RetTy, rt: &TokenStream) -> TokenStream {
    let k = gen.k;
    let params: Vec<TokenStream> = k
        .params
        .iter()
        .map(|p| {
            let l = k.local(p.local);
            let name = &l.name;
            let m = l.mutable.then(|| quote!(mut));
            let s = match p.ty {
                ParamTy::Scalar(s) => s,
                ParamTy::Slice { elem, .. } => elem,
            };
            let st = Ident::new(s.rust(), name.span());
            quote!(#m #name: #st)
        })
        .collect();
    let r = match ret {
        RetTy::Scalar(s) => scalar(*s),
        RetTy::Tuple(items) => {
            let items: Vec<TokenStream> = items.iter().map(|s| scalar(*s)).collect();
            quote!((#(#items),*))
        }
        RetTy::Unit => quote!(()),
    };
    let (r, body) = match gen.ctx {
        Ctx::Function { fallible: true } => (quote!(::core::result::Result<#r, #rt::Fault>), gen.function_body()),
        _ => (r, gen.function_body()),
    };
    quote! {
        #[doc(hidden)]
        #[inline(always)]
        #[allow(unreachable_code, unused_parens, unused_braces, clippy::all)]
        pub fn __streamdsl_cpu(#(#params),*) -> #r #body
    }
}

/// The full expansion of a kernel that checked.
pub fn kernel(f: &syn::ItemFn, krate: &TokenStream, k: &Kernel, t: &Types, cuda: &str) -> TokenStream {
    let parts = Parts {
        f,
        krate,
        form: k.form,
        params: k.params.iter().map(|p| (k.local(p.local).name.clone(), p.ty, k.local(p.local).mutable)).collect(),
        ret: k.ret.clone(),
    };
    let rt = parts.rt();
    let math = quote!(#krate::math);
    let deps = &k.calls;
    match k.form {
        Form::Elementwise => {
            let fallible = super::lower_rust::fallible(k, t);
            let gen = RustGen { k, t, rt: rt.clone(), math, ctx: Ctx::Function { fallible } };
            let cpu = cpu_function(&gen, &k.ret, &rt);
            parts.elementwise(cuda, deps, Some((cpu, fallible)))
        }
        Form::Device => {
            let gen = RustGen { k, t, rt: rt.clone(), math, ctx: Ctx::Function { fallible: true } };
            let cpu = cpu_function(&gen, &k.ret, &rt);
            parts.device(cuda, deps, Some(cpu))
        }
        Form::Grid => {
            let gen = RustGen { k, t, rt: rt.clone(), math, ctx: Ctx::Thread };
            parts.grid(cuda, deps, Some(gen.function_body()))
        }
    }
}

/// After errors: the errors, and the kernel's functions with bodies that never run, so its callers still
/// type-check and one mistake gives one error.
pub fn stub(f: &syn::ItemFn, krate: &TokenStream, form: Form, sig: Signature, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    let params =
        sig.params.into_iter().map(|(ident, ty)| (ident, ty.unwrap_or(ParamTy::Scalar(Scalar::F32)), false)).collect();
    let ret = sig.ret.unwrap_or(RetTy::Unit);
    let ret = match (form, ret) {
        (Form::Elementwise, RetTy::Unit) => RetTy::Scalar(Scalar::F32),
        (_, r) => r,
    };
    let parts = Parts { f, krate, form, params, ret };
    let items = match form {
        Form::Elementwise => parts.elementwise("", &[], None),
        Form::Grid => parts.grid("", &[], None),
        Form::Device => parts.device("", &[], None),
    };
    quote!(#(#errors)* #items)
}
