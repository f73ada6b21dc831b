//! CPU compute kernels. They run on a stream's worker and parallelise inside with rayon and `gemm`.
//!
//! Elementwise arithmetic is done in `f64` and rounded once to the element type; for `+ - * /` that is
//! the correctly rounded IEEE result for every supported type (f64 carries more than twice the
//! precision of f32), so the CPU backend is a faithful reference.

use rayon::prelude::*;

use crate::backend::{BinaryOp, MatmulDims};
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::math::{chunk_sum, SUM_CHUNK};
use crate::rng::{counter, key, normals_f32, normals_f64, philox4x32_10};
use crate::shape::broadcast_strides;

/// Below this many elements, work stays on the stream's worker thread.
const PAR_MIN: usize = 1 << 15;

fn for_each_chunk<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
    const CHUNK: usize = 1 << 14;
    if out.len() < PAR_MIN {
        f(0, out);
    } else {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| f(i * CHUNK, c));
    }
}

/// `out[i] = value`.
pub(crate) fn fill<T: Element>(out: &mut [T], value: T) {
    for_each_chunk(out, |_, c| c.fill(value));
}

/// Standard normals from Philox4x32-10 at `(seed, offset)`; element `i` uses word `i % 4` of group `i / 4`.
pub(crate) fn randn<T: Element>(out: &mut [T], seed: u64, offset: u64) {
    const GROUPS_PER_CHUNK: usize = 1 << 12;
    let k = key(seed);
    let body = |first: usize, chunk: &mut [T]| {
        debug_assert_eq!(first % 4, 0);
        for (j, quad) in chunk.chunks_mut(4).enumerate() {
            let g = (first / 4 + j) as u64;
            let bits = philox4x32_10(counter(g, offset), k);
            if T::DTYPE == DType::F64 {
                for (o, z) in quad.iter_mut().zip(normals_f64(bits)) {
                    *o = T::from_f64(z);
                }
            } else {
                for (o, z) in quad.iter_mut().zip(normals_f32(bits)) {
                    *o = T::from_f32(z);
                }
            }
        }
    };
    if out.len() < PAR_MIN {
        body(0, out);
    } else {
        out.par_chunks_mut(4 * GROUPS_PER_CHUNK).enumerate().for_each(|(i, c)| body(i * 4 * GROUPS_PER_CHUNK, c));
    }
}

/// `out = a ∘ b` with NumPy broadcasting; `out_shape` is the broadcast shape.
pub(crate) fn binary<T: Element>(
    op: BinaryOp,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
    out_shape: &[usize],
) {
    let f = |x: T, y: T| T::from_f64(op.apply(x.to_f64(), y.to_f64()));
    if a_shape == b_shape {
        for_each_chunk(out, |start, c| {
            for (i, o) in c.iter_mut().enumerate() {
                *o = f(a[start + i], b[start + i]);
            }
        });
        return;
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    for_each_chunk(out, |start, c| {
        // Walk a multi-index alongside the flat one; only the first element pays for the division.
        let mut idx = vec![0usize; out_shape.len()];
        let mut rem = start;
        for d in (0..out_shape.len()).rev() {
            idx[d] = rem % out_shape[d];
            rem /= out_shape[d];
        }
        let mut ia: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let mut ib: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
        for o in c.iter_mut() {
            *o = f(a[ia], b[ib]);
            for d in (0..out_shape.len()).rev() {
                idx[d] += 1;
                ia += sa[d];
                ib += sb[d];
                if idx[d] < out_shape[d] {
                    break;
                }
                ia -= sa[d] * out_shape[d];
                ib -= sb[d] * out_shape[d];
                idx[d] = 0;
            }
        }
    });
}

/// `out = a ∘ s` for a scalar `s` (or `s ∘ a` with `reversed`).
pub(crate) fn scalar<T: Element>(op: BinaryOp, a: &[T], s: f64, reversed: bool, out: &mut [T]) {
    for_each_chunk(out, |start, c| {
        for (i, o) in c.iter_mut().enumerate() {
            let x = a[start + i].to_f64();
            *o = T::from_f64(if reversed { op.apply(s, x) } else { op.apply(x, s) });
        }
    });
}

/// `out[i] = U::from(a[i])`, rounding once.
pub(crate) fn convert<T: Element, U: Element>(a: &[T], out: &mut [U]) {
    for_each_chunk(out, |start, c| {
        for (i, o) in c.iter_mut().enumerate() {
            *o = U::from_f64(a[start + i].to_f64());
        }
    });
}

/// The sum of `a` in f64 along the fixed tree of `crate::math` (the CUDA kernel's tree): the same bits for any
/// number of threads. The chunks of each level are summed in parallel; their sums are kept in order.
pub(crate) fn sum<T: Element>(a: &[T]) -> f64 {
    let mut level: Vec<f64> = if a.len() < PAR_MIN {
        a.chunks(SUM_CHUNK).map(|c| chunk_sum(c, T::to_f64)).collect()
    } else {
        a.par_chunks(SUM_CHUNK).map(|c| chunk_sum(c, T::to_f64)).collect()
    };
    while level.len() > 1 {
        level = level.chunks(SUM_CHUNK).map(|c| chunk_sum(c, |v| v)).collect();
    }
    level.first().copied().unwrap_or(0.0)
}

/// `out = a · b` for row-major operands. f32 and f64 multiply natively; f16 and bf16 are widened to f32,
/// multiplied with f32 accumulation and rounded once (what tensor cores do).
pub(crate) fn matmul<T: Element>(a: &[T], b: &[T], out: &mut [T], d: MatmulDims) -> Result<()> {
    match T::DTYPE {
        DType::F32 => gemm_native(cast::<T, f32>(a), cast::<T, f32>(b), cast_mut::<T, f32>(out), d),
        DType::F64 => gemm_native(cast::<T, f64>(a), cast::<T, f64>(b), cast_mut::<T, f64>(out), d),
        DType::F16 | DType::BF16 => {
            let widen = |x: &[T]| -> Result<Vec<f32>> {
                let mut w = scratch_f32(x.len())?;
                x.par_iter().map(|v| v.to_f32()).collect_into_vec(&mut w);
                Ok(w)
            };
            let (wa, wb) = (widen(a)?, widen(b)?);
            let mut wo = scratch_f32(out.len())?;
            wo.resize(out.len(), 0.0);
            gemm_native(&wa, &wb, &mut wo, d);
            out.par_iter_mut().zip(wo.par_iter()).for_each(|(o, &v)| *o = T::from_f32(v));
        }
    }
    Ok(())
}

/// An empty vector with room for `len` floats, or [`Error::OutOfMemory`] (never an abort).
fn scratch_f32(len: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory { device: Device::cpu(), bytes: len.saturating_mul(size_of::<f32>()) })?;
    Ok(v)
}

fn cast<T: Element, U: Element>(x: &[T]) -> &[U] {
    assert_eq!(T::DTYPE, U::DTYPE);
    // SAFETY: T and U are the same type (same DType tag; the Element trait is sealed to four types).
    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<U>(), x.len()) }
}

fn cast_mut<T: Element, U: Element>(x: &mut [T]) -> &mut [U] {
    assert_eq!(T::DTYPE, U::DTYPE);
    // SAFETY: as in `cast`.
    unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<U>(), x.len()) }
}

fn gemm_native<T: Element>(a: &[T], b: &[T], out: &mut [T], d: MatmulDims) {
    let threads = rayon::current_num_threads();
    let par = if d.m * d.n * d.k >= 48 * 48 * 48 && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let (m, k, n) = (d.m, d.k, d.n);
    for i in 0..d.batch {
        let a = &a[i * d.a_batch_stride..][..m * k];
        let b = &b[i * d.b_batch_stride..][..k * n];
        let o = &mut out[i * m * n..][..m * n];
        // SAFETY: the three slices are in bounds for row-major m×k, k×n and m×n matrices (checked above by
        // the slicing), `o` does not alias `a` or `b` (distinct buffers), and `read_dst == false`.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                o.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                1,
                k as isize,
                b.as_ptr(),
                1,
                n as isize,
                T::ZERO,
                T::ONE,
                false,
                false,
                false,
                par,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_follow_the_fixed_tree_whatever_the_threads() {
        let v: Vec<f32> = (0..1_000_003u64).map(|i| ((i * 7919) % 1000) as f32 * 0.001 - 0.5).collect();
        let reference = crate::math::tree_sum(&v, f64::from);
        assert_eq!(sum(&v).to_bits(), reference.to_bits());
        for threads in [1, 2, 3, 16] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            assert_eq!(pool.install(|| sum(&v)).to_bits(), reference.to_bits(), "{threads} rayon threads");
        }
    }

    #[test]
    fn broadcasting_walks_the_right_elements() {
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
        let b = [10.0f64, 20.0]; // [2, 1]
        let mut out = [0.0f64; 6];
        binary(BinaryOp::Add, &a, &[2, 3], &b, &[2, 1], &mut out, &[2, 3]);
        assert_eq!(out, [11.0, 12.0, 13.0, 24.0, 25.0, 26.0]);
        let c = [100.0f64, 200.0, 300.0]; // [3]
        binary(BinaryOp::Sub, &a, &[2, 3], &c, &[3], &mut out, &[2, 3]);
        assert_eq!(out, [-99.0, -198.0, -297.0, -96.0, -195.0, -294.0]);
    }
}
