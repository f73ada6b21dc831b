//! Creation ops: `zeros`, `ones`, `full`, `randn`.

use crate::backend::{Kernels, Queue};
use crate::dtype::Element;
use crate::error::Result;
use crate::rng::{default_generator, Generator};
use crate::scope::current_stream;
use crate::shape::IntoShape;
use crate::stream::Stream;
use crate::tensor::Tensor;

/// A tensor of zeros on `stream`'s device (like `torch.zeros`).
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// assert_eq!(ops::zeros_on::<f64>(&s, [2, 2])?.to_vec()?, vec![0.0; 4]);
/// assert!(ops::zeros_on::<f64>(&s, [2, 0]).is_err());
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn zeros_on<T: Element>(stream: &Stream, shape: impl IntoShape) -> Result<Tensor<T>> {
    let out = Tensor::alloc(stream, shape.into_shape())?;
    let _trace = crate::trace::describe(&[], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.zero(&out.storage),
        Queue::Cuda(q) => q.zero(&out.storage),
    }?;
    Ok(out)
}

/// A tensor of ones (like `torch.ones`).
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// assert_eq!(ops::ones_on::<f32>(&s, [3])?.to_vec()?, vec![1.0; 3]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn ones_on<T: Element>(stream: &Stream, shape: impl IntoShape) -> Result<Tensor<T>> {
    full_on(stream, shape, T::ONE)
}

/// A tensor filled with `value` (like `torch.full`).
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// assert_eq!(ops::full_on(&s, [2], 7.5f32)?.to_vec()?, vec![7.5, 7.5]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn full_on<T: Element>(stream: &Stream, shape: impl IntoShape, value: T) -> Result<Tensor<T>> {
    let out = Tensor::alloc(stream, shape.into_shape())?;
    let _trace = crate::trace::describe(&[], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.fill(&out.storage, value),
        Queue::Cuda(q) => q.fill(&out.storage, value),
    }?;
    Ok(out)
}

/// Standard normal samples from the default generator (like `torch.randn`); see `streamdsl::manual_seed`.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let x = ops::randn_on::<f64>(&s, [10_000])?;
/// assert!(x.mean()?.item()?.abs() < 0.05);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn randn_on<T: Element>(stream: &Stream, shape: impl IntoShape) -> Result<Tensor<T>> {
    randn_with_on(stream, shape, default_generator())
}

/// Standard normal samples from `generator`: Philox4x32-10 with Box–Muller, the same numbers on every
/// backend for the same seed and offset.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let g = Generator::new(0);
/// let x = ops::randn_with_on::<f32>(&s, [2], &g)?;
/// assert_eq!(g.offset(), 1); // one call, one offset
/// assert!(x.to_vec()?.iter().all(|v| v.is_finite()));
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn randn_with_on<T: Element>(stream: &Stream, shape: impl IntoShape, generator: &Generator) -> Result<Tensor<T>> {
    let out = Tensor::alloc(stream, shape.into_shape())?;
    let (seed, offset) = generator.next_call();
    let _trace = crate::trace::describe(&[], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.randn(&out.storage, seed, offset),
        Queue::Cuda(q) => q.randn(&out.storage, seed, offset),
    }?;
    Ok(out)
}

impl<T: Element> Tensor<T> {
    /// A tensor of zeros, enqueued on `stream`. Shorthand for [`zeros_on`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let s = Stream::new(&Device::cpu())?;
    /// assert_eq!(Tensor::<f32>::zeros_on(&s, [2])?.to_vec()?, vec![0.0, 0.0]);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn zeros_on(stream: &Stream, shape: impl IntoShape) -> Result<Tensor<T>> {
        zeros_on(stream, shape)
    }
}

/// [`zeros_on`] on the current stream.
///
/// ```
/// use streamdsl::prelude::*;
/// assert_eq!(zeros::<f32>([2])?.to_vec()?, vec![0.0; 2]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn zeros<T: Element>(shape: impl IntoShape) -> Result<Tensor<T>> {
    zeros_on(&current_stream(), shape)
}

/// [`ones_on`] on the current stream.
///
/// ```
/// use streamdsl::prelude::*;
/// assert_eq!(ones::<f32>([2])?.to_vec()?, vec![1.0; 2]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn ones<T: Element>(shape: impl IntoShape) -> Result<Tensor<T>> {
    ones_on(&current_stream(), shape)
}

/// [`full_on`] on the current stream.
///
/// ```
/// use streamdsl::prelude::*;
/// assert_eq!(full([2], 3.0f64)?.to_vec()?, vec![3.0; 2]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn full<T: Element>(shape: impl IntoShape, value: T) -> Result<Tensor<T>> {
    full_on(&current_stream(), shape, value)
}

/// [`randn_on`] on the current stream.
///
/// ```
/// use streamdsl::prelude::*;
/// assert_eq!(randn::<f32>([3, 4])?.shape(), &[3, 4]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn randn<T: Element>(shape: impl IntoShape) -> Result<Tensor<T>> {
    randn_on(&current_stream(), shape)
}

/// [`randn_with_on`] on the current stream.
///
/// ```
/// use streamdsl::prelude::*;
/// let g = Generator::new(1);
/// assert_eq!(randn_with::<f32>([3], &g)?.numel(), 3);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn randn_with<T: Element>(shape: impl IntoShape, generator: &Generator) -> Result<Tensor<T>> {
    randn_with_on(&current_stream(), shape, generator)
}
