//! Procedural macros of streamdsl. Use them through the `streamdsl` crate, which re-exports them.
//!
//! The macro is built in layers, each in its own module: `parse` reads the syntax keeping every span,
//! `model` validates it into the scope model (or errors at the offending spans), `rewrite` turns op calls
//! into their explicit-stream forms, and `expand` generates the code.

mod expand;
mod kernel;
mod model;
mod parse;
mod rewrite;

use proc_macro::TokenStream;

/// The implementation of `streamdsl::gpu_scope!`; use it through that macro, which passes the runtime crate's
/// path (`[$crate]`) first and carries the documentation.
#[proc_macro]
pub fn gpu_scope(input: TokenStream) -> TokenStream {
    expand::gpu_scope(input.into()).into()
}

/// Test support: `check_rewrite_targets!([path])` expands to a `use` of every function the rewrite names
/// under `path::ops`, so a rewrite target without its function is a compile error.
#[doc(hidden)]
#[proc_macro]
pub fn check_rewrite_targets(input: TokenStream) -> TokenStream {
    rewrite::check_targets(input.into()).into()
}

/// Writes a kernel in Rust: one definition runs on the CPU backend (as Rust) and on CUDA (as CUDA C compiled by
/// NVRTC), with the same bits. Use it as `streamdsl::kernel`; its documentation is there.
#[proc_macro_attribute]
pub fn kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    kernel::kernel(attr.into(), item.into()).into()
}
