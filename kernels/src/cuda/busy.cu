// `busy`: each block spins for `ns` nanoseconds of the GPU's global timer, then exits. It does no work; the
// test suite uses it to hold streams busy for a known time (overlap of streams, priority scheduling).
#include "common.cuh"

extern "C" __global__ void busy(u64 ns) {
    const u64 start = ptx_globaltimer();
    while (ptx_globaltimer() - start < ns) {
        ptx_nanosleep(1000);
    }
}
