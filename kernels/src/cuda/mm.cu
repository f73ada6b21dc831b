// Matrix products C[b] = A[b] · B[b], row-major, any shape (edge tiles are bounds-checked and zero-filled).
// A batch stride of 0 shares that operand across the batch (blockIdx.z is the batch index).
//
// Both kernels stage BM×BK tiles of A and BK×BN tiles of B in shared memory, two stages deep: while the
// block computes on one stage, each thread's loads of the next tile are in flight in registers, stored to the
// other stage after the compute (one barrier per tile). Global loads are 128-bit where a matrix's rows start
// 16-byte aligned (K, resp. N, a multiple of 16 bytes' worth of elements and the base pointer aligned); else
// the same tiles are gathered element by element (the edge / unaligned path), zero-filled past the edges.
//
// mm_tiled (f32, f64): each thread accumulates a TM×TN register block, split in two halves 64 rows / columns
// apart so that neighbouring threads read neighbouring 16-byte words of shared memory (conflict-free);
// A is stored transposed (k-major, padded by one 16-byte word per row: conflict-free stores).
// Defines: T, ACC, BM, BN, BK, TM, TN.
// mm_mma (f16, bf16): tensor cores through `mma.sync.m16n8k16` with f32 accumulation; warps of TM×TN
// (a multiple of 16×16), fragments loaded with `ldmatrix` (x4, and x4.trans for B) from padded shared tiles
// (conflict-free); BK = 32. Defines: T, MMA (1), MMA_AB ("f16" or "bf16"; the element type T picks the
// instruction), BM, BN, BK, TM, TN.
#include "common.cuh"

#ifndef MMA

#define THREADS ((BM / TM) * (BN / TN))
#define VEC (16 / (int)sizeof(T))        // elements per 128-bit access
#define A_LD (BM + VEC)                  // transposed A, padded by one 16-byte word per k
#define A_CHUNKS (BM * BK / VEC)         // 128-bit words per tile
#define B_CHUNKS (BK * BN / VEC)
#define A_LOADS ((A_CHUNKS + THREADS - 1) / THREADS)
#define B_LOADS ((B_CHUNKS + THREADS - 1) / THREADS)
#define HM (TM / 2)                      // a thread's rows: [tr·HM, +HM) and [BM/2 + tr·HM, +HM)
#define HN (TN / 2)

// One 128-bit load or store of VEC elements.
__device__ __forceinline__ void ld128(const float* p, float (&r)[4]) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    r[0] = v.x, r[1] = v.y, r[2] = v.z, r[3] = v.w;
}
__device__ __forceinline__ void ld128(const double* p, double (&r)[2]) {
    const double2 v = *reinterpret_cast<const double2*>(p);
    r[0] = v.x, r[1] = v.y;
}
__device__ __forceinline__ void st128(float* p, const float* r) { *reinterpret_cast<float4*>(p) = make_float4(r[0], r[1], r[2], r[3]); }
__device__ __forceinline__ void st128(double* p, const double* r) { *reinterpret_cast<double2*>(p) = make_double2(r[0], r[1]); }

// N consecutive elements of shared memory into registers, 128 bits at a time where N fills whole words.
template <int N> __device__ __forceinline__ void lds(const ACC* p, ACC (&r)[N]) {
    if constexpr ((N * sizeof(ACC)) % 16 == 0) {
        #pragma unroll
        for (int i = 0; i < N; i += VEC) {
            ACC v[VEC];
            ld128(p + i, v);
            #pragma unroll
            for (int j = 0; j < VEC; ++j) r[i + j] = v[j];
        }
    } else {
        #pragma unroll
        for (int i = 0; i < N; ++i) r[i] = p[i];
    }
}

// Chunk c of a rows × cols tile (row-major, VEC elements per chunk) read from a global matrix with `ld`
// elements per row, the tile's corner at (r0, c0) and the matrix rows × cols_max: 128-bit when `vec` (then
// `cols_max` is a multiple of VEC, so a chunk is wholly inside or outside), else element by element.
template <int COLS>
__device__ __forceinline__ void gather(const T* __restrict__ M, int ld, int r0, int c0, int rows_max, int cols_max,
                                       int c, bool vec, T (&out)[VEC]) {
    const int r = c / (COLS / VEC), col = (c % (COLS / VEC)) * VEC;
    const int gr = r0 + r, gc = c0 + col;
    if (vec) {
        if (gr < rows_max && gc < cols_max) {
            ld128(M + (u64)gr * ld + gc, out);
        } else {
            #pragma unroll
            for (int j = 0; j < VEC; ++j) out[j] = (T)0;
        }
    } else {
        #pragma unroll
        for (int j = 0; j < VEC; ++j) out[j] = (gr < rows_max && gc + j < cols_max) ? M[(u64)gr * ld + gc + j] : (T)0;
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, 2)
mm_tiled(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K,
         u64 a_batch_stride, u64 b_batch_stride) {
    __shared__ __align__(16) ACC As[2][BK][A_LD];  // transposed: As[s][k][m]
    __shared__ __align__(16) ACC Bs[2][BK][BN];
    A += blockIdx.z * a_batch_stride;
    B += blockIdx.z * b_batch_stride;
    C += blockIdx.z * (u64)M * N;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int tid = threadIdx.x;
    const int tr = tid / (BN / TN), tc = tid % (BN / TN);
    // Rows start 16-byte aligned: 128-bit loads (uniform across the block).
    const bool vec_a = K % VEC == 0 && (u64)A % 16 == 0;
    const bool vec_b = N % VEC == 0 && (u64)B % 16 == 0;

    T ra[A_LOADS][VEC], rb[B_LOADS][VEC];
    auto load = [&](int k0) {
        #pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (A_CHUNKS % THREADS == 0 || c < A_CHUNKS) gather<BK>(A, K, row0, k0, M, K, c, vec_a, ra[i]);
        }
        #pragma unroll
        for (int i = 0; i < B_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (B_CHUNKS % THREADS == 0 || c < B_CHUNKS) gather<BN>(B, N, k0, col0, K, N, c, vec_b, rb[i]);
        }
    };
    auto store = [&](int s) {
        #pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (A_CHUNKS % THREADS == 0 || c < A_CHUNKS) {
                const int r = c / (BK / VEC), k = (c % (BK / VEC)) * VEC;
                #pragma unroll
                for (int j = 0; j < VEC; ++j) As[s][k + j][r] = (ACC)ra[i][j];
            }
        }
        #pragma unroll
        for (int i = 0; i < B_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (B_CHUNKS % THREADS == 0 || c < B_CHUNKS) {
                const int r = c / (BN / VEC), n = (c % (BN / VEC)) * VEC;
                ACC v[VEC];
                #pragma unroll
                for (int j = 0; j < VEC; ++j) v[j] = (ACC)rb[i][j];
                st128(&Bs[s][r][n], v);
            }
        }
    };

    ACC acc[TM][TN];
    #pragma unroll
    for (int m = 0; m < TM; ++m)
        #pragma unroll
        for (int n = 0; n < TN; ++n) acc[m][n] = (ACC)0;

    const int tiles = (K + BK - 1) / BK;
    load(0);
    store(0);
    __syncthreads();
    for (int t = 0; t < tiles; ++t) {
        const int s = t & 1;
        if (t + 1 < tiles) load((t + 1) * BK);  // in flight during the compute below
        #pragma unroll
        for (int k = 0; k < BK; ++k) {
            ACC a0[HM], a1[HM], b0[HN], b1[HN];
            lds<HM>(&As[s][k][tr * HM], a0);
            lds<HM>(&As[s][k][BM / 2 + tr * HM], a1);
            lds<HN>(&Bs[s][k][tc * HN], b0);
            lds<HN>(&Bs[s][k][BN / 2 + tc * HN], b1);
            #pragma unroll
            for (int m = 0; m < TM; ++m)
                #pragma unroll
                for (int n = 0; n < TN; ++n) {
                    const ACC a = m < HM ? a0[m] : a1[m - HM];
                    const ACC b = n < HN ? b0[n] : b1[n - HN];
                    acc[m][n] = fma(a, b, acc[m][n]);
                }
        }
        if (t + 1 < tiles) store(s ^ 1);
        __syncthreads();
    }

    // Row m of the thread's block is tile row (m < HM ? tr·HM + m : BM/2 + tr·HM + m - HM); columns alike.
    const bool vec_c = HN % VEC == 0 && N % VEC == 0 && (u64)C % 16 == 0;
    #pragma unroll
    for (int m = 0; m < TM; ++m) {
        const int r = row0 + (m < HM ? tr * HM + m : BM / 2 + tr * HM + m - HM);
        if (r >= M) continue;
        #pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int c0 = col0 + h * (BN / 2) + tc * HN;
            if (vec_c) {
                #pragma unroll
                for (int n = 0; n < HN; n += VEC) {
                    if (c0 + n < N) {
                        T v[VEC];
                        #pragma unroll
                        for (int j = 0; j < VEC; ++j) v[j] = (T)acc[m][h * HN + n + j];
                        st128(C + (u64)r * N + c0 + n, v);
                    }
                }
            } else {
                #pragma unroll
                for (int n = 0; n < HN; ++n)
                    if (c0 + n < N) C[(u64)r * N + c0 + n] = (T)acc[m][h * HN + n];
            }
        }
    }
}

#else  // MMA: f16 / bf16 on tensor cores

#define WARPS ((BM / TM) * (BN / TN))
#define THREADS (WARPS * 32)
#define MI (TM / 16)                     // m16 tiles per warp
#define NJ (TN / 8)                      // n8 tiles per warp (even: B fragments load two at a time)
#define A_LD (BK + 8)                    // padded by 16 bytes: ldmatrix's 8 rows hit 8 different bank groups
#define B_LD (BN + 8)
#define A_CHUNKS (BM * BK / 8)           // 16-byte words (8 elements) per tile
#define B_CHUNKS (BK * BN / 8)
#define A_LOADS ((A_CHUNKS + THREADS - 1) / THREADS)
#define B_LOADS ((B_CHUNKS + THREADS - 1) / THREADS)

// One mma.sync.m16n8k16 (ptx.cuh) for the element type: acc += A·B.
__device__ __forceinline__ void mma_tile(f16_t, float (&acc)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    ptx_mma_m16n8k16_f16(acc, a, b);
}
__device__ __forceinline__ void mma_tile(bf16_t, float (&acc)[4], const u32 (&a)[4], const u32 (&b)[2]) {
    ptx_mma_m16n8k16_bf16(acc, a, b);
}

// Word c (8 elements) of a rows × COLS tile of a row-major 16-bit matrix with `ld` elements per row, the
// tile's corner at (r0, c0), the matrix rows_max × cols_max: one 128-bit load when `vec` (cols_max is then a
// multiple of 8), else element by element; zero past the edges.
template <int COLS>
__device__ __forceinline__ uint4 gather16(const T* __restrict__ M, int ld, int r0, int c0, int rows_max, int cols_max,
                                          int c, bool vec) {
    const int r = c / (COLS / 8), col = (c % (COLS / 8)) * 8;
    const int gr = r0 + r, gc = c0 + col;
    if (vec) {
        return (gr < rows_max && gc < cols_max) ? *reinterpret_cast<const uint4*>(M + (u64)gr * ld + gc)
                                                : make_uint4(0, 0, 0, 0);
    }
    u32 w[4];
    #pragma unroll
    for (int j = 0; j < 4; ++j) {
        const u32 lo = (gr < rows_max && gc + 2 * j < cols_max) ? M[(u64)gr * ld + gc + 2 * j].bits : 0u;
        const u32 hi = (gr < rows_max && gc + 2 * j + 1 < cols_max) ? M[(u64)gr * ld + gc + 2 * j + 1].bits : 0u;
        w[j] = lo | (hi << 16);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

extern "C" __global__ void __launch_bounds__(THREADS, 2)
mm_mma(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K,
       u64 a_batch_stride, u64 b_batch_stride) {
    __shared__ __align__(16) unsigned short As[2][BM][A_LD];
    __shared__ __align__(16) unsigned short Bs[2][BK][B_LD];
    A += blockIdx.z * a_batch_stride;
    B += blockIdx.z * b_batch_stride;
    C += blockIdx.z * (u64)M * N;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int wm = (warp / (BN / TN)) * TM, wn = (warp % (BN / TN)) * TN;  // the warp's tile in the block's
    const int g = lane / 4, t = lane % 4;                                  // mma fragment coordinates
    const bool vec_a = K % 8 == 0 && (u64)A % 16 == 0;
    const bool vec_b = N % 8 == 0 && (u64)B % 16 == 0;

    uint4 ra[A_LOADS], rb[B_LOADS];
    auto load = [&](int k0) {
        #pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (A_CHUNKS % THREADS == 0 || c < A_CHUNKS) ra[i] = gather16<BK>(A, K, row0, k0, M, K, c, vec_a);
        }
        #pragma unroll
        for (int i = 0; i < B_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (B_CHUNKS % THREADS == 0 || c < B_CHUNKS) rb[i] = gather16<BN>(B, N, k0, col0, K, N, c, vec_b);
        }
    };
    auto store = [&](int s) {
        #pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (A_CHUNKS % THREADS == 0 || c < A_CHUNKS)
                *reinterpret_cast<uint4*>(&As[s][c / (BK / 8)][(c % (BK / 8)) * 8]) = ra[i];
        }
        #pragma unroll
        for (int i = 0; i < B_LOADS; ++i) {
            const int c = tid + i * THREADS;
            if (B_CHUNKS % THREADS == 0 || c < B_CHUNKS)
                *reinterpret_cast<uint4*>(&Bs[s][c / (BN / 8)][(c % (BN / 8)) * 8]) = rb[i];
        }
    };

    float acc[MI][NJ][4];
    #pragma unroll
    for (int i = 0; i < MI; ++i)
        #pragma unroll
        for (int j = 0; j < NJ; ++j)
            #pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

    const int tiles = (K + BK - 1) / BK;
    load(0);
    store(0);
    __syncthreads();
    for (int kt = 0; kt < tiles; ++kt) {
        const int s = kt & 1;
        if (kt + 1 < tiles) load((kt + 1) * BK);  // in flight during the compute below
        #pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            u32 a[MI][4], b[NJ][2];
            // A: matrices 0..3 = rows 0-7 / 8-15 × k 0-7, then × k 8-15: lane l gives row (l % 16) of k half l / 16.
            #pragma unroll
            for (int i = 0; i < MI; ++i) ptx_ldmatrix_x4(a[i], &As[s][wm + i * 16 + (lane & 15)][kk + (lane >> 4) * 8]);
            // B, two n8 tiles at a time: matrices = (k 0-7, tile j), (k 8-15, j), (k 0-7, j+1), (k 8-15, j+1).
            #pragma unroll
            for (int j = 0; j < NJ; j += 2) {
                u32 q[4];
                ptx_ldmatrix_x4_trans(q, &Bs[s][kk + (lane & 15)][wn + (j + (lane >> 4)) * 8]);
                b[j][0] = q[0], b[j][1] = q[1], b[j + 1][0] = q[2], b[j + 1][1] = q[3];
            }
            #pragma unroll
            for (int i = 0; i < MI; ++i)
                #pragma unroll
                for (int j = 0; j < NJ; ++j) mma_tile(T(), acc[i][j], a[i], b[j]);
        }
        if (kt + 1 < tiles) store(s ^ 1);
        __syncthreads();
    }
    // Accumulator r of tile (i, j) is C[wm + 16i + g + 8(r / 2)][wn + 8j + 2t + r % 2]: pairs of columns, one
    // 32-bit store each where rows start 4-byte aligned.
    const bool pairs = N % 2 == 0 && (u64)C % 4 == 0;
    #pragma unroll
    for (int i = 0; i < MI; ++i)
        #pragma unroll
        for (int j = 0; j < NJ; ++j)
            #pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int gr = row0 + wm + i * 16 + g + 8 * h, gc = col0 + wn + j * 8 + 2 * t;
                if (gr >= M) continue;
                const T lo = from_float<T>(acc[i][j][2 * h]), hi = from_float<T>(acc[i][j][2 * h + 1]);
                if (pairs) {
                    if (gc < N) *reinterpret_cast<u32*>(C + (u64)gr * N + gc) = (u32)lo.bits | ((u32)hi.bits << 16);
                } else {
                    if (gc < N) C[(u64)gr * N + gc] = lo;
                    if (gc + 1 < N) C[(u64)gr * N + gc + 1] = hi;
                }
            }
}

#endif
