//! In-place ops: they write into an existing tensor, so every handle to it sees the new data.

use crate::backend::{Kernels, Queue};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::tensor::Tensor;

/// Fills `t` with `value` on `stream` (like `Tensor.fill_`). The write waits for every earlier use of
/// `t` on other streams.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let t = ops::zeros_on::<f32>(&s, [3])?;
/// ops::fill_on(&s, &t, 4.0)?;
/// assert_eq!(t.to_vec()?, vec![4.0; 3]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn fill_on<T: Element>(stream: &Stream, t: &Tensor<T>, value: T) -> Result<()> {
    crate::ops::check_devices(stream, "fill_", &[t.device()])?;
    let _trace = crate::trace::describe(&[], Some((T::DTYPE, t.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.fill(&t.storage, value),
        Queue::Cuda(q) => q.fill(&t.storage, value),
    }
}

/// Copies `src` into `dst` on `stream` (like `Tensor.copy_`); the shapes must be equal.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let (dst, src) = (ops::zeros_on::<f64>(&s, [2])?, ops::full_on(&s, [2], 9.0)?);
/// ops::copy_on(&s, &dst, &src)?;
/// assert_eq!(dst.to_vec()?, vec![9.0; 2]);
/// assert!(ops::copy_on(&s, &dst, &ops::zeros_on::<f64>(&s, [3])?).is_err());
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn copy_on<T: Element>(stream: &Stream, dst: &Tensor<T>, src: &Tensor<T>) -> Result<()> {
    if dst.shape() != src.shape() {
        return Err(Error::ShapeMismatch {
            op: "copy_",
            lhs: dst.shape().to_vec(),
            rhs: src.shape().to_vec(),
            reason: "copy_ needs equal shapes".into(),
        });
    }
    crate::ops::check_devices(stream, "copy_", &[dst.device(), src.device()])?;
    if dst.shares_data(src) {
        return Ok(()); // copying a buffer onto itself changes nothing
    }
    let _trace = crate::trace::describe(&[(T::DTYPE, src.shape())], Some((T::DTYPE, dst.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.copy(&src.storage, &dst.storage),
        Queue::Cuda(q) => q.copy(&src.storage, &dst.storage),
    }
}

impl<T: Element> Tensor<T> {
    /// Fills this tensor with `value` on the current stream; see [`fill_on`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let t = zeros::<f32>([2])?;
    /// t.fill_(1.0)?;
    /// assert_eq!(t.to_vec()?, vec![1.0, 1.0]);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn fill_(&self, value: T) -> Result<()> {
        fill_on(&self.current_stream(), self, value)
    }

    /// Copies `src` into this tensor on the current stream; see [`copy_on`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let t = zeros::<f32>([2])?;
    /// t.copy_(&ones::<f32>([2])?)?;
    /// assert_eq!(t.to_vec()?, vec![1.0, 1.0]);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn copy_(&self, src: &Tensor<T>) -> Result<()> {
        copy_on(&self.current_stream(), self, src)
    }
}
