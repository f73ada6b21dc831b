//! A vector-clock race checker, modelled on PyTorch's CUDA sanitizer (CSAN).
//!
//! Each stream has a vector clock: its own component is the position in its queue, the others are the
//! highest position of each other stream it is known to come after. A wait on a point takes the pointwise
//! maximum with that point's clock. An access at point `p` on stream `s` is ordered after an earlier access at
//! `q` exactly when `clock(p)[q.stream] >= q.seq`; a read is checked against the last write, a write against
//! the last write and every read since.
//!
//! The tracker in [`super`] decides which waits to enqueue; this module checks, independently, that those
//! waits order every conflicting pair. `STREAMDSL_SANITIZE=1` (or `streamdsl::set_sanitize`) runs it on every
//! op the stream machines enqueue, failing the op with the race it found (that would be a streamdsl bug).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::Point;

/// Which conflicting pair was left unordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RaceKind {
    ReadAfterWrite,
    WriteAfterRead,
    WriteAfterWrite,
}

/// Two accesses to one buffer, at least one a write, that no wait orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Race {
    pub buffer: u64,
    pub kind: RaceKind,
    pub earlier: Point,
    pub later: Point,
}

impl fmt::Display for Race {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} race on buffer {}: stream {} at {} is not ordered after stream {} at {}",
            self.kind, self.buffer, self.later.stream, self.later.seq, self.earlier.stream, self.earlier.seq
        )
    }
}

/// The clocks of other streams, valid from one queue position of a stream onwards.
type Others = Arc<HashMap<u64, u64>>;

#[derive(Default)]
struct StreamClock {
    seq: u64,
    /// `(from_seq, others)`, in increasing `from_seq`: the other components from that position on.
    history: Vec<(u64, Others)>,
}

impl StreamClock {
    fn others_at(&self, seq: u64) -> Option<&Others> {
        let i = self.history.partition_point(|(from, _)| *from <= seq);
        i.checked_sub(1).map(|i| &self.history[i].1)
    }
}

#[derive(Default)]
struct Accesses {
    last_write: Option<Point>,
    reads: Vec<Point>,
}

/// The checker's state: a clock per stream and the accesses per buffer.
#[derive(Default)]
pub(crate) struct Sanitizer {
    streams: HashMap<u64, StreamClock>,
    buffers: HashMap<u64, Accesses>,
}

impl Sanitizer {
    /// Advances `stream` by one queue entry (any task: op, record or wait) and returns its point.
    #[cfg(test)]
    pub(crate) fn step(&mut self, stream: u64) -> Point {
        let c = self.streams.entry(stream).or_default();
        c.seq += 1;
        Point { stream, seq: c.seq }
    }

    /// Component `of` of the clock of point `at`.
    fn component(&self, at: Point, of: u64) -> u64 {
        if of == at.stream {
            return at.seq;
        }
        self.streams.get(&at.stream).and_then(|c| c.others_at(at.seq)).and_then(|o| o.get(&of).copied()).unwrap_or(0)
    }

    /// Whether `earlier` is ordered before `later`.
    pub(crate) fn ordered(&self, earlier: Point, later: Point) -> bool {
        self.component(later, earlier.stream) >= earlier.seq
    }

    /// A wait entry on `stream` for `target`: from here on, `stream` comes after `target` and everything
    /// `target` came after.
    #[cfg(test)]
    pub(crate) fn wait(&mut self, stream: u64, target: Point) -> Point {
        let point = self.step(stream);
        self.wait_at(point, target);
        point
    }

    /// The wait entry at `point` (its queue position) waits for `target`. Points come from the stream
    /// machine, so the checker can be switched on at any time: what it has not seen, it does not judge.
    pub(crate) fn wait_at(&mut self, point: Point, target: Point) {
        let stream = point.stream;
        let mut merged: HashMap<u64, u64> =
            self.streams.get(&stream).and_then(|c| c.history.last()).map(|(_, o)| (**o).clone()).unwrap_or_default();
        let merged_before = self.streams.entry(stream).or_default();
        merged_before.seq = merged_before.seq.max(point.seq);
        let target_others =
            self.streams.get(&target.stream).and_then(|c| c.others_at(target.seq)).cloned().unwrap_or_default();
        for (&s, &v) in target_others.iter().chain([(&target.stream, &target.seq)]) {
            if s != stream {
                let e = merged.entry(s).or_insert(0);
                *e = (*e).max(v);
            }
        }
        if let Some(c) = self.streams.get_mut(&stream) {
            c.history.push((point.seq, Arc::new(merged)));
        }
    }

    /// Checks every access of the op at `point` and records them; the first race, if any.
    pub(crate) fn check_op(&mut self, point: Point, buffers: &[(u64, bool)]) -> Option<Race> {
        buffers.iter().find_map(|&(id, write)| self.access(point, id, write).err())
    }

    /// Checks an access to `buffer` at `point` (already stepped) and records it.
    pub(crate) fn access(&mut self, point: Point, buffer: u64, write: bool) -> Result<(), Race> {
        let acc = self.buffers.remove(&buffer).unwrap_or_default();
        let race = |kind, earlier| Race { buffer, kind, earlier, later: point };
        let mut found = None;
        if let Some(w) = acc.last_write.filter(|&w| !self.ordered(w, point)) {
            found = Some(race(if write { RaceKind::WriteAfterWrite } else { RaceKind::ReadAfterWrite }, w));
        }
        if write && found.is_none() {
            if let Some(&r) = acc.reads.iter().find(|&&r| !self.ordered(r, point)) {
                found = Some(race(RaceKind::WriteAfterRead, r));
            }
        }
        let mut acc = acc;
        if write {
            acc.last_write = Some(point);
            acc.reads.clear();
        } else {
            acc.reads.retain(|r| r.stream != point.stream);
            acc.reads.push(point);
        }
        self.buffers.insert(buffer, acc);
        found.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    //! The synthetic-stream cases of torch's `test_cuda_sanitizer.py`, with events as recorded points.
    use super::*;

    const A: u64 = 1;
    const B: u64 = 2;
    const C: u64 = 3;
    const X: u64 = 100;
    const Y: u64 = 101;

    fn op(s: &mut Sanitizer, stream: u64, reads: &[u64], writes: &[u64]) -> Result<(), Race> {
        let p = s.step(stream);
        for &b in reads {
            s.access(p, b, false)?;
        }
        for &b in writes {
            s.access(p, b, true)?;
        }
        Ok(())
    }

    fn record(s: &mut Sanitizer, stream: u64) -> Point {
        s.step(stream)
    }

    #[test]
    fn unsynchronised_accesses_race() {
        let mut s = Sanitizer::default();
        op(&mut s, A, &[], &[X]).unwrap();
        let race = op(&mut s, B, &[X], &[]).unwrap_err();
        assert_eq!(race.kind, RaceKind::ReadAfterWrite);
        assert_eq!(race.earlier, Point { stream: A, seq: 1 });
        let race = op(&mut s, C, &[], &[X]).unwrap_err();
        assert_eq!(race.kind, RaceKind::WriteAfterWrite);
    }

    #[test]
    fn simple_sync() {
        let mut s = Sanitizer::default();
        op(&mut s, A, &[], &[X]).unwrap();
        let e = record(&mut s, A);
        s.wait(B, e);
        op(&mut s, B, &[X], &[]).unwrap();
        op(&mut s, B, &[], &[X]).unwrap();
    }

    #[test]
    fn reads_on_two_streams_do_not_race() {
        let mut s = Sanitizer::default();
        op(&mut s, A, &[], &[X]).unwrap();
        let e = record(&mut s, A);
        s.wait(B, e);
        s.wait(C, e);
        op(&mut s, B, &[X], &[]).unwrap();
        op(&mut s, C, &[X], &[]).unwrap();
    }

    #[test]
    fn branch_sync() {
        // A writes; B and C both read after waiting; A writes again after waiting for both.
        let mut s = Sanitizer::default();
        op(&mut s, A, &[], &[X]).unwrap();
        let e = record(&mut s, A);
        s.wait(B, e);
        s.wait(C, e);
        op(&mut s, B, &[X], &[]).unwrap();
        op(&mut s, C, &[X], &[]).unwrap();
        let eb = record(&mut s, B);
        let ec = record(&mut s, C);
        s.wait(A, eb);
        // Only B waited: the write still races with C's read.
        assert_eq!(op(&mut s, A, &[], &[X]).unwrap_err().kind, RaceKind::WriteAfterRead);
        s.wait(A, ec);
        op(&mut s, A, &[], &[Y]).unwrap();
    }

    #[test]
    fn branch_sync_ordered() {
        let mut s = Sanitizer::default();
        op(&mut s, A, &[], &[X]).unwrap();
        let e = record(&mut s, A);
        s.wait(B, e);
        s.wait(C, e);
        op(&mut s, B, &[X], &[]).unwrap();
        op(&mut s, C, &[X], &[]).unwrap();
        let (eb, ec) = (record(&mut s, B), record(&mut s, C));
        s.wait(A, eb);
        s.wait(A, ec);
        op(&mut s, A, &[], &[X]).unwrap();
    }

    #[test]
    fn chain_sync() {
        // A -> B -> C transitively: C may read what A wrote without waiting on A directly.
        let mut s = Sanitizer::default();
        op(&mut s, A, &[], &[X]).unwrap();
        let ea = record(&mut s, A);
        s.wait(B, ea);
        let eb = record(&mut s, B);
        s.wait(C, eb);
        op(&mut s, C, &[X], &[]).unwrap();
    }

    #[test]
    fn expired_record() {
        // The event was recorded before the write, so waiting on it does not order the read.
        let mut s = Sanitizer::default();
        let e = record(&mut s, A);
        op(&mut s, A, &[], &[X]).unwrap();
        s.wait(B, e);
        assert_eq!(op(&mut s, B, &[X], &[]).unwrap_err().kind, RaceKind::ReadAfterWrite);
    }

    #[test]
    fn record_override() {
        // Re-recording moves the event: a wait on the new point covers the write, one on the old does not.
        let mut s = Sanitizer::default();
        let old = record(&mut s, A);
        op(&mut s, A, &[], &[X]).unwrap();
        let new = record(&mut s, A);
        s.wait(B, old);
        assert!(op(&mut s, B, &[X], &[]).is_err());
        s.wait(C, new);
        op(&mut s, C, &[X], &[]).unwrap();
    }

    #[test]
    fn multiple_waits() {
        // C writes a buffer read on A and B only after waiting for both.
        let mut s = Sanitizer::default();
        op(&mut s, A, &[X], &[]).unwrap();
        op(&mut s, B, &[X], &[]).unwrap();
        let (ea, eb) = (record(&mut s, A), record(&mut s, B));
        s.wait(C, ea);
        assert_eq!(op(&mut s, C, &[], &[X]).unwrap_err().kind, RaceKind::WriteAfterRead);
        s.wait(C, eb);
        op(&mut s, C, &[], &[Y]).unwrap(); // another buffer, now fine
        let mut s2 = Sanitizer::default();
        op(&mut s2, A, &[X], &[]).unwrap();
        op(&mut s2, B, &[X], &[]).unwrap();
        let (ea, eb) = (record(&mut s2, A), record(&mut s2, B));
        s2.wait(C, ea);
        s2.wait(C, eb);
        op(&mut s2, C, &[], &[X]).unwrap();
    }
}
