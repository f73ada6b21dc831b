//! The CPU backend: a real asynchronous stream machine plus the compute kernels it runs.

mod kernels;
mod machine;

pub(crate) use kernels::*;
pub(crate) use machine::{machine, Machine, PRIORITY_RANGE};
