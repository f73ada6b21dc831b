//! Primary contexts and the current context of each thread.

use std::ffi::{c_int, c_uint};
use std::sync::atomic::Ordering;

use cudarc::driver::sys::{CUcontext, CUdevice, CUresult};

use super::device::device_ordinal;
use super::{guard, put, status};
use crate::check::race;
use crate::driver::{self, device::PRIORITY_RANGE};

/// `cuDevicePrimaryCtxRetain`.
///
/// # Safety
/// `ctx` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(ctx: *mut CUcontext, dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxRetain", true, || {
        status(device_ordinal(dev).and_then(|d| {
            driver::contexts()[d].retained.fetch_add(1, Ordering::SeqCst);
            // SAFETY: per the contract.
            unsafe { put(ctx, driver::context_handle(d) as CUcontext) }
        }))
    })
}

/// `cuDevicePrimaryCtxRelease_v2`. The context's objects stay valid when the count reaches zero (the
/// simulator does not tear a context down).
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxRelease", true, || {
        status(device_ordinal(dev).and_then(|d| {
            let c = &driver::contexts()[d].retained;
            c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .map(|_| ())
                .map_err(|_| CUresult::CUDA_ERROR_INVALID_CONTEXT)
        }))
    })
}

/// `cuDevicePrimaryCtxRelease` (the pre-11 name).
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease(dev: CUdevice) -> CUresult {
    cuDevicePrimaryCtxRelease_v2(dev)
}

/// `cuDevicePrimaryCtxGetState`.
///
/// # Safety
/// `flags` and `active` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(dev: CUdevice, flags: *mut c_uint, active: *mut c_int) -> CUresult {
    guard("cuDevicePrimaryCtxGetState", true, || {
        status(device_ordinal(dev).and_then(|d| {
            let on = driver::contexts()[d].retained.load(Ordering::SeqCst) > 0;
            // SAFETY: per the contract.
            unsafe { put(flags, 0).and_then(|()| put(active, c_int::from(on))) }
        }))
    })
}

/// `cuCtxSetCurrent`: replaces the top of the calling thread's context stack (null pops it).
#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
    guard("cuCtxSetCurrent", true, || {
        if ctx.is_null() {
            driver::set_current(None);
            return CUresult::CUDA_SUCCESS;
        }
        match driver::context_of(ctx as u64) {
            Some(c) => {
                driver::set_current(Some(c.device));
                CUresult::CUDA_SUCCESS
            }
            None => CUresult::CUDA_ERROR_INVALID_CONTEXT,
        }
    })
}

/// `cuCtxPushCurrent_v2`: `ctx` becomes current on the calling thread; the previous current context stays on
/// the thread's stack below it.
#[no_mangle]
pub extern "C" fn cuCtxPushCurrent_v2(ctx: CUcontext) -> CUresult {
    guard("cuCtxPushCurrent", true, || match driver::context_of(ctx as u64) {
        Some(c) => {
            driver::push_current(c.device);
            CUresult::CUDA_SUCCESS
        }
        None => CUresult::CUDA_ERROR_INVALID_CONTEXT,
    })
}

/// `cuCtxPushCurrent` (the pre-4.0 name).
#[no_mangle]
pub extern "C" fn cuCtxPushCurrent(ctx: CUcontext) -> CUresult {
    cuCtxPushCurrent_v2(ctx)
}

/// `cuCtxPopCurrent_v2`: removes the current context from the calling thread's stack (written to `ctx` when
/// it is not null); the context below it, if any, becomes current. `CUDA_ERROR_INVALID_CONTEXT` when none is
/// current.
///
/// # Safety
/// `ctx` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxPopCurrent_v2(ctx: *mut CUcontext) -> CUresult {
    guard("cuCtxPopCurrent", true, || match driver::pop_current() {
        Some(d) => {
            if !ctx.is_null() {
                // SAFETY: per the contract (non-null: writable).
                unsafe { ctx.write(driver::context_handle(d) as CUcontext) };
            }
            CUresult::CUDA_SUCCESS
        }
        None => CUresult::CUDA_ERROR_INVALID_CONTEXT,
    })
}

/// `cuCtxPopCurrent` (the pre-4.0 name).
///
/// # Safety
/// As [`cuCtxPopCurrent_v2`].
#[no_mangle]
pub unsafe extern "C" fn cuCtxPopCurrent(ctx: *mut CUcontext) -> CUresult {
    // SAFETY: per the contract.
    unsafe { cuCtxPopCurrent_v2(ctx) }
}

/// `cuCtxGetCurrent` (null when none).
///
/// # Safety
/// `ctx` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(ctx: *mut CUcontext) -> CUresult {
    guard("cuCtxGetCurrent", true, || {
        let h = driver::current_device().map_or(std::ptr::null_mut(), |d| driver::context_handle(d) as CUcontext);
        // SAFETY: per the contract.
        status(unsafe { put(ctx, h) })
    })
}

/// `cuCtxGetDevice`.
///
/// # Safety
/// `dev` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetDevice(dev: *mut CUdevice) -> CUresult {
    guard("cuCtxGetDevice", true, || {
        status(driver::current().and_then(|c| {
            // SAFETY: per the contract.
            unsafe { put(dev, c.device as CUdevice) }
        }))
    })
}

/// `cuCtxGetStreamPriorityRange`: least 0, greatest -5.
///
/// # Safety
/// `least` and `greatest` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetStreamPriorityRange(least: *mut c_int, greatest: *mut c_int) -> CUresult {
    guard("cuCtxGetStreamPriorityRange", true, || {
        if let Err(e) = driver::current() {
            return e;
        }
        // SAFETY: per the contract (either may be null in CUDA; we accept that too).
        unsafe {
            if !least.is_null() {
                *least = PRIORITY_RANGE.0;
            }
            if !greatest.is_null() {
                *greatest = PRIORITY_RANGE.1;
            }
        }
        CUresult::CUDA_SUCCESS
    })
}

/// Waits for every stream of `device`; the first fault of a live stream, if any.
pub(crate) fn synchronize_device(device: usize) -> CUresult {
    let streams: Vec<_> = {
        let reg = driver::registry();
        reg.streams.values().filter(|s| s.device == device).cloned().collect()
    };
    let mut all = streams;
    all.push(driver::stream::default_stream(device));
    let mut result = CUresult::CUDA_SUCCESS;
    for s in all {
        let clock = race::snapshot(s.id);
        let r = s.synchronize();
        race::host_sync(&clock);
        if let Err(f) = r {
            if result == CUresult::CUDA_SUCCESS {
                result = f.code;
            }
        }
    }
    driver::contexts()[device].pool.on_sync();
    result
}

/// `cuCtxSynchronize`.
#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> CUresult {
    guard("cuCtxSynchronize", true, || match driver::current() {
        Ok(c) => synchronize_device(c.device),
        Err(e) => e,
    })
}
