//! `mm`/`bmm` through faer's matrix product.

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
/// faer has no 16-bit product, and the `gemm` crate's f16 kernel rounds its partial sums to f16 between blocks
/// of the inner dimension (no bf16 kernel at all), so both 16-bit types widen here: one scratch allocation for
/// the widened operands and the f32 product, filled by vectorised parallel passes; the one rounding back is
/// another.
pub(crate) fn matmul<T: Element>(a: &[T], b: &[T], out: &mut [T], d: MatmulDims) -> Result<()> {
    match T::DTYPE {
        DType::F32 => multiply(cast::<T, f32>(a), cast::<T, f32>(b), cast_mut::<T, f32>(out), d),
        DType::F64 => multiply(cast::<T, f64>(a), cast::<T, f64>(b), cast_mut::<T, f64>(out), d),
        DType::F16 | DType::BF16 => {
            let (na, nb, no) = (a.len(), b.len(), out.len());
            let len = na + nb + no;
            let mut scratch: Vec<f32> = Vec::new();
            if !crate::backend::host_pool::try_reserve_exact(&mut scratch, len) {
                return Err(Error::OutOfMemory { device: Device::cpu(), bytes: len.saturating_mul(size_of::<f32>()) });
            }
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
            multiply(wa, wb, wo, d);
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

/// Products per batch item below which a batched `mm` runs its items in parallel, each on one thread: one
/// small product splits poorly over threads, and the items are independent.
const SMALL_PRODUCT: usize = 384 * 384 * 384;

/// One product `o = a · b` (row-major m×k by k×n) with faer, spread over `threads` rayon threads.
///
/// faer's product (on x86-64: `private-gemm-x86`'s AVX2+FMA or AVX-512 kernels, chosen at run time) splits the
/// work over threads by blocks of the output, and each output element's sum over `k` runs in the same order
/// whatever the thread count — except for a single row (`m == 1`), which faer turns into a matrix–vector
/// product that splits `k` over threads and adds the partial sums. That case splits the columns here instead,
/// each block on one thread. So the bits do not depend on the thread count (tested below for 1–16 threads).
fn product<T: Element + faer::traits::ComplexField>(a: &[T], b: &[T], o: &mut [T], d: MatmulDims, threads: usize) {
    use rayon::prelude::*;
    let (m, k, n) = (d.m, d.k, d.n);
    let o = &mut o[..m * n];
    if k == 0 {
        o.fill(<T as Element>::ZERO);
        return;
    }
    let a = faer::MatRef::from_row_major_slice(&a[..m * k], m, k);
    let b = faer::MatRef::from_row_major_slice(&b[..k * n], k, n);
    if m == 1 && threads > 1 && k * n >= ROW_PRODUCT_SPLIT {
        let block = n.div_ceil(threads).next_multiple_of(64);
        o.par_chunks_mut(block).enumerate().for_each(|(j, o)| {
            let cols = o.len();
            let o = faer::MatMut::from_row_major_slice_mut(o, 1, cols);
            let b = b.subcols(j * block, cols);
            faer::linalg::matmul::matmul(o, faer::Accum::Replace, a, b, <T as Element>::ONE, faer::Par::Seq);
        });
        return;
    }
    let o = faer::MatMut::from_row_major_slice_mut(o, m, n);
    let par = if threads > 1 { faer::Par::rayon(threads) } else { faer::Par::Seq };
    faer::linalg::matmul::matmul(o, faer::Accum::Replace, a, b, <T as Element>::ONE, par);
}

/// `k · n` from which a one-row product is split over threads by columns (below it, one thread is faster).
const ROW_PRODUCT_SPLIT: usize = 1 << 16;

fn multiply<T: Element + faer::traits::ComplexField>(a: &[T], b: &[T], out: &mut [T], d: MatmulDims) {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    let (m, k, n) = (d.m, d.k, d.n);
    if m * n == 0 {
        return;
    }
    let item = |i: usize, o: &mut [T], threads: usize| {
        product(&a[i * d.a_batch_stride..], &b[i * d.b_batch_stride..], o, d, threads);
    };
    let out = &mut out[..d.batch * m * n];
    if threads > 1 && d.batch >= threads && m * n * k < SMALL_PRODUCT {
        // Each output element is computed by one thread in the same order whatever the parallelism, so the
        // bits do not depend on this choice.
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, o)| item(i, o, 1));
        return;
    }
    for (i, o) in out.chunks_mut(m * n).enumerate() {
        item(i, o, threads);
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
    /// item multiplied on its own with the product spread over every thread (and the CPU's one-item path).
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

    /// The product's bits do not depend on the number of threads it is spread over, and its values are right.
    #[test]
    fn products_have_the_same_bits_on_any_thread_count() {
        fn check<T: Element + faer::traits::ComplexField>(m: usize, k: usize, n: usize) {
            let a: Vec<T> = (0..m * k).map(|i| T::from_f64(((i * 37 % 101) as f64 / 101.0 - 0.5) * 3.0)).collect();
            let b: Vec<T> = (0..k * n).map(|i| T::from_f64(((i * 11 % 97) as f64 / 97.0 - 0.5) * 5.0)).collect();
            let d = MatmulDims { batch: 1, m, k, n, a_batch_stride: 0, b_batch_stride: 0 };
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut out = vec![<T as Element>::ZERO; m * n];
                pool.install(|| matmul(&a, &b, &mut out, d)).unwrap();
                out
            };
            let one = run(1);
            for (r, c) in [(0, 0), (m - 1, n - 1), (m / 2, n / 3)] {
                let dot: f64 = (0..k).map(|j| a[r * k + j].to_f64() * b[j * n + c].to_f64()).sum();
                let got = one[r * n + c].to_f64();
                assert!((got - dot).abs() <= 1e-4 * dot.abs().max(1.0), "{m}x{k}x{n} [{r},{c}]: {got} vs {dot}");
            }
            for threads in [2, 3, 16] {
                let many = run(threads);
                let same = one.iter().zip(&many).all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits());
                assert!(same, "{} {m}x{k}x{n}: 1 thread vs {threads} differ", T::DTYPE);
            }
        }
        // One-row products (faer splits `k` for those), with n below and above the column split's block.
        let rows = [(1, 4096, 256), (1, 1000, 2000), (1, 5000, 16), (1, 70_000, 2), (1, 300, 300)];
        for (m, k, n) in [(300, 517, 257), (1, 4000, 1), (2000, 64, 3), (129, 1023, 65)].into_iter().chain(rows) {
            check::<f32>(m, k, n);
            check::<f64>(m, k, n);
        }
    }
}
