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
//! higher-priority streams' ready work first. Heavy ops parallelise inside with rayon (and faer, for `mm`).
//!
//! ## Tracing
//!
//! [`trace`] records ops, waits, events and blocking host calls (off by default: a relaxed atomic load where an
//! op is described and where it is enqueued), and exports Chrome trace JSON for Perfetto and an SVG timeline that evcxr shows inline;
//! `STREAMDSL_TRACE=trace.json,timeline.svg` traces a whole run.

//! ## Architecture
//!
//! `streamdsl/src` is built in layers whose imports point one way, down; `tests/layers.rs` reads this table
//! and fails on any `crate::` path from a module to one in a higher layer, and on any import circle.
//!
//! | layer | modules | what they hold |
//! | --- | --- | --- |
//! | 0 | `math`, `error`, `dtype`, `shape`, `strict`, `mm_config`, `runtime`, `device` | pure values and functions: portable math, errors, element types, shapes, the `Device` name; process-wide slots and switches (strict mode, `mm`'s TF32 and CUDA path) |
//! | 1 | `hazard`, `rng`, `jit`, `trace` | stream points and access logs, the race checker; Philox and Box–Muller; NVRTC and the kernel cache; the trace recorder and its exports |
//! | 2 | `backend` | the stream machines (CPU, CUDA), their memory (`Storage`) and each backend's kernels and launches |
//! | 3 | `registry` | which machine runs each device; opening devices; the default device |
//! | 4 | `event` → `stream` → `scope` | events; streams (and each device's default stream); the current stream |
//! | 5 | `tensor` | `Tensor<T>` |
//! | 6 | `kernel` → `ops` | `#[kernel]` launches and the support of their generated code; every op: validate once, then one `match` on the stream's backend |
//! | 7 | `lib`, `macros`, `private`, `bin` | the public facade (`prelude`, `random`, `gpu_scope!`), macro support, the CLI |
//!
//! Within a layer, `→` orders modules too. Inherent methods live with the layer that can implement them
//! (`Device::cuda` in `registry`, `Device::default_stream` in `stream`, `Stream::current` in `scope`,
//! `Tensor::to_vec` in `ops`), so the public API reads as one piece.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod backend;
mod device;
mod dtype;
mod error;
mod event;
mod hazard;
pub mod jit;
pub mod kernel;
mod macros;
pub mod math;
mod mm_config;
pub mod ops;
#[doc(hidden)]
pub mod __private {
    pub use crate::private::*;
}
mod private;
mod registry;
mod rng;
mod runtime;
mod scope;
mod shape;
mod stream;
mod strict;
mod tensor;
pub mod trace;

/// Counter-based random numbers: Philox4x32-10 generators (like `torch.Generator`), the Box–Muller normals
/// `randn` draws, and the raw Philox bits a device computes. The same bits on every backend.
pub mod random {
    pub use crate::ops::transfer::philox_bits_on;
    pub use crate::rng::{default_generator, manual_seed, philox4x32_10, uniform_f32, uniform_f64, Generator};
}

pub use device::Device;
pub use dtype::{DType, Element};
pub use error::{Error, Result};
pub use event::Event;
pub use mm_config::{allow_tf32, mm_path, set_allow_tf32, set_mm_path, MmPath, MmRoute};
pub use random::{manual_seed, Generator};
pub use registry::{cuda_mm_route, empty_host_cache, set_sanitize, CudaDeviceInfo};
pub use scope::StreamGuard;
pub use shape::{IntoShape, MAX_DIMS};
pub use stream::Stream;
pub use strict::{is_strict, set_strict};
pub use tensor::Tensor;

pub use half;

/// Writes a kernel in Rust that runs on every backend with the same bits: `#[kernel]` (elementwise),
/// `#[kernel(grid)]` (an index space over slices) and `#[kernel(device)]` (helpers). See the
/// [`kernel` module](mod@kernel) for the types it uses.
#[doc(inline)]
pub use streamdsl_macros::kernel;

/// Everything a stream-scoped program needs: `use streamdsl::prelude::*;`.
///
/// ```
/// use streamdsl::prelude::*;
/// let t: Tensor<f32> = zeros([2])?;
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub mod prelude {
    pub use crate::gpu_scope;
    pub use crate::kernel;
    pub use crate::kernel::LaunchConfig;
    pub use crate::ops::{self, full, mm, ones, randn, randn_with, zeros};
    pub use crate::{DType, Device, Element, Error, Event, Generator, Result, Stream, Tensor};
    pub use half::{bf16, f16};
}
