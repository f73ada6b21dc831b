//! Backends: the machines that run stream-ordered work, the memory they own and the kernels they launch.
//!
//! Everything above this module reaches a backend in two ways: the [`Machine`] trait for what every stream
//! machine does (streams, events, waits, submission), and [`Kernels`], the ops' kernels, which each op calls
//! through one exhaustive `match` on the stream's [`Queue`] after validating its operands once. No cudarc type
//! leaves `backend::cuda`; adding a backend means a `Backend`/`Queue` variant, a `Buffer` variant in
//! [`Storage`] and an implementation of both traits, and the compiler lists every op to extend.

pub(crate) mod cpu;
pub(crate) mod cuda;
pub(crate) mod custom;
pub(crate) mod host_pool;
mod storage;

use std::cell::Cell;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(crate) use custom::{Compute, KernelFloat};
pub(crate) use host_pool::release_all as release_host_cache;
pub(crate) use storage::Storage;

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::hazard::{AccessLog, Point, Poisoned, SharedLog};
use crate::runtime::ProcessWide;

/// Work run on the host by a stream's worker (CPU backend) or as a host callback (CUDA backend).
pub(crate) type HostWork = Box<dyn FnOnce() -> Result<()> + Send + 'static>;

/// What an op enqueues.
pub(crate) enum Work {
    /// Runs on the host, in queue order.
    Host(HostWork),
    /// Enqueues device work (kernel launches, copies) on a CUDA stream; runs when submitted.
    Device(cuda::DeviceWork),
}

/// The time an event completed: a host timestamp (CPU) or a timed CUDA event.
#[derive(Clone)]
pub(crate) enum Stamp {
    Host(Arc<OnceLock<Instant>>),
    Device(Arc<cuda::TimedEvent>),
}

/// The buffers an op reads and writes, by their access logs.
pub(crate) struct Access<'a> {
    pub reads: &'a [&'a SharedLog],
    pub writes: &'a [&'a SharedLog],
}

impl Access<'_> {
    /// The poison of an input whose contents are known to be garbage: its last write completed without
    /// running (`is_complete` says which points have). An input whose last write is still pending is checked
    /// again when the op runs.
    pub(crate) fn poisoned_input(&self, is_complete: impl Fn(Point) -> bool) -> Option<Poisoned> {
        self.reads.iter().find_map(|log| {
            let log = lock_log(log);
            let settled = log.last_write().is_none_or(&is_complete);
            log.poison().filter(|_| settled).cloned()
        })
    }

    /// Shared handles of the logs, for queued work that records its outcome in them when it completes.
    pub(crate) fn handles(&self) -> (Vec<SharedLog>, Vec<SharedLog>) {
        let own = |logs: &[&SharedLog]| logs.iter().map(|l| Arc::clone(l)).collect();
        (own(self.reads), own(self.writes))
    }

    /// The points an op on `stream` must wait for before making these accesses (see `crate::hazard`).
    pub(crate) fn dependencies(&self, stream: u64) -> Vec<Point> {
        let mut waits = Vec::new();
        for (log, write) in self.logs() {
            lock_log(log).dependencies(stream, write, |p| waits.push(p));
        }
        waits
    }

    /// Notes that the op at `point` made these accesses (`is_complete` lets reads that completed be forgotten).
    pub(crate) fn note(&self, point: Point, is_complete: impl Fn(Point) -> bool) {
        for (log, write) in self.logs() {
            let mut log = lock_log(log);
            if write {
                log.note_write(point);
            } else {
                log.note_read(point, &is_complete);
            }
        }
    }

    /// Every access, for the race checker: the buffer's id, whether it is a write, and its log (so the checker
    /// can tell when the buffer is gone).
    pub(crate) fn buffers(&self) -> Vec<crate::hazard::sanitizer::BufferAccess> {
        let reads = self.reads.iter().map(|l| (*l, false));
        reads
            .chain(self.writes.iter().map(|l| (*l, true)))
            .map(|(l, w)| (lock_log(l).id(), w, Arc::downgrade(l)))
            .collect()
    }

    fn logs(&self) -> impl Iterator<Item = (&Mutex<AccessLog>, bool)> {
        self.reads.iter().map(|l| (&***l, false)).chain(self.writes.iter().map(|l| (&***l, true)))
    }
}

thread_local! {
    static IN_HOST_WORK: Cell<bool> = const { Cell::new(false) };
}

/// Reads, or sets and reads, this thread's in-host-work flag through the first copy of the crate's
/// thread-local (thread-locals cannot be shared by address across copies).
struct HostWorkFlag(fn(Option<bool>) -> bool);

/// Whether this thread runs host work (a CPU worker's task or a CUDA host callback): one flag per thread for
/// every copy of the crate.
static HOST_WORK: ProcessWide<HostWorkFlag> = ProcessWide::new("backend.host_work", || HostWorkFlag(this_copys_flag));

fn this_copys_flag(set: Option<bool>) -> bool {
    IN_HOST_WORK.with(|flag| {
        if let Some(v) = set {
            flag.set(v);
        }
        flag.get()
    })
}

/// Whether this thread is running host work, where calls into a stream machine are refused.
pub(crate) fn in_host_work() -> bool {
    (HOST_WORK.get().0)(None)
}

/// `Err(Error::InHostFunction)` inside host work: machines call this first in every call that waits or enqueues.
pub(crate) fn refuse_in_host_work(op: &'static str) -> Result<()> {
    if in_host_work() {
        Err(Error::InHostFunction { op })
    } else {
        Ok(())
    }
}

/// Runs `f` as host work: calls into a machine from inside it are refused (see [`refuse_in_host_work`]).
pub(crate) fn run_as_host_work<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            (HOST_WORK.get().0)(Some(false));
        }
    }
    (HOST_WORK.get().0)(Some(true));
    let _reset = Reset;
    f()
}

/// Locks an access log; they are only touched under a machine's lock, so a poisoned one is still consistent.
pub(crate) fn lock_log(log: &Mutex<AccessLog>) -> std::sync::MutexGuard<'_, AccessLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// The message of a caught panic, for the error that poisons the stream it happened on.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_string()
    }
}

/// A stream machine: streams, their queues, events, and the cross-stream ordering of buffer accesses.
pub(crate) trait Machine: Send + Sync + 'static {
    /// A new stream; `priority` is validated (≤ 0) and clamped by the machine.
    fn create_stream(&self, priority: i32, name: String) -> Result<u64>;
    /// The handle is gone: queued work still runs.
    fn release_stream(&self, id: u64);
    /// Enqueues `work` behind the waits `access` needs, and notes the accesses.
    fn submit(&self, stream: u64, op: &'static str, access: Access<'_>, work: Work) -> Result<Point>;
    /// Enqueues an event record; a timed record also returns the stamp `elapsed_time` reads.
    fn record(&self, stream: u64, timed: bool) -> Result<(Point, Option<Stamp>)>;
    /// Later work on `stream` waits for `p`; does not block the host.
    fn wait(&self, stream: u64, p: Point) -> Result<()>;
    /// The point covering everything submitted to `stream` so far.
    fn tail(&self, stream: u64) -> Point;
    /// Whether `p` has completed; never blocks.
    fn is_complete(&self, p: Point) -> bool;
    /// The last write noted in `log`, read consistently with `submit`.
    fn last_write(&self, log: &Mutex<AccessLog>) -> Option<Point>;
    /// Blocks until `p` has completed; the error of a failure at or before it comes back.
    fn wait_host(&self, p: Point) -> Result<()>;
    /// Blocks until `stream` drains; reports its poison.
    fn synchronize(&self, stream: u64) -> Result<()>;
    /// Whether everything submitted to `stream` has completed.
    fn query(&self, stream: u64) -> bool;
    /// Ends a poisoned state; the error that caused it.
    fn clear_error(&self, stream: u64) -> Option<crate::error::Error>;
    /// Switches the vector-clock race checker on (fresh) or off.
    fn set_sanitize(&self, on: bool);
}

/// A device's stream machine, by backend.
#[derive(Clone)]
pub(crate) enum Backend {
    Cpu(Arc<cpu::Machine>),
    Cuda(Arc<cuda::CudaMachine>),
}

impl Backend {
    /// The machine, for what every backend does alike.
    pub(crate) fn machine(&self) -> &dyn Machine {
        match self {
            Backend::Cpu(m) => &**m,
            Backend::Cuda(m) => &**m,
        }
    }

    /// Stream `stream` of this machine, for enqueueing kernels.
    pub(crate) fn queue(&self, stream: u64) -> Queue<'_> {
        match self {
            Backend::Cpu(machine) => Queue::Cpu(cpu::Queue { machine, stream }),
            Backend::Cuda(machine) => Queue::Cuda(cuda::Queue { machine, stream }),
        }
    }
}

/// One stream of one backend: what each op matches on to reach that backend's [`Kernels`].
pub(crate) enum Queue<'a> {
    Cpu(cpu::Queue<'a>),
    Cuda(cuda::Queue<'a>),
}

/// A binary elementwise operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    #[inline(always)]
    pub(crate) fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }
}

/// The shape of one batched matrix product: `batch` products of `m×k` by `k×n`. An operand whose
/// batch stride is 0 is shared by every product.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatmulDims {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_batch_stride: usize,
    pub b_batch_stride: usize,
}

/// A tensor's data as a kernel sees it: its storage and shape (row-major, contiguous).
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a, T> {
    pub storage: &'a Arc<Storage<T>>,
    pub shape: &'a [usize],
}

/// The kernels every backend provides. An op validates its operands (shapes, devices) once, allocates its
/// output with [`Kernels::alloc`], then calls one of these through a `match` on the stream's [`Queue`];
/// each enqueues on that stream with the op's reads and writes, so cross-stream ordering and stream-ordered
/// frees are the machine's job. Operands are on this backend (the op checked their devices).
pub(crate) trait Kernels {
    /// Memory for `len` elements of an op's output, ordered on this stream; its contents are unspecified until
    /// the op writes them.
    fn alloc<T: Element>(&self, len: usize) -> Result<Storage<T>>;
    /// `out[i] = value`.
    fn fill<T: Element>(&self, out: &Arc<Storage<T>>, value: T) -> Result<()>;
    /// `out[i] = 0`, for an output straight from [`Kernels::alloc`] (no write where that gave fresh zeroed
    /// memory).
    fn zero<T: Element>(&self, out: &Arc<Storage<T>>) -> Result<()>;
    /// Standard normals from Philox4x32-10 at `(seed, offset)`.
    fn randn<T: Element>(&self, out: &Arc<Storage<T>>, seed: u64, offset: u64) -> Result<()>;
    /// `out = a ∘ b` with NumPy broadcasting to `out.shape`.
    fn binary<T: Element>(&self, op: BinaryOp, a: Operand<'_, T>, b: Operand<'_, T>, out: Operand<'_, T>)
        -> Result<()>;
    /// `out = a ∘ value`.
    fn scalar<T: Element>(&self, op: BinaryOp, a: &Arc<Storage<T>>, value: f64, out: &Arc<Storage<T>>) -> Result<()>;
    /// `dst = src` (distinct buffers of one length).
    fn copy<T: Element>(&self, src: &Arc<Storage<T>>, dst: &Arc<Storage<T>>) -> Result<()>;
    /// `out[i] = U::from(a[i])`, rounding once.
    fn convert<T: Element, U: Element>(&self, a: &Arc<Storage<T>>, out: &Arc<Storage<U>>) -> Result<()>;
    /// `out[0] = scale · Σ a`, deterministically.
    fn sum<T: Element>(&self, op: &'static str, a: &Arc<Storage<T>>, scale: f64, out: &Arc<Storage<T>>) -> Result<()>;
    /// Whether this backend can run an `mm` of `dims` (asked before the output is allocated, so a refusal
    /// leaves no buffer behind; `mm` checks again).
    fn mm_ready<T: Element>(&self, _dims: MatmulDims) -> Result<()> {
        Ok(())
    }
    /// `out = a · b` for row-major operands of `dims`.
    fn mm<T: Element>(
        &self,
        a: &Arc<Storage<T>>,
        b: &Arc<Storage<T>>,
        out: &Arc<Storage<T>>,
        dims: MatmulDims,
    ) -> Result<()>;
    /// Copies host `data` into `out` (of the same length), in order on this stream.
    fn upload<T: Element>(&self, data: Vec<T>, out: &Arc<Storage<T>>) -> Result<()>;
    /// The contents of `src` on the host, once the work that writes it has completed (blocks).
    fn download<T: Element>(&self, src: &Arc<Storage<T>>) -> Result<Vec<T>>;
    /// The raw Philox words of `groups` counters (blocks until computed).
    fn philox_bits(&self, groups: usize, seed: u64, offset: u64) -> Result<Vec<u32>>;
    /// Holds the stream busy for `duration`, touching no buffer (test support); on a GPU with `blocks` blocks.
    fn busy(&self, duration: Duration, blocks: u32) -> Result<()>;
    /// A `#[kernel]` elementwise kernel: the CPU backend runs `cpu`, the CUDA backend the generated CUDA C.
    fn custom_elementwise<T: Element, K: custom::ElementwiseCpu<T>>(
        &self,
        launch: custom::ElementwiseLaunch<'_, T>,
        cpu: K,
    ) -> Result<()>;
    /// A `#[kernel(grid)]` kernel: the CPU backend runs `cpu` per block, the CUDA backend the generated CUDA C.
    fn custom_grid(&self, launch: custom::GridLaunchDesc<'_>, cpu: custom::GridCpu) -> Result<()>;
}
