// Sum reduction in double, deterministic: a first pass writes one partial sum per block, a second pass
// (one block) adds the partials in a fixed order and writes scale * total as T. Defines: T, BLOCK (threads).
#include "common.cuh"

__device__ __forceinline__ double block_sum(double v) {
    __shared__ double warp_sums[BLOCK / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = threadIdx.x < BLOCK / 32 ? warp_sums[threadIdx.x] : 0.0;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    }
    return v;
}

extern "C" __global__ void __launch_bounds__(BLOCK) sum_partial(const T* __restrict__ a, u64 n,
                                                                 double* __restrict__ partial) {
    double acc = 0.0;
    FOR_EACH_INDEX(i, n) { acc += to_double(a[i]); }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

extern "C" __global__ void __launch_bounds__(BLOCK) sum_final(const double* __restrict__ partial, u64 count,
                                                               double scale, T* __restrict__ out) {
    double acc = 0.0;
    for (u64 i = threadIdx.x; i < count; i += BLOCK) acc += partial[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = from_double<T>(acc * scale);
}
