//! The recording side of tracing: the on/off flag every hook reads, the bounded ring of records, and the hooks
//! the stream machines and the upper layers call.
//!
//! Off, a hook costs one relaxed load of this copy's flag ([`enabled`]). On, each record takes the ring's
//! mutex once when it is made and once when its times are filled in; records are addressed by a
//! process-wide id, so a worker that finishes an op after the ring dropped its record (or after a new
//! recording started) changes nothing.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::device::Device;
use crate::dtype::DType;
use crate::runtime::ProcessWide;

/// The ring's default capacity, in records (ops, waits, event records, host calls): about 25 MB when full.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 18;

/// This copy of the crate's view of the process's switch: 0 not read yet, 1 off, 2 on. Each copy that evcxr
/// links has its own; [`set_on`] updates every copy that has read the switch.
static LOCAL: AtomicU8 = AtomicU8::new(0);

/// Whether tracing is on: one relaxed load (the first call in each copy of the crate also reads the
/// process's switch and `STREAMDSL_TRACE`). A hint only: the ring checks again under its lock.
#[inline(always)]
pub(crate) fn enabled() -> bool {
    match LOCAL.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => first_read(),
    }
}

#[cold]
fn first_read() -> bool {
    let shared = SHARED.get();
    let on = {
        let mut copies = lock(&shared.copies);
        if !copies.flags.iter().any(|f| std::ptr::eq(*f, &LOCAL)) {
            copies.flags.push(&LOCAL);
        }
        LOCAL.store(if copies.on { 2 } else { 1 }, Ordering::Relaxed);
        copies.on
    };
    if shared.env_read.set(()).is_ok() {
        if let Some(paths) = std::env::var_os("STREAMDSL_TRACE").filter(|v| !v.is_empty()) {
            let capacity = std::env::var("STREAMDSL_TRACE_CAPACITY").ok().and_then(|v| v.parse().ok());
            start(capacity.unwrap_or(DEFAULT_CAPACITY));
            *lock(&shared.exit_paths) = paths.to_string_lossy().split(',').map(str::to_owned).collect();
            register_exit_writer();
            return true;
        }
    }
    on
}

/// Turns the process's switch on or off in every copy of the crate that has read it.
fn set_on(on: bool) {
    let _ = enabled(); // this copy reads (and registers) first
    let shared = SHARED.get();
    let mut copies = lock(&shared.copies);
    copies.on = on;
    for flag in &copies.flags {
        flag.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    }
}

struct Copies {
    on: bool,
    flags: Vec<&'static AtomicU8>,
}

/// Reads or sets this thread's pending operand description through the first copy's thread-local (copies
/// of the crate each have their own thread-locals).
struct ArgsSlot(fn(Option<Option<OpArgs>>) -> Option<OpArgs>);

thread_local! {
    static ARGS: RefCell<Option<OpArgs>> = const { RefCell::new(None) };
}

fn this_copys_args(set: Option<Option<OpArgs>>) -> Option<OpArgs> {
    ARGS.with(|slot| match set {
        Some(value) => slot.replace(value),
        None => slot.borrow_mut().take(),
    })
}

/// The process's tracing state: one per process, shared by every copy of the crate.
pub(crate) struct Shared {
    copies: Mutex<Copies>,
    ring: Mutex<Ring>,
    args: ArgsSlot,
    env_read: std::sync::OnceLock<()>,
    /// Where `STREAMDSL_TRACE` asked for the trace to be written at exit.
    exit_paths: Mutex<Vec<String>>,
    /// What the machines resolve before a snapshot reads the ring (see [`on_snapshot`]).
    flushers: Mutex<Vec<Flusher>>,
}

/// A machine's hook that fills in the times it learns late (the CUDA machine's timed events), without
/// blocking: called before every snapshot, outside the ring's lock.
pub(crate) type Flusher = std::sync::Arc<dyn Fn() + Send + Sync>;

static SHARED: ProcessWide<Shared> = ProcessWide::new("trace.shared", || Shared {
    copies: Mutex::new(Copies { on: false, flags: Vec::new() }),
    ring: Mutex::new(Ring::new()),
    args: ArgsSlot(this_copys_args),
    env_read: std::sync::OnceLock::new(),
    exit_paths: Mutex::new(Vec::new()),
    flushers: Mutex::new(Vec::new()),
});

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The operands of the op being enqueued on this thread, as the ops layer describes them: up to three tensors
/// (inputs, then the output), their dimensions in one allocation.
#[derive(Clone, Debug)]
pub(crate) struct OpArgs {
    count: u8,
    has_output: bool,
    dtypes: [DType; 3],
    ranks: [u8; 3],
    dims: Box<[usize]>,
}

impl OpArgs {
    /// `(dtype, shape)` of each input, then of the output (if any).
    pub(crate) fn tensors(&self) -> impl Iterator<Item = (DType, &[usize], bool)> {
        let mut at = 0;
        (0..usize::from(self.count)).map(move |i| {
            let rank = usize::from(self.ranks[i]);
            let shape = &self.dims[at..at + rank];
            at += rank;
            (self.dtypes[i], shape, self.has_output && i + 1 == usize::from(self.count))
        })
    }
}

/// Clears this thread's operand description when the op call that set it returns.
pub(crate) struct DescribeGuard(bool);

impl Drop for DescribeGuard {
    fn drop(&mut self) {
        if self.0 {
            (SHARED.get().args.0)(Some(None));
        }
    }
}

/// Describes the operands of the op this thread is about to enqueue (the next op submitted on this thread
/// takes the description). Nothing when tracing is off.
#[inline]
pub(crate) fn describe(inputs: &[(DType, &[usize])], output: Option<(DType, &[usize])>) -> DescribeGuard {
    if !enabled() {
        return DescribeGuard(false);
    }
    let tensors = inputs.iter().copied().chain(output).take(3);
    let mut args =
        OpArgs { count: 0, has_output: output.is_some(), dtypes: [DType::F32; 3], ranks: [0; 3], dims: Box::default() };
    let mut dims = Vec::with_capacity(tensors.clone().map(|(_, s)| s.len()).sum());
    for (i, (dtype, shape)) in tensors.enumerate() {
        args.dtypes[i] = dtype;
        args.ranks[i] = shape.len() as u8;
        args.count += 1;
        dims.extend_from_slice(shape);
    }
    args.dims = dims.into_boxed_slice();
    (SHARED.get().args.0)(Some(Some(args)));
    DescribeGuard(true)
}

/// What a record is.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// Work run on a stream (a kernel, a copy, a host function).
    Op { args: Option<OpArgs> },
    /// A queue entry that holds its stream until `on` has completed: inserted by the hazard tracker
    /// (`hazard`) or asked for with `wait_event` / `wait_stream`.
    Wait { on_stream: u64, on_seq: u64, hazard: bool },
    /// An event record.
    Event { timed: bool },
    /// A host call that blocks until work completes.
    Host { thread: u64 },
}

/// How a record ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pending,
    Ok,
    Failed,
    Skipped,
}

/// One entry of the ring. Times are nanoseconds since the ring's epoch; 0 means "not known".
#[derive(Clone, Debug)]
pub(crate) struct Rec {
    pub kind: Kind,
    pub device: Device,
    pub stream: u64,
    /// Position in the stream's queue (1-based; 0 for host calls, whose `stream` is `u64::MAX` when they wait
    /// for no one stream).
    pub seq: u64,
    pub name: &'static str,
    pub enqueued: u64,
    pub start: u64,
    pub end: u64,
    pub outcome: Outcome,
}

/// What the trace knows of a stream.
#[derive(Clone, Debug)]
pub(crate) struct Meta {
    pub name: String,
    pub priority: Option<i32>,
    /// A transient stream made by `to_vec`/`item` to copy one tensor to the host.
    pub reader: bool,
}

/// The records of the current (or last) recording, oldest first.
pub(crate) struct Ring {
    recording: bool,
    epoch: Instant,
    /// When the recording started, in ns since `epoch`.
    pub origin: u64,
    /// The id of `records[0]`; ids are never reused in a process.
    first_id: u64,
    next_id: u64,
    pub records: VecDeque<Rec>,
    capacity: usize,
    /// Records dropped from the front because the ring was full.
    pub dropped: u64,
    pub streams: HashMap<(Device, u64), Meta>,
    /// The stream table's size after its last pruning.
    streams_pruned_at: usize,
    /// The stream of the last record, known to be in `streams` (most records follow one on the same stream).
    last_stream: Option<(Device, u64)>,
    host_threads: HashMap<std::thread::ThreadId, u64>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            recording: false,
            epoch: Instant::now(),
            origin: 0,
            first_id: 1,
            next_id: 1,
            records: VecDeque::new(),
            capacity: DEFAULT_CAPACITY,
            dropped: 0,
            streams: HashMap::new(),
            streams_pruned_at: 0,
            last_stream: None,
            host_threads: HashMap::new(),
        }
    }

    pub(crate) fn ns(&self, t: Instant) -> u64 {
        // At least 1, so that 0 can mean "not known".
        (t.saturating_duration_since(self.epoch).as_nanos() as u64).max(1)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `rec`, dropping the oldest record when full; its id, or 0 when not recording.
    fn push(&mut self, rec: Rec) -> u64 {
        if !self.recording {
            return 0;
        }
        if self.records.len() >= self.capacity {
            self.records.pop_front();
            self.first_id += 1;
            self.dropped += 1;
        }
        self.records.push_back(rec);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Rec> {
        let index = id.checked_sub(self.first_id)?;
        self.records.get_mut(usize::try_from(index).ok()?)
    }

    fn note_stream(&mut self, device: Device, stream: &StreamRef<'_>) {
        if self.last_stream == Some((device, stream.id)) {
            return;
        }
        self.last_stream = Some((device, stream.id));
        if let Some(meta) = self.streams.get_mut(&(device, stream.id)) {
            if meta.priority.is_none() {
                meta.priority = stream.priority;
            }
            return;
        }
        self.streams.insert(
            (device, stream.id),
            Meta { name: stream.name.to_owned(), priority: stream.priority, reader: false },
        );
        // Transient streams (one per `to_vec`) come and go: forget those no record names any more, now and then.
        if self.streams.len() > 1024 && self.streams.len() > 2 * self.streams_pruned_at {
            let live: HashSet<(Device, u64)> = self.records.iter().map(|r| (r.device, r.stream)).collect();
            self.streams.retain(|k, _| live.contains(k) || *k == (device, stream.id));
            self.streams_pruned_at = self.streams.len();
        }
    }
}

/// A stream as a machine names it to the trace.
pub(crate) struct StreamRef<'a> {
    pub id: u64,
    pub name: &'a str,
    /// `None` where the machine does not know it (the trace keeps what the stream's creation said).
    pub priority: Option<i32>,
}

fn ring() -> MutexGuard<'static, Ring> {
    lock(&SHARED.get().ring)
}

/// Starts a fresh recording of at most `capacity` records.
pub(crate) fn start(capacity: usize) {
    {
        let mut r = ring();
        r.recording = true;
        r.capacity = capacity.max(16);
        r.records = VecDeque::new();
        r.first_id = r.next_id;
        r.dropped = 0;
        r.streams.clear();
        r.streams_pruned_at = 0;
        r.last_stream = None;
        r.host_threads.clear();
        r.origin = r.ns(Instant::now());
    }
    set_on(true);
}

/// Stops recording; the records stay until the next start.
pub(crate) fn stop() {
    set_on(false);
    ring().recording = false;
}

/// Registers `f` to run before every snapshot (once per machine: the list is never pruned).
pub(crate) fn on_snapshot(f: Flusher) {
    lock(&SHARED.get().flushers).push(f);
}

/// Runs the machines' flushers (see [`on_snapshot`]), holding no lock of the trace.
pub(crate) fn flush_machines() {
    let flushers = lock(&SHARED.get().flushers).clone();
    for f in flushers {
        f();
    }
}

/// Runs `f` on the ring (for snapshots).
pub(crate) fn with_ring<R>(f: impl FnOnce(&Ring) -> R) -> R {
    f(&ring())
}

/// Whether a recording is running (not just this copy's hint).
pub(crate) fn recording() -> bool {
    ring().recording
}

/// A stream was created: remembers its name and priority (for streams whose machine does not report them).
pub(crate) fn stream_created(device: Device, id: u64, name: &str, priority: i32) {
    let mut r = ring();
    if r.recording {
        r.note_stream(device, &StreamRef { id, name, priority: Some(priority) });
    }
}

/// Marks `stream` as a transient reader (`to_vec`), drawn in one lane with the others of its device.
pub(crate) fn reader_stream(device: Device, id: u64) {
    let mut r = ring();
    if let Some(meta) = r.streams.get_mut(&(device, id)) {
        meta.reader = true;
    } else if r.recording {
        r.streams.insert((device, id), Meta { name: format!("{device}/reader"), priority: None, reader: true });
    }
}

/// A record of `kind` named `name` was enqueued at `seq` of `stream` at `now`: its id, 0 when not recording.
fn push_enqueued(
    device: Device,
    stream: &StreamRef<'_>,
    seq: u64,
    name: &'static str,
    kind: Kind,
    now: Instant,
) -> u64 {
    let mut r = ring();
    if !r.recording {
        return 0;
    }
    r.note_stream(device, stream);
    let enqueued = r.ns(now);
    r.push(Rec { kind, device, stream: stream.id, seq, name, enqueued, start: 0, end: 0, outcome: Outcome::Pending })
}

/// An op was enqueued at `seq` of `stream`; takes this thread's operand description. Its record id (0 when
/// not recording).
pub(crate) fn op_enqueued(device: Device, stream: StreamRef<'_>, seq: u64, op: &'static str) -> u64 {
    let args = (SHARED.get().args.0)(None);
    push_enqueued(device, &stream, seq, op, Kind::Op { args }, Instant::now())
}

/// A wait for `(on_stream, on_seq)` was enqueued at `seq` of `stream`.
pub(crate) fn wait_enqueued(device: Device, stream: StreamRef<'_>, seq: u64, on: (u64, u64), hazard: bool) -> u64 {
    let name = if hazard { "hazard wait" } else { "wait_event" };
    let kind = Kind::Wait { on_stream: on.0, on_seq: on.1, hazard };
    push_enqueued(device, &stream, seq, name, kind, Instant::now())
}

/// An event record was enqueued at `seq` of `stream`.
pub(crate) fn event_enqueued(device: Device, stream: StreamRef<'_>, seq: u64, timed: bool) -> u64 {
    push_enqueued(device, &stream, seq, "record", Kind::Event { timed }, Instant::now())
}

/// The op of record `id` ran from `start` to `end`.
pub(crate) fn op_ran(id: u64, start: Instant, end: Instant, ok: bool) {
    let mut r = ring();
    let (s, e) = (r.ns(start), r.ns(end));
    if let Some(rec) = r.get_mut(id) {
        rec.start = s;
        rec.end = e.max(s);
        rec.outcome = if ok { Outcome::Ok } else { Outcome::Failed };
    }
}

/// The op of record `id` ran on a device from `start` to `end` (times mapped from the device's clock, see
/// the CUDA machine's `timing`): kept no earlier than the op's enqueue time, and the end no earlier than the
/// start.
pub(crate) fn device_ran(id: u64, start: Instant, end: Instant) {
    let mut r = ring();
    let (s, e) = (r.ns(start), r.ns(end));
    if let Some(rec) = r.get_mut(id) {
        let s = s.max(rec.enqueued);
        rec.start = s;
        rec.end = e.max(s);
        rec.outcome = Outcome::Ok;
    }
}

/// The op of record `id` failed when it was enqueued (its times stay unknown).
pub(crate) fn failed(id: u64) {
    if let Some(rec) = ring().get_mut(id) {
        rec.outcome = Outcome::Failed;
    }
}

/// Record `id` completed at `at` without running on a worker (a wait, an event record, or skipped work).
pub(crate) fn completed(id: u64, at: Instant, outcome: Outcome) {
    let mut r = ring();
    let t = r.ns(at);
    if let Some(rec) = r.get_mut(id) {
        rec.start = t;
        rec.end = t;
        rec.outcome = outcome;
    }
}

/// Records a host call that blocks (`synchronize`, `to_vec`, …) while the guard lives.
pub(crate) struct HostCallGuard {
    call: Option<(&'static str, Device, u64, Instant)>,
}

/// Starts timing the host call `call` on `device` (`stream` names the stream it waits for, if one).
#[inline]
pub(crate) fn host_call(call: &'static str, device: Device, stream: Option<u64>) -> HostCallGuard {
    if !enabled() {
        return HostCallGuard { call: None };
    }
    HostCallGuard { call: Some((call, device, stream.unwrap_or(u64::MAX), Instant::now())) }
}

impl Drop for HostCallGuard {
    fn drop(&mut self) {
        let Some((call, device, stream, start)) = self.call.take() else { return };
        let end = Instant::now();
        let thread = std::thread::current().id();
        let mut r = ring();
        if !r.recording {
            return;
        }
        let next = r.host_threads.len() as u64 + 1;
        let thread = *r.host_threads.entry(thread).or_insert(next);
        let (s, e) = (r.ns(start), r.ns(end));
        r.push(Rec {
            kind: Kind::Host { thread },
            device,
            stream,
            seq: 0,
            name: call,
            enqueued: s,
            start: s,
            end: e,
            outcome: Outcome::Ok,
        });
    }
}

/// Writes the trace to the paths `STREAMDSL_TRACE` named, at process exit.
fn register_exit_writer() {
    extern "C" fn at_exit() {
        let paths = std::mem::take(&mut *lock(&SHARED.get().exit_paths));
        if paths.is_empty() {
            return;
        }
        let trace = super::snapshot();
        for path in paths {
            if let Err(e) = trace.save(&path) {
                eprintln!("streamdsl: could not write the trace to {path}: {e}");
            }
        }
    }
    // SAFETY: `at_exit` is a plain function that stays loaded for the life of the process (it is part of this
    // copy's code, which evcxr never unloads); it only locks process-wide mutexes and writes files.
    let status = unsafe { libc::atexit(at_exit) };
    if status != 0 {
        eprintln!("streamdsl: STREAMDSL_TRACE is set but the trace cannot be written at exit (atexit failed)");
    }
}

/// Writes the `STREAMDSL_TRACE` files now (for programs that leave through `std::process::exit` from a thread
/// other than main, or want the file before exit); later exits write nothing more.
pub(crate) fn flush_env_paths() -> std::io::Result<bool> {
    let paths = std::mem::take(&mut *lock(&SHARED.get().exit_paths));
    if paths.is_empty() {
        return Ok(false);
    }
    let trace = super::snapshot();
    for path in &paths {
        trace.save(path)?;
    }
    Ok(true)
}

/// The CUDA machine enqueued `op` at `seq` of `stream` after waiting for `dependencies` (the hazard tracker's):
/// records the op and a wait per dependency on another stream. The op's record id (0 when not recording):
/// the machine fills in its start and end with [`device_ran`] once its timed events have completed.
pub(crate) fn cuda_submitted(
    ordinal: usize,
    stream: u64,
    name: &str,
    seq: u64,
    op: &'static str,
    dependencies: &[crate::hazard::Point],
) -> u64 {
    let device = Device::cuda_unopened(ordinal);
    for p in dependencies.iter().filter(|p| p.stream != stream) {
        let at = StreamRef { id: stream, name, priority: None };
        wait_enqueued(device, at, seq.saturating_sub(1), (p.stream, p.seq), true);
    }
    op_enqueued(device, StreamRef { id: stream, name, priority: None }, seq, op)
}
