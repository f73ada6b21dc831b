//! `sum` and `mean` along the fixed tree of `crate::math` (the CUDA kernel's tree): the same bits for any
//! number of threads.

use rayon::prelude::*;

use super::lanes::Lane;
use super::{vectorized, PAR_MIN};
use crate::dtype::Element;
use crate::math::{chunk_sum, SUM_CHUNK};

/// Chunks of the tree per rayon task (256 KiB of `f32`).
const CHUNKS_PER_TASK: usize = 16;

/// The sums of the chunks of `values`, in order, one per [`SUM_CHUNK`] values.
#[inline(always)]
fn chunk_sums<T: Element>(values: &[T], sums: &mut [f64]) {
    for (s, c) in sums.iter_mut().zip(values.chunks(SUM_CHUNK)) {
        *s = chunk_sum(c, Lane::to64);
    }
}

/// The sum of `a` in f64 along the fixed tree. The chunks of the first level are summed in parallel (each
/// chunk's sum depends only on its values); their sums are kept in order and summed the same way.
pub(crate) fn sum<T: Element>(a: &[T]) -> f64 {
    let mut level = vec![0.0f64; a.len().div_ceil(SUM_CHUNK)];
    if a.len() < PAR_MIN {
        vectorized(
            #[inline(always)]
            || chunk_sums(a, &mut level),
        );
    } else {
        level.par_chunks_mut(CHUNKS_PER_TASK).zip(a.par_chunks(CHUNKS_PER_TASK * SUM_CHUNK)).for_each(|(s, c)| {
            vectorized(
                #[inline(always)]
                || chunk_sums(c, s),
            )
        });
    }
    while level.len() > 1 {
        let mut next = vec![0.0f64; level.len().div_ceil(SUM_CHUNK)];
        vectorized(
            #[inline(always)]
            || chunk_sums(&level, &mut next),
        );
        level = next;
    }
    level.first().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

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

    fn check<T: Element>(len: usize) {
        let specials = [0.1, -0.0, 1e-40, 5.9e-8, -3.25, 1e30, -1e30, 7.0 / 3.0, 6.1e-5];
        let v: Vec<T> =
            (0..len).map(|i| T::from_f64(specials[i % specials.len()] * ((i * 31 % 97) as f64 - 48.0))).collect();
        let reference = crate::math::tree_sum(&v, T::to_f64);
        let got = sum(&v);
        assert!(got.to_bits() == reference.to_bits(), "{} length {len}: {got:e} vs {reference:e}", T::DTYPE);
    }

    #[test]
    fn every_type_and_odd_length_matches_the_tree() {
        for len in [0, 1, 3, 255, 257, 4095, 4097, 8193, 40_001, 4096 * 4097 + 3] {
            check::<f32>(len);
            check::<f64>(len);
            check::<f16>(len);
            check::<bf16>(len);
        }
    }

    #[test]
    fn special_values_propagate_as_in_the_tree() {
        for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0] {
            let mut v = vec![-0.0f32; 10_000];
            v[1234] = special;
            let (got, want) = (sum(&v), crate::math::tree_sum(&v, f64::from));
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{special}: {got} vs {want}");
        }
        let mut v = vec![f32::INFINITY; 5000];
        v[4500] = f32::NEG_INFINITY;
        assert!(sum(&v).is_nan());
    }
}
