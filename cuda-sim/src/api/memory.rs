//! Allocation, pools, copies and memset. Device ranges are checked against the allocation table when the
//! operation is enqueued (unknown pointer, out of bounds, freed: `CUDA_ERROR_INVALID_VALUE` at once, and the
//! stream is poisoned at that point of its order) and by the race checker (a report poisons the stream; the
//! call itself succeeds, as an asynchronous fault would).

use std::ffi::{c_uint, c_void};
use std::sync::Arc;

use cudarc::driver::sys::{CUdevice, CUdeviceptr, CUmemoryPool, CUresult, CUstream};

use super::context::synchronize_device;
use super::device::device_ordinal;
use super::stream::lookup;
use super::{guard, put, status};
use crate::check::alloc::{self, Allocation};
use crate::check::race::{self, Mode, Stamp};
use crate::check::report::{report, Fault};
use crate::driver::stream::{Op, Signal, Work};
use crate::driver::{self, Stream};

fn pool_handle(device: usize) -> u64 {
    0x5200_0000 + 16 * device as u64
}

fn pool_of(handle: CUmemoryPool) -> driver::DResult<Arc<driver::Pool>> {
    let h = handle as u64;
    let base = pool_handle(0);
    if h < base || !(h - base).is_multiple_of(16) {
        return Err(CUresult::CUDA_ERROR_INVALID_HANDLE);
    }
    driver::contexts()
        .get(((h - base) / 16) as usize)
        .map(|c| Arc::clone(&c.pool))
        .ok_or(CUresult::CUDA_ERROR_INVALID_HANDLE)
}

/// `cuMemAllocAsync`: a stream-ordered allocation from the device's pool (its first use must be ordered
/// after this point of `stream`).
///
/// # Safety
/// `dptr` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(dptr: *mut CUdeviceptr, bytes: usize, stream: CUstream) -> CUresult {
    guard("cuMemAllocAsync", true, || {
        let s = match lookup(stream) {
            Ok(s) => s,
            Err(e) => return e,
        };
        if dptr.is_null() || bytes == 0 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        let pool = &driver::contexts()[s.device].pool;
        if !pool.alloc_async(bytes as u64) {
            return CUresult::CUDA_ERROR_OUT_OF_MEMORY;
        }
        let stamp = race::begin(s.id, |seq| format!("cuMemAllocAsync on {} (op {seq})", s.describe()));
        let Some(a) = alloc::allocate(bytes as u64, s.device, true, Arc::clone(&stamp.what)) else {
            pool.free_async(bytes as u64);
            pool.trim_to(0);
            return CUresult::CUDA_ERROR_OUT_OF_MEMORY;
        };
        race::allocated(&stamp, a.id);
        // SAFETY: per the contract.
        status(unsafe { put(dptr, a.base) })
    })
}

/// `cuMemAlloc_v2`: a synchronous allocation (not from the pool).
///
/// # Safety
/// `dptr` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> CUresult {
    guard("cuMemAlloc", true, || {
        let ctx = match driver::current() {
            Ok(c) => c,
            Err(e) => return e,
        };
        if dptr.is_null() || bytes == 0 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        if !ctx.pool.alloc_sync(bytes as u64) {
            return CUresult::CUDA_ERROR_OUT_OF_MEMORY;
        }
        let stamp = race::begin(race::HOST, |seq| format!("cuMemAlloc by the host (op {seq})"));
        let Some(a) = alloc::allocate(bytes as u64, ctx.device, false, Arc::clone(&stamp.what)) else {
            ctx.pool.free_sync(bytes as u64);
            return CUresult::CUDA_ERROR_OUT_OF_MEMORY;
        };
        race::allocated(&stamp, a.id);
        // SAFETY: per the contract.
        status(unsafe { put(dptr, a.base) })
    })
}

/// The allocation a free names, or a report of why it cannot be freed.
fn freeable(ptr: CUdeviceptr, call: &str, on: &str) -> Result<Arc<Allocation>, Fault> {
    let Some(a) = alloc::find_base(ptr) else {
        let why = match alloc::find(ptr) {
            Some(a) => format!("0x{ptr:x} is not the start of {}", a.describe()),
            None => format!("0x{ptr:x} is not a device allocation"),
        };
        return Err(report(CUresult::CUDA_ERROR_INVALID_VALUE, format!("{call} on {on}: {why}")));
    };
    Ok(a)
}

/// `cuMemFree_v2`: waits for the device, then frees.
#[no_mangle]
pub extern "C" fn cuMemFree_v2(dptr: CUdeviceptr) -> CUresult {
    guard("cuMemFree", true, || {
        let ctx = match driver::current() {
            Ok(c) => c,
            Err(e) => return e,
        };
        let a = match freeable(dptr, "cuMemFree", "the host") {
            Ok(a) => a,
            Err(f) => return f.code,
        };
        let sync = synchronize_device(ctx.device);
        let stamp = race::begin(race::HOST, |seq| format!("cuMemFree by the host (op {seq})"));
        if !a.mark_free_enqueued(Arc::clone(&stamp.what)) {
            let first = a.freed_by().map(|f| f.to_string()).unwrap_or_default();
            report(
                CUresult::CUDA_ERROR_INVALID_VALUE,
                format!("double free: {} frees {} (already freed by {first})", stamp.what, a.describe()),
            );
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        if let Err(text) = race::access(&stamp, &[(a.id, Mode::Free, a.describe())]) {
            report(CUresult::CUDA_ERROR_LAUNCH_FAILED, text);
        }
        a.unmap();
        if a.pooled {
            ctx.pool.free_async(a.size);
        } else {
            ctx.pool.free_sync(a.size);
        }
        race::forget(a.id);
        if sync == CUresult::CUDA_SUCCESS {
            CUresult::CUDA_SUCCESS
        } else {
            sync
        }
    })
}

/// Poisons `s` at this point of its order with `fault`.
fn refuse(s: &Arc<Stream>, fault: Fault) -> CUresult {
    let code = fault.code;
    let _ = s.enqueue(Op { work: Work::Fault(fault), done: None });
    code
}

/// `cuMemFreeAsync`: a stream-ordered free (it must be ordered after every use of the allocation).
#[no_mangle]
pub extern "C" fn cuMemFreeAsync(dptr: CUdeviceptr, stream: CUstream) -> CUresult {
    guard("cuMemFreeAsync", true, || {
        let s = match lookup(stream) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let a = match freeable(dptr, "cuMemFreeAsync", &s.describe()) {
            Ok(a) => a,
            Err(f) => return refuse(&s, f),
        };
        let stamp = race::begin(s.id, |seq| format!("cuMemFreeAsync on {} (op {seq})", s.describe()));
        if !a.mark_free_enqueued(Arc::clone(&stamp.what)) {
            let first = a.freed_by().map(|f| f.to_string()).unwrap_or_default();
            let f = report(
                CUresult::CUDA_ERROR_INVALID_VALUE,
                format!("double free: {} frees {} (already freed by {first})", stamp.what, a.describe()),
            );
            return refuse(&s, f);
        }
        if let Err(text) = race::access(&stamp, &[(a.id, Mode::Free, a.describe())]) {
            refuse(&s, report(CUresult::CUDA_ERROR_LAUNCH_FAILED, text));
            return CUresult::CUDA_SUCCESS;
        }
        let pool = Arc::clone(&driver::contexts()[a.device].pool);
        status(s.enqueue(Op { work: Work::Free { alloc: a, pool }, done: None }))
    })
}

/// Checks that `[ptr, ptr + bytes)` is inside one live allocation.
fn device_range(ptr: CUdeviceptr, bytes: usize, role: &str, what: &Stamp) -> Result<Arc<Allocation>, Fault> {
    let bad = |why: String| report(CUresult::CUDA_ERROR_INVALID_VALUE, format!("{}: {role} {why}", what.what));
    let Some(a) = alloc::find(ptr) else {
        return Err(bad(format!("0x{ptr:x}..+{bytes} is not device memory ({})", alloc::describe_address(ptr))));
    };
    if let Some(f) = a.freed_by() {
        return Err(bad(format!("0x{ptr:x}..+{bytes} is in a freed {} (use after free; freed by {f})", a.describe())));
    }
    if !a.contains(ptr, bytes as u64) {
        let over = (ptr + bytes as u64).saturating_sub(a.end());
        return Err(bad(format!("0x{ptr:x}..+{bytes} runs {over} bytes past the end of {}", a.describe())));
    }
    Ok(a)
}

/// Enqueues a copy or memset on `stream` after the checks; `ranges` are `(ptr, mode, role)`.
fn enqueue_checked(
    call: &str,
    stream: CUstream,
    bytes: usize,
    ranges: &[(CUdeviceptr, Mode, &str)],
    make: impl FnOnce() -> driver::DResult<Work>,
    wait: bool,
) -> CUresult {
    let s = match lookup(stream) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if bytes == 0 {
        return CUresult::CUDA_SUCCESS;
    }
    let stamp = race::begin(s.id, |seq| format!("{call} on {} (op {seq})", s.describe()));
    let mut accesses: Vec<(u64, Mode, String)> = Vec::new();
    for &(ptr, mode, role) in ranges {
        match device_range(ptr, bytes, role, &stamp) {
            Ok(a) => match accesses.iter_mut().find(|(id, _, _)| *id == a.id) {
                Some(e) => e.1 = Mode::Write,
                None => accesses.push((a.id, mode, a.describe())),
            },
            Err(f) => return refuse(&s, f),
        }
    }
    if let Err(text) = race::access(&stamp, &accesses) {
        let code = refuse(&s, report(CUresult::CUDA_ERROR_LAUNCH_FAILED, text));
        return if wait { code } else { CUresult::CUDA_SUCCESS };
    }
    let work = match make() {
        Ok(w) => w,
        Err(e) => return e,
    };
    if !wait {
        return status(s.enqueue(Op { work, done: None }));
    }
    let done = Signal::new(s.id, Arc::clone(&stamp.clock));
    if let Err(e) = s.enqueue(Op { work, done: Some(Arc::clone(&done)) }) {
        return e;
    }
    match done.wait() {
        Ok(_) => {
            race::host_sync(&stamp.clock);
            CUresult::CUDA_SUCCESS
        }
        Err(f) => f.code,
    }
}

/// `cuMemcpyHtoDAsync_v2`: the host data is staged at the call (pageable memory), so the caller may reuse
/// it at once.
///
/// # Safety
/// `src` must be readable for `bytes`.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: CUdeviceptr,
    src: *const c_void,
    bytes: usize,
    stream: CUstream,
) -> CUresult {
    guard("cuMemcpyHtoDAsync", true, || {
        if src.is_null() && bytes > 0 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        enqueue_checked(
            "cuMemcpyHtoDAsync",
            stream,
            bytes,
            &[(dst, Mode::Write, "destination")],
            || {
                // SAFETY: per the contract.
                let data = unsafe { std::slice::from_raw_parts(src.cast::<u8>(), bytes) }.to_vec();
                Ok(Work::HtoD { dst, data })
            },
            false,
        )
    })
}

/// `cuMemcpyDtoHAsync_v2`: to pageable memory, it returns once the copy has completed (as CUDA does).
///
/// # Safety
/// `dst` must be writable for `bytes`.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: CUdeviceptr,
    bytes: usize,
    stream: CUstream,
) -> CUresult {
    guard("cuMemcpyDtoHAsync", true, || {
        if dst.is_null() && bytes > 0 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        enqueue_checked(
            "cuMemcpyDtoHAsync",
            stream,
            bytes,
            &[(src, Mode::Read, "source")],
            || Ok(Work::DtoH { dst: dst as usize, src, bytes }),
            true,
        )
    })
}

/// `cuMemcpyDtoDAsync_v2`.
#[no_mangle]
pub extern "C" fn cuMemcpyDtoDAsync_v2(dst: CUdeviceptr, src: CUdeviceptr, bytes: usize, stream: CUstream) -> CUresult {
    guard("cuMemcpyDtoDAsync", true, || {
        let ranges = [(src, Mode::Read, "source"), (dst, Mode::Write, "destination")];
        enqueue_checked("cuMemcpyDtoDAsync", stream, bytes, &ranges, || Ok(Work::DtoD { dst, src, bytes }), false)
    })
}

/// `cuMemsetD8Async`.
#[no_mangle]
pub extern "C" fn cuMemsetD8Async(dst: CUdeviceptr, value: u8, count: usize, stream: CUstream) -> CUresult {
    guard("cuMemsetD8Async", true, || {
        enqueue_checked(
            "cuMemsetD8Async",
            stream,
            count,
            &[(dst, Mode::Write, "destination")],
            || Ok(Work::Memset { dst, value, bytes: count }),
            false,
        )
    })
}

/// `cuMemcpyHtoD_v2` (synchronous: on the NULL stream, then waits for it).
///
/// # Safety
/// `src` must be readable for `bytes`.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, bytes: usize) -> CUresult {
    // SAFETY: per the contract.
    let r = unsafe { cuMemcpyHtoDAsync_v2(dst, src, bytes, std::ptr::null_mut()) };
    if r != CUresult::CUDA_SUCCESS {
        return r;
    }
    super::stream::cuStreamSynchronize(std::ptr::null_mut())
}

/// `cuMemcpyDtoH_v2`.
///
/// # Safety
/// `dst` must be writable for `bytes`.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, bytes: usize) -> CUresult {
    // SAFETY: per the contract.
    unsafe { cuMemcpyDtoHAsync_v2(dst, src, bytes, std::ptr::null_mut()) }
}

/// `cuMemGetInfo_v2`.
///
/// # Safety
/// `free` and `total` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    guard("cuMemGetInfo", true, || {
        let ctx = match driver::current() {
            Ok(c) => c,
            Err(e) => return e,
        };
        let (f, t) = ctx.pool.info();
        let cv = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        // SAFETY: per the contract.
        status(unsafe { put(free, cv(f)).and_then(|()| put(total, cv(t))) })
    })
}

/// `cuDeviceGetDefaultMemPool`.
///
/// # Safety
/// `pool` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetDefaultMemPool(pool: *mut CUmemoryPool, dev: CUdevice) -> CUresult {
    guard("cuDeviceGetDefaultMemPool", true, || {
        status(device_ordinal(dev).and_then(|d| {
            // SAFETY: per the contract.
            unsafe { put(pool, pool_handle(d) as CUmemoryPool) }
        }))
    })
}

/// `cuDeviceGetMemPool` (the current pool is always the default one).
///
/// # Safety
/// `pool` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetMemPool(pool: *mut CUmemoryPool, dev: CUdevice) -> CUresult {
    // SAFETY: per the contract.
    unsafe { cuDeviceGetDefaultMemPool(pool, dev) }
}

/// `cuMemPoolSetAttribute`: the release threshold (`u64`), the reuse flags (`int`, accepted), and resetting
/// the high-water marks.
///
/// # Safety
/// `value` must point to the attribute's type.
#[no_mangle]
pub unsafe extern "C" fn cuMemPoolSetAttribute(pool: CUmemoryPool, attr: c_uint, value: *mut c_void) -> CUresult {
    guard("cuMemPoolSetAttribute", true, || {
        let p = match pool_of(pool) {
            Ok(p) => p,
            Err(e) => return e,
        };
        if value.is_null() {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        let v = match attr {
            // SAFETY: per the contract these attributes are `int`.
            1..=3 => u64::from(unsafe { *value.cast::<i32>() } as u32),
            // SAFETY: per the contract these attributes are `cuuint64_t`.
            4..=8 => unsafe { *value.cast::<u64>() },
            _ => return CUresult::CUDA_ERROR_INVALID_VALUE,
        };
        if p.set(attr, v) {
            CUresult::CUDA_SUCCESS
        } else {
            CUresult::CUDA_ERROR_INVALID_VALUE
        }
    })
}

/// `cuMemPoolGetAttribute`.
///
/// # Safety
/// `value` must point to the attribute's type.
#[no_mangle]
pub unsafe extern "C" fn cuMemPoolGetAttribute(pool: CUmemoryPool, attr: c_uint, value: *mut c_void) -> CUresult {
    guard("cuMemPoolGetAttribute", true, || {
        let p = match pool_of(pool) {
            Ok(p) => p,
            Err(e) => return e,
        };
        if value.is_null() {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        match attr {
            // SAFETY: per the contract these attributes are `int` (reuse is always allowed here).
            1..=3 => unsafe { *value.cast::<i32>() = 1 },
            _ => match p.get(attr) {
                // SAFETY: per the contract these attributes are `cuuint64_t`.
                Some(v) => unsafe { *value.cast::<u64>() = v },
                None => return CUresult::CUDA_ERROR_INVALID_VALUE,
            },
        }
        CUresult::CUDA_SUCCESS
    })
}

/// `cuMemPoolTrimTo`: releases held memory down to `keep` bytes.
#[no_mangle]
pub extern "C" fn cuMemPoolTrimTo(pool: CUmemoryPool, keep: usize) -> CUresult {
    guard("cuMemPoolTrimTo", true, || match pool_of(pool) {
        Ok(p) => {
            p.trim_to(keep as u64);
            CUresult::CUDA_SUCCESS
        }
        Err(e) => e,
    })
}
