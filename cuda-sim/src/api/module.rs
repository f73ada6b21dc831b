//! Modules (the source-image protocol), functions and launches.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::Arc;

use cudarc::driver::sys::{CUfunction, CUmodule, CUresult, CUstream};

use super::stream::lookup;
use super::{guard, put, status};
use crate::check::alloc;
use crate::check::race::{self, Mode};
use crate::check::report::report;
use crate::driver::config::config;
use crate::driver::stream::{Op, Work};
use crate::driver::{self};
use crate::exec::abi::Dim3;
use crate::exec::compile::{self, CompileError, MAGIC};
use crate::exec::launch::Launch;
use crate::exec::module::{self, ParamKind};

/// `cuModuleLoadData`. The image must be a NUL-terminated text whose first line is
/// `//streamdsl-sim-source v1`, followed by the complete CUDA C source; anything else (a CUBIN, PTX) is
/// `CUDA_ERROR_INVALID_IMAGE`. The source is compiled as host C++ (see `exec::compile`).
///
/// # Safety
/// `image` must be null or a NUL-terminated string (or the start of a binary image, which is rejected
/// after reading up to its first NUL byte); `module` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut CUmodule, image: *const c_void) -> CUresult {
    guard("cuModuleLoadData", true, || {
        if let Err(e) = driver::current() {
            return e;
        }
        if image.is_null() || module.is_null() {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        // SAFETY: per the contract.
        let text = unsafe { CStr::from_ptr(image.cast::<c_char>()) };
        let Some(source) = text.to_str().ok().and_then(|t| t.strip_prefix(MAGIC)).and_then(|t| t.strip_prefix('\n'))
        else {
            report(
                CUresult::CUDA_ERROR_INVALID_IMAGE,
                format!(
                    "cuModuleLoadData: the image is not simulator source (a first line `{MAGIC}` then CUDA C); \
                     CUBIN and PTX images cannot run on the simulated GPU"
                ),
            );
            return CUresult::CUDA_ERROR_INVALID_IMAGE;
        };
        let handle = driver::next_handle();
        let mut attempt = 0;
        let m = loop {
            let path = match compile::build(source) {
                Ok(p) => p,
                Err(CompileError::NoCompiler(t)) => {
                    report(CUresult::CUDA_ERROR_JIT_COMPILER_NOT_FOUND, t);
                    return CUresult::CUDA_ERROR_JIT_COMPILER_NOT_FOUND;
                }
                Err(CompileError::Failed(t)) => {
                    report(CUresult::CUDA_ERROR_INVALID_SOURCE, t);
                    return CUresult::CUDA_ERROR_INVALID_SOURCE;
                }
                Err(CompileError::Io(t)) => {
                    report(CUresult::CUDA_ERROR_OPERATING_SYSTEM, format!("building a kernel module: {t}"));
                    return CUresult::CUDA_ERROR_OPERATING_SYSTEM;
                }
            };
            match module::open(&path, handle) {
                Ok(m) => break m,
                Err(e) if attempt == 0 => {
                    // A corrupt cache entry: rebuild it once.
                    let _ = e;
                    compile::evict(&path);
                    attempt += 1;
                }
                Err(e) => {
                    report(CUresult::CUDA_ERROR_INVALID_IMAGE, format!("loading a kernel module: {e}"));
                    return CUresult::CUDA_ERROR_INVALID_IMAGE;
                }
            }
        };
        driver::registry().modules.insert(handle, Arc::new(m));
        // SAFETY: per the contract.
        status(unsafe { put(module, handle as CUmodule) })
    })
}

/// `cuModuleLoadDataEx` (JIT options are ignored).
///
/// # Safety
/// As [`cuModuleLoadData`].
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    module: *mut CUmodule,
    image: *const c_void,
    _n: c_uint,
    _options: *mut c_void,
    _values: *mut *mut c_void,
) -> CUresult {
    // SAFETY: per the contract.
    unsafe { cuModuleLoadData(module, image) }
}

/// `cuModuleUnload`: its handles become invalid (the code stays mapped).
#[no_mangle]
pub extern "C" fn cuModuleUnload(module: CUmodule) -> CUresult {
    guard("cuModuleUnload", true, || {
        let mut reg = driver::registry();
        match reg.modules.remove(&(module as u64)) {
            Some(m) => {
                reg.functions.retain(|_, f| f.module.handle != m.handle);
                CUresult::CUDA_SUCCESS
            }
            None => CUresult::CUDA_ERROR_INVALID_HANDLE,
        }
    })
}

/// `cuModuleGetFunction`.
///
/// # Safety
/// `name` must be a NUL-terminated string; `f` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(f: *mut CUfunction, module: CUmodule, name: *const c_char) -> CUresult {
    guard("cuModuleGetFunction", true, || {
        if name.is_null() || f.is_null() {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        // SAFETY: per the contract.
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
        let Some(m) = driver::registry().modules.get(&(module as u64)).cloned() else {
            return CUresult::CUDA_ERROR_INVALID_HANDLE;
        };
        let Some(func) = m.function(&name, driver::next_handle) else { return CUresult::CUDA_ERROR_NOT_FOUND };
        driver::registry().functions.insert(func.handle, Arc::clone(&func));
        // SAFETY: per the contract.
        status(unsafe { put(f, func.handle as CUfunction) })
    })
}

/// `cuFuncGetAttribute` (basic: max threads from `__launch_bounds__`; register and memory sizes are not
/// modelled and read as plausible constants).
///
/// # Safety
/// `value` must be null or writable.
#[no_mangle]
pub unsafe extern "C" fn cuFuncGetAttribute(value: *mut c_int, attr: c_uint, f: CUfunction) -> CUresult {
    guard("cuFuncGetAttribute", true, || {
        let Some(func) = driver::registry().functions.get(&(f as u64)).cloned() else {
            return CUresult::CUDA_ERROR_INVALID_HANDLE;
        };
        let (major, minor) = config().cc;
        let v = match attr {
            0 => func.max_threads as c_int,
            1..=3 => 0,
            4 => 32,
            5 | 6 => (major * 10 + minor) as c_int,
            7 => 0,
            8 => 48 * 1024,
            9 => -1,
            _ => return CUresult::CUDA_ERROR_INVALID_VALUE,
        };
        // SAFETY: per the contract.
        status(unsafe { put(value, v) })
    })
}

/// `cuLaunchKernel`. Dynamic shared memory and `extra` are not supported (`CUDA_ERROR_NOT_SUPPORTED`).
/// The arguments are copied at the call. Pointer arguments that point into allocations are the kernel's
/// accesses for the race checker: pointer-to-const reads, pointer-to-non-const writes.
///
/// # Safety
/// `params` must hold one pointer per kernel parameter, each to a value of the parameter's type.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: CUfunction,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    shared: c_uint,
    stream: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    guard("cuLaunchKernel", true, || {
        let s = match lookup(stream) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(func) = driver::registry().functions.get(&(f as u64)).cloned() else {
            return CUresult::CUDA_ERROR_INVALID_HANDLE;
        };
        if [gx, gy, gz, bx, by, bz].contains(&0) || gx > i32::MAX as u32 || gy > 65535 || gz > 65535 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        if bx > 1024 || by > 1024 || bz > 64 || u64::from(bx) * u64::from(by) * u64::from(bz) > 1024 {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        let threads = bx * by * bz;
        if threads > func.max_threads {
            report(
                CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
                format!(
                    "cuLaunchKernel: kernel `{}` launched with {threads} threads per block, more than its \
                     __launch_bounds__ ({})",
                    func.name, func.max_threads
                ),
            );
            return CUresult::CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
        }
        if shared != 0 || !extra.is_null() {
            report(
                CUresult::CUDA_ERROR_NOT_SUPPORTED,
                "cuLaunchKernel: dynamic shared memory and `extra` arguments are not simulated".into(),
            );
            return CUresult::CUDA_ERROR_NOT_SUPPORTED;
        }
        let n = func.params.len();
        if n > 0 && params.is_null() {
            return CUresult::CUDA_ERROR_INVALID_VALUE;
        }
        let mut args = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: per the contract, `params` holds `n` pointers.
            let p = unsafe { *params.add(i) };
            if p.is_null() {
                return CUresult::CUDA_ERROR_INVALID_VALUE;
            }
            args.push(p.cast_const());
        }
        let stamp = race::begin(s.id, |seq| format!("kernel `{}` on {} (op {seq})", func.name, s.describe()));
        let what = format!("kernel `{}`", func.name);
        // SAFETY: `args` holds one pointer per parameter, each to a value of the parameter's size (contract).
        let launch = unsafe {
            Launch::new(Arc::clone(&func), Dim3 { x: gx, y: gy, z: gz }, Dim3 { x: bx, y: by, z: bz }, &args, what)
        };
        let mut accesses: Vec<(u64, Mode, String)> = Vec::new();
        for (i, p) in func.params.iter().enumerate() {
            let mode = match p.kind {
                ParamKind::Value => continue,
                ParamKind::ConstPtr => Mode::Read,
                ParamKind::MutPtr => Mode::Write,
            };
            let Some(a) = launch.pointer_arg(i).and_then(alloc::find) else { continue };
            match accesses.iter_mut().find(|(id, _, _)| *id == a.id) {
                Some(e) => {
                    if mode == Mode::Write {
                        e.1 = Mode::Write;
                    }
                }
                None => accesses.push((a.id, mode, a.describe())),
            }
        }
        if let Err(text) = race::access(&stamp, &accesses) {
            let fault = report(CUresult::CUDA_ERROR_LAUNCH_FAILED, text);
            return status(s.enqueue(Op { work: Work::Fault(fault), done: None }));
        }
        status(s.enqueue(Op { work: Work::Kernel(Box::new(launch)), done: None }))
    })
}
