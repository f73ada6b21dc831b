//! Events.

use std::ffi::c_uint;
use std::sync::Arc;

use cudarc::driver::sys::{CUevent, CUresult, CUstream};

use super::stream::lookup;
use super::{guard, put, status};
use crate::check::race;
use crate::driver::stream::{Op, Signal, Work};
use crate::driver::{self, Event};

/// `cuEventCreate` (flags: `CU_EVENT_DEFAULT`, `BLOCKING_SYNC`, `DISABLE_TIMING`, `INTERPROCESS`).
///
/// # Safety
/// `event` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuEventCreate(event: *mut CUevent, flags: c_uint) -> CUresult {
    guard("cuEventCreate", true, || {
        let ctx = match driver::current() {
            Ok(c) => c,
            Err(e) => return e,
        };
        if flags & !0x7 != 0 || event.is_null() {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        let e = Arc::new(Event::new(driver::next_handle(), flags, ctx.device));
        driver::registry().events.insert(e.id, Arc::clone(&e));
        // SAFETY: per the contract.
        status(unsafe { put(event, e.id as CUevent) })
    })
}

/// `cuEventDestroy_v2`.
#[no_mangle]
pub extern "C" fn cuEventDestroy_v2(event: CUevent) -> CUresult {
    guard("cuEventDestroy", true, || {
        if let Err(e) = driver::current() {
            return e;
        }
        match driver::registry().events.remove(&(event as u64)) {
            Some(_) => CUresult::CUDA_SUCCESS,
            None => CUresult::CUDA_ERROR_INVALID_HANDLE,
        }
    })
}

/// `cuEventDestroy`.
#[no_mangle]
pub extern "C" fn cuEventDestroy(event: CUevent) -> CUresult {
    cuEventDestroy_v2(event)
}

/// `cuEventRecord`: the event now stands for the work enqueued on `stream` so far (earlier waits keep the
/// record they were given).
#[no_mangle]
pub extern "C" fn cuEventRecord(event: CUevent, stream: CUstream) -> CUresult {
    guard("cuEventRecord", true, || {
        let (s, e) = match lookup(stream).and_then(|s| Ok((s, driver::event(event as u64)?))) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let sig = Signal::new(s.id, race::snapshot(s.id));
        e.set_record(Arc::clone(&sig));
        status(s.enqueue(Op { work: Work::Record(sig), done: None }))
    })
}

/// `cuEventRecordWithFlags` (flags ignored).
#[no_mangle]
pub extern "C" fn cuEventRecordWithFlags(event: CUevent, stream: CUstream, _flags: c_uint) -> CUresult {
    cuEventRecord(event, stream)
}

/// The status of a completed record, which the host has now observed. A record that completed with its
/// stream's fault still completed in order: everything before it ran or was skipped, so the host is ordered
/// after it either way (as after `cuStreamSynchronize` returning the fault).
fn observed(sig: &Signal, outcome: &crate::driver::stream::Outcome) -> CUresult {
    race::host_sync(&sig.clock);
    match outcome {
        Ok(_) => CUresult::CUDA_SUCCESS,
        Err(f) => f.code,
    }
}

/// `cuEventQuery`: `CUDA_SUCCESS` when the last record completed (or the event was never recorded),
/// `CUDA_ERROR_NOT_READY` before; the fault when the record's stream failed before it.
#[no_mangle]
pub extern "C" fn cuEventQuery(event: CUevent) -> CUresult {
    guard("cuEventQuery", true, || {
        if let Err(e) = driver::current() {
            return e;
        }
        let e = match driver::event(event as u64) {
            Ok(e) => e,
            Err(e) => return e,
        };
        let Some(sig) = e.record() else { return CUresult::CUDA_SUCCESS };
        match sig.peek() {
            None => CUresult::CUDA_ERROR_NOT_READY,
            Some(o) => observed(&sig, &o),
        }
    })
}

/// `cuEventSynchronize`.
#[no_mangle]
pub extern "C" fn cuEventSynchronize(event: CUevent) -> CUresult {
    guard("cuEventSynchronize", true, || {
        if let Err(e) = driver::current() {
            return e;
        }
        let e = match driver::event(event as u64) {
            Ok(e) => e,
            Err(e) => return e,
        };
        let Some(sig) = e.record() else { return CUresult::CUDA_SUCCESS };
        let o = sig.wait();
        driver::contexts()[e.device].pool.on_sync();
        observed(&sig, &o)
    })
}

/// `cuEventElapsedTime_v2`: milliseconds between two completed records of timed events.
///
/// # Safety
/// `ms` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime_v2(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
    guard("cuEventElapsedTime", true, || {
        if let Err(e) = driver::current() {
            return e;
        }
        let (a, b) = match driver::event(start as u64).and_then(|a| Ok((a, driver::event(end as u64)?))) {
            Ok(v) => v,
            Err(e) => return e,
        };
        if !a.timed() || !b.timed() {
            return CUresult::CUDA_ERROR_INVALID_HANDLE;
        }
        let (Some(ra), Some(rb)) = (a.record(), b.record()) else { return CUresult::CUDA_ERROR_INVALID_HANDLE };
        let (Some(oa), Some(ob)) = (ra.peek(), rb.peek()) else { return CUresult::CUDA_ERROR_NOT_READY };
        let (ta, tb) = match (oa, ob) {
            (Ok(ta), Ok(tb)) => (ta, tb),
            (Err(f), _) | (_, Err(f)) => return f.code,
        };
        let v = match tb.checked_duration_since(ta) {
            Some(d) => d.as_secs_f64() * 1e3,
            None => -(ta.duration_since(tb).as_secs_f64() * 1e3),
        };
        // SAFETY: per the contract.
        status(unsafe { put(ms, v as f32) })
    })
}

/// `cuEventElapsedTime` (the pre-12.8 name).
///
/// # Safety
/// `ms` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
    // SAFETY: per the contract.
    unsafe { cuEventElapsedTime_v2(ms, start, end) }
}
