//! Matrix products: `mm` for 2-D and batched 3-D operands.

use crate::backend::{Kernels, MatmulDims, Queue};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::tensor::Tensor;

/// Checks `mm` operands and returns the product's dimensions and output shape.
fn plan(a: &[usize], b: &[usize]) -> Result<(MatmulDims, Vec<usize>)> {
    let mismatch = |reason: String| Error::ShapeMismatch { op: "mm", lhs: a.to_vec(), rhs: b.to_vec(), reason };
    let split = |s: &[usize]| match *s {
        [m, n] => Some((None, m, n)),
        [batch, m, n] => Some((Some(batch), m, n)),
        _ => None,
    };
    let (Some((ba, m, k)), Some((bb, k2, n))) = (split(a), split(b)) else {
        return Err(mismatch("mm takes 2-D or batched 3-D operands".into()));
    };
    if k != k2 {
        return Err(mismatch(format!("the inner dimensions differ ({k} vs {k2})")));
    }
    let batch = match (ba, bb) {
        (Some(x), Some(y)) if x != y => return Err(mismatch(format!("the batch sizes differ ({x} vs {y})"))),
        (Some(x), _) | (None, Some(x)) => Some(x),
        (None, None) => None,
    };
    let dims = MatmulDims {
        batch: batch.unwrap_or(1),
        m,
        k,
        n,
        a_batch_stride: if ba.is_some() { m * k } else { 0 },
        b_batch_stride: if bb.is_some() { k * n } else { 0 },
    };
    let shape = match batch {
        Some(b) => vec![b, m, n],
        None => vec![m, n],
    };
    Ok((dims, shape))
}

/// The matrix product of `a` and `b` on `stream`, like `torch.matmul` for 2-D and 3-D operands:
/// `[m, k] · [k, n] → [m, n]`, `[b, m, k] · [b, k, n] → [b, m, n]`, and a 2-D operand is shared across
/// the other's batch. f16 and bf16 accumulate in f32.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let a = ops::ones_on::<f32>(&s, [4, 3, 5])?;
/// let b = ops::ones_on::<f32>(&s, [5, 2])?;
/// let c = ops::mm_on(&s, &a, &b)?;
/// assert_eq!(c.shape(), &[4, 3, 2]);
/// assert_eq!(c.to_vec()?, vec![5.0; 24]);
/// let bad = ops::mm_on(&s, &b, &b).unwrap_err();
/// assert!(bad.to_string().contains("inner dimensions differ (2 vs 5)"));
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn mm_on<T: Element>(stream: &Stream, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    let (dims, shape) = plan(a.shape(), b.shape())?;
    crate::ops::check_devices(stream, "mm", &[a.device(), b.device()])?;
    // What the backend would refuse (cuBLAS forced but missing, dimensions it cannot index) is refused before
    // the output exists.
    match stream.queue() {
        Queue::Cpu(q) => q.mm_ready::<T>(dims),
        Queue::Cuda(q) => q.mm_ready::<T>(dims),
    }?;
    let out = Tensor::alloc(stream, shape)?;
    let _trace = crate::trace::describe(&[(T::DTYPE, a.shape()), (T::DTYPE, b.shape())], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.mm(&a.storage, &b.storage, &out.storage, dims),
        Queue::Cuda(q) => q.mm(&a.storage, &b.storage, &out.storage, dims),
    }?;
    Ok(out)
}

/// [`mm_on`] on the current stream of the operands' device.
///
/// ```
/// use streamdsl::prelude::*;
/// let a = ones::<f64>([2, 3])?;
/// let b = ones::<f64>([3, 4])?;
/// assert_eq!(mm(&a, &b)?.to_vec()?, vec![3.0; 8]);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn mm<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    mm_on(&a.current_stream(), a, b)
}

impl<T: Element> Tensor<T> {
    /// `self · other` on the current stream; see [`mm_on`].
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], [1, 2], &Device::cpu())?;
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0], [2, 1], &Device::cpu())?;
    /// assert_eq!(a.mm(&b)?.item()?, 11.0);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn mm(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
        mm(self, other)
    }
}
