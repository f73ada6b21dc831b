//! What device work uses to enqueue on its stream: kernel launches, copies, memsets and scratch memory.
//!
//! Every function that takes a raw device address or host pointer is an `unsafe fn` whose `# Safety`
//! section says what the caller guarantees; the safe ones allocate or compute. A launcher exists only inside
//! `CudaMachine::submit`, which holds the stream's enqueue lock (not the machine's state) and has bound the
//! device's context for the whole call.

use std::ffi::c_void;

use cudarc::driver::sys::{self, CUdeviceptr, CUstream};

use super::machine::{check, CudaMachine};
use crate::error::Result;
use crate::jit::KernelSpec;

/// Enqueues on one CUDA stream, for the duration of one op's submission.
pub(crate) struct Launcher<'a> {
    machine: &'a CudaMachine,
    stream: CUstream,
}

impl<'a> Launcher<'a> {
    pub(super) fn new(machine: &'a CudaMachine, stream: CUstream) -> Launcher<'a> {
        Launcher { machine, stream }
    }

    /// Launches `entry` of `spec` with a `grid` of blocks of `block` threads.
    ///
    /// # Safety
    /// `args` must hold one pointer per parameter of `entry`, each pointing at a live value of that parameter's
    /// type (the callers build them next to the kernel signatures in `kernels/`); every device address among
    /// them must be an allocation the launching op owns for the kernel's accesses, of the sizes the kernel
    /// indexes for these arguments and grid.
    pub(crate) unsafe fn launch(
        &self,
        spec: &KernelSpec,
        entry: &str,
        grid: (u32, u32, u32),
        block: u32,
        args: &mut [*mut c_void],
    ) -> Result<()> {
        let f = self.machine.function(spec, entry)?;
        // SAFETY: per this function's contract; the grid has no zero dimension.
        check("cuLaunchKernel", unsafe {
            sys::cuLaunchKernel(
                f,
                grid.0.max(1),
                grid.1.max(1),
                grid.2.max(1),
                block,
                1,
                1,
                0,
                self.stream,
                args.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        })
    }

    /// Blocks for a grid-stride kernel over `n` items with 256-thread blocks.
    pub(crate) fn blocks_for(&self, n: u64) -> u32 {
        n.div_ceil(256).clamp(1, u64::from(self.machine.sm_count.max(1)) * 16) as u32
    }

    /// Copies `bytes` from host `src` to device `dst`.
    ///
    /// # Safety
    /// `src` must be readable for `bytes` until the copy has completed (from pageable memory the driver stages
    /// it before returning); `dst` must be a device allocation of at least `bytes` owned by this op.
    pub(crate) unsafe fn copy_to_device(&self, dst: CUdeviceptr, src: *const c_void, bytes: usize) -> Result<()> {
        // SAFETY: per the contract.
        check("cuMemcpyHtoDAsync", unsafe { sys::cuMemcpyHtoDAsync_v2(dst, src, bytes, self.stream) })
    }

    /// Copies `bytes` from device `src` to host `dst`.
    ///
    /// # Safety
    /// `dst` must be writable for `bytes` and not otherwise used until the copy has completed; `src` must be a
    /// device allocation of at least `bytes` that this op reads.
    pub(crate) unsafe fn copy_to_host(&self, dst: *mut c_void, src: CUdeviceptr, bytes: usize) -> Result<()> {
        // SAFETY: per the contract.
        check("cuMemcpyDtoHAsync", unsafe { sys::cuMemcpyDtoHAsync_v2(dst, src, bytes, self.stream) })
    }

    /// Copies `bytes` between device buffers.
    ///
    /// # Safety
    /// `src` and `dst` must be device allocations of at least `bytes` each that this op reads and writes.
    pub(crate) unsafe fn copy_device(&self, dst: CUdeviceptr, src: CUdeviceptr, bytes: usize) -> Result<()> {
        // SAFETY: per the contract.
        check("cuMemcpyDtoDAsync", unsafe { sys::cuMemcpyDtoDAsync_v2(dst, src, bytes, self.stream) })
    }

    /// Zeroes `bytes` at `dst`.
    ///
    /// # Safety
    /// `dst` must be a device allocation of at least `bytes` that this op writes.
    pub(crate) unsafe fn memset_zero(&self, dst: CUdeviceptr, bytes: usize) -> Result<()> {
        // SAFETY: per the contract.
        check("cuMemsetD8Async", unsafe { sys::cuMemsetD8Async(dst, 0, bytes, self.stream) })
    }

    /// Scratch memory for this op, ordered on its stream; free it with [`Launcher::free`]. When the device is
    /// full, waits for the pending frees and tries once more (see `CudaMachine::alloc_on`).
    pub(crate) fn scratch(&self, bytes: usize) -> Result<CUdeviceptr> {
        self.machine.alloc_on(self.stream, bytes)
    }

    /// Frees scratch memory after the work enqueued so far on this stream.
    ///
    /// # Safety
    /// `ptr` must come from [`Launcher::scratch`] of this op and be freed once; nothing enqueued later may
    /// use it.
    pub(crate) unsafe fn free(&self, ptr: CUdeviceptr) -> Result<()> {
        // SAFETY: per the contract.
        check("cuMemFreeAsync", unsafe { sys::cuMemFreeAsync(ptr, self.stream) })
    }
}
