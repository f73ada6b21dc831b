//! The stream-ordered pool at a configured capacity (`STREAMDSL_SIM_MEMORY`): out of memory at the capacity,
//! memory whose free is still pending stays used, recovery once the free has run. Its own test binary: the
//! configuration is read once per process.
mod common;
use common::*;

use std::ffi::c_void;

unsafe extern "C" fn wait_flag(data: *mut c_void) {
    // SAFETY: `data` points at the static flag below.
    let flag = unsafe { &*(data as *const std::sync::atomic::AtomicBool) };
    while !flag.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

static GATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[test]
fn out_of_memory_at_capacity_and_recovery() {
    std::env::set_var("STREAMDSL_SIM_MEMORY", "1048576");
    setup();
    let (s, fs) = (stream(0), stream(0));
    let mut total = 0usize;
    // SAFETY: out-parameters.
    assert_eq!(unsafe { cuMemGetInfo_v2(&mut 0, &mut total) }, OK);
    assert_eq!(total, 1 << 20);
    let a = alloc(600 << 10, s);
    let mut p = 0;
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuMemAllocAsync(&mut p, 600 << 10, s) }, CUresult::CUDA_ERROR_OUT_OF_MEMORY);
    // A free that has not run yet (its stream is blocked) does not give the memory back.
    assert_eq!(cuLaunchHostFunc(fs, Some(wait_flag), &GATE as *const _ as *mut c_void), OK);
    let e = record(s);
    assert_eq!(cuStreamWaitEvent(fs, e, 0), OK);
    assert_eq!(cuMemFreeAsync(a, fs), OK);
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuMemAllocAsync(&mut p, 600 << 10, s) }, CUresult::CUDA_ERROR_OUT_OF_MEMORY);
    GATE.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(cuStreamSynchronize(fs), OK);
    // The pool holds the freed memory (release threshold 0: released at the synchronisation) and reuses it.
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuMemAllocAsync(&mut p, 600 << 10, s) }, OK);
    // A synchronous allocation cannot use memory the pool holds.
    let mut pool = std::ptr::null_mut();
    // SAFETY: out-parameters.
    unsafe {
        assert_eq!(cuDeviceGetDefaultMemPool(&mut pool, 0), OK);
        let mut keep = u64::MAX;
        assert_eq!(cuMemPoolSetAttribute(pool, 4, (&mut keep as *mut u64).cast()), OK);
    }
    assert_eq!(cuMemFreeAsync(p, s), OK);
    assert_eq!(cuStreamSynchronize(s), OK);
    let mut q = 0;
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuMemAlloc_v2(&mut q, 600 << 10) }, CUresult::CUDA_ERROR_OUT_OF_MEMORY, "held by the pool");
    assert_eq!(cuMemPoolTrimTo(pool, 0), OK);
    // SAFETY: out-parameter.
    assert_eq!(unsafe { cuMemAlloc_v2(&mut q, 600 << 10) }, OK);
    assert_eq!(cuMemFree_v2(q), OK);
    assert_eq!(cuMemFree_v2(q), CUresult::CUDA_ERROR_INVALID_VALUE);
}
