//! Kernels on the simulator: the catalog's sources, the emulation header's built-ins, and the checks.
mod common;
use common::*;
use half::{bf16, f16};
use streamdsl::jit::{catalog, KernelSpec, MmTile, REDUCE_BLOCK};
use streamdsl::DType;

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn ref_mm(a: &[f32], b: &[f32], batch: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for z in 0..batch {
        for i in 0..m {
            for p in 0..k {
                let x = a[z * m * k + i * k + p] as f64;
                for j in 0..n {
                    c[z * m * n + i * n + j] += x * b[z * k * n + p * n + j] as f64;
                }
            }
        }
    }
    c
}

/// Runs `mm_tiled` (f32, small tiles) on `batch` products of m×k·k×n.
fn mm_f32(batch: usize, m: usize, k: usize, n: usize) -> (Vec<f32>, Vec<f64>) {
    setup();
    let s = stream(0);
    let tile = MmTile::SMALL;
    let spec = KernelSpec::mm(DType::F32, tile);
    let f = function(module(&spec.source()), "mm_tiled");
    let (a, b) = (rand_vec(batch * m * k, 1), rand_vec(batch * k * n, 2));
    let (da, db, dc) = (alloc(a.len() * 4, s), alloc(b.len() * 4, s), alloc(batch * m * n * 4, s));
    upload(da, &a, s);
    upload(db, &b, s);
    let (mut pa, mut pb, mut pc) = (da, db, dc);
    let (mut mm, mut nn, mut kk) = (m as i32, n as i32, k as i32);
    let (mut sa, mut sb) = ((m * k) as u64, (k * n) as u64);
    let grid = (n.div_ceil(tile.bn as usize) as u32, m.div_ceil(tile.bm as usize) as u32, batch as u32);
    let r = launch(
        f,
        grid,
        tile.threads(),
        s,
        &mut [
            arg(&mut pa),
            arg(&mut pb),
            arg(&mut pc),
            arg(&mut mm),
            arg(&mut nn),
            arg(&mut kk),
            arg(&mut sa),
            arg(&mut sb),
        ],
    );
    assert_eq!(r, OK);
    let c: Vec<f32> = download(dc, batch * m * n, s);
    assert_eq!(cuStreamSynchronize(s), OK, "{}", last_report());
    (c, ref_mm(&a, &b, batch, m, k, n))
}

fn assert_close(got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((*g as f64 - w).abs() <= tol * (1.0 + w.abs()), "element {i}: {g} vs {w}");
    }
}

#[test]
fn mm_tiled_shapes() {
    for (batch, m, k, n) in [(1, 1, 1, 1), (1, 17, 33, 65), (4, 67, 5, 9), (3, 64, 64, 64)] {
        let (c, want) = mm_f32(batch, m, k, n);
        assert_close(&c, &want, 1e-5);
    }
}

/// Runs `mm_mma` (16-bit inputs, f32 accumulation) on `batch` products; returns (result, f64 reference of the
/// rounded inputs).
fn mm_mma(dtype: DType, batch: usize, m: usize, k: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    setup();
    let s = stream(0);
    let spec = KernelSpec::mm(dtype, MmTile::SMALL);
    let f = function(module(&spec.source()), "mm_mma");
    let to_bits = |v: &[f32]| -> Vec<u16> {
        v.iter()
            .map(|&x| if dtype == DType::F16 { f16::from_f32(x).to_bits() } else { bf16::from_f32(x).to_bits() })
            .collect()
    };
    let from_bits = |b: u16| -> f32 {
        if dtype == DType::F16 {
            f16::from_bits(b).to_f32()
        } else {
            bf16::from_bits(b).to_f32()
        }
    };
    let (a, b) = (to_bits(&rand_vec(batch * m * k, 3)), to_bits(&rand_vec(batch * k * n, 4)));
    let (af, bf): (Vec<f32>, Vec<f32>) =
        (a.iter().map(|&x| from_bits(x)).collect(), b.iter().map(|&x| from_bits(x)).collect());
    let (da, db, dc) = (alloc(a.len() * 2, s), alloc(b.len() * 2, s), alloc(batch * m * n * 2, s));
    upload(da, &a, s);
    upload(db, &b, s);
    let (mut pa, mut pb, mut pc) = (da, db, dc);
    let (mut mm, mut nn, mut kk) = (m as i32, n as i32, k as i32);
    let (mut sa, mut sb) = ((m * k) as u64, (k * n) as u64);
    let grid = (n.div_ceil(64) as u32, m.div_ceil(64) as u32, batch as u32);
    let args = &mut [
        arg(&mut pa),
        arg(&mut pb),
        arg(&mut pc),
        arg(&mut mm),
        arg(&mut nn),
        arg(&mut kk),
        arg(&mut sa),
        arg(&mut sb),
    ];
    assert_eq!(launch(f, grid, 128, s, args), OK);
    let c: Vec<u16> = download(dc, batch * m * n, s);
    assert_eq!(cuStreamSynchronize(s), OK, "{}", last_report());
    (c.into_iter().map(|b| from_bits(b) as f64).collect(), ref_mm(&af, &bf, batch, m, k, n))
}

#[test]
fn mm_mma_f16_and_bf16_shapes() {
    for dtype in [DType::F16, DType::BF16] {
        let tol = if dtype == DType::F16 { 2e-3 } else { 1e-2 };
        for (batch, m, k, n) in [(1, 1, 1, 1), (1, 17, 33, 65), (3, 40, 70, 50), (1, 64, 64, 64)] {
            let (c, want) = mm_mma(dtype, batch, m, k, n);
            for (i, (g, w)) in c.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= tol * (1.0 + w.abs()),
                    "{dtype:?} {batch}x{m}x{k}x{n} element {i}: {g} vs {w}"
                );
            }
        }
    }
}

const MMA_TILE: &str = r#"
// One warp: C (16x8, f32) = A (16x16 f16, row-major) x B (16x8 f16, row-major), fragments per the PTX ISA.
__device__ unsigned pk(unsigned short lo, unsigned short hi) { return (unsigned)lo | ((unsigned)hi << 16); }
extern "C" __global__ void mma_tile(const unsigned short* A, const unsigned short* B, float* C) {
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    unsigned a[4], b[2];
    a[0] = pk(A[g * 16 + 2 * t], A[g * 16 + 2 * t + 1]);
    a[1] = pk(A[(g + 8) * 16 + 2 * t], A[(g + 8) * 16 + 2 * t + 1]);
    a[2] = pk(A[g * 16 + 2 * t + 8], A[g * 16 + 2 * t + 9]);
    a[3] = pk(A[(g + 8) * 16 + 2 * t + 8], A[(g + 8) * 16 + 2 * t + 9]);
#ifdef SWAP
    unsigned x = a[1]; a[1] = a[2]; a[2] = x;
#endif
    b[0] = pk(B[(2 * t) * 8 + g], B[(2 * t + 1) * 8 + g]);
    b[1] = pk(B[(2 * t + 8) * 8 + g], B[(2 * t + 9) * 8 + g]);
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    ptx_mma_m16n8k16_f16(acc, a, b);
    C[g * 8 + 2 * t] = acc[0];
    C[g * 8 + 2 * t + 1] = acc[1];
    C[(g + 8) * 8 + 2 * t] = acc[2];
    C[(g + 8) * 8 + 2 * t + 1] = acc[3];
}
"#;

fn mma_tile(swap: bool) -> (Vec<f32>, Vec<f64>) {
    setup();
    let s = stream(0);
    let src = if swap { format!("#define SWAP 1\n{MMA_TILE}") } else { MMA_TILE.to_string() };
    let f = function(module(&src), "mma_tile");
    let a: Vec<u16> = rand_vec(256, 7).iter().map(|&x| f16::from_f32(x).to_bits()).collect();
    let b: Vec<u16> = rand_vec(128, 8).iter().map(|&x| f16::from_f32(x).to_bits()).collect();
    let af: Vec<f32> = a.iter().map(|&x| f16::from_bits(x).to_f32()).collect();
    let bf: Vec<f32> = b.iter().map(|&x| f16::from_bits(x).to_f32()).collect();
    let (da, db, dc) = (alloc(512, s), alloc(256, s), alloc(512, s));
    upload(da, &a, s);
    upload(db, &b, s);
    let (mut pa, mut pb, mut pc) = (da, db, dc);
    assert_eq!(launch(f, (1, 1, 1), 32, s, &mut [arg(&mut pa), arg(&mut pb), arg(&mut pc)]), OK);
    let c: Vec<f32> = download(dc, 128, s);
    assert_eq!(cuStreamSynchronize(s), OK, "{}", last_report());
    (c, ref_mm(&af, &bf, 1, 16, 16, 8))
}

#[test]
fn mma_fragments_follow_the_ptx_layout() {
    let (c, want) = mma_tile(false);
    for (i, (g, w)) in c.iter().zip(&want).enumerate() {
        assert!((*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()), "element {i}: {g} vs {w}");
    }
    // Two fragment registers swapped: wrong numbers.
    let (c, want) = mma_tile(true);
    let wrong = c.iter().zip(&want).filter(|(g, w)| (**g as f64 - **w).abs() > 1e-3).count();
    assert!(wrong > 64, "only {wrong} of 128 elements differ with a[1] and a[2] swapped");
}

#[test]
fn reduction_with_shared_memory_and_barriers() {
    setup();
    let s = stream(0);
    let spec = KernelSpec::reduce(DType::F32);
    let m = module(&spec.source());
    let (level0, level, write) = (function(m, "sum_chunks"), function(m, "sum_chunks_f64"), function(m, "sum_write"));
    let n = 100_003usize;
    let x = rand_vec(n, 11);
    let want: f64 = x.iter().map(|&v| v as f64).sum();
    let dx = alloc(n * 4, s);
    upload(dx, &x, s);
    let blocks = n.div_ceil(16 * REDUCE_BLOCK as usize) as u32;
    let (partial, total, out) = (alloc(blocks as usize * 8, s), alloc(8, s), alloc(4, s));
    let (mut a, mut nn, mut p) = (dx, n as u64, partial);
    assert_eq!(launch(level0, (blocks, 1, 1), REDUCE_BLOCK, s, &mut [arg(&mut a), arg(&mut nn), arg(&mut p)]), OK);
    let (mut p2, mut count, mut t) = (partial, blocks as u64, total);
    assert_eq!(launch(level, (1, 1, 1), REDUCE_BLOCK, s, &mut [arg(&mut p2), arg(&mut count), arg(&mut t)]), OK);
    let (mut t2, mut scale, mut o) = (total, 1.0f64, out);
    assert_eq!(launch(write, (1, 1, 1), 1, s, &mut [arg(&mut t2), arg(&mut scale), arg(&mut o)]), OK);
    let got: Vec<f32> = download(out, 1, s);
    assert_eq!(got[0], want as f32);
}

const WARP_AND_ATOMICS: &str = r#"
extern "C" __global__ void warp_ops(int* out) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    int v = lane;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    unsigned odd = __ballot_sync(0xffffffffu, lane & 1);
    int up = __shfl_up_sync(0xffffffffu, lane, 1);
    int idx = __shfl_sync(0xffffffffu, lane * 10, 31 - lane);
    int any = __any_sync(0xffffffffu, lane == 7), all = __all_sync(0xffffffffu, lane < 32);
    int* o = out + (warp * 32 + lane) * 6;
    o[0] = v; o[1] = (int)odd; o[2] = up; o[3] = idx; o[4] = any; o[5] = all;
}
extern "C" __global__ void count(unsigned long long* counter, float* total) {
    atomicAdd(counter, 1ull);
    atomicAdd(total, 0.5f);
}
"#;

#[test]
fn warp_shuffles_votes_and_atomics() {
    setup();
    let s = stream(0);
    let m = module(WARP_AND_ATOMICS);
    let out = alloc(64 * 6 * 4, s);
    let mut o = out;
    assert_eq!(launch(function(m, "warp_ops"), (1, 1, 1), 64, s, &mut [arg(&mut o)]), OK);
    let r: Vec<i32> = download(out, 64 * 6, s);
    for t in 0..64 {
        let lane = (t % 32) as i32;
        let v = &r[t * 6..t * 6 + 6];
        assert_eq!(
            v,
            &[496, 0xAAAA_AAAAu32 as i32, if lane == 0 { 0 } else { lane - 1 }, (31 - lane) * 10, 1, 1],
            "thread {t}"
        );
    }
    let counter = alloc(8, s);
    let total = alloc(4, s);
    assert_eq!(cuMemsetD8Async(counter, 0, 8, s), OK);
    assert_eq!(cuMemsetD8Async(total, 0, 4, s), OK);
    let (mut c, mut t) = (counter, total);
    assert_eq!(launch(function(m, "count"), (64, 1, 1), 256, s, &mut [arg(&mut c), arg(&mut t)]), OK);
    assert_eq!(download::<u64>(counter, 1, s), vec![64 * 256]);
    assert_eq!(download::<f32>(total, 1, s), vec![64.0 * 256.0 * 0.5]);
}

const CONVERSIONS: &str = r#"
extern "C" __global__ void cvt(const float* x, const double* d, unsigned short* h, unsigned short* b, float* back,
                               float* rz, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        h[i] = ptx_cvt_rn_f16_f32(x[i]);
        b[i] = ptx_cvt_rn_bf16_f32(x[i]);
        back[i] = ptx_cvt_f32_f16(h[i]);
        rz[i] = ptx_cvt_rz_f32_f64(d[i]);
    }
}
"#;

fn rz_reference(x: f64) -> f32 {
    if x.is_nan() {
        return f32::NAN;
    }
    let r = x as f32;
    if r.is_infinite() && x.is_finite() {
        return f32::MAX.copysign(r);
    }
    if (r as f64).abs() > x.abs() {
        f32::from_bits(r.to_bits() - 1)
    } else {
        r
    }
}

#[test]
fn cvt_host_forms_round_like_the_ptx_isa() {
    setup();
    let s = stream(0);
    let f = function(module(CONVERSIONS), "cvt");
    let mut xs: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        65504.0,
        65519.99,
        65520.0,
        1e-8,
        5.96e-8,
        2.98e-8,
        2.99e-8,
        6.1e-5,
        -3.0e38,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE,
        1.0e-40,
        3.3895314e38,
        3.4e38,
    ];
    let mut seed = 0x1234_5678u32;
    for _ in 0..20000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let v = f32::from_bits(seed);
        if !v.is_nan() {
            xs.push(v);
        }
    }
    let ds: Vec<f64> = xs.iter().enumerate().map(|(i, &x)| x as f64 * (1.0 + i as f64 * 1e-9) + 1e-300).collect();
    let n = xs.len();
    let (dx, dd, dh, db, dback, drz) =
        (alloc(n * 4, s), alloc(n * 8, s), alloc(n * 2, s), alloc(n * 2, s), alloc(n * 4, s), alloc(n * 4, s));
    upload(dx, &xs, s);
    upload(dd, &ds, s);
    let (mut a, mut b, mut c, mut d, mut e, mut g, mut nn) = (dx, dd, dh, db, dback, drz, n as i32);
    let args = &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut d), arg(&mut e), arg(&mut g), arg(&mut nn)];
    assert_eq!(launch(f, (8, 1, 1), 256, s, args), OK);
    let h: Vec<u16> = download(dh, n, s);
    let bb: Vec<u16> = download(db, n, s);
    let back: Vec<f32> = download(dback, n, s);
    let rz: Vec<f32> = download(drz, n, s);
    for i in 0..n {
        assert_eq!(h[i], f16::from_f32(xs[i]).to_bits(), "f16 of {:e} ({:#x})", xs[i], xs[i].to_bits());
        assert_eq!(bb[i], bf16::from_f32(xs[i]).to_bits(), "bf16 of {:e}", xs[i]);
        assert_eq!(back[i].to_bits(), f16::from_bits(h[i]).to_f32().to_bits(), "f16 {:#x} to f32", h[i]);
        assert_eq!(rz[i].to_bits(), rz_reference(ds[i]).to_bits(), "rz of {:e}", ds[i]);
    }
    // NaN: canonical results.
    let nan = [f32::from_bits(0x7fc0_0001), f32::from_bits(0xffc0_0000)];
    upload(dx, &nan, s);
    let mut two = 2i32;
    let args = &mut [arg(&mut a), arg(&mut b), arg(&mut c), arg(&mut d), arg(&mut e), arg(&mut g), arg(&mut two)];
    assert_eq!(launch(f, (1, 1, 1), 32, s, args), OK);
    assert_eq!(download::<u16>(dh, 2, s), vec![0x7fff, 0x7fff]);
    assert_eq!(download::<u16>(db, 2, s), vec![0x7fff, 0x7fff]);
}

#[test]
fn every_catalog_kernel_compiles_and_loads() {
    setup();
    for spec in catalog() {
        let m = try_module(&spec.source()).unwrap_or_else(|e| panic!("{}: {e:?}: {}", spec.name(), last_report()));
        for entry in spec.entry_points() {
            function(m, entry);
        }
    }
}
