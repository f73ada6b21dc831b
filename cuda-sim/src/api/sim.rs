//! The simulator's own exports: how a program knows it runs on the simulator, and the last report.

use std::ffi::{c_char, c_uint};

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
