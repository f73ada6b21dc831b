//! Tracing: a record of every op, wait, event and blocking host call, exported as a Chrome trace (Perfetto,
//! `chrome://tracing`) or drawn as an SVG timeline with one lane per stream.
//!
//! Off by default, and then free: an op pays a relaxed atomic load of one flag where it describes its operands
//! and another where the stream machine enqueues it (a host function or a wait, one). Turn it on for a stretch of
//! code, or for a whole run:
//!
//! - [`start`] … [`stop`]: `stop` returns the [`Trace`]; [`snapshot`] copies it without stopping.
//! - [`guard`]: a [`TraceGuard`] that records until it is dropped (and then writes the file
//!   [`TraceGuard::save_on_drop`] named) or until [`TraceGuard::finish`] returns the trace.
//! - `STREAMDSL_TRACE=trace.json` (or `trace.json,timeline.svg`): records from the first op of the process
//!   and writes each file at exit, as Chrome trace JSON or, for a name ending in `.svg`, as the timeline.
//!   `STREAMDSL_TRACE_CAPACITY` sets the ring's size.
//!
//! ```
//! use streamdsl::prelude::*;
//! use streamdsl::trace;
//!
//! let dev = Device::cpu();
//! let (s1, s2) = (Stream::new(&dev)?, Stream::new(&dev)?);
//! trace::start();
//! s1.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(5)));
//! let a = ops::randn_on::<f32>(&s1, [64, 64])?;
//! let b = ops::mm_on(&s2, &a, &a)?;          // s2 waits for s1's randn: a flow arrow in the trace
//! let total = ops::sum_on(&s2, &b)?.item()?; // a blocking host call
//! let t = trace::stop();
//! assert!(total.is_finite());
//! assert!(t.ops.iter().any(|op| op.op == "mm" && op.stream == trace::StreamKey::from(&s2)));
//! let arrows: Vec<_> = t.flows().iter().map(|f| (t.ops[f.from].op, t.ops[f.to].op)).collect();
//! assert!(arrows.contains(&("randn", "mm")));
//! let json = t.to_chrome_json();             // open in https://ui.perfetto.dev
//! let svg = t.timeline().to_string();        // or show `t` in evcxr
//! assert!(json.contains("\"traceEvents\"") && svg.starts_with("<svg"));
//! # Ok::<(), streamdsl::Error>(())
//! ```
//!
//! ## What is recorded
//!
//! Per op: the stream (device, id, name, priority), the op's name, the operands' dtypes and shapes and the
//! bytes they span (for the ops of [`crate::ops`]; host functions and other work have none), and the times it
//! was enqueued, started and ended. On the CPU backend start and end are the worker's clock around the
//! kernel. On the CUDA backend they come from two timed CUDA events the machine records on the op's stream
//! while tracing is on, one before the op's device work (after the waits it needs) and one after it; see
//! [CUDA times](#cuda-times). Per wait: the stream that waits, the point it waits for, and
//! whether the hazard tracker inserted it (an op reading data another stream writes) or the program asked for
//! it (`wait_event`, `wait_stream`); exporters draw each as an arrow from the work waited for to the first op
//! after the wait. Per event record: its stream and completion time. Host calls that block — `synchronize`
//! (streams and events), `to_vec`, `item` — with their thread. The CUDA backend records ops and their hazard
//! dependencies; its event records and explicit waits are not traced yet.
//!
//! ## CUDA times
//!
//! Nothing waits for the timed events: the machine asks the driver whether they have completed
//! (`cuEventQuery`, which never blocks) at later submissions on the stream and whenever a trace is read
//! ([`snapshot`], [`stop`], a guard's end), so a trace taken after the work has completed (after a
//! `synchronize`, a `to_vec` of its result, …) has every op's start and end, and one taken earlier has them
//! for the work done so far (the rest are [`Status::Pending`] and a later [`snapshot`] fills them in). An op
//! whose events the driver reports failed (its stream faulted) keeps its enqueue time only, as does work that
//! never runs; neither holds up [`stop`].
//!
//! CUDA measures only between events (`cuEventElapsedTime`, in `f32` milliseconds). Each device has a
//! reference event, recorded on an idle stream of its own while the host notes its clock before the record
//! and after it completes; an op's start is that host time plus the time from the reference to the op's
//! start event, and its end is its start plus the time between its two events. So durations are the
//! device's own, and positions are exact to within half the reference's round trip (microseconds on a GPU,
//! more on the simulated driver when its threads are busy). A start is never placed before its op's enqueue
//! time, nor an end before its start, and the reference is renewed every 10 seconds so the milliseconds keep
//! their resolution. The start event is recorded before the op's work is enqueued: on an idle stream, time
//! the host spends enqueueing (compiling a kernel on its first use, a pageable copy) counts in the op's
//! duration. Tracing adds two event records per op on CUDA; off, it adds nothing.
//!
//! ## Memory
//!
//! Records go into a ring of fixed capacity ([`DEFAULT_CAPACITY`] records, about 25 MB when full; change it
//! with [`start_with_capacity`] or `STREAMDSL_TRACE_CAPACITY`). When it is full the **oldest** record is
//! dropped for each new one, as Perfetto's ring-buffer mode does: the trace keeps the most recent stretch of
//! the run, and [`Trace::dropped`] says how many records were lost (the JSON and the timeline say it too).
//! Arrows whose source was dropped are left out.

mod chrome;
mod ring;
mod svg;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::device::Device;
use crate::dtype::DType;

pub use svg::Timeline;

pub(crate) use ring::{
    completed, cuda_submitted, describe, device_ran, enabled, event_enqueued, failed, host_call, on_snapshot,
    op_enqueued, op_ran, reader_stream, stream_created, wait_enqueued, Outcome, StreamRef,
};

/// The ring's capacity unless [`start_with_capacity`] or `STREAMDSL_TRACE_CAPACITY` says otherwise.
pub const DEFAULT_CAPACITY: usize = ring::DEFAULT_CAPACITY;

/// Starts a fresh recording (what an earlier one recorded is discarded), with [`DEFAULT_CAPACITY`].
///
/// ```
/// streamdsl::trace::start();
/// assert!(streamdsl::trace::is_enabled());
/// streamdsl::trace::stop();
/// ```
pub fn start() {
    ring::start(DEFAULT_CAPACITY);
}

/// [`start`] with a ring of `capacity` records (at least 16): beyond it the oldest records are dropped.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start_with_capacity(16);
/// let s = Stream::new(&Device::cpu())?;
/// for _ in 0..40 {
///     s.launch_host_func(|| {});
/// }
/// s.synchronize()?;
/// let t = streamdsl::trace::stop();
/// assert_eq!(t.capacity, 16);
/// assert!(t.dropped >= 25);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn start_with_capacity(capacity: usize) {
    ring::start(capacity);
}

/// Stops recording and returns what was recorded. The records stay available to [`snapshot`] (and to the
/// `STREAMDSL_TRACE` file written at exit) until the next [`start`].
///
/// ```
/// streamdsl::trace::start();
/// let t = streamdsl::trace::stop();
/// assert!(!streamdsl::trace::is_enabled());
/// assert_eq!(t.dropped, 0);
/// ```
pub fn stop() -> Trace {
    ring::stop();
    snapshot()
}

/// Whether a recording is running.
///
/// ```
/// assert!(!streamdsl::trace::is_enabled() || std::env::var_os("STREAMDSL_TRACE").is_some());
/// ```
pub fn is_enabled() -> bool {
    ring::enabled() && ring::recording()
}

/// A copy of what the current (or last) recording holds, without stopping it.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start();
/// let s = Stream::new(&Device::cpu())?;
/// let x = ops::ones_on::<f32>(&s, [8])?;
/// s.synchronize()?;
/// let t = streamdsl::trace::snapshot();
/// assert!(t.ops.iter().any(|op| op.op == "fill" && op.bytes == Some(32)));
/// streamdsl::trace::stop();
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn snapshot() -> Trace {
    ring::flush_machines();
    ring::with_ring(Trace::from_ring)
}

/// Records until dropped: see [`guard`].
///
/// ```
/// use streamdsl::prelude::*;
/// let path = std::env::temp_dir().join(format!("streamdsl-guard-doc-{}.json", std::process::id()));
/// {
///     let _trace = streamdsl::trace::guard().save_on_drop(&path);
///     ones::<f32>([4])?.sum()?.item()?;
/// } // stops and writes the file here
/// let json = std::fs::read_to_string(&path).unwrap();
/// assert!(json.contains("\"name\":\"sum\""));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[must_use = "dropping the guard stops the recording at once"]
pub struct TraceGuard {
    save: Option<std::path::PathBuf>,
    done: bool,
}

/// Starts a fresh recording that stops when the returned guard is dropped (also on panic).
///
/// ```
/// let g = streamdsl::trace::guard();
/// assert!(streamdsl::trace::is_enabled());
/// let t = g.finish();
/// assert!(!streamdsl::trace::is_enabled());
/// assert!(t.ops.is_empty() || t.dropped == 0);
/// ```
pub fn guard() -> TraceGuard {
    start();
    TraceGuard { save: None, done: false }
}

impl TraceGuard {
    /// Writes the trace to `path` when the guard is dropped: the timeline for a name ending in `.svg`, Chrome
    /// trace JSON otherwise. A failure to write is printed to stderr.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("streamdsl-save-doc-{}.svg", std::process::id()));
    /// drop(streamdsl::trace::guard().save_on_drop(&path));
    /// assert!(std::fs::read_to_string(&path).unwrap().starts_with("<svg"));
    /// # std::fs::remove_file(&path).ok();
    /// ```
    pub fn save_on_drop(mut self, path: impl AsRef<Path>) -> TraceGuard {
        self.save = Some(path.as_ref().to_path_buf());
        self
    }

    /// Stops the recording and returns the trace (writing the file of [`save_on_drop`](Self::save_on_drop),
    /// if any).
    ///
    /// ```
    /// let t = streamdsl::trace::guard().finish();
    /// assert_eq!(t.dropped, 0);
    /// ```
    pub fn finish(mut self) -> Trace {
        self.done = true;
        let t = stop();
        if let Some(path) = self.save.take() {
            if let Err(e) = t.save(&path) {
                eprintln!("streamdsl: could not write the trace to {}: {e}", path.display());
            }
        }
        t
    }
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if !self.done {
            let t = stop();
            if let Some(path) = self.save.take() {
                if let Err(e) = t.save(&path) {
                    eprintln!("streamdsl: could not write the trace to {}: {e}", path.display());
                }
            }
        }
    }
}

/// Writes the files `STREAMDSL_TRACE` names now instead of at exit (a program that ends with
/// `std::process::exit` from another thread, or wants the files before it ends). Returns whether
/// `STREAMDSL_TRACE` was set; after this, exit writes nothing.
///
/// ```
/// # if std::env::var_os("STREAMDSL_TRACE").is_none() {
/// assert!(!streamdsl::trace::write_env_files()?);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_env_files() -> std::io::Result<bool> {
    let _ = ring::enabled();
    ring::flush_env_paths()
}

/// A stream as the trace names it: its device and its id on that device ([`crate::Stream::id`]).
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let key = streamdsl::trace::StreamKey::from(&s);
/// assert_eq!((key.device, key.id), (Device::cpu(), s.id()));
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The stream's device.
    pub device: Device,
    /// The stream's id on its device.
    pub id: u64,
}

/// What the trace knows of a stream.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start();
/// let s = Stream::with_priority(&Device::cpu(), -1)?;
/// s.launch_host_func(|| {});
/// s.synchronize()?;
/// let t = streamdsl::trace::stop();
/// let info = t.streams.iter().find(|i| i.key == (&s).into()).unwrap();
/// assert_eq!(info.priority, Some(-1));
/// assert!(info.name.starts_with("cpu/"));
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StreamInfo {
    /// Device and id.
    pub key: StreamKey,
    /// The stream's name (`cpu/3`: device and a process-wide number), as errors show it.
    pub name: String,
    /// Its priority (lower runs first), where known.
    pub priority: Option<i32>,
    /// A transient stream that `to_vec` / `item` made to copy one tensor to the host; the timeline draws all
    /// of a device's in one "host reads" lane.
    pub reader: bool,
}

/// An operand or result of an op: element type and shape.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start();
/// let x = ops::zeros_on::<f64>(&Stream::new(&Device::cpu())?, [2, 3])?;
/// let y = x.add_scalar(1.0)?;
/// let t = streamdsl::trace::stop();
/// let op = t.ops.iter().find(|op| op.op == "add").unwrap();
/// assert_eq!(op.inputs[0].shape, vec![2, 3]);
/// assert_eq!(op.output.as_ref().unwrap().dtype, DType::F64);
/// assert_eq!(op.bytes, Some(2 * 6 * 8));
/// # drop(y);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The element type.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
}

impl TensorInfo {
    /// Bytes of the tensor's data.
    ///
    /// ```
    /// let t = streamdsl::trace::TensorInfo { dtype: streamdsl::DType::F32, shape: vec![4, 4] };
    /// assert_eq!(t.bytes(), 64);
    /// ```
    pub fn bytes(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64 * self.dtype.size_in_bytes() as u64
    }
}

impl fmt::Display for TensorInfo {
    /// `f32[4, 4]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype, self.shape)
    }
}

/// How a traced op ended.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start();
/// let s = Stream::new(&Device::cpu())?;
/// s.launch_host_func(|| panic!("boom"));
/// s.launch_host_func(|| {});
/// let _ = s.synchronize();
/// let t = streamdsl::trace::stop();
/// let status: Vec<_> = t.ops.iter().filter(|o| o.stream == (&s).into()).map(|o| o.status).collect();
/// assert_eq!(status, [streamdsl::trace::Status::Failed, streamdsl::trace::Status::Skipped]);
/// s.clear_error();
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not run yet when the trace was taken (on CUDA: its timed events had not completed, or never will
    /// because its stream faulted).
    Pending,
    /// Ran and succeeded.
    Completed,
    /// Ran and failed (it poisoned its stream; on CUDA, its enqueueing failed).
    Failed,
    /// Not run: its stream was poisoned or an input was.
    Skipped,
}

/// What kind of work an op is: the timeline's colour and legend.
///
/// ```
/// use streamdsl::trace::OpKind;
/// assert_eq!(OpKind::of("mm"), OpKind::Matmul);
/// assert_eq!(OpKind::of("add"), OpKind::Elementwise);
/// assert_eq!(OpKind::Matmul.label(), "matmul");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// `mm`.
    Matmul,
    /// `randn`.
    Random,
    /// `add`, `sub`, `mul`, `div` and their scalar forms.
    Elementwise,
    /// `sum`, `mean`.
    Reduction,
    /// `to_vec`, `to_device`, `copy_`, `to_dtype`.
    Copy,
    /// `fill`, `zeros`.
    Fill,
    /// `launch_host_func` and test work (`busy`).
    Host,
    /// Anything else (custom kernels).
    Other,
}

impl OpKind {
    /// The kind of the op named `op`.
    ///
    /// ```
    /// assert_eq!(streamdsl::trace::OpKind::of("to_vec"), streamdsl::trace::OpKind::Copy);
    /// ```
    pub fn of(op: &str) -> OpKind {
        match op {
            "mm" => OpKind::Matmul,
            "randn" | "philox_bits" => OpKind::Random,
            "add" | "sub" | "mul" | "div" => OpKind::Elementwise,
            "sum" | "mean" => OpKind::Reduction,
            "to_vec" | "to_device" | "copy_" | "to_dtype" => OpKind::Copy,
            "fill" | "zeros" => OpKind::Fill,
            "host_func" | "busy" => OpKind::Host,
            _ => OpKind::Other,
        }
    }

    /// The legend's name for the kind.
    ///
    /// ```
    /// assert_eq!(streamdsl::trace::OpKind::Copy.label(), "copy");
    /// ```
    pub fn label(self) -> &'static str {
        match self {
            OpKind::Matmul => "matmul",
            OpKind::Random => "random",
            OpKind::Elementwise => "elementwise",
            OpKind::Reduction => "reduction",
            OpKind::Copy => "copy",
            OpKind::Fill => "fill",
            OpKind::Host => "host function",
            OpKind::Other => "other",
        }
    }

    /// The colour the timeline draws the kind in (CSS hex).
    ///
    /// ```
    /// assert!(streamdsl::trace::OpKind::Matmul.colour().starts_with('#'));
    /// ```
    pub fn colour(self) -> &'static str {
        match self {
            OpKind::Matmul => "#4e79a7",
            OpKind::Random => "#f28e2b",
            OpKind::Elementwise => "#59a14f",
            OpKind::Reduction => "#b07aa1",
            OpKind::Copy => "#e15759",
            OpKind::Fill => "#9c755f",
            OpKind::Host => "#76b7b2",
            OpKind::Other => "#bab0ac",
        }
    }
}

/// One op: where it ran, what it was, and when.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start();
/// let s = Stream::new(&Device::cpu())?;
/// let a = ops::randn_on::<f32>(&s, [32, 16])?;
/// s.synchronize()?;
/// let t = streamdsl::trace::stop();
/// let op = t.ops.iter().find(|o| o.op == "randn").unwrap();
/// assert_eq!(op.output.as_ref().unwrap().to_string(), "f32[32, 16]");
/// assert!(op.enqueued <= op.start.unwrap() && op.start <= op.end);
/// assert_eq!(op.status, streamdsl::trace::Status::Completed);
/// # drop(a);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OpRecord {
    /// The stream it was enqueued on.
    pub stream: StreamKey,
    /// Its position in the stream's queue (waits and event records take positions too).
    pub seq: u64,
    /// The op's name (`mm`, `randn`, `add`, `to_vec`, `host_func`, …).
    pub op: &'static str,
    /// Its kind (the timeline's colour).
    pub kind: OpKind,
    /// The operands it reads, where the op described them.
    pub inputs: Vec<TensorInfo>,
    /// The tensor it writes, where the op described it.
    pub output: Option<TensorInfo>,
    /// Bytes of the operands and the result, where described.
    pub bytes: Option<u64>,
    /// When it was enqueued, from the start of the recording.
    pub enqueued: Duration,
    /// When it started running (`None` while pending, and on the CUDA backend).
    pub start: Option<Duration>,
    /// When it ended.
    pub end: Option<Duration>,
    /// How it ended.
    pub status: Status,
}

/// A queue entry that held a stream until a point of another stream completed.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let (a, b) = (Stream::new(&dev)?, Stream::new(&dev)?);
/// streamdsl::trace::start();
/// a.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(5)));
/// b.wait_stream(&a)?;
/// b.synchronize()?;
/// let t = streamdsl::trace::stop();
/// let w = &t.waits[0];
/// assert_eq!((w.stream, w.on, w.hazard), ((&b).into(), (&a).into(), false));
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WaitRecord {
    /// The stream that waits.
    pub stream: StreamKey,
    /// The wait's position in that stream's queue.
    pub seq: u64,
    /// The stream waited for.
    pub on: StreamKey,
    /// The position of `on` waited for: everything up to it.
    pub on_seq: u64,
    /// Inserted by the hazard tracker (an op needed data from `on`), not asked for by the program.
    pub hazard: bool,
    /// When it was enqueued.
    pub enqueued: Duration,
    /// When the point completed and the stream went on (`None` if not yet, or on CUDA).
    pub resolved: Option<Duration>,
}

/// An event recorded on a stream.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start();
/// let s = Stream::new(&Device::cpu())?;
/// s.record_event().synchronize()?;
/// let t = streamdsl::trace::stop();
/// assert!(t.events.iter().any(|e| e.stream == (&s).into() && e.completed.is_some()));
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EventRecord {
    /// The stream it was recorded on.
    pub stream: StreamKey,
    /// Its position in the stream's queue.
    pub seq: u64,
    /// Whether the event is timed.
    pub timed: bool,
    /// When it was recorded (enqueued).
    pub enqueued: Duration,
    /// When the work before it completed.
    pub completed: Option<Duration>,
}

/// A host call that blocked the calling thread until work completed.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::trace::start();
/// let s = Stream::new(&Device::cpu())?;
/// s.synchronize()?;
/// let t = streamdsl::trace::stop();
/// assert!(t.host_calls.iter().any(|h| h.call == "synchronize" && h.stream == Some(s.id())));
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HostCall {
    /// `synchronize`, `Event::synchronize`, `to_vec` or `item`.
    pub call: &'static str,
    /// The device it waited on.
    pub device: Device,
    /// The stream it waited for, where there is one.
    pub stream: Option<u64>,
    /// The calling thread, numbered from 1 in the order threads first blocked.
    pub thread: u64,
    /// When the call started.
    pub start: Duration,
    /// When it returned.
    pub end: Duration,
}

/// A wait drawn as an arrow: from the op waited for to the first op after the wait.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let (s1, s2) = (Stream::new(&dev)?, Stream::new(&dev)?);
/// streamdsl::trace::start();
/// s1.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(5)));
/// let a = ops::ones_on::<f32>(&s1, [4])?;
/// let b = ops::add_on(&s2, &a, &a)?;        // waits for the fill on s1
/// s2.synchronize()?;
/// let t = streamdsl::trace::stop();
/// let f = &t.flows()[0];
/// assert_eq!((t.ops[f.from].op, t.ops[f.to].op, f.hazard), ("fill", "add", true));
/// # drop(b);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Index into [`Trace::ops`] of the op waited for.
    pub from: usize,
    /// Index into [`Trace::ops`] of the first op after the wait.
    pub to: usize,
    /// Inserted by the hazard tracker.
    pub hazard: bool,
}

/// Everything one recording holds. Times are from the start of the recording.
///
/// Show it in evcxr (the timeline appears inline), export it with [`to_chrome_json`](Trace::to_chrome_json) /
/// [`save`](Trace::save), or read its records.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let (s1, s2) = (Stream::new(&dev)?, Stream::new(&dev)?);
/// streamdsl::trace::start();
/// s1.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(20)));
/// s2.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(20)));
/// s1.synchronize()?;
/// s2.synchronize()?;
/// let t = streamdsl::trace::stop();
/// assert!(t.overlap(&s1, &s2) > std::time::Duration::from_millis(5));
/// assert_eq!(t.timeline().lanes(), 2);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Trace {
    /// The streams the records name.
    pub streams: Vec<StreamInfo>,
    /// Ops, in the order they were enqueued.
    pub ops: Vec<OpRecord>,
    /// Waits, in the order they were enqueued.
    pub waits: Vec<WaitRecord>,
    /// Event records.
    pub events: Vec<EventRecord>,
    /// Blocking host calls.
    pub host_calls: Vec<HostCall>,
    /// Records lost because the ring was full (the oldest go first).
    pub dropped: u64,
    /// The ring's capacity, in records.
    pub capacity: usize,
}

impl Trace {
    fn from_ring(r: &ring::Ring) -> Trace {
        let at = |ns: u64| Duration::from_nanos(ns.saturating_sub(r.origin));
        let known = |ns: u64| (ns != 0).then(|| at(ns));
        let mut t = Trace { dropped: r.dropped, capacity: r.capacity(), ..Trace::default() };
        let mut seen: Vec<StreamKey> = Vec::new();
        let mut known_streams = std::collections::HashSet::new();
        let mut see = |key: StreamKey| {
            if known_streams.insert(key) {
                seen.push(key);
            }
        };
        for rec in &r.records {
            let stream = StreamKey { device: rec.device, id: rec.stream };
            match &rec.kind {
                ring::Kind::Host { thread } => {
                    t.host_calls.push(HostCall {
                        call: rec.name,
                        device: rec.device,
                        stream: (rec.stream != u64::MAX).then_some(rec.stream),
                        thread: *thread,
                        start: at(rec.start),
                        end: at(rec.end),
                    });
                    continue;
                }
                ring::Kind::Op { args } => {
                    let (mut inputs, mut output) = (Vec::new(), None);
                    for (dtype, shape, is_output) in args.iter().flat_map(ring::OpArgs::tensors) {
                        let info = TensorInfo { dtype, shape: shape.to_vec() };
                        if is_output {
                            output = Some(info);
                        } else {
                            inputs.push(info);
                        }
                    }
                    let bytes =
                        args.as_ref().map(|_| inputs.iter().chain(output.iter()).map(TensorInfo::bytes).sum::<u64>());
                    t.ops.push(OpRecord {
                        stream,
                        seq: rec.seq,
                        op: rec.name,
                        kind: OpKind::of(rec.name),
                        inputs,
                        output,
                        bytes,
                        enqueued: at(rec.enqueued),
                        start: known(rec.start),
                        end: known(rec.end),
                        status: match rec.outcome {
                            Outcome::Pending => Status::Pending,
                            Outcome::Ok => Status::Completed,
                            Outcome::Failed => Status::Failed,
                            Outcome::Skipped => Status::Skipped,
                        },
                    });
                }
                ring::Kind::Wait { on_stream, on_seq, hazard } => {
                    let on = StreamKey { device: rec.device, id: *on_stream };
                    see(on);
                    t.waits.push(WaitRecord {
                        stream,
                        seq: rec.seq,
                        on,
                        on_seq: *on_seq,
                        hazard: *hazard,
                        enqueued: at(rec.enqueued),
                        resolved: known(rec.end),
                    });
                }
                ring::Kind::Event { timed } => t.events.push(EventRecord {
                    stream,
                    seq: rec.seq,
                    timed: *timed,
                    enqueued: at(rec.enqueued),
                    completed: known(rec.end),
                }),
            }
            see(stream);
        }
        seen.sort_by_key(|k| (k.device.to_string(), k.id));
        for key in seen {
            let meta = r.streams.get(&(key.device, key.id));
            t.streams.push(StreamInfo {
                key,
                name: meta.map_or_else(|| format!("{}/#{}", key.device, key.id), |m| m.name.clone()),
                priority: meta.and_then(|m| m.priority),
                reader: meta.is_some_and(|m| m.reader),
            });
        }
        t
    }

    /// The ops enqueued on `stream`.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// streamdsl::trace::start();
    /// let s = Stream::new(&Device::cpu())?;
    /// ops::ones_on::<f32>(&s, [3])?;
    /// let t = streamdsl::trace::stop();
    /// assert_eq!(t.ops_on(&s).count(), 1);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn ops_on(&self, stream: impl Into<StreamKey>) -> impl Iterator<Item = &OpRecord> {
        let key = stream.into();
        self.ops.iter().filter(move |op| op.stream == key)
    }

    /// The time during which both streams were running an op: the length of the intersection of their busy
    /// intervals. Zero for one stream with itself ordered, or two streams that never ran at once.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let s = Stream::new(&Device::cpu())?;
    /// streamdsl::trace::start();
    /// s.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(2)));
    /// s.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(2)));
    /// s.synchronize()?;
    /// let t = streamdsl::trace::stop();
    /// let ops: Vec<_> = t.ops_on(&s).collect();
    /// assert!(ops[0].end <= ops[1].start);       // one stream runs in order
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn overlap(&self, a: impl Into<StreamKey>, b: impl Into<StreamKey>) -> Duration {
        let (a, b) = (self.busy(a.into()), self.busy(b.into()));
        let (mut i, mut j, mut total) = (0, 0, Duration::ZERO);
        while i < a.len() && j < b.len() {
            let (s, e) = (a[i].0.max(b[j].0), a[i].1.min(b[j].1));
            if e > s {
                total += e - s;
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        total
    }

    /// The merged intervals during which `stream` ran ops, in order.
    fn busy(&self, stream: StreamKey) -> Vec<(Duration, Duration)> {
        let mut spans: Vec<_> =
            self.ops_on(stream).filter_map(|op| Some((op.start?, op.end?))).filter(|(s, e)| e > s).collect();
        spans.sort();
        let mut merged: Vec<(Duration, Duration)> = Vec::new();
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// The waits drawn as arrows: each resolved to the latest traced op of the stream waited for at or before
    /// the point (the work it waited for) and the first op after the wait on the waiting stream. Waits whose
    /// ends are not in the trace (dropped, never run, or an event with no op before it) are left out.
    ///
    /// ```
    /// assert!(streamdsl::trace::Trace::default().flows().is_empty());
    /// ```
    pub fn flows(&self) -> Vec<Flow> {
        use std::collections::HashMap;
        let mut by_stream: HashMap<StreamKey, Vec<(u64, usize)>> = HashMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            by_stream.entry(op.stream).or_default().push((op.seq, i));
        }
        for list in by_stream.values_mut() {
            list.sort_unstable();
        }
        let mut flows = Vec::new();
        for w in &self.waits {
            let from = by_stream.get(&w.on).and_then(|list| {
                let n = list.partition_point(|&(seq, _)| seq <= w.on_seq);
                n.checked_sub(1).map(|last| list[last].1)
            });
            let to = by_stream.get(&w.stream).and_then(|list| {
                let n = list.partition_point(|&(seq, _)| seq <= w.seq);
                list.get(n).map(|&(_, i)| i)
            });
            if let (Some(from), Some(to)) = (from, to) {
                flows.push(Flow { from, to, hazard: w.hazard });
            }
        }
        flows
    }

    /// When the last record ended (the length of the trace).
    ///
    /// ```
    /// assert_eq!(streamdsl::trace::Trace::default().duration(), std::time::Duration::ZERO);
    /// ```
    pub fn duration(&self) -> Duration {
        let ops = self.ops.iter().map(|o| o.end.unwrap_or(o.enqueued));
        let host = self.host_calls.iter().map(|h| h.end);
        let events = self.events.iter().map(|e| e.completed.unwrap_or(e.enqueued));
        ops.chain(host).chain(events).max().unwrap_or_default()
    }

    /// The trace in Chrome's trace-event JSON format, which Perfetto (<https://ui.perfetto.dev>) and
    /// `chrome://tracing` open: a process per device (and one for the host), a track per stream named after
    /// it, a complete event per op (enqueue time, shapes and bytes in its args), flow arrows for waits, an
    /// instant per event record, and the blocking host calls on the host's tracks.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// streamdsl::trace::start();
    /// ones::<f32>([4])?.sum()?.item()?;
    /// let json = streamdsl::trace::stop().to_chrome_json();
    /// assert!(json.starts_with("{\"traceEvents\":["));
    /// assert!(json.contains("\"ph\":\"X\"") && json.contains("\"name\":\"item\""));
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn to_chrome_json(&self) -> String {
        chrome::render(self)
    }

    /// The SVG timeline with default options (see [`Timeline`]).
    ///
    /// ```
    /// let t = streamdsl::trace::Trace::default().timeline();
    /// assert_eq!(t.lanes(), 0);
    /// assert!(t.as_str().contains("no ops recorded"));
    /// ```
    pub fn timeline(&self) -> Timeline {
        Timeline::render(self, &svg::Options::default())
    }

    /// Writes the trace to `path`: the SVG timeline for a name ending in `.svg`, Chrome trace JSON otherwise.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("streamdsl-trace-doc-{}.json", std::process::id()));
    /// streamdsl::trace::Trace::default().save(&path)?;
    /// assert!(std::fs::read_to_string(&path)?.contains("traceEvents"));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        let text = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
            self.timeline().to_string()
        } else {
            self.to_chrome_json()
        };
        std::fs::write(path, text)
    }

    /// evcxr's display hook: a cell whose value is a `Trace` shows its timeline inline (an `image/svg+xml`
    /// output), with a one-line text summary for frontends that cannot show SVG.
    ///
    /// ```
    /// streamdsl::trace::Trace::default().evcxr_display(); // prints EVCXR_BEGIN_CONTENT image/svg+xml ...
    /// ```
    pub fn evcxr_display(&self) {
        self.timeline().evcxr_display();
    }
}

impl fmt::Display for Trace {
    /// A one-line summary: `trace: 12 ops on 2 streams, 3 waits, 2 events, 1 host call, 4.210 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lanes = self.streams.iter().filter(|s| !s.reader).count();
        write!(
            f,
            "trace: {} ops on {} streams, {} waits, {} events, {} host calls, {:.3} ms",
            self.ops.len(),
            lanes,
            self.waits.len(),
            self.events.len(),
            self.host_calls.len(),
            self.duration().as_secs_f64() * 1e3
        )?;
        if self.dropped > 0 {
            write!(f, " ({} oldest records dropped)", self.dropped)?;
        }
        Ok(())
    }
}
