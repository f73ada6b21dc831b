//! The CUDA backend: thin wrappers over `cudarc` (loaded dynamically, so binaries start without CUDA).
//!
//! This is the only module that names cudarc's driver types; everything above it sees plain Rust values.
//! `driver` says whether a driver is there and which devices; `machine` is the stream machine of one device
//! (streams, events, memory); `launch` is what one op's device work enqueues with; `queue` holds each op's
//! kernel, arguments and launch shape; `blas` is cuBLAS, which `mm` uses where it is found; `timing` gives
//! traced ops their start and end from timed events.

pub(crate) mod blas;
mod custom;
pub(crate) mod driver;
mod launch;
mod machine;
mod queue;
mod timing;

pub(crate) use machine::{delay_host_waits, elapsed, on_simulator, CudaMachine, DeviceBuffer, DeviceWork, TimedEvent};
pub(crate) use queue::Queue;
