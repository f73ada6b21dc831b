//! Running a launch: its blocks are handed out in chunks to a pool of worker threads (the "SMs"); the
//! launch of the highest-priority stream that still has blocks is served first (ties: the earlier launch).
//! Each worker runs a chunk through the module's block runner (every thread a fiber). A fault, deadlock or
//! trap in any block fails the launch: the remaining blocks are skipped and a report names the kernel, the
//! stream, the block and thread, and the allocation.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};

use cudarc::driver::sys::CUresult;

use super::abi::{Dim3, SimLaunch, SimOutcome, SIM_DEADLOCK, SIM_FAULT, SIM_OK};
use super::module::Function;
use super::stacks::{self, Stacks, STACK_SIZE};
use crate::check::report::{report, Fault};
use crate::check::{alloc, fault};
use crate::driver::config::config;
use crate::driver::Stream;

/// A launch, with its own copies of the arguments (taken when it was enqueued, as the driver does).
pub struct Launch {
    /// The kernel.
    pub function: Arc<Function>,
    /// Grid size.
    pub grid: Dim3,
    /// Block size.
    pub block: Dim3,
    storage: Vec<Vec<u64>>,
    pointers: Vec<*mut c_void>,
    /// `kernel `name`` for reports.
    pub what: String,
}

// SAFETY: `pointers` point into `storage`, owned by the launch; nothing else aliases them.
unsafe impl Send for Launch {}
// SAFETY: the block runners only read the arguments.
unsafe impl Sync for Launch {}

impl Launch {
    /// A launch of `function` whose argument `i` is the `size` bytes at `args[i]`.
    ///
    /// # Safety
    /// `args` must hold one readable pointer per parameter of `function`, each to a value of that
    /// parameter's size.
    pub unsafe fn new(
        function: Arc<Function>,
        grid: Dim3,
        block: Dim3,
        args: &[*const c_void],
        what: String,
    ) -> Launch {
        let mut storage: Vec<Vec<u64>> = Vec::with_capacity(args.len());
        for (p, &src) in function.params.iter().zip(args) {
            let mut buf = vec![0u64; p.size.div_ceil(8).max(1)];
            // SAFETY: per the contract, `src` is readable for `p.size` bytes; `buf` holds at least that many.
            unsafe { std::ptr::copy_nonoverlapping(src.cast::<u8>(), buf.as_mut_ptr().cast::<u8>(), p.size) };
            storage.push(buf);
        }
        let pointers = storage.iter_mut().map(|b| b.as_mut_ptr().cast::<c_void>()).collect();
        Launch { function, grid, block, storage, pointers, what }
    }

    /// The value of pointer parameter `i` (all parameters are copied into 8-byte-aligned buffers).
    pub fn pointer_arg(&self, i: usize) -> Option<u64> {
        self.storage.get(i).and_then(|b| b.first().copied())
    }

    fn total_blocks(&self) -> u64 {
        u64::from(self.grid.x) * u64::from(self.grid.y) * u64::from(self.grid.z)
    }

    fn threads(&self) -> usize {
        (self.block.x * self.block.y * self.block.z) as usize
    }
}

struct Active {
    id: u64,
    priority: i32,
    launch: usize,
    next: u64,
    total: u64,
    chunk: u64,
    outstanding: u32,
    abort: Arc<AtomicI32>,
    fault: Option<Fault>,
    done: bool,
    stream: String,
}

#[derive(Default)]
struct PoolState {
    active: Vec<Active>,
    next_id: u64,
    workers: usize,
}

struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
    done: Condvar,
}

static POOL: LazyLock<Pool> =
    LazyLock::new(|| Pool { state: Mutex::default(), work: Condvar::new(), done: Condvar::new() });

fn lock() -> MutexGuard<'static, PoolState> {
    POOL.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `launch` to completion on the worker pool (called by `stream`'s thread, in stream order).
pub fn run(launch: &Launch, stream: &Stream) -> Result<(), Fault> {
    let total = launch.total_blocks();
    if total == 0 {
        return Ok(());
    }
    let workers = config().workers;
    let id = {
        let mut st = lock();
        while st.workers < workers {
            let spawned = std::thread::Builder::new().name(format!("sim-sm-{}", st.workers)).spawn(worker);
            if spawned.is_err() {
                break;
            }
            st.workers += 1;
        }
        if st.workers == 0 {
            return Err(report(CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "no worker thread could start".into()));
        }
        st.next_id += 1;
        let id = st.next_id;
        let chunk = (total / (st.workers as u64 * 8)).clamp(1, 64);
        st.active.push(Active {
            id,
            priority: stream.priority,
            launch: launch as *const Launch as usize,
            next: 0,
            total,
            chunk,
            outstanding: 0,
            abort: Arc::new(AtomicI32::new(0)),
            fault: None,
            done: false,
            stream: stream.describe(),
        });
        id
    };
    POOL.work.notify_all();
    let mut st = lock();
    loop {
        if let Some(pos) = st.active.iter().position(|a| a.id == id && a.done) {
            let a = st.active.remove(pos);
            return a.fault.map_or(Ok(()), Err);
        }
        st = POOL.done.wait(st).unwrap_or_else(|e| e.into_inner());
    }
}

fn worker() {
    fault::ensure_altstack();
    let mut stacks = Stacks::default();
    loop {
        let (id, launch_addr, first, end, abort, stream) = {
            let mut st = lock();
            loop {
                let pick = st
                    .active
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| !a.done && a.next < a.total && a.abort.load(Ordering::SeqCst) == 0)
                    .min_by_key(|(_, a)| (a.priority, a.id))
                    .map(|(i, _)| i);
                if let Some(i) = pick {
                    let a = &mut st.active[i];
                    let first = a.next;
                    let end = (a.next + a.chunk).min(a.total);
                    a.next = end;
                    a.outstanding += 1;
                    break (a.id, a.launch, first, end, Arc::clone(&a.abort), a.stream.clone());
                }
                st = POOL.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        // SAFETY: the launch lives in the stream thread that waits in `run` until this launch is done, which
        // needs this chunk to finish first.
        let launch = unsafe { &*(launch_addr as *const Launch) };
        let result = run_chunk(launch, &mut stacks, first, end, &abort, &stream);
        let mut st = lock();
        if let Some(a) = st.active.iter_mut().find(|a| a.id == id) {
            a.outstanding -= 1;
            if let Err(f) = result {
                a.abort.store(1, Ordering::SeqCst);
                a.fault.get_or_insert(f);
            }
            if a.outstanding == 0 && (a.next >= a.total || a.abort.load(Ordering::SeqCst) != 0) {
                a.done = true;
                POOL.done.notify_all();
            }
        }
    }
}

/// The global timer: nanoseconds since the first use in this process.
extern "C" fn now_ns() -> u64 {
    static START: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    u64::try_from(START.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

extern "C" fn sleep_ns(ns: u64) {
    if ns < 1000 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_nanos(ns));
    }
}

fn run_chunk(
    launch: &Launch,
    stacks: &mut Stacks,
    first: u64,
    end: u64,
    abort: &AtomicI32,
    stream: &str,
) -> Result<(), Fault> {
    if !stacks.ensure(launch.threads()) {
        return Err(report(
            CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
            format!("{} on {stream}: out of memory for {} fiber stacks", launch.what, launch.threads()),
        ));
    }
    let sl = SimLaunch {
        params: launch.pointers.as_ptr(),
        grid: launch.grid,
        block: launch.block,
        stacks: stacks.as_ptr(),
        stack_size: STACK_SIZE,
        arm: fault::arm,
        disarm: fault::disarm,
        abort: abort.as_ptr().cast_const().cast::<c_int>(),
        now_ns,
        sleep_ns,
    };
    let mut out = SimOutcome { status: SIM_OK, block: Dim3::default(), thread: Dim3::default(), message: [0; 1024] };
    // SAFETY: `sl` follows the ABI: one pointer per parameter, enough stacks for a block, live callbacks;
    // `out` is writable. Faults in kernel code come back through the armed handler as SIM_FAULT.
    let status = unsafe { (launch.function.run)(&sl, first, end, &mut out) };
    if status == SIM_OK {
        return Ok(());
    }
    // SAFETY: the runner wrote a NUL-terminated message (vsnprintf), or left the zeroed buffer.
    let message = unsafe { CStr::from_ptr(out.message.as_ptr()) }.to_string_lossy().into_owned();
    let (b, t) = (out.block, out.thread);
    let place = format!("block ({},{},{}) thread ({},{},{})", b.x, b.y, b.z, t.x, t.y, t.z);
    let (code, text) = match status {
        SIM_FAULT => {
            let (addr, write) = fault::take_fault().unwrap_or((0, false));
            let what = if stacks::is_guard(addr) {
                format!("stack overflow of a kernel thread (fiber stacks are {} KiB)", STACK_SIZE / 1024)
            } else {
                alloc::describe_address(addr as u64)
            };
            let access = if cfg!(target_arch = "x86_64") {
                if write {
                    "invalid write"
                } else {
                    "invalid read"
                }
            } else {
                "invalid access"
            };
            (CUresult::CUDA_ERROR_ILLEGAL_ADDRESS, format!("{access} by {} on {stream}, {place}: {what}", launch.what))
        }
        SIM_DEADLOCK => {
            (CUresult::CUDA_ERROR_LAUNCH_FAILED, format!("{} on {stream}, {place}: {message}", launch.what))
        }
        _ => {
            let code = if message.contains("assertion") {
                CUresult::CUDA_ERROR_ASSERT
            } else {
                CUresult::CUDA_ERROR_ILLEGAL_INSTRUCTION
            };
            (code, format!("{} on {stream}, {place}: {message}", launch.what))
        }
    };
    Err(report(code, text))
}
