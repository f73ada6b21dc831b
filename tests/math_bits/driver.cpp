// Runs math.cuh's functions (and Philox -> Box-Muller) over the inputs that tests/math_bits.rs generates
// the same way, and prints one FNV-1a hash of the output bits per function ("hash"), or writes one function's
// raw output bits to stdout ("dump NAME") so the test can show the first differences.
#include "shim.h"
#include "philox.cuh"
#include "math.cuh"
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

static u64 splitmix(u64* s) {
    u64 z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Input i of a function: edge cases first, then four interleaved strategies (see tests/math_bits.rs).
struct Spec32 { const char* name; float lo, hi; u32 sweep_start; };
struct Spec64 { const char* name; double lo, hi; u64 sweep_start; };

static const u32 EDGE32[] = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00001u, 0x7F800001u,
                             0x00000001u, 0x807FFFFFu, 0x00800000u, 0x7F7FFFFFu, 0xFF7FFFFFu, 0x3F800000u, 0xBF800000u,
                             0x42B17218u, 0x42B17217u, 0xC2CFF1B5u, 0xC2CFF1B4u, 0x40C90FDBu, 0x3FC90FDBu, 0x46800000u,
                             0x4E800000u, 0x5A000000u, 0x38800000u, 0x39000000u};
static const u64 EDGE64[] = {0x0000000000000000ull, 0x8000000000000000ull, 0x7FF0000000000000ull, 0xFFF0000000000000ull,
                             0x7FF8000000000000ull, 0xFFF8000000000001ull, 0x7FF0000000000001ull, 0x0000000000000001ull,
                             0x800FFFFFFFFFFFFFull, 0x0010000000000000ull, 0x7FEFFFFFFFFFFFFFull, 0xFFEFFFFFFFFFFFFFull,
                             0x3FF0000000000000ull, 0xBFF0000000000000ull, 0x40862E42FEFA39EFull, 0x40862E42FEFA39F0ull,
                             0xC0874910D52D3051ull, 0xC0874910D52D3052ull, 0x401921FB54442D18ull, 0x3FF921FB54442D18ull,
                             0x41D0000000000000ull, 0x41E0000000000000ull, 0x7FE0000000000000ull, 0x4036000000000000ull,
                             0x4018000000000000ull, 0x3E40000000000000ull};

static float input32(const Spec32& s, u64 i, u64* st) {
    const u64 ne = sizeof(EDGE32) / sizeof(EDGE32[0]);
    if (i < ne) return __uint_as_float(EDGE32[i]);
    u64 r = splitmix(st);
    switch (i & 3) {
        case 0: return __uint_as_float((u32)r);
        case 1: {  // uniform in [lo, hi]
            float t = __fmul_rn((float)(u32)(r >> 40), 5.9604645e-08f);  // 24 bits * 2^-24
            return __fadd_rn(s.lo, __fmul_rn(__fsub_rn(s.hi, s.lo), t));
        }
        case 2: return __uint_as_float(s.sweep_start + (u32)(i >> 2));
        default: {  // random significand, exponent within +-16 of 1.0's, random sign
            u32 e = 111u + (u32)((r >> 32) % 33u);
            return __uint_as_float(((u32)r & 0x807FFFFFu) | (e << 23));
        }
    }
}

static double input64(const Spec64& s, u64 i, u64* st) {
    const u64 ne = sizeof(EDGE64) / sizeof(EDGE64[0]);
    if (i < ne) return __longlong_as_double((long long)EDGE64[i]);
    u64 r = splitmix(st);
    switch (i & 3) {
        case 0: return __longlong_as_double((long long)r);
        case 1: {
            double t = __dmul_rn((double)(r >> 11), 1.1102230246251565e-16);  // 53 bits * 2^-53
            return __dadd_rn(s.lo, __dmul_rn(__dsub_rn(s.hi, s.lo), t));
        }
        case 2: return __longlong_as_double((long long)(s.sweep_start + (i >> 2)));
        default: {
            u64 e = 1007ull + (r >> 58) % 33ull;
            return __longlong_as_double((long long)((r & 0x800FFFFFFFFFFFFFull) | (e << 52)));
        }
    }
}

struct Hash {
    u64 h = 0xCBF29CE484222325ull;
    void add(u64 v) { h = (h ^ v) * 0x100000001B3ull; }
};

static const Spec32 SPECS32[] = {
    {"log_f32", 0.0f, 4.0f, 0x3F700000u}, {"exp_f32", -104.0f, 89.0f, 0xC2000000u},
    {"expm1_f32", -20.0f, 20.0f, 0xBF000000u}, {"sin_f32", -100.0f, 100.0f, 0x40000000u},
    {"cos_f32", -100.0f, 100.0f, 0x40000000u}, {"sincos_f32", -7.0f, 7.0f, 0x3F000000u},
    {"tanh_f32", -10.0f, 10.0f, 0x3E000000u}, {"erf_f32", -6.0f, 6.0f, 0x3F000000u}};
static const Spec64 SPECS64[] = {
    {"log_f64", 0.0, 4.0, 0x3FEF000000000000ull}, {"exp_f64", -746.0, 710.0, 0xC086000000000000ull},
    {"expm1_f64", -40.0, 40.0, 0xBFE0000000000000ull}, {"sin_f64", -1e6, 1e6, 0x4000000000000000ull},
    {"cos_f64", -1e6, 1e6, 0x4000000000000000ull}, {"sincos_f64", -7.0, 7.0, 0x3FE0000000000000ull},
    {"tanh_f64", -25.0, 25.0, 0x3FC0000000000000ull}, {"erf_f64", -7.0, 7.0, 0x3FF0000000000000ull}};

static u64 seed_of(const char* name) {
    u64 h = 0xCBF29CE484222325ull;
    for (const char* c = name; *c; ++c) h = (h ^ (unsigned char)*c) * 0x100000001B3ull;
    return h;
}

template <typename Out>
static void run32(const Spec32& s, u64 n, Out out) {
    u64 st = seed_of(s.name);
    std::string nm = s.name;
    for (u64 i = 0; i < n; ++i) {
        float x = input32(s, i, &st);
        if (nm == "log_f32") out(__float_as_uint(math_log_f32(x)));
        else if (nm == "exp_f32") out(__float_as_uint(math_exp_f32(x)));
        else if (nm == "expm1_f32") out(__float_as_uint(math_expm1_f32(x)));
        else if (nm == "sin_f32") out(__float_as_uint(math_sin_f32(x)));
        else if (nm == "cos_f32") out(__float_as_uint(math_cos_f32(x)));
        else if (nm == "sincos_f32") { float a, b; math_sincos_f32(x, &a, &b); out(__float_as_uint(a)); out(__float_as_uint(b)); }
        else if (nm == "tanh_f32") out(__float_as_uint(math_tanh_f32(x)));
        else out(__float_as_uint(math_erf_f32(x)));
    }
}

template <typename Out>
static void run64(const Spec64& s, u64 n, Out out) {
    u64 st = seed_of(s.name);
    std::string nm = s.name;
    for (u64 i = 0; i < n; ++i) {
        double x = input64(s, i, &st);
        u64 (*b)(double) = [](double v) { return (u64)__double_as_longlong(v); };
        if (nm == "log_f64") out(b(math_log_f64(x)));
        else if (nm == "exp_f64") out(b(math_exp_f64(x)));
        else if (nm == "expm1_f64") out(b(math_expm1_f64(x)));
        else if (nm == "sin_f64") out(b(math_sin_f64(x)));
        else if (nm == "cos_f64") out(b(math_cos_f64(x)));
        else if (nm == "sincos_f64") { double a, c; math_sincos_f64(x, &a, &c); out(b(a)); out(b(c)); }
        else if (nm == "tanh_f64") out(b(math_tanh_f64(x)));
        else out(b(math_erf_f64(x)));
    }
}

// randn as the CUDA kernel computes it (randn.cu, one thread's work per group), in float (WIDE 0) or double.
template <typename Out>
static void randn(bool wide, u64 n, u64 seed, u64 offset, Out out) {
    const u64 groups = (n + 3) / 4;
    for (u64 g = 0; g < groups; ++g) {
        u32x4 ctr = {(u32)g, (u32)(g >> 32), (u32)offset, (u32)(offset >> 32)};
        u32x4 b = philox4x32_10(ctr, (u32)seed, (u32)(seed >> 32));
        u32 bits[4] = {b.x, b.y, b.z, b.w};
        for (int p = 0; p < 4; p += 2) {
            u64 o[2];
            if (wide) {
                double z0, z1;
                box_muller_f64(bits[p], bits[p + 1], &z0, &z1);
                o[0] = (u64)__double_as_longlong(z0);
                o[1] = (u64)__double_as_longlong(z1);
            } else {
                float z0, z1;
                box_muller_f32(bits[p], bits[p + 1], &z0, &z1);
                o[0] = __float_as_uint(z0);
                o[1] = __float_as_uint(z1);
            }
            for (int j = 0; j < 2; ++j)
                if (4 * g + p + j < n) out(o[j]);
        }
    }
}

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: driver hash N | driver dump N NAME\n");
        return 2;
    }
    u64 n = std::strtoull(argv[2], nullptr, 10);
    std::string mode = argv[1];
    std::string only = argc > 3 ? argv[3] : "";
    const u64 randn_n = 10000003ull, randn_seed = 0x5EEDull;
    if (mode == "hash") {
        for (const Spec32& s : SPECS32) {
            Hash h; u64 c = 0;
            run32(s, n, [&](u32 v) { h.add(v); ++c; });
            std::printf("%s %016llx %llu\n", s.name, h.h, c);
        }
        for (const Spec64& s : SPECS64) {
            Hash h; u64 c = 0;
            run64(s, n, [&](u64 v) { h.add(v); ++c; });
            std::printf("%s %016llx %llu\n", s.name, h.h, c);
        }
        for (int wide = 0; wide < 2; ++wide) {
            Hash h; u64 c = 0;
            randn(wide, randn_n, randn_seed, 0, [&](u64 v) { h.add(v); ++c; });
            std::printf("%s %016llx %llu\n", wide ? "randn_f64" : "randn_f32", h.h, c);
        }
        return 0;
    }
    std::vector<unsigned char> buf;
    auto put = [&](u64 v, int bytes) { for (int i = 0; i < bytes; ++i) buf.push_back((unsigned char)(v >> (8 * i))); };
    for (const Spec32& s : SPECS32) if (only == s.name) run32(s, n, [&](u32 v) { put(v, 4); });
    for (const Spec64& s : SPECS64) if (only == s.name) run64(s, n, [&](u64 v) { put(v, 8); });
    if (only == "randn_f32") randn(false, randn_n, randn_seed, 0, [&](u64 v) { put(v, 4); });
    if (only == "randn_f64") randn(true, randn_n, randn_seed, 0, [&](u64 v) { put(v, 8); });
    std::fwrite(buf.data(), 1, buf.size(), stdout);
    return 0;
}
