//! Driver functions the simulator does not implement, exported so that a caller that looks them up gets
//! `CUDA_ERROR_NOT_SUPPORTED` instead of a missing symbol (cudarc resolves symbols lazily, one at a time,
//! and panics on a missing one). Arguments are ignored (the C calling convention lets a callee ignore them).

use cudarc::driver::sys::CUresult;

macro_rules! not_supported {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($name), "`: not simulated (`CUDA_ERROR_NOT_SUPPORTED`).")]
        #[no_mangle]
        pub extern "C" fn $name() -> CUresult {
            super::guard(stringify!($name), true, || CUresult::CUDA_ERROR_NOT_SUPPORTED)
        }
    )*};
}

not_supported!(
    cuCtxCreate_v2,
    cuCtxCreate_v4,
    cuCtxDestroy_v2,
    cuDevicePrimaryCtxReset_v2,
    cuDevicePrimaryCtxSetFlags_v2,
    cuDeviceGetUuid_v2,
    cuDeviceGetPCIBusId,
    cuMemAllocHost_v2,
    cuMemFreeHost,
    cuMemHostAlloc,
    cuMemHostRegister_v2,
    cuMemHostUnregister,
    cuMemAllocManaged,
    cuMemAllocPitch_v2,
    cuMemAllocFromPoolAsync,
    cuMemPoolCreate,
    cuMemPoolDestroy,
    cuMemcpy,
    cuMemcpyAsync,
    cuMemcpyPeerAsync,
    cuMemcpy2DAsync_v2,
    cuMemsetD16Async,
    cuMemsetD32Async,
    cuMemsetD8_v2,
    cuMemcpyDtoD_v2,
    cuPointerGetAttribute,
    cuPointerGetAttributes,
    cuModuleLoad,
    cuModuleLoadFatBinary,
    cuModuleGetGlobal_v2,
    cuLinkCreate_v2,
    cuLinkAddData_v2,
    cuLinkComplete,
    cuLinkDestroy,
    cuLaunchCooperativeKernel,
    cuLaunchKernelEx,
    cuFuncSetAttribute,
    cuFuncSetCacheConfig,
    cuOccupancyMaxActiveBlocksPerMultiprocessor,
    cuOccupancyMaxPotentialBlockSize,
    cuStreamAddCallback,
    cuStreamBeginCapture_v2,
    cuStreamEndCapture,
    cuStreamIsCapturing,
    cuGraphCreate,
    cuGraphInstantiateWithFlags,
    cuGraphLaunch,
    cuGraphDestroy,
    cuGraphExecDestroy,
    cuIpcGetMemHandle,
    cuIpcOpenMemHandle_v2,
    cuGetExportTable,
);
