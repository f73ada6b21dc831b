//! Streams: an in-order queue each, executed by a thread of its own (started when work arrives, gone when
//! the stream has been idle a while), so different streams really run concurrently and a blocked host
//! function holds up only its own stream. Kernel blocks go to the shared worker pool (`exec::launch`),
//! where a higher-priority stream's blocks are dispatched first.
//!
//! A failed operation (a fault in a kernel, a checker report) poisons its stream: later operations are not
//! run (records complete with the error), and synchronisations on it return the error. Other streams
//! and new streams keep working.

use std::collections::{HashMap, VecDeque};
use std::ffi::c_void;
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cudarc::driver::sys::CUresult;

use super::config::config;
use super::memory::Pool;
use super::DResult;
use crate::check::alloc::Allocation;
use crate::check::race::{self, Clock};
use crate::check::report::Fault;

/// How a completed operation ended: its completion time, or the fault of its stream.
pub type Outcome = Result<Instant, Fault>;

/// A point of a stream that completes once: an event record, or a copy a caller waits for.
pub struct Signal {
    state: Mutex<Option<Outcome>>,
    cv: Condvar,
    /// The race checker's clock at this point.
    pub clock: Arc<Clock>,
    /// The stream it belongs to.
    pub stream: u64,
}

impl Signal {
    /// A pending signal.
    pub fn new(stream: u64, clock: Arc<Clock>) -> Arc<Signal> {
        Arc::new(Signal { state: Mutex::new(None), cv: Condvar::new(), clock, stream })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Outcome>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes it (once).
    pub fn complete(&self, o: Outcome) {
        let mut s = self.lock();
        if s.is_none() {
            *s = Some(o);
        }
        self.cv.notify_all();
    }

    /// Its outcome, if completed.
    pub fn peek(&self) -> Option<Outcome> {
        self.lock().clone()
    }

    /// Blocks until completed.
    pub fn wait(&self) -> Outcome {
        let mut s = self.lock();
        loop {
            if let Some(o) = s.as_ref() {
                return o.clone();
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What an operation does when its turn comes.
pub enum Work {
    /// A kernel launch.
    Kernel(Box<crate::exec::launch::Launch>),
    /// Host (staged copy) to device.
    HtoD { dst: u64, data: Vec<u8> },
    /// Device to host memory `dst`.
    DtoH { dst: usize, src: u64, bytes: usize },
    /// Device to device.
    DtoD { dst: u64, src: u64, bytes: usize },
    /// `cuMemsetD8Async`.
    Memset { dst: u64, value: u8, bytes: usize },
    /// A stream-ordered free.
    Free { alloc: Arc<Allocation>, pool: Arc<Pool> },
    /// `cuLaunchHostFunc`.
    Host { f: unsafe extern "C" fn(*mut c_void), data: usize, clock: Arc<Clock> },
    /// An event record.
    Record(Arc<Signal>),
    /// `cuStreamWaitEvent`: the record as of the call.
    Wait(Arc<Signal>),
    /// An operation a check refused: poisons the stream when reached.
    Fault(Fault),
    /// An operation with an injected fault (`check::inject`): fails with a report when reached.
    Injected(&'static str),
}

impl Work {
    /// What a kernel launch, copy or memset is, for an injected fault; `None` for other operations.
    fn faultable(&self) -> Option<&'static str> {
        Some(match self {
            Work::Kernel(_) => "kernel launch",
            Work::HtoD { .. } => "host-to-device copy",
            Work::DtoH { .. } => "device-to-host copy",
            Work::DtoD { .. } => "device-to-device copy",
            Work::Memset { .. } => "memset",
            _ => return None,
        })
    }
}

/// One queued operation.
pub struct Op {
    /// What it does.
    pub work: Work,
    /// Completed with the operation's outcome (for callers that wait for it).
    pub done: Option<Arc<Signal>>,
}

/// A CUDA stream.
pub struct Stream {
    /// Its handle (also its id in the race checker).
    pub id: u64,
    /// The device ordinal.
    pub device: usize,
    /// Its priority (lower is higher).
    pub priority: i32,
    /// `cuStreamCreate` flags.
    pub flags: u32,
    inner: Mutex<Inner>,
    cv: Condvar,
}

struct Inner {
    queue: VecDeque<Op>,
    worker: bool,
    enqueued: u64,
    completed: u64,
    poison: Option<Fault>,
    rng: u64,
}

/// The default (NULL) stream of `device`. It is an ordinary stream here: it does not synchronise
/// implicitly with other streams (streamdsl uses non-blocking streams only).
pub fn default_stream(device: usize) -> Arc<Stream> {
    static DEFAULTS: LazyLock<Mutex<HashMap<usize, Arc<Stream>>>> = LazyLock::new(Mutex::default);
    let mut d = DEFAULTS.lock().unwrap_or_else(|e| e.into_inner());
    Arc::clone(d.entry(device).or_insert_with(|| Stream::new(super::next_handle(), device, 0, 0)))
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Stream {
    /// A new stream.
    pub fn new(id: u64, device: usize, priority: i32, flags: u32) -> Arc<Stream> {
        let seed = config().seed.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        });
        let mut rng = seed ^ id.wrapping_mul(0x2545_F491_4F6C_DD1D);
        splitmix(&mut rng);
        Arc::new(Stream {
            id,
            device,
            priority,
            flags,
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                worker: false,
                enqueued: 0,
                completed: 0,
                poison: None,
                rng,
            }),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `stream #N (priority P)`, for reports.
    pub fn describe(&self) -> String {
        format!("stream 0x{:x} (priority {})", self.id, self.priority)
    }

    /// Appends an operation; starts the stream's thread if it has none.
    pub fn enqueue(self: &Arc<Self>, mut op: Op) -> DResult<()> {
        if let Some(what) = op.work.faultable() {
            if crate::check::inject::take_fault() {
                op.work = Work::Injected(what);
            }
        }
        let mut g = self.lock();
        g.queue.push_back(op);
        g.enqueued += 1;
        if !g.worker {
            let me = Arc::clone(self);
            let spawned = std::thread::Builder::new().name(format!("sim-stream-{:x}", self.id)).spawn(move || me.run());
            match spawned {
                Ok(_) => g.worker = true,
                Err(_) => {
                    g.queue.pop_back();
                    g.enqueued -= 1;
                    return Err(CUresult::CUDA_ERROR_OUT_OF_MEMORY);
                }
            }
        }
        self.cv.notify_all();
        Ok(())
    }

    fn run(self: Arc<Self>) {
        loop {
            let (op, poison, delay) = {
                let mut g = self.lock();
                loop {
                    if let Some(op) = g.queue.pop_front() {
                        let delay = if config().jitter { splitmix(&mut g.rng) % 300 } else { 0 };
                        break (op, g.poison.clone(), delay);
                    }
                    let (g2, to) =
                        self.cv.wait_timeout(g, Duration::from_millis(50)).unwrap_or_else(|e| e.into_inner());
                    g = g2;
                    if to.timed_out() && g.queue.is_empty() {
                        g.worker = false;
                        return;
                    }
                }
            };
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            let result = match poison {
                Some(p) => self.skip(op.work, p),
                None => self.execute(op.work),
            };
            if let Some(done) = op.done {
                done.complete(result.clone().map(|()| Instant::now()));
            }
            let mut g = self.lock();
            if let Err(f) = result {
                g.poison.get_or_insert(f);
            }
            g.completed += 1;
            self.cv.notify_all();
        }
    }

    /// An operation on a poisoned stream: not run; records complete with the stream's fault.
    fn skip(&self, work: Work, poison: Fault) -> Result<(), Fault> {
        if let Work::Record(s) = work {
            s.complete(Err(poison.clone()));
        }
        Err(poison)
    }

    fn execute(&self, work: Work) -> Result<(), Fault> {
        match work {
            Work::Kernel(launch) => crate::exec::launch::run(&launch, self),
            // Copies and memset: the device ranges were checked against live allocations when the operation
            // was enqueued, and a free of them cannot have run before (it would have been reported as a race
            // and not run, or the copy reported as a use after free); host ranges are the caller's contract,
            // as with the real driver.
            Work::HtoD { dst, data } => {
                // SAFETY: see above; `data` is ours.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
                Ok(())
            }
            Work::DtoH { dst, src, bytes } => {
                // SAFETY: see above; `dst` is writable for `bytes` (the caller's contract).
                unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, bytes) };
                Ok(())
            }
            Work::DtoD { dst, src, bytes } => {
                // SAFETY: see above; the ranges may overlap (a copy within one allocation): `copy` is memmove.
                unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
                Ok(())
            }
            Work::Memset { dst, value, bytes } => {
                // SAFETY: see above.
                unsafe { std::ptr::write_bytes(dst as *mut u8, value, bytes) };
                Ok(())
            }
            Work::Free { alloc, pool } => {
                alloc.unmap();
                pool.free_async(alloc.size);
                race::forget(alloc.id);
                Ok(())
            }
            Work::Host { f, data, clock } => {
                super::set_in_host_fn(true);
                // SAFETY: the caller of cuLaunchHostFunc handed us this function and its argument to call
                // once, in stream order.
                unsafe { f(data as *mut c_void) };
                super::set_in_host_fn(false);
                // Whatever the host function tells the host happened after the work before it.
                race::host_sync(&clock);
                Ok(())
            }
            Work::Record(s) => {
                s.complete(Ok(Instant::now()));
                Ok(())
            }
            Work::Wait(s) => {
                // A fault on the other stream does not poison this one (see the crate docs).
                let _ = s.wait();
                Ok(())
            }
            Work::Fault(f) => Err(f),
            Work::Injected(what) => Err(crate::check::report::report(
                CUresult::CUDA_ERROR_ILLEGAL_ADDRESS,
                format!("injected fault: the {what} on {} touched an illegal address", self.describe()),
            )),
        }
    }

    /// Blocks until the work enqueued so far has completed; the stream's fault, if any.
    pub fn synchronize(&self) -> Result<(), Fault> {
        let mut g = self.lock();
        let target = g.enqueued;
        while g.completed < target {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.poison.clone().map_or(Ok(()), Err)
    }

    /// `None` while work is pending; else the stream's state.
    pub fn query(&self) -> Option<Result<(), Fault>> {
        let g = self.lock();
        (g.completed >= g.enqueued).then(|| g.poison.clone().map_or(Ok(()), Err))
    }
}
