//! Kernels on the simulator: the catalog's sources, the emulation header's built-ins, and the checks.
mod common;
use common::*;
use streamdsl::jit::{catalog, KernelSpec, MmTile};
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
        &mut [arg(&mut pa), arg(&mut pb), arg(&mut pc), arg(&mut mm), arg(&mut nn), arg(&mut kk), arg(&mut sa), arg(&mut sb)],
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
