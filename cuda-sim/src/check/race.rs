//! The race checker: vector clocks over streams, events, waits and host synchronisation, in the style of
//! PyTorch's CUDA sanitizer, checked when an operation is *enqueued* (so a report does not depend on timing).
//!
//! - Each stream `s` has a clock `VC_s`; every operation enqueued on it ticks `VC_s[s]` and is stamped
//!   `(s, VC_s[s])`. The host is pseudo-stream 0.
//! - Recording an event snapshots `VC_s`; `cuStreamWaitEvent` joins that snapshot (taken at the call) into the
//!   waiting stream's clock.
//! - Host synchronisation (`cuStreamSynchronize`, `cuEventSynchronize`, `cuCtxSynchronize`, a query that
//!   finds the work complete — `CUDA_SUCCESS`, or the fault of a stream whose work before the point ran or
//!   was skipped —, a device-to-host copy to pageable memory returning, a host function having run)
//!   joins the clock it observed into the host's clock, and every later enqueue joins the host's clock.
//!   (One host clock for all host threads: races between host threads that synchronise only among
//!   themselves are not reported.)
//! - Each allocation keeps its last write and, per stream, its last read since. A read must be ordered
//!   after the last write; a write (kernel pointer to non-const, copy destination, memset) and a free after
//!   the last write and every read. Allocation counts as a write by the allocating stream.
//!
//! Granularity is the allocation (two streams writing disjoint halves of one allocation without ordering are
//! reported).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

/// A vector clock: stream id → count of that stream's operations known to have happened before.
pub type Clock = HashMap<u64, u64>;

/// The host's pseudo-stream.
pub const HOST: u64 = 0;

/// How an operation touches an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads it.
    Read,
    /// Writes it (or reads and writes).
    Write,
    /// Frees it.
    Free,
}

/// An operation's stamp and description.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// The stream (0: the host).
    pub stream: u64,
    /// Its position on that stream.
    pub seq: u64,
    /// The clock the operation runs under.
    pub clock: Arc<Clock>,
    /// What it is, for reports (`kernel `copy` on stream #3 (op 7)`).
    pub what: Arc<str>,
}

#[derive(Debug, Clone)]
struct Access {
    stream: u64,
    seq: u64,
    what: Arc<str>,
    mode: Mode,
}

#[derive(Debug, Default)]
struct AllocAccesses {
    last_write: Option<Access>,
    reads: Vec<Access>,
}

#[derive(Default)]
struct State {
    streams: HashMap<u64, Clock>,
    host: Clock,
    allocs: HashMap<u64, AllocAccesses>,
    /// Streams destroyed whose operations the host has not yet synchronised with.
    destroyed: HashMap<u64, u64>,
    /// Destroyed streams the host has synchronised with completely: their operations are ordered before
    /// every later enqueue.
    retired: HashSet<u64>,
}

fn state() -> MutexGuard<'static, State> {
    static S: LazyLock<Mutex<State>> = LazyLock::new(Mutex::default);
    S.lock().unwrap_or_else(|e| e.into_inner())
}

fn join(into: &mut Clock, from: &Clock, retired: &HashSet<u64>) {
    for (&s, &c) in from {
        if retired.contains(&s) {
            continue;
        }
        let e = into.entry(s).or_insert(0);
        if *e < c {
            *e = c;
        }
    }
}

impl State {
    fn ordered(&self, clock: &Clock, a: &Access) -> bool {
        a.stream == HOST && self.host.get(&HOST).copied().unwrap_or(0) >= a.seq
            || self.retired.contains(&a.stream)
            || clock.get(&a.stream).copied().unwrap_or(0) >= a.seq
    }

    fn retire(&mut self) {
        let done: Vec<u64> = self
            .destroyed
            .iter()
            .filter(|(s, last)| self.host.get(s).copied().unwrap_or(0) >= **last)
            .map(|(s, _)| *s)
            .collect();
        for s in done {
            self.destroyed.remove(&s);
            self.retired.insert(s);
            self.host.remove(&s);
            self.streams.remove(&s);
        }
        if self.retired.len() > 4096 {
            // Forget entries of retired streams everywhere, then the set itself.
            let retired = std::mem::take(&mut self.retired);
            for c in self.streams.values_mut() {
                c.retain(|s, _| !retired.contains(s));
            }
            for a in self.allocs.values_mut() {
                if a.last_write.as_ref().is_some_and(|w| retired.contains(&w.stream)) {
                    a.last_write = None;
                }
                a.reads.retain(|r| !retired.contains(&r.stream));
            }
        }
    }
}

/// Stamps the next operation of `stream` (`HOST` for host-side operations such as synchronous allocation).
pub fn begin(stream: u64, what: impl FnOnce(u64) -> String) -> Stamp {
    let mut st = state();
    let st = &mut *st;
    if stream == HOST {
        let seq = {
            let e = st.host.entry(HOST).or_insert(0);
            *e += 1;
            *e
        };
        return Stamp { stream, seq, clock: Arc::new(st.host.clone()), what: Arc::from(what(seq)) };
    }
    let host = st.host.clone();
    let clock = st.streams.entry(stream).or_default();
    join(clock, &host, &st.retired);
    let seq = {
        let e = clock.entry(stream).or_insert(0);
        *e += 1;
        *e
    };
    Stamp { stream, seq, clock: Arc::new(clock.clone()), what: Arc::from(what(seq)) }
}

/// The clock of `stream` now (what an event recorded now captures), after joining the host's.
pub fn snapshot(stream: u64) -> Arc<Clock> {
    let mut st = state();
    let st = &mut *st;
    let host = st.host.clone();
    let clock = st.streams.entry(stream).or_default();
    join(clock, &host, &st.retired);
    Arc::new(clock.clone())
}

/// `stream` waits for the point `clock` describes.
pub fn wait(stream: u64, clock: &Clock) {
    let mut st = state();
    let st = &mut *st;
    let c = st.streams.entry(stream).or_default();
    join(c, clock, &st.retired);
}

/// The host has observed the completion of everything `clock` covers.
pub fn host_sync(clock: &Clock) {
    let mut st = state();
    let st = &mut *st;
    join(&mut st.host, clock, &st.retired);
    st.retire();
}

/// `stream` was destroyed: once the host has synchronised with all of it, its entries are forgotten.
pub fn destroyed(stream: u64) {
    let mut st = state();
    let last = st.streams.get(&stream).and_then(|c| c.get(&stream)).copied().unwrap_or(0);
    st.destroyed.insert(stream, last);
    st.retire();
}

/// Checks `op`'s accesses; when none conflicts, records them. A conflict is described for a report.
pub fn access(op: &Stamp, accesses: &[(u64, Mode, String)]) -> Result<(), String> {
    let mut st = state();
    for (alloc, mode, name) in accesses {
        let Some(a) = st.allocs.get(alloc) else { continue };
        let mut conflicts: Vec<&Access> = Vec::new();
        if let Some(w) = &a.last_write {
            if !st.ordered(&op.clock, w) {
                conflicts.push(w);
            }
        }
        if *mode != Mode::Read {
            conflicts.extend(a.reads.iter().filter(|r| !st.ordered(&op.clock, r)));
        }
        if let Some(c) = conflicts.first() {
            let (mine, theirs) = (verb(*mode), verb(c.mode));
            return Err(format!(
                "race on {name}: {} {mine} it, but is not ordered after {} which {theirs} it (a missing \
                 cuStreamWaitEvent / synchronisation between the two streams)",
                op.what, c.what
            ));
        }
    }
    for (alloc, mode, _) in accesses {
        let entry = st.allocs.entry(*alloc).or_default();
        let acc = Access { stream: op.stream, seq: op.seq, what: Arc::clone(&op.what), mode: *mode };
        match mode {
            Mode::Read => {
                entry.reads.retain(|r| r.stream != op.stream);
                entry.reads.push(acc);
            }
            Mode::Write | Mode::Free => {
                entry.reads.clear();
                entry.last_write = Some(acc);
            }
        }
    }
    Ok(())
}

fn verb(mode: Mode) -> &'static str {
    match mode {
        Mode::Read => "reads",
        Mode::Write => "writes",
        Mode::Free => "frees",
    }
}

/// Records the allocation of `alloc` by `op` (a write).
pub fn allocated(op: &Stamp, alloc: u64) {
    let mut st = state();
    st.allocs.insert(
        alloc,
        AllocAccesses {
            last_write: Some(Access { stream: op.stream, seq: op.seq, what: Arc::clone(&op.what), mode: Mode::Write }),
            reads: Vec::new(),
        },
    );
}

/// Forgets a freed allocation's accesses once its free has run (no address is ever reused).
pub fn forget(alloc: u64) {
    state().allocs.remove(&alloc);
}
