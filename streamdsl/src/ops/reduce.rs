//! Reductions: `sum`, `mean` (over all elements, accumulated in f64).

use crate::backend::{Kernels, Queue};
use crate::dtype::Element;
use crate::error::Result;
use crate::stream::Stream;
use crate::tensor::Tensor;

fn reduce_on<T: Element>(stream: &Stream, op: &'static str, a: &Tensor<T>, scale: f64) -> Result<Tensor<T>> {
    crate::ops::check_devices(stream, op, &[a.device()])?;
    let out = Tensor::alloc(stream, Vec::new())?;
    let _trace = crate::trace::describe(&[(T::DTYPE, a.shape())], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.sum(op, &a.storage, scale, &out.storage),
        Queue::Cuda(q) => q.sum(op, &a.storage, scale, &out.storage),
    }?;
    Ok(out)
}

/// The sum of all elements as a 0-d tensor (like `torch.sum`), accumulated in f64 and rounded once.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let t = ops::full_on(&s, [1000], 0.1f32)?;
/// let total = ops::sum_on(&s, &t)?;
/// assert_eq!(total.shape(), &[] as &[usize]);
/// assert!((total.item()? - 100.0).abs() < 1e-4);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn sum_on<T: Element>(stream: &Stream, a: &Tensor<T>) -> Result<Tensor<T>> {
    reduce_on(stream, "sum", a, 1.0)
}

/// The mean of all elements as a 0-d tensor (like `torch.mean`).
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let t = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 6.0], [4], &Device::cpu())?;
/// assert_eq!(ops::mean_on(&s, &t)?.item()?, 3.0);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn mean_on<T: Element>(stream: &Stream, a: &Tensor<T>) -> Result<Tensor<T>> {
    reduce_on(stream, "mean", a, 1.0 / a.numel() as f64)
}

impl<T: Element> Tensor<T> {
    /// The sum of all elements on the current stream; see [`sum_on`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert_eq!(ones::<f32>([3, 3])?.sum()?.item()?, 9.0);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn sum(&self) -> Result<Tensor<T>> {
        sum_on(&self.current_stream(), self)
    }

    /// The mean of all elements on the current stream; see [`mean_on`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert_eq!(full([4], 2.5f64)?.mean()?.item()?, 2.5);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn mean(&self) -> Result<Tensor<T>> {
        mean_on(&self.current_stream(), self)
    }
}
