//! The CPU backend: a real asynchronous stream machine plus the compute kernels it runs.

mod kernels;
mod machine;
mod queue;
mod sync;

pub(crate) use machine::{machine, Machine, PRIORITY_RANGE};
pub(crate) use queue::Queue;
