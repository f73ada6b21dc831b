//! The process-wide state of streamdsl, one per process even where several copies of this crate are loaded.
//!
//! A program normally links streamdsl once. evcxr does not: it links a copy of every dependency into each
//! cell it compiles, and each copy has its own statics. With per-copy state, a tensor made in one cell and
//! used in the next would be ordered by two unrelated CPU stream machines, so nothing would order the
//! second cell's op after the first cell's write: a race with wrong numbers and no error. Every piece of
//! state that must be unique per process (the CPU machine, the opened CUDA devices, default streams and
//! generator, the current-stream stack, switches and counters) therefore lives in one [`Runtime`] that the
//! first copy creates and publishes, and the later copies find and use.
//!
//! Publication goes through the process environment, the one registry every copy shares: a variable named
//! after a hash of this compiled crate's `TypeId` (so only copies of the same build, with the same layout,
//! meet) holding the process id and the runtime's address (so a child process that inherits the variable
//! ignores it). The variable is set once, when the first copy first needs the runtime (the first device,
//! stream or tensor), normally before the program's other threads read the environment. Thread-locals
//! cannot be shared by address, so the runtime keeps function pointers into the first copy, which reach
//! that copy's thread-locals.

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::cpu;
use crate::device::{CudaEntry, Device};
use crate::random::Generator;
use crate::stream::Stream;

/// A thread's stack of scoped streams, innermost last.
pub(crate) type StreamStack = RefCell<Vec<Stream>>;

/// Runs a closure with this thread's [`StreamStack`]; false during thread teardown, when it is gone.
pub(crate) type WithStreamStack = fn(&mut dyn FnMut(&StreamStack)) -> bool;

/// Everything streamdsl keeps per process.
pub(crate) struct Runtime {
    pub cpu_machine: OnceLock<Arc<cpu::Machine>>,
    pub cpu_default_stream: OnceLock<Stream>,
    /// CUDA devices opened so far, by ordinal.
    pub cuda_devices: Mutex<HashMap<usize, Arc<CudaEntry>>>,
    pub default_device: OnceLock<Device>,
    pub default_generator: OnceLock<Generator>,
    /// Strict mode: unset, off or on (see `strict`).
    pub strict: AtomicU8,
    /// Ids of buffers (for the race checker) and numbers in stream names.
    pub next_buffer_id: AtomicU64,
    pub next_stream_name: AtomicU64,
    /// Timed CUDA events dropped inside host callbacks, as `(context, event)` addresses.
    pub deferred_events: Mutex<Vec<(usize, usize)>>,
    /// This thread's current-stream stack, through the first copy's thread-local.
    pub current_stack: WithStreamStack,
    /// Reads, or sets and reads, whether this thread is running a CUDA host callback.
    pub host_callback: fn(Option<bool>) -> bool,
}

thread_local! {
    static CURRENT: StreamStack = const { RefCell::new(Vec::new()) };
    static IN_HOST_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

fn this_copys_current_stack(f: &mut dyn FnMut(&StreamStack)) -> bool {
    CURRENT.try_with(|c| f(c)).is_ok()
}

fn this_copys_host_callback_flag(set: Option<bool>) -> bool {
    IN_HOST_CALLBACK.with(|flag| {
        if let Some(v) = set {
            flag.set(v);
        }
        flag.get()
    })
}

impl Runtime {
    fn new() -> Runtime {
        Runtime {
            cpu_machine: OnceLock::new(),
            cpu_default_stream: OnceLock::new(),
            cuda_devices: Mutex::default(),
            default_device: OnceLock::new(),
            default_generator: OnceLock::new(),
            strict: AtomicU8::new(crate::strict::UNSET),
            next_buffer_id: AtomicU64::new(0),
            next_stream_name: AtomicU64::new(0),
            deferred_events: Mutex::default(),
            current_stack: this_copys_current_stack,
            host_callback: this_copys_host_callback_flag,
        }
    }
}

/// The process's runtime: found once per copy of the crate, created by the first.
pub(crate) fn runtime() -> &'static Runtime {
    static THIS_COPY: OnceLock<&'static Runtime> = OnceLock::new();
    THIS_COPY.get_or_init(find_or_publish)
}

/// The environment variable that carries the runtime of this build of the crate.
fn variable() -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    TypeId::of::<Runtime>().hash(&mut h);
    format!("STREAMDSL_RUNTIME_{:016x}", h.finish())
}

fn find_or_publish() -> &'static Runtime {
    let name = variable();
    let pid = std::process::id();
    let published = std::env::var(&name).ok().and_then(|v| {
        let (p, addr) = v.split_once(':')?;
        (p.parse::<u32>().ok()? == pid).then(|| usize::from_str_radix(addr, 16).ok()).flatten()
    });
    if let Some(addr) = published.filter(|&a| a != 0) {
        // SAFETY: the address was published below by a copy of this same build of the crate (the variable's
        // name hashes the `TypeId` of `Runtime`, so the layout is the same) in this process (the pid
        // matches), and that runtime is leaked: it lives as long as the process.
        return unsafe { &*(addr as *const Runtime) };
    }
    let rt: &'static Runtime = Box::leak(Box::new(Runtime::new()));
    std::env::set_var(&name, format!("{pid}:{:x}", rt as *const Runtime as usize));
    rt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_is_published_for_other_copies() {
        let rt = runtime();
        let value = std::env::var(variable()).expect("published");
        let (pid, addr) = value.split_once(':').unwrap();
        assert_eq!(pid.parse::<u32>().unwrap(), std::process::id());
        assert_eq!(usize::from_str_radix(addr, 16).unwrap(), rt as *const Runtime as usize);
        // What another copy finds: the same runtime.
        assert!(std::ptr::eq(find_or_publish(), rt));
    }
}
