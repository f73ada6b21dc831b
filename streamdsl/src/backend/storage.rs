//! The memory of a tensor, by backend, plus the access log that orders its users across streams.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::cuda::DeviceBuffer;
use super::host_pool;
use crate::device::Device;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::hazard::{AccessLog, SharedLog};
use crate::runtime::ProcessWide;

/// A buffer of `T`: host memory (CPU backend) or device memory (CUDA backend).
///
/// Its contents are only touched by work that the stream machine ordered through `log` (see
/// [`crate::hazard`]), or by the host after waiting for the last write; that ordering is what makes the
/// interior mutability below sound. Host buffers are freed when the last `Arc` goes, and every enqueued CPU op
/// holds an `Arc` to what it uses. Device buffers are freed stream-ordered after every access noted in the log,
/// so memory is never reused while pending work can still touch it.
pub(crate) struct Storage<T> {
    buf: Buffer<T>,
    /// The number of elements (kept apart from the buffer, which only ordered work may touch).
    len: usize,
    /// Whether the buffer came from a fresh zeroed allocation (never set again: only meaningful for an output
    /// straight from `host_output`, before its op is enqueued).
    zeroed: bool,
    pub(crate) log: SharedLog,
}

/// The memory itself, by backend.
enum Buffer<T> {
    Host(UnsafeCell<Vec<T>>),
    Cuda(DeviceBuffer),
}

/// Bytes of live host tensors in the process (the CPU backend's memory in use).
static HOST_BYTES: ProcessWide<AtomicUsize> = ProcessWide::new("storage.host_bytes", AtomicUsize::default);

impl<T> Drop for Storage<T> {
    fn drop(&mut self) {
        if let Buffer::Host(v) = &mut self.buf {
            HOST_BYTES.get().fetch_sub(self.len * size_of::<T>(), Ordering::Relaxed);
            let mut v = std::mem::ManuallyDrop::new(std::mem::take(v.get_mut()));
            let layout = std::alloc::Layout::array::<T>(v.capacity());
            match (std::ptr::NonNull::new(v.as_mut_ptr().cast::<u8>()), layout) {
                (Some(ptr), Ok(layout)) if v.len() == v.capacity() && layout.size() > 0 => {
                    // SAFETY: a `Vec` of `capacity` elements allocated by the global allocator with exactly this
                    // layout, all of them initialised (`len == capacity`), now owned by nothing else (the
                    // `ManuallyDrop` never frees it).
                    unsafe { host_pool::give(ptr, layout) }
                }
                _ => drop(std::mem::ManuallyDrop::into_inner(v)),
            }
        }
        if let Buffer::Cuda(buf) = &self.buf {
            // The points first, so the log is not locked while the machine is (queued work may hold the log).
            let points = self.log.lock().unwrap_or_else(|e| e.into_inner()).points();
            buf.free_after(points);
        }
    }
}

// SAFETY: access to the contents is serialised by the stream machine's dependency tracking (see above); the
// CUDA buffer is an address plus its machine, which is `Send + Sync`.
unsafe impl<T: Element> Send for Storage<T> {}
// SAFETY: as above.
unsafe impl<T: Element> Sync for Storage<T> {}

impl<T: Element> Storage<T> {
    /// Host memory for an op's output, which the op overwrites entirely: a cached buffer of the same size
    /// when there is one (holding old values; see [`host_pool`]), else fresh zeroed memory. An allocation that
    /// cannot be satisfied is [`Error::OutOfMemory`], not an abort; [`Storage::is_fresh_zeroed`] says which.
    ///
    /// Linux overcommits memory: a large zeroed allocation succeeds at once and its pages are only taken when
    /// written, so a program could hold tensors larger than the machine and be killed later, far from the
    /// cause. The CPU backend therefore refuses an allocation that would bring its live tensors above the
    /// machine's physical memory, as a device refuses one beyond its capacity (after giving the cache's
    /// buffers back).
    pub(crate) fn host_output(len: usize) -> Result<Storage<T>> {
        let bytes = len.saturating_mul(size_of::<T>());
        let oom = || Error::OutOfMemory { device: Device::cpu(), bytes };
        let layout = std::alloc::Layout::array::<T>(len).map_err(|_| oom())?;
        if layout.size() == 0 {
            return Ok(Self::from_vec(Vec::new()));
        }
        if let Some(ptr) = host_pool::take(layout) {
            // SAFETY: the pool's block was allocated by the global allocator with exactly `layout` (same size
            // and alignment as `len` elements of `T`) and every byte of it is initialised; every bit pattern
            // is a valid value of every supported element type (floats). The Vec takes ownership.
            let data = unsafe { Vec::from_raw_parts(ptr.as_ptr().cast::<T>(), len, len) };
            return Ok(Self::host_vec(data, false));
        }
        let in_use = HOST_BYTES.get().load(Ordering::Relaxed) + host_pool::cached_bytes();
        if in_use.saturating_add(layout.size()) > physical_memory_bytes() {
            host_pool::release_all();
            if HOST_BYTES.get().load(Ordering::Relaxed).saturating_add(layout.size()) > physical_memory_bytes() {
                return Err(oom());
            }
        }
        // SAFETY: non-zero size; every supported element type is a float whose all-zero bit pattern is +0.0,
        // so zeroed memory is `len` initialised values.
        let mut ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() && host_pool::release_all() > 0 {
            // SAFETY: as above.
            ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        }
        if ptr.is_null() {
            return Err(oom());
        }
        // SAFETY: allocated with `layout` (= `len` elements of `T`), zeroed as above; the Vec takes ownership
        // with the same layout it will free with.
        let data = unsafe { Vec::from_raw_parts(ptr.cast::<T>(), len, len) };
        Ok(Self::host_vec(data, true))
    }

    /// Whether the buffer came from a fresh zeroed allocation (see [`Storage::host_output`]). Only meaningful
    /// for an output straight from `host_output`, before any op writes it: the flag is not cleared by writes.
    pub(crate) fn is_fresh_zeroed(&self) -> bool {
        self.zeroed
    }

    /// A host buffer holding `data`.
    pub(crate) fn from_vec(data: Vec<T>) -> Storage<T> {
        Self::host_vec(data, false)
    }

    fn host_vec(data: Vec<T>, zeroed: bool) -> Storage<T> {
        HOST_BYTES.get().fetch_add(data.len() * size_of::<T>(), Ordering::Relaxed);
        Storage {
            len: data.len(),
            zeroed,
            buf: Buffer::Host(UnsafeCell::new(data)),
            log: Arc::new(Mutex::new(AccessLog::default())),
        }
    }

    /// A device buffer. Its allocation is its first write: stream-ordered memory may be used (and freed) only
    /// after the point that allocated it, on every stream.
    pub(crate) fn from_device(buf: DeviceBuffer) -> Storage<T> {
        let mut log = AccessLog::default();
        log.note_write(buf.allocated());
        Storage {
            len: buf.bytes() / size_of::<T>(),
            zeroed: false,
            buf: Buffer::Cuda(buf),
            log: Arc::new(Mutex::new(log)),
        }
    }

    /// The number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The device buffer, for the CUDA backend's kernels.
    pub(crate) fn device(&self) -> Result<&DeviceBuffer> {
        match &self.buf {
            Buffer::Cuda(b) => Ok(b),
            Buffer::Host(_) => Err(wrong_backend("a host buffer reached a CUDA kernel")),
        }
    }

    /// The contents, for work the stream machine ordered after the last write.
    ///
    /// # Safety
    /// No write to this buffer may be running or pending before the caller's point.
    pub(crate) unsafe fn slice(&self) -> Result<&[T]> {
        match &self.buf {
            // SAFETY: per the contract above.
            Buffer::Host(v) => Ok(unsafe { (*v.get()).as_slice() }),
            Buffer::Cuda(_) => Err(wrong_backend("a device buffer reached a CPU kernel")),
        }
    }

    /// The contents, mutably, for the one op the stream machine ordered after every earlier access.
    ///
    /// # Safety
    /// No other access to this buffer may be running or pending before the caller's point.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self) -> Result<&mut [T]> {
        match &self.buf {
            // SAFETY: per the contract above.
            Buffer::Host(v) => Ok(unsafe { (*v.get()).as_mut_slice() }),
            Buffer::Cuda(_) => Err(wrong_backend("a device buffer reached a CPU kernel")),
        }
    }
}

fn wrong_backend(reason: &str) -> Error {
    Error::InvalidArgument { op: "kernel", reason: reason.into() }
}

/// Total physical memory, read once; allocations larger than this fail fast instead of being overcommitted
/// and killing the process later. `usize::MAX` where it cannot be read.
pub(super) fn physical_memory_bytes() -> usize {
    use std::sync::OnceLock;
    static TOTAL: OnceLock<usize> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
                kib.checked_mul(1024)
            })
            .unwrap_or(usize::MAX)
    })
}
