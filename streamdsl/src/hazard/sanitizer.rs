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
use std::sync::{Mutex, Weak};

use super::{AccessLog, Point};

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

/// One other stream's component of a stream's clock, as steps `(from_seq, value)` in increasing order: from
/// queue position `from_seq` on, the stream comes after that other stream's position `value`. Waits add steps
/// only for the components they raise, so memory grows with what changes, not with the number of streams.
type Steps = Vec<(u64, u64)>;

/// Steps a component keeps before the settled ones (positions that completed) are merged.
const STEPS_KEPT: usize = 8;

#[derive(Default)]
struct StreamClock {
    seq: u64,
    others: HashMap<u64, Steps>,
}

impl StreamClock {
    /// Component `of` at queue position `seq`.
    fn component_at(&self, of: u64, seq: u64) -> u64 {
        let Some(steps) = self.others.get(&of) else { return 0 };
        let i = steps.partition_point(|(from, _)| *from <= seq);
        i.checked_sub(1).map_or(0, |i| steps[i].1)
    }

    /// Every non-zero component at position `seq`.
    fn components_at(&self, seq: u64) -> Vec<(u64, u64)> {
        self.others.keys().map(|&of| (of, self.component_at(of, seq))).filter(|&(_, v)| v > 0).collect()
    }

    /// From position `from` on, component `of` is at least `value`. Steps at positions up to `settled` (which
    /// have completed) are merged into one that holds from the start: a question about such a position then
    /// gets a later clock, more order than there was, and nothing left to run can race with what completed.
    fn raise(&mut self, from: u64, of: u64, value: u64, settled: u64) {
        let steps = self.others.entry(of).or_default();
        if steps.last().is_some_and(|&(_, v)| v >= value) {
            return;
        }
        steps.push((from, value));
        if steps.len() > STEPS_KEPT {
            let merged = steps.partition_point(|(f, _)| *f <= settled).saturating_sub(1);
            steps.drain(..merged);
            steps[0].0 = 0;
        }
    }
}

#[derive(Default)]
struct Accesses {
    last_write: Option<Point>,
    reads: Vec<Point>,
}

/// A buffer's entry: its log (to tell when the buffer is gone) and its accesses.
struct Buffer {
    log: Weak<Mutex<AccessLog>>,
    accesses: Accesses,
}

/// One access of an op: the buffer's id, whether it is a write, and its log.
pub(crate) type BufferAccess = (u64, bool, Weak<Mutex<AccessLog>>);

/// The checker's state: a clock per stream and the accesses per buffer. Both forget what is gone: buffers
/// whose logs were dropped, and streams the machine forgot.
#[derive(Default)]
pub(crate) struct Sanitizer {
    streams: HashMap<u64, StreamClock>,
    buffers: HashMap<u64, Buffer>,
    /// Prune freed buffers when there are this many entries.
    prune_at: usize,
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
        self.streams.get(&at.stream).map_or(0, |c| c.component_at(of, at.seq))
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
        self.wait_at(point, target, 0);
        point
    }

    /// The wait entry at `point` (its queue position) waits for `target`; positions of `point`'s stream up to
    /// `settled` have completed. Points come from the stream machine, so the checker can be switched on at any
    /// time: what it has not seen, it does not judge.
    pub(crate) fn wait_at(&mut self, point: Point, target: Point, settled: u64) {
        let stream = point.stream;
        let mut raised = self.streams.get(&target.stream).map_or_else(Vec::new, |c| c.components_at(target.seq));
        raised.push((target.stream, target.seq));
        let clock = self.streams.entry(stream).or_default();
        clock.seq = clock.seq.max(point.seq);
        for (of, value) in raised {
            if of != stream {
                clock.raise(point.seq, of, value, settled);
            }
        }
    }

    /// Forgets a stream the machine forgot (drained and released).
    pub(crate) fn forget_stream(&mut self, stream: u64) {
        self.streams.remove(&stream);
    }

    /// Checks every access of the op at `point` and records them; the first race, if any. An earlier access
    /// that `completed` says has completed cannot overlap this op (enqueued now) and needs no wait: the tracker
    /// drops such reads from its logs, so it inserts none for them.
    pub(crate) fn check_op(
        &mut self,
        point: Point,
        buffers: &[BufferAccess],
        completed: impl Fn(Point) -> bool,
    ) -> Option<Race> {
        if self.buffers.len() >= self.prune_at {
            self.buffers.retain(|_, b| b.log.strong_count() > 0);
            self.prune_at = 2 * self.buffers.len() + 64;
        }
        let mut race = None;
        for (id, write, log) in buffers {
            let found = self.access_at(point, *id, *write, &completed).err();
            race = race.or(found);
            if let Some(b) = self.buffers.get_mut(id) {
                b.log = log.clone();
            }
        }
        race
    }

    /// Checks an access to `buffer` at `point` (already stepped) and records it.
    #[cfg(test)]
    pub(crate) fn access(&mut self, point: Point, buffer: u64, write: bool) -> Result<(), Race> {
        self.access_at(point, buffer, write, |_| false)
    }

    fn access_at(
        &mut self,
        point: Point,
        buffer: u64,
        write: bool,
        completed: impl Fn(Point) -> bool,
    ) -> Result<(), Race> {
        let acc = self.buffers.remove(&buffer).map(|b| b.accesses).unwrap_or_default();
        let race = |kind, earlier| Race { buffer, kind, earlier, later: point };
        let mut found = None;
        let unordered = |p: Point| !self.ordered(p, point) && !completed(p);
        if let Some(w) = acc.last_write.filter(|&w| unordered(w)) {
            found = Some(race(if write { RaceKind::WriteAfterWrite } else { RaceKind::ReadAfterWrite }, w));
        }
        if write && found.is_none() {
            if let Some(&r) = acc.reads.iter().find(|&&r| unordered(r)) {
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
        self.buffers.insert(buffer, Buffer { log: Weak::new(), accesses: acc });
        found.map_or(Ok(()), Err)
    }

    /// How many entries the checker holds (streams, clock steps, buffers and their accesses), for tests that
    /// check it stays bounded over long runs.
    pub(crate) fn entries(&self) -> usize {
        let steps: usize = self.streams.values().flat_map(|c| c.others.values()).map(Vec::len).sum();
        let accesses: usize = self.buffers.values().map(|b| 1 + b.accesses.reads.len()).sum();
        self.streams.len() + steps + accesses
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
