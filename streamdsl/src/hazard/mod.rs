//! Cross-stream hazard tracking: which points an op must wait for before it touches a buffer.
//!
//! Each buffer keeps an [`AccessLog`]: the point of its last write and **one read point per stream**
//! that read it since (not only the latest reader, which would let a write overtake an earlier read on a
//! third stream). An op on stream `s` that reads a buffer waits for the last write when it was made on
//! another stream; an op that writes waits for the last write and for every read made on other streams.
//! Same-stream accesses are ordered by the stream's FIFO already.

pub(crate) mod sanitizer;

use std::sync::atomic::{AtomicU64, Ordering};

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

/// The accesses to one buffer that later work may have to wait for.
#[derive(Debug)]
pub(crate) struct AccessLog {
    id: u64,
    last_write: Option<Point>,
    reads: Vec<Point>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog { id: NEXT_BUFFER_ID.get().fetch_add(1, Ordering::Relaxed), last_write: None, reads: Vec::new() }
    }
}

impl AccessLog {
    /// A process-unique id of the buffer, for the race checker.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The reads noted since the last write, one per stream.
    pub(crate) fn reads(&self) -> &[Point] {
        &self.reads
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

    /// Notes a read at `point`; it replaces that stream's earlier read (the FIFO orders those).
    pub(crate) fn note_read(&mut self, point: Point) {
        match self.reads.iter_mut().find(|p| p.stream == point.stream) {
            Some(p) => *p = point,
            None => self.reads.push(point),
        }
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

    fn deps(log: &AccessLog, stream: u64, write: bool) -> Vec<Point> {
        let mut v = Vec::new();
        log.dependencies(stream, write, |q| v.push(q));
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
        log.note_read(p(2, 3));
        log.note_read(p(3, 4));
        log.note_read(p(2, 7)); // replaces stream 2's earlier read
        assert_eq!(deps(&log, 1, true), vec![p(2, 7), p(3, 4)]);
        assert_eq!(deps(&log, 2, true), vec![p(1, 1), p(3, 4)]);
        log.note_write(p(4, 1));
        assert_eq!(deps(&log, 1, true), vec![p(4, 1)]);
    }
}
