//! Kernels written in Rust with [`#[kernel]`](macro@crate::kernel): the types their generated code uses.
//!
//! One definition runs on both backends: the macro lowers the body to Rust for the CPU backend (parallel over
//! indices with rayon, on the stream machine) and to CUDA C for NVRTC (compiled for the device's arch and
//! cached like the built-in kernels). Transcendentals go through the portable math library ([`crate::math`]
//! and its CUDA twin), so both backends give the same bits. Launches are enqueued on a stream like any op, with
//! their reads and writes noted in the tensors' access logs, so other streams are ordered with them.
//!
//! ```
//! use streamdsl::prelude::*;
//!
//! #[kernel]                                   // elementwise: one output element from the inputs' elements
//! fn gelu(x: f32) -> f32 {
//!     0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
//! }
//!
//! #[kernel(grid)]                             // index space: the body runs once per global index
//! fn transpose(out: &mut [f32], inp: &[f32], rows: u32, cols: u32) {
//!     let i = global_index();
//!     if i < rows * cols {
//!         out[((i % cols) * rows + i / cols) as usize] = inp[i as usize];
//!     }
//! }
//!
//! let s = Stream::new(&Device::default())?;
//! let y = gpu_scope!(stream = s, {
//!     let x = Tensor::from_vec((0..6).map(|v| v as f32).collect(), [2, 3], &Device::default())?;
//!     let mut t = zeros::<f32>([3, 2])?;
//!     transpose(&mut t, &x, 2, 3).launch(6)?;  // on `s`
//!     gelu(&t)?                                // a tensor op on `s`
//! });
//! assert_eq!(y.shape(), &[3, 2]);
//! assert_eq!(y.producer_stream_id(), Some(s.id()));
//! # Ok::<(), streamdsl::Error>(())
//! ```
//!
//! - An **elementwise** kernel `name(x: f32, …) -> f32` becomes `name(&x, …) -> Result<Tensor<T>>` on the
//!   current stream and `name_on(&stream, &x, …)`. Each float parameter takes a tensor or a plain value
//!   ([`IntoArg`]); integer and `bool` parameters take values. Tensors broadcast like the built-in ops. `T` is
//!   any element type that computes in the declared float type ([`Compute`]): an `f32` kernel maps `f32`,
//!   `f16` and `bf16` tensors (computing in `f32` and rounding each result once), an `f64` kernel any tensor. A
//!   tuple return `-> (f32, f32)` gives a tuple of tensors.
//! - A **grid** kernel `name(out: &mut [f32], inp: &[f32], n: u32)` becomes `name(&mut out, &inp, n) ->`
//!   [`GridLaunch`]: `.launch(n)` runs the body for the global indices `0..n`, `.launch_config(`[`LaunchConfig`]`)`
//!   on a grid of blocks, `.on(&stream)` picks the stream. `&[T]` slices are read, `&mut [T]` written.
//! - A **device** function (`#[kernel(device)]`) can be called from kernels, and from Rust.
//!
//! `name::CUDA_SOURCE` ([`KernelSource`]) holds the generated CUDA C; print it with `{}`.

mod launch;
#[doc(hidden)]
pub mod rt;

/// Support for the code `#[kernel]` generates; not public API.
#[doc(hidden)]
pub use rt as __rt;

pub use crate::backend::custom::{Compute, KernelFloat};
pub use crate::jit::KernelSource;
pub use launch::{GridLaunch, LaunchConfig};

use crate::tensor::Tensor;

/// A float argument of an elementwise kernel: a tensor to map over, or one value for every element.
pub enum Arg<'a, F, T> {
    /// A tensor (broadcast to the output's shape).
    Tensor(&'a Tensor<T>),
    /// The same value at every index (not rounded to the tensors' element type).
    Value(F),
}

impl<'a, F: Copy, T> Arg<'a, F, T> {
    /// The value, if this is one.
    pub fn value(&self) -> Option<F> {
        match self {
            Arg::Value(v) => Some(*v),
            Arg::Tensor(_) => None,
        }
    }

    /// The tensor, if this is one.
    pub fn tensor(&self) -> Option<&'a Tensor<T>> {
        match self {
            Arg::Tensor(t) => Some(t),
            Arg::Value(_) => None,
        }
    }
}

/// What an elementwise kernel's float parameter of type `F` accepts, for tensors of `T`: `&Tensor<T>` or a
/// plain `F`.
///
/// ```
/// use streamdsl::prelude::*;
///
/// #[kernel]
/// fn leaky_relu(x: f32, slope: f32) -> f32 {
///     if x > 0.0 { x } else { slope * x }
/// }
///
/// let x = Tensor::from_vec(vec![-2.0f32, 3.0], [2], &Device::cpu())?;
/// assert_eq!(leaky_relu(&x, 0.5)?.to_vec()?, vec![-1.0, 3.0]);               // a value
/// let slopes = Tensor::from_vec(vec![0.25f32, 0.25], [2], &Device::cpu())?;
/// assert_eq!(leaky_relu(&x, &slopes)?.to_vec()?, vec![-0.5, 3.0]);           // a tensor
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed where the kernel takes `{F}`",
    label = "expected a `&Tensor` or an `{F}`",
    note = "an elementwise kernel's float parameters take a `&Tensor<T>` (mapped over, broadcast) or a plain `{F}`"
)]
pub trait IntoArg<'a, F, T> {
    /// The argument.
    fn into_arg(self) -> Arg<'a, F, T>;
}

impl<'a, F: KernelFloat, T: Compute<F>> IntoArg<'a, F, T> for &'a Tensor<T> {
    fn into_arg(self) -> Arg<'a, F, T> {
        Arg::Tensor(self)
    }
}

impl<'a, T> IntoArg<'a, f32, T> for f32 {
    fn into_arg(self) -> Arg<'a, f32, T> {
        Arg::Value(self)
    }
}

impl<'a, T> IntoArg<'a, f64, T> for f64 {
    fn into_arg(self) -> Arg<'a, f64, T> {
        Arg::Value(self)
    }
}

impl<'a, F, T> IntoArg<'a, F, T> for Arg<'a, F, T> {
    fn into_arg(self) -> Arg<'a, F, T> {
        self
    }
}
