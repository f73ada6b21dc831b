//! Streams and host functions.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::Arc;

use cudarc::driver::sys::{CUevent, CUresult, CUstream};

use super::{guard, put, status};
use crate::check::race;
use crate::driver::device::PRIORITY_RANGE;
use crate::driver::stream::{Op, Work};
use crate::driver::{self, Stream};

/// Creates a stream on the current context's device (priority clamped into the range, as CUDA does).
fn create(flags: c_uint, priority: c_int) -> driver::DResult<Arc<Stream>> {
    let ctx = driver::current()?;
    if flags & !1 != 0 {
        return Err(CUresult::CUDA_ERROR_INVALID_VALUE);
    }
    let prio = priority.max(PRIORITY_RANGE.1).min(PRIORITY_RANGE.0);
    let s = Stream::new(driver::next_handle(), ctx.device, prio, flags);
    driver::registry().streams.insert(s.id, Arc::clone(&s));
    Ok(s)
}

/// `cuStreamCreate`.
///
/// # Safety
/// `stream` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreate(stream: *mut CUstream, flags: c_uint) -> CUresult {
    // SAFETY: per the contract.
    unsafe { cuStreamCreateWithPriority(stream, flags, 0) }
}

/// `cuStreamCreateWithPriority`.
///
/// # Safety
/// `stream` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuStreamCreateWithPriority(stream: *mut CUstream, flags: c_uint, priority: c_int) -> CUresult {
    guard("cuStreamCreateWithPriority", true, || {
        if stream.is_null() {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        status(create(flags, priority).and_then(|s| {
            // SAFETY: per the contract.
            unsafe { put(stream, s.id as CUstream) }
        }))
    })
}

/// `cuStreamDestroy_v2`: the handle becomes invalid; work already queued still runs.
#[no_mangle]
pub extern "C" fn cuStreamDestroy_v2(stream: CUstream) -> CUresult {
    guard("cuStreamDestroy", true, || {
        if let Err(e) = driver::current() {
            return e;
        }
        match driver::registry().streams.remove(&(stream as u64)) {
            Some(s) => {
                race::destroyed(s.id);
                CUresult::CUDA_SUCCESS
            }
            None => CUresult::CUDA_ERROR_INVALID_HANDLE,
        }
    })
}

/// `cuStreamDestroy`.
#[no_mangle]
pub extern "C" fn cuStreamDestroy(stream: CUstream) -> CUresult {
    cuStreamDestroy_v2(stream)
}

/// The stream a handle names, with a current context required.
pub(crate) fn lookup(stream: CUstream) -> driver::DResult<Arc<Stream>> {
    driver::current()?;
    driver::stream(stream as u64)
}

/// `cuStreamSynchronize`: the stream's fault, if it is poisoned.
#[no_mangle]
pub extern "C" fn cuStreamSynchronize(stream: CUstream) -> CUresult {
    guard("cuStreamSynchronize", true, || {
        let s = match lookup(stream) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let clock = race::snapshot(s.id);
        let r = s.synchronize();
        race::host_sync(&clock);
        driver::contexts()[s.device].pool.on_sync();
        match r {
            Ok(()) => CUresult::CUDA_SUCCESS,
            Err(f) => f.code,
        }
    })
}

/// `cuStreamQuery`.
#[no_mangle]
pub extern "C" fn cuStreamQuery(stream: CUstream) -> CUresult {
    guard("cuStreamQuery", true, || {
        let s = match lookup(stream) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let clock = race::snapshot(s.id);
        match s.query() {
            None => CUresult::CUDA_ERROR_NOT_READY,
            Some(r) => {
                race::host_sync(&clock);
                match r {
                    Ok(()) => CUresult::CUDA_SUCCESS,
                    Err(f) => f.code,
                }
            }
        }
    })
}

/// `cuStreamWaitEvent`: later work on `stream` waits for the event's record *as of this call*; a
/// never-recorded event is a no-op.
#[no_mangle]
pub extern "C" fn cuStreamWaitEvent(stream: CUstream, event: CUevent, flags: c_uint) -> CUresult {
    guard("cuStreamWaitEvent", true, || {
        if flags != 0 && flags != 1 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        let (s, e) = match lookup(stream).and_then(|s| Ok((s, driver::event(event as u64)?))) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let Some(rec) = e.record() else { return CUresult::CUDA_SUCCESS };
        race::wait(s.id, &rec.clock);
        status(s.enqueue(Op { work: Work::Wait(rec), done: None }))
    })
}

/// `cuStreamGetPriority`.
///
/// # Safety
/// `priority` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuStreamGetPriority(stream: CUstream, priority: *mut c_int) -> CUresult {
    guard("cuStreamGetPriority", true, || {
        status(lookup(stream).and_then(|s| {
            // SAFETY: per the contract.
            unsafe { put(priority, s.priority) }
        }))
    })
}

/// `cuStreamGetFlags`.
///
/// # Safety
/// `flags` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuStreamGetFlags(stream: CUstream, flags: *mut c_uint) -> CUresult {
    guard("cuStreamGetFlags", true, || {
        status(lookup(stream).and_then(|s| {
            // SAFETY: per the contract.
            unsafe { put(flags, s.flags) }
        }))
    })
}

/// `cuLaunchHostFunc`: `f(data)` runs in stream order on the stream's thread; driver calls made inside it
/// return `CUDA_ERROR_NOT_PERMITTED`.
#[no_mangle]
pub extern "C" fn cuLaunchHostFunc(
    stream: CUstream,
    f: Option<unsafe extern "C" fn(*mut c_void)>,
    data: *mut c_void,
) -> CUresult {
    guard("cuLaunchHostFunc", true, || {
        let Some(f) = f else { return CUresult::CUDA_ERROR_INVALID_VALUE };
        let s = match lookup(stream) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let what = |seq| format!("host function on {} (op {seq})", s.describe());
        let stamp = race::begin(s.id, what);
        status(s.enqueue(Op { work: Work::Host { f, data: data as usize, clock: stamp.clock }, done: None }))
    })
}
