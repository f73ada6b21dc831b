//! The CUDA backend: thin wrappers over `cudarc` (loaded dynamically, so binaries start without CUDA).
//!
//! This is the only module that names cudarc's driver types; everything above it sees plain Rust values.
//! `driver` says whether a driver is there and which devices; `machine` is the stream machine of one device
//! (streams, events, memory); `launch` is what one op's device work enqueues with; `queue` holds each op's
//! kernel, arguments and launch shape.

pub(crate) mod driver;
mod launch;
mod machine;
mod queue;

pub(crate) use machine::{delay_host_waits, elapsed, CudaMachine, DeviceBuffer, DeviceWork, TimedEvent};
pub(crate) use queue::Queue;
