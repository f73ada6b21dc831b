//! # streamdsl
//!
//! GPU work written as ordinary Rust blocks scoped to a stream, with `torch.Stream` / `torch.Event`
//! semantics, no data races between streams in safe code, and a real asynchronous CPU backend so every
//! program runs on any machine.
//!
//! ```
//! use streamdsl::prelude::*;
//!
//! let dev = Device::default();                  // the CPU backend where no GPU is present
//! let s = Stream::with_priority(&dev, -1)?;      // torch.Stream(device, priority=-1)
//! let c = gpu_scope!(stream = s, {              // `with torch.cuda.stream(s):`
//!     let a = randn::<f32>([64, 32])?;
//!     let b = randn::<f32>([32, 64])?;
//!     mm(&a, &b)?                                // enqueued on `s`, returns at once
//! });
//! s.synchronize()?;
//! assert_eq!(c.shape(), &[64, 64]);
//! println!("{:?}", c.to_vec()?.len());          // to_vec waits only for the work that produces `c`
//! # Ok::<(), streamdsl::Error>(())
//! ```
//!
//! ## Streams and events
//!
//! | torch | streamdsl |
//! | --- | --- |
//! | `torch.Stream(device, priority=p)` | [`Stream::new`], [`Stream::with_priority`] (p ≤ 0; lower runs first) |
//! | `with stream:` | [`gpu_scope!`], or the [`Stream::scope`] guard in code without the macro |
//! | `query()`, `synchronize()` | [`Stream::query`], [`Stream::synchronize`] |
//! | `record_event()`, `wait_event(e)`, `wait_stream(s)` | [`Stream::record_event`], [`Stream::wait_event`], [`Stream::wait_stream`] |
//! | `torch.Event(enable_timing=True)`, `elapsed_time` | [`Event::timed`], [`Event::elapsed_time`] (a `Duration`) |
//! | `torch.cuda.current_stream()` | [`Stream::current`], [`Device::default_stream`] |
//!
//! ## Safety model
//!
//! Each tensor's buffer remembers the point of its last write and one read point per stream that read
//! it since. An op enqueued on one stream first waits for what it needs from other streams: the last
//! write of every input, and every earlier read of what it writes. Every pending op holds its buffers,
//! so memory is never freed or reused while work that uses it is queued. Reading a tensor on the host
//! ([`Tensor::to_vec`]) waits only for the work that writes it.
//!
//! ## Errors
//!
//! Bad input is an [`Error`] returned by the call. A failure while work runs poisons its stream: later
//! work on it is skipped, and the error comes back from the next `synchronize` or read;
//! [`Stream::clear_error`] recovers. [`set_strict`] (or `STREAMDSL_STRICT=1`) turns implicit
//! synchronisation into an error.
//!
//! ## The CPU backend
//!
//! Each stream is a FIFO queue; a pool of workers ([`Device::concurrency`]) runs streams concurrently,
//! higher-priority streams' ready work first. Heavy ops parallelise inside with rayon and `gemm`.

#![warn(missing_docs)]

mod backend;
mod device;
mod dtype;
mod error;
mod event;
mod hazard;
pub mod jit;
pub mod math;
pub mod ops;
#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}
mod private;
pub mod random;
mod runtime;
mod scope;
mod shape;
mod stream;
mod strict;
mod tensor;

pub use device::{CudaDeviceInfo, Device};
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use event::Event;
pub use hazard::set_sanitize;
pub use random::{manual_seed, Generator};
pub use scope::StreamGuard;
pub use shape::{IntoShape, MAX_DIMS};
pub use stream::Stream;
pub use strict::{is_strict, set_strict};
pub use tensor::Tensor;

pub use half;
pub use streamdsl_macros::gpu_scope;

/// Everything a stream-scoped program needs: `use streamdsl::prelude::*;`.
///
/// ```
/// use streamdsl::prelude::*;
/// let t: Tensor<f32> = zeros([2])?;
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub mod prelude {
    pub use crate::gpu_scope;
    pub use crate::ops::{self, full, mm, ones, randn, randn_with, zeros};
    pub use crate::{DType, Device, Element, Error, Event, Generator, Result, Stream, Tensor};
    pub use half::{bf16, f16};
}
