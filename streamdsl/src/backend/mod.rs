//! Backends: the machines that run stream-ordered work.
//!
//! Everything above this module talks to a backend through the [`Machine`] trait, [`Point`]s (positions
//! in a stream's queue) and [`Work`]; no cudarc type leaks out of `backend::cuda`.

pub(crate) mod cpu;
pub(crate) mod cuda;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use crate::error::Result;
use crate::hazard::AccessLog;

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

/// Work run on the host by a stream's worker (CPU backend) or as a host callback (CUDA backend).
pub(crate) type HostWork = Box<dyn FnOnce() -> Result<()> + Send + 'static>;

/// What an op enqueues.
pub(crate) enum Work {
    /// Runs on the host, in queue order.
    Host(HostWork),
    /// Enqueues device work (kernel launches, copies) on a CUDA stream; runs when submitted.
    Device(cuda::DeviceWork),
}

/// The time an event completed: a host timestamp (CPU) or a timed CUDA event.
#[derive(Clone)]
pub(crate) enum Stamp {
    Host(Arc<OnceLock<Instant>>),
    Device(Arc<cuda::TimedEvent>),
}

/// The buffers an op reads and writes, by their access logs.
pub(crate) struct Access<'a> {
    pub reads: &'a [&'a Mutex<AccessLog>],
    pub writes: &'a [&'a Mutex<AccessLog>],
}

impl Access<'_> {
    /// The points an op on `stream` must wait for before making these accesses (see `crate::hazard`).
    pub(crate) fn dependencies(&self, stream: u64) -> Vec<Point> {
        let mut waits = Vec::new();
        for (log, write) in self.logs() {
            lock_log(log).dependencies(stream, write, |p| waits.push(p));
        }
        waits
    }

    /// Notes that the op at `point` made these accesses.
    pub(crate) fn note(&self, point: Point) {
        for (log, write) in self.logs() {
            let mut log = lock_log(log);
            if write {
                log.note_write(point);
            } else {
                log.note_read(point);
            }
        }
    }

    /// `(buffer id, is a write)` of every access, for the race checker.
    pub(crate) fn buffers(&self) -> Vec<(u64, bool)> {
        self.logs().map(|(log, write)| (lock_log(log).id(), write)).collect()
    }

    fn logs(&self) -> impl Iterator<Item = (&Mutex<AccessLog>, bool)> {
        self.reads.iter().map(|l| (*l, false)).chain(self.writes.iter().map(|l| (*l, true)))
    }
}

/// Locks an access log; they are only touched under a machine's lock, so a poisoned one is still consistent.
pub(crate) fn lock_log(log: &Mutex<AccessLog>) -> std::sync::MutexGuard<'_, AccessLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// The message of a caught panic, for the error that poisons the stream it happened on.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_string()
    }
}

/// A stream machine: streams, their queues, events, and the cross-stream ordering of buffer accesses.
pub(crate) trait Machine: Send + Sync + 'static {
    /// A new stream; `priority` is validated (≤ 0) and clamped by the machine.
    fn create_stream(&self, priority: i32, name: String) -> Result<u64>;
    /// The handle is gone: queued work still runs.
    fn release_stream(&self, id: u64);
    /// Enqueues `work` behind the waits `access` needs, and notes the accesses.
    fn submit(&self, stream: u64, op: &'static str, access: Access<'_>, work: Work) -> Result<Point>;
    /// Enqueues an event record; a timed record also returns the stamp `elapsed_time` reads.
    fn record(&self, stream: u64, timed: bool) -> Result<(Point, Option<Stamp>)>;
    /// Later work on `stream` waits for `p`; does not block the host.
    fn wait(&self, stream: u64, p: Point) -> Result<()>;
    /// The point covering everything submitted to `stream` so far.
    fn tail(&self, stream: u64) -> Point;
    /// Whether `p` has completed; never blocks.
    fn is_complete(&self, p: Point) -> bool;
    /// The last write noted in `log`, read consistently with `submit`.
    fn last_write(&self, log: &Mutex<AccessLog>) -> Option<Point>;
    /// Blocks until `p` has completed; the error of a failure at or before it comes back.
    fn wait_host(&self, p: Point) -> Result<()>;
    /// Blocks until `stream` drains; reports its poison.
    fn synchronize(&self, stream: u64) -> Result<()>;
    /// Whether everything submitted to `stream` has completed.
    fn query(&self, stream: u64) -> bool;
    /// Ends a poisoned state; the error that caused it.
    fn clear_error(&self, stream: u64) -> Option<crate::error::Error>;
}
