//! Support for the code `gpu_scope!` generates. Not public API: names here may change at any time.

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
