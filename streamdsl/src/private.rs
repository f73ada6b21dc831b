//! Support for the code `gpu_scope!` generates, and for the test suite. Not public API: names here may change
//! at any time.

use std::time::Duration;

use crate::error::Result;
use crate::scope::StreamGuard;
use crate::stream::Stream;

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
    if stream.device().is_cuda() {
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        crate::ops::cuda::busy(stream, ns, blocks.max(1))
    } else {
        stream.launch_host_func(move || std::thread::sleep(duration));
        Ok(())
    }
}
