//! The per-thread current stream and the guard that sets it.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::device::Device;
use crate::runtime::ProcessWide;
use crate::stream::Stream;

/// A thread's stack of scoped streams, innermost last.
type StreamStack = RefCell<Vec<Stream>>;

thread_local! {
    static CURRENT: StreamStack = const { RefCell::new(Vec::new()) };
}

/// Runs a closure with this thread's [`StreamStack`]; false during thread teardown, when it is gone.
type WithStack = fn(&mut dyn FnMut(&StreamStack)) -> bool;

/// The first copy of the crate's [`WithStack`]: thread-locals cannot be shared by address, so every copy
/// reaches the thread's stack through that copy's accessor.
struct StackAccess(WithStack);

static STACK: ProcessWide<StackAccess> = ProcessWide::new("scope.current_stack", || StackAccess(this_copys_stack));

fn this_copys_stack(f: &mut dyn FnMut(&StreamStack)) -> bool {
    CURRENT.try_with(|c| f(c)).is_ok()
}

/// Runs `f` with this thread's stack of scoped streams (one per thread for every copy of the crate); `None`
/// during thread teardown, when it is gone.
fn with_stack<R>(f: impl FnOnce(&StreamStack) -> R) -> Option<R> {
    let (mut f, mut out) = (Some(f), None);
    (STACK.get().0)(&mut |stack| {
        if let Some(f) = f.take() {
            out = Some(f(stack));
        }
    });
    out
}

impl Stream {
    /// The current stream of this thread for `device`: the innermost [`scope`](Stream::scope) (or
    /// `gpu_scope!`) on that device, else the device's default stream. Like `torch.cuda.current_stream`.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// let s = Stream::new(&dev)?;
    /// {
    ///     let _guard = s.scope();
    ///     assert_eq!(Stream::current(&dev), s);
    /// }
    /// assert_eq!(Stream::current(&dev), dev.default_stream());
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn current(device: &Device) -> Stream {
        current_on(device).unwrap_or_else(|| device.default_stream())
    }

    /// Makes this stream the thread's current stream until the guard is dropped, like
    /// `with torch.cuda.stream(s):`. The previous stream comes back on every exit path, panics included.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let s = Stream::new(&Device::cpu())?;
    /// let t = {
    ///     let _guard = s.scope();
    ///     zeros::<f32>([4])?       // runs on `s`
    /// };
    /// assert_eq!(t.to_vec()?, vec![0.0; 4]);
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn scope(&self) -> StreamGuard<'_> {
        StreamGuard::enter(self)
    }
}

/// Makes a stream the thread's current stream while it lives; see [`Stream::scope`].
///
/// The guard restores the previous current stream when dropped, on every exit path including a panic.
/// It is neither `Send` nor `Sync`: the current stream is per thread, so the guard cannot leave it.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let (a, b) = (Stream::new(&dev)?, Stream::new(&dev)?);
/// let _outer = a.scope();
/// {
///     let _inner = b.scope();
///     assert_eq!(Stream::current(&dev), b); // the inner scope wins
/// }
/// assert_eq!(Stream::current(&dev), a);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[must_use = "the stream is current only while the guard lives; bind it with `let _guard = ...`"]
pub struct StreamGuard<'a> {
    depth: usize,
    _stream: PhantomData<&'a Stream>,
    _not_send: CurrentStreamIsPerThread,
}

/// Makes the guard neither `Send` nor `Sync`. Our own type (not a `PhantomData`), so that the compiler's
/// "cannot be sent between threads" note names the reason and points here, not into the standard library.
struct CurrentStreamIsPerThread(#[allow(dead_code)] *const ());

impl<'a> StreamGuard<'a> {
    fn enter(stream: &'a Stream) -> StreamGuard<'a> {
        let depth = with_stack(|c| {
            let mut c = c.borrow_mut();
            c.push(stream.clone());
            c.len() - 1
        })
        // The stack is gone only while the thread is being torn down; nothing runs scoped then.
        .unwrap_or(usize::MAX);
        StreamGuard { depth, _stream: PhantomData, _not_send: CurrentStreamIsPerThread(std::ptr::null()) }
    }
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        // Truncating (not popping) also restores the right stream when guards are dropped out of order.
        // During thread teardown the stack may already be gone; nothing to restore then.
        let _ = with_stack(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.truncate(self.depth);
            }
        });
    }
}

/// The innermost scoped stream on `device`, if any.
fn current_on(device: &Device) -> Option<Stream> {
    with_stack(|c| c.borrow().iter().rev().find(|s| s.device() == *device).cloned()).flatten()
}

/// The stream that device-less ops (such as `randn`) use: the innermost scoped stream, else the default
/// device's default stream.
pub(crate) fn current_stream() -> Stream {
    with_stack(|c| c.borrow().last().cloned()).flatten().unwrap_or_else(|| Device::default().default_stream())
}
