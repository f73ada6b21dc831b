// Support for the kernels that `#[kernel]` generates from Rust: Rust's scalar types under their Rust names,
// and the operations whose Rust semantics C++ does not have (wrapping signed arithmetic, saturating float ->
// int casts, masked shifts, min/max/abs as Rust defines them), plus the transcendental functions of the portable
// math library (math.cuh) by overloading on float/double. The Rust twins are in streamdsl's `kernel::__rt`:
// each function here and there is the same sequence of IEEE operations, so both backends give the same bits.
#pragma once
#include "common.cuh"
#include "math.cuh"

typedef int i32;
typedef long long i64;
typedef unsigned long long usize;
typedef long long isize;

// ---- wrapping integer arithmetic (signed overflow is undefined in C++; Rust's kernels wrap) ----------------
__device__ __forceinline__ i32 k_add(i32 a, i32 b) { return (i32)((u32)a + (u32)b); }
__device__ __forceinline__ i32 k_sub(i32 a, i32 b) { return (i32)((u32)a - (u32)b); }
__device__ __forceinline__ i32 k_mul(i32 a, i32 b) { return (i32)((u32)a * (u32)b); }
__device__ __forceinline__ i32 k_neg(i32 a) { return (i32)(0u - (u32)a); }
__device__ __forceinline__ i64 k_add(i64 a, i64 b) { return (i64)((u64)a + (u64)b); }
__device__ __forceinline__ i64 k_sub(i64 a, i64 b) { return (i64)((u64)a - (u64)b); }
__device__ __forceinline__ i64 k_mul(i64 a, i64 b) { return (i64)((u64)a * (u64)b); }
__device__ __forceinline__ i64 k_neg(i64 a) { return (i64)(0ull - (u64)a); }

// Integer division and remainder. Rust panics on division by zero and on MIN / -1 (the CPU backend reports
// an error and poisons the stream); a GPU thread cannot, so here x / 0 = x % 0 = 0 and MIN / -1 = MIN.
__device__ __forceinline__ i32 k_div(i32 a, i32 b) { return b == 0 ? 0 : b == -1 ? k_neg(a) : a / b; }
__device__ __forceinline__ i32 k_rem(i32 a, i32 b) { return (b == 0 || b == -1) ? 0 : a % b; }
__device__ __forceinline__ i64 k_div(i64 a, i64 b) { return b == 0 ? 0 : b == -1 ? k_neg(a) : a / b; }
__device__ __forceinline__ i64 k_rem(i64 a, i64 b) { return (b == 0 || b == -1) ? 0 : a % b; }
__device__ __forceinline__ u32 k_div(u32 a, u32 b) { return b == 0 ? 0u : a / b; }
__device__ __forceinline__ u32 k_rem(u32 a, u32 b) { return b == 0 ? 0u : a % b; }
__device__ __forceinline__ u64 k_div(u64 a, u64 b) { return b == 0 ? 0ull : a / b; }
__device__ __forceinline__ u64 k_rem(u64 a, u64 b) { return b == 0 ? 0ull : a % b; }
// Float remainder: Rust's `%` is C's fmod (exact).
__device__ __forceinline__ float k_rem(float a, float b) { return fmodf(a, b); }
__device__ __forceinline__ double k_rem(double a, double b) { return fmod(a, b); }

// Shifts: the amount is taken modulo the width (Rust's wrapping_shl / wrapping_shr); `>>` of a signed value is
// arithmetic.
__device__ __forceinline__ i32 k_shl(i32 a, u32 s) { return (i32)((u32)a << (s & 31u)); }
__device__ __forceinline__ u32 k_shl(u32 a, u32 s) { return a << (s & 31u); }
__device__ __forceinline__ i64 k_shl(i64 a, u32 s) { return (i64)((u64)a << (s & 63u)); }
__device__ __forceinline__ u64 k_shl(u64 a, u32 s) { return a << (s & 63u); }
__device__ __forceinline__ i32 k_shr(i32 a, u32 s) { return a >> (s & 31u); }
__device__ __forceinline__ u32 k_shr(u32 a, u32 s) { return a >> (s & 31u); }
__device__ __forceinline__ i64 k_shr(i64 a, u32 s) { return a >> (s & 63u); }
__device__ __forceinline__ u64 k_shr(u64 a, u32 s) { return a >> (s & 63u); }

// ---- casts -----------------------------------------------------------------------------------------------
// Float -> integer `as`: truncates toward zero, saturates at the type's range, NaN -> 0 (Rust's semantics; a C
// cast of an out-of-range value is undefined).
template <class I, class F> __device__ __forceinline__ I k_to_signed(F x, F lo, F hi, I min, I max) {
    return x != x ? (I)0 : x >= hi ? max : x < lo ? min : (I)x;
}
template <class I, class F> __device__ __forceinline__ I k_to_unsigned(F x, F hi, I max) {
    return !(x > (F)-1) ? (I)0 : x >= hi ? max : (I)x;
}
template <class I> __device__ __forceinline__ I k_cast(float x);
template <class I> __device__ __forceinline__ I k_cast(double x);
template <> __device__ __forceinline__ i32 k_cast<i32>(float x) {
    return k_to_signed<i32, float>(x, -2147483648.0f, 2147483648.0f, (i32)0x80000000u, 0x7FFFFFFF);
}
template <> __device__ __forceinline__ i32 k_cast<i32>(double x) {
    return k_to_signed<i32, double>(x, -2147483648.0, 2147483648.0, (i32)0x80000000u, 0x7FFFFFFF);
}
template <> __device__ __forceinline__ i64 k_cast<i64>(float x) {
    return k_to_signed<i64, float>(x, -9223372036854775808.0f, 9223372036854775808.0f, (i64)0x8000000000000000ull,
                                   0x7FFFFFFFFFFFFFFFll);
}
template <> __device__ __forceinline__ i64 k_cast<i64>(double x) {
    return k_to_signed<i64, double>(x, -9223372036854775808.0, 9223372036854775808.0, (i64)0x8000000000000000ull,
                                    0x7FFFFFFFFFFFFFFFll);
}
template <> __device__ __forceinline__ u32 k_cast<u32>(float x) { return k_to_unsigned<u32, float>(x, 4294967296.0f, 0xFFFFFFFFu); }
template <> __device__ __forceinline__ u32 k_cast<u32>(double x) { return k_to_unsigned<u32, double>(x, 4294967296.0, 0xFFFFFFFFu); }
template <> __device__ __forceinline__ u64 k_cast<u64>(float x) {
    return k_to_unsigned<u64, float>(x, 18446744073709551616.0f, 0xFFFFFFFFFFFFFFFFull);
}
template <> __device__ __forceinline__ u64 k_cast<u64>(double x) {
    return k_to_unsigned<u64, double>(x, 18446744073709551616.0, 0xFFFFFFFFFFFFFFFFull);
}

// ---- min, max, abs, signum as Rust defines them --------------------------------------------------------------
// f32::min / f32::max: a NaN operand is ignored; between equal operands (+0 and -0) the first is returned.
__device__ __forceinline__ float k_min(float a, float b) { return (b < a || a != a) ? b : a; }
__device__ __forceinline__ float k_max(float a, float b) { return (b > a || a != a) ? b : a; }
__device__ __forceinline__ double k_min(double a, double b) { return (b < a || a != a) ? b : a; }
__device__ __forceinline__ double k_max(double a, double b) { return (b > a || a != a) ? b : a; }
__device__ __forceinline__ i32 k_min(i32 a, i32 b) { return b < a ? b : a; }
__device__ __forceinline__ i32 k_max(i32 a, i32 b) { return b > a ? b : a; }
__device__ __forceinline__ u32 k_min(u32 a, u32 b) { return b < a ? b : a; }
__device__ __forceinline__ u32 k_max(u32 a, u32 b) { return b > a ? b : a; }
__device__ __forceinline__ i64 k_min(i64 a, i64 b) { return b < a ? b : a; }
__device__ __forceinline__ i64 k_max(i64 a, i64 b) { return b > a ? b : a; }
__device__ __forceinline__ u64 k_min(u64 a, u64 b) { return b < a ? b : a; }
__device__ __forceinline__ u64 k_max(u64 a, u64 b) { return b > a ? b : a; }
__device__ __forceinline__ float k_abs(float x) { return math_abs32(x); }
__device__ __forceinline__ double k_abs(double x) { return math_abs64(x); }
__device__ __forceinline__ i32 k_abs(i32 x) { return x < 0 ? k_neg(x) : x; }
__device__ __forceinline__ i64 k_abs(i64 x) { return x < 0 ? k_neg(x) : x; }
__device__ __forceinline__ float k_signum(float x) {
    return x != x ? MATH_NAN_F32 : __uint_as_float((__float_as_uint(x) & 0x80000000u) | 0x3F800000u);
}
__device__ __forceinline__ double k_signum(double x) {
    return x != x ? MATH_NAN_F64 : math_from_bits64((math_bits64(x) & 0x8000000000000000ull) | 0x3FF0000000000000ull);
}

// ---- exact operations ------------------------------------------------------------------------------------------
__device__ __forceinline__ float k_sqrt(float x) { return __fsqrt_rn(x); }
__device__ __forceinline__ double k_sqrt(double x) { return __dsqrt_rn(x); }
__device__ __forceinline__ float k_mul_add(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double k_mul_add(double a, double b, double c) { return __fma_rn(a, b, c); }
__device__ __forceinline__ float k_recip(float x) { return __fdiv_rn(1.0f, x); }
__device__ __forceinline__ double k_recip(double x) { return __ddiv_rn(1.0, x); }
__device__ __forceinline__ float k_floor(float x) { return floorf(x); }
__device__ __forceinline__ double k_floor(double x) { return floor(x); }
__device__ __forceinline__ float k_ceil(float x) { return ceilf(x); }
__device__ __forceinline__ double k_ceil(double x) { return ceil(x); }
__device__ __forceinline__ float k_trunc(float x) { return truncf(x); }
__device__ __forceinline__ double k_trunc(double x) { return trunc(x); }
// Rust's round: half away from zero (C's round).
__device__ __forceinline__ float k_round(float x) { return roundf(x); }
__device__ __forceinline__ double k_round(double x) { return round(x); }

// ---- the portable math library ----------------------------------------------------------------------------------
__device__ __forceinline__ float k_exp(float x) { return math_exp_f32(x); }
__device__ __forceinline__ double k_exp(double x) { return math_exp_f64(x); }
__device__ __forceinline__ float k_exp_m1(float x) { return math_expm1_f32(x); }
__device__ __forceinline__ double k_exp_m1(double x) { return math_expm1_f64(x); }
__device__ __forceinline__ float k_ln(float x) { return math_log_f32(x); }
__device__ __forceinline__ double k_ln(double x) { return math_log_f64(x); }
__device__ __forceinline__ float k_sin(float x) { return math_sin_f32(x); }
__device__ __forceinline__ double k_sin(double x) { return math_sin_f64(x); }
__device__ __forceinline__ float k_cos(float x) { return math_cos_f32(x); }
__device__ __forceinline__ double k_cos(double x) { return math_cos_f64(x); }
__device__ __forceinline__ float k_tan(float x) {
    float s, c;
    math_sincos_f32(x, &s, &c);
    return __fdiv_rn(s, c);
}
__device__ __forceinline__ double k_tan(double x) {
    double s, c;
    math_sincos_f64(x, &s, &c);
    return __ddiv_rn(s, c);
}
__device__ __forceinline__ float k_tanh(float x) { return math_tanh_f32(x); }
__device__ __forceinline__ double k_tanh(double x) { return math_tanh_f64(x); }
__device__ __forceinline__ float k_erf(float x) { return math_erf_f32(x); }
__device__ __forceinline__ double k_erf(double x) { return math_erf_f64(x); }

// x^n by binary powering, in this order on every backend.
__device__ __forceinline__ float k_powi(float x, i32 n) {
    u32 e = n < 0 ? 0u - (u32)n : (u32)n;
    float r = 1.0f, b = x;
    while (e != 0u) {
        if (e & 1u) r = __fmul_rn(r, b);
        b = __fmul_rn(b, b);
        e >>= 1;
    }
    return n < 0 ? __fdiv_rn(1.0f, r) : r;
}
__device__ __forceinline__ double k_powi(double x, i32 n) {
    u32 e = n < 0 ? 0u - (u32)n : (u32)n;
    double r = 1.0, b = x;
    while (e != 0u) {
        if (e & 1u) r = __dmul_rn(r, b);
        b = __dmul_rn(b, b);
        e >>= 1;
    }
    return n < 0 ? __ddiv_rn(1.0, r) : r;
}

// x^y as IEEE pow defines the special cases; an integer exponent up to 64 by binary powering (exact where the
// result is representable); otherwise exp(y ln|x|) in binary64 (binary32: rounded once).
__device__ __forceinline__ double k_pow(double x, double y) {
    if (y == 0.0 || x == 1.0) return 1.0;
    if (x != x || y != y) return MATH_NAN_F64;
    double ax = math_abs64(x), ay = math_abs64(y);
    bool integer = ay >= 4503599627370496.0 || trunc(y) == y;
    if (integer && ay <= 64.0) return k_powi(x, (i32)y);
    bool odd = integer && ay < 9007199254740992.0 && fmod(ay, 2.0) == 1.0;
    bool negative = (math_bits64(x) >> 63) != 0;
    if (negative && !integer && ax != 0.0 && ax != MATH_INF_F64) return MATH_NAN_F64;
    double sign = (negative && odd) ? -1.0 : 1.0;
    if (ax == 0.0) return y < 0.0 ? sign * MATH_INF_F64 : sign * 0.0;
    if (ax == MATH_INF_F64) return y < 0.0 ? sign * 0.0 : sign * MATH_INF_F64;
    if (ay == MATH_INF_F64) {
        if (ax == 1.0) return 1.0;
        return (ax < 1.0) == (y < 0.0) ? MATH_INF_F64 : 0.0;
    }
    double r = math_exp_f64(__dmul_rn(y, math_log_f64(ax)));
    return sign < 0.0 ? -r : r;
}
__device__ __forceinline__ float k_pow(float x, float y) {
    double r = k_pow((double)x, (double)y);
    return r != r ? MATH_NAN_F32 : (float)r;
}

// ---- elementwise kernels -------------------------------------------------------------------------------------
// Loading an input of element type E (float, double, f16_t, bf16_t) as the kernel's f32 or f64 parameter, and
// rounding a result once to E.
template <class F, class E> __device__ __forceinline__ F k_widen(E x) { return to_double(x); }
template <> __device__ __forceinline__ float k_widen<float, float>(float x) { return x; }
template <> __device__ __forceinline__ float k_widen<float, f16_t>(f16_t x) { return to_float(x); }
template <> __device__ __forceinline__ float k_widen<float, bf16_t>(bf16_t x) { return to_float(x); }
template <class E> __device__ __forceinline__ E k_narrow(float x) { return from_float<E>(x); }
template <class E> __device__ __forceinline__ E k_narrow(double x) { return from_double<E>(x); }

// Row-major broadcast strides of N inputs over the output shape (0 where an input is broadcast).
#define K_MAX_DIMS 8
template <int N> struct KBroadcast {
    u64 shape[K_MAX_DIMS];
    u64 stride[N][K_MAX_DIMS];
    int ndim;
    __device__ __forceinline__ void offsets(u64 i, u64 (&at)[N]) const {
        for (int j = 0; j < N; ++j) at[j] = 0;
        for (int d = ndim - 1; d >= 0; --d) {
            u64 idx = i % shape[d];
            i /= shape[d];
            for (int j = 0; j < N; ++j) at[j] += idx * stride[j][d];
        }
    }
};
