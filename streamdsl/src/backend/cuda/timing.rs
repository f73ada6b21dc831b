//! Start and end times of traced ops on a CUDA device (`crate::trace`), from timed CUDA events, resolved
//! without blocking any stream.
//!
//! While tracing is on, the machine's `submit` records a timed event on the op's stream before its device
//! work (after the waits the op needs) and another after it (before the point's own event), and keeps the
//! pair in a per-stream queue. Nothing waits for them: each later submission on the stream asks the driver
//! (`cuEventQuery`, which never blocks) whether the oldest pairs of its stream have completed, every 64th
//! submission asks for every stream, and [`crate::trace::snapshot`] / [`crate::trace::stop`] ask for every
//! stream through the hook the machine registers ([`crate::trace::on_snapshot`]). A completed pair gives the
//! op its start and end; a pair the driver reports failed (a fault on the stream) is dropped and its op keeps
//! its enqueue time only; a pair still pending (work that has not run, or never will, on a stream that is
//! blocked) stays queued for a later query. The start event is recorded before the op's work is enqueued, so
//! an op whose host side is slow to enqueue (a kernel compiled on its first use, a pageable copy) while its
//! stream is idle shows that time in its duration, as a profiler would show the stream waiting for it. Timed
//! events come from a pool of their own (the machine's point
//! events are created without timing, which makes them cheaper to record and to wait on).
//!
//! # From the device's clock to the trace's
//!
//! CUDA gives times only between events (`cuEventElapsedTime`, milliseconds as an `f32`, about half a
//! microsecond of resolution). Each device has an *anchor*: a timed event recorded on an idle stream of the
//! machine's own, which the host queries until it completes, noting its clock before the record and after
//! the completion; the anchor's host time is the middle of that interval. An op's start is the anchor's host
//! time plus the time from the anchor to the op's start event, and its end is its start plus the time from
//! its start event to its end event. The error of the mapping is at most half the anchor's round trip (a
//! few microseconds on a GPU, more on the simulated driver while it is busy); a start is never placed before
//! the op's enqueue time, nor an end before its start. A new anchor is made once the current one is 10 s
//! old, so the `f32` milliseconds keep their resolution (and the two clocks have no time to drift apart).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use cudarc::driver::sys::{self, CUcontext, CUevent, CUresult, CUstream};

use super::machine::{bind_context, check};

/// How old an anchor may be before ops take a new one.
const ANCHOR_AGE: Duration = Duration::from_secs(10);

/// How long a new anchor may take to complete on its idle stream before timing gives up (for this op).
const ANCHOR_LIMIT: Duration = Duration::from_secs(1);

/// Every this many traced submissions, the pairs of every stream are queried (not only the submitting one's).
const POLL_ALL_EVERY: u64 = 64;

/// A device time reference: a completed timed event and the host's clock at it.
struct Anchor {
    id: u64,
    event: CUevent,
    host: Instant,
    /// Pending pairs measured from it.
    users: usize,
}

/// The timed events around one traced op.
struct Pair {
    /// The op's trace record.
    record: u64,
    anchor: u64,
    start: CUevent,
    end: CUevent,
}

#[derive(Default)]
struct State {
    /// Timed events not in use.
    idle: Vec<CUevent>,
    /// The stream anchors are recorded on (created on first use; nothing else runs on it).
    clock: Option<CUstream>,
    /// The current anchor is the last; older ones are kept while pairs use them.
    anchors: Vec<Anchor>,
    next_anchor: u64,
    /// Pending pairs per stream, oldest first.
    pending: HashMap<u64, VecDeque<Pair>>,
    submissions: u64,
}

/// The timed events of one CUDA machine while tracing (see the module's docs).
pub(crate) struct Timing {
    ctx: CUcontext,
    state: Mutex<State>,
    registered: OnceLock<()>,
}

// SAFETY: the raw handles are plain values used under `state`; every driver call binds `ctx` first (or runs
// inside a machine call that bound it).
unsafe impl Send for Timing {}
// SAFETY: as above.
unsafe impl Sync for Timing {}

/// The start event of a traced op, recorded on its stream: the other half comes with [`Timing::end`].
pub(crate) struct Started {
    record: u64,
    anchor: u64,
    start: CUevent,
}

impl Timing {
    /// The timing of the machine whose primary context is `ctx` (retained for the life of the process).
    pub(crate) fn new(ctx: CUcontext) -> Timing {
        Timing { ctx, state: Mutex::default(), registered: OnceLock::new() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes [`crate::trace::snapshot`] resolve this machine's completed pairs (once per machine).
    pub(crate) fn register(this: &Arc<Timing>) {
        this.registered.get_or_init(|| {
            let weak: Weak<Timing> = Arc::downgrade(this);
            crate::trace::on_snapshot(Arc::new(move || {
                // No driver calls inside a host callback: a snapshot taken there reads what is resolved.
                if crate::backend::in_host_work() {
                    return;
                }
                if let Some(timing) = weak.upgrade() {
                    if let Ok(_bound) = bind_context(timing.ctx) {
                        timing.poll(None);
                    }
                }
            }));
        });
    }

    /// Records the start event of the op of trace record `record` on `raw`, its stream. `None` when timing
    /// is not possible now (no anchor, a driver error): the op then keeps its enqueue time only. The caller
    /// holds the stream's enqueue lock and bound the context.
    pub(crate) fn start(&self, record: u64, raw: CUstream) -> Option<Started> {
        if record == 0 {
            return None;
        }
        let anchor = self.anchor()?;
        let start = self.take_event();
        let start = start.and_then(|ev| {
            // SAFETY: a live timed event of this context and the op's live stream; the context is bound.
            match check("cuEventRecord", unsafe { sys::cuEventRecord(ev, raw) }) {
                Ok(()) => Some(ev),
                Err(_) => {
                    self.state().idle.push(ev);
                    None
                }
            }
        });
        match start {
            Some(start) => Some(Started { record, anchor, start }),
            None => {
                self.release_anchor(anchor);
                None
            }
        }
    }

    /// Records the end event of `started` on `raw` after the op's device work was enqueued (`ok`), and queues
    /// the pair of `stream` for resolution; a failed op gives its events back.
    pub(crate) fn end(&self, started: Started, stream: u64, raw: CUstream, ok: bool) {
        let Started { record, anchor, start } = started;
        let end = if ok { self.take_event() } else { None };
        let recorded = end.map(|ev| {
            // SAFETY: a live timed event of this context and the op's live stream; the context is bound.
            let status = check("cuEventRecord", unsafe { sys::cuEventRecord(ev, raw) });
            (ev, status.is_ok())
        });
        let mut st = self.state();
        match recorded {
            Some((end, true)) => {
                st.pending.entry(stream).or_default().push_back(Pair { record, anchor, start, end });
            }
            other => {
                // An event that is still recorded on the stream may be recorded again (the later record wins).
                st.idle.push(start);
                if let Some((end, _)) = other {
                    st.idle.push(end);
                }
                drop(st);
                self.release_anchor(anchor);
            }
        }
    }

    /// Resolves the completed pairs of `stream` (of every stream, each 64th call and for `None`): queries only,
    /// never blocks. The context is bound.
    pub(crate) fn poll(&self, stream: Option<u64>) {
        let mut st = self.state();
        st.submissions += 1;
        let streams: Vec<u64> = match stream {
            Some(s) if !st.submissions.is_multiple_of(POLL_ALL_EVERY) => vec![s],
            _ => st.pending.keys().copied().collect(),
        };
        let State { idle, anchors, pending, .. } = &mut *st;
        for s in streams {
            let Some(queue) = pending.get_mut(&s) else { continue };
            while let Some(pair) = queue.front() {
                // SAFETY: a live timed event of this context; the caller bound the context.
                let status = unsafe { sys::cuEventQuery(pair.end) };
                if status == CUresult::CUDA_ERROR_NOT_READY {
                    break;
                }
                let Some(pair) = queue.pop_front() else { break };
                let anchor = anchors.iter_mut().find(|a| a.id == pair.anchor);
                if status == CUresult::CUDA_SUCCESS {
                    if let Some((start, end)) = anchor.as_ref().and_then(|a| times(a, &pair)) {
                        crate::trace::device_ran(pair.record, start, end);
                    }
                }
                // A failed pair (the stream faulted before it): its op keeps its enqueue time only.
                if let Some(a) = anchor {
                    a.users = a.users.saturating_sub(1);
                }
                idle.push(pair.start);
                idle.push(pair.end);
            }
            if queue.is_empty() {
                pending.remove(&s);
            }
        }
        prune_anchors(&mut st);
    }

    /// A timed event from the pool, or a new one.
    fn take_event(&self) -> Option<CUevent> {
        if let Some(ev) = self.state().idle.pop() {
            return Some(ev);
        }
        let mut ev: CUevent = std::ptr::null_mut();
        // SAFETY: an out-parameter; the caller bound the context. Flags 0: a timed event.
        check("cuEventCreate", unsafe { sys::cuEventCreate(&mut ev, 0) }).ok()?;
        Some(ev)
    }

    /// The current anchor (one more user), or a new one once it is [`ANCHOR_AGE`] old.
    fn anchor(&self) -> Option<u64> {
        let clock = {
            let mut st = self.state();
            if let Some(a) = st.anchors.last_mut().filter(|a| a.host.elapsed() < ANCHOR_AGE) {
                a.users += 1;
                return Some(a.id);
            }
            match st.clock {
                Some(clock) => clock,
                None => {
                    let mut raw: CUstream = std::ptr::null_mut();
                    // SAFETY: an out-parameter; the caller bound the context.
                    check("cuStreamCreate", unsafe {
                        sys::cuStreamCreate(&mut raw, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32)
                    })
                    .ok()?;
                    st.clock = Some(raw);
                    raw
                }
            }
        };
        // Outside the state: record on the idle clock stream and query until it completes.
        let ev = self.take_event()?;
        let before = Instant::now();
        // SAFETY: a live timed event and the machine's clock stream; the context is bound.
        let recorded = check("cuEventRecord", unsafe { sys::cuEventRecord(ev, clock) });
        let mut done = recorded.is_ok();
        while done {
            // SAFETY: a live timed event; the context is bound.
            match unsafe { sys::cuEventQuery(ev) } {
                CUresult::CUDA_SUCCESS => break,
                CUresult::CUDA_ERROR_NOT_READY if before.elapsed() < ANCHOR_LIMIT => std::thread::yield_now(),
                _ => done = false,
            }
        }
        let after = Instant::now();
        let mut st = self.state();
        if !done {
            st.idle.push(ev);
            return None;
        }
        let id = st.next_anchor;
        st.next_anchor += 1;
        st.anchors.push(Anchor { id, event: ev, host: before + (after - before) / 2, users: 1 });
        prune_anchors(&mut st);
        Some(id)
    }

    /// A pair measured from anchor `id` will not be.
    fn release_anchor(&self, id: u64) {
        let mut st = self.state();
        if let Some(a) = st.anchors.iter_mut().find(|a| a.id == id) {
            a.users = a.users.saturating_sub(1);
        }
        prune_anchors(&mut st);
    }

    /// Test support: `[idle timed events, pending pairs, anchors]`.
    pub(crate) fn counts(&self) -> [usize; 3] {
        let st = self.state();
        [st.idle.len(), st.pending.values().map(VecDeque::len).sum(), st.anchors.len()]
    }
}

/// Gives the events of anchors that are no longer current and no longer used back to the pool.
fn prune_anchors(st: &mut State) {
    let current = st.anchors.last().map(|a| a.id);
    let State { anchors, idle, .. } = st;
    anchors.retain(|a| {
        let keep = a.users > 0 || Some(a.id) == current;
        if !keep {
            idle.push(a.event);
        }
        keep
    });
}

/// The host times of a completed pair: its start from the anchor, its end from its start. `None` where the
/// driver cannot say.
fn times(anchor: &Anchor, pair: &Pair) -> Option<(Instant, Instant)> {
    let since_anchor = elapsed_ms(anchor.event, pair.start)?;
    let length = elapsed_ms(pair.start, pair.end)?;
    let magnitude = Duration::try_from_secs_f64(f64::from(since_anchor.abs()) / 1e3).ok()?;
    let start =
        if since_anchor >= 0.0 { anchor.host.checked_add(magnitude)? } else { anchor.host.checked_sub(magnitude)? };
    let end = start.checked_add(Duration::try_from_secs_f64(f64::from(length.max(0.0)) / 1e3).ok()?)?;
    Some((start, end))
}

/// `cuEventElapsedTime` between two completed timed events, in milliseconds.
fn elapsed_ms(from: CUevent, to: CUevent) -> Option<f32> {
    let mut ms = 0f32;
    // SAFETY: two live timed events of the bound context, both completed.
    let status = unsafe { sys::cuEventElapsedTime_v2(&mut ms, from, to) };
    (status == CUresult::CUDA_SUCCESS && ms.is_finite()).then_some(ms)
}
