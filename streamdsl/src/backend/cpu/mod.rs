//! The CPU backend: a real asynchronous stream machine plus the compute kernels it runs.

mod custom;
mod kernels;
mod machine;
mod queue;
mod sync;

pub use custom::{Chunk, GridBlock, ReadSlice, SharedSlice, SliceElem};
pub(crate) use kernels::{advise_huge, Lane};
pub(crate) use machine::{machine, Machine, PRIORITY_RANGE};
pub(crate) use queue::Queue;
