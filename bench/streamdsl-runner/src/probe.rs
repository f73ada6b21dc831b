//! Machine probes: the f32 FMA peak of all cores and the memory bandwidth (copy and triad), so the table can
//! say what fraction of the machine an op reaches.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::{json, Value};

/// An f32 FMA kernel: `iters` rounds of independent FMA chains; returns the sum of the accumulators (so the
/// work cannot be optimised away).
type Kernel = fn(u64) -> f32;

struct Isa {
    name: &'static str,
    kernel: Kernel,
    flops_per_iter: f64,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// 16 independent chains of 16-lane FMAs: enough in flight to fill two FMA pipes of latency 4–8.
    #[target_feature(enable = "avx512f")]
    fn fma_avx512_impl(iters: u64) -> f32 {
        // Opaque constants: with known ones the compiler sees that the chain stays at 1.0 and drops the loop.
        let (a, b) = (_mm512_set1_ps(black_box(0.999_999)), _mm512_set1_ps(black_box(1e-6)));
        let mut acc = [_mm512_set1_ps(black_box(1.0)); 16];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for x in acc {
            s = _mm512_add_ps(s, x);
        }
        _mm512_reduce_add_ps(s)
    }

    /// 12 independent chains of 8-lane FMAs (12 of the 16 ymm registers, the rest for the constants).
    #[target_feature(enable = "avx2,fma")]
    fn fma_avx2_impl(iters: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(black_box(0.999_999)), _mm256_set1_ps(black_box(1e-6)));
        let mut acc = [_mm256_set1_ps(black_box(1.0)); 12];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm256_setzero_ps();
        for x in acc {
            s = _mm256_add_ps(s, x);
        }
        let q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let q = _mm_hadd_ps(q, q);
        _mm_cvtss_f32(_mm_hadd_ps(q, q))
    }

    pub fn fma_avx512(iters: u64) -> f32 {
        assert!(is_x86_feature_detected!("avx512f"), "the AVX-512 kernel needs avx512f");
        // SAFETY: the CPU has avx512f (checked just above), the only feature the function enables.
        unsafe { fma_avx512_impl(iters) }
    }

    pub fn fma_avx2(iters: u64) -> f32 {
        assert!(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"), "the AVX2 kernel needs avx2+fma");
        // SAFETY: the CPU has avx2 and fma (checked just above), the features the function enables.
        unsafe { fma_avx2_impl(iters) }
    }
}

/// A portable fallback: 8 scalar chains (a lower bound, not a peak, on CPUs without the kernels above).
fn fma_scalar(iters: u64) -> f32 {
    let (a, b) = (black_box(0.999_999f32), black_box(1e-6f32));
    let mut acc = [black_box(1.0f32); 8];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = x.mul_add(a, b);
        }
    }
    acc.iter().sum()
}

/// The kernels this CPU can run, widest first; the scalar one only where there is no other.
fn isas() -> Vec<Isa> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            v.push(Isa { name: "avx512f", kernel: x86::fma_avx512, flops_per_iter: 16.0 * 16.0 * 2.0 });
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            v.push(Isa { name: "avx2+fma", kernel: x86::fma_avx2, flops_per_iter: 12.0 * 8.0 * 2.0 });
        }
    }
    if v.is_empty() {
        v.push(Isa { name: "scalar (portable; not a peak)", kernel: fma_scalar, flops_per_iter: 8.0 * 2.0 });
    }
    v
}

/// GFLOP/s of `isa` on `threads` threads running together for about `seconds`.
fn fma_rate(isa: &Isa, threads: usize, seconds: f64) -> f64 {
    // Size the run on one thread first.
    let mut iters = 10_000u64;
    loop {
        let t = Instant::now();
        black_box((isa.kernel)(black_box(iters)));
        let dt = t.elapsed().as_secs_f64();
        if dt > 0.02 {
            iters = ((iters as f64 * seconds / dt) as u64).max(1);
            break;
        }
        iters = iters.saturating_mul(4);
    }
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    black_box((isa.kernel)(black_box(iters)))
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        for h in handles {
            let _ = h.join();
        }
        t.elapsed().as_secs_f64()
    });
    threads as f64 * iters as f64 * isa.flops_per_iter / elapsed / 1e9
}

/// The measured f32 FMA peak of all cores: the best of three runs of each kernel the CPU has; the widest
/// kernel is not always the fastest (AMD Zen 4 splits 512-bit FMAs in two), so every one is tried.
pub fn fma_peak(seconds: f64) -> Value {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut by_isa = serde_json::Map::new();
    let mut best: Option<(f64, &str)> = None;
    for isa in isas() {
        let rate = (0..3).map(|_| fma_rate(&isa, threads, seconds)).fold(0.0, f64::max);
        by_isa.insert(isa.name.into(), json!(rate));
        if best.is_none_or(|(b, _)| rate > b) {
            best = Some((rate, isa.name));
        }
    }
    let (gflops, isa) = best.unwrap_or((0.0, "none"));
    json!({"ok": true, "gflops": gflops, "isa": isa, "threads": threads, "by_isa": by_isa})
}

/// Copy (`a = b`, 2 × 4 bytes per element) and triad (`a = b + s·c`, 3 × 4 bytes) on all rayon threads over
/// arrays of `len` f32 (much larger than the caches), best of `reps` runs; bytes counted as read + written
/// (STREAM's convention, the same one the memory-bound rows of the table use).
pub fn bandwidth(len: usize, reps: usize) -> Value {
    const CHUNK: usize = 1 << 16;
    let mut a = vec![0f32; len];
    let b = vec![1f32; len];
    let c = vec![2f32; len];
    // First touch in parallel, as the kernels will (pages spread over the threads' nodes).
    a.par_chunks_mut(CHUNK).for_each(|x| x.fill(0.5));
    let mut best = |f: &mut dyn FnMut(&mut [f32])| -> f64 {
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f(&mut a);
                black_box(&a);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let copy = best(&mut |a| a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).for_each(|(x, y)| x.copy_from_slice(y)));
    let triad = best(&mut |a| {
        a.par_chunks_mut(CHUNK).zip(b.par_chunks(CHUNK)).zip(c.par_chunks(CHUNK)).for_each(|((x, y), z)| {
            for ((x, y), z) in x.iter_mut().zip(y).zip(z) {
                *x = y + 3.0 * z;
            }
        })
    });
    let bytes = (len * size_of::<f32>()) as f64;
    json!({
        "ok": true,
        "copy_gbs": 2.0 * bytes / copy / 1e9,
        "triad_gbs": 3.0 * bytes / triad / 1e9,
        "array_mib": bytes / (1024.0 * 1024.0),
        "threads": rayon::current_num_threads(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_computes_the_same_fixed_point() {
        // The chains converge to b / (1 - a) = 1; every kernel must agree (no kernel is optimised away).
        for isa in isas() {
            let per_lane = (isa.kernel)(10_000) as f64 / (isa.flops_per_iter / 2.0);
            assert!((per_lane - 1.0).abs() < 1e-3, "{}: {per_lane}", isa.name);
        }
        assert!((fma_scalar(10_000) / 8.0 - 1.0).abs() < 1e-3);
    }

    #[test]
    fn the_probes_answer_with_positive_rates() {
        let peak = fma_peak(0.005);
        assert!(peak["gflops"].as_f64().unwrap() > 0.0, "{peak}");
        let bw = bandwidth(1 << 16, 2);
        assert!(bw["copy_gbs"].as_f64().unwrap() > 0.0 && bw["triad_gbs"].as_f64().unwrap() > 0.0, "{bw}");
    }
}
