// Sum reduction in double along a fixed tree that depends only on the element count, so every GPU (whatever
// its multiprocessor count) and the CPU backend (whatever its thread count) give the same bits:
//   - the input is cut into chunks of SUM_CHUNK = 16 * BLOCK elements, one block per chunk;
//   - thread t adds elements t, t + BLOCK, t + 2 BLOCK, ... of its chunk in order, starting from 0.0;
//   - the block's BLOCK partial sums are added pairwise: lane t += lane t + s for s = BLOCK/2, ..., 1;
//   - the chunk sums are summed again the same way until one value is left; `sum_write` scales it and rounds
//     it once to T.
// Defines: T (element type), BLOCK (threads per block, a power of two).
#include "common.cuh"

#define SUM_CHUNK (16 * (u64)BLOCK)

template <typename E> __device__ __forceinline__ void chunk_sum(const E* __restrict__ in, u64 n, double* __restrict__ out) {
    __shared__ double lanes[BLOCK];
    const u64 start = (u64)blockIdx.x * SUM_CHUNK;
    const u64 end = start + SUM_CHUNK < n ? start + SUM_CHUNK : n;
    double acc = 0.0;
    for (u64 i = start + threadIdx.x; i < end; i += BLOCK) acc = __dadd_rn(acc, to_double(in[i]));
    lanes[threadIdx.x] = acc;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) lanes[threadIdx.x] = __dadd_rn(lanes[threadIdx.x], lanes[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = lanes[0];
}

// One level of the tree over the input: out[c] = the sum of chunk c of a[0..n).
extern "C" __global__ void __launch_bounds__(BLOCK) sum_chunks(const T* __restrict__ a, u64 n, double* __restrict__ out) {
    chunk_sum(a, n, out);
}

// One level of the tree over the previous level's sums.
extern "C" __global__ void __launch_bounds__(BLOCK) sum_chunks_f64(const double* __restrict__ a, u64 n,
                                                                   double* __restrict__ out) {
    chunk_sum(a, n, out);
}

// out[0] = scale * total, rounded once to T.
extern "C" __global__ void sum_write(const double* __restrict__ total, double scale, T* __restrict__ out) {
    out[0] = from_double<T>(__dmul_rn(total[0], scale));
}
