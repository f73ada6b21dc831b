//! Backends: the machines that run stream-ordered work.
//!
//! Everything above this module talks to a backend through [`Point`]s (positions in a stream's queue)
//! and the [`cpu::Machine`] API; no backend type leaks into the public API.

pub(crate) mod cpu;
pub(crate) mod cuda;

use crate::error::Result;

/// A position in one stream's queue: everything submitted to `stream` up to and including `seq`.
///
/// Points are what events record, what waits wait for and what the hazard tracker remembers for each
/// buffer. They are plain values: recording an event again makes a new point, and waits already
/// enqueued keep the old one (CUDA semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Point {
    /// The stream's machine-wide id.
    pub stream: u64,
    /// 1-based position in that stream's queue; 0 means "before any work".
    pub seq: u64,
}

/// A unit of work run on a stream: it reports failure as an error value (a panic is caught too).
pub(crate) type Work = Box<dyn FnOnce() -> Result<()> + Send + 'static>;
