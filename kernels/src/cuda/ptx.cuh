// Inline PTX that has no C++ form, behind small named device functions. streamdsl's simulated driver
// (cuda-sim) compiles the kernels as host C++ with -DSTREAMDSL_SIM and provides host versions of these
// functions that follow the PTX ISA (rounding, NaN and subnormals of cvt; the documented fragment layouts of
// mma.m16n8k16, ldmatrix), so the simulator checks the kernels' use of them.
#pragma once

#ifndef STREAMDSL_SIM

// cvt.f32.f16: exact.
__device__ __forceinline__ float ptx_cvt_f32_f16(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

// cvt.rn.f16.f32: round to nearest even.
__device__ __forceinline__ unsigned short ptx_cvt_rn_f16_f32(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

// cvt.rn.bf16.f32: round to nearest even.
__device__ __forceinline__ unsigned short ptx_cvt_rn_bf16_f32(float x) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}

// cvt.rz.f32.f64: round toward zero.
__device__ __forceinline__ float ptx_cvt_rz_f32_f64(double x) {
    float r;
    asm("cvt.rz.f32.f64 %0, %1;" : "=f"(r) : "d"(x));
    return r;
}

// The global timer, in nanoseconds.
__device__ __forceinline__ unsigned long long ptx_globaltimer() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// nanosleep.u32 (sm_70+).
__device__ __forceinline__ void ptx_nanosleep(unsigned ns) { asm volatile("nanosleep.u32 %0;" ::"r"(ns)); }

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 with C = D = acc: acc += A·B for the warp's fragments
// (a: 4 registers of two f16 each, b: 2 registers, acc: 4 f32).
__device__ __forceinline__ void ptx_mma_m16n8k16_f16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The same with bf16 inputs.
__device__ __forceinline__ void ptx_mma_m16n8k16_bf16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ldmatrix.sync.aligned.m8n8.x4.shared.b16: the warp loads four 8x8 matrices of 16-bit elements from shared
// memory. Lanes 8i..8i+7 give the addresses of rows 0..7 of matrix i (each row 16 contiguous bytes, 16-byte
// aligned; `row` is this lane's row, a generic pointer into shared memory). Lane l receives in r[i] the
// elements (row l/4, columns 2(l%4) and 2(l%4)+1) of matrix i, the lower column in the low 16 bits: exactly
// the A fragment of mma.m16n8k16 when the four matrices are A's quarters (rows 0-7/8-15 x cols 0-7/8-15).
__device__ __forceinline__ void ptx_ldmatrix_x4(unsigned (&r)[4], const void* row) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

// The same with .trans (each matrix read column-major): lane l receives in r[i] the elements (rows 2(l%4)
// and 2(l%4)+1, column l/4) of matrix i, the lower row in the low 16 bits: the B fragment of mma.m16n8k16
// from a row-major K x N tile in shared memory.
__device__ __forceinline__ void ptx_ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

#endif
