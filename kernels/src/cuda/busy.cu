// `busy`: each block spins for `ns` nanoseconds of the GPU's global timer, then exits. It does no work; the
// test suite uses it to hold streams busy for a known time (overlap of streams, priority scheduling).
#include "common.cuh"

__device__ __forceinline__ u64 global_ns() {
    u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

extern "C" __global__ void busy(u64 ns) {
    const u64 start = global_ns();
    while (global_ns() - start < ns) {
        asm volatile("nanosleep.u32 1000;");
    }
}
