// Elementwise kernels. Defines: T (element type). Arithmetic is done in double and rounded once, like the
// CPU backend, so both backends agree exactly for + - * /.
#include "common.cuh"

#define MAX_DIMS 8

// Row-major broadcast strides of both operands over the output shape (0 where broadcast).
struct Broadcast {
    u64 out_shape[MAX_DIMS];
    u64 a_stride[MAX_DIMS];
    u64 b_stride[MAX_DIMS];
    int ndim;
};

__device__ __forceinline__ double apply(int op, double a, double b) {
    switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        default: return a / b;
    }
}

// op: 0 add, 1 sub, 2 mul, 3 div.
extern "C" __global__ void binary_same(int op, const T* __restrict__ a, const T* __restrict__ b,
                                       T* __restrict__ out, u64 n) {
    FOR_EACH_INDEX(i, n) { out[i] = from_double<T>(apply(op, to_double(a[i]), to_double(b[i]))); }
}

extern "C" __global__ void binary_broadcast(int op, const T* __restrict__ a, const T* __restrict__ b,
                                            T* __restrict__ out, u64 n, Broadcast bc) {
    FOR_EACH_INDEX(i, n) {
        u64 rem = i, ia = 0, ib = 0;
        for (int d = bc.ndim - 1; d >= 0; --d) {
            u64 idx = rem % bc.out_shape[d];
            rem /= bc.out_shape[d];
            ia += idx * bc.a_stride[d];
            ib += idx * bc.b_stride[d];
        }
        out[i] = from_double<T>(apply(op, to_double(a[ia]), to_double(b[ib])));
    }
}

// reversed != 0 computes value op a[i].
extern "C" __global__ void scalar_op(int op, const T* __restrict__ a, double value, int reversed,
                                     T* __restrict__ out, u64 n) {
    FOR_EACH_INDEX(i, n) {
        double x = to_double(a[i]);
        out[i] = from_double<T>(reversed ? apply(op, value, x) : apply(op, x, value));
    }
}

extern "C" __global__ void fill(T* __restrict__ out, double value, u64 n) {
    const T v = from_double<T>(value);
    FOR_EACH_INDEX(i, n) { out[i] = v; }
}

extern "C" __global__ void copy(const T* __restrict__ src, T* __restrict__ dst, u64 n) {
    FOR_EACH_INDEX(i, n) { dst[i] = src[i]; }
}
