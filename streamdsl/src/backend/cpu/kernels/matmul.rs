//! `mm`/`bmm` through `gemm`.

use std::mem::MaybeUninit;

use super::lanes::Lane;
use super::{for_each_chunk, pages};
use crate::backend::MatmulDims;
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};

/// `out = a · b` for row-major operands. f32 and f64 multiply natively; f16 and bf16 are widened to f32,
/// multiplied with f32 accumulation and rounded once (what tensor cores do).
///
/// `gemm` has an f16 kernel, but it rounds the partial sums to f16 between its blocks of the inner dimension
/// (more than one rounding for `k` above the block size, a few hundred) and it has no bf16 kernel, so both
/// 16-bit types widen here: one scratch allocation for the widened operands and the f32 product, filled by
/// vectorised parallel passes; the one rounding back is another.
pub(crate) fn matmul<T: Element>(a: &[T], b: &[T], out: &mut [T], d: MatmulDims) -> Result<()> {
    match T::DTYPE {
        DType::F32 => gemm_native(cast::<T, f32>(a), cast::<T, f32>(b), cast_mut::<T, f32>(out), d),
        DType::F64 => gemm_native(cast::<T, f64>(a), cast::<T, f64>(b), cast_mut::<T, f64>(out), d),
        DType::F16 | DType::BF16 => {
            let (na, nb, no) = (a.len(), b.len(), out.len());
            let len = na + nb + no;
            let mut scratch: Vec<f32> = Vec::new();
            scratch.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
                device: Device::cpu(),
                bytes: len.saturating_mul(size_of::<f32>()),
            })?;
            {
                let spare = &mut scratch.spare_capacity_mut()[..len];
                pages::advise_huge(spare);
                let (wa, rest) = spare.split_at_mut(na);
                let (wb, wo) = rest.split_at_mut(nb);
                widen(a, wa);
                widen(b, wb);
                for_each_chunk(wo, |_, c| c.fill(MaybeUninit::new(0.0)));
            }
            // SAFETY: the three passes above wrote all `len` elements of the spare capacity.
            unsafe { scratch.set_len(len) };
            let (wa, rest) = scratch.split_at_mut(na);
            let (wb, wo) = rest.split_at_mut(nb);
            gemm_native(wa, wb, wo, d);
            let wo = &*wo;
            for_each_chunk(
                out,
                #[inline(always)]
                |start, o| {
                    for (o, &x) in o.iter_mut().zip(&wo[start..]) {
                        *o = T::from32(x);
                    }
                },
            );
        }
    }
    Ok(())
}

/// `out[i] = a[i]` widened to f32 (exact for the 16-bit types), in parallel.
fn widen<T: Element>(a: &[T], out: &mut [MaybeUninit<f32>]) {
    for_each_chunk(
        out,
        #[inline(always)]
        |start, o| {
            for (o, &x) in o.iter_mut().zip(&a[start..]) {
                *o = MaybeUninit::new(x.to32());
            }
        },
    );
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

/// Products per batch item below which a batched `mm` runs its items in parallel, each on one thread: `gemm`
/// splits one small product poorly over threads (its small-size path), and the items are independent.
const SMALL_PRODUCT: usize = 384 * 384 * 384;

fn gemm_native<T: Element>(a: &[T], b: &[T], out: &mut [T], d: MatmulDims) {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    let (m, k, n) = (d.m, d.k, d.n);
    let work = m * n * k;
    let item = |i: usize, o: &mut [T], par: gemm::Parallelism| {
        let a = &a[i * d.a_batch_stride..][..m * k];
        let b = &b[i * d.b_batch_stride..][..k * n];
        // SAFETY: the three slices are in bounds for row-major m×k, k×n and m×n matrices (checked by the
        // slicing), `o` does not alias `a` or `b` (distinct buffers), and `read_dst == false`.
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
    };
    if m * n == 0 {
        return;
    }
    let out = &mut out[..d.batch * m * n];
    if threads > 1 && d.batch >= threads && work < SMALL_PRODUCT {
        // Each output element is computed by one thread in the same order whatever the parallelism, so the
        // bits do not depend on this choice.
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, o)| item(i, o, gemm::Parallelism::None));
        return;
    }
    let par =
        if work >= 48 * 48 * 48 && threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    for (i, o) in out.chunks_mut(m * n).enumerate() {
        item(i, o, par);
    }
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    /// The 16-bit products are the f32 product of the widened operands, rounded once.
    #[test]
    fn sixteen_bit_products_round_the_f32_product_once() {
        fn check<T: Element>() {
            let (m, k, n) = (37, 300, 29);
            let a: Vec<T> = (0..m * k).map(|i| T::from_f64(((i * 37 % 101) as f64 / 101.0 - 0.5) * 3.0)).collect();
            let b: Vec<T> = (0..k * n).map(|i| T::from_f64(((i * 11 % 97) as f64 / 97.0 - 0.5) * 5.0)).collect();
            let d = MatmulDims { batch: 1, m, k, n, a_batch_stride: 0, b_batch_stride: 0 };
            let mut out = vec![T::ZERO; m * n];
            matmul(&a, &b, &mut out, d).unwrap();
            let (wa, wb): (Vec<f32>, Vec<f32>) =
                (a.iter().map(|x| x.to_f32()).collect(), b.iter().map(|x| x.to_f32()).collect());
            let mut wo = vec![0.0f32; m * n];
            matmul(&wa, &wb, &mut wo, d).unwrap();
            let want: Vec<T> = wo.iter().map(|&x| T::from_f32(x)).collect();
            assert_eq!(out, want, "{}", T::DTYPE);
        }
        check::<f16>();
        check::<bf16>();
    }

    /// A batch of small products runs its items in parallel, one thread each: the bits equal those of each
    /// item multiplied on its own with `gemm` spread over every thread (and the CPU's one-item path).
    #[test]
    fn a_batch_of_small_products_has_the_bits_of_its_items() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let (batch, m, k, n) = (5, 61, 97, 67);
        let a: Vec<f32> = (0..batch * m * k).map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 3.0).collect();
        let b: Vec<f32> = (0..batch * k * n).map(|i| ((i * 11 % 97) as f32 / 97.0 - 0.5) * 5.0).collect();
        let d = MatmulDims { batch, m, k, n, a_batch_stride: m * k, b_batch_stride: k * n };
        let mut out = vec![0.0f32; batch * m * n];
        pool.install(|| matmul(&a, &b, &mut out, d)).unwrap();
        for i in 0..batch {
            let one = MatmulDims { batch: 1, a_batch_stride: 0, b_batch_stride: 0, ..d };
            let mut want = vec![0.0f32; m * n];
            pool.install(|| matmul(&a[i * m * k..][..m * k], &b[i * k * n..][..k * n], &mut want, one)).unwrap();
            let got = &out[i * m * n..][..m * n];
            assert!(got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()), "item {i}");
            // And a value: row 0, column 0 against a plain f64 dot product.
            let dot: f64 = (0..k).map(|j| a[i * m * k + j] as f64 * b[i * k * n + j * n] as f64).sum();
            assert!((got[0] as f64 - dot).abs() <= 1e-4 * dot.abs().max(1.0), "item {i}: {} vs {dot}", got[0]);
        }
    }
}
