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

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::backend::{lock_log, panic_message, refuse_in_host_work, run_as_host_work, Access, HostWork, Stamp, Work};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::hazard::sanitizer::Sanitizer;
use crate::hazard::{AccessLog, Point, Poisoned, SharedLog};
use crate::runtime::ProcessWide;

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
    seen: HashMap<u64, [u64; 2]>,
    /// The point the head wait is registered for with its stream (so it is registered once).
    blocked_on: Option<Point>,
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

#[derive(Default)]
struct State {
    streams: HashMap<u64, StreamQueue>,
    /// Streams whose head is runnable work and which run nothing now, by (priority, the task's tick).
    ready: BTreeSet<(i32, u64, u64)>,
    /// By stream: `(seq, waiting stream)` for streams whose head waits for that point of it.
    waiters: HashMap<u64, Vec<(u64, u64)>>,
    next_stream: u64,
    tick: u64,
    idle_workers: usize,
    /// Idle workers already signalled and not yet awake: no need to signal them again.
    waking: usize,
    /// Whether a task completed since host waiters were last woken.
    progressed: bool,
    /// Work that was skipped, to drop once the lock is released (its captures may call into the machine).
    dropped: Vec<HostWork>,
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
        let mut pending = vec![start];
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
            let (tick, priority) = (head.tick, q.priority);
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
                        self.ready.insert((priority, tick, id));
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

    /// The best ready task: the stream is marked running and the job taken off its queue.
    fn pick(&mut self) -> Option<(u64, Job)> {
        let (_, _, id) = self.ready.pop_first()?;
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
        pending.push(id);
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
        let m = Arc::new(Machine {
            state: Mutex::new(State { sanitizer: sanitize.then(Sanitizer::default), ..State::default() }),
            work_ready: Condvar::new(),
            progress: Condvar::new(),
            workers,
        });
        for i in 0..workers {
            let m = Arc::clone(&m);
            // If a worker cannot be spawned the others still run every stream.
            let _ = std::thread::Builder::new().name(format!("streamdsl-cpu-{i}")).spawn(move || m.work_loop());
        }
        m
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
    fn notify_and_unlock(&self, mut st: MutexGuard<'_, State>) {
        if std::mem::take(&mut st.progressed) {
            self.progress.notify_all();
        }
        if !st.ready.is_empty() {
            self.wake_worker(&mut st);
        }
        let dropped = std::mem::take(&mut st.dropped);
        drop(st);
        drop(dropped);
    }

    fn work_loop(&self) {
        let mut st = self.lock();
        loop {
            if let Some((id, job)) = st.pick() {
                if !st.ready.is_empty() {
                    self.wake_worker(&mut st);
                }
                drop(st);
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
                self.notify_and_unlock(done);
                drop(writes);
                st = self.lock();
            } else {
                st.idle_workers += 1;
                st = self.work_ready.wait(st).unwrap_or_else(|e| e.into_inner());
                st.idle_workers -= 1;
                st.waking = st.waking.saturating_sub(1);
            }
        }
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
                seen: HashMap::new(),
                blocked_on: None,
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
        refuse_in_host_work(op)?;
        let mut work: HostWork = match work {
            Work::Host(w) => w,
            Work::Device(_) => {
                return Err(Error::InvalidArgument { op, reason: "device work submitted to the CPU backend".into() })
            }
        };
        let mut st = self.lock();
        if let Some(poison) = access.poisoned_input(|p| st.is_complete(p)) {
            return Err(poison.error());
        }
        for p in access.dependencies(stream) {
            st.push_wait(stream, p, false);
        }
        let next = Point { stream, seq: st.queue(stream).submitted + 1 };
        if let Some(race) = st.sanitizer.as_mut().and_then(|s| s.check_op(next, &access.buffers())) {
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
        self.notify_and_unlock(st);
        Ok(point)
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
    fn last_write(&self, log: &Mutex<AccessLog>) -> Option<Point> {
        let _st = self.lock();
        lock_log(log).last_write()
    }

    /// Blocks the host until `p` has completed; the error of a failure at or before `p` comes back.
    fn wait_host(&self, p: Point) -> Result<()> {
        refuse_in_host_work("synchronize")?;
        let mut st = self.lock();
        while !st.is_complete(p) {
            st = self.progress.wait(st).unwrap_or_else(|e| e.into_inner());
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
            st = self.progress.wait(st).unwrap_or_else(|e| e.into_inner());
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
    /// Live entries of the bookkeeping that must not grow over a long run (test support): streams, registered
    /// waiters, the largest per-stream map of points already waited for, and the race checker's entries.
    pub(crate) fn bookkeeping(&self) -> [usize; 4] {
        let st = self.lock();
        let seen = st.streams.values().map(|q| q.seen.len()).max().unwrap_or(0);
        let sanitizer = st.sanitizer.as_ref().map_or(0, Sanitizer::entries);
        [st.streams.len(), st.waiters.values().map(Vec::len).sum(), seen, sanitizer]
    }
}
