//! Process-wide slots: state that must exist once per process, even where several copies of this crate are
//! loaded. Names no other streamdsl type: each layer declares the slots it owns ([`ProcessWide`]).
//!
//! A program normally links streamdsl once, and a slot is then a plain static. evcxr does not: it links a copy
//! of every dependency into each cell it compiles, and each copy has its own statics. With per-copy state, a
//! tensor made in one cell and used in the next would be ordered by two unrelated CPU stream machines, so
//! nothing would order the second cell's op after the first cell's write: wrong numbers and no error. So the
//! slots live in one [`Registry`] per process, and under evcxr the first copy publishes its registry for the
//! later ones.
//!
//! Publication happens only inside evcxr's runtime process (`EVCXR_IS_RUNTIME` set): a variable named after
//! a hash of this build's `TypeId` of [`Registry`] (so only copies of the same build, with the same layout,
//! meet) holds the process id, the registry's address and a random 128-bit nonce stored in the registry. A
//! copy dereferences the address only after reading the nonce back through `process_vm_readv` on itself,
//! which reports a bad address as an error instead of faulting, and finding it equal. A variable inherited
//! across `exec` (same pid, new image), copied from another process or made up therefore never leads to a
//! dereference of anything but a registry of this build: a stale address is unmapped (the read fails) or
//! holds other bytes (the nonce differs). Outside evcxr nothing is read from or written to the environment.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Mutex, OnceLock};

/// The process's slots, by name and type.
pub(crate) struct Registry {
    /// Random, non-zero; proves that an address found in the environment points at a registry.
    nonce: [u64; 2],
    slots: Mutex<HashMap<(&'static str, TypeId), &'static (dyn Any + Send + Sync)>>,
}

/// A value that exists once per process, created on first use by the first copy of the crate that asks.
///
/// Declare one as a `static` in the module that owns the state:
/// `static WORKERS: ProcessWide<AtomicUsize> = ProcessWide::new("cpu.workers", AtomicUsize::default);`.
/// The name must be unique in the crate; together with the type it is the slot's key. `init` runs under the
/// registry's lock, so it must be a plain constructor that touches no other slot: build anything expensive
/// lazily, in a `OnceLock` the slot holds.
pub(crate) struct ProcessWide<T: 'static> {
    name: &'static str,
    init: fn() -> T,
    /// This copy's shortcut to the process's value (one atomic load per access after the first).
    local: OnceLock<&'static T>,
}

impl<T: Any + Send + Sync> ProcessWide<T> {
    /// A slot named `name`, initialised with `init` by the first copy that reads it.
    pub(crate) const fn new(name: &'static str, init: fn() -> T) -> Self {
        ProcessWide { name, init, local: OnceLock::new() }
    }

    /// The process's value.
    pub(crate) fn get(&self) -> &'static T {
        self.local.get_or_init(|| registry().get_or_insert(self.name, self.init))
    }
}

impl Registry {
    fn new() -> Registry {
        Registry { nonce: random_nonce(), slots: Mutex::default() }
    }

    fn get_or_insert<T: Any + Send + Sync>(&self, name: &'static str, init: fn() -> T) -> &'static T {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let value = *slots.entry((name, TypeId::of::<T>())).or_insert_with(|| Box::leak(Box::new(init())));
        // The key includes `TypeId::of::<T>()`, and copies of one build agree on type ids.
        value.downcast_ref::<T>().unwrap_or_else(|| unreachable!("slot `{name}` holds another type"))
    }
}

/// This process's registry: this copy's own, or (under evcxr) the one the first copy published.
fn registry() -> &'static Registry {
    static THIS_COPY: OnceLock<&'static Registry> = OnceLock::new();
    THIS_COPY.get_or_init(|| {
        if std::env::var_os("EVCXR_IS_RUNTIME").is_none() {
            return Box::leak(Box::new(Registry::new()));
        }
        let name = variable();
        if let Some(found) = std::env::var(&name).ok().as_deref().and_then(published) {
            return found;
        }
        let rt: &'static Registry = Box::leak(Box::new(Registry::new()));
        let value = format!("{}:{:x}:{}", std::process::id(), rt as *const Registry as usize, nonce_hex(rt.nonce));
        // Inside evcxr's runtime process only, on the thread that runs the first cell using streamdsl, before
        // that cell starts threads of its own. `set_var` is still not synchronised with C code reading the
        // environment on other threads at this moment; evcxr's runtime runs no such code.
        std::env::set_var(&name, value);
        rt
    })
}

/// The environment variable that carries the registry of this build of the crate.
pub(crate) fn variable() -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    TypeId::of::<Registry>().hash(&mut h);
    format!("STREAMDSL_RUNTIME_{:016x}", h.finish())
}

/// The registry a variable's value names, if it is one of this process and this build.
fn published(value: &str) -> Option<&'static Registry> {
    let mut parts = value.split(':');
    let (pid, addr, nonce) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || pid.parse::<u32>().ok()? != std::process::id() {
        return None;
    }
    let addr = usize::from_str_radix(addr, 16).ok()?;
    if addr == 0 || addr % std::mem::align_of::<Registry>() != 0 {
        return None;
    }
    // The nonce: read without dereferencing anything (a bad address is an error, not a fault).
    let bytes = read_own_memory(addr.checked_add(std::mem::offset_of!(Registry, nonce))?, 16)?;
    let read = [u64::from_ne_bytes(bytes[..8].try_into().ok()?), u64::from_ne_bytes(bytes[8..].try_into().ok()?)];
    if read == [0, 0] || nonce_hex(read) != nonce {
        return None;
    }
    // SAFETY: `addr` is aligned and the 16 bytes of its nonce field equal the nonce written into this variable
    // next to it. Only `registry()` writes such a pair, for a `Registry` it leaked (never freed) in this process:
    // the variable's name hashes this build's `TypeId` of `Registry` (same layout) and the pid is ours. A value
    // inherited across `exec`, copied from another process or made up names memory of this image that does not
    // hold those 16 random bytes (the binary nonce exists only inside the registry: this check compares hex
    // text), except with probability 2⁻¹²⁸. What this cannot rule out is a value crafted by someone who knows
    // this process's memory contents and controls its environment, who could as well set `LD_PRELOAD`.
    Some(unsafe { &*(addr as *const Registry) })
}

/// `len` bytes of this process's memory at `addr`, or `None` where they are not readable.
#[cfg(target_os = "linux")]
fn read_own_memory(addr: usize, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: len };
    let remote = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len };
    // SAFETY: `local` describes `buf`, which we own and which outlives the call. The kernel reads `remote`
    // with the permission checks of another process's memory: an unmapped or unreadable range is an EFAULT
    // return, never a fault in this process. No Rust reference to `addr` exists.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    (n == len as isize).then_some(buf)
}

/// Without a way to read memory safely, nothing published is trusted (each copy keeps its own state).
#[cfg(not(target_os = "linux"))]
fn read_own_memory(_addr: usize, _len: usize) -> Option<Vec<u8>> {
    None
}

fn nonce_hex(n: [u64; 2]) -> String {
    format!("{:016x}{:016x}", n[0], n[1])
}

/// 128 random bits, never zero: from the OS's random source, else from std's randomly keyed hasher.
fn random_nonce() -> [u64; 2] {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    let mut n = [0u64, 0u64];
    if from_os {
        let (lo, hi) = bytes.split_at(8);
        n = [
            u64::from_ne_bytes(lo.try_into().unwrap_or_default()),
            u64::from_ne_bytes(hi.try_into().unwrap_or_default()),
        ];
    }
    if n == [0, 0] {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        (std::process::id(), std::time::SystemTime::now()).hash(&mut h);
        let a = h.finish();
        a.hash(&mut h);
        n = [a, h.finish() | 1];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    static COUNTER: ProcessWide<std::sync::atomic::AtomicU32> =
        ProcessWide::new("test.counter", std::sync::atomic::AtomicU32::default);

    #[test]
    fn a_slot_is_one_value() {
        use std::sync::atomic::Ordering;
        COUNTER.get().fetch_add(1, Ordering::Relaxed);
        assert!(std::ptr::eq(COUNTER.get(), registry().get_or_insert("test.counter", Default::default)));
        assert!(COUNTER.get().load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn only_a_published_registry_of_this_process_is_found() {
        let rt: &'static Registry = Box::leak(Box::new(Registry::new()));
        let pid = std::process::id();
        let good = format!("{pid}:{:x}:{}", rt as *const Registry as usize, nonce_hex(rt.nonce));
        assert!(published(&good).is_some_and(|r| std::ptr::eq(r, rt)));
        let wrong_nonce = format!("{pid}:{:x}:{}", rt as *const Registry as usize, nonce_hex([1, 2]));
        assert!(published(&wrong_nonce).is_none());
        let other_pid = format!("{}:{:x}:{}", pid.wrapping_add(1), rt as *const Registry as usize, nonce_hex(rt.nonce));
        assert!(published(&other_pid).is_none());
        for garbage in [
            format!("{pid}:1:{}", nonce_hex(rt.nonce)),
            format!("{pid}:8:00000000000000000000000000000001"),
            format!("{pid}:{:x}:{}", usize::MAX & !7, nonce_hex(rt.nonce)),
            format!("{pid}:zz:0"),
            format!("{pid}"),
            String::new(),
            "::::".into(),
        ] {
            assert!(published(&garbage).is_none(), "{garbage}");
        }
    }
}
