// Shared definitions of streamdsl's CUDA kernels. Self-contained: no CUDA headers are needed, so NVRTC
// compiles them with nothing but its own library. The JIT prepends the specialisation's defines (element
// types, tile sizes) before this file's contents.
#pragma once

#include "ptx.cuh"

typedef unsigned int u32;
typedef unsigned long long u64;

// 16-bit element types as storage; arithmetic goes through float/double (PTX `cvt` in ptx.cuh, round to
// nearest even).
struct f16_t { unsigned short bits; };
struct bf16_t { unsigned short bits; };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(double x) { return (float)x; }
__device__ __forceinline__ float to_float(f16_t x) { return ptx_cvt_f32_f16(x.bits); }
__device__ __forceinline__ float to_float(bf16_t x) { return __uint_as_float(((u32)x.bits) << 16); }
template <typename E> __device__ __forceinline__ double to_double(E x) { return (double)to_float(x); }
template <> __device__ __forceinline__ double to_double<double>(double x) { return x; }

template <typename E> __device__ __forceinline__ E from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ double from_float<double>(float x) { return (double)x; }
template <> __device__ __forceinline__ f16_t from_float<f16_t>(float x) {
    f16_t h;
    h.bits = ptx_cvt_rn_f16_f32(x);
    return h;
}
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
    bf16_t h;
    h.bits = ptx_cvt_rn_bf16_f32(x);
    return h;
}

// double -> float rounding to odd: truncate, then set the last bit if anything was lost. Rounding that
// result to a 16-bit type (nearest even) equals rounding the double directly (float keeps >= 2 extra bits).
__device__ __forceinline__ float round_to_odd_f32(double x) {
    float r = ptx_cvt_rz_f32_f64(x);
    if ((double)r != x && x == x) r = __uint_as_float(__float_as_uint(r) | 1u);
    return r;
}

template <typename E> __device__ __forceinline__ E from_double(double x) { return from_float<E>(round_to_odd_f32(x)); }
template <> __device__ __forceinline__ float from_double<float>(double x) { return (float)x; }
template <> __device__ __forceinline__ double from_double<double>(double x) { return x; }

// A grid-stride loop over [0, n).
#define FOR_EACH_INDEX(i, n) \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (u64)blockDim.x * gridDim.x)
