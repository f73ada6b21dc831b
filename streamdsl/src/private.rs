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
