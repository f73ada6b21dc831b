//! The tensor ops, in their explicit-stream form (`*_on(&stream, …)`), plus the implicit forms that use
//! the current stream.
//!
//! Each op validates its operands once (shapes, devices), allocates its output (an allocation that
//! cannot be satisfied is [`crate::Error::OutOfMemory`]), and enqueues its kernel on
//! the stream; it returns without waiting. Cross-stream ordering is automatic: an op waits for the last
//! write of every tensor it reads, and for every earlier read of a tensor it writes, when those were
//! enqueued on other streams.
//!
//! ```
//! use streamdsl::prelude::*;
//! let dev = Device::cpu();
//! let (s1, s2) = (Stream::new(&dev)?, Stream::new(&dev)?);
//! let a = ops::randn_on::<f32>(&s1, [64, 32])?;
//! let b = ops::ones_on::<f32>(&s2, [32, 16])?;
//! let c = ops::mm_on(&s2, &a, &b)?;     // s2 waits for s1's randn automatically
//! assert_eq!(c.shape(), &[64, 16]);
//! # Ok::<(), streamdsl::Error>(())
//! ```

mod convert;
mod creation;
pub(crate) mod cuda;
mod elementwise;
mod inplace;
mod matmul;
mod reduce;

use std::sync::{Arc, Mutex};

pub use convert::*;
pub use creation::*;
pub use elementwise::*;
pub use inplace::*;
pub use matmul::*;
pub use reduce::*;

use crate::backend::Work;
use crate::device::Device;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::tensor::Tensor;

/// Enqueues a CPU `kernel` on `stream`: it reads `inputs` and writes `out` (a distinct tensor).
pub(crate) fn launch_host<T: Element, U: Element>(
    stream: &Stream,
    op: &'static str,
    inputs: &[&Tensor<T>],
    out: &Tensor<U>,
    kernel: impl FnOnce(&[&[T]], &mut [U]) + Send + 'static,
) -> Result<()> {
    for t in inputs {
        stream.check_same_device(op, &t.device())?;
    }
    stream.check_same_device(op, &out.device())?;
    let sources: Vec<_> = inputs.iter().map(|t| Arc::clone(&t.storage)).collect();
    let dest = Arc::clone(&out.storage);
    let reads: Vec<_> = inputs.iter().map(|t| &t.storage.log).collect();
    let work = Work::Host(Box::new(move || {
        // SAFETY: the stream machine runs this after the last write of every input and after every earlier
        // access to `dest`, and nothing else touches them until it completes. `dest` is a distinct buffer
        // from every input (outputs are fresh; in-place ops check for sharing).
        let ins = sources.iter().map(|s| unsafe { s.slice() }).collect::<Result<Vec<&[T]>>>()?;
        kernel(&ins, unsafe { dest.slice_mut()? });
        Ok(())
    }));
    stream.submit(op, &reads, &[&out.storage.log], work)?;
    Ok(())
}

/// Copies a tensor to the host once the work that writes it has completed.
///
/// The copy is an op of its own on a transient highest-priority stream: it waits only for the tensor's
/// producer (not for unrelated work queued behind it), and later writes to the tensor wait for it.
pub(crate) fn read_to_host<T: Element>(t: &Tensor<T>) -> Result<Vec<T>> {
    if t.device().is_cuda() {
        return cuda::download(t);
    }
    let reader = Stream::create(t.device(), t.device().priority_range().1)?;
    let slot = Arc::new(Mutex::new(None));
    let (filled, source) = (Arc::clone(&slot), Arc::clone(&t.storage));
    let point = reader.submit(
        "to_vec",
        &[&t.storage.log],
        &[],
        Work::Host(Box::new(move || {
            // SAFETY: ordered after the tensor's last write by the machine.
            let data = unsafe { source.slice()? }.to_vec();
            *filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(data);
            Ok(())
        })),
    )?;
    reader.machine().wait_host(point)?;
    let data = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    data.ok_or_else(|| Error::OpFailed { op: "to_vec".into(), message: "the copy to the host did not run".into() })
}

/// `t` on `stream`'s device: a copy enqueued on `stream` (like `Tensor.to(device)`); the same tensor when it
/// is already there.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let t = Tensor::from_vec(vec![1.0f32, 2.0], [2], &Device::cpu())?;
/// let u = ops::to_device_on(&s, &t)?;
/// assert!(u.shares_data(&t)); // already on the CPU
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn to_device_on<T: Element>(stream: &Stream, t: &Tensor<T>) -> Result<Tensor<T>> {
    let (from, to) = (t.device(), stream.device());
    if from == to {
        return Ok(t.clone());
    }
    match (from.is_cpu(), to.is_cpu()) {
        (true, false) => cuda::upload(stream, t),
        (false, true) => Tensor::from_vec(read_to_host(t)?, t.shape().to_vec(), &to),
        _ => {
            let host = Tensor::from_vec(read_to_host(t)?, t.shape().to_vec(), &Device::cpu())?;
            cuda::upload(stream, &host)
        }
    }
}

impl<T: Element> Tensor<T> {
    /// This tensor on `device` (like `Tensor.to(device)`): a copy enqueued on `device`'s current stream, or
    /// the same tensor when it is already there. See [`to_device_on`] for the explicit-stream form.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0], [2], &Device::cpu())?;
    /// let dev = Device::default(); // a GPU where there is one
    /// let there = t.to_device(&dev)?;
    /// assert_eq!(there.device(), dev);
    /// assert_eq!(there.to_device(&Device::cpu())?.to_vec()?, vec![1.0, 2.0]);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn to_device(&self, device: &Device) -> Result<Tensor<T>> {
        to_device_on(&Stream::current(device), self)
    }
}
