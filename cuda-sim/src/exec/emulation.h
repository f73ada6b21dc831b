// streamdsl-cuda-sim: the emulation header. CUDA C kernels are compiled as host C++ after this header, with
// -DSTREAMDSL_SIM=1 -ffp-contract=off. It provides the CUDA built-ins (threadIdx, __syncthreads, shuffles,
// atomics, intrinsics), the host forms of the named PTX functions of kernels/src/cuda/ptx.cuh, and the
// block runner: every thread of a block is a fiber; one OS thread runs all fibers of a block, so
// `__shared__` (static thread_local) is per block. The ABI with the simulator is `sim_launch` /
// `sim_entry` below (exec/abi.rs mirrors it).
#ifndef STREAMDSL_SIM_EMULATION_H
#define STREAMDSL_SIM_EMULATION_H

// Few system headers: each one puts C names into the global namespace, where they would clash with kernel
// names (<thread> alone brings POSIX `read` and `write`). Time and sleep come from the simulator.
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>
#include <math.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#ifndef STREAMDSL_SIM
#define STREAMDSL_SIM 1
#endif

// ---------------------------------------------------------------------------------------------------------
// The ABI shared with the simulator (exec/abi.rs). Version 1.
extern "C" {
struct sim_dim3 { unsigned x, y, z; };
struct sim_launch {
    void* const* params;           // one pointer per kernel parameter (owned copies)
    sim_dim3 grid, block;
    void* const* stacks;           // >= block.x*block.y*block.z fiber stacks (lowest address of each)
    size_t stack_size;             // bytes of each stack (a guard page lies below each)
    void (*arm)(void* jmp, void (*jump)(void*));  // a fault on this thread calls jump(jmp)
    void (*disarm)(void);
    const volatile int* abort;     // non-zero: another block of this launch failed; stop early
    unsigned long long (*now_ns)(void);       // the global timer (nanoseconds)
    void (*sleep_ns)(unsigned long long ns);  // sleeps the OS thread (0: yields it)
};
struct sim_outcome {
    int status;                    // SIM_OK, SIM_FAULT, SIM_DEADLOCK, SIM_TRAP
    sim_dim3 block, thread;        // where (the faulting / trapping thread, when known)
    char message[1024];
};
struct sim_param { unsigned size, align, kind; };  // kind: 0 value, 1 pointer to const, 2 pointer to mutable
typedef int (*sim_run_fn)(const sim_launch*, unsigned long long first, unsigned long long end, sim_outcome*);
struct sim_entry {
    const char* name;
    sim_run_fn run;
    int nparams;
    const sim_param* params;
    int max_threads;               // __launch_bounds__, else 1024
};
}
enum { SIM_OK = 0, SIM_FAULT = 1, SIM_DEADLOCK = 2, SIM_TRAP = 3 };

// ---------------------------------------------------------------------------------------------------------
// CUDA keywords.
#define __global__
#define __device__
#define __host__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local
#define __constant__ static
#define __managed__
#define __grid_constant__

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace sim {

typedef unsigned int u32;
typedef unsigned long long u64;

enum FiberState { RUNNABLE, WAIT_BARRIER, WAIT_WARP, EXITED };

struct Fiber {
    void* sp;
    int state;
    uint3 tid;
    unsigned linear;
    int slept;
    u64 sleep_ns;
};

enum CollectiveKind { C_NONE, C_SHFL_IDX, C_SHFL_UP, C_SHFL_DOWN, C_SHFL_XOR, C_BALLOT, C_ANY, C_ALL, C_SYNCWARP,
                      C_MMA_F16, C_MMA_BF16, C_LDMATRIX_X4, C_LDMATRIX_X4_TRANS, C_REDUCE_ADD, C_REDUCE_MIN, C_REDUCE_MAX, C_REDUCE_UMIN,
                      C_REDUCE_UMAX, C_REDUCE_AND, C_REDUCE_OR, C_REDUCE_XOR };

struct WarpLane { u64 in[10]; u64 arg; u64 out[4]; };
struct Warp {
    int kind;
    unsigned mask;       // lanes that must arrive
    unsigned arrived;
    unsigned exists;     // lanes of this warp that exist in the block
    unsigned width;
    WarpLane lane[32];
};

struct Block {
    Fiber* fibers;
    unsigned n;
    unsigned alive;
    unsigned barrier_count;
    long long barrier_acc;
    long long barrier_result;
    void* sched_sp;
    Fiber* cur;
    Warp* warps;
    unsigned nwarps;
    const sim_launch* launch;
    void (*invoke)(const sim_launch*);
    int failed;
    char* message;
    size_t message_cap;
};

inline thread_local uint3 tl_thread_idx;
inline thread_local uint3 tl_block_idx;
inline thread_local dim3 tl_block_dim;
inline thread_local dim3 tl_grid_dim;
inline thread_local Block* tl_block;
inline thread_local sigjmp_buf* tl_trap_jmp;

// ----- context switch -----------------------------------------------------------------------------------
#if defined(__x86_64__)
extern "C" void streamdsl_sim_ctx_switch(void** save_sp, void* new_sp);
extern "C" void streamdsl_sim_fiber_start(void);
asm(R"(
    .text
    .p2align 4
    .globl streamdsl_sim_ctx_switch
    .hidden streamdsl_sim_ctx_switch
    .type streamdsl_sim_ctx_switch,@function
streamdsl_sim_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size streamdsl_sim_ctx_switch, .-streamdsl_sim_ctx_switch

    .p2align 4
    .globl streamdsl_sim_fiber_start
    .hidden streamdsl_sim_fiber_start
    .type streamdsl_sim_fiber_start,@function
streamdsl_sim_fiber_start:
    movq %rbx, %rdi
    callq *%r12
    ud2
    .size streamdsl_sim_fiber_start, .-streamdsl_sim_fiber_start
)");

inline void switch_to(void** save, void* to) { streamdsl_sim_ctx_switch(save, to); }

// A fresh context on [stack, stack + size) that calls entry(arg) when first switched to.
inline void* make_context(void* stack, size_t size, void (*entry)(void*), void* arg) {
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    u64* sp = (u64*)top - 8;
    unsigned mxcsr = 0;
    unsigned short cw = 0;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(cw));
    sp[0] = (u64)mxcsr | ((u64)cw << 32);
    sp[1] = 0;                       // r15
    sp[2] = 0;                       // r14
    sp[3] = 0;                       // r13
    sp[4] = (u64)(uintptr_t)entry;   // r12
    sp[5] = (u64)(uintptr_t)arg;     // rbx
    sp[6] = 0;                       // rbp
    sp[7] = (u64)(uintptr_t)&streamdsl_sim_fiber_start;
    return sp;
}
#else
// Portable fallback: ucontext (slower: each switch saves the signal mask).
struct UContextBox { ucontext_t uc; };
inline thread_local UContextBox tl_sched_uc;
inline void switch_to(void** save, void* to) {
    ucontext_t* from = (ucontext_t*)*save;
    if (from == nullptr) { from = &tl_sched_uc.uc; *save = from; }
    swapcontext(from, (ucontext_t*)to);
}
inline void* make_context(void* stack, size_t size, void (*entry)(void*), void* arg) {
    // The ucontext_t lives at the top of the fiber's own stack.
    uintptr_t top = ((uintptr_t)stack + size - sizeof(ucontext_t)) & ~(uintptr_t)63;
    ucontext_t* uc = (ucontext_t*)top;
    getcontext(uc);
    uc->uc_stack.ss_sp = stack;
    uc->uc_stack.ss_size = top - (uintptr_t)stack;
    uc->uc_link = nullptr;
    makecontext(uc, (void (*)())entry, 1, arg);
    return uc;
}
#endif

inline void fail(Block* b, int status, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
inline void fail(Block* b, int status, const char* fmt, ...) {
    if (!b->failed) {
        b->failed = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->message, b->message_cap, fmt, ap);
        va_end(ap);
    }
}

// Gives the processor back to the block's scheduler; returns when this fiber runs again.
inline void yield_fiber() {
    Block* b = tl_block;
    Fiber* f = b->cur;
#if defined(__x86_64__)
    switch_to(&f->sp, b->sched_sp);
#else
    swapcontext((ucontext_t*)f->sp, (ucontext_t*)b->sched_sp);
#endif
    // Resumed: threadIdx was restored by the scheduler.
}

inline void release_barrier(Block* b) {
    for (unsigned i = 0; i < b->n; ++i)
        if (b->fibers[i].state == WAIT_BARRIER) b->fibers[i].state = RUNNABLE;
    b->barrier_result = b->barrier_acc;
    b->barrier_acc = 0;
    b->barrier_count = 0;
}

// __syncthreads with an accumulated predicate (count of non-zero predicates).
inline long long barrier(int pred) {
    Block* b = tl_block;
    if (b == nullptr) return pred != 0;
    b->barrier_count++;
    b->barrier_acc += pred != 0;
    if (b->barrier_count == b->alive) {
        release_barrier(b);
        return b->barrier_result;
    }
    b->cur->state = WAIT_BARRIER;
    yield_fiber();
    return b->barrier_result;
}

inline unsigned lane_id() { return tl_block->cur->linear & 31; }

// The warp-level rendezvous: every lane in `mask` (that exists) deposits its inputs; the last one to arrive
// computes every lane's outputs; the others wait. Returns this lane's slot.
inline WarpLane* collective(int kind, unsigned mask, const u64* in, int nin, u64 arg, unsigned width);
void compute_collective(Warp* w);

inline WarpLane* collective(int kind, unsigned mask, const u64* in, int nin, u64 arg, unsigned width) {
    Block* b = tl_block;
    Fiber* f = b->cur;
    unsigned lane = f->linear & 31;
    Warp* w = &b->warps[f->linear >> 5];
    if (!(mask >> lane & 1u)) {
        fail(b, SIM_TRAP, "warp collective: lane %u executes it but is not in its mask 0x%08x", lane, mask);
        siglongjmp(*tl_trap_jmp, 1);
    }
    unsigned need = mask & w->exists;
    if (w->arrived == 0) {
        w->kind = kind;
        w->mask = need;
        w->width = width;
    } else if (w->kind != kind || w->mask != need) {
        fail(b, SIM_TRAP,
             "warp %u: lanes reached different warp collectives (kind %d mask 0x%08x vs kind %d mask 0x%08x)",
             f->linear >> 5, w->kind, w->mask, kind, need);
        siglongjmp(*tl_trap_jmp, 1);
    }
    WarpLane* me = &w->lane[lane];
    for (int i = 0; i < nin; ++i) me->in[i] = in[i];
    me->arg = arg;
    w->arrived |= 1u << lane;
    if (w->arrived == w->mask) {
        compute_collective(w);
        for (unsigned i = 0; i < 32; ++i) {
            if (w->mask >> i & 1u) {
                Fiber* g = &b->fibers[(f->linear & ~31u) + i];
                if (g->state == WAIT_WARP) g->state = RUNNABLE;
            }
        }
        w->arrived = 0;
        w->kind = C_NONE;
        return me;
    }
    f->state = WAIT_WARP;
    yield_fiber();
    return me;
}

template <class T> inline u64 to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 64 bits");
    u64 r = 0;
    std::memcpy(&r, &v, sizeof(T));
    return r;
}
template <class T> inline T from_bits(u64 v) {
    T r;
    std::memcpy(&r, &v, sizeof(T));
    return r;
}

// ----- IEEE helpers for the PTX host forms -----
inline float bits_f32(u32 b) { float f; std::memcpy(&f, &b, 4); return f; }
inline u32 f32_bits(float f) { u32 b; std::memcpy(&b, &f, 4); return b; }
inline double bits_f64(u64 b) { double f; std::memcpy(&f, &b, 8); return f; }
inline u64 f64_bits(double f) { u64 b; std::memcpy(&b, &f, 8); return b; }

// cvt.f32.f16: exact (every f16, subnormals included, is a normal or subnormal f32); NaN -> canonical NaN.
inline float cvt_f32_f16(unsigned short h) {
    u32 sign = (u32)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 0x3ff;
    if (exp == 31) return man ? bits_f32(0x7fffffffu) : bits_f32(sign | 0x7f800000u);
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        float v = (float)man * 5.9604644775390625e-08f;  // man * 2^-24, exact
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

// Rounds the f32 `x` to a format with `man_bits` fraction bits and exponent bias `bias` / max exponent, to
// nearest even, producing subnormals and infinities; NaN -> canonical NaN. Returns the bits.
inline unsigned short round_f32_to_16(float x, int man_bits, int exp_bits) {
    u32 b = f32_bits(x);
    u32 sign = b >> 31;
    unsigned short s16 = (unsigned short)(sign << 15);
    const int bias16 = (1 << (exp_bits - 1)) - 1;
    const u32 exp_all = (1u << exp_bits) - 1;
    if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((exp_all << man_bits) | ((1u << man_bits) - 1));
    if ((b & 0x7fffffffu) == 0x7f800000u) return (unsigned short)(s16 | (exp_all << man_bits));
    double a = std::fabs((double)x);  // exact
    if (a == 0.0) return s16;
    // Value = a = m * 2^e with the target's quantum q = 2^(max(e, emin) - man_bits).
    int e;
    std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
    e -= 1;             // a = f' * 2^e, f' in [1, 2)
    const int emin = 1 - bias16;
    int qexp = (e < emin ? emin : e) - man_bits;
    double scaled = std::ldexp(a, -qexp);  // exact (a has 24 significant bits)
    double r = std::nearbyint(scaled);     // ties to even (default rounding mode)
    double v = std::ldexp(r, qexp);
    const double maxv = std::ldexp(2.0 - std::ldexp(1.0, -man_bits), bias16);
    if (v > maxv) return (unsigned short)(s16 | (exp_all << man_bits));
    // Encode v.
    if (v < std::ldexp(1.0, emin)) {  // subnormal (or rounded up to the smallest normal: handled below)
        u32 m = (u32)r;              // r < 2^man_bits, or == 2^man_bits (smallest normal)
        return (unsigned short)(s16 | m);
    }
    int ve;
    std::frexp(v, &ve);
    ve -= 1;
    u32 m = (u32)(std::ldexp(v, man_bits - ve) - std::ldexp(1.0, man_bits));
    return (unsigned short)(s16 | ((u32)(ve + bias16) << man_bits) | m);
}

// cvt.rz.f32.f64: round toward zero; overflow gives the largest finite f32 (RZ never rounds to infinity);
// subnormal results are kept (no .ftz); NaN -> canonical NaN.
inline float cvt_rz_f32_f64(double x) {
    if (x != x) return bits_f32(0x7fffffffu);
    if (std::isinf(x)) return (float)x;
    float r = (float)x;  // round to nearest even
    if (std::isinf(r) || std::fabs((double)r) > std::fabs(x)) {
        // Rounded away from zero: step one ulp toward zero.
        u32 b = f32_bits(r);
        if (std::isinf(r)) b = (b & 0x80000000u) | 0x7f7fffffu;
        else b -= 1;
        r = bits_f32(b);
    }
    return r;
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32, D = A·B + C, from the 32 lanes'
// fragments as the PTX ISA lays them out (groupID = lane >> 2, threadID_in_group = lane % 4):
//   A (16×16, row): a_i for i in 0..8, two per 32-bit register (lower half = lower index):
//     row = groupID (+8 for i in {2,3,6,7}); col = 2·threadID_in_group + (i & 1) (+8 for i >= 4)
//   B (16×8, col): b_i for i in 0..4: row = 2·threadID_in_group + (i & 1) (+8 for i >= 2); col = groupID
//   C, D (16×8 f32): c_i for i in 0..4: row = groupID (+8 for i >= 2); col = 2·threadID_in_group + (i & 1)
// Products of 16-bit values are exact; each output sums its 16 products and C in double and rounds once
// to f32 (the hardware's internal accumulation order and rounding are not modelled).
inline void mma_m16n8k16(Warp* w, bool bf16) {
    float A[16][16], B[16][8], C[16][8];
    auto elem = [bf16](u32 reg, int hi) {
        unsigned short h = (unsigned short)(hi ? reg >> 16 : reg & 0xffff);
        return bf16 ? bits_f32((u32)h << 16) : cvt_f32_f16(h);
    };
    for (int lane = 0; lane < 32; ++lane) {
        const WarpLane& l = w->lane[lane];
        int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 8; ++i) {
            int row = g + ((i == 2 || i == 3 || i == 6 || i == 7) ? 8 : 0);
            int col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
            A[row][col] = elem((u32)l.in[i / 2], i & 1);
        }
        for (int i = 0; i < 4; ++i) {
            int row = 2 * t + (i & 1) + (i >= 2 ? 8 : 0);
            B[row][g] = elem((u32)l.in[4 + i / 2], i & 1);
        }
        for (int i = 0; i < 4; ++i) {
            int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
            C[row][col] = bits_f32((u32)l.in[6 + i]);
        }
    }
    for (int lane = 0; lane < 32; ++lane) {
        int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; ++i) {
            int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
            double acc = (double)C[row][col];
            for (int k = 0; k < 16; ++k) acc += (double)A[row][k] * (double)B[k][col];
            w->lane[lane].out[i] = f32_bits((float)acc);
        }
    }
}

// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16, from the PTX ISA ("Warp-level matrix load instruction:
// ldmatrix"): lanes 8i..8i+7 hold the addresses of rows 0..7 of matrix i (each row 16 contiguous bytes, which
// must be 16-byte aligned); a group of four consecutive lanes receives one row: lane l gets, in destination
// register i, the elements (row l/4, columns 2(l%4), 2(l%4)+1) of matrix i, the lower column in the low half.
// With .trans each matrix is read column-major: lane l gets (rows 2(l%4), 2(l%4)+1, column l/4). Every lane of
// the warp takes part (.sync.aligned); a misaligned row address fails the launch.
inline bool ldmatrix_x4(Warp* w, bool trans, unsigned* bad_lane) {
    for (int lane = 0; lane < 32; ++lane) {
        if (!(w->mask >> lane & 1u)) continue;
        if (w->lane[lane].in[0] % 16 != 0) {
            *bad_lane = (unsigned)lane;
            return false;
        }
    }
    auto elem = [w](int matrix, int row, int col) -> u32 {
        unsigned short h;
        std::memcpy(&h, (const char*)(uintptr_t)w->lane[8 * matrix + row].in[0] + 2 * col, 2);
        return h;
    };
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; ++i) {
            const u32 lo = trans ? elem(i, 2 * t, g) : elem(i, g, 2 * t);
            const u32 hi = trans ? elem(i, 2 * t + 1, g) : elem(i, g, 2 * t + 1);
            w->lane[lane].out[i] = lo | (hi << 16);
        }
    }
    return true;
}

inline void compute_collective(Warp* w) {
    const unsigned m = w->mask;
    const unsigned width = w->width == 0 || w->width > 32 ? 32 : w->width;
    switch (w->kind) {
        case C_SHFL_IDX:
        case C_SHFL_UP:
        case C_SHFL_DOWN:
        case C_SHFL_XOR:
            for (unsigned i = 0; i < 32; ++i) {
                if (!(m >> i & 1u)) continue;
                unsigned seg = i & ~(width - 1), pos = i & (width - 1);
                long long src = i;
                u64 d = w->lane[i].arg;
                switch (w->kind) {
                    case C_SHFL_IDX: src = seg + (d & (width - 1)); break;
                    case C_SHFL_UP: src = pos >= d ? (long long)i - (long long)d : (long long)i; break;
                    case C_SHFL_DOWN: src = pos + d < width ? (long long)(i + d) : (long long)i; break;
                    default: {
                        unsigned x = i ^ (unsigned)d;
                        src = x < 32 && (x & ~(width - 1)) <= seg ? x : i;
                    }
                }
                // Reading a lane that did not take part returns an undefined value: we return our own.
                w->lane[i].out[0] = (m >> src & 1u) ? w->lane[src].in[0] : w->lane[i].in[0];
            }
            break;
        case C_BALLOT:
        case C_ANY:
        case C_ALL: {
            unsigned bits = 0;
            for (unsigned i = 0; i < 32; ++i)
                if ((m >> i & 1u) && w->lane[i].in[0]) bits |= 1u << i;
            u64 r = w->kind == C_BALLOT ? bits : w->kind == C_ANY ? (bits != 0) : (bits == m);
            for (unsigned i = 0; i < 32; ++i) w->lane[i].out[0] = r;
            break;
        }
        case C_SYNCWARP: break;
        case C_MMA_F16: mma_m16n8k16(w, false); break;
        case C_MMA_BF16: mma_m16n8k16(w, true); break;
        case C_LDMATRIX_X4:
        case C_LDMATRIX_X4_TRANS: {
            unsigned bad = 0;
            if (!ldmatrix_x4(w, w->kind == C_LDMATRIX_X4_TRANS, &bad)) {
                fail(tl_block, SIM_TRAP, "ldmatrix: lane %u's row address 0x%llx is not 16-byte aligned", bad,
                     (unsigned long long)w->lane[bad].in[0]);
                siglongjmp(*tl_trap_jmp, 1);
            }
            break;
        }
        default: {
            long long acc = 0;
            bool first = true;
            for (unsigned i = 0; i < 32; ++i) {
                if (!(m >> i & 1u)) continue;
                u64 v = w->lane[i].in[0];
                long long sv = (long long)(int)(u32)v;
                u32 uv = (u32)v;
                if (first) { acc = w->kind == C_REDUCE_UMIN || w->kind == C_REDUCE_UMAX ||
                                   w->kind == C_REDUCE_AND || w->kind == C_REDUCE_OR ||
                                   w->kind == C_REDUCE_XOR || w->kind == C_REDUCE_ADD ? (long long)uv : sv;
                             first = false; continue; }
                switch (w->kind) {
                    case C_REDUCE_ADD: acc = (long long)(u32)((u32)acc + uv); break;
                    case C_REDUCE_MIN: acc = sv < acc ? sv : acc; break;
                    case C_REDUCE_MAX: acc = sv > acc ? sv : acc; break;
                    case C_REDUCE_UMIN: acc = uv < (u32)acc ? uv : (u32)acc; break;
                    case C_REDUCE_UMAX: acc = uv > (u32)acc ? uv : (u32)acc; break;
                    case C_REDUCE_AND: acc = (u32)acc & uv; break;
                    case C_REDUCE_OR: acc = (u32)acc | uv; break;
                    default: acc = (u32)acc ^ uv; break;
                }
            }
            for (unsigned i = 0; i < 32; ++i) w->lane[i].out[0] = (u64)acc;
        }
    }
}

template <class T> inline T shuffle(int kind, unsigned mask, T var, u64 arg, int width) {
    u64 in = to_bits(var);
    WarpLane* me = collective(kind, mask, &in, 1, arg, (unsigned)width);
    return from_bits<T>(me->out[0]);
}

inline thread_local u64 (*tl_now)(void) = nullptr;
inline thread_local void (*tl_sleep)(u64) = nullptr;
inline u64 now_ns() { return tl_now ? tl_now() : 0; }

// __nanosleep: lets the block's other threads run; when every running thread only sleeps, the OS thread
// sleeps too (briefly), so spinning kernels do not burn the host.
inline void nanosleep_ns(u64 ns) {
    Block* b = tl_block;
    if (b == nullptr) return;
    b->cur->slept = 1;
    b->cur->sleep_ns = ns;
    yield_fiber();
}

// ----- block runner -----
inline void fiber_main(void* arg) {
    Block* b = tl_block;
    (void)arg;
    b->invoke(b->launch);
    Fiber* f = b->cur;
    f->state = EXITED;
    b->alive--;
    if (b->barrier_count > 0 && b->barrier_count == b->alive) release_barrier(b);
    yield_fiber();
    __builtin_trap();  // never resumed
}

inline thread_local Fiber* tl_fibers = nullptr;
inline thread_local unsigned tl_fiber_cap = 0;
inline thread_local Warp* tl_warps = nullptr;
inline thread_local unsigned tl_warp_cap = 0;

inline void jump_back(void* jb) { siglongjmp(*(sigjmp_buf*)jb, 1); }

// Runs blocks [first, end) (linear indices, x fastest) of `l` on this OS thread.
inline int run_blocks(void (*invoke)(const sim_launch*), const sim_launch* l, u64 first, u64 end,
                      sim_outcome* out) {
    const unsigned n = l->block.x * l->block.y * l->block.z;
    tl_now = l->now_ns;
    tl_sleep = l->sleep_ns;
    if (tl_fiber_cap < n) {
        delete[] tl_fibers;
        tl_fibers = new Fiber[n]();
        tl_fiber_cap = n;
    }
    const unsigned nwarps = (n + 31) / 32;
    if (tl_warp_cap < nwarps) {
        delete[] tl_warps;
        tl_warps = new Warp[nwarps]();
        tl_warp_cap = nwarps;
    }
    static thread_local Block block;
    Block* b = &block;
    b->message = out->message;
    b->message_cap = sizeof out->message;
    b->failed = 0;
    out->status = SIM_OK;
    out->message[0] = 0;
    tl_grid_dim = dim3(l->grid.x, l->grid.y, l->grid.z);
    tl_block_dim = dim3(l->block.x, l->block.y, l->block.z);
    sigjmp_buf jb;
    volatile u64 blk = first;
    if (sigsetjmp(jb, 1) != 0) {
        // A fault (SIGSEGV/SIGBUS in kernel code) or a trap: the simulator's handler jumped here.
        tl_block = nullptr;
        tl_trap_jmp = nullptr;
        l->disarm();
        out->status = b->failed ? b->failed : SIM_FAULT;
        out->block = {tl_block_idx.x, tl_block_idx.y, tl_block_idx.z};
        out->thread = {tl_thread_idx.x, tl_thread_idx.y, tl_thread_idx.z};
        return out->status;
    }
    tl_trap_jmp = &jb;
    l->arm(&jb, &jump_back);
    for (; blk < end; blk = blk + 1) {
        if (*l->abort) break;
        u64 lin = blk;
        tl_block_idx.x = (unsigned)(lin % l->grid.x);
        tl_block_idx.y = (unsigned)((lin / l->grid.x) % l->grid.y);
        tl_block_idx.z = (unsigned)(lin / ((u64)l->grid.x * l->grid.y));
        b->fibers = tl_fibers;
        b->n = n;
        b->alive = n;
        b->barrier_count = 0;
        b->barrier_acc = 0;
        b->barrier_result = 0;
        b->warps = tl_warps;
        b->nwarps = nwarps;
        b->launch = l;
        b->invoke = invoke;
        for (unsigned w = 0; w < nwarps; ++w) {
            b->warps[w].arrived = 0;
            b->warps[w].kind = C_NONE;
            unsigned count = n - w * 32 < 32 ? n - w * 32 : 32;
            b->warps[w].exists = count == 32 ? 0xffffffffu : ((1u << count) - 1);
        }
        for (unsigned i = 0; i < n; ++i) {
            Fiber* f = &b->fibers[i];
            f->state = RUNNABLE;
            f->linear = i;
            f->tid = {i % l->block.x, (i / l->block.x) % l->block.y, i / (l->block.x * l->block.y)};
            f->slept = 0;
            f->sp = make_context(l->stacks[i], l->stack_size, &fiber_main, f);
        }
        tl_block = b;
        while (b->alive > 0) {
            bool ran = false, all_slept = true;
            u64 min_sleep = ~0ull;
            for (unsigned i = 0; i < n; ++i) {
                Fiber* f = &b->fibers[i];
                if (f->state != RUNNABLE) continue;
                ran = true;
                f->slept = 0;
                b->cur = f;
                tl_thread_idx = f->tid;
#if defined(__x86_64__)
                switch_to(&b->sched_sp, f->sp);
#else
                {
                    static thread_local ucontext_t sched;
                    b->sched_sp = &sched;
                    swapcontext(&sched, (ucontext_t*)f->sp);
                }
#endif
                if (b->failed) break;
                if (f->state == RUNNABLE && f->slept) {
                    if (f->sleep_ns < min_sleep) min_sleep = f->sleep_ns;
                } else {
                    all_slept = false;
                }
            }
            if (b->failed) break;
            if (!ran) {
                unsigned at_barrier = 0, at_warp = 0;
                for (unsigned i = 0; i < n; ++i) {
                    at_barrier += b->fibers[i].state == WAIT_BARRIER;
                    at_warp += b->fibers[i].state == WAIT_WARP;
                }
                fail(b, SIM_DEADLOCK,
                     "deadlock: %u thread(s) wait at __syncthreads, %u at a warp collective, %u exited (a barrier "
                     "or collective that not every required thread reaches)",
                     at_barrier, at_warp, n - b->alive);
                break;
            }
            if (all_slept && min_sleep != ~0ull) {
                u64 ns = min_sleep < 200000 ? min_sleep : 200000;
                if (tl_sleep) tl_sleep(ns);
            }
        }
        tl_block = nullptr;
        if (b->failed) {
            out->status = b->failed;
            out->block = {tl_block_idx.x, tl_block_idx.y, tl_block_idx.z};
            out->thread = {tl_thread_idx.x, tl_thread_idx.y, tl_thread_idx.z};
            break;
        }
    }
    tl_trap_jmp = nullptr;
    l->disarm();
    return out->status;
}

// Kernel signature → parameter table and invoker.
template <class T> struct ParamKind {
    static constexpr unsigned value =
        std::is_pointer<T>::value ? (std::is_const<typename std::remove_pointer<T>::type>::value ? 1u : 2u) : 0u;
};

template <class F> struct Kernel;
template <class... A> struct Kernel<void (*)(A...)> {
    static constexpr int count = sizeof...(A);
    static const sim_param* params() {
        static const sim_param table[sizeof...(A) + 1] = {
            {(unsigned)sizeof(A), (unsigned)alignof(A), ParamKind<A>::value}..., {0, 0, 0}};
        return table;
    }
    template <void (*F)(A...), size_t... I>
    static void call(const sim_launch* l, std::index_sequence<I...>) {
        // Each thread gets its own copies of the arguments, as on the GPU.
        F(*static_cast<typename std::remove_cv<A>::type*>(l->params[I])...);
    }
    template <void (*F)(A...)> static void invoke(const sim_launch* l) {
        call<F>(l, std::index_sequence_for<A...>{});
    }
    template <void (*F)(A...)> static int run(const sim_launch* l, u64 first, u64 end, sim_outcome* out) {
        return run_blocks(&invoke<F>, l, first, end, out);
    }
};

}  // namespace sim

#define SIM_ENTRY(name, bound)                                                                               \
    { #name, &::sim::Kernel<decltype(&name)>::run<&name>, ::sim::Kernel<decltype(&name)>::count,             \
      ::sim::Kernel<decltype(&name)>::params(), (int)(bound) },

// ---------------------------------------------------------------------------------------------------------
// Built-in variables.
#define threadIdx (::sim::tl_thread_idx)
#define blockIdx (::sim::tl_block_idx)
#define blockDim (::sim::tl_block_dim)
#define gridDim (::sim::tl_grid_dim)
#define warpSize 32

// Synchronisation.
inline void __syncthreads() { ::sim::barrier(1); }
inline int __syncthreads_count(int p) { return (int)::sim::barrier(p); }
inline int __syncthreads_and(int p) {
    long long n = ::sim::barrier(p);
    return n == (long long)::sim::tl_block->alive;
}
inline int __syncthreads_or(int p) { return ::sim::barrier(p) != 0; }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    if (::sim::tl_block) ::sim::collective(::sim::C_SYNCWARP, mask, nullptr, 0, 0, 32);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __nanosleep(unsigned ns) { ::sim::nanosleep_ns(ns); }
inline unsigned __activemask() {
    ::sim::Block* b = ::sim::tl_block;
    return b ? b->warps[b->cur->linear >> 5].exists : 1u;
}
[[noreturn]] inline void __trap() {
    ::sim::Block* b = ::sim::tl_block;
    if (b) ::sim::fail(b, SIM_TRAP, "__trap() called");
    siglongjmp(*::sim::tl_trap_jmp, 1);
}
#define __brkpt() __trap()
[[noreturn]] inline void streamdsl_sim_assert_fail(const char* expr, const char* file, int line) {
    ::sim::Block* b = ::sim::tl_block;
    if (b) ::sim::fail(b, SIM_TRAP, "assertion `%s` failed at %s:%d", expr, file, line);
    siglongjmp(*::sim::tl_trap_jmp, 1);
}
#undef assert
#define assert(e) ((e) ? (void)0 : streamdsl_sim_assert_fail(#e, __FILE__, __LINE__))

// Warp shuffles and votes.
template <class T> inline T __shfl_sync(unsigned mask, T var, int src, int width = 32) {
    return ::sim::shuffle(::sim::C_SHFL_IDX, mask, var, (unsigned long long)(unsigned)src, width);
}
template <class T> inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return ::sim::shuffle(::sim::C_SHFL_UP, mask, var, delta, width);
}
template <class T> inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    return ::sim::shuffle(::sim::C_SHFL_DOWN, mask, var, delta, width);
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
    return ::sim::shuffle(::sim::C_SHFL_XOR, mask, var, (unsigned long long)(unsigned)lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    return (unsigned)::sim::shuffle(::sim::C_BALLOT, mask, (unsigned long long)(pred != 0), 0, 32);
}
inline int __any_sync(unsigned mask, int pred) {
    return (int)::sim::shuffle(::sim::C_ANY, mask, (unsigned long long)(pred != 0), 0, 32);
}
inline int __all_sync(unsigned mask, int pred) {
    return (int)::sim::shuffle(::sim::C_ALL, mask, (unsigned long long)(pred != 0), 0, 32);
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) { return (unsigned)::sim::shuffle(::sim::C_REDUCE_ADD, mask, (unsigned long long)v, 0, 32); }
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) { return (unsigned)::sim::shuffle(::sim::C_REDUCE_UMIN, mask, (unsigned long long)v, 0, 32); }
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) { return (unsigned)::sim::shuffle(::sim::C_REDUCE_UMAX, mask, (unsigned long long)v, 0, 32); }
inline int __reduce_add_sync(unsigned mask, int v) { return (int)::sim::shuffle(::sim::C_REDUCE_ADD, mask, (unsigned long long)(unsigned)v, 0, 32); }
inline int __reduce_min_sync(unsigned mask, int v) { return (int)::sim::shuffle(::sim::C_REDUCE_MIN, mask, (unsigned long long)(unsigned)v, 0, 32); }
inline int __reduce_max_sync(unsigned mask, int v) { return (int)::sim::shuffle(::sim::C_REDUCE_MAX, mask, (unsigned long long)(unsigned)v, 0, 32); }
inline unsigned __reduce_and_sync(unsigned mask, unsigned v) { return (unsigned)::sim::shuffle(::sim::C_REDUCE_AND, mask, (unsigned long long)v, 0, 32); }
inline unsigned __reduce_or_sync(unsigned mask, unsigned v) { return (unsigned)::sim::shuffle(::sim::C_REDUCE_OR, mask, (unsigned long long)v, 0, 32); }
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v) { return (unsigned)::sim::shuffle(::sim::C_REDUCE_XOR, mask, (unsigned long long)v, 0, 32); }

// Integer intrinsics.
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * b) >> 64); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
inline unsigned long long __brevll(unsigned long long x) {
    return ((unsigned long long)__brev((unsigned)x) << 32) | __brev((unsigned)(x >> 32));
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    unsigned long long v = ((unsigned long long)y << 32) | x;
    unsigned r = 0;
    for (int i = 0; i < 4; ++i) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)((v << (s & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)(v >> (s & 31));
}

// Bit casts.
inline unsigned __float_as_uint(float x) { return ::sim::f32_bits(x); }
inline float __uint_as_float(unsigned x) { return ::sim::bits_f32(x); }
inline int __float_as_int(float x) { return (int)::sim::f32_bits(x); }
inline float __int_as_float(int x) { return ::sim::bits_f32((unsigned)x); }
inline long long __double_as_longlong(double x) { return (long long)::sim::f64_bits(x); }
inline double __longlong_as_double(long long x) { return ::sim::bits_f64((unsigned long long)x); }
inline int __double2hiint(double x) { return (int)(::sim::f64_bits(x) >> 32); }
inline int __double2loint(double x) { return (int)(unsigned)::sim::f64_bits(x); }
inline double __hiloint2double(int hi, int lo) {
    return ::sim::bits_f64(((unsigned long long)(unsigned)hi << 32) | (unsigned)lo);
}

// IEEE round-to-nearest-even arithmetic: exactly the host's (SSE) operations; the TU is compiled with
// -ffp-contract=off, so no multiply-add is fused unless written as fma.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __drcp_rn(double a) { return 1.0 / a; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
// Fast-math intrinsics: exact host forms here (the GPU's are approximations; not modelled).
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float a) { return ::expf(a); }
inline float __logf(float a) { return ::logf(a); }
inline float __sinf(float a) { return ::sinf(a); }
inline float __cosf(float a) { return ::cosf(a); }
inline float __powf(float a, float b) { return ::powf(a, b); }
inline float __saturatef(float a) { return a != a ? 0.0f : a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }
inline float rsqrtf(float a) { return 1.0f / std::sqrt(a); }
inline double rsqrt(double a) { return 1.0 / std::sqrt(a); }

// Conversions (CUDA saturates out-of-range values and maps NaN to 0).
namespace sim {
template <class I> inline I to_int_sat(double r) {
    if (r != r) return 0;
    if (r <= (double)std::numeric_limits<I>::min()) return std::numeric_limits<I>::min();
    if (r >= (double)std::numeric_limits<I>::max()) return std::numeric_limits<I>::max();
    return (I)r;
}
}  // namespace sim
inline int __float2int_rn(float x) { return ::sim::to_int_sat<int>(std::nearbyint((double)x)); }
inline int __float2int_rz(float x) { return ::sim::to_int_sat<int>(std::trunc((double)x)); }
inline int __float2int_rd(float x) { return ::sim::to_int_sat<int>(std::floor((double)x)); }
inline int __float2int_ru(float x) { return ::sim::to_int_sat<int>(std::ceil((double)x)); }
inline unsigned __float2uint_rn(float x) { return ::sim::to_int_sat<unsigned>(std::nearbyint((double)x)); }
inline unsigned __float2uint_rz(float x) { return ::sim::to_int_sat<unsigned>(std::trunc((double)x)); }
inline int __double2int_rn(double x) { return ::sim::to_int_sat<int>(std::nearbyint(x)); }
inline int __double2int_rz(double x) { return ::sim::to_int_sat<int>(std::trunc(x)); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __uint2float_rn(unsigned x) { return (float)x; }
inline float __double2float_rn(double x) { return (float)x; }
inline double __int2double_rn(int x) { return (double)x; }
inline double __ll2double_rn(long long x) { return (double)x; }
inline double __ull2double_rn(unsigned long long x) { return (double)x; }

// min / max as CUDA declares them.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned min(int a, unsigned b) { return min((unsigned)a, b); }
inline unsigned min(unsigned a, int b) { return min(a, (unsigned)b); }
inline unsigned max(int a, unsigned b) { return max((unsigned)a, b); }
inline unsigned max(unsigned a, int b) { return max(a, (unsigned)b); }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return ::fminf(a, b); }
inline float max(float a, float b) { return ::fmaxf(a, b); }
inline double min(double a, double b) { return ::fmin(a, b); }
inline double max(double a, double b) { return ::fmax(a, b); }

// Loads and stores with cache hints: plain accesses.
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }

inline long long clock64() { return (long long)::sim::now_ns(); }

// Atomics: real atomic read-modify-writes (blocks run concurrently on several OS threads).
namespace sim {
template <class T, class F> inline T atomic_update(T* p, F f) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "32- or 64-bit atomics");
    typedef typename std::conditional<sizeof(T) == 4, unsigned, unsigned long long>::type B;
    B* bp = reinterpret_cast<B*>(p);
    B old = __atomic_load_n(bp, __ATOMIC_RELAXED);
    for (;;) {
        T o, n;
        std::memcpy(&o, &old, sizeof(T));
        n = f(o);
        B nb;
        std::memcpy(&nb, &n, sizeof(T));
        if (__atomic_compare_exchange_n(bp, &old, nb, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return o;
    }
}
}  // namespace sim
#define SIM_ATOMIC_INT(T)                                                                                    \
    inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }                  \
    inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }                      \
    inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); }                    \
    inline T atomicMin(T* p, T v) { return ::sim::atomic_update(p, [v](T o) { return o < v ? o : v; }); } \
    inline T atomicMax(T* p, T v) { return ::sim::atomic_update(p, [v](T o) { return o > v ? o : v; }); } \
    inline T atomicCAS(T* p, T cmp, T v) {                                                                  \
        __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                 \
        return cmp;                                                                                         \
    }
SIM_ATOMIC_INT(int)
SIM_ATOMIC_INT(unsigned)
SIM_ATOMIC_INT(unsigned long long)
SIM_ATOMIC_INT(long long)
#undef SIM_ATOMIC_INT
inline float atomicAdd(float* p, float v) { return ::sim::atomic_update(p, [v](float o) { return o + v; }); }
inline double atomicAdd(double* p, double v) { return ::sim::atomic_update(p, [v](double o) { return o + v; }); }
inline float atomicExch(float* p, float v) { return ::sim::atomic_update(p, [v](float) { return v; }); }
inline unsigned atomicInc(unsigned* p, unsigned lim) {
    return ::sim::atomic_update(p, [lim](unsigned o) { return o >= lim ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* p, unsigned lim) {
    return ::sim::atomic_update(p, [lim](unsigned o) { return (o == 0 || o > lim) ? lim : o - 1; });
}
inline unsigned short atomicCAS(unsigned short* p, unsigned short cmp, unsigned short v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd

// Vector types.
#define SIM_VEC2(N, T) struct N { T x, y; }; inline N make_##N(T x, T y) { return N{x, y}; }
#define SIM_VEC4(N, T, A) struct __attribute__((aligned(A))) N { T x, y, z, w; }; \
    inline N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }
struct __attribute__((aligned(8))) float2 { float x, y; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
struct __attribute__((aligned(16))) double2 { double x, y; };
inline double2 make_double2(double x, double y) { return double2{x, y}; }
struct __attribute__((aligned(8))) int2 { int x, y; };
inline int2 make_int2(int x, int y) { return int2{x, y}; }
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
SIM_VEC4(float4, float, 16)
SIM_VEC4(int4, int, 16)
SIM_VEC4(uint4, unsigned, 16)
struct float3 { float x, y, z; };
inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
#undef SIM_VEC2
#undef SIM_VEC4

// ---------------------------------------------------------------------------------------------------------
// Host forms of the named PTX functions of kernels/src/cuda/ptx.cuh (which hides its inline PTX behind
// #ifndef STREAMDSL_SIM). Each follows the PTX ISA's semantics for the instruction it names.
#define STREAMDSL_SIM_PTX 1
// cvt.f32.f16
inline float ptx_cvt_f32_f16(unsigned short h) { return ::sim::cvt_f32_f16(h); }
// cvt.rn.f16.f32
inline unsigned short ptx_cvt_rn_f16_f32(float x) { return ::sim::round_f32_to_16(x, 10, 5); }
// cvt.rn.bf16.f32
inline unsigned short ptx_cvt_rn_bf16_f32(float x) { return ::sim::round_f32_to_16(x, 7, 8); }
// cvt.rz.f32.f64
inline float ptx_cvt_rz_f32_f64(double x) { return ::sim::cvt_rz_f32_f64(x); }
// mov.u64 %0, %globaltimer (nanoseconds)
inline unsigned long long ptx_globaltimer() { return ::sim::now_ns(); }
// nanosleep.u32
inline void ptx_nanosleep(unsigned ns) { ::sim::nanosleep_ns(ns); }
// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 / .bf16.bf16: acc (c0..c3) += A·B from the fragments.
namespace sim {
inline void mma_sync(int kind, float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    u64 in[10] = {a[0], a[1], a[2], a[3], b[0], b[1], f32_bits(acc[0]), f32_bits(acc[1]), f32_bits(acc[2]),
                  f32_bits(acc[3])};
    WarpLane* me = collective(kind, 0xffffffffu, in, 10, 0, 32);
    for (int i = 0; i < 4; ++i) acc[i] = bits_f32((u32)me->out[i]);
}
}  // namespace sim
inline void ptx_mma_m16n8k16_f16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    ::sim::mma_sync(::sim::C_MMA_F16, acc, a, b);
}
inline void ptx_mma_m16n8k16_bf16(float (&acc)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    ::sim::mma_sync(::sim::C_MMA_BF16, acc, a, b);
}
// ldmatrix.sync.aligned.m8n8.x4{.trans}.shared.b16: a warp collective; the last lane to arrive reads every
// lane's row (shared memory is the block's, on this OS thread) per the PTX ISA layout (see ldmatrix_x4).
namespace sim {
inline void ldmatrix_sync(int kind, unsigned (&r)[4], const void* row) {
    u64 in[1] = {(u64)(uintptr_t)row};
    WarpLane* me = collective(kind, 0xffffffffu, in, 1, 0, 32);
    for (int i = 0; i < 4; ++i) r[i] = (u32)me->out[i];
}
}  // namespace sim
inline void ptx_ldmatrix_x4(unsigned (&r)[4], const void* row) { ::sim::ldmatrix_sync(::sim::C_LDMATRIX_X4, r, row); }
inline void ptx_ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
    ::sim::ldmatrix_sync(::sim::C_LDMATRIX_X4_TRANS, r, row);
}

#endif  // STREAMDSL_SIM_EMULATION_H
