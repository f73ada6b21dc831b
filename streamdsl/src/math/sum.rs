//! The fixed summation tree of `sum` and `mean`, shared by the CPU backend and the CUDA kernel
//! (`kernels/src/cuda/reduce.cu`), so both give the same bits for any GPU model and any number of threads.
//!
//! The values are cut into chunks of [`SUM_CHUNK`] = 16 · [`SUM_LANES`]; in a chunk, lane `t` adds values
//! `t, t + SUM_LANES, t + 2·SUM_LANES, …` in order starting from `0.0`, then the lanes are added pairwise,
//! lane `t` += lane `t + s` for `s = SUM_LANES/2, …, 1`. The chunk sums are summed the same way until one
//! value is left. Every addition is an IEEE f64 addition, so the result depends only on the values and their
//! count.

/// Lanes of a chunk: the CUDA kernel's threads per block.
pub(crate) const SUM_LANES: usize = 256;

/// Values per chunk: one block of the CUDA kernel.
pub(crate) const SUM_CHUNK: usize = 16 * SUM_LANES;

/// The sum of one chunk (at most [`SUM_CHUNK`] values, widened to f64 by `wide`) along the tree.
#[inline(always)] // so that callers compiled for AVX2 (the CPU kernels) vectorise it
pub(crate) fn chunk_sum<E: Copy>(values: &[E], wide: impl Fn(E) -> f64) -> f64 {
    debug_assert!(values.len() <= SUM_CHUNK);
    let mut lanes = [0.0f64; SUM_LANES];
    for row in values.chunks(SUM_LANES) {
        for (lane, &v) in lanes.iter_mut().zip(row) {
            *lane += wide(v);
        }
    }
    let mut s = SUM_LANES / 2;
    while s > 0 {
        let (low, high) = lanes.split_at_mut(s);
        for (a, b) in low.iter_mut().zip(&high[..s]) {
            *a += *b;
        }
        s /= 2;
    }
    lanes[0]
}

/// The sum of `values` along the whole tree, serially (the CPU backend runs the chunks of a level in parallel;
/// this is the reference it is tested against).
#[cfg(test)]
pub(crate) fn tree_sum<E: Copy>(values: &[E], wide: impl Fn(E) -> f64) -> f64 {
    let mut level: Vec<f64> = values.chunks(SUM_CHUNK).map(|c| chunk_sum(c, &wide)).collect();
    while level.len() > 1 {
        level = level.chunks(SUM_CHUNK).map(|c| chunk_sum(c, |v| v)).collect();
    }
    level.first().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_adds_in_its_documented_order() {
        // 0.1 is inexact: a different association would change the last bits.
        let v = vec![0.1f64; 10_000];
        let by_hand = {
            let chunk = |n: usize| {
                let mut lanes = [0.0f64; SUM_LANES];
                for i in 0..n {
                    lanes[i % SUM_LANES] += 0.1;
                }
                let mut s = SUM_LANES / 2;
                while s > 0 {
                    for t in 0..s {
                        lanes[t] += lanes[t + s];
                    }
                    s /= 2;
                }
                lanes[0]
            };
            let partial = [chunk(SUM_CHUNK), chunk(SUM_CHUNK), chunk(10_000 - 2 * SUM_CHUNK)];
            let mut lanes = [0.0f64; SUM_LANES];
            lanes[..3].copy_from_slice(&partial);
            let mut s = SUM_LANES / 2;
            while s > 0 {
                for t in 0..s {
                    lanes[t] += lanes[t + s];
                }
                s /= 2;
            }
            lanes[0]
        };
        assert_eq!(tree_sum(&v, |x| x).to_bits(), by_hand.to_bits());
        assert!((tree_sum(&v, |x| x) - 1000.0).abs() < 1e-9);
        assert_eq!(tree_sum::<f64>(&[], |x| x), 0.0);
    }
}
