//! Element type conversion.

use crate::backend::{Kernels, Queue};
use crate::dtype::Element;
use crate::error::Result;
use crate::stream::Stream;
use crate::tensor::Tensor;

/// `a` converted to element type `U` on `stream`, rounding to nearest even (like `Tensor.to(dtype)`).
///
/// ```
/// use streamdsl::prelude::*;
/// use half::f16;
/// let s = Stream::new(&Device::cpu())?;
/// let a = ops::full_on(&s, [2], 1.0f64 / 3.0)?;
/// let h = ops::to_dtype_on::<f64, f16>(&s, &a)?;
/// assert_eq!(h.to_vec()?, vec![f16::from_f64(1.0 / 3.0); 2]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn to_dtype_on<T: Element, U: Element>(stream: &Stream, a: &Tensor<T>) -> Result<Tensor<U>> {
    crate::ops::check_devices(stream, "to_dtype", &[a.device()])?;
    let out = Tensor::alloc(stream, a.shape().to_vec())?;
    let _trace = crate::trace::describe(&[(T::DTYPE, a.shape())], Some((U::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.convert(&a.storage, &out.storage),
        Queue::Cuda(q) => q.convert(&a.storage, &out.storage),
    }?;
    Ok(out)
}

impl<T: Element> Tensor<T> {
    /// This tensor converted to `U` on the current stream; see [`to_dtype_on`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let x = full([2], 1.5f32)?.to_dtype::<half::bf16>()?;
    /// assert_eq!(x.dtype(), DType::BF16);
    /// assert_eq!(x.to_vec()?[0].to_f32(), 1.5);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn to_dtype<U: Element>(&self) -> Result<Tensor<U>> {
        to_dtype_on(&self.current_stream(), self)
    }
}
