//! Moving data between the host and devices: `Tensor::from_vec`, `to_vec`, `item`, `to_device`, and the raw
//! Philox bits a device computes.

use crate::backend::{Backend, Kernels, Queue, Storage};
use crate::device::Device;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::shape::{checked_numel, IntoShape};
use crate::stream::Stream;
use crate::tensor::Tensor;

impl<T: Element> Tensor<T> {
    /// A tensor holding `data` (row-major) with `shape`. The length must match the shape. On a GPU the data
    /// is uploaded on `device`'s current stream.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let t = Tensor::from_vec(vec![1.0f64; 6], [2, 3], &Device::cpu())?;
    /// assert_eq!(t.shape(), &[2, 3]);
    /// assert!(Tensor::from_vec(vec![1.0f64; 5], [2, 3], &Device::cpu()).is_err());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn from_vec(data: Vec<T>, shape: impl IntoShape, device: &Device) -> Result<Tensor<T>> {
        let shape = shape.into_shape();
        let numel = checked_numel(&shape, size_of::<T>())?;
        if numel != data.len() {
            return Err(Error::InvalidShape {
                shape,
                reason: format!("it holds {numel} elements but the data has {}", data.len()),
            });
        }
        match device.backend()? {
            // Host memory is the CPU backend's memory: the data becomes the tensor, no copy.
            Backend::Cpu(_) => Ok(Tensor::from_storage(Storage::from_vec(data), shape, *device)),
            Backend::Cuda(_) => upload(&Stream::current(device), data, shape),
        }
    }

    /// Copies the data to the host, row-major. Waits only for the work that writes this tensor (not for
    /// unrelated work queued on the same streams). If that work failed, its error comes back. In strict
    /// mode ([`crate::set_strict`]) an unfinished producer is [`Error::ImplicitSync`] instead of a wait.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let t = full::<f32>([3], 2.5)?;
    /// assert_eq!(t.to_vec()?, vec![2.5; 3]);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>> {
        if crate::strict::is_strict() && !self.is_ready() {
            return Err(Error::ImplicitSync { op: "to_vec" });
        }
        read_to_host(self, "to_vec")
    }

    /// The value of a one-element tensor (such as the result of [`sum`](Tensor::sum)).
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// assert_eq!(ones::<f64>([2, 2])?.sum()?.item()?, 4.0);
    /// assert!(ones::<f64>([2])?.item().is_err());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::InvalidArgument {
                op: "item",
                reason: format!("the tensor has shape {:?}; only one-element tensors have an item", self.shape()),
            });
        }
        if crate::strict::is_strict() && !self.is_ready() {
            return Err(Error::ImplicitSync { op: "item" });
        }
        Ok(read_to_host(self, "item")?[0])
    }

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

/// Copies a tensor to the host once the work that writes it has completed.
///
/// The copy is an op of its own on a transient highest-priority stream: it waits only for the tensor's
/// producer (not for unrelated work queued behind it), and later writes to the tensor wait for it.
fn read_to_host<T: Element>(t: &Tensor<T>, call: &'static str) -> Result<Vec<T>> {
    let device = t.device();
    let _blocking = crate::trace::host_call(call, device, None);
    let reader = Stream::create(device, device.priority_range().1)?;
    let _operands = crate::trace::describe(&[(T::DTYPE, t.shape())], None);
    if crate::trace::enabled() {
        crate::trace::reader_stream(device, reader.id());
    }
    match reader.queue() {
        Queue::Cpu(q) => q.download(&t.storage),
        Queue::Cuda(q) => q.download(&t.storage),
    }
}

/// A new tensor of `shape` on `stream`'s device holding `data`, copied in order on `stream`.
fn upload<T: Element>(stream: &Stream, data: Vec<T>, shape: Vec<usize>) -> Result<Tensor<T>> {
    let out = Tensor::alloc(stream, shape)?;
    let _trace = crate::trace::describe(&[], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.upload(data, &out.storage),
        Queue::Cuda(q) => q.upload(data, &out.storage),
    }?;
    Ok(out)
}

/// `t` on `stream`'s device: a copy enqueued on `stream` (like `Tensor.to(device)`); the same tensor when it
/// is already there. The data goes through the host: it is read once its producer has completed.
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
    if t.device() == stream.device() {
        return Ok(t.clone());
    }
    upload(stream, read_to_host(t, "to_vec")?, t.shape().to_vec())
}

/// The raw Philox4x32-10 words of `groups` counters `(g, offset)` under key `seed`, computed on `stream`'s
/// device: four words per group, group-major. Every backend returns the same bits; this is how the CUDA
/// kernel is checked against the CPU (and against Random123's known answers).
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let bits = streamdsl::random::philox_bits_on(&s, 2, 0, 0)?;
/// assert_eq!(&bits[..4], &[0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// assert_eq!(bits.len(), 8);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn philox_bits_on(stream: &Stream, groups: usize, seed: u64, offset: u64) -> Result<Vec<u32>> {
    match stream.queue() {
        Queue::Cpu(q) => q.philox_bits(groups, seed, offset),
        Queue::Cuda(q) => q.philox_bits(groups, seed, offset),
    }
}
