//! The CUDA stream machine: one per device, over the driver API (through cudarc's `sys`/`result` layers).
//!
//! Each stream is a CUDA stream created with its priority. Every op (and every record) records a pooled
//! event after it, so any point of any stream can be waited for (`cuStreamWaitEvent`) or queried; events are
//! recycled once they have completed. Device work is enqueued when it is submitted (kernel launches and
//! copies are asynchronous); host work is a `cuLaunchHostFunc` callback. Memory comes from the device's
//! stream-ordered pool (`cuMemAllocAsync`) and is freed stream-ordered after every recorded access.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::sys::{self, CUcontext, CUdeviceptr, CUevent, CUfunction, CUmodule, CUresult, CUstream};

use super::launch::Launcher;
use crate::backend::{lock_log, panic_message, Access, HostWork, Stamp, Work};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::hazard::sanitizer::Sanitizer;
use crate::hazard::{AccessLog, Point};
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

fn describe(status: CUresult) -> String {
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

/// A timed CUDA event, kept alive by the `Event` that recorded it.
pub(crate) struct TimedEvent {
    event: CUevent,
    ctx: CUcontext,
}

// SAFETY: CUDA events may be used from any thread once the context is made current (done in every call).
unsafe impl Send for TimedEvent {}
// SAFETY: as above.
unsafe impl Sync for TimedEvent {}

impl Drop for TimedEvent {
    fn drop(&mut self) {
        if in_host_callback() {
            // No driver calls inside a host callback: destroyed by the next machine call instead.
            lock_deferred(deferred_events()).push((self.ctx as usize, self.event as usize));
            return;
        }
        // SAFETY: the event was created in `ctx` and is destroyed once; errors only leak it.
        unsafe { destroy_event(self.ctx, self.event) }
    }
}

/// # Safety
/// `event` must be a live event of `ctx`, destroyed only here.
unsafe fn destroy_event(ctx: CUcontext, event: CUevent) {
    // SAFETY: per the contract; errors only leak the event.
    unsafe {
        let _ = sys::cuCtxSetCurrent(ctx);
        let _ = sys::cuEventDestroy_v2(event);
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

fn lock_deferred<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The time between two timed events, as `cuEventElapsedTime` measures it.
pub(crate) fn elapsed(start: &TimedEvent, end: &TimedEvent) -> Result<std::time::Duration> {
    let mut ms = 0f32;
    // SAFETY: both events are live and were recorded (the caller checked they completed).
    let status = unsafe {
        sys::cuCtxSetCurrent(start.ctx);
        sys::cuEventElapsedTime_v2(&mut ms, start.event, end.event)
    };
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
    Ok(std::time::Duration::from_secs_f64(f64::from(ms) / 1e3))
}

struct StreamState {
    raw: Option<CUstream>,
    seq: u64,
    /// `(seq, event recorded after that entry)`, oldest first; completed ones are recycled.
    events: VecDeque<(u64, CUevent)>,
    completed: u64,
    /// Set by a failed host callback; later work on the stream is refused.
    poison: Arc<Mutex<Option<Arc<Error>>>>,
    seen: HashMap<u64, u64>,
    name: String,
}

#[derive(Default)]
struct State {
    streams: HashMap<u64, StreamState>,
    next_stream: u64,
    idle_events: Vec<CUevent>,
    sanitizer: Option<Sanitizer>,
    /// Streams whose handles are gone but whose points may still be pending (see `sweep_released`).
    released: Vec<u64>,
}

/// A loaded module's functions by entry point.
type Functions = HashMap<String, CUfunction>;

/// The CUDA machine of one device.
pub(crate) struct CudaMachine {
    pub(crate) ordinal: usize,
    pub(crate) arch: Arch,
    pub(crate) sm_count: u32,
    pub(crate) priority_range: (i32, i32),
    ctx: CUcontext,
    nvrtc: Nvrtc,
    cache: KernelCache,
    modules: Mutex<HashMap<String, (CUmodule, Functions)>>,
    state: Mutex<State>,
    /// Where dropped buffers are freed, after waiting for their last accesses.
    free_stream: CUstream,
    /// Buffers dropped inside host callbacks (no CUDA calls there), with the points to free them after;
    /// freed at the next machine call. A separate lock: a callback must never wait for `state`, whose holder
    /// may be blocked in the driver on that very callback's stream.
    deferred_frees: Mutex<Vec<(CUdeviceptr, Vec<Point>)>>,
}

// SAFETY: every driver call first makes `ctx` current on the calling thread; the raw handles are plain
// values shared under the mutexes above.
unsafe impl Send for CudaMachine {}
// SAFETY: as above.
unsafe impl Sync for CudaMachine {}

impl CudaMachine {
    /// Opens device `ordinal`: retains its primary context, finds NVRTC and the kernel cache.
    pub(crate) fn open(ordinal: usize, cc: (u32, u32), sm_count: u32) -> Result<CudaMachine> {
        let nvrtc = Nvrtc::find()?;
        let cache = KernelCache::open(KernelCache::default_dir()).unwrap_or_else(|e| {
            eprintln!("streamdsl: {e}; compiled kernels are kept in memory only");
            KernelCache::in_memory()
        });
        let mut ctx: CUcontext = std::ptr::null_mut();
        let (mut least, mut greatest) = (0, 0);
        let mut free_stream: CUstream = std::ptr::null_mut();
        // SAFETY: plain driver calls with out-parameters, in order: device, context, then context-bound calls.
        unsafe {
            let mut dev = 0;
            check("cuDeviceGet", sys::cuDeviceGet(&mut dev, ordinal as i32))?;
            check("cuDevicePrimaryCtxRetain", sys::cuDevicePrimaryCtxRetain(&mut ctx, dev))?;
            check("cuCtxSetCurrent", sys::cuCtxSetCurrent(ctx))?;
            check("cuCtxGetStreamPriorityRange", sys::cuCtxGetStreamPriorityRange(&mut least, &mut greatest))?;
            // Keep freed memory in the device's pool instead of returning it to the driver at every
            // synchronisation (the default threshold, 0), so allocation stays cheap, as a caching allocator
            // would. Only a performance setting: a failure leaves the default.
            let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
            if sys::cuDeviceGetDefaultMemPool(&mut pool, dev) == CUresult::CUDA_SUCCESS {
                let mut keep = u64::MAX;
                let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD;
                let _ = sys::cuMemPoolSetAttribute(pool, attr, (&mut keep as *mut u64).cast());
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
            free_stream,
            deferred_frees: Mutex::default(),
        })
    }

    pub(super) fn bind(&self) {
        // SAFETY: the context lives as long as the machine (the primary context is never released).
        unsafe {
            sys::cuCtxSetCurrent(self.ctx);
        }
    }

    /// Locks the machine's state, first doing the driver calls that host callbacks had to defer (not from
    /// inside a host callback, where no driver call is allowed: there the state is only read).
    fn lock(&self) -> MutexGuard<'_, State> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if in_host_callback() {
            return st;
        }
        self.bind();
        let frees = std::mem::take(&mut *lock_deferred(&self.deferred_frees));
        for (ptr, points) in frees {
            self.free_after_points(&mut st, ptr, points);
        }
        for (ctx, event) in std::mem::take(&mut *lock_deferred(deferred_events())) {
            // SAFETY: a live timed event whose owner was dropped; destroyed once, here.
            unsafe { destroy_event(ctx as CUcontext, event as CUevent) };
        }
        st
    }

    /// The function `entry` of `spec`, compiled for this device (JIT + cache) and loaded once.
    pub(crate) fn function(&self, spec: &KernelSpec, entry: &str) -> Result<CUfunction> {
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = modules.get(spec.name()).and_then(|(_, fns)| fns.get(entry)) {
            return Ok(*f);
        }
        self.bind();
        if !modules.contains_key(spec.name()) {
            // The simulated driver (cuda-sim) runs CUDA C, not CUBIN: it gets the assembled source after a magic
            // first line, NUL-terminated. A real driver gets the NVRTC CUBIN.
            let image: Vec<u8> = if on_simulator() {
                format!("//streamdsl-sim-source v1\n{}\0", spec.source()).into_bytes()
            } else {
                self.cache.get_or_compile(&self.nvrtc, spec, self.arch)?.cubin.to_vec()
            };
            let mut module: CUmodule = std::ptr::null_mut();
            // SAFETY: the image is a complete CUBIN for this device's arch, or NUL-terminated simulator source.
            check("cuModuleLoadData", unsafe { sys::cuModuleLoadData(&mut module, image.as_ptr().cast()) })?;
            modules.insert(spec.name().to_string(), (module, HashMap::new()));
        }
        let (module, fns) = modules.get_mut(spec.name()).expect("inserted above");
        let cname =
            CString::new(entry).map_err(|_| Error::InvalidArgument { op: "launch", reason: "bad entry".into() })?;
        let mut f: CUfunction = std::ptr::null_mut();
        // SAFETY: `module` is loaded; `cname` is NUL-terminated.
        check("cuModuleGetFunction", unsafe { sys::cuModuleGetFunction(&mut f, *module, cname.as_ptr()) })?;
        fns.insert(entry.to_string(), f);
        Ok(f)
    }

    /// Allocates `bytes` from the device pool, ordered on `stream`.
    pub(crate) fn alloc(self: &Arc<Self>, stream: u64, bytes: usize) -> Result<DeviceBuffer> {
        crate::backend::refuse_in_host_work("alloc")?;
        let st = self.lock();
        let raw = st.streams.get(&stream).and_then(|s| s.raw).unwrap_or(self.free_stream);
        let mut ptr: CUdeviceptr = 0;
        // SAFETY: out-parameter; `raw` is a live stream of this context.
        check_alloc("cuMemAllocAsync", unsafe { sys::cuMemAllocAsync(&mut ptr, bytes, raw) }, self.ordinal, bytes)?;
        Ok(DeviceBuffer { ptr, bytes, machine: Arc::clone(self) })
    }

    /// Frees `ptr` once every access noted in `log` has completed (stream-ordered; never blocks). Inside a
    /// host callback (a tensor dropped by a host function) the free is deferred to the next machine call.
    fn free_after(&self, ptr: CUdeviceptr, points: Vec<Point>) {
        if in_host_callback() {
            lock_deferred(&self.deferred_frees).push((ptr, points));
            return;
        }
        let mut st = self.lock();
        self.free_after_points(&mut st, ptr, points);
    }

    fn free_after_points(&self, st: &mut State, ptr: CUdeviceptr, points: Vec<Point>) {
        for p in points {
            if let Some(ev) = st.event_for(p) {
                // SAFETY: live event and stream of this context.
                unsafe {
                    sys::cuStreamWaitEvent(self.free_stream, ev, 0);
                }
            }
        }
        // SAFETY: `ptr` came from cuMemAllocAsync and is freed once; failures only leak.
        unsafe {
            sys::cuMemFreeAsync(ptr, self.free_stream);
        }
    }

    fn poisoned(&self, st: &State, stream: u64) -> Option<Error> {
        let s = st.streams.get(&stream)?;
        let cause = s.poison.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        Some(Error::StreamPoisoned { stream: s.name.clone(), cause })
    }

    fn raw(&self, st: &State, stream: u64) -> Result<CUstream> {
        st.streams
            .get(&stream)
            .and_then(|s| s.raw)
            .ok_or(Error::InvalidArgument { op: "stream", reason: "the stream was released".into() })
    }

    fn record_point(&self, st: &mut State, stream: u64) -> Result<Point> {
        let raw = self.raw(st, stream)?;
        let ev = match st.idle_events.pop() {
            Some(ev) => ev,
            None => {
                let mut ev: CUevent = std::ptr::null_mut();
                // SAFETY: out-parameter.
                check("cuEventCreate", unsafe {
                    sys::cuEventCreate(&mut ev, sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32)
                })?;
                ev
            }
        };
        // SAFETY: live event and stream.
        check("cuEventRecord", unsafe { sys::cuEventRecord(ev, raw) })?;
        let s = st.streams.get_mut(&stream).expect("raw() found it");
        s.seq += 1;
        s.events.push_back((s.seq, ev));
        Ok(Point { stream, seq: s.seq })
    }
}

impl State {
    /// Recycles the completed events at the front of `stream`'s list.
    fn refresh(&mut self, stream: u64) {
        let Some(s) = self.streams.get_mut(&stream) else { return };
        while let Some(&(seq, ev)) = s.events.front() {
            // SAFETY: live event.
            if unsafe { sys::cuEventQuery(ev) } != CUresult::CUDA_SUCCESS {
                break;
            }
            s.completed = seq;
            s.events.pop_front();
            self.idle_events.push(ev);
        }
    }

    /// Forgets released streams whose work has all completed (recycling their events), so transient streams
    /// (one per `to_vec`) do not pile up. A forgotten stream's points read as complete, which they are;
    /// a poisoned stream is kept so that its error still reaches the tensors it produced.
    fn sweep_released(&mut self) {
        let released = std::mem::take(&mut self.released);
        for id in released {
            self.refresh(id);
            let done = self
                .streams
                .get(&id)
                .is_none_or(|s| s.events.is_empty() && s.poison.lock().unwrap_or_else(|e| e.into_inner()).is_none());
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

    /// The event to wait on for `p`, or `None` when `p` has completed.
    fn event_for(&mut self, p: Point) -> Option<CUevent> {
        self.refresh(p.stream);
        let s = self.streams.get(&p.stream)?;
        if p.seq <= s.completed {
            return None;
        }
        s.events.iter().find(|(seq, _)| *seq >= p.seq).map(|&(_, ev)| ev)
    }

    /// Makes `stream` wait for `p` (deduplicated); informs the race checker.
    fn wait_for(&mut self, stream: u64, p: Point, raw: CUstream) -> Result<()> {
        if p.stream == stream {
            return Ok(());
        }
        let (next, settled) = self.streams.get(&stream).map_or((1, 0), |s| (s.seq + 1, s.completed));
        if let Some(san) = &mut self.sanitizer {
            san.wait_at(Point { stream, seq: next }, p, settled);
        }
        let seen = self.streams.get_mut(&stream).map(|s| s.seen.entry(p.stream).or_insert(0));
        if seen.as_deref().is_some_and(|v| *v >= p.seq) {
            return Ok(());
        }
        if let Some(v) = seen {
            *v = p.seq;
        }
        if let Some(ev) = self.event_for(p) {
            // SAFETY: live event and stream.
            check("cuStreamWaitEvent", unsafe { sys::cuStreamWaitEvent(raw, ev, 0) })?;
        }
        Ok(())
    }
}

struct HostCall {
    work: HostWork,
    op: &'static str,
    poison: Arc<Mutex<Option<Arc<Error>>>>,
}

unsafe extern "C" fn run_host_call(data: *mut c_void) {
    // SAFETY: `data` is the `Box<HostCall>` leaked by `submit`, handed back exactly once.
    let call = unsafe { Box::from_raw(data.cast::<HostCall>()) };
    let HostCall { work, op, poison } = *call;
    // `work` is consumed by the call, so whatever it captured is dropped inside, with the flag set.
    let outcome = crate::backend::run_as_host_work(|| match catch_unwind(AssertUnwindSafe(work)) {
        Ok(r) => r,
        Err(panic) => Err(Error::OpFailed { op: op.to_string(), message: panic_message(&*panic) }),
    });
    if let Err(e) = outcome {
        let mut slot = poison.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(Arc::new(e));
    }
}

impl crate::backend::Machine for CudaMachine {
    fn create_stream(&self, priority: i32, name: String) -> Result<u64> {
        crate::backend::refuse_in_host_work("Stream::new")?;
        let mut st = self.lock();
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
                seq: 0,
                events: VecDeque::new(),
                completed: 0,
                poison: Arc::default(),
                seen: HashMap::new(),
                name,
            },
        );
        Ok(id)
    }

    fn release_stream(&self, id: u64) {
        let mut st = self.lock();
        if let Some(raw) = st.streams.get_mut(&id).and_then(|s| s.raw.take()) {
            // SAFETY: queued work still completes after cuStreamDestroy; the events recorded on it stay valid.
            unsafe {
                sys::cuStreamDestroy_v2(raw);
            }
            st.released.push(id);
        }
        st.sweep_released();
    }

    fn submit(&self, stream: u64, op: &'static str, access: Access<'_>, work: Work) -> Result<Point> {
        crate::backend::refuse_in_host_work(op)?;
        let mut st = self.lock();
        if let Some(e) = self.poisoned(&st, stream) {
            return Err(e);
        }
        if let Some(poison) = access.poisoned_input(|p| st.streams.get(&p.stream).is_none_or(|s| p.seq <= s.completed))
        {
            return Err(poison.error());
        }
        let raw = self.raw(&st, stream)?;
        let dependencies = access.dependencies(stream);
        for &p in &dependencies {
            st.wait_for(stream, p, raw)?;
        }
        let next = Point { stream, seq: st.streams[&stream].seq + 1 };
        if let Some(race) = st.sanitizer.as_mut().and_then(|s| s.check_op(next, &access.buffers())) {
            return Err(Error::OpFailed { op: op.into(), message: format!("the race checker found {race}") });
        }
        match work {
            Work::Device(w) => w(&Launcher::new(self, raw))?,
            Work::Host(w) => {
                let poison = Arc::clone(&st.streams[&stream].poison);
                let data = Box::into_raw(Box::new(HostCall { work: w, op, poison })).cast::<c_void>();
                // SAFETY: `run_host_call` takes back ownership of `data` exactly once when it runs.
                let status = unsafe { sys::cuLaunchHostFunc(raw, Some(run_host_call), data) };
                if status != CUresult::CUDA_SUCCESS {
                    // SAFETY: the callback was not enqueued, so the box is still ours.
                    drop(unsafe { Box::from_raw(data.cast::<HostCall>()) });
                    check("cuLaunchHostFunc", status)?;
                }
            }
        }
        // Recycle this stream's completed events now and then, so a long run of submissions without any
        // synchronisation does not keep creating events.
        if st.streams[&stream].events.len() >= 64 {
            st.refresh(stream);
        }
        let point = self.record_point(&mut st, stream)?;
        debug_assert_eq!(point, next);
        // Tracing (`crate::trace`): the enqueue time and the hazard dependencies; no start/end times on CUDA yet.
        if crate::trace::enabled() {
            crate::trace::cuda_submitted(self.ordinal, stream, &st.streams[&stream].name, point.seq, op, &dependencies);
        }
        access.note(point, |p| st.streams.get(&p.stream).is_none_or(|s| p.seq <= s.completed));
        Ok(point)
    }

    fn record(&self, stream: u64, timed: bool) -> Result<(Point, Option<Stamp>)> {
        crate::backend::refuse_in_host_work("record")?;
        let mut st = self.lock();
        let stamp = if timed {
            let raw = self.raw(&st, stream)?;
            let mut ev: CUevent = std::ptr::null_mut();
            // SAFETY: out-parameter, then a live event and stream.
            unsafe {
                check("cuEventCreate", sys::cuEventCreate(&mut ev, 0))?;
                let timed = TimedEvent { event: ev, ctx: self.ctx };
                check("cuEventRecord", sys::cuEventRecord(ev, raw))?;
                Some(Stamp::Device(Arc::new(timed)))
            }
        } else {
            None
        };
        Ok((self.record_point(&mut st, stream)?, stamp))
    }

    fn wait(&self, stream: u64, p: Point) -> Result<()> {
        crate::backend::refuse_in_host_work("wait_event")?;
        let mut st = self.lock();
        let raw = self.raw(&st, stream)?;
        st.wait_for(stream, p, raw)
    }

    fn tail(&self, stream: u64) -> Point {
        let st = self.lock();
        Point { stream, seq: st.streams.get(&stream).map_or(0, |s| s.seq) }
    }

    fn is_complete(&self, p: Point) -> bool {
        let mut st = self.lock();
        st.refresh(p.stream);
        st.streams.get(&p.stream).is_none_or(|s| p.seq <= s.completed)
    }

    fn last_write(&self, log: &Mutex<AccessLog>) -> Option<Point> {
        let _st = self.lock();
        lock_log(log).last_write()
    }

    fn wait_host(&self, p: Point) -> Result<()> {
        crate::backend::refuse_in_host_work("synchronize")?;
        let ev = {
            let mut st = self.lock();
            if let Some(e) = self.poisoned(&st, p.stream) {
                return Err(e);
            }
            st.event_for(p)
        };
        if let Some(ev) = ev {
            // SAFETY: events are never destroyed while the machine lives, only recycled. If another thread sees
            // this one complete and re-records it before we get here, we wait for that later work too: longer
            // than needed, never shorter.
            check("cuEventSynchronize", unsafe { sys::cuEventSynchronize(ev) })?;
        }
        let st = self.lock();
        self.poisoned(&st, p.stream).map_or(Ok(()), Err)
    }

    fn synchronize(&self, stream: u64) -> Result<()> {
        crate::backend::refuse_in_host_work("synchronize")?;
        let raw = {
            let st = self.lock();
            st.streams.get(&stream).and_then(|s| s.raw)
        };
        if let Some(raw) = raw {
            // SAFETY: a live stream (released streams have no handle).
            check("cuStreamSynchronize", unsafe { sys::cuStreamSynchronize(raw) })?;
        }
        let mut st = self.lock();
        st.refresh(stream);
        self.poisoned(&st, stream).map_or(Ok(()), Err)
    }

    fn query(&self, stream: u64) -> bool {
        let st = self.lock();
        st.streams.get(&stream).and_then(|s| s.raw).is_none_or(|raw| {
            // SAFETY: a live stream.
            let status = unsafe { sys::cuStreamQuery(raw) };
            status == CUresult::CUDA_SUCCESS
        })
    }

    fn set_sanitize(&self, on: bool) {
        let mut st = self.lock();
        if on != st.sanitizer.is_some() {
            st.sanitizer = on.then(Sanitizer::default);
        }
    }

    fn clear_error(&self, stream: u64) -> Option<Error> {
        let st = self.lock();
        let s = st.streams.get(&stream)?;
        let cause = s.poison.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        Some((*cause).clone())
    }
}

/// Device memory of one tensor: freed stream-ordered, after its last accesses, when the tensor's storage drops.
pub(crate) struct DeviceBuffer {
    ptr: CUdeviceptr,
    bytes: usize,
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

    /// Frees the memory once the accesses at `points` have completed; called once, by the owning storage's
    /// `Drop`.
    pub(crate) fn free_after(&self, points: Vec<Point>) {
        self.machine.free_after(self.ptr, points);
    }
}

/// Whether the loaded driver is streamdsl's simulator (it exports `streamdsl_sim_version`).
fn on_simulator() -> bool {
    static SIM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: the driver library is loaded (a machine exists); looking a symbol up has no side effects.
    *SIM.get_or_init(|| unsafe { sys::culib().get::<unsafe extern "C" fn() -> u32>(b"streamdsl_sim_version").is_ok() })
}
