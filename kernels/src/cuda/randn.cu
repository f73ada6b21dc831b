// randn: standard normals. Defines: OUT_T (element type), WIDE (1 to compute in double, for f64).
// Box-Muller comes from math.cuh, the twin of the CPU backend's streamdsl::math: the same bits on both.
#include "common.cuh"
#include "philox.cuh"
#include "math.cuh"

extern "C" __global__ void randn(OUT_T* __restrict__ out, u64 n, u64 seed, u64 offset) {
    const u64 groups = (n + 3) / 4;
    const u32 k0 = (u32)seed, k1 = (u32)(seed >> 32);
    FOR_EACH_INDEX(g, groups) {
        u32x4 ctr = { (u32)g, (u32)(g >> 32), (u32)offset, (u32)(offset >> 32) };
        u32x4 b = philox4x32_10(ctr, k0, k1);
        u32 bits[4] = { b.x, b.y, b.z, b.w };
        double z[4];
#if WIDE
        box_muller_f64(bits[0], bits[1], &z[0], &z[1]);
        box_muller_f64(bits[2], bits[3], &z[2], &z[3]);
#else
        float f[4];
        box_muller_f32(bits[0], bits[1], &f[0], &f[1]);
        box_muller_f32(bits[2], bits[3], &f[2], &f[3]);
        for (int j = 0; j < 4; ++j) z[j] = (double)f[j];  // exact: from_double then rounds the float once
#endif
        const u64 base = g * 4;
        for (int j = 0; j < 4 && base + j < n; ++j) {
            out[base + j] = from_double<OUT_T>(z[j]);
        }
    }
}

// The raw Philox words, for checking bit-equality with the CPU backend.
extern "C" __global__ void philox_bits(u32* __restrict__ out, u64 groups, u64 seed, u64 offset) {
    FOR_EACH_INDEX(g, groups) {
        u32x4 ctr = { (u32)g, (u32)(g >> 32), (u32)offset, (u32)(offset >> 32) };
        u32x4 b = philox4x32_10(ctr, (u32)seed, (u32)(seed >> 32));
        out[4 * g] = b.x;
        out[4 * g + 1] = b.y;
        out[4 * g + 2] = b.z;
        out[4 * g + 3] = b.w;
    }
}
