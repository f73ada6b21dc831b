//! `randn`: standard normals from Philox4x32-10 and Box–Muller, the bits of `crate::rng` on every path.
//!
//! Element `i` is word `i % 4` of Philox group `i / 4`; words 0 and 1 make the first Box–Muller pair, 2 and 3
//! the second. On x86-64 with AVX2+FMA, normals are made eight groups (32 elements) at a time: Philox on eight
//! counters in the lanes of four vectors, Box–Muller on eight pairs at once in binary32 or four in binary64
//! (`crate::math::vector`, the same operations as the scalar forms), then a transpose into element order.
//! Other CPUs and the last few elements take the scalar path.

use rayon::prelude::*;

use super::lanes::Lane;
use super::{pages, vectorized, PAR_MIN};
use crate::dtype::{DType, Element};
use crate::rng::{counter, key, normals_f32, normals_f64, philox4x32_10};

/// Philox groups per rayon task (16 Ki elements).
const GROUPS_PER_CHUNK: usize = 1 << 12;

/// Standard normals from Philox4x32-10 at `(seed, offset)`; element `i` uses word `i % 4` of group `i / 4`.
pub(crate) fn randn<T: Element>(out: &mut [T], seed: u64, offset: u64) {
    pages::advise_huge(out);
    let body = |first: usize, chunk: &mut [T]| {
        debug_assert_eq!(first % 4, 0);
        let first_group = (first / 4) as u64;
        let done = simd::normals(chunk, first_group, seed, offset);
        scalar_normals(&mut chunk[done..], first_group + (done / 4) as u64, seed, offset);
    };
    if out.len() < PAR_MIN {
        body(0, out);
    } else {
        out.par_chunks_mut(4 * GROUPS_PER_CHUNK).enumerate().for_each(|(i, c)| body(i * 4 * GROUPS_PER_CHUNK, c));
    }
}

/// The scalar path: `out` holds the elements from group `first_group` on.
fn scalar_normals<T: Element>(out: &mut [T], first_group: u64, seed: u64, offset: u64) {
    let k = key(seed);
    vectorized(
        #[inline(always)]
        || {
            for (j, quad) in out.chunks_mut(4).enumerate() {
                let bits = philox4x32_10(counter(first_group + j as u64, offset), k);
                if T::DTYPE == DType::F64 {
                    for (o, z) in quad.iter_mut().zip(normals_f64(bits)) {
                        *o = T::from64(z);
                    }
                } else {
                    for (o, z) in quad.iter_mut().zip(normals_f32(bits)) {
                        *o = T::from32(z);
                    }
                }
            }
        },
    )
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use core::arch::x86_64::{__m256, __m256d, __m256i};

    use pulp::x86::V3;

    use super::super::lanes::Lane;
    use crate::dtype::{DType, Element};
    use crate::math::vector::{box_muller_f32x8, box_muller_f64x4};

    const M0: u32 = 0xD251_1F53;
    const M1: u32 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;

    /// Writes the normals of as many whole batches of eight groups as fit at the start of `out` (element 0
    /// is word 0 of group `first_group`) and returns how many elements it wrote: 0 without AVX2+FMA.
    pub(super) fn normals<T: Element>(out: &mut [T], first_group: u64, seed: u64, offset: u64) -> usize {
        let Some(simd) = V3::try_new() else { return 0 };
        pulp::Simd::vectorize(simd, Batches { simd, out, first_group, seed, offset })
    }

    struct Batches<'a, T> {
        simd: V3,
        out: &'a mut [T],
        first_group: u64,
        seed: u64,
        offset: u64,
    }

    impl<T: Element> pulp::WithSimd for Batches<'_, T> {
        type Output = usize;

        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
            let Batches { simd, out, first_group, seed, offset } = self;
            let v = simd;
            // The round keys, broadcast.
            let mut keys = [(v.avx._mm256_set1_epi32(0), v.avx._mm256_set1_epi32(0)); 10];
            let (mut k0, mut k1) = (seed as u32, (seed >> 32) as u32);
            for k in keys.iter_mut() {
                *k = (v.avx._mm256_set1_epi32(k0 as i32), v.avx._mm256_set1_epi32(k1 as i32));
                k0 = k0.wrapping_add(W0);
                k1 = k1.wrapping_add(W1);
            }
            let c2 = v.avx._mm256_set1_epi32(offset as u32 as i32);
            let c3 = v.avx._mm256_set1_epi32((offset >> 32) as u32 as i32);
            let mut done = 0;
            let mut group = first_group;
            for batch in out.chunks_exact_mut(32) {
                let (lo, hi): ([u32; 8], [u32; 8]) = (
                    core::array::from_fn(|j| (group + j as u64) as u32),
                    core::array::from_fn(|j| ((group + j as u64) >> 32) as u32),
                );
                let words = philox_x8(simd, [pulp::cast(lo), pulp::cast(hi), c2, c3], &keys);
                if T::DTYPE == DType::F64 {
                    for (half, quads) in batch.chunks_exact_mut(16).enumerate() {
                        let w = words.map(|w| {
                            if half == 0 {
                                v.avx._mm256_castsi256_si128(w)
                            } else {
                                v.avx2._mm256_extracti128_si256::<1>(w)
                            }
                        });
                        let (z0, z1) = box_muller_f64x4(simd, w[0], w[1]);
                        let (z2, z3) = box_muller_f64x4(simd, w[2], w[3]);
                        let normals: [f64; 16] = pulp::cast(transpose_f64(simd, [z0, z1, z2, z3]));
                        for (o, z) in quads.iter_mut().zip(normals) {
                            *o = T::from64(z);
                        }
                    }
                } else {
                    let (z0, z1) = box_muller_f32x8(simd, words[0], words[1]);
                    let (z2, z3) = box_muller_f32x8(simd, words[2], words[3]);
                    let normals: [f32; 32] = pulp::cast(transpose(simd, [z0, z1, z2, z3]));
                    for (o, z) in batch.iter_mut().zip(normals) {
                        *o = T::from32(z);
                    }
                }
                group += 8;
                done += 32;
            }
            done
        }
    }

    /// `(hi, lo)` of the eight 64-bit products `a · m`.
    #[inline(always)]
    fn mulhilo(v: V3, a: __m256i, m: __m256i) -> (__m256i, __m256i) {
        let even = v.avx2._mm256_mul_epu32(a, m); // lanes 0, 2, 4, 6
        let odd = v.avx2._mm256_mul_epu32(v.avx2._mm256_srli_epi64::<32>(a), m); // lanes 1, 3, 5, 7
        let hi = v.avx2._mm256_blend_epi32::<0b1010_1010>(v.avx2._mm256_srli_epi64::<32>(even), odd);
        let lo = v.avx2._mm256_blend_epi32::<0b1010_1010>(even, v.avx2._mm256_slli_epi64::<32>(odd));
        (hi, lo)
    }

    /// `philox4x32_10` of eight counters, one per lane: `c[w]` holds word `w` of each.
    #[inline(always)]
    fn philox_x8(v: V3, mut c: [__m256i; 4], keys: &[(__m256i, __m256i); 10]) -> [__m256i; 4] {
        let (m0, m1) = (v.avx._mm256_set1_epi32(M0 as i32), v.avx._mm256_set1_epi32(M1 as i32));
        for &(k0, k1) in keys {
            let (hi0, lo0) = mulhilo(v, c[0], m0);
            let (hi1, lo1) = mulhilo(v, c[2], m1);
            c = [
                v.avx2._mm256_xor_si256(v.avx2._mm256_xor_si256(hi1, c[1]), k0),
                lo1,
                v.avx2._mm256_xor_si256(v.avx2._mm256_xor_si256(hi0, c[3]), k1),
                lo0,
            ];
        }
        c
    }

    /// Lane `j` of `z[w]` is element `4j + w`: returns the 32 elements in order, eight per vector.
    #[inline(always)]
    fn transpose(v: V3, z: [__m256; 4]) -> [__m256; 4] {
        let a = v.avx;
        let t0 = a._mm256_castps_pd(a._mm256_unpacklo_ps(z[0], z[1])); // groups 0, 1 | 4, 5: words 0, 1
        let t1 = a._mm256_castps_pd(a._mm256_unpackhi_ps(z[0], z[1])); // groups 2, 3 | 6, 7
        let t2 = a._mm256_castps_pd(a._mm256_unpacklo_ps(z[2], z[3])); // words 2, 3
        let t3 = a._mm256_castps_pd(a._mm256_unpackhi_ps(z[2], z[3]));
        let g04 = a._mm256_castpd_ps(a._mm256_unpacklo_pd(t0, t2)); // group 0 | group 4
        let g15 = a._mm256_castpd_ps(a._mm256_unpackhi_pd(t0, t2));
        let g26 = a._mm256_castpd_ps(a._mm256_unpacklo_pd(t1, t3));
        let g37 = a._mm256_castpd_ps(a._mm256_unpackhi_pd(t1, t3));
        [
            a._mm256_permute2f128_ps::<0x20>(g04, g15),
            a._mm256_permute2f128_ps::<0x20>(g26, g37),
            a._mm256_permute2f128_ps::<0x31>(g04, g15),
            a._mm256_permute2f128_ps::<0x31>(g26, g37),
        ]
    }

    /// Lane `j` of `z[w]` is element `4j + w`: returns the 16 elements in order, four per vector.
    #[inline(always)]
    fn transpose_f64(v: V3, z: [__m256d; 4]) -> [__m256d; 4] {
        let a = v.avx;
        let t0 = a._mm256_unpacklo_pd(z[0], z[1]); // groups 0 | 2, words 0, 1
        let t1 = a._mm256_unpackhi_pd(z[0], z[1]); // groups 1 | 3
        let t2 = a._mm256_unpacklo_pd(z[2], z[3]); // words 2, 3
        let t3 = a._mm256_unpackhi_pd(z[2], z[3]);
        [
            a._mm256_permute2f128_pd::<0x20>(t0, t2),
            a._mm256_permute2f128_pd::<0x20>(t1, t3),
            a._mm256_permute2f128_pd::<0x31>(t0, t2),
            a._mm256_permute2f128_pd::<0x31>(t1, t3),
        ]
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use crate::dtype::Element;

    /// No vector path here: everything takes the scalar path.
    pub(super) fn normals<T: Element>(_: &mut [T], _: u64, _: u64, _: u64) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    /// The reference: one Philox block and one scalar Box–Muller per group of four.
    fn reference<T: Element>(len: usize, seed: u64, offset: u64) -> Vec<T> {
        (0..len)
            .map(|i| {
                let bits = philox4x32_10(counter((i / 4) as u64, offset), key(seed));
                if T::DTYPE == DType::F64 {
                    T::from_f64(normals_f64(bits)[i % 4])
                } else {
                    T::from_f32(normals_f32(bits)[i % 4])
                }
            })
            .collect()
    }

    fn check<T: Element>(len: usize, seed: u64, offset: u64) {
        let mut out = vec![T::ZERO; len];
        randn(&mut out, seed, offset);
        let want = reference::<T>(len, seed, offset);
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            assert_eq!(
                a.to_f64().to_bits(),
                b.to_f64().to_bits(),
                "{} element {i} of {len} ({seed}, {offset})",
                T::DTYPE
            );
        }
    }

    #[test]
    fn every_path_gives_the_scalar_bits() {
        for (len, seed, offset) in [
            (0, 1, 0),
            (1, 2, 3),
            (31, 3, 0),
            (32, 4, 1),
            (33, 5, 7),
            (100_003, 0xdead_beef, 5),
            (70_000, u64::MAX, u64::MAX),
        ] {
            check::<f32>(len, seed, offset);
            check::<f16>(len, seed, offset);
            check::<bf16>(len, seed, offset);
            check::<f64>(len, seed, offset);
        }
    }

    /// Group counters that cross 2^32 inside a batch of eight (the high word of the counter changes).
    #[test]
    fn counters_carry_into_their_high_word() {
        let first_group = (1u64 << 32) - 3;
        let mut out = vec![0.0f32; 68];
        let done = simd::normals(&mut out, first_group, 42, 9);
        scalar_normals(&mut out[done..], first_group + (done / 4) as u64, 42, 9);
        let mut out64 = vec![0.0f64; 68];
        let done = simd::normals(&mut out64, first_group, 42, 9);
        scalar_normals(&mut out64[done..], first_group + (done / 4) as u64, 42, 9);
        for (j, (quad, quad64)) in out.chunks(4).zip(out64.chunks(4)).enumerate() {
            let bits = philox4x32_10(counter(first_group + j as u64, 9), key(42));
            assert_eq!(quad, normals_f32(bits), "group {j}");
            assert_eq!(quad64, normals_f64(bits), "group {j}, f64");
        }
    }
}
