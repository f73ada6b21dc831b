//! The simulator's own exports: how a program knows it runs on the simulator, the last report, how many
//! reports were made, and fault injection (for testing a program's error handling; per calling thread).

use std::ffi::{c_char, c_int, c_uint, CStr};

use cudarc::driver::sys::CUresult;

/// The simulator's version (non-zero). A program can look this symbol up in the loaded driver to know it
/// runs on the simulator (`dlsym(libcuda, "streamdsl_sim_version")`).
pub const VERSION: c_uint = 1;

/// `streamdsl_sim_version`: [`VERSION`].
#[no_mangle]
pub extern "C" fn streamdsl_sim_version() -> c_uint {
    VERSION
}

/// `streamdsl_sim_last_error`: copies the last report (NUL-terminated, truncated to `len`) into `buf` and
/// returns its full length in bytes (0: no report yet). `buf` may be null to ask for the length.
///
/// # Safety
/// `buf` must be null or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn streamdsl_sim_last_error(buf: *mut c_char, len: usize) -> usize {
    let text = std::panic::catch_unwind(|| crate::check::report::last().map(|(_, t)| t.to_string()))
        .ok()
        .flatten()
        .unwrap_or_default();
    if !buf.is_null() && len > 0 {
        let n = text.len().min(len - 1);
        // SAFETY: `buf` is writable for `len` > n bytes (contract).
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buf, n);
            *buf.add(n) = 0;
        }
    }
    text.len()
}

/// `streamdsl_sim_report_count(code)`: how many reports with error `code` (a `CUresult` value) were made so
/// far; a negative `code` counts every report.
#[no_mangle]
pub extern "C" fn streamdsl_sim_report_count(code: c_int) -> u64 {
    std::panic::catch_unwind(|| crate::check::report::count((code >= 0).then_some(code))).unwrap_or(0)
}

/// `streamdsl_sim_fail_next(name, code)`: the next call of the driver function `name` on the calling thread
/// returns `code` (a `CUresult` value other than success) and does nothing else. `name` is spelled without a
/// `_v2` suffix (`cuStreamWaitEvent`, `cuMemFreeAsync`, `cuEventRecord`). Returns 0, or -1 for a null name
/// or a `code` that is success or not a `CUresult`.
///
/// # Safety
/// `name` must be null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn streamdsl_sim_fail_next(name: *const c_char, code: c_int) -> c_int {
    if name.is_null() || code <= 0 {
        return -1;
    }
    // SAFETY: per the contract.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
    let Some(code) = result_of(code) else { return -1 };
    crate::check::inject::fail_next(&name, code);
    0
}

/// `streamdsl_sim_fault_next()`: the next kernel launch, copy or memset the calling thread enqueues is
/// accepted, then fails when it runs as a fault would (`CUDA_ERROR_ILLEGAL_ADDRESS`, with a report); its
/// stream is poisoned from there on.
#[no_mangle]
pub extern "C" fn streamdsl_sim_fault_next() {
    crate::check::inject::fault_next_operation();
}

/// The `CUresult` whose value is `code`, if there is one.
fn result_of(code: c_int) -> Option<CUresult> {
    use CUresult::*;
    const KNOWN: [CUresult; 14] = [
        CUDA_ERROR_INVALID_VALUE,
        CUDA_ERROR_OUT_OF_MEMORY,
        CUDA_ERROR_NOT_INITIALIZED,
        CUDA_ERROR_INVALID_CONTEXT,
        CUDA_ERROR_INVALID_HANDLE,
        CUDA_ERROR_NOT_READY,
        CUDA_ERROR_ILLEGAL_ADDRESS,
        CUDA_ERROR_LAUNCH_FAILED,
        CUDA_ERROR_NOT_PERMITTED,
        CUDA_ERROR_NOT_SUPPORTED,
        CUDA_ERROR_UNKNOWN,
        CUDA_ERROR_INVALID_IMAGE,
        CUDA_ERROR_INVALID_SOURCE,
        CUDA_ERROR_JIT_COMPILER_NOT_FOUND,
    ];
    KNOWN.into_iter().find(|c| *c as c_int == code)
}
