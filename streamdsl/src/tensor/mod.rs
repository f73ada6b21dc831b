//! `Tensor<T>`: a shaped, contiguous, row-major buffer on a device.
//!
//! The ops on tensors (`from_vec`, `to_vec`, arithmetic, …) live in `crate::ops` as inherent methods there.

use std::fmt;
use std::sync::Arc;

use crate::backend::{Kernels, Operand, Queue, Storage};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::shape::checked_numel;
use crate::stream::Stream;

/// An n-dimensional array of `T` (`f32`, `f64`, `half::f16`, `half::bf16`) on a [`Device`].
///
/// A tensor is a handle: clones share the data, as in PyTorch. Ops are enqueued on a stream and return
/// at once; reading the data ([`to_vec`](Tensor::to_vec), [`item`](Tensor::item)) waits only for the work
/// that produces it. Every op has an implicit form that uses the current stream (a method such as
/// [`mm`](Tensor::mm), or a free function in the prelude) and an explicit one in [`crate::ops`] that names
/// the stream.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], &dev)?;
/// let b = a.mm(&a)?;
/// assert_eq!(b.to_vec()?, vec![7.0, 10.0, 15.0, 22.0]);
/// assert_eq!((&b + &a)?.sum()?.item()?, 64.0);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub struct Tensor<T> {
    pub(crate) storage: Arc<Storage<T>>,
    shape: Arc<[usize]>,
    device: Device,
}

impl<T: Element> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Tensor { storage: Arc::clone(&self.storage), shape: Arc::clone(&self.shape), device: self.device }
    }
}

impl<T: Element> Tensor<T> {
    /// A new tensor for an op's output on `stream`'s device: validated shape; on the CPU backend fresh zeroed
    /// memory or a reused buffer holding old values, on CUDA uninitialised device memory (allocated in order on
    /// `stream`). The op writes all of it.
    pub(crate) fn alloc(stream: &Stream, shape: Vec<usize>) -> Result<Tensor<T>> {
        let numel = checked_numel(&shape, size_of::<T>())?;
        let storage = match stream.queue() {
            Queue::Cpu(q) => q.alloc(numel)?,
            Queue::Cuda(q) => q.alloc(numel)?,
        };
        Ok(Tensor::from_storage(storage, shape, stream.device()))
    }

    /// A tensor of `storage` (which holds the shape's element count) on `device`.
    pub(crate) fn from_storage(storage: Storage<T>, shape: Vec<usize>, device: Device) -> Tensor<T> {
        Tensor { storage: Arc::new(storage), shape: shape.into(), device }
    }

    /// The data and shape as a kernel operand.
    pub(crate) fn operand(&self) -> Operand<'_, T> {
        Operand { storage: &self.storage, shape: &self.shape }
    }

    /// The dimensions, outermost first; empty for a scalar.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert_eq!(zeros::<f32>([4, 5])?.shape(), &[4, 5]);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The number of dimensions.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert_eq!(zeros::<f32>([4, 5, 6])?.ndim(), 3);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// The number of elements.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert_eq!(zeros::<f32>([4, 5])?.numel(), 20);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The element type's runtime tag.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert_eq!(zeros::<half::bf16>([1])?.dtype(), DType::BF16);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// The device the data lives on.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert!(zeros::<f32>([1])?.device().is_cpu());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether `self` and `other` share their data.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let a = zeros::<f32>([1])?;
    /// assert!(a.shares_data(&a.clone()));
    /// assert!(!a.shares_data(&zeros::<f32>([1])?));
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn shares_data(&self, other: &Tensor<T>) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// True when the work that writes this tensor has completed. Never blocks.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let t = randn::<f32>([1000])?;
    /// t.to_vec()?;
    /// assert!(t.is_ready());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        let Ok(backend) = self.device.backend() else { return true };
        let m = backend.machine();
        m.last_write(&self.storage.log).is_none_or(|p| m.is_complete(p))
    }

    /// The [`id`](Stream::id) of the stream that enqueued the last write to this tensor, if any work wrote
    /// it (tensors made by `from_vec` or `zeros` have none). A debugging aid for checking where ops ran.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let s = Stream::new(&Device::cpu())?;
    /// let t = ops::ones_on::<f32>(&s, [2])?;
    /// assert_eq!(t.producer_stream_id(), Some(s.id()));
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn producer_stream_id(&self) -> Option<u64> {
        self.device.backend().ok()?.machine().last_write(&self.storage.log).map(|p| p.stream)
    }

    /// The stream implicit ops on this tensor run on: the current stream of its device.
    pub(crate) fn current_stream(&self) -> Stream {
        Stream::current(&self.device)
    }
}

impl<T: Element> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>(shape={:?}, device={})", T::DTYPE, self.shape(), self.device)
    }
}
