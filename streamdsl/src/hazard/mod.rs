//! Cross-stream hazard tracking: which points an op must wait for before it touches a buffer.
//!
//! Each buffer keeps an [`AccessLog`]: the point of its last write and **one read point per stream**
//! that read it since (not only the latest reader, which would let a write overtake an earlier read on a
//! third stream). An op on stream `s` that reads a buffer waits for the last write when it was made on
//! another stream; an op that writes waits for the last write and for every read made on other streams.
//! Same-stream accesses are ordered by the stream's FIFO already.

pub(crate) mod sanitizer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::runtime::ProcessWide;

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

/// Ids of buffers, for the race checker: unique per process.
static NEXT_BUFFER_ID: ProcessWide<AtomicU64> = ProcessWide::new("hazard.next_buffer_id", AtomicU64::default);

/// A buffer's access log, shared by the buffer and the queued work that touches it.
pub(crate) type SharedLog = Arc<Mutex<AccessLog>>;

/// Why a buffer's contents are garbage: the write that should have produced them did not run or failed.
#[derive(Debug, Clone)]
pub(crate) struct Poisoned {
    /// The stream the failure happened on, as it displays.
    pub stream: String,
    /// The failure.
    pub cause: Arc<Error>,
}

impl Poisoned {
    /// The error an op that reads the buffer gets.
    pub(crate) fn error(&self) -> Error {
        Error::StreamPoisoned { stream: self.stream.clone(), cause: Arc::clone(&self.cause) }
    }
}

/// The accesses to one buffer that later work may have to wait for, and whether its contents are valid.
#[derive(Debug)]
pub(crate) struct AccessLog {
    id: u64,
    last_write: Option<Point>,
    reads: Vec<Point>,
    /// Set when the last completed write was skipped (its stream was poisoned) or failed; cleared when a
    /// later write completes. A buffer stays poisoned until something overwrites it.
    poison: Option<Poisoned>,
}

impl Default for AccessLog {
    fn default() -> Self {
        let id = NEXT_BUFFER_ID.get().fetch_add(1, Ordering::Relaxed);
        AccessLog { id, last_write: None, reads: Vec::new(), poison: None }
    }
}

impl AccessLog {
    /// A process-unique id of the buffer, for the race checker.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The reads noted since the last write, one per stream.
    #[cfg(test)]
    pub(crate) fn reads(&self) -> &[Point] {
        &self.reads
    }

    /// Every access that later work (a free) must wait for: the last write and the reads since.
    pub(crate) fn points(&self) -> Vec<Point> {
        self.last_write.into_iter().chain(self.reads.iter().copied()).collect()
    }

    /// The point whose completion makes the buffer's contents valid for the host.
    pub(crate) fn last_write(&self) -> Option<Point> {
        self.last_write
    }

    /// Calls `wait` with each point an op on `stream` must wait for before reading (`write == false`) or
    /// writing (`write == true`) this buffer.
    pub(crate) fn dependencies(&self, stream: u64, write: bool, mut wait: impl FnMut(Point)) {
        let foreign = |p: &Point| p.stream != stream;
        if let Some(w) = self.last_write.filter(foreign) {
            wait(w);
        }
        if write {
            self.reads.iter().filter(|p| foreign(p)).for_each(|&p| wait(p));
        }
    }

    /// Notes a read at `point`; it replaces that stream's earlier read (the FIFO orders those), and reads
    /// that have completed are forgotten (nothing needs to wait for them), so a buffer read over and over from
    /// transient streams (`to_vec`) keeps a short list.
    pub(crate) fn note_read(&mut self, point: Point, is_complete: impl Fn(Point) -> bool) {
        self.reads.retain(|p| p.stream != point.stream && !is_complete(*p));
        self.reads.push(point);
    }

    /// Why the contents are garbage, if they are (as of the last completed write).
    pub(crate) fn poison(&self) -> Option<&Poisoned> {
        self.poison.as_ref()
    }

    /// Records the outcome of a write that completed: `None` when it ran, the failure when it was skipped or
    /// failed.
    pub(crate) fn set_poison(&mut self, poison: Option<Poisoned>) {
        self.poison = poison;
    }

    /// Notes a write at `point`; the write waited for every earlier access, so they are forgotten.
    pub(crate) fn note_write(&mut self, point: Point) {
        self.last_write = Some(point);
        self.reads.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(stream: u64, seq: u64) -> Point {
        Point { stream, seq }
    }

    /// The points to wait for, in a stable order (the log's order is not part of its contract).
    fn deps(log: &AccessLog, stream: u64, write: bool) -> Vec<Point> {
        let mut v = Vec::new();
        log.dependencies(stream, write, |q| v.push(q));
        v.sort_by_key(|p| (p.stream, p.seq));
        v
    }

    #[test]
    fn read_waits_for_foreign_write_only() {
        let mut log = AccessLog::default();
        log.note_write(p(1, 5));
        assert_eq!(deps(&log, 2, false), vec![p(1, 5)]);
        assert!(deps(&log, 1, false).is_empty());
    }

    #[test]
    fn write_waits_for_every_foreign_reader() {
        let mut log = AccessLog::default();
        log.note_write(p(1, 1));
        let pending = |_| false;
        log.note_read(p(2, 3), pending);
        log.note_read(p(3, 4), pending);
        log.note_read(p(2, 7), pending); // replaces stream 2's earlier read
        assert_eq!(deps(&log, 1, true), vec![p(2, 7), p(3, 4)]);
        assert_eq!(deps(&log, 2, true), vec![p(1, 1), p(3, 4)]);
        log.note_write(p(4, 1));
        assert_eq!(deps(&log, 1, true), vec![p(4, 1)]);
    }

    #[test]
    fn completed_reads_are_forgotten() {
        let mut log = AccessLog::default();
        for stream in 10..10_000 {
            // Each read on a transient stream that completed before the next one.
            log.note_read(p(stream, 1), |q| q.stream < stream);
        }
        assert_eq!(log.reads(), &[p(9_999, 1)]);
    }
}
