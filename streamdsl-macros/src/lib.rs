//! Procedural macros of streamdsl. Use them through the `streamdsl` crate, which re-exports them.
//!
//! The macro is built in layers, each in its own module: `parse` reads the syntax keeping every span,
//! `model` validates it into the scope model (or errors at the offending spans), `rewrite` turns op calls
//! into their explicit-stream forms, and `expand` generates the code. `#[kernel]` has the same shape in
//! `kernel/` (parse → model → validate → lower to CUDA C and to Rust → expand).

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

/// Writes a kernel in Rust: one definition runs on the CPU backend (as Rust, in parallel with rayon) and on CUDA
/// (as CUDA C that NVRTC compiles for the device's arch), with the same bits.
///
/// ```
/// use streamdsl::prelude::*;
///
/// #[kernel]                                       // elementwise
/// fn gelu(x: f32) -> f32 {
///     0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
/// }
///
/// #[kernel(grid)]                                 // the body runs once per global index
/// fn transpose(out: &mut [f32], inp: &[f32], rows: u32, cols: u32) {
///     let i = global_index();
///     if i < rows * cols {
///         out[((i % cols) * rows + i / cols) as usize] = inp[i as usize];
///     }
/// }
///
/// let s = Stream::new(&Device::default())?;
/// let y = gpu_scope!(stream = s, {
///     let x = randn::<f32>([64, 32])?;
///     let mut t = zeros::<f32>([32, 64])?;
///     transpose(&mut t, &x, 64, 32).launch(64 * 32)?; // enqueued on `s`
///     gelu(&t)?                                       // a tensor op, on `s`
/// });
/// assert_eq!(y.shape(), &[32, 64]);
/// println!("{}", gelu::CUDA_SOURCE);                  // the generated CUDA C
/// # Ok::<(), streamdsl::Error>(())
/// ```
///
/// # The three forms
///
/// | attribute | you write | you call |
/// | --- | --- | --- |
/// | `#[kernel]` | `fn name(x: f32, k: u32) -> f32` (scalars in, one value or a tuple out) | `name(&x, 3)?`, `name_on(&stream, &x, 3)?` → `Tensor<T>` (or a tuple of tensors) |
/// | `#[kernel(grid)]` | `fn name(out: &mut [f32], inp: &[f32], n: u32)` | `name(&mut out, &inp, n).launch(n)?` (or `.launch_config(LaunchConfig::new(g, b))`, `.on(&stream)`) |
/// | `#[kernel(device)]` | `fn name(x: f32) -> f32` | from kernels, and from Rust as a plain function |
///
/// **Elementwise**: each `f32`/`f64` parameter takes a `&Tensor<T>` (mapped over, broadcast with the others like
/// the built-in ops) or a plain value; integer and `bool` parameters take values. The output has the broadcast
/// shape. `T` is the tensors' element type: an `f32` kernel takes `f32`, `f16` and `bf16` tensors (computing in
/// `f32`, each result rounded once to `T`), an `f64` kernel any tensor. The implicit form runs on the current
/// stream of the first tensor's device, so inside `gpu_scope!` it runs on the scope's stream; `name_on` names the
/// stream.
///
/// **Grid**: `&[f32]`/`&[f64]` parameters are read and `&mut [f32]`/`&mut [f64]` written: the launch notes them
/// in the tensors' access logs like any op (other streams wait for it, it waits for them). `.launch(n)` runs the
/// body for the global indices `0..n` in blocks of 256 threads; `.launch_config(LaunchConfig { grid, block })`
/// in every thread of the grid (guard with `if global_index() < n`). One tensor may not be passed to a `&mut`
/// parameter and to another slice parameter (an error at the launch).
///
/// # The subset
///
/// | | supported |
/// | --- | --- |
/// | types | `f32`, `f64`, `i32`, `u32`, `i64`, `u64`, `usize`, `isize`, `bool`; slices `&[f32]`, `&mut [f64]`, … as grid parameters |
/// | bindings | `let x = ..;`, `let mut x: f32 = ..;`, `let x;` (assigned later), shadowing |
/// | statements | `=` and `+= -= *= /= %= &= \|= ^= <<= >>=` on locals and slice elements |
/// | control flow | `if`/`else` (also as a value), blocks, `for i in a..b` and `a..=b` over integers, `while`, `loop`, `break`, `continue`, `return` |
/// | operators | `+ - * / %`, `== != < <= > >=`, `&& \|\| !`, `& \| ^ << >>`, unary `-`, `as` casts between the numeric types (and `bool as` an integer) |
/// | float methods | `sqrt`, `exp`, `exp_m1`, `ln`, `sin`, `cos`, `tan`, `tanh`, `powf`, `powi`, `abs`, `min`, `max`, `mul_add`, `floor`, `ceil`, `trunc`, `round`, `recip`, `signum`; integers: `abs`, `min`, `max` |
/// | functions | `erf(x)`, `global_index()`, `thread_index()`, `block_index()`, `block_dim()`, `grid_dim()` (grid kernels; all `u32`), `#[kernel(device)]` functions by name |
/// | constants | `f32::MAX`, `f64::EPSILON`, `f32::INFINITY`, `u32::MAX`, `std::f32::consts::PI`, … |
/// | slices | `s[i]` (`i: usize`), `s.len()` |
///
/// Types are inferred as Rust infers them (an unsuffixed float literal takes the type of what it meets, else
/// `f64`); the operands of an operator must have one type, as in Rust: kernels never convert implicitly. The
/// generated Rust is written with every type spelled out, so rustc checks the types the CUDA C was made with; in
/// the CUDA C a `float` is only ever an `f32` (an `f32` kernel's literals are `0.5f`).
///
/// # Semantics (both backends)
///
/// - **Floats** are IEEE operations, never contracted into FMAs (`mul_add` is the explicit FMA), so they give the
///   same bits everywhere. `exp`, `exp_m1`, `ln`, `sin`, `cos`, `tan`, `tanh`, `erf`, `powf` come from the
///   portable math library (`streamdsl::math` on the CPU, its CUDA twin on the GPU). In an `f32` kernel `tanh`,
///   `erf`, `exp_m1` and `powf` evaluate the `f64` function and round once, and `sin`/`cos` reduce huge arguments
///   in `f64`: that is the library's design (accuracy, and the same bits), and the only `f64` arithmetic an `f32`
///   kernel does. `min`/`max` ignore a NaN operand; NaN results are the canonical NaN where the library returns
///   one, else the hardware's (payloads are not part of the promise).
/// - **Integers** wrap on overflow (as Rust's release builds do, on both backends). Division or remainder by zero
///   and `MIN / -1` are an error on the CPU backend, as Rust panics; a GPU thread cannot stop, so there the result
///   is 0 (`MIN` for `MIN / -1`). Shift amounts are taken modulo the width. Float-to-integer `as` saturates and
///   maps NaN to 0, as in Rust.
/// - **Indexing** out of range is an error on the CPU backend: the op fails and poisons its stream (never a panic
///   or undefined behaviour); the message names the slice, the index and the thread. On CUDA the simulated driver
///   catches it (one past the end faults), and a GPU reports an illegal address.
/// - **Races** between the threads of one grid kernel are the kernel's business, as on a GPU; on the CPU every
///   access to a `&mut` slice is atomic, so they are never undefined behaviour in Rust.
///
/// # Errors at compile time
///
/// Anything outside the subset is an error at its tokens that says what is supported: closures, `Vec`/`String`,
/// variables captured from outside (pass them as parameters), references other than the slice parameters,
/// recursion, `panic!`/`unwrap`, `match`, unsupported methods or types, mixing types without a cast. The item is
/// still emitted (with bodies that never run), so one mistake gives one error.
///
/// ```compile_fail
/// # use streamdsl::prelude::*;
/// #[kernel]
/// fn blend(x: f32, w: f64) -> f32 {
///     x * w // error: mismatched types: expected `f32`, found `f64`; ... convert with `as`
/// }
/// ```
///
/// ```compile_fail
/// # use streamdsl::prelude::*;
/// let scale = 2.0f32;
/// #[kernel]
/// fn scaled(x: f32) -> f32 {
///     x * scale // error: cannot find `scale` in this kernel: kernels cannot capture variables ...
/// }
/// ```
///
/// # Device functions
///
/// ```
/// use streamdsl::prelude::*;
///
/// #[kernel(device)]
/// fn erf_gelu(x: f32) -> f32 {
///     0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
/// }
///
/// #[kernel]
/// fn gelu_then_scale(x: f32, s: f32) -> f32 {
///     let g: f32 = erf_gelu(x); // annotate: the macro does not see `erf_gelu`'s signature
///     g * s
/// }
///
/// let y = gelu_then_scale(&Tensor::from_vec(vec![1.0f32], [1], &Device::cpu())?, 2.0)?;
/// assert_eq!(y.item()?, 2.0 * erf_gelu(1.0));
/// # Ok::<(), streamdsl::Error>(())
/// ```
///
/// A device function's CUDA C is compiled into every kernel that calls it (`kernel::CUDA_SOURCE` lists it
/// first). Its result takes the type its context gives it; where nothing does, annotate the `let`.
///
/// # The crate path
///
/// The generated code names the runtime as `::streamdsl`; under a renamed dependency write
/// `#[kernel(crate = my_name)]` (or `crate = "my_name"`).
///
/// # Not (yet) supported
///
/// Shared memory and block barriers (the lowering is built for them: a grid block runs as one CPU task, and the
/// CUDA entry is where `__shared__` arrays would be declared), 2-D/3-D grids, atomics, f16/bf16 slices in grid
/// kernels, generic kernels, and fusion of consecutive elementwise ops.
#[proc_macro_attribute]
pub fn kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    kernel::kernel(attr.into(), item.into()).into()
}
