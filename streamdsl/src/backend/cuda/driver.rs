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
    Ok(DriverInfo { version, devices })
}
