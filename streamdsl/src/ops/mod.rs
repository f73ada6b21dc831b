//! The tensor ops, in their explicit-stream form (`*_on(&stream, …)`), plus the implicit forms that use
//! the current stream.
//!
//! Each op validates its operands once (shapes, devices), allocates its output (an allocation that
//! cannot be satisfied is [`crate::Error::OutOfMemory`]), and enqueues its kernel on the stream through one
//! `match` on the stream's backend; it returns without waiting. Cross-stream ordering is automatic: an op waits for the last
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
mod elementwise;
mod inplace;
mod matmul;
mod reduce;
pub(crate) mod transfer;

pub use convert::*;
pub use creation::*;
pub use elementwise::*;
pub use inplace::*;
pub use matmul::*;
pub use reduce::*;
pub use transfer::to_device_on;

use crate::device::Device;
use crate::error::Result;
use crate::stream::Stream;

/// Checks that every operand of `op` lives on `stream`'s device (the validation every op does once, before it
/// reaches a backend).
pub(crate) fn check_devices(stream: &Stream, op: &'static str, operands: &[Device]) -> Result<()> {
    operands.iter().try_for_each(|d| stream.check_same_device(op, d))
}
