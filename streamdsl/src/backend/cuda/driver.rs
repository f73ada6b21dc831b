//! The CUDA driver through cudarc: is it there, which version, which devices.

use cudarc::driver::{result, sys};

/// One CUDA device.
#[derive(Debug, Clone)]
pub(crate) struct GpuInfo {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (u32, u32),
    pub memory_bytes: usize,
    pub sm_count: u32,
}

/// What the driver reports.
#[derive(Debug, Clone)]
pub(crate) struct DriverInfo {
    /// `cuDriverGetVersion`, e.g. 13000 for CUDA 13.0.
    pub version: i32,
    pub devices: Vec<GpuInfo>,
    /// Whether the driver is streamdsl's simulated driver (`cuda-sim`).
    pub simulated: bool,
}

/// Loads the driver and lists its devices, or says which piece is missing. Probed once per process (like
/// `cuInit`, whose outcome does not change), so asking again costs nothing.
pub(crate) fn probe() -> Result<DriverInfo, String> {
    static PROBED: std::sync::OnceLock<Result<DriverInfo, String>> = std::sync::OnceLock::new();
    PROBED.get_or_init(probe_driver).clone()
}

/// [`probe`] itself. Never panics: cudarc panics when its library is absent, so presence is checked first.
fn probe_driver() -> Result<DriverInfo, String> {
    // SAFETY: only tries to open the library.
    if !unsafe { sys::is_culib_present() } {
        return Err("no CUDA driver library (libcuda.so) was found: the NVIDIA driver is not installed".into());
    }
    result::init().map_err(|e| format!("the CUDA driver did not initialise ({e:?}): no usable GPU"))?;
    let mut version = 0;
    // SAFETY: a plain out-parameter, after cuInit.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| format!("cuDriverGetVersion failed: {e:?}"))?;
    let count = result::device::get_count().map_err(|e| format!("cuDeviceGetCount failed: {e:?}"))?;
    let mut devices = Vec::new();
    for ordinal in 0..count.max(0) {
        let dev = result::device::get(ordinal).map_err(|e| format!("cuDeviceGet({ordinal}) failed: {e:?}"))?;
        let name = result::device::get_name(dev).unwrap_or_else(|_| "unknown".into());
        let attr = |a| {
            // SAFETY: `dev` is a valid device handle from cuDeviceGet.
            unsafe { result::device::get_attribute(dev, a) }.unwrap_or(0).max(0) as u32
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        let sm_count = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        // SAFETY: as above.
        let memory_bytes = unsafe { result::device::total_mem(dev) }.unwrap_or(0);
        devices.push(GpuInfo {
            ordinal: ordinal as usize,
            name,
            compute_capability: (major, minor),
            memory_bytes,
            sm_count,
        });
    }
    Ok(DriverInfo { version, devices, simulated: sim::present() })
}

/// The simulated driver's own exports (see `cuda-sim`'s crate doc), for tests of the machine's error handling:
/// fault injection and report counts. Every function answers `None`/`false` when the loaded driver is not
/// the simulator.
pub(crate) mod sim {
    use std::ffi::{c_char, c_int, CString};

    use cudarc::driver::sys;

    /// A function the simulator exports, if the loaded driver is the simulator.
    fn export<F: Copy>(name: &[u8]) -> Option<F> {
        // SAFETY: only looks a symbol up in the driver library, which is loaded once a CUDA device was
        // opened; `F` is the symbol's C signature (checked by each caller below).
        unsafe {
            if !sys::is_culib_present() {
                return None;
            }
            sys::culib().get::<F>(name).ok().map(|f| *f)
        }
    }

    /// Whether the loaded driver is the simulator.
    pub(crate) fn present() -> bool {
        export::<unsafe extern "C" fn() -> u32>(b"streamdsl_sim_version").is_some()
    }

    /// The next call of driver function `name` on this thread returns error `code`.
    pub(crate) fn fail_next(name: &str, code: i32) -> bool {
        let Some(f) = export::<unsafe extern "C" fn(*const c_char, c_int) -> c_int>(b"streamdsl_sim_fail_next") else {
            return false;
        };
        let Ok(name) = CString::new(name) else { return false };
        // SAFETY: a NUL-terminated name that outlives the call.
        unsafe { f(name.as_ptr(), code) == 0 }
    }

    /// The next kernel launch, copy or memset this thread enqueues faults when it runs.
    pub(crate) fn fault_next() -> bool {
        let Some(f) = export::<unsafe extern "C" fn()>(b"streamdsl_sim_fault_next") else { return false };
        // SAFETY: no arguments; sets a flag of the calling thread.
        unsafe { f() };
        true
    }

    /// How many reports with error `code` the simulator made so far (negative: of every code).
    pub(crate) fn report_count(code: i32) -> Option<u64> {
        let f = export::<unsafe extern "C" fn(c_int) -> u64>(b"streamdsl_sim_report_count")?;
        // SAFETY: a plain value argument.
        Some(unsafe { f(code) })
    }

    /// The simulator's last report.
    pub(crate) fn last_report() -> Option<String> {
        let f = export::<unsafe extern "C" fn(*mut c_char, usize) -> usize>(b"streamdsl_sim_last_error")?;
        let mut buf = vec![0u8; 16 * 1024];
        // SAFETY: `buf` is writable for its length; the function NUL-terminates within it.
        let n = unsafe { f(buf.as_mut_ptr().cast(), buf.len()) };
        buf.truncate(n.min(buf.len() - 1));
        Some(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// Whether any CUDA context is current on the calling thread (test support: the machine leaves the caller's
/// binding as it found it).
pub(crate) fn context_is_current() -> bool {
    // SAFETY: the driver library is present (checked first); a plain out-parameter.
    unsafe {
        if !sys::is_culib_present() {
            return false;
        }
        let mut ctx: sys::CUcontext = std::ptr::null_mut();
        sys::cuCtxGetCurrent(&mut ctx) == sys::CUresult::CUDA_SUCCESS && !ctx.is_null()
    }
}
