//! The exported C functions (the driver API's names and signatures). Each one catches panics (a panic
//! becomes `CUDA_ERROR_UNKNOWN` with a report, never an unwind into C), refuses to run inside a host
//! function (`CUDA_ERROR_NOT_PERMITTED`), and, except `cuInit`, `cuDriverGetVersion` and the error-string
//! functions, requires `cuInit` (`CUDA_ERROR_NOT_INITIALIZED`); a failure injected for this call on this
//! thread (`streamdsl_sim_fail_next`) is returned instead of running it.
//!
//! Enum arguments are taken as plain integers, so a value this build does not know is an error code, not
//! undefined behaviour.

pub mod context;
pub mod device;
pub mod event;
pub mod memory;
pub mod module;
pub mod sim;
pub mod stream;
pub mod stubs;

use std::panic::{catch_unwind, AssertUnwindSafe};

use cudarc::driver::sys::CUresult;

use crate::check::report::report;
use crate::driver;

/// Runs an API function's body with the checks every entry point shares.
pub(crate) fn guard(name: &'static str, needs_init: bool, body: impl FnOnce() -> CUresult) -> CUresult {
    if driver::in_host_fn() {
        report(
            CUresult::CUDA_ERROR_NOT_PERMITTED,
            format!("{name} called from inside a host function (cuLaunchHostFunc): CUDA forbids driver calls there"),
        );
        return CUresult::CUDA_ERROR_NOT_PERMITTED;
    }
    if needs_init && !driver::initialized() {
        return CUresult::CUDA_ERROR_NOT_INITIALIZED;
    }
    if let Some(code) = crate::check::inject::take_failure(name) {
        return code;
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            report(CUresult::CUDA_ERROR_UNKNOWN, format!("internal error in {name}: {msg}"));
            CUresult::CUDA_ERROR_UNKNOWN
        }
    }
}

/// `Ok(v)` → `CUDA_SUCCESS`, `Err(e)` → `e`.
pub(crate) fn status(r: driver::DResult<()>) -> CUresult {
    match r {
        Ok(()) => CUresult::CUDA_SUCCESS,
        Err(e) => e,
    }
}

/// Writes `v` through an out-parameter.
///
/// # Safety
/// `p` must be null or valid for a write of `T`.
pub(crate) unsafe fn put<T>(p: *mut T, v: T) -> driver::DResult<()> {
    if p.is_null() {
        return Err(CUresult::CUDA_ERROR_INVALID_VALUE);
    }
    // SAFETY: non-null and, per the contract, valid for writes.
    unsafe { p.write(v) };
    Ok(())
}
