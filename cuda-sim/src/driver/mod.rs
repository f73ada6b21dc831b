//! Driver objects and their CUDA semantics: devices, primary contexts, streams (each executing its queue in
//! order on a thread of its own), events, stream-ordered pools. Handles given to callers are numbers looked
//! up in a registry, so a stale or foreign handle is `CUDA_ERROR_INVALID_HANDLE`, never a dangling pointer.

pub mod config;
pub mod device;
pub mod event;
pub mod memory;
pub mod stream;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use cudarc::driver::sys::CUresult;

pub use event::Event;
pub use memory::Pool;
pub use stream::{Signal, Stream};

/// Driver-layer result: a CUDA status on error.
pub type DResult<T> = Result<T, CUresult>;

static INITIALIZED: AtomicBool = AtomicBool::new(false);
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(0x5100_0000);

thread_local! {
    /// This thread's context stack (device ordinals), the current context last.
    static CONTEXTS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    static IN_HOST_FN: Cell<bool> = const { Cell::new(false) };
}

/// A new handle value, unique in the process.
pub fn next_handle() -> u64 {
    NEXT_HANDLE.fetch_add(16, Ordering::Relaxed)
}

/// `cuInit`.
pub fn init() {
    let _ = contexts();
    crate::check::fault::install();
    INITIALIZED.store(true, Ordering::SeqCst);
}

/// Whether `cuInit` succeeded.
pub fn initialized() -> bool {
    INITIALIZED.load(Ordering::SeqCst)
}

/// A device's primary context.
pub struct Context {
    /// The device ordinal.
    pub device: usize,
    /// `cuDevicePrimaryCtxRetain` count.
    pub retained: AtomicU32,
    /// The device's default memory pool.
    pub pool: Arc<Pool>,
}

/// The handle value of device `ordinal`'s primary context.
pub fn context_handle(ordinal: usize) -> u64 {
    0x5000_0000 + 16 * ordinal as u64
}

/// Every device's primary context.
pub fn contexts() -> &'static [Context] {
    static CTX: LazyLock<Vec<Context>> = LazyLock::new(|| {
        let cfg = config::config();
        (0..cfg.devices)
            .map(|d| Context { device: d, retained: AtomicU32::new(0), pool: Arc::new(Pool::new(d, cfg.memory)) })
            .collect()
    });
    &CTX
}

/// The context a handle names.
pub fn context_of(handle: u64) -> Option<&'static Context> {
    let base = context_handle(0);
    if handle < base || !(handle - base).is_multiple_of(16) {
        return None;
    }
    contexts().get(((handle - base) / 16) as usize)
}

/// This thread's current context (device ordinal).
pub fn current() -> DResult<&'static Context> {
    current_device().and_then(|d| contexts().get(d)).ok_or(CUresult::CUDA_ERROR_INVALID_CONTEXT)
}

/// `cuCtxSetCurrent`: replaces the top of this thread's context stack with device `ordinal`'s context (pushes
/// it onto an empty stack); `None` pops the top (nothing when the stack is empty), as CUDA does.
pub fn set_current(ordinal: Option<usize>) {
    CONTEXTS.with(|c| {
        let mut stack = c.borrow_mut();
        match ordinal {
            Some(d) => match stack.last_mut() {
                Some(top) => *top = d,
                None => stack.push(d),
            },
            None => {
                stack.pop();
            }
        }
    });
}

/// `cuCtxPushCurrent`: device `ordinal`'s context becomes current; the previous one stays below it.
pub fn push_current(ordinal: usize) {
    CONTEXTS.with(|c| c.borrow_mut().push(ordinal));
}

/// `cuCtxPopCurrent`: removes the current context (returned) from this thread's stack; the one below, if
/// any, becomes current.
pub fn pop_current() -> Option<usize> {
    CONTEXTS.with(|c| c.borrow_mut().pop())
}

/// The current context's device, if any (no error).
pub fn current_device() -> Option<usize> {
    CONTEXTS.with(|c| c.borrow().last().copied())
}

/// Whether this thread is running a host function (`cuLaunchHostFunc`), where driver calls are forbidden.
pub fn in_host_fn() -> bool {
    IN_HOST_FN.with(|c| c.get())
}

pub(crate) fn set_in_host_fn(on: bool) {
    IN_HOST_FN.with(|c| c.set(on));
}

/// The handle tables.
#[derive(Default)]
pub struct Registry {
    /// Live streams.
    pub streams: HashMap<u64, Arc<Stream>>,
    /// Live events.
    pub events: HashMap<u64, Arc<Event>>,
    /// Loaded modules.
    pub modules: HashMap<u64, Arc<crate::exec::module::Module>>,
    /// Functions handed out by `cuModuleGetFunction`.
    pub functions: HashMap<u64, Arc<crate::exec::module::Function>>,
}

/// Locks the handle tables.
pub fn registry() -> MutexGuard<'static, Registry> {
    static R: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
    R.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stream a handle names; the null handle (and `CU_STREAM_LEGACY` / `CU_STREAM_PER_THREAD`) is the
/// current context's default stream.
pub fn stream(handle: u64) -> DResult<Arc<Stream>> {
    if handle <= 2 {
        let ctx = current()?;
        return Ok(stream::default_stream(ctx.device));
    }
    registry().streams.get(&handle).cloned().ok_or(CUresult::CUDA_ERROR_INVALID_HANDLE)
}

/// The event a handle names.
pub fn event(handle: u64) -> DResult<Arc<Event>> {
    registry().events.get(&handle).cloned().ok_or(CUresult::CUDA_ERROR_INVALID_HANDLE)
}
