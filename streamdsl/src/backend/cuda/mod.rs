//! The CUDA backend: thin wrappers over `cudarc` (loaded dynamically, so binaries start without CUDA).
//!
//! This is the only module that names cudarc types; everything above it sees plain Rust values.

pub(crate) mod driver;
mod machine;
pub(crate) mod nvrtc;

pub(crate) use machine::{elapsed, CudaMachine, DeviceWork, Launcher, TimedEvent};
