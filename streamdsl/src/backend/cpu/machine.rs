//! The CPU stream machine.
//!
//! Each stream is an in-order FIFO queue of tasks. A pool of worker threads runs the streams
//! concurrently: a stream runs one task at a time, and when several streams have a ready task the one
//! with the higher priority (lower number) goes first, ties broken by submission order. Waits and event
//! records are queue entries too: a wait holds its stream back until the point it names has completed,
//! and a record stamps its event with the time at which everything before it on the stream finished.
//!
//! A task that fails (returns an error or panics) poisons its stream: the error comes back from the next
//! synchronisation, later tasks on that stream are skipped instead of running on garbage, and a stream
//! that waits on a poisoned point is poisoned in turn. `clear_error` makes the stream usable again.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::backend::{lock_log, panic_message, Access, HostWork, Stamp, Work};
use crate::error::{Error, Result};
use crate::hazard::sanitizer::Sanitizer;
use crate::hazard::{AccessLog, Point};
use crate::runtime::ProcessWide;

/// The range of priorities a CPU stream can have, as on CUDA devices: 0 is the default (lowest), -5 the
/// highest; lower values clamp to -5.
pub(crate) const PRIORITY_RANGE: (i32, i32) = (0, -5);

enum Task {
    Run { op: &'static str, work: HostWork },
    Record(Option<Arc<OnceLock<Instant>>>),
    Wait(Point),
}

struct Queued {
    task: Task,
    tick: u64,
}

/// A poisoned stretch of a stream's queue: points in `from..until` are garbage.
struct Poison {
    from: u64,
    until: u64,
    cause: Arc<Error>,
    /// The stream whose op failed (this one, or one it waited on).
    origin: String,
}

struct StreamQueue {
    priority: i32,
    queue: VecDeque<Queued>,
    submitted: u64,
    completed: u64,
    running: bool,
    released: bool,
    poison: Vec<Poison>,
    /// The highest point of each other stream this stream has already waited for.
    seen: HashMap<u64, u64>,
    name: String,
}

impl StreamQueue {
    fn open_poison(&self) -> Option<&Poison> {
        self.poison.last().filter(|p| p.until == u64::MAX)
    }

    fn poison_at(&self, seq: u64) -> Option<&Poison> {
        self.poison.iter().find(|p| p.from <= seq && seq < p.until)
    }

    fn poison_from(&mut self, seq: u64, cause: Arc<Error>, origin: String) {
        if self.open_poison().is_none() {
            self.poison.push(Poison { from: seq, until: u64::MAX, cause, origin });
        }
    }
}

impl Poison {
    fn error(&self) -> Error {
        Error::StreamPoisoned { stream: self.origin.clone(), cause: self.cause.clone() }
    }
}

#[derive(Default)]
struct State {
    streams: HashMap<u64, StreamQueue>,
    next_stream: u64,
    tick: u64,
    idle_workers: usize,
    /// Idle workers already signalled and not yet awake: no need to signal them again.
    waking: usize,
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

    fn push(&mut self, stream: u64, task: Task) -> Point {
        self.tick += 1;
        let tick = self.tick;
        let q = self.streams.get_mut(&stream).expect("stream ids are only handed out by create_stream");
        q.submitted += 1;
        q.queue.push_back(Queued { task, tick });
        Point { stream, seq: q.submitted }
    }

    /// Enqueues a wait unless the stream already waited for this point or a later one of that stream.
    fn push_wait(&mut self, stream: u64, p: Point) {
        if p.stream == stream {
            return;
        }
        if self.is_complete(p) && self.poisoned(p).is_none() {
            // Already complete: everything enqueued from now on comes after it without a queue entry.
            let next = self.streams.get(&stream).map_or(1, |q| q.submitted + 1);
            if let Some(s) = &mut self.sanitizer {
                s.wait_at(Point { stream, seq: next }, p);
            }
            return;
        }
        let q = self.streams.get_mut(&stream).expect("live stream");
        let seen = q.seen.entry(p.stream).or_insert(0);
        if *seen >= p.seq {
            return;
        }
        *seen = p.seq;
        let at = self.push(stream, Task::Wait(p));
        if let Some(s) = &mut self.sanitizer {
            s.wait_at(at, p);
        }
    }

    /// Completes the tasks at the heads of the queues that need no worker (records, satisfied waits,
    /// work skipped on a poisoned stream) until nothing changes, then picks the best ready task.
    /// Also returns whether anything completed inline, so host waiters can be woken at once.
    fn next_runnable(&mut self) -> (Option<(u64, &'static str, HostWork)>, bool) {
        let mut any = false;
        loop {
            let mut progressed = false;
            let ids: Vec<u64> = self.streams.keys().copied().collect();
            for id in ids {
                progressed |= self.complete_inline(id);
            }
            any |= progressed;
            if !progressed {
                break;
            }
        }
        // A released stream is forgotten once drained, unless it holds poison that tensors may ask about.
        self.streams.retain(|_, q| !(q.released && q.queue.is_empty() && !q.running && q.poison.is_empty()));
        (self.pick(), any)
    }

    fn pick(&mut self) -> Option<(u64, &'static str, HostWork)> {
        let (&id, _) = self
            .streams
            .iter()
            .filter(|(_, q)| !q.running && matches!(q.queue.front(), Some(Queued { task: Task::Run { .. }, .. })))
            .min_by_key(|(_, q)| (q.priority, q.queue.front().map_or(u64::MAX, |t| t.tick)))?;
        let q = self.streams.get_mut(&id).expect("present");
        let Some(Queued { task: Task::Run { op, work }, .. }) = q.queue.pop_front() else {
            unreachable!("the filter above only picks queues whose head is runnable work")
        };
        q.running = true;
        Some((id, op, work))
    }

    /// Returns whether any task completed. Leaves a blocked wait or runnable work at the head.
    fn complete_inline(&mut self, id: u64) -> bool {
        let mut progressed = false;
        loop {
            let q = &self.streams[&id];
            if q.running {
                return progressed;
            }
            let Some(head) = q.queue.front() else {
                return progressed;
            };
            match &head.task {
                Task::Wait(p) => {
                    let p = *p;
                    if !self.is_complete(p) {
                        // A blocked wait holds its stream back; report it as not runnable.
                        return progressed;
                    }
                    let inherited = self.poisoned(p).map(|x| (x.cause.clone(), x.origin.clone()));
                    let q = self.streams.get_mut(&id).expect("present");
                    if let Some((cause, origin)) = inherited {
                        let seq = q.completed + 1;
                        q.poison_from(seq, cause, origin);
                    }
                }
                Task::Record(stamp) => {
                    if let Some(stamp) = stamp {
                        let _ = stamp.set(Instant::now());
                    }
                }
                Task::Run { .. } => {
                    if q.open_poison().is_none() {
                        return progressed;
                    }
                    // Skipped: the stream is poisoned, running it would compute on garbage.
                }
            }
            let q = self.streams.get_mut(&id).expect("present");
            q.queue.pop_front();
            q.completed += 1;
            progressed = true;
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

    fn work_loop(&self) {
        let mut st = self.lock();
        loop {
            let (job, progressed) = st.next_runnable();
            if progressed {
                self.progress.notify_all();
            }
            if let Some((id, op, work)) = job {
                drop(st);
                let outcome = match catch_unwind(AssertUnwindSafe(work)) {
                    Ok(r) => r,
                    Err(panic) => Err(Error::OpFailed { op: op.to_string(), message: panic_message(&*panic) }),
                };
                st = self.lock();
                if let Some(q) = st.streams.get_mut(&id) {
                    q.running = false;
                    q.completed += 1;
                    if let Err(e) = outcome {
                        let (seq, origin) = (q.completed, q.name.clone());
                        q.poison_from(seq, Arc::new(e), origin);
                    }
                }
                if st.idle_workers > st.waking {
                    st.waking = st.idle_workers;
                    self.work_ready.notify_all();
                }
                self.progress.notify_all();
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
        }
        self.wake_worker(&mut st);
    }

    /// Enqueues `work` on `stream` behind the waits its accesses need, and notes the accesses.
    fn submit(&self, stream: u64, op: &'static str, access: Access<'_>, work: Work) -> Result<Point> {
        let work: HostWork = match work {
            Work::Host(w) => w,
            Work::Device(_) => {
                return Err(Error::InvalidArgument { op, reason: "device work submitted to the CPU backend".into() })
            }
        };
        let mut st = self.lock();
        for p in access.dependencies(stream) {
            st.push_wait(stream, p);
        }
        let point = st.push(stream, Task::Run { op, work });
        access.note(point);
        let race = st.sanitizer.as_mut().and_then(|s| s.check_op(point, &access.buffers()));
        if let Some(race) = race {
            // Unreachable through safe code; if the tracker ever misses a wait, fail the op rather than race.
            if let Some(Queued { task: Task::Run { work, .. }, .. }) =
                st.streams.get_mut(&stream).and_then(|q| q.queue.back_mut())
            {
                let message = format!("the race checker found an unordered access: {race}");
                *work = Box::new(move || Err(Error::OpFailed { op: op.to_string(), message }));
            }
        }
        self.wake_worker(&mut st);
        Ok(point)
    }

    fn record(&self, stream: u64, timed: bool) -> Result<(Point, Option<Stamp>)> {
        let stamp = timed.then(|| Arc::new(OnceLock::new()));
        let mut st = self.lock();
        let p = st.push(stream, Task::Record(stamp.clone()));
        self.wake_worker(&mut st);
        Ok((p, stamp.map(Stamp::Host)))
    }

    /// Later work on `stream` waits until `p` has completed. Does not block the host.
    fn wait(&self, stream: u64, p: Point) -> Result<()> {
        let mut st = self.lock();
        st.push_wait(stream, p);
        self.wake_worker(&mut st);
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
        let mut st = self.lock();
        while !st.is_complete(p) {
            st = self.progress.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.poisoned(p).map_or(Ok(()), |x| Err(x.error()))
    }

    /// Blocks until everything submitted to `stream` has completed; reports the stream's poison.
    fn synchronize(&self, stream: u64) -> Result<()> {
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

    /// Ends the stream's poisoned state; returns the error that caused it, if any.
    fn clear_error(&self, stream: u64) -> Option<Error> {
        let mut st = self.lock();
        let q = st.streams.get_mut(&stream)?;
        let until = q.submitted + 1;
        let p = q.poison.last_mut().filter(|p| p.until == u64::MAX)?;
        p.until = until;
        let cause = (*p.cause).clone();
        self.wake_worker(&mut st);
        Some(cause)
    }
}
