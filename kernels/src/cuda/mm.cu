// Matrix products C[b] = A[b] · B[b], row-major, any shape (edge tiles are bounds-checked and zero-filled).
// A batch stride of 0 shares that operand across the batch (blockIdx.z is the batch index).
//
// mm_tiled (f32, f64): shared-memory tiles of BM×BK and BK×BN, each thread accumulating a TM×TN register
// block in ACC. Defines: T, ACC, BM, BN, BK, TM, TN.
// mm_mma (f16, bf16): tensor cores through `mma.sync.m16n8k16` (ptx.cuh) with f32 accumulation; a 64×64
// block tile, four warps of 32×32, BK = 32. Defines: T, MMA (1), MMA_AB ("f16" or "bf16"; the element type T
// picks the instruction).
#include "common.cuh"

#ifndef MMA

#define THREADS ((BM / TM) * (BN / TN))

extern "C" __global__ void __launch_bounds__(THREADS)
mm_tiled(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K,
         u64 a_batch_stride, u64 b_batch_stride) {
    __shared__ ACC As[BK][BM];  // transposed: a thread's TM values of one k are contiguous
    __shared__ ACC Bs[BK][BN];
    A += blockIdx.z * a_batch_stride;
    B += blockIdx.z * b_batch_stride;
    C += blockIdx.z * (u64)M * N;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int tid = threadIdx.x;
    const int tr = tid / (BN / TN), tc = tid % (BN / TN);

    ACC acc[TM][TN];
    #pragma unroll
    for (int m = 0; m < TM; ++m)
        #pragma unroll
        for (int n = 0; n < TN; ++n) acc[m][n] = (ACC)0;

    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int i = tid; i < BM * BK; i += THREADS) {
            const int r = i / BK, c = i % BK, gr = row0 + r, gc = k0 + c;
            As[c][r] = (gr < M && gc < K) ? (ACC)A[(u64)gr * K + gc] : (ACC)0;
        }
        for (int i = tid; i < BK * BN; i += THREADS) {
            const int r = i / BN, c = i % BN, gr = k0 + r, gc = col0 + c;
            Bs[r][c] = (gr < K && gc < N) ? (ACC)B[(u64)gr * N + gc] : (ACC)0;
        }
        __syncthreads();
        #pragma unroll
        for (int k = 0; k < BK; ++k) {
            ACC a[TM], b[TN];
            #pragma unroll
            for (int m = 0; m < TM; ++m) a[m] = As[k][tr * TM + m];
            #pragma unroll
            for (int n = 0; n < TN; ++n) b[n] = Bs[k][tc * TN + n];
            #pragma unroll
            for (int m = 0; m < TM; ++m)
                #pragma unroll
                for (int n = 0; n < TN; ++n) acc[m][n] = fma(a[m], b[n], acc[m][n]);
        }
        __syncthreads();
    }
    #pragma unroll
    for (int m = 0; m < TM; ++m) {
        const int r = row0 + tr * TM + m;
        if (r >= M) continue;
        #pragma unroll
        for (int n = 0; n < TN; ++n) {
            const int c = col0 + tc * TN + n;
            if (c < N) C[(u64)r * N + c] = (T)acc[m][n];
        }
    }
}

#else  // MMA: f16 / bf16 on tensor cores

// One warp computes a 32×32 tile of C as 2×4 `mma.sync.m16n8k16` tiles (A row-major 16×16, B column
// fragments 16×8, f32 accumulators); four warps make the 64×64 block tile; BK = 32 per shared stage.
#define WM_TILE 64
#define WM_BK 32
#define A_LD (WM_BK + 8)   // padded (16-bit elements; even, so pairs load as one 32-bit word)
#define B_LD (WM_TILE + 8)

// One mma.sync.m16n8k16 (ptx.cuh) for the element type: acc += A·B.
__device__ __forceinline__ void mma_tile(f16_t, float (&acc)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    ptx_mma_m16n8k16_f16(acc, a, b);
}
__device__ __forceinline__ void mma_tile(bf16_t, float (&acc)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    ptx_mma_m16n8k16_bf16(acc, a, b);
}

__device__ __forceinline__ u32 pack(unsigned short lo, unsigned short hi) { return (u32)lo | ((u32)hi << 16); }

extern "C" __global__ void __launch_bounds__(128)
mm_mma(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K,
       u64 a_batch_stride, u64 b_batch_stride) {
    __shared__ __align__(16) unsigned short As[WM_TILE][A_LD];
    __shared__ __align__(16) unsigned short Bs[WM_BK][B_LD];
    A += blockIdx.z * a_batch_stride;
    B += blockIdx.z * b_batch_stride;
    C += blockIdx.z * (u64)M * N;
    const int row0 = blockIdx.y * WM_TILE, col0 = blockIdx.x * WM_TILE;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = (warp / 2) * 32, wn = (warp % 2) * 32;   // the warp's tile inside the block tile
    const int g = lane / 4, t = lane % 4;                    // mma fragment coordinates

    float acc[2][4][4];
    #pragma unroll
    for (int i = 0; i < 2; ++i)
        #pragma unroll
        for (int j = 0; j < 4; ++j)
            #pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += WM_BK) {
        for (int i = threadIdx.x; i < WM_TILE * WM_BK; i += 128) {
            const int r = i / WM_BK, c = i % WM_BK, gr = row0 + r, gc = k0 + c;
            As[r][c] = (gr < M && gc < K) ? A[(u64)gr * K + gc].bits : (unsigned short)0;
        }
        for (int i = threadIdx.x; i < WM_BK * WM_TILE; i += 128) {
            const int r = i / WM_TILE, c = i % WM_TILE, gr = k0 + r, gc = col0 + c;
            Bs[r][c] = (gr < K && gc < N) ? B[(u64)gr * N + gc].bits : (unsigned short)0;
        }
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < WM_BK; kk += 16) {
            u32 a[2][4], b[4][2];
            #pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int r = wm + i * 16 + g, c = kk + 2 * t;
                a[i][0] = pack(As[r][c], As[r][c + 1]);
                a[i][1] = pack(As[r + 8][c], As[r + 8][c + 1]);
                a[i][2] = pack(As[r][c + 8], As[r][c + 9]);
                a[i][3] = pack(As[r + 8][c + 8], As[r + 8][c + 9]);
            }
            #pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int n = wn + j * 8 + g, k = kk + 2 * t;
                b[j][0] = pack(Bs[k][n], Bs[k + 1][n]);
                b[j][1] = pack(Bs[k + 8][n], Bs[k + 9][n]);
            }
            #pragma unroll
            for (int i = 0; i < 2; ++i)
                #pragma unroll
                for (int j = 0; j < 4; ++j) mma_tile(T(), acc[i][j], a[i], b[j]);
        }
        __syncthreads();
    }
    // Accumulator r of tile (i, j) is C[wm + 16i + g + 8(r / 2)][wn + 8j + 2t + r % 2].
    #pragma unroll
    for (int i = 0; i < 2; ++i)
        #pragma unroll
        for (int j = 0; j < 4; ++j)
            #pragma unroll
            for (int r = 0; r < 4; ++r) {
                const int gr = row0 + wm + i * 16 + g + 8 * (r / 2), gc = col0 + wn + j * 8 + 2 * t + r % 2;
                if (gr < M && gc < N) C[(u64)gr * N + gc] = from_float<T>(acc[i][j][r]);
            }
}

#endif
