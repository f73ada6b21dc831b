// Philox4x32-10 and Box-Muller, bit-compatible with streamdsl's CPU backend (streamdsl/src/random/philox.rs):
// element i of a call with (seed, offset) is word i % 4 of philox(counter = (i/4 lo, i/4 hi, offset lo,
// offset hi), key = (seed lo, seed hi)).
#pragma once

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

struct u32x4 { u32 x, y, z, w; };

__device__ __forceinline__ u32x4 philox_round(u32x4 c, u32 k0, u32 k1) {
    u32 hi0 = __umulhi(PHILOX_M0, c.x), lo0 = PHILOX_M0 * c.x;
    u32 hi1 = __umulhi(PHILOX_M1, c.z), lo1 = PHILOX_M1 * c.z;
    u32x4 r = { hi1 ^ c.y ^ k0, lo1, hi0 ^ c.w ^ k1, lo0 };
    return r;
}

__device__ __forceinline__ u32x4 philox4x32_10(u32x4 c, u32 k0, u32 k1) {
    c = philox_round(c, k0, k1);
    #pragma unroll
    for (int i = 1; i < 10; ++i) {
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
        c = philox_round(c, k0, k1);
    }
    return c;
}

// A uniform in (0, 1]: x * 2^-32 + 2^-33, as on the CPU.
__device__ __forceinline__ float uniform_f32(u32 x) { return __fadd_rn(__fmul_rn((float)x, 2.3283064e-10f), 1.1641532e-10f); }
__device__ __forceinline__ double uniform_f64(u32 x) {
    return __dadd_rn(__dmul_rn((double)x, 2.3283064365386963e-10), 1.1641532182693481e-10);
}
