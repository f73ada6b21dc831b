//! Support for the code `gpu_scope!` generates, and for the test suite. Not public API: names here may change
//! at any time.

use std::time::Duration;

use crate::backend::{Kernels, Queue};
use crate::error::Result;
use crate::scope::StreamGuard;
use crate::stream::Stream;

pub use streamdsl_macros::{check_rewrite_targets, gpu_scope};

/// What `gpu_scope!(stream = EXPR, ..)` accepts: a `Stream` or a reference to one.
#[diagnostic::on_unimplemented(
    message = "expected a streamdsl `Stream`, found `{Self}`",
    label = "this is not a `Stream`",
    note = "`gpu_scope!(stream = s, {{ ... }})` takes a `streamdsl::Stream` or a `&Stream`, e.g. `Stream::new(&dev)?`"
)]
pub trait AsStream {
    /// The stream.
    fn as_stream(&self) -> &Stream;
}

impl AsStream for Stream {
    fn as_stream(&self) -> &Stream {
        self
    }
}

impl<S: AsStream + ?Sized> AsStream for &S {
    fn as_stream(&self) -> &Stream {
        (**self).as_stream()
    }
}

/// The stream of `gpu_scope!`'s `stream = EXPR`.
pub fn as_stream<S: AsStream + ?Sized>(s: &S) -> &Stream {
    s.as_stream()
}

/// Makes `stream` current until the guard drops.
pub fn enter(stream: &Stream) -> StreamGuard<'_> {
    stream.scope()
}

/// Test support: holds `stream` busy for `duration`, touching no tensor. On CUDA, a kernel of `blocks`
/// one-warp blocks that each spin on the GPU's global timer (so many blocks fill the device); on the CPU
/// backend, one host sleep. Lets one test body check overlap and priorities on every backend.
pub fn busy_on(stream: &Stream, duration: Duration, blocks: u32) -> Result<()> {
    match stream.queue() {
        Queue::Cpu(q) => q.busy(duration, blocks),
        Queue::Cuda(q) => q.busy(duration, blocks),
    }
}

/// Test support: the environment variable through which copies of the crate inside evcxr find the process's
/// runtime (see `runtime.rs`).
pub fn runtime_variable() -> String {
    crate::runtime::variable()
}

/// Test support: live entries of the CPU machine's bookkeeping: `[streams, registered waiters, largest map of
/// points a stream already waited for, race checker entries]`. Tests of long runs check that these stay bounded.
pub fn cpu_bookkeeping() -> [usize; 4] {
    crate::backend::cpu::machine().bookkeeping()
}

/// Test support: how many points a tensor's access log holds (its last write and the reads since).
pub fn access_log_entries<T: crate::dtype::Element>(t: &crate::tensor::Tensor<T>) -> usize {
    crate::backend::lock_log(&t.storage.log).points().len()
}

/// Test support for the CUDA machine (`tests/cuda_machine.rs`): its internals, and the simulated driver's
/// fault injection. Everything here is `None`/`false` where it does not apply (a CPU device, a real driver).
pub mod cuda {
    use std::time::Duration;

    use crate::backend::cuda::driver::{self, sim};
    use crate::backend::Backend;
    use crate::device::Device;
    use crate::error::Result;

    fn machine(dev: &Device) -> Option<std::sync::Arc<crate::backend::cuda::CudaMachine>> {
        match dev.backend().ok()? {
            Backend::Cuda(m) => Some(m),
            Backend::Cpu(_) => None,
        }
    }

    /// Waits for the stream the machine frees dropped buffers on: `Err` with the driver's error if a free
    /// there failed (on the simulator, a free not ordered after every use of its buffer is reported and
    /// poisons that stream).
    pub fn free_stream_status(dev: &Device) -> Option<Result<()>> {
        machine(dev).map(|m| m.free_stream_status())
    }

    /// How many buffers the machine leaked (with a warning) because a driver call needed to free them safely
    /// failed.
    pub fn leaked_frees(dev: &Device) -> Option<usize> {
        machine(dev).map(|m| m.leaked_frees())
    }

    /// Tracing's timed events (start and end of traced ops): `[idle, pending pairs, anchors]`.
    pub fn trace_timing(dev: &Device) -> Option<[usize; 3]> {
        machine(dev).map(|m| m.trace_timing())
    }

    /// The machine's pooled events: `[idle, pinned by a host waiter]`.
    pub fn event_pool(dev: &Device) -> Option<[usize; 2]> {
        machine(dev).map(|m| m.event_pool())
    }

    /// Makes this thread's next host waits (`synchronize`, `to_vec`, `Event::synchronize`) sleep for
    /// `delay` after choosing the event to wait on and before waiting on it: widens the window in which
    /// other threads may recycle that event.
    pub fn delay_host_waits_on_this_thread(delay: Duration) {
        crate::backend::cuda::delay_host_waits(delay);
    }

    /// Whether any CUDA context is current on this thread.
    pub fn context_is_current() -> bool {
        driver::context_is_current()
    }

    /// Whether the loaded driver is the simulator.
    pub fn on_simulator() -> bool {
        sim::present()
    }

    /// On the simulator: the next call of driver function `name` (without `_v2`) on this thread returns error
    /// `code` (a `CUresult` value, e.g. 400 for `CUDA_ERROR_INVALID_HANDLE`).
    pub fn sim_fail_next(name: &str, code: i32) -> bool {
        sim::fail_next(name, code)
    }

    /// On the simulator: the next kernel launch, copy or memset this thread enqueues faults when it runs
    /// (`CUDA_ERROR_ILLEGAL_ADDRESS`), poisoning its stream.
    pub fn sim_fault_next() -> bool {
        sim::fault_next()
    }

    /// On the simulator: how many reports with error `code` were made so far (negative: every report).
    pub fn sim_report_count(code: i32) -> Option<u64> {
        sim::report_count(code)
    }

    /// On the simulator: the last report.
    pub fn sim_last_report() -> Option<String> {
        sim::last_report()
    }
}
