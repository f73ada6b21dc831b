//! Initialisation, devices, error strings.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_uint, CString};
use std::sync::{LazyLock, Mutex};

use cudarc::driver::sys::{CUdevice, CUresult};

use super::{guard, put, status};
use crate::driver::{self, config::config, device};

/// The driver version reported (CUDA 13.0, what streamdsl's cudarc feature targets).
pub const DRIVER_VERSION: c_int = 13000;

pub(crate) fn device_ordinal(dev: CUdevice) -> driver::DResult<usize> {
    usize::try_from(dev).ok().filter(|&d| d < config().devices).ok_or(CUresult::CUDA_ERROR_INVALID_DEVICE)
}

/// `cuInit`.
#[no_mangle]
pub extern "C" fn cuInit(flags: c_uint) -> CUresult {
    guard("cuInit", false, || {
        if flags != 0 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        driver::init();
        if config().devices == 0 {
            return CUresult::CUDA_ERROR_NO_DEVICE;
        }
        CUresult::CUDA_SUCCESS
    })
}

/// `cuDriverGetVersion`.
///
/// # Safety
/// `version` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CUresult {
    // SAFETY: per the contract.
    guard("cuDriverGetVersion", false, || status(unsafe { put(version, DRIVER_VERSION) }))
}

/// `cuDeviceGetCount`.
///
/// # Safety
/// `count` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    // SAFETY: per the contract.
    guard("cuDeviceGetCount", true, || status(unsafe { put(count, config().devices as c_int) }))
}

/// `cuDeviceGet`.
///
/// # Safety
/// `dev` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(dev: *mut CUdevice, ordinal: c_int) -> CUresult {
    guard("cuDeviceGet", true, || {
        status(device_ordinal(ordinal).and_then(|d| {
            // SAFETY: per the contract.
            unsafe { put(dev, d as CUdevice) }
        }))
    })
}

/// `cuDeviceGetName`.
///
/// # Safety
/// `name` must be null or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    guard("cuDeviceGetName", true, || {
        if let Err(e) = device_ordinal(dev) {
            return e;
        }
        let Ok(len) = usize::try_from(len) else { return CUresult::CUDA_ERROR_INVALID_VALUE };
        if name.is_null() || len == 0 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        let bytes = device::name().as_bytes();
        let n = bytes.len().min(len - 1);
        // SAFETY: `name` is writable for `len` > n bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), name, n);
            *name.add(n) = 0;
        }
        CUresult::CUDA_SUCCESS
    })
}

/// `cuDeviceGetAttribute`.
///
/// # Safety
/// `value` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(value: *mut c_int, attrib: c_uint, dev: CUdevice) -> CUresult {
    guard("cuDeviceGetAttribute", true, || {
        if let Err(e) = device_ordinal(dev) {
            return e;
        }
        match device::attribute(attrib) {
            // SAFETY: per the contract.
            Some(v) => status(unsafe { put(value, v) }),
            None => CUresult::CUDA_ERROR_INVALID_VALUE,
        }
    })
}

/// `cuDeviceTotalMem_v2`.
///
/// # Safety
/// `bytes` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    guard("cuDeviceTotalMem", true, || {
        if let Err(e) = device_ordinal(dev) {
            return e;
        }
        // SAFETY: per the contract.
        status(unsafe { put(bytes, usize::try_from(device::total_memory()).unwrap_or(usize::MAX)) })
    })
}

/// `cuDeviceComputeCapability` (deprecated form).
///
/// # Safety
/// `major` and `minor` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceComputeCapability(major: *mut c_int, minor: *mut c_int, dev: CUdevice) -> CUresult {
    guard("cuDeviceComputeCapability", true, || {
        if let Err(e) = device_ordinal(dev) {
            return e;
        }
        let (a, b) = config().cc;
        // SAFETY: per the contract.
        status(unsafe { put(major, a as c_int).and_then(|()| put(minor, b as c_int)) })
    })
}

/// `(name, description)` of a status code.
pub fn error_text(code: c_uint) -> Option<(&'static str, &'static str)> {
    Some(match code {
        0 => ("CUDA_SUCCESS", "no error"),
        1 => ("CUDA_ERROR_INVALID_VALUE", "invalid argument"),
        2 => ("CUDA_ERROR_OUT_OF_MEMORY", "out of memory"),
        3 => ("CUDA_ERROR_NOT_INITIALIZED", "initialization error"),
        4 => ("CUDA_ERROR_DEINITIALIZED", "driver shutting down"),
        100 => ("CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"),
        101 => ("CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"),
        200 => ("CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"),
        201 => ("CUDA_ERROR_INVALID_CONTEXT", "invalid device context"),
        221 => ("CUDA_ERROR_JIT_COMPILER_NOT_FOUND", "PTX JIT compiler library not found"),
        300 => ("CUDA_ERROR_INVALID_SOURCE", "device kernel source is invalid"),
        304 => ("CUDA_ERROR_OPERATING_SYSTEM", "OS call failed or operation not supported on this OS"),
        400 => ("CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"),
        500 => ("CUDA_ERROR_NOT_FOUND", "named symbol not found"),
        600 => ("CUDA_ERROR_NOT_READY", "device not ready"),
        700 => ("CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"),
        701 => ("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", "too many resources requested for launch"),
        702 => ("CUDA_ERROR_LAUNCH_TIMEOUT", "the launch timed out and was terminated"),
        710 => ("CUDA_ERROR_ASSERT", "device-side assert triggered"),
        715 => ("CUDA_ERROR_ILLEGAL_INSTRUCTION", "an illegal instruction was encountered"),
        719 => ("CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"),
        800 => ("CUDA_ERROR_NOT_PERMITTED", "operation not permitted"),
        801 => ("CUDA_ERROR_NOT_SUPPORTED", "operation not supported"),
        999 => ("CUDA_ERROR_UNKNOWN", "unknown error"),
        _ => return None,
    })
}

/// Codes whose description carries the simulator's last report.
const WITH_REPORT: [c_uint; 8] = [200, 221, 300, 700, 710, 715, 719, 800];

fn leak(s: String) -> *const c_char {
    CString::new(s.replace('\0', " ")).map_or(std::ptr::null(), |c| Box::leak(c.into_boxed_c_str()).as_ptr())
}

/// `cuGetErrorString`. For the codes a simulator report produces, the text ends with the last report.
///
/// # Safety
/// `out` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(code: c_uint, out: *mut *const c_char) -> CUresult {
    static PLAIN: LazyLock<Mutex<HashMap<c_uint, usize>>> = LazyLock::new(Mutex::default);
    static WITH: LazyLock<Mutex<HashMap<(c_uint, u64), usize>>> = LazyLock::new(Mutex::default);
    guard("cuGetErrorString", false, || {
        let Some((_, text)) = error_text(code) else { return CUresult::CUDA_ERROR_INVALID_VALUE };
        let ptr = match crate::check::report::last().filter(|_| WITH_REPORT.contains(&code)) {
            Some((seq, report)) => {
                let mut m = WITH.lock().unwrap_or_else(|e| e.into_inner());
                *m.entry((code, seq)).or_insert_with(|| leak(format!("{text} (simulator: {report})")) as usize)
            }
            None => {
                let mut m = PLAIN.lock().unwrap_or_else(|e| e.into_inner());
                *m.entry(code).or_insert_with(|| leak(text.to_string()) as usize)
            }
        };
        // SAFETY: per the contract; the string is leaked, so it is static.
        status(unsafe { put(out, ptr as *const c_char) })
    })
}

/// `cuGetErrorName`.
///
/// # Safety
/// `out` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(code: c_uint, out: *mut *const c_char) -> CUresult {
    static NAMES: LazyLock<Mutex<HashMap<c_uint, usize>>> = LazyLock::new(Mutex::default);
    guard("cuGetErrorName", false, || {
        let Some((name, _)) = error_text(code) else { return CUresult::CUDA_ERROR_INVALID_VALUE };
        let ptr =
            *NAMES.lock().unwrap_or_else(|e| e.into_inner()).entry(code).or_insert_with(|| leak(name.into()) as usize);
        // SAFETY: per the contract.
        status(unsafe { put(out, ptr as *const c_char) })
    })
}
