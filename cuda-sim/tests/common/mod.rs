//! Helpers shared by the simulator's tests: they call the exported driver functions directly.
#![allow(dead_code)]

use std::ffi::{c_void, CString};

pub use cudarc::driver::sys::{CUdeviceptr, CUevent, CUfunction, CUmodule, CUresult, CUstream};
pub use streamdsl_cuda_sim::api::context::*;
pub use streamdsl_cuda_sim::api::device::*;
pub use streamdsl_cuda_sim::api::event::*;
pub use streamdsl_cuda_sim::api::memory::*;
pub use streamdsl_cuda_sim::api::module::*;
pub use streamdsl_cuda_sim::api::sim::*;
pub use streamdsl_cuda_sim::api::stream::*;

pub const OK: CUresult = CUresult::CUDA_SUCCESS;

/// Initialises the driver and makes device 0's primary context current on this thread.
pub fn setup() {
    assert_eq!(cuInit(0), OK);
    let mut ctx = std::ptr::null_mut();
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuDevicePrimaryCtxRetain(&mut ctx, 0) }, OK);
    assert_eq!(cuCtxSetCurrent(ctx), OK);
}

pub fn stream(priority: i32) -> CUstream {
    let mut s = std::ptr::null_mut();
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuStreamCreateWithPriority(&mut s, 1, priority) }, OK);
    s
}

pub fn event(timed: bool) -> CUevent {
    let mut e = std::ptr::null_mut();
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuEventCreate(&mut e, if timed { 0 } else { 2 }) }, OK);
    e
}

pub fn record(s: CUstream) -> CUevent {
    let e = event(false);
    assert_eq!(cuEventRecord(e, s), OK);
    e
}

pub fn alloc(bytes: usize, s: CUstream) -> CUdeviceptr {
    let mut p = 0;
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuMemAllocAsync(&mut p, bytes, s) }, OK);
    p
}

pub fn upload<T: Copy>(dst: CUdeviceptr, data: &[T], s: CUstream) {
    // SAFETY: `data` is readable for its size.
    let r = unsafe { cuMemcpyHtoDAsync_v2(dst, data.as_ptr().cast(), std::mem::size_of_val(data), s) };
    assert_eq!(r, OK);
}

pub fn download<T: Copy + Default>(src: CUdeviceptr, n: usize, s: CUstream) -> Vec<T> {
    let mut v = vec![T::default(); n];
    // SAFETY: `v` is writable for its size.
    let r = unsafe { cuMemcpyDtoHAsync_v2(v.as_mut_ptr().cast(), src, std::mem::size_of_val(&v[..]), s) };
    assert_eq!(r, OK);
    v
}

pub fn try_module(source: &str) -> Result<CUmodule, CUresult> {
    let image = CString::new(format!("//streamdsl-sim-source v1\n{source}")).unwrap();
    let mut m = std::ptr::null_mut();
    // SAFETY: a NUL-terminated image, an out-parameter.
    match unsafe { cuModuleLoadData(&mut m, image.as_ptr().cast()) } {
        OK => Ok(m),
        e => Err(e),
    }
}

pub fn module(source: &str) -> CUmodule {
    try_module(source).unwrap_or_else(|e| panic!("module did not load: {e:?}"))
}

pub fn function(m: CUmodule, name: &str) -> CUfunction {
    let n = CString::new(name).unwrap();
    let mut f = std::ptr::null_mut();
    // SAFETY: out-parameter, NUL-terminated name.
    assert_eq!(unsafe { cuModuleGetFunction(&mut f, m, n.as_ptr()) }, OK, "no function {name}");
    f
}

/// A pointer to a kernel argument.
pub fn arg<T>(v: &mut T) -> *mut c_void {
    (v as *mut T).cast()
}

pub fn launch(f: CUfunction, grid: (u32, u32, u32), block: u32, s: CUstream, args: &mut [*mut c_void]) -> CUresult {
    // SAFETY: `args` holds one pointer per parameter (the tests build them next to the signatures).
    unsafe { cuLaunchKernel(f, grid.0, grid.1, grid.2, block, 1, 1, 0, s, args.as_mut_ptr(), std::ptr::null_mut()) }
}

/// The simulator's last report.
pub fn last_report() -> String {
    let mut buf = vec![0u8; 8192];
    // SAFETY: writable buffer of that length.
    let n = unsafe { streamdsl_sim_last_error(buf.as_mut_ptr().cast(), buf.len()) };
    buf.truncate(n.min(buf.len() - 1));
    String::from_utf8_lossy(&buf).into_owned()
}
