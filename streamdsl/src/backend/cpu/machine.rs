//! The CPU stream machine.
//!
//! Each stream is an in-order FIFO queue of tasks. A pool of worker threads runs the streams
//! concurrently: a stream runs one task at a time, and when several streams have a ready task the one
//! with the higher priority (lower number) goes first, ties broken by submission order. Waits and event
//! records are queue entries too: a wait holds its stream back until the point it names has completed,
//! and a record stamps its event with the time at which everything before it on the stream finished.
//!
//! Scheduling costs do not grow with the number of streams: a stream whose head task can run sits in an
//! ordered ready set, and a stream held back by a wait is registered with the stream it waits for, which
//! wakes it when it completes that point. Tasks that need no worker (records, satisfied waits, skipped work)
//! complete inline as soon as they reach the head of their queue.
//!
//! Failures. A task that fails (returns an error or panics) poisons its stream from that task on: the error
//! comes back from the next synchronisation, and every task enqueued on the stream until `clear_error` is
//! skipped rather than run on garbage, even if it is still queued when `clear_error` is called (the rule is
//! decided by the position in the queue, so a task either runs or is skipped whatever the timing). A stream
//! that waits on a poisoned point is poisoned in turn. The buffers a failed or skipped task would have
//! written are marked poisoned in their access logs, so any later read of them, on any stream, fails with
//! the original error until a successful write replaces the contents.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use super::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::backend::{lock_log, panic_message, refuse_in_host_work, run_as_host_work, Access, HostWork, Stamp, Work};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::hazard::sanitizer::Sanitizer;
use crate::hazard::{AccessLog, Point, Poisoned, SharedLog};
use crate::runtime::ProcessWide;

/// Hashes a stream id (a counter) with one multiplication: the machine looks its streams up several times per
/// op, and SipHash's resistance to chosen keys buys nothing for ids the machine hands out itself.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by stream id.
type ById<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// The range of priorities a CPU stream can have, as on CUDA devices: 0 is the default (lowest), -5 the
/// highest; lower values clamp to -5.
pub(crate) const PRIORITY_RANGE: (i32, i32) = (0, -5);

/// Work to run, with the logs of the buffers it reads (checked for poison when it runs) and writes (marked
/// with its outcome when it completes).
struct Job {
    op: &'static str,
    work: HostWork,
    reads: Vec<SharedLog>,
    writes: Vec<SharedLog>,
    /// Its trace record (`crate::trace`), or 0 when not traced.
    trace: u64,
}

enum Task {
    Run(Job),
    /// An event record (its stamp when timed) and its trace record (0 when not traced).
    Record(Option<Arc<OnceLock<Instant>>>, u64),
    Wait(Wait),
}

/// A queue entry that holds its stream back until `point` has completed.
#[derive(Clone, Copy)]
struct Wait {
    point: Point,
    /// An explicit wait (`wait_event`, `wait_stream`) takes on a failure at or before `point`, as a CUDA
    /// stream waiting on an event recorded after a fault would. The waits the hazard tracker inserts for data
    /// do not: the data carries its own poison (see `AccessLog`), and an op that only overwrites a poisoned
    /// buffer must still run.
    inherits_poison: bool,
    /// Its trace record, or 0 when not traced.
    trace: u64,
}

struct Queued {
    task: Task,
    tick: u64,
}

/// A poisoned stretch of a stream's queue: tasks at `from..until` are skipped, and points there report the
/// failure.
struct Poison {
    from: u64,
    until: u64,
    cause: Arc<Error>,
    /// The stream whose op failed (this one, or one it waited on).
    origin: String,
}

impl Poison {
    fn error(&self) -> Error {
        Error::StreamPoisoned { stream: self.origin.clone(), cause: self.cause.clone() }
    }

    fn as_poisoned(&self) -> Poisoned {
        Poisoned { stream: self.origin.clone(), cause: Arc::clone(&self.cause) }
    }
}

struct StreamQueue {
    priority: i32,
    queue: VecDeque<Queued>,
    submitted: u64,
    completed: u64,
    running: bool,
    released: bool,
    poison: Vec<Poison>,
    /// The highest point of each other stream this stream has already waited for: `[plain, inheriting]`.
    seen: ById<[u64; 2]>,
    /// The point the head wait is registered for with its stream (so it is registered once).
    blocked_on: Option<Point>,
    /// The tick of the head task while the stream is in the ready set (its live entry there).
    ready_tick: Option<u64>,
    name: String,
}

impl StreamQueue {
    fn open_poison(&self) -> Option<&Poison> {
        self.poison.last().filter(|p| p.until == u64::MAX)
    }

    fn poison_at(&self, seq: u64) -> Option<&Poison> {
        self.poison.iter().rev().find(|p| p.from <= seq && seq < p.until)
    }

    fn poison_from(&mut self, seq: u64, cause: Arc<Error>, origin: String) {
        if self.open_poison().is_none() {
            self.poison.push(Poison { from: seq, until: u64::MAX, cause, origin });
        }
    }

    fn drained(&self) -> bool {
        self.queue.is_empty() && !self.running
    }

    /// The stream as the trace names it.
    fn trace_ref(&self, id: u64) -> crate::trace::StreamRef<'_> {
        crate::trace::StreamRef { id, name: &self.name, priority: Some(self.priority) }
    }
}

/// Streams ready to run, by (priority, the head task's tick): a binary heap with lazy removal (an entry is live
/// while it matches its stream's `ready_tick`), so neither adding nor taking allocates once it has grown.
#[derive(Default)]
struct ReadySet {
    heap: BinaryHeap<Reverse<(i32, u64, u64)>>,
    live: usize,
}

impl ReadySet {
    fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn insert(&mut self, q: &mut StreamQueue, id: u64, tick: u64) {
        if q.ready_tick.replace(tick).is_none() {
            self.live += 1;
        }
        self.heap.push(Reverse((q.priority, tick, id)));
    }

    /// Takes the stream out of the set; false if it was not in it.
    fn remove(&mut self, q: &mut StreamQueue) -> bool {
        let was = q.ready_tick.take().is_some();
        if was {
            self.live -= 1;
            if self.live == 0 {
                self.heap.clear(); // only stale entries are left
            }
        }
        was
    }

    /// The best ready stream, taken out of the set.
    fn pop(&mut self, streams: &mut ById<StreamQueue>) -> Option<u64> {
        while let Some(Reverse((_, tick, id))) = self.heap.pop() {
            if let Some(q) = streams.get_mut(&id).filter(|q| q.ready_tick == Some(tick)) {
                self.remove(q);
                return Some(id);
            }
        }
        None
    }
}

#[derive(Default)]
struct State {
    streams: ById<StreamQueue>,
    /// Streams whose head is runnable work and which run nothing now, best first.
    ready: ReadySet,
    /// By stream: `(seq, waiting stream)` for streams whose head waits for that point of it.
    waiters: ById<Vec<(u64, u64)>>,
    next_stream: u64,
    tick: u64,
    idle_workers: usize,
    /// Idle workers already signalled and not yet awake: no need to signal them again.
    waking: usize,
    /// Whether a task completed since host waiters were last woken.
    progressed: bool,
    /// Host threads sleeping in `wait_host`/`synchronize` (no wake-up call is made when there are none).
    host_waiters: usize,
    /// Work that was skipped, to drop once the lock is released (its captures may call into the machine).
    dropped: Vec<HostWork>,
    /// Set to make the workers return (the process-wide machine never stops; a model test's does).
    stopping: bool,
    /// The vector-clock race checker, when switched on.
    sanitizer: Option<Sanitizer>,
}

impl State {
    fn is_complete(&self, p: Point) -> bool {
        self.streams.get(&p.stream).is_none_or(|q| q.completed >= p.seq)
    }

    fn poisoned(&self, p: Point) -> Option<&Poison> {
        self.streams.get(&p.stream)?.poison_at(p.seq)
    }

    fn queue(&mut self, stream: u64) -> &mut StreamQueue {
        self.streams.get_mut(&stream).expect("stream ids are only handed out by create_stream")
    }

    fn push(&mut self, stream: u64, task: Task) -> Point {
        self.tick += 1;
        let tick = self.tick;
        let q = self.queue(stream);
        q.submitted += 1;
        q.queue.push_back(Queued { task, tick });
        Point { stream, seq: q.submitted }
    }

    /// Enqueues a wait unless the stream already waited for this point or a later one of that stream.
    fn push_wait(&mut self, stream: u64, p: Point, inherits_poison: bool) {
        if p.stream == stream {
            return;
        }
        if self.is_complete(p) && (!inherits_poison || self.poisoned(p).is_none()) {
            // Already complete: everything enqueued from now on comes after it without a queue entry.
            let (next, settled) = self.streams.get(&stream).map_or((1, 0), |q| (q.submitted + 1, q.completed));
            if let Some(s) = &mut self.sanitizer {
                s.wait_at(Point { stream, seq: next }, p, settled);
            }
            return;
        }
        let live = self.streams.len();
        let q = self.queue(stream);
        // An inheriting wait covers a plain one for the same or an earlier point, not the other way round.
        let seen = q.seen.entry(p.stream).or_insert([0, 0]);
        if seen[1] >= p.seq || (!inherits_poison && seen[0] >= p.seq) {
            return;
        }
        seen[usize::from(inherits_poison)] = p.seq;
        if q.seen.len() > 2 * live + 16 {
            // Forget streams that are gone, so a long-lived stream that waits on many short-lived ones stays small.
            let mut seen = std::mem::take(&mut q.seen);
            seen.retain(|id, _| self.streams.contains_key(id));
            self.queue(stream).seen = seen;
        }
        let trace = if crate::trace::enabled() {
            let q = self.queue(stream);
            let seq = q.submitted + 1;
            crate::trace::wait_enqueued(Device::cpu(), q.trace_ref(stream), seq, (p.stream, p.seq), !inherits_poison)
        } else {
            0
        };
        let at = self.push(stream, Task::Wait(Wait { point: p, inherits_poison, trace }));
        let settled = self.queue(stream).completed;
        if let Some(s) = &mut self.sanitizer {
            s.wait_at(at, p, settled);
        }
    }

    /// Completes what can complete without a worker at the heads of `start` and of every stream that its
    /// progress unblocks, and puts streams whose head is runnable work into the ready set.
    fn settle(&mut self, start: u64) {
        let mut pending = Vec::new(); // allocates only when progress wakes other streams
        self.advance(start, &mut pending);
        while let Some(id) = pending.pop() {
            self.advance(id, &mut pending);
        }
    }

    /// One stream's part of [`State::settle`]; streams woken by its completions go onto `pending`.
    fn advance(&mut self, id: u64, pending: &mut Vec<u64>) {
        loop {
            let Some(q) = self.streams.get(&id) else { return };
            if q.running {
                return;
            }
            let Some(head) = q.queue.front() else {
                if q.released {
                    // Forgotten once drained, poisoned or not: its failures live on in the buffers it would
                    // have written, and its waiters were woken when it completed their points.
                    self.streams.remove(&id);
                    self.waiters.remove(&id);
                    if let Some(s) = &mut self.sanitizer {
                        s.forget_stream(id);
                    }
                }
                return;
            };
            let seq = q.completed + 1;
            let tick = head.tick;
            match &head.task {
                Task::Wait(wait) => {
                    let (p, inherits, trace) = (wait.point, wait.inherits_poison, wait.trace);
                    if !self.is_complete(p) {
                        if q.blocked_on != Some(p) {
                            self.queue(id).blocked_on = Some(p);
                            self.waiters.entry(p.stream).or_default().push((p.seq, id));
                        }
                        return;
                    }
                    let inherited = self.poisoned(p).filter(|_| inherits).map(|x| (x.cause.clone(), x.origin.clone()));
                    let q = self.queue(id);
                    q.blocked_on = None;
                    if let Some((cause, origin)) = inherited {
                        q.poison_from(seq, cause, origin);
                    }
                    if trace != 0 {
                        crate::trace::completed(trace, Instant::now(), crate::trace::Outcome::Ok);
                    }
                }
                Task::Record(stamp, trace) => {
                    let now = Instant::now();
                    if let Some(stamp) = stamp {
                        let _ = stamp.set(now);
                    }
                    if *trace != 0 {
                        crate::trace::completed(*trace, now, crate::trace::Outcome::Ok);
                    }
                }
                Task::Run(job) => {
                    // Skipped: enqueued while the stream was poisoned, so it would compute on garbage.
                    let skipped = q.poison_at(seq).map(Poison::as_poisoned);
                    // Failed: an input's last write (complete by now: the op was ordered after it) was skipped
                    // or failed.
                    let bad_input = match skipped {
                        Some(_) => None,
                        None => job.reads.iter().find_map(|log| lock_log(log).poison().cloned()),
                    };
                    if skipped.is_none() && bad_input.is_none() {
                        let State { ready, streams, .. } = self;
                        if let Some(q) = streams.get_mut(&id) {
                            ready.insert(q, id, tick);
                        }
                        return;
                    }
                    if let Some(bad) = &bad_input {
                        self.queue(id).poison_from(seq, Arc::clone(&bad.cause), bad.stream.clone());
                    }
                    let poison = skipped.or(bad_input);
                    let Some(Queued { task: Task::Run(job), .. }) = self.queue(id).queue.pop_front() else {
                        unreachable!("the head was just matched")
                    };
                    for log in &job.writes {
                        lock_log(log).set_poison(poison.clone());
                    }
                    if job.trace != 0 {
                        crate::trace::completed(job.trace, Instant::now(), crate::trace::Outcome::Skipped);
                    }
                    // Dropped after the machine's lock is released: what it captured may call the machine.
                    self.dropped.push(job.work);
                    self.completed(id, pending);
                    continue;
                }
            }
            self.queue(id).queue.pop_front();
            self.completed(id, pending);
        }
    }

    /// Stream `id` completed its next task: wakes the streams waiting for it.
    fn completed(&mut self, id: u64, pending: &mut Vec<u64>) {
        let q = self.queue(id);
        q.completed += 1;
        let done = q.completed;
        self.progressed = true;
        if let Some(list) = self.waiters.get_mut(&id) {
            list.retain(|&(seq, waiter)| {
                let woken = seq <= done;
                if woken {
                    pending.push(waiter);
                }
                !woken
            });
        }
    }

    /// The job at `point` if it is the head of its stream and ready to run: taken off the ready set and the
    /// queue, the stream marked running (as `pick` does for a worker).
    fn take_ready_head(&mut self, stream: u64, point: Point) -> Option<(u64, Job)> {
        let q = self.streams.get(&stream)?;
        if q.running || q.completed + 1 != point.seq {
            return None;
        }
        let State { ready, streams, .. } = self;
        let q = streams.get_mut(&stream)?;
        if !ready.remove(q) {
            return None;
        }
        let Some(Queued { task: Task::Run(job), .. }) = q.queue.pop_front() else {
            unreachable!("a stream in the ready set has runnable work at its head")
        };
        q.running = true;
        Some((stream, job))
    }

    /// The best ready task: the stream is marked running and the job taken off its queue.
    fn pick(&mut self) -> Option<(u64, Job)> {
        let State { ready, streams, .. } = self;
        let id = ready.pop(streams)?;
        let q = self.queue(id);
        let Some(Queued { task: Task::Run(job), .. }) = q.queue.pop_front() else {
            unreachable!("only streams whose head is runnable work are ready")
        };
        q.running = true;
        Some((id, job))
    }

    /// Records the outcome of a job that ran on stream `id` and settles what it unblocks.
    fn finish(&mut self, id: u64, writes: &[SharedLog], outcome: Result<()>) {
        let mut pending = Vec::new();
        let q = self.queue(id);
        q.running = false;
        let poison = match outcome {
            Ok(()) => None,
            Err(e) => {
                let (seq, origin) = (q.completed + 1, q.name.clone());
                let cause = Arc::new(e);
                q.poison_from(seq, Arc::clone(&cause), origin.clone());
                Some(Poisoned { stream: origin, cause })
            }
        };
        for log in writes {
            lock_log(log).set_poison(poison.clone());
        }
        self.completed(id, &mut pending);
        self.advance(id, &mut pending);
        while let Some(next) = pending.pop() {
            self.advance(next, &mut pending);
        }
    }
}

/// The machine: shared state plus the condition variables workers and host waiters sleep on.
pub(crate) struct Machine {
    state: Mutex<State>,
    work_ready: Condvar,
    progress: Condvar,
    workers: usize,
}

/// The CPU machine: one per process (its workers run every CPU stream).
static MACHINE: ProcessWide<OnceLock<Arc<Machine>>> = ProcessWide::new("cpu.machine", OnceLock::new);

/// The process-wide CPU machine, started on first use.
pub(crate) fn machine() -> &'static Arc<Machine> {
    MACHINE.get().get_or_init(Machine::start)
}

impl Machine {
    fn start() -> Arc<Machine> {
        let workers = std::env::var("STREAMDSL_CPU_WORKERS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get()).max(4));
        let sanitize = std::env::var("STREAMDSL_SANITIZE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        Self::with_workers(workers, sanitize)
    }

    /// A machine with `workers` worker threads.
    fn with_workers(workers: usize, sanitize: bool) -> Arc<Machine> {
        let m = Arc::new(Machine {
            state: Mutex::new(State { sanitizer: sanitize.then(Sanitizer::default), ..State::default() }),
            work_ready: Condvar::new(),
            progress: Condvar::new(),
            workers,
        });
        for i in 0..workers {
            let m = Arc::clone(&m);
            // If a worker cannot be spawned the others still run every stream.
            let _ = super::sync::spawn(format!("streamdsl-cpu-{i}"), move || m.work_loop());
        }
        m
    }

    /// Makes the workers return once they are idle (a model test's machine; the process's never stops).
    #[cfg(all(test, loom))]
    fn stop(&self) {
        self.lock().stopping = true;
        self.work_ready.notify_all();
    }

    /// How many streams can run at the same moment.
    pub(crate) fn worker_count(&self) -> usize {
        self.workers
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Work runs outside the lock and panics inside work are caught, so a poisoned mutex only means a
        // bug in this file; the state is still consistent at every unlock, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes host waiters if anything completed and another worker if work is ready, then unlocks and drops
    /// the work that was skipped meanwhile.
    fn notify_and_unlock(&self, st: MutexGuard<'_, State>) {
        self.notify_and_unlock_keeping(st, 0);
    }

    /// [`Machine::notify_and_unlock`] from a worker that takes `keep` of the ready streams itself next (no other
    /// worker is woken for those: waking one that finds nothing costs two futex calls and a context switch).
    fn notify_and_unlock_keeping(&self, mut st: MutexGuard<'_, State>, keep: usize) {
        if std::mem::take(&mut st.progressed) && st.host_waiters > 0 {
            self.progress.notify_all();
        }
        if st.ready.live > keep {
            self.wake_worker(&mut st);
        }
        let dropped = std::mem::take(&mut st.dropped);
        drop(st);
        drop(dropped);
    }

    fn work_loop(&self) {
        let mut st = self.lock();
        while !st.stopping {
            if let Some((id, job)) = st.pick() {
                if !st.ready.is_empty() {
                    self.wake_worker(&mut st);
                }
                drop(st);
                self.run_job(id, job, true);
                st = self.lock();
            } else {
                st.idle_workers += 1;
                st = self.work_ready.wait(st).unwrap_or_else(|e| e.into_inner());
                st.idle_workers -= 1;
                st.waking = st.waking.saturating_sub(1);
            }
        }
    }

    /// Sleeps until a task completes (as a counted host waiter, so completions wake only when someone waits).
    fn sleep_until_progress<'a>(&self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.host_waiters += 1;
        let mut st = self.progress.wait(st).unwrap_or_else(|e| e.into_inner());
        st.host_waiters -= 1;
        st
    }

    /// Runs `job` of stream `id`, taken off the queue (the stream is marked running), and records its outcome:
    /// on a worker (`on_worker`: it picks the next ready task itself), or inline on the thread that submitted it.
    fn run_job(&self, id: u64, job: Job, on_worker: bool) {
        let Job { op, work, writes, trace, .. } = job;
        let started = (trace != 0).then(Instant::now);
        let outcome = run_as_host_work(|| match catch_unwind(AssertUnwindSafe(work)) {
            Ok(r) => r,
            Err(panic) => Err(Error::OpFailed { op: op.to_string(), message: panic_message(&*panic) }),
        });
        if let Some(started) = started {
            crate::trace::op_ran(trace, started, Instant::now(), outcome.is_ok());
        }
        let mut done = self.lock();
        done.finish(id, &writes, outcome);
        self.notify_and_unlock_keeping(done, usize::from(on_worker));
    }

    /// Signals one idle worker, unless one is already on its way (saves a futex wake per enqueue).
    fn wake_worker(&self, st: &mut State) {
        if st.idle_workers > st.waking {
            st.waking += 1;
            self.work_ready.notify_one();
        }
    }
}

impl crate::backend::Machine for Machine {
    fn create_stream(&self, priority: i32, name: String) -> Result<u64> {
        refuse_in_host_work("Stream::new")?;
        let mut st = self.lock();
        let id = st.next_stream;
        st.next_stream += 1;
        st.streams.insert(
            id,
            StreamQueue {
                priority: priority.max(PRIORITY_RANGE.1),
                queue: VecDeque::new(),
                submitted: 0,
                completed: 0,
                running: false,
                released: false,
                poison: Vec::new(),
                seen: ById::default(),
                blocked_on: None,
                ready_tick: None,
                name,
            },
        );
        Ok(id)
    }

    /// The handle is gone: the stream's queued work still runs, then the stream is forgotten.
    fn release_stream(&self, id: u64) {
        let mut st = self.lock();
        if let Some(q) = st.streams.get_mut(&id) {
            q.released = true;
            if q.drained() {
                st.settle(id);
            }
        }
        self.notify_and_unlock(st);
    }

    /// Enqueues `work` on `stream` behind the waits its accesses need, and notes the accesses.
    fn submit(&self, stream: u64, op: &'static str, access: Access<'_>, work: Work) -> Result<Point> {
        match work {
            Work::Host(work) => self.submit_job(stream, op, access, work, false),
            Work::Device(_) => {
                Err(Error::InvalidArgument { op, reason: "device work submitted to the CPU backend".into() })
            }
        }
    }

    fn record(&self, stream: u64, timed: bool) -> Result<(Point, Option<Stamp>)> {
        refuse_in_host_work("record")?;
        let stamp = timed.then(|| Arc::new(OnceLock::new()));
        let mut st = self.lock();
        let trace = if crate::trace::enabled() {
            let q = st.queue(stream);
            crate::trace::event_enqueued(Device::cpu(), q.trace_ref(stream), q.submitted + 1, timed)
        } else {
            0
        };
        let p = st.push(stream, Task::Record(stamp.clone(), trace));
        st.settle(stream);
        self.notify_and_unlock(st);
        Ok((p, stamp.map(Stamp::Host)))
    }

    /// Later work on `stream` waits until `p` has completed. Does not block the host.
    fn wait(&self, stream: u64, p: Point) -> Result<()> {
        refuse_in_host_work("wait_event")?;
        let mut st = self.lock();
        st.push_wait(stream, p, true);
        st.settle(stream);
        self.notify_and_unlock(st);
        Ok(())
    }

    /// The point that covers everything submitted to `stream` so far.
    fn tail(&self, stream: u64) -> Point {
        let st = self.lock();
        Point { stream, seq: st.streams.get(&stream).map_or(0, |q| q.submitted) }
    }

    /// Whether `p` has completed. Never blocks on work.
    fn is_complete(&self, p: Point) -> bool {
        self.lock().is_complete(p)
    }

    /// The current access log of a buffer, read under the machine's lock (consistent with `submit`).
    fn last_write(&self, log: &std::sync::Mutex<AccessLog>) -> Option<Point> {
        let _st = self.lock();
        lock_log(log).last_write()
    }

    /// Blocks the host until `p` has completed; the error of a failure at or before `p` comes back.
    fn wait_host(&self, p: Point) -> Result<()> {
        refuse_in_host_work("synchronize")?;
        let mut st = self.lock();
        while !st.is_complete(p) {
            st = self.sleep_until_progress(st);
        }
        st.poisoned(p).map_or(Ok(()), |x| Err(x.error()))
    }

    /// Blocks until everything submitted to `stream` has completed; reports the stream's poison.
    fn synchronize(&self, stream: u64) -> Result<()> {
        refuse_in_host_work("synchronize")?;
        let mut st = self.lock();
        loop {
            let q = match st.streams.get(&stream) {
                Some(q) => q,
                None => return Ok(()),
            };
            if q.completed >= q.submitted && !q.running {
                return q.open_poison().map_or(Ok(()), |p| Err(p.error()));
            }
            st = self.sleep_until_progress(st);
        }
    }

    /// True when everything submitted to `stream` has completed.
    fn query(&self, stream: u64) -> bool {
        let st = self.lock();
        st.streams.get(&stream).is_none_or(|q| q.completed >= q.submitted && !q.running)
    }

    /// Switches the race checker on (fresh: it judges only what it sees from now on) or off.
    fn set_sanitize(&self, on: bool) {
        let mut st = self.lock();
        if on != st.sanitizer.is_some() {
            st.sanitizer = on.then(Sanitizer::default);
        }
    }

    /// Ends the stream's poisoned state; returns the error that caused it, if any. Work enqueued before this
    /// call is still skipped; work enqueued after it runs.
    fn clear_error(&self, stream: u64) -> Option<Error> {
        let mut st = self.lock();
        let q = st.streams.get_mut(&stream)?;
        let until = q.submitted + 1;
        let p = q.poison.last_mut().filter(|p| p.until == u64::MAX)?;
        p.until = until;
        let cause = (*p.cause).clone();
        // Work enqueued from now on runs: a stream held back behind nothing new is settled again.
        st.settle(stream);
        self.notify_and_unlock(st);
        Some(cause)
    }
}

impl Machine {
    /// Enqueues host work on `stream` behind the waits its accesses need, and notes the accesses. With
    /// `inline`, work that is ready at once runs on the calling thread: only for cheap kernels that never block
    /// (not for user host functions).
    pub(crate) fn submit_job(
        &self,
        stream: u64,
        op: &'static str,
        access: Access<'_>,
        mut work: HostWork,
        inline: bool,
    ) -> Result<Point> {
        refuse_in_host_work(op)?;
        let mut st = self.lock();
        if let Some(poison) = access.poisoned_input(|p| st.is_complete(p)) {
            return Err(poison.error());
        }
        for p in access.dependencies(stream) {
            st.push_wait(stream, p, false);
        }
        let next = Point { stream, seq: st.queue(stream).submitted + 1 };
        let race = {
            let State { sanitizer, streams, .. } = &mut *st;
            let completed = |p: Point| streams.get(&p.stream).is_none_or(|q| q.completed >= p.seq);
            sanitizer.as_mut().and_then(|s| s.check_op(next, &access.buffers(), completed))
        };
        if let Some(race) = race {
            // Unreachable through safe code; if the tracker ever misses a wait, fail the op rather than race.
            let message = format!("the race checker found an unordered access: {race}");
            work = Box::new(move || Err(Error::OpFailed { op: op.to_string(), message }));
        }
        let (reads, writes) = access.handles();
        let trace = if crate::trace::enabled() {
            crate::trace::op_enqueued(Device::cpu(), st.queue(stream).trace_ref(stream), next.seq, op)
        } else {
            0
        };
        let point = st.push(stream, Task::Run(Job { op, work, reads, writes, trace }));
        access.note(point, |p| st.is_complete(p));
        st.settle(stream);
        // Cheap work that can run at once runs here, on the submitting thread: no hand-off to a worker and
        // back for a tiny op (the result is the same, and the caller waits no longer than the op takes).
        if inline {
            if let Some((id, job)) = st.take_ready_head(stream, point) {
                self.notify_and_unlock(st);
                self.run_job(id, job, false);
                return Ok(point);
            }
        }
        self.notify_and_unlock(st);
        Ok(point)
    }
}

impl Machine {
    /// Live entries of the bookkeeping that must not grow over a long run (test support): streams, registered
    /// waiters, the largest per-stream map of points already waited for, and the race checker's entries.
    pub(crate) fn bookkeeping(&self) -> [usize; 4] {
        let st = self.lock();
        let seen = st.streams.values().map(|q| q.seen.len()).max().unwrap_or(0);
        let sanitizer = st.sanitizer.as_ref().map_or(0, Sanitizer::entries);
        [st.streams.len(), st.waiters.values().map(Vec::len).sum(), seen, sanitizer]
    }
}

#[cfg(all(test, loom))]
mod loom_model {
    //! The machine's synchronisation core under loom, which runs each scenario in every interleaving of its
    //! threads (two workers and the host) up to a bound on preemptions: submission, inline completion, explicit
    //! waits between streams, host waits, failure and skipping, `clear_error`. Run with
    //! `RUSTFLAGS="--cfg loom" cargo test -p streamdsl --release --lib loom_model` (`./scripts/test` does).

    use loom::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::backend::Machine as _;

    fn host(f: impl FnOnce() -> Result<()> + Send + 'static) -> Work {
        Work::Host(Box::new(f))
    }

    fn nothing() -> Access<'static> {
        Access { reads: &[], writes: &[] }
    }

    fn model(scenario: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(scenario);
    }

    #[test]
    fn waits_order_streams_and_failures_skip_what_follows() {
        model(|| {
            let m = Machine::with_workers(2, false);
            let (a, b) = (m.create_stream(0, "a".into()).unwrap(), m.create_stream(-1, "b".into()).unwrap());
            let cell = Arc::new(AtomicUsize::new(0));
            let c = Arc::clone(&cell);
            let store = move |v| {
                c.store(v, Ordering::Release);
                Ok(())
            };
            let first = m.submit(a, "first", nothing(), host(move || store(1))).unwrap();
            m.wait(b, first).unwrap();
            let c = Arc::clone(&cell);
            let second = m
                .submit(
                    b,
                    "second",
                    nothing(),
                    host(move || {
                        assert_eq!(c.load(Ordering::Acquire), 1, "b ran before the point it waits for");
                        c.store(2, Ordering::Release);
                        Ok(())
                    }),
                )
                .unwrap();
            let fail = || Err(Error::OpFailed { op: "fails".into(), message: "boom".into() });
            m.submit(a, "fails", nothing(), host(fail)).unwrap();
            let c = Arc::clone(&cell);
            let skipped = move || {
                c.store(99, Ordering::Release);
                Ok(())
            };
            m.submit(a, "skipped", nothing(), host(skipped)).unwrap();
            m.wait_host(second).unwrap();
            assert!(m.synchronize(a).is_err(), "the failure comes back from synchronize");
            assert_eq!(cell.load(Ordering::Acquire), 2, "work after a failure ran");
            assert!(m.clear_error(a).is_some());
            m.synchronize(a).unwrap();
            m.stop();
        });
    }

    #[test]
    fn two_host_threads_submit_and_wait_concurrently() {
        model(|| {
            let m = Machine::with_workers(2, false);
            let s = m.create_stream(0, "s".into()).unwrap();
            let count = Arc::new(AtomicUsize::new(0));
            let other = {
                let (m, count) = (Arc::clone(&m), Arc::clone(&count));
                loom::thread::spawn(move || {
                    let c = Arc::clone(&count);
                    let add = move || {
                        c.fetch_add(1, Ordering::AcqRel);
                        Ok(())
                    };
                    let p = m.submit(s, "other", nothing(), host(add)).unwrap();
                    m.wait_host(p).unwrap();
                })
            };
            let c = Arc::clone(&count);
            let add = move || {
                c.fetch_add(1, Ordering::AcqRel);
                Ok(())
            };
            let p = m.submit(s, "mine", nothing(), host(add)).unwrap();
            m.wait_host(p).unwrap();
            other.join().unwrap();
            m.synchronize(s).unwrap();
            assert_eq!(count.load(Ordering::Acquire), 2);
            m.release_stream(s);
            m.stop();
        });
    }
}
