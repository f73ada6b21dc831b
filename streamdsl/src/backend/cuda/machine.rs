//! The CUDA stream machine: one per device, over the driver API (through cudarc's `sys`/`result` layers).
//!
//! Each stream is a CUDA stream created with its priority. Every op, every record and every allocation
//! records a pooled event after it, so any point of any stream can be waited for (`cuStreamWaitEvent`) or
//! queried; events are recycled once they have completed (not while a host waiter is blocked on one: it is
//! pinned). Device work is enqueued when it is submitted (kernel launches and copies are asynchronous); host
//! work is a `cuLaunchHostFunc` callback. Memory comes from the device's stream-ordered pool
//! (`cuMemAllocAsync`); the allocation's point is the buffer's first write, so everything that uses the
//! buffer, its free included, is ordered after it. Buffers are freed on a stream of their own after every
//! recorded access; when a wait needed for that fails the buffer is leaked with a warning, never freed early.
//! An allocation that finds the device full waits for the pending frees, trims the pool and tries once more.
//!
//! # Locking
//!
//! Two levels: each stream's *enqueue lock* (held while anything is enqueued on that stream, so the driver's
//! order of the stream is the order of its points), then the machine's `state` (streams, points, events,
//! access logs). A submission takes its stream's enqueue lock, then under `state` enqueues the waits its
//! accesses need, reserves its point and notes its accesses; it enqueues its work (launches, copies, JIT
//! compilation on first use, a pageable copy that blocks until it has run) holding only the enqueue lock,
//! and records its point under `state` again. Another stream's op that must wait for a reserved point
//! waits (on a condition variable, without locks) until it is recorded. Nothing holds `state` across a
//! driver call that can block on the device.
//!
//! # Host callbacks
//!
//! CUDA forbids driver calls inside a host function, and the callback's stream waits for it. Inside one
//! (see [`crate::backend::in_host_work`]) the machine makes no driver call and takes no enqueue lock (whose
//! holder may be blocked in the driver on that very callback): calls that enqueue or wait return
//! [`Error::InHostFunction`]; `query`, `Event::query` and `Tensor::is_ready` answer from what the machine
//! has already observed (they may say "not yet" for work that has completed, never "done" for work that has
//! not); dropping a stream, a tensor or a timed event defers its driver calls to the next machine call from
//! outside a callback.
//!
//! # Failures
//!
//! A host function that fails poisons its stream. A fault on the device (an illegal address, or a report of
//! the simulated driver) comes back from the driver as an error of the stream's later points: the machine
//! then poisons the stream with the driver's message and marks what the failed ops wrote as poisoned. Work
//! refused on a poisoned stream, or whose enqueueing failed, poisons what it would have written (as the CPU
//! backend's skipped work does). `clear_error` ends the poisoned state; a stream whose CUDA stream faulted
//! gets a new one at its next use. On a real GPU a device fault breaks the whole context, so there every
//! stream reports it.
//!
//! # Tracing
//!
//! With `crate::trace` on, `submit` records the op (enqueue time, hazard waits) under `state`, then, holding
//! only the enqueue lock, a timed event before the op's work and another after it; `timing` resolves them
//! into start and end with non-blocking queries (later submissions, and every trace snapshot). Off, a
//! submission pays one relaxed load for tracing and records no extra event.
//!
//! # Contexts
//!
//! Every call that talks to the driver binds the device's primary context for its duration and then restores
//! what was current on the calling thread (nothing to do when it already is the machine's).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use cudarc::driver::sys::{self, CUcontext, CUdeviceptr, CUevent, CUfunction, CUmodule, CUresult, CUstream};

use super::launch::Launcher;
use super::timing::Timing;
use crate::backend::{lock_log, panic_message, Access, HostWork, Stamp, Work};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::hazard::sanitizer::Sanitizer;
use crate::hazard::{AccessLog, Point, Poisoned};
use crate::jit::{Arch, KernelCache, KernelSpec, Nvrtc};
use crate::runtime::ProcessWide;

/// Device work: enqueues launches and copies on the stream the launcher names.
pub(crate) type DeviceWork = Box<dyn FnOnce(&Launcher<'_>) -> Result<()> + Send + 'static>;

/// Maps a driver status to `Err(Error::Driver)` naming the call.
pub(crate) fn check(call: &'static str, status: CUresult) -> Result<()> {
    match status {
        CUresult::CUDA_SUCCESS => Ok(()),
        other => Err(Error::Driver { call, message: describe(other) }),
    }
}

/// [`check`] for an allocation of `bytes` on device `ordinal`: out of memory is [`Error::OutOfMemory`].
pub(crate) fn check_alloc(call: &'static str, status: CUresult, ordinal: usize, bytes: usize) -> Result<()> {
    match status {
        CUresult::CUDA_ERROR_OUT_OF_MEMORY => Err(Error::OutOfMemory { device: Device::cuda_unopened(ordinal), bytes }),
        other => check(call, other),
    }
}

/// The driver's name and description of `status` (on the simulator, with its last report).
fn describe(status: CUresult) -> String {
    if in_host_callback() {
        // No driver call here, not even this one.
        return format!("{status:?}");
    }
    let mut text: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: the driver returns a pointer to a static string, or leaves it null.
    let ok = unsafe { sys::cuGetErrorString(status, &mut text) } == CUresult::CUDA_SUCCESS && !text.is_null();
    if ok {
        // SAFETY: non-null, NUL-terminated static string from the driver.
        format!("{status:?}: {}", unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy())
    } else {
        format!("{status:?}")
    }
}

/// A warning the program cannot act on (a leak, a context that could not be restored): printed, not returned
/// (and never a panic, even where stderr is closed: this runs in `Drop`s).
fn warn(what: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "streamdsl: {what}");
}

/// Makes a context current on the calling thread until dropped, then restores what was current before.
/// Does nothing when the context already is current. Not `Send`: it must be dropped on the thread that bound.
pub(crate) struct Bound {
    pushed: bool,
    _thread: PhantomData<*const ()>,
}

/// Binds `ctx` on the calling thread (see [`Bound`]).
pub(crate) fn bind_context(ctx: CUcontext) -> Result<Bound> {
    let mut current: CUcontext = std::ptr::null_mut();
    // SAFETY: an out-parameter.
    check("cuCtxGetCurrent", unsafe { sys::cuCtxGetCurrent(&mut current) })?;
    if current == ctx {
        return Ok(Bound { pushed: false, _thread: PhantomData });
    }
    // SAFETY: `ctx` is a primary context, retained for the life of the process.
    check("cuCtxPushCurrent", unsafe { sys::cuCtxPushCurrent_v2(ctx) })?;
    Ok(Bound { pushed: true, _thread: PhantomData })
}

impl Drop for Bound {
    fn drop(&mut self) {
        if !self.pushed {
            return;
        }
        let mut popped: CUcontext = std::ptr::null_mut();
        // SAFETY: pops the context this guard pushed on this thread; guards are dropped in reverse order of
        // binding (each lives in one call's scope), so it is the current one.
        let status = unsafe { sys::cuCtxPopCurrent_v2(&mut popped) };
        if status != CUresult::CUDA_SUCCESS {
            warn(&format!("could not restore the thread's CUDA context: {}", describe(status)));
        }
    }
}

/// A timed CUDA event, kept alive by the `Event` that recorded it.
pub(crate) struct TimedEvent {
    event: CUevent,
    ctx: CUcontext,
}

// SAFETY: CUDA events may be used from any thread once their context is bound (done in every call).
unsafe impl Send for TimedEvent {}
// SAFETY: as above.
unsafe impl Sync for TimedEvent {}

impl Drop for TimedEvent {
    fn drop(&mut self) {
        if in_host_callback() {
            // No driver calls inside a host callback: destroyed by the next machine call instead.
            lock_quietly(deferred_events()).push((self.ctx as usize, self.event as usize));
            return;
        }
        // SAFETY: the event was created in `ctx` and is destroyed once, here.
        unsafe { destroy_event(self.ctx, self.event) }
    }
}

/// Destroys a timed event; a failure only leaks it (with a warning).
///
/// # Safety
/// `event` must be a live event of `ctx`, destroyed only here.
unsafe fn destroy_event(ctx: CUcontext, event: CUevent) {
    let outcome = bind_context(ctx).and_then(|_bound| {
        // SAFETY: per the contract; the context is bound.
        check("cuEventDestroy", unsafe { sys::cuEventDestroy_v2(event) })
    });
    if let Err(e) = outcome {
        warn(&format!("leaking a timed CUDA event: {e}"));
    }
}

/// Whether this thread is running a host callback, where CUDA calls are not permitted.
fn in_host_callback() -> bool {
    crate::backend::in_host_work()
}

/// Timed events dropped inside host callbacks, as `(context, event)` addresses, destroyed at the next
/// machine call (of any copy of the crate).
static DEFERRED_EVENTS: ProcessWide<Mutex<Vec<(usize, usize)>>> =
    ProcessWide::new("cuda.deferred_events", Mutex::default);

fn deferred_events() -> &'static Mutex<Vec<(usize, usize)>> {
    DEFERRED_EVENTS.get()
}

/// Locks a mutex whose holders cannot leave it inconsistent (plain lists and unit values).
fn lock_quietly<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The time between two timed events, as `cuEventElapsedTime` measures it.
pub(crate) fn elapsed(start: &TimedEvent, end: &TimedEvent) -> Result<Duration> {
    crate::backend::refuse_in_host_work("elapsed_time")?;
    let _bound = bind_context(start.ctx)?;
    let mut ms = 0f32;
    // SAFETY: both events are live (their owners hold them); the context is bound.
    let status = unsafe { sys::cuEventElapsedTime_v2(&mut ms, start.event, end.event) };
    match status {
        CUresult::CUDA_ERROR_NOT_READY => Err(Error::EventNotReady),
        s => check("cuEventElapsedTime", s),
    }?;
    if ms < 0.0 {
        return Err(Error::InvalidArgument {
            op: "elapsed_time",
            reason: "the end event completed before the start event".into(),
        });
    }
    Ok(Duration::from_secs_f64(f64::from(ms) / 1e3))
}

thread_local! {
    /// Test support: how long this thread's host waits sleep between choosing their event and waiting on it.
    static HOST_WAIT_DELAY: Cell<Option<Duration>> = const { Cell::new(None) };
}

/// Test support: see `__private::cuda::delay_host_waits_on_this_thread`.
pub(crate) fn delay_host_waits(delay: Duration) {
    HOST_WAIT_DELAY.with(|c| c.set(Some(delay)));
}

/// A recorded point of a stream: the event recorded after it.
struct Entry {
    seq: u64,
    event: CUevent,
    /// The buffers the op at this point writes: marked poisoned if the device reports it failed.
    writes: Vec<Weak<Mutex<AccessLog>>>,
}

struct StreamState {
    raw: Option<CUstream>,
    /// CUDA streams replaced after a fault, destroyed when the stream is released (so a handle read under the
    /// state stays valid while the stream lives).
    retired: Vec<CUstream>,
    priority: i32,
    /// Held while anything is enqueued on this stream; taken before `state`, never inside a host callback.
    enqueue: Arc<Mutex<()>>,
    /// The last recorded point.
    seq: u64,
    /// A submission reserved point `seq + 1` (its accesses are noted) and has not recorded it yet.
    in_flight: bool,
    /// Recorded points not yet seen complete, oldest first; completed ones are recycled.
    events: VecDeque<Entry>,
    completed: u64,
    /// Set by a failed host callback or a device fault; later work on the stream is refused.
    poison: Arc<Mutex<Option<Arc<Error>>>>,
    /// The device fault of the current CUDA stream, if the driver reported one (it then runs nothing more).
    fault: Option<Arc<Error>>,
    /// Points up to here belong to CUDA streams replaced after a fault, which was `replaced_fault`.
    replaced_at: u64,
    replaced_fault: Option<Arc<Error>>,
    /// The highest point of each other stream this one already waits for.
    seen: HashMap<u64, u64>,
    name: String,
}

impl StreamState {
    /// The driver reported `status` for work on this stream: the device faulted. Poisons the stream (once per
    /// fault) and returns the fault.
    fn note_fault(&mut self, call: &'static str, status: CUresult) -> Arc<Error> {
        if let Some(fault) = &self.fault {
            return Arc::clone(fault);
        }
        let fault = Arc::new(Error::Driver { call, message: describe(status) });
        self.fault = Some(Arc::clone(&fault));
        lock_quietly(&self.poison).get_or_insert_with(|| Arc::clone(&fault));
        fault
    }
}

#[derive(Default)]
struct State {
    streams: HashMap<u64, StreamState>,
    next_stream: u64,
    idle_events: Vec<CUevent>,
    /// Events host waiters are blocked on: how many waiters, and whether the point completed meanwhile (the
    /// event then goes back to `idle_events` when the last waiter is done, not before).
    pinned: HashMap<usize, (usize, bool)>,
    sanitizer: Option<Sanitizer>,
    /// Streams whose handles are gone but whose points may still be pending (see `sweep_released`).
    released: Vec<u64>,
}

impl State {
    /// Whether `p` is known to have completed (without asking the driver).
    fn settled(&self, p: Point) -> bool {
        self.streams.get(&p.stream).is_none_or(|s| p.seq <= s.completed)
    }

    /// Whether `p` is reserved by a submission that has not recorded it yet.
    fn in_flight(&self, p: Point) -> bool {
        self.streams.get(&p.stream).is_some_and(|s| s.in_flight && p.seq > s.seq)
    }

    /// An idle event, or a new one.
    fn take_event(&mut self) -> Result<CUevent> {
        if let Some(ev) = self.idle_events.pop() {
            return Ok(ev);
        }
        let mut ev: CUevent = std::ptr::null_mut();
        // SAFETY: an out-parameter; the caller bound the context.
        check("cuEventCreate", unsafe {
            sys::cuEventCreate(&mut ev, sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32)
        })?;
        Ok(ev)
    }

    /// A host waiter is about to block on `ev`.
    fn pin(&mut self, ev: CUevent) {
        self.pinned.entry(ev as usize).or_insert((0, false)).0 += 1;
    }

    /// A host waiter is done with `ev`.
    fn unpin(&mut self, ev: CUevent) {
        let key = ev as usize;
        let Some(entry) = self.pinned.get_mut(&key) else { return };
        entry.0 = entry.0.saturating_sub(1);
        if entry.0 == 0 {
            let retired = entry.1;
            self.pinned.remove(&key);
            if retired {
                self.idle_events.push(ev);
            }
        }
    }

    /// Settles the completed points at the front of `stream`'s list, recycling their events. A point the
    /// driver reports as failed poisons the stream and what its op wrote.
    fn refresh(&mut self, stream: u64) {
        let State { streams, idle_events, pinned, .. } = self;
        let Some(s) = streams.get_mut(&stream) else { return };
        while let Some(front) = s.events.front() {
            // SAFETY: a live event of this machine; the caller bound the context (never inside a callback).
            let status = unsafe { sys::cuEventQuery(front.event) };
            if status == CUresult::CUDA_ERROR_NOT_READY {
                break;
            }
            let Some(entry) = s.events.pop_front() else { break };
            if status != CUresult::CUDA_SUCCESS {
                let fault = if entry.seq <= s.replaced_at {
                    s.replaced_fault.clone()
                } else {
                    Some(s.note_fault("cuEventQuery", status))
                };
                if let Some(cause) = fault {
                    let point = Point { stream, seq: entry.seq };
                    let poisoned = Poisoned { stream: s.name.clone(), cause };
                    for log in entry.writes.iter().filter_map(Weak::upgrade) {
                        let mut log = lock_log(&log);
                        if log.last_write() == Some(point) {
                            log.set_poison(Some(poisoned.clone()));
                        }
                    }
                }
            }
            s.completed = entry.seq;
            match pinned.get_mut(&(entry.event as usize)) {
                Some(pin) => pin.1 = true,
                None => idle_events.push(entry.event),
            }
        }
    }

    /// Forgets released streams whose work has all completed (recycling their events), so transient streams
    /// (one per `to_vec`) do not pile up. A forgotten stream's points read as complete, which they are;
    /// a poisoned stream is kept so that its error still reaches the waits on its points.
    fn sweep_released(&mut self) {
        let released = std::mem::take(&mut self.released);
        for id in released {
            self.refresh(id);
            let done = self.streams.get(&id).is_none_or(|s| s.events.is_empty() && lock_quietly(&s.poison).is_none());
            if done {
                self.streams.remove(&id);
                if let Some(san) = &mut self.sanitizer {
                    san.forget_stream(id);
                }
            } else {
                self.released.push(id);
            }
        }
    }

    /// The event to wait on for `p` (recorded, not in flight), or `None` when `p` has completed.
    fn event_for(&mut self, p: Point) -> Option<CUevent> {
        self.refresh(p.stream);
        let s = self.streams.get(&p.stream)?;
        if p.seq <= s.completed {
            return None;
        }
        s.events.iter().find(|e| e.seq >= p.seq).map(|e| e.event)
    }

    /// Makes `stream` wait for `p` (deduplicated: a wait is remembered only once it was enqueued); informs
    /// the race checker.
    fn wait_for(&mut self, stream: u64, p: Point, raw: CUstream) -> Result<()> {
        if p.stream == stream {
            return Ok(());
        }
        let already = self.streams.get(&stream).and_then(|s| s.seen.get(&p.stream)).is_some_and(|&v| v >= p.seq);
        if !already {
            if let Some(ev) = self.event_for(p) {
                // SAFETY: a live event and stream of this machine; the caller bound the context.
                check("cuStreamWaitEvent", unsafe { sys::cuStreamWaitEvent(raw, ev, 0) })?;
            }
            let live = self.streams.len();
            if let Some(s) = self.streams.get_mut(&stream) {
                s.seen.insert(p.stream, p.seq);
                if s.seen.len() > 2 * live + 16 {
                    // Forget streams that are gone, so a long-lived stream that waits on many short-lived
                    // ones keeps a small map.
                    let mut seen = std::mem::take(&mut s.seen);
                    seen.retain(|id, _| self.streams.contains_key(id));
                    if let Some(s) = self.streams.get_mut(&stream) {
                        s.seen = seen;
                    }
                }
            }
        }
        let (next, settled) = self.streams.get(&stream).map_or((1, 0), |s| (s.seq + 1, s.completed));
        if let Some(san) = &mut self.sanitizer {
            san.wait_at(Point { stream, seq: next }, p, settled);
        }
        Ok(())
    }
}

/// A loaded module and the functions looked up in it so far.
struct Module {
    module: CUmodule,
    functions: HashMap<String, CUfunction>,
}

/// Driver calls that host callbacks had to leave for later.
#[derive(Default)]
struct Deferred {
    /// Buffers dropped inside host callbacks, with the points to free them after.
    frees: Vec<(CUdeviceptr, Vec<Point>)>,
    /// Streams whose last handle was dropped inside a host callback.
    releases: Vec<u64>,
}

/// The CUDA machine of one device.
pub(crate) struct CudaMachine {
    pub(crate) ordinal: usize,
    pub(crate) arch: Arch,
    pub(crate) sm_count: u32,
    pub(crate) priority_range: (i32, i32),
    ctx: CUcontext,
    /// NVRTC, which compiles kernels to CUBIN; not needed on the simulator, which takes the source.
    nvrtc: Option<Nvrtc>,
    cache: KernelCache,
    /// Modules by kernel specialisation; each slot is locked while its module is compiled and loaded, so a
    /// first-use compilation holds up only the launches of that specialisation.
    modules: Mutex<HashMap<String, Arc<Mutex<Option<Module>>>>>,
    state: Mutex<State>,
    /// Signalled whenever a reserved point is recorded.
    recorded: Condvar,
    /// Where dropped buffers are freed, after waiting for their last accesses.
    free_stream: CUstream,
    /// The device's default memory pool (null if the driver has none), trimmed when an allocation fails.
    pool: sys::CUmemoryPool,
    /// A separate lock: a callback must never wait for `state`'s or an enqueue lock's holders.
    deferred: Mutex<Deferred>,
    /// Buffers leaked because a driver call needed to free them safely failed.
    leaked: AtomicUsize,
    /// The timed events that give traced ops their start and end (see `timing`).
    timing: Arc<Timing>,
}

// SAFETY: every driver call first binds `ctx` on the calling thread; the raw handles are plain values shared
// under the mutexes above.
unsafe impl Send for CudaMachine {}
// SAFETY: as above.
unsafe impl Sync for CudaMachine {}

struct HostCall {
    work: HostWork,
    op: &'static str,
    poison: Arc<Mutex<Option<Arc<Error>>>>,
}

unsafe extern "C" fn run_host_call(data: *mut c_void) {
    // SAFETY: `data` is the `Box<HostCall>` leaked by `launch_host`, handed back exactly once.
    let call = unsafe { Box::from_raw(data.cast::<HostCall>()) };
    let HostCall { work, op, poison } = *call;
    // `work` is consumed by the call, so whatever it captured is dropped inside, with the flag set.
    let outcome = crate::backend::run_as_host_work(|| match catch_unwind(AssertUnwindSafe(work)) {
        Ok(r) => r,
        Err(panic) => Err(Error::OpFailed { op: op.to_string(), message: panic_message(&*panic) }),
    });
    if let Err(e) = outcome {
        lock_quietly(&poison).get_or_insert(Arc::new(e));
    }
}

/// Marks the buffers `access` writes as poisoned by `poison`: the work that should have written them was
/// refused or failed.
fn poison_writes(access: &Access<'_>, poison: &Poisoned) {
    for log in access.writes {
        lock_log(log).set_poison(Some(poison.clone()));
    }
}

impl CudaMachine {
    /// Opens device `ordinal`: retains its primary context, finds NVRTC (not on the simulator) and the
    /// kernel cache.
    pub(crate) fn open(ordinal: usize, cc: (u32, u32), sm_count: u32) -> Result<CudaMachine> {
        let nvrtc = if on_simulator() { None } else { Some(Nvrtc::find()?) };
        let cache = KernelCache::open(KernelCache::default_dir()).unwrap_or_else(|e| {
            eprintln!("streamdsl: {e}; compiled kernels are kept in memory only");
            KernelCache::in_memory()
        });
        let mut ctx: CUcontext = std::ptr::null_mut();
        let mut dev = 0;
        // SAFETY: plain driver calls with out-parameters.
        unsafe {
            check("cuDeviceGet", sys::cuDeviceGet(&mut dev, ordinal as i32))?;
            check("cuDevicePrimaryCtxRetain", sys::cuDevicePrimaryCtxRetain(&mut ctx, dev))?;
        }
        let _bound = bind_context(ctx)?;
        let (mut least, mut greatest) = (0, 0);
        let mut free_stream: CUstream = std::ptr::null_mut();
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: context-bound calls with out-parameters; `keep` outlives the call that reads it.
        unsafe {
            check("cuCtxGetStreamPriorityRange", sys::cuCtxGetStreamPriorityRange(&mut least, &mut greatest))?;
            // Keep freed memory in the device's pool instead of returning it to the driver at every
            // synchronisation (the default threshold, 0), so allocation stays cheap, as a caching allocator
            // would; an allocation that fails trims the pool and tries again. Only a performance setting: a
            // failure leaves the default.
            if sys::cuDeviceGetDefaultMemPool(&mut pool, dev) == CUresult::CUDA_SUCCESS {
                let mut keep = u64::MAX;
                let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
                let _ = sys::cuMemPoolSetAttribute(pool, attr, (&mut keep as *mut u64).cast());
            } else {
                pool = std::ptr::null_mut();
            }
            check(
                "cuStreamCreate",
                sys::cuStreamCreateWithPriority(
                    &mut free_stream,
                    sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
                    0,
                ),
            )?;
        }
        Ok(CudaMachine {
            ordinal,
            arch: Arch::new(cc.0, cc.1),
            sm_count,
            priority_range: (least, greatest),
            ctx,
            nvrtc,
            cache,
            modules: Mutex::default(),
            state: Mutex::default(),
            recorded: Condvar::new(),
            free_stream,
            pool,
            deferred: Mutex::default(),
            leaked: AtomicUsize::new(0),
            timing: Arc::new(Timing::new(ctx)),
        })
    }

    /// Binds the machine's context on this thread until the guard drops.
    pub(super) fn bind(&self) -> Result<Bound> {
        bind_context(self.ctx)
    }

    /// The machine's state, without any driver call (what host callbacks may use).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The machine's state, after doing the driver calls that host callbacks deferred. Only outside host
    /// callbacks, with the context bound.
    fn lock_and_flush(&self) -> MutexGuard<'_, State> {
        let mut st = self.state();
        let deferred = std::mem::take(&mut *lock_quietly(&self.deferred));
        for id in deferred.releases {
            self.release_now(&mut st, id);
        }
        for (ptr, points) in deferred.frees {
            self.free_after_points(&mut st, ptr, points);
        }
        for (ctx, event) in std::mem::take(&mut *lock_quietly(deferred_events())) {
            // SAFETY: a live timed event whose owner was dropped; destroyed once, here.
            unsafe { destroy_event(ctx as CUcontext, event as CUevent) };
        }
        st
    }

    /// Waits (without locks) until none of `points` is reserved by a submission still enqueueing its work.
    fn await_recorded<'a>(&'a self, mut st: MutexGuard<'a, State>, points: &[Point]) -> MutexGuard<'a, State> {
        while points.iter().any(|&p| st.in_flight(p)) {
            st = self.recorded.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st
    }

    /// The enqueue lock of `stream`.
    fn enqueue_lock(&self, stream: u64) -> Result<Arc<Mutex<()>>> {
        self.state().streams.get(&stream).map(|s| Arc::clone(&s.enqueue)).ok_or_else(released_stream)
    }

    /// Gives a stream whose CUDA stream faulted, and whose error was cleared, a new CUDA stream. The caller
    /// holds the stream's enqueue lock and bound the context.
    fn ensure_healthy(&self, st: &mut State, stream: u64) -> Result<()> {
        let Some(s) = st.streams.get_mut(&stream) else { return Ok(()) };
        if s.fault.is_none() || lock_quietly(&s.poison).is_some() || s.raw.is_none() {
            return Ok(());
        }
        let mut raw: CUstream = std::ptr::null_mut();
        // SAFETY: an out-parameter.
        check("cuStreamCreateWithPriority", unsafe {
            sys::cuStreamCreateWithPriority(&mut raw, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32, s.priority)
        })?;
        if let Some(old) = s.raw.replace(raw) {
            // Another thread may still be synchronising with it: destroyed when the stream is released.
            s.retired.push(old);
        }
        s.replaced_at = s.seq;
        s.replaced_fault = s.fault.take();
        Ok(())
    }

    /// The function `entry` of `spec`, compiled for this device (JIT + cache) and loaded once. Called from
    /// device work, with the context bound and without the machine's state.
    pub(crate) fn function(&self, spec: &KernelSpec, entry: &str) -> Result<CUfunction> {
        let slot = {
            let mut modules = lock_quietly(&self.modules);
            Arc::clone(modules.entry(spec.name().to_string()).or_default())
        };
        let mut slot = lock_quietly(&slot);
        let module = match &mut *slot {
            Some(m) => m,
            None => {
                // The simulated driver (cuda-sim) runs CUDA C, not CUBIN: it gets the assembled source after a
                // magic first line, NUL-terminated. A real driver gets the NVRTC CUBIN.
                let image: Vec<u8> = match &self.nvrtc {
                    None => format!("//streamdsl-sim-source v1\n{}\0", spec.source()).into_bytes(),
                    Some(nvrtc) => self.cache.get_or_compile(nvrtc, spec, self.arch)?.cubin.to_vec(),
                };
                let mut module: CUmodule = std::ptr::null_mut();
                // SAFETY: the image is a complete CUBIN for this device's arch, or NUL-terminated simulator source.
                check("cuModuleLoadData", unsafe { sys::cuModuleLoadData(&mut module, image.as_ptr().cast()) })?;
                slot.insert(Module { module, functions: HashMap::new() })
            }
        };
        if let Some(f) = module.functions.get(entry) {
            return Ok(*f);
        }
        let cname =
            CString::new(entry).map_err(|_| Error::InvalidArgument { op: "launch", reason: "bad entry".into() })?;
        let mut f: CUfunction = std::ptr::null_mut();
        // SAFETY: `module` is loaded; `cname` is NUL-terminated.
        check("cuModuleGetFunction", unsafe { sys::cuModuleGetFunction(&mut f, module.module, cname.as_ptr()) })?;
        module.functions.insert(entry.to_string(), f);
        Ok(f)
    }

    /// `bytes` from the device pool, ordered on `raw`. When the device is full, waits for the frees already
    /// enqueued, trims the pool and tries once more. The caller holds `raw`'s enqueue lock (not the state) and
    /// bound the context.
    pub(super) fn alloc_on(&self, raw: CUstream, bytes: usize) -> Result<CUdeviceptr> {
        let try_alloc = || {
            let mut ptr: CUdeviceptr = 0;
            // SAFETY: an out-parameter; `raw` is a live stream of this context.
            let status = unsafe { sys::cuMemAllocAsync(&mut ptr, bytes.max(1), raw) };
            (status, ptr)
        };
        let (mut status, mut ptr) = try_alloc();
        if status == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            self.reclaim();
            (status, ptr) = try_alloc();
        }
        check_alloc("cuMemAllocAsync", status, self.ordinal, bytes)?;
        Ok(ptr)
    }

    /// Waits for the pending stream-ordered frees and returns the pool's unused memory to the device. Blocks
    /// until the accesses those frees wait for have completed; never called holding the state.
    fn reclaim(&self) {
        // SAFETY: the machine's free stream; the caller bound the context.
        let synced = check("cuStreamSynchronize", unsafe { sys::cuStreamSynchronize(self.free_stream) });
        if let Err(e) = synced {
            warn(&format!("waiting for pending frees failed: {e}"));
        }
        if !self.pool.is_null() {
            // SAFETY: the device's default pool.
            let _ = unsafe { sys::cuMemPoolTrimTo(self.pool, 0) };
        }
    }

    /// Allocates `bytes` from the device pool, ordered on `stream`. The allocation's point (recorded after it)
    /// is the buffer's first write: every later use, its free included, is ordered after it.
    pub(crate) fn alloc(self: &Arc<Self>, stream: u64, bytes: usize) -> Result<DeviceBuffer> {
        crate::backend::refuse_in_host_work("alloc")?;
        let _bound = self.bind()?;
        let queue = self.enqueue_lock(stream)?;
        let _queue = lock_quietly(&queue);
        let raw = {
            let mut st = self.lock_and_flush();
            self.ensure_healthy(&mut st, stream)?;
            raw_of(&st, stream)?
        };
        let ptr = self.alloc_on(raw, bytes)?;
        let mut st = self.state();
        match record_point(&mut st, stream, raw) {
            Ok(point) => Ok(DeviceBuffer { ptr, bytes, allocated: point, machine: Arc::clone(self) }),
            Err(e) => {
                drop(st);
                // SAFETY: just allocated on `raw`; freed once, in order after the allocation.
                if let Err(free) = check("cuMemFreeAsync", unsafe { sys::cuMemFreeAsync(ptr, raw) }) {
                    self.leak(ptr, &free);
                }
                Err(e)
            }
        }
    }

    /// A buffer that cannot be freed safely is leaked, with a warning.
    fn leak(&self, ptr: CUdeviceptr, why: &Error) {
        self.leaked.fetch_add(1, Ordering::Relaxed);
        warn(&format!("leaking device memory at {ptr:#x}: it cannot be freed safely ({why})"));
    }

    /// Frees `ptr` once every access at `points` has completed (stream-ordered; never blocks). Inside a host
    /// callback (a tensor dropped by a host function) the free is deferred to the next machine call.
    fn free_after(&self, ptr: CUdeviceptr, points: Vec<Point>) {
        if in_host_callback() {
            lock_quietly(&self.deferred).frees.push((ptr, points));
            return;
        }
        match self.bind() {
            Ok(_bound) => {
                let mut st = self.lock_and_flush();
                self.free_after_points(&mut st, ptr, points);
            }
            Err(e) => self.leak(ptr, &e),
        }
    }

    /// [`CudaMachine::free_after`] under the state. A free that cannot be ordered after every access (a wait
    /// fails) is not made: the buffer is leaked.
    fn free_after_points(&self, st: &mut State, ptr: CUdeviceptr, points: Vec<Point>) {
        if points.iter().any(|&p| st.in_flight(p)) {
            // Its last access is still being enqueued by another thread: free it at a later call.
            lock_quietly(&self.deferred).frees.push((ptr, points));
            return;
        }
        for p in points {
            if let Some(ev) = st.event_for(p) {
                // SAFETY: a live event and the machine's free stream; the caller bound the context.
                if let Err(e) = check("cuStreamWaitEvent", unsafe { sys::cuStreamWaitEvent(self.free_stream, ev, 0) }) {
                    self.leak(ptr, &e);
                    return;
                }
            }
        }
        // SAFETY: `ptr` came from cuMemAllocAsync and is freed once, after every access (waited for above).
        if let Err(e) = check("cuMemFreeAsync", unsafe { sys::cuMemFreeAsync(ptr, self.free_stream) }) {
            self.leak(ptr, &e);
        }
    }

    /// Destroys a released stream's CUDA streams (their queued work still runs); the context is bound.
    fn release_now(&self, st: &mut State, id: u64) {
        let Some(s) = st.streams.get_mut(&id) else { return };
        let Some(raw) = s.raw.take() else { return };
        for raw in s.retired.drain(..).chain([raw]) {
            // SAFETY: a live stream no one uses any more (the stream's last handle is gone); work already
            // queued on it still completes, and the events recorded on it stay valid.
            if let Err(e) = check("cuStreamDestroy", unsafe { sys::cuStreamDestroy_v2(raw) }) {
                warn(&format!("could not destroy a released CUDA stream: {e}"));
            }
        }
        st.released.push(id);
    }

    fn poisoned(&self, st: &State, stream: u64) -> Option<Error> {
        let s = st.streams.get(&stream)?;
        let cause = lock_quietly(&s.poison).clone()?;
        Some(Error::StreamPoisoned { stream: s.name.clone(), cause })
    }

    /// Enqueues host work as a `cuLaunchHostFunc` callback.
    fn launch_host(
        &self,
        raw: CUstream,
        op: &'static str,
        work: HostWork,
        poison: Arc<Mutex<Option<Arc<Error>>>>,
    ) -> Result<()> {
        let data = Box::into_raw(Box::new(HostCall { work, op, poison })).cast::<c_void>();
        // SAFETY: `run_host_call` takes back ownership of `data` exactly once when it runs.
        let status = unsafe { sys::cuLaunchHostFunc(raw, Some(run_host_call), data) };
        if status != CUresult::CUDA_SUCCESS {
            // SAFETY: the callback was not enqueued, so the box is still ours.
            drop(unsafe { Box::from_raw(data.cast::<HostCall>()) });
            check("cuLaunchHostFunc", status)?;
        }
        Ok(())
    }

    /// Test support: waits for the free stream; the driver's error if a free there failed.
    pub(crate) fn free_stream_status(&self) -> Result<()> {
        let _bound = self.bind()?;
        drop(self.lock_and_flush());
        // SAFETY: the machine's free stream.
        check("cuStreamSynchronize", unsafe { sys::cuStreamSynchronize(self.free_stream) })
    }

    /// Test support: how many buffers were leaked.
    pub(crate) fn leaked_frees(&self) -> usize {
        self.leaked.load(Ordering::Relaxed)
    }

    /// Test support: the tracing's timed events, `[idle, pending pairs, anchors]`.
    pub(crate) fn trace_timing(&self) -> [usize; 3] {
        self.timing.counts()
    }

    /// Test support: `[idle, pinned]` pooled events.
    pub(crate) fn event_pool(&self) -> [usize; 2] {
        let st = self.state();
        [st.idle_events.len(), st.pinned.len()]
    }
}

fn released_stream() -> Error {
    Error::InvalidArgument { op: "stream", reason: "the stream was released".into() }
}

/// The CUDA stream of `stream`.
fn raw_of(st: &State, stream: u64) -> Result<CUstream> {
    st.streams.get(&stream).and_then(|s| s.raw).ok_or_else(released_stream)
}

/// Records a new point of `stream` on `raw` (its CUDA stream). The caller holds the stream's enqueue lock
/// and bound the context.
fn record_point(st: &mut State, stream: u64, raw: CUstream) -> Result<Point> {
    let ev = st.take_event()?;
    // SAFETY: a live event and stream of this machine.
    if let Err(e) = check("cuEventRecord", unsafe { sys::cuEventRecord(ev, raw) }) {
        st.idle_events.push(ev);
        return Err(e);
    }
    let Some(s) = st.streams.get_mut(&stream) else {
        st.idle_events.push(ev);
        return Err(released_stream());
    };
    s.seq += 1;
    s.events.push_back(Entry { seq: s.seq, event: ev, writes: Vec::new() });
    Ok(Point { stream, seq: s.seq })
}

impl crate::backend::Machine for CudaMachine {
    fn create_stream(&self, priority: i32, name: String) -> Result<u64> {
        crate::backend::refuse_in_host_work("Stream::new")?;
        let _bound = self.bind()?;
        let mut st = self.lock_and_flush();
        // Clamp into [greatest, least] without `clamp`, which would panic on an inverted range.
        let prio = priority.max(self.priority_range.1).min(self.priority_range.0);
        let mut raw: CUstream = std::ptr::null_mut();
        // SAFETY: out-parameter.
        check("cuStreamCreateWithPriority", unsafe {
            sys::cuStreamCreateWithPriority(&mut raw, sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32, prio)
        })?;
        st.sweep_released();
        let id = st.next_stream;
        st.next_stream += 1;
        st.streams.insert(
            id,
            StreamState {
                raw: Some(raw),
                retired: Vec::new(),
                priority: prio,
                enqueue: Arc::default(),
                seq: 0,
                in_flight: false,
                events: VecDeque::new(),
                completed: 0,
                poison: Arc::default(),
                fault: None,
                replaced_at: 0,
                replaced_fault: None,
                seen: HashMap::new(),
                name,
            },
        );
        Ok(id)
    }

    /// The handle is gone: queued work still runs. Inside a host callback the driver call is deferred.
    fn release_stream(&self, id: u64) {
        if in_host_callback() {
            lock_quietly(&self.deferred).releases.push(id);
            return;
        }
        match self.bind() {
            Ok(_bound) => {
                let mut st = self.lock_and_flush();
                self.release_now(&mut st, id);
                st.sweep_released();
            }
            Err(e) => warn(&format!("leaking a released CUDA stream: {e}")),
        }
    }

    fn submit(&self, stream: u64, op: &'static str, access: Access<'_>, work: Work) -> Result<Point> {
        crate::backend::refuse_in_host_work(op)?;
        let _bound = self.bind()?;
        let queue = self.enqueue_lock(stream)?;
        let _queue = lock_quietly(&queue);

        // Under the state: refusals, the waits the accesses need, the reserved point, the accesses noted.
        let (raw, next, event, poison_slot, name, traced) = {
            let mut st = self.lock_and_flush();
            let deps = loop {
                let deps = access.dependencies(stream);
                if !deps.iter().any(|&p| st.in_flight(p)) {
                    break deps;
                }
                st = self.await_recorded(st, &deps);
            };
            let s = st.streams.get(&stream).ok_or_else(released_stream)?;
            let name = s.name.clone();
            let refuse = |e: Error| {
                poison_writes(&access, &Poisoned { stream: name.clone(), cause: Arc::new(e.clone()) });
                e
            };
            if let Some(e) = self.poisoned(&st, stream) {
                if let Error::StreamPoisoned { stream, cause } = &e {
                    poison_writes(&access, &Poisoned { stream: stream.clone(), cause: Arc::clone(cause) });
                }
                return Err(e);
            }
            // Poison in a CUDA buffer's log is always current: it is set when the machine learns of the
            // failure and cleared when a later write succeeds.
            if let Some(poison) = access.poisoned_input(|_| true) {
                return Err(poison.error());
            }
            self.ensure_healthy(&mut st, stream).map_err(refuse)?;
            let raw = raw_of(&st, stream).map_err(refuse)?;
            for &p in &deps {
                st.wait_for(stream, p, raw).map_err(refuse)?;
            }
            let s = st.streams.get(&stream).ok_or_else(released_stream)?;
            let next = Point { stream, seq: s.seq + 1 };
            let poison_slot = Arc::clone(&s.poison);
            let race = {
                let State { sanitizer, streams, .. } = &mut *st;
                let completed = |p: Point| streams.get(&p.stream).is_none_or(|s| p.seq <= s.completed);
                sanitizer.as_mut().and_then(|san| san.check_op(next, &access.buffers(), completed))
            };
            if let Some(race) = race {
                let message = format!("the race checker found {race}");
                return Err(refuse(Error::OpFailed { op: op.into(), message }));
            }
            let event = st.take_event().map_err(refuse)?;
            if let Some(s) = st.streams.get_mut(&stream) {
                s.in_flight = true;
            }
            access.note(next, |p| st.settled(p));
            // Tracing (`crate::trace`): the enqueue time and the hazard dependencies now; start and end from
            // timed events around the work (`timing`), resolved by later queries. Off: one relaxed load.
            let traced = if crate::trace::enabled() {
                crate::trace::cuda_submitted(self.ordinal, stream, &name, next.seq, op, &deps)
            } else {
                0
            };
            (raw, next, event, poison_slot, name, traced)
        };
        let started = if traced != 0 {
            Timing::register(&self.timing);
            self.timing.start(traced, raw)
        } else {
            None
        };

        // Holding only the stream's enqueue lock: the work (which may compile kernels or block in a pageable
        // copy), then the record of its point.
        let outcome = match work {
            Work::Device(w) => catch_unwind(AssertUnwindSafe(|| w(&Launcher::new(self, raw))))
                .unwrap_or_else(|panic| Err(Error::OpFailed { op: op.to_string(), message: panic_message(&*panic) })),
            Work::Host(w) => self.launch_host(raw, op, w, poison_slot),
        };
        if let Some(started) = started {
            self.timing.end(started, stream, raw, outcome.is_ok());
        }
        // SAFETY: a live event and stream of this machine.
        let recorded = check("cuEventRecord", unsafe { sys::cuEventRecord(event, raw) });
        let drained = match recorded {
            Ok(()) => Ok(()),
            // The point has no event: it is settled by waiting for the stream instead.
            // SAFETY: a live stream.
            Err(_) => check("cuStreamSynchronize", unsafe { sys::cuStreamSynchronize(raw) }),
        };

        // Under the state again: the point is recorded (or settled).
        let mut st = self.state();
        if let Some(s) = st.streams.get_mut(&stream) {
            s.in_flight = false;
            s.seq = next.seq;
            if recorded.is_ok() {
                let writes = access.writes.iter().map(|l| Arc::downgrade(l)).collect();
                s.events.push_back(Entry { seq: next.seq, event, writes });
            }
        }
        if recorded.is_err() {
            st.idle_events.push(event);
            // Every earlier point has completed too (the stream was drained, or it is broken).
            let State { streams, idle_events, pinned, .. } = &mut *st;
            if let Some(s) = streams.get_mut(&stream) {
                for entry in s.events.drain(..) {
                    match pinned.get_mut(&(entry.event as usize)) {
                        Some(pin) => pin.1 = true,
                        None => idle_events.push(entry.event),
                    }
                }
                s.completed = next.seq;
                if let Err(e) = &drained {
                    lock_quietly(&s.poison).get_or_insert_with(|| Arc::new(e.clone()));
                }
            }
        }
        self.recorded.notify_all();
        if st.streams.get(&stream).is_some_and(|s| s.events.len() >= 64) {
            // Recycle this stream's completed events now and then, so a long run of submissions without any
            // synchronisation does not keep creating events.
            st.refresh(stream);
        }
        let failure = outcome.err().or(recorded.err());
        for log in access.writes {
            let mut log = lock_log(log);
            if log.last_write() == Some(next) {
                let poison = failure.as_ref().map(|e| Poisoned { stream: name.clone(), cause: Arc::new(e.clone()) });
                log.set_poison(poison);
            }
        }
        drop(st);
        if traced != 0 {
            if failure.is_some() {
                crate::trace::failed(traced);
            }
            self.timing.poll(Some(stream));
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(next),
        }
    }

    fn record(&self, stream: u64, timed: bool) -> Result<(Point, Option<Stamp>)> {
        crate::backend::refuse_in_host_work("record")?;
        let _bound = self.bind()?;
        let queue = self.enqueue_lock(stream)?;
        let _queue = lock_quietly(&queue);
        let mut st = self.lock_and_flush();
        self.ensure_healthy(&mut st, stream)?;
        let raw = raw_of(&st, stream)?;
        let stamp = if timed {
            let mut ev: CUevent = std::ptr::null_mut();
            // SAFETY: an out-parameter.
            check("cuEventCreate", unsafe { sys::cuEventCreate(&mut ev, 0) })?;
            let timed = TimedEvent { event: ev, ctx: self.ctx };
            // SAFETY: a live event and stream.
            check("cuEventRecord", unsafe { sys::cuEventRecord(ev, raw) })?;
            Some(Stamp::Device(Arc::new(timed)))
        } else {
            None
        };
        Ok((record_point(&mut st, stream, raw)?, stamp))
    }

    fn wait(&self, stream: u64, p: Point) -> Result<()> {
        crate::backend::refuse_in_host_work("wait_event")?;
        let _bound = self.bind()?;
        let queue = self.enqueue_lock(stream)?;
        let _queue = lock_quietly(&queue);
        let st = self.lock_and_flush();
        let mut st = self.await_recorded(st, &[p]);
        self.ensure_healthy(&mut st, stream)?;
        let raw = raw_of(&st, stream)?;
        st.wait_for(stream, p, raw)
    }

    fn tail(&self, stream: u64) -> Point {
        let st = self.state();
        Point { stream, seq: st.streams.get(&stream).map_or(0, |s| s.seq) }
    }

    fn is_complete(&self, p: Point) -> bool {
        if in_host_callback() {
            return self.state().settled(p);
        }
        let Ok(_bound) = self.bind() else { return self.state().settled(p) };
        let mut st = self.lock_and_flush();
        st.refresh(p.stream);
        st.settled(p)
    }

    fn last_write(&self, log: &Mutex<AccessLog>) -> Option<Point> {
        let _st = self.state();
        lock_log(log).last_write()
    }

    fn wait_host(&self, p: Point) -> Result<()> {
        crate::backend::refuse_in_host_work("synchronize")?;
        let _bound = self.bind()?;
        let ev = {
            let st = self.lock_and_flush();
            let mut st = self.await_recorded(st, &[p]);
            if let Some(e) = self.poisoned(&st, p.stream) {
                return Err(e);
            }
            let ev = st.event_for(p);
            if let Some(ev) = ev {
                // Not recycled (nor re-recorded elsewhere) while this thread waits on it.
                st.pin(ev);
            }
            ev
        };
        if let Some(ev) = ev {
            if let Some(delay) = HOST_WAIT_DELAY.with(|c| c.get()) {
                std::thread::sleep(delay);
            }
            // SAFETY: a live event of this machine, pinned: it still stands for `p` (or a later point of the
            // same stream, never for unrelated work).
            let status = unsafe { sys::cuEventSynchronize(ev) };
            let mut st = self.state();
            st.unpin(ev);
            if status != CUresult::CUDA_SUCCESS {
                if let Some(s) = st.streams.get_mut(&p.stream) {
                    if p.seq > s.replaced_at {
                        s.note_fault("cuEventSynchronize", status);
                    }
                }
            }
        }
        let mut st = self.lock_and_flush();
        st.refresh(p.stream);
        self.poisoned(&st, p.stream).map_or(Ok(()), Err)
    }

    fn synchronize(&self, stream: u64) -> Result<()> {
        crate::backend::refuse_in_host_work("synchronize")?;
        let _bound = self.bind()?;
        let raw = self.lock_and_flush().streams.get(&stream).and_then(|s| s.raw);
        if let Some(raw) = raw {
            // SAFETY: a live stream: the caller holds a handle of it, so it is not released, and a CUDA stream
            // replaced after a fault is destroyed only when the stream is released.
            let status = unsafe { sys::cuStreamSynchronize(raw) };
            if status != CUresult::CUDA_SUCCESS {
                let mut st = self.state();
                match st.streams.get_mut(&stream) {
                    Some(s) if s.raw == Some(raw) => {
                        s.note_fault("cuStreamSynchronize", status);
                    }
                    _ => {}
                }
            }
        }
        let mut st = self.lock_and_flush();
        st.refresh(stream);
        self.poisoned(&st, stream).map_or(Ok(()), Err)
    }

    fn query(&self, stream: u64) -> bool {
        let answer_from_state =
            |st: &State| st.streams.get(&stream).is_none_or(|s| !s.in_flight && s.completed >= s.seq);
        if in_host_callback() {
            return answer_from_state(&self.state());
        }
        let Ok(_bound) = self.bind() else { return answer_from_state(&self.state()) };
        let mut st = self.lock_and_flush();
        let Some(s) = st.streams.get_mut(&stream) else { return true };
        if s.in_flight {
            return false;
        }
        let Some(raw) = s.raw else { return true };
        // SAFETY: a live stream.
        match unsafe { sys::cuStreamQuery(raw) } {
            CUresult::CUDA_SUCCESS => true,
            CUresult::CUDA_ERROR_NOT_READY => false,
            status => {
                // The stream faulted: nothing on it is pending any more.
                s.note_fault("cuStreamQuery", status);
                true
            }
        }
    }

    fn set_sanitize(&self, on: bool) {
        let mut st = self.state();
        if on != st.sanitizer.is_some() {
            st.sanitizer = on.then(Sanitizer::default);
        }
    }

    /// Takes the stream's error. A stream whose CUDA stream faulted gets a new one at its next use (not here:
    /// this may run inside a host callback).
    fn clear_error(&self, stream: u64) -> Option<Error> {
        let st = self.state();
        let s = st.streams.get(&stream)?;
        let cause = lock_quietly(&s.poison).take()?;
        Some((*cause).clone())
    }
}

/// Device memory of one tensor: freed stream-ordered, after its last accesses, when the tensor's storage drops.
pub(crate) struct DeviceBuffer {
    ptr: CUdeviceptr,
    bytes: usize,
    /// The point after the allocation: the buffer's first write.
    allocated: Point,
    machine: Arc<CudaMachine>,
}

impl DeviceBuffer {
    /// The device address.
    pub(crate) fn ptr(&self) -> CUdeviceptr {
        self.ptr
    }

    /// The size in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The point after the allocation, which the buffer's access log starts with as its first write.
    pub(crate) fn allocated(&self) -> Point {
        self.allocated
    }

    /// Frees the memory once the accesses at `points` have completed; called once, by the owning storage's
    /// `Drop`.
    pub(crate) fn free_after(&self, points: Vec<Point>) {
        self.machine.free_after(self.ptr, points);
    }
}

/// Whether the loaded driver is streamdsl's simulator (it exports `streamdsl_sim_version`).
pub(crate) fn on_simulator() -> bool {
    static SIM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SIM.get_or_init(super::driver::sim::present)
}
