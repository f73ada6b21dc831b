// Element type conversion. Defines: IN_T, OUT_T. Rounds once (through double, exact for every input type).
#include "common.cuh"

extern "C" __global__ void convert(const IN_T* __restrict__ in, OUT_T* __restrict__ out, u64 n) {
    FOR_EACH_INDEX(i, n) { out[i] = from_double<OUT_T>(to_double(in[i])); }
}
