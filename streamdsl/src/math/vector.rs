//! AVX2 forms of the Box–Muller transform, for the CPU backend's `randn`: eight binary32 lanes, four binary64.
//!
//! [`box_muller_f32x8`] is [`box_muller_f32`](super::box_muller_f32) (with its `uniform_f32`, `log_f32` and
//! `sincos_f32`) on eight lanes at once, [`box_muller_f64x4`] is [`box_muller_f64`](super::box_muller_f64) on
//! four: the same IEEE operations and FMAs in the same order, lane by lane, so the results are the same bits
//! (checked against the scalar forms on every 32-bit input by the ignored tests `every_input_matches_*`, run
//! in release builds, and on a sample of inputs by the normal tests). Branches of the scalar forms become
//! selects: every lane computes every path it could take and keeps the one the scalar form takes.
//!
//! The inputs are the 32-bit words of Philox, so the domains are known: `log` only sees uniforms in
//! `[2⁻³³, 1]` (positive, normal, finite: none of the scalar forms' special cases), and `sincos` only sees
//! `2π · uniform` in `(0, 2π]` (finite, below the `2^14` (binary32) and `2^30` (binary64) where the scalar
//! forms switch to another reduction). Anything else is out of contract for these functions; the scalar forms
//! handle every input.

use core::arch::x86_64::{__m128i, __m256, __m256d, __m256i};

use pulp::x86::V3;

use super::coeffs::{
    COS_F32, COS_F64, LN2_HI_F32, LN2_HI_F64, LN2_LO_F32, LN2_LO_F64, LOG_F32, LOG_F64, PIO2_1_F32, PIO2_1_F64,
    PIO2_2_F32, PIO2_2_F64, PIO2_3_F32, PIO2_3_F64, SIN_F32, SIN_F64, TAU_F32, TAU_F64, TWO_OVER_PI_F32,
    TWO_OVER_PI_F64,
};
use super::{UNIFORM_OFFSET_F32, UNIFORM_OFFSET_F64, UNIFORM_SCALE_F32, UNIFORM_SCALE_F64};

/// Eight binary32 lanes with the operations the transform needs, each one IEEE operation (no contraction).
#[derive(Clone, Copy)]
struct F(V3);

impl F {
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        self.0.avx._mm256_set1_ps(x)
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        self.0.avx._mm256_add_ps(a, b)
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        self.0.avx._mm256_sub_ps(a, b)
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        self.0.avx._mm256_mul_ps(a, b)
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        self.0.avx._mm256_div_ps(a, b)
    }
    /// `a · b + c`, rounded once (`f32::mul_add`).
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        self.0.fma._mm256_fmadd_ps(a, b, c)
    }
    /// `-a` (the sign bit flipped, as Rust's `-x`).
    #[inline(always)]
    fn neg(self, a: __m256) -> __m256 {
        self.0.avx._mm256_xor_ps(a, self.splat(-0.0))
    }
    /// `if mask { t } else { f }`, lane by lane (`mask` from a comparison: all ones or all zeros).
    #[inline(always)]
    fn select(self, mask: __m256, t: __m256, f: __m256) -> __m256 {
        self.0.avx._mm256_blendv_ps(f, t, mask)
    }
    /// `a < b` (ordered).
    #[inline(always)]
    fn lt(self, a: __m256, b: __m256) -> __m256 {
        self.0.avx._mm256_cmp_ps::<0x11>(a, b) // _CMP_LT_OQ
    }
    /// `a <= b` (ordered).
    #[inline(always)]
    fn le(self, a: __m256, b: __m256) -> __m256 {
        self.0.avx._mm256_cmp_ps::<0x12>(a, b) // _CMP_LE_OQ
    }
    #[inline(always)]
    fn bits(self, a: __m256) -> __m256i {
        self.0.avx._mm256_castps_si256(a)
    }
    #[inline(always)]
    fn of_bits(self, a: __m256i) -> __m256 {
        self.0.avx._mm256_castsi256_ps(a)
    }
    #[inline(always)]
    fn splat_i(self, x: i32) -> __m256i {
        self.0.avx._mm256_set1_epi32(x)
    }
    /// `x as f32` for eight `u32`, rounded to nearest even once: the high and low halves convert exactly,
    /// `hi · 2^16` is exact, and the sum rounds once.
    #[inline(always)]
    fn convert_u32(self, x: __m256i) -> __m256 {
        let v = self.0;
        let hi = v.avx._mm256_cvtepi32_ps(v.avx2._mm256_srli_epi32::<16>(x));
        let lo = v.avx._mm256_cvtepi32_ps(v.avx2._mm256_and_si256(x, self.splat_i(0xFFFF)));
        self.add(self.mul(hi, self.splat(65536.0)), lo)
    }
}

/// `uniform_f32` on eight lanes: `x · 2⁻³² + 2⁻³³` (a product, then a sum: two roundings, as the scalar form).
#[inline(always)]
fn uniform(f: F, x: __m256i) -> __m256 {
    f.add(f.mul(f.convert_u32(x), f.splat(UNIFORM_SCALE_F32)), f.splat(UNIFORM_OFFSET_F32))
}

/// `log_f32` for positive, normal, finite lanes (the scalar form's main path).
#[inline(always)]
fn log_normal_positive(f: F, x: __m256) -> __m256 {
    let v = f.0;
    let bits = f.bits(x);
    // k = (bits >> 23) - 127; mbits = mantissa | 0x3F80_0000; above √2: mbits -= 2^23, k += 1.
    let mut k = v.avx2._mm256_sub_epi32(v.avx2._mm256_srli_epi32::<23>(bits), f.splat_i(127));
    let mut mbits =
        v.avx2._mm256_or_si256(v.avx2._mm256_and_si256(bits, f.splat_i(0x007F_FFFF)), f.splat_i(0x3F80_0000));
    let above = v.avx2._mm256_cmpgt_epi32(mbits, f.splat_i(0x3FB5_04F3)); // both operands positive
    mbits = v.avx2._mm256_sub_epi32(mbits, v.avx2._mm256_and_si256(above, f.splat_i(0x0080_0000)));
    k = v.avx2._mm256_sub_epi32(k, above); // `above` is -1 where set
    let one = f.splat(1.0);
    let fr = f.sub(f.of_bits(mbits), one);
    let s = f.div(fr, f.add(f.splat(2.0), fr));
    let z = f.mul(s, s);
    let c = &LOG_F32;
    let mut p = f.splat(c[3]);
    p = f.fma(p, z, f.splat(c[2]));
    p = f.fma(p, z, f.splat(c[1]));
    p = f.fma(p, z, f.splat(c[0]));
    let r = f.mul(z, p);
    let hfsq = f.mul(f.mul(f.splat(0.5), fr), fr);
    let dk = v.avx._mm256_cvtepi32_ps(k);
    // dk * LN2_HI - ((hfsq - fma(s, hfsq + r, dk * LN2_LO)) - f)
    let inner = f.fma(s, f.add(hfsq, r), f.mul(dk, f.splat(LN2_LO_F32)));
    f.sub(f.mul(dk, f.splat(LN2_HI_F32)), f.sub(f.sub(hfsq, inner), fr))
}

/// `two_sum(a, b)`: `(s, e)` with `s + e = a + b` exactly.
#[inline(always)]
fn two_sum(f: F, a: __m256, b: __m256) -> (__m256, __m256) {
    let s = f.add(a, b);
    let bb = f.sub(s, a);
    (s, f.add(f.sub(a, f.sub(s, bb)), f.sub(b, bb)))
}

#[inline(always)]
fn sin_kernel(f: F, r_hi: __m256, r_lo: __m256) -> __m256 {
    let z = f.mul(r_hi, r_hi);
    let v = f.mul(z, r_hi);
    let c = &SIN_F32;
    let mut p = f.splat(c[3]);
    p = f.fma(p, z, f.splat(c[2]));
    p = f.fma(p, z, f.splat(c[1]));
    p = f.fma(p, z, f.splat(c[0]));
    f.add(r_hi, f.fma(v, p, f.fma(f.mul(f.splat(-0.5), z), r_lo, r_lo)))
}

#[inline(always)]
fn cos_kernel(f: F, r_hi: __m256, r_lo: __m256) -> __m256 {
    let z = f.mul(r_hi, r_hi);
    let z_lo = f.fma(r_hi, r_hi, f.neg(z));
    let hz = f.mul(f.splat(0.5), z);
    let one = f.splat(1.0);
    let w = f.sub(one, hz);
    let c = &COS_F32;
    let mut p = f.splat(c[3]);
    p = f.fma(p, z, f.splat(c[2]));
    p = f.fma(p, z, f.splat(c[1]));
    p = f.fma(p, z, f.splat(c[0]));
    // w + ((((1 - w) - hz) - 0.5 z_lo) + fma(z z, p, -(r_hi r_lo)))
    let tail = f.fma(f.mul(z, z), p, f.neg(f.mul(r_hi, r_lo)));
    f.add(w, f.add(f.sub(f.sub(f.sub(one, w), hz), f.mul(f.splat(0.5), z_lo)), tail))
}

/// `sincos_f32` for finite, positive lanes below `2^14`: `(sin x, cos x)`.
#[inline(always)]
fn sincos_positive(f: F, x: __m256) -> (__m256, __m256) {
    let v = f.0;
    const SHIFT: f32 = 12582912.0; // 1.5 * 2^23, as in the scalar form
    let zero = f.splat(0.0);
    // Cody–Waite (the scalar `rem_pio2` below 2^14).
    let k = f.sub(f.fma(x, f.splat(TWO_OVER_PI_F32), f.splat(SHIFT)), f.splat(SHIFT));
    let r1 = f.fma(f.neg(k), f.splat(PIO2_1_F32), x);
    let w_hi = f.mul(k, f.splat(PIO2_2_F32));
    let w_lo = f.fma(k, f.splat(PIO2_2_F32), f.neg(w_hi));
    let (s, e) = two_sum(f, r1, f.neg(w_hi));
    let lo = f.sub(f.sub(e, w_lo), f.mul(k, f.splat(PIO2_3_F32)));
    let (r_hi, r_lo) = two_sum(f, s, lo);
    let q = v.avx2._mm256_and_si256(v.avx._mm256_cvttps_epi32(k), f.splat_i(3));
    // |x| <= π/4: no reduction (q = 0, h = x, l = 0).
    let small = f.le(x, f.splat(core::f32::consts::FRAC_PI_4));
    let h = f.select(small, x, r_hi);
    let l = f.select(small, zero, r_lo);
    let q = v.avx2._mm256_andnot_si256(f.bits(small), q);
    let sn = sin_kernel(f, h, l);
    let cs = cos_kernel(f, h, l);
    // Quadrants: 0 → (s, c), 1 → (c, -s), 2 → (-s, -c), 3 → (-c, s).
    let odd = f.of_bits(v.avx2._mm256_cmpeq_epi32(v.avx2._mm256_and_si256(q, f.splat_i(1)), f.splat_i(1)));
    let (sin_v, cos_v) = (f.select(odd, cs, sn), f.select(odd, sn, cs));
    // sin is negated in quadrants 2 and 3 (q & 2), cos in 1 and 2 ((q ^ q >> 1) & 1): that bit to the sign.
    let sin_neg = v.avx2._mm256_slli_epi32::<30>(v.avx2._mm256_and_si256(q, f.splat_i(2)));
    let cos_neg = v.avx2._mm256_slli_epi32::<31>(v.avx2._mm256_xor_si256(q, v.avx2._mm256_srli_epi32::<1>(q)));
    let sin_v = f.of_bits(v.avx2._mm256_xor_si256(f.bits(sin_v), sin_neg));
    let cos_v = f.of_bits(v.avx2._mm256_xor_si256(f.bits(cos_v), cos_neg));
    // |x| < 2^-13: (x, 1).
    let tiny = f.lt(x, f.splat(0.00012207031));
    (f.select(tiny, x, sin_v), f.select(tiny, f.splat(1.0), cos_v))
}

/// The radius of the transform, `sqrt(-2 ln u₁)` with `u₁ = uniform_f32(u)`, on eight lanes.
#[inline(always)]
fn radius(f: F, u: __m256i) -> __m256 {
    let l = log_normal_positive(f, uniform(f, u));
    f.0.avx._mm256_sqrt_ps(f.mul(f.splat(-2.0), l))
}

/// `sincos_f32(2π · uniform_f32(v))` on eight lanes.
#[inline(always)]
fn angle(f: F, v: __m256i) -> (__m256, __m256) {
    sincos_positive(f, f.mul(f.splat(TAU_F32), uniform(f, v)))
}

/// [`box_muller_f32`](super::box_muller_f32) on eight pairs of words: `(r cos θ, r sin θ)` lane by lane.
#[inline(always)]
pub(crate) fn box_muller_f32x8(simd: V3, u: __m256i, v: __m256i) -> (__m256, __m256) {
    let f = F(simd);
    let r = radius(f, u);
    let (s, c) = angle(f, v);
    (f.mul(r, c), f.mul(r, s))
}

/// Four binary64 lanes with the operations the transform needs, each one IEEE operation (no contraction).
#[derive(Clone, Copy)]
struct D(V3);

impl D {
    #[inline(always)]
    fn splat(self, x: f64) -> __m256d {
        self.0.avx._mm256_set1_pd(x)
    }
    #[inline(always)]
    fn add(self, a: __m256d, b: __m256d) -> __m256d {
        self.0.avx._mm256_add_pd(a, b)
    }
    #[inline(always)]
    fn sub(self, a: __m256d, b: __m256d) -> __m256d {
        self.0.avx._mm256_sub_pd(a, b)
    }
    #[inline(always)]
    fn mul(self, a: __m256d, b: __m256d) -> __m256d {
        self.0.avx._mm256_mul_pd(a, b)
    }
    #[inline(always)]
    fn div(self, a: __m256d, b: __m256d) -> __m256d {
        self.0.avx._mm256_div_pd(a, b)
    }
    /// `a · b + c`, rounded once (`f64::mul_add`).
    #[inline(always)]
    fn fma(self, a: __m256d, b: __m256d, c: __m256d) -> __m256d {
        self.0.fma._mm256_fmadd_pd(a, b, c)
    }
    #[inline(always)]
    fn neg(self, a: __m256d) -> __m256d {
        self.0.avx._mm256_xor_pd(a, self.splat(-0.0))
    }
    #[inline(always)]
    fn select(self, mask: __m256d, t: __m256d, f: __m256d) -> __m256d {
        self.0.avx._mm256_blendv_pd(f, t, mask)
    }
    #[inline(always)]
    fn lt(self, a: __m256d, b: __m256d) -> __m256d {
        self.0.avx._mm256_cmp_pd::<0x11>(a, b) // _CMP_LT_OQ
    }
    #[inline(always)]
    fn le(self, a: __m256d, b: __m256d) -> __m256d {
        self.0.avx._mm256_cmp_pd::<0x12>(a, b) // _CMP_LE_OQ
    }
    #[inline(always)]
    fn bits(self, a: __m256d) -> __m256i {
        self.0.avx._mm256_castpd_si256(a)
    }
    #[inline(always)]
    fn of_bits(self, a: __m256i) -> __m256d {
        self.0.avx._mm256_castsi256_pd(a)
    }
    #[inline(always)]
    fn splat_i(self, x: i64) -> __m256i {
        self.0.avx._mm256_set1_epi64x(x)
    }
    /// `x as f64` for four `u32` (exact): flip the sign bit, convert as `i32`, add `2^31` back.
    #[inline(always)]
    fn convert_u32(self, x: __m128i) -> __m256d {
        let v = self.0;
        let signed = v.sse2._mm_xor_si128(x, v.sse2._mm_set1_epi32(i32::MIN));
        self.add(v.avx._mm256_cvtepi32_pd(signed), self.splat(2147483648.0))
    }
    /// `k as f64` for integers `|k| < 2^51` in 64-bit lanes (exact): `(1.5 · 2^52 + k) - 1.5 · 2^52`.
    #[inline(always)]
    fn convert_small_i64(self, k: __m256i) -> __m256d {
        const MAGIC: f64 = 6755399441055744.0;
        let sum = self.0.avx2._mm256_add_epi64(self.bits(self.splat(MAGIC)), k);
        self.sub(self.of_bits(sum), self.splat(MAGIC))
    }
}

/// `uniform_f64` on four lanes: `x · 2⁻³² + 2⁻³³`.
#[inline(always)]
fn uniform_f64(d: D, x: __m128i) -> __m256d {
    d.add(d.mul(d.convert_u32(x), d.splat(UNIFORM_SCALE_F64)), d.splat(UNIFORM_OFFSET_F64))
}

/// `log_f64` for positive, normal, finite lanes (the scalar form's main path).
#[inline(always)]
fn log_normal_positive_f64(d: D, x: __m256d) -> __m256d {
    let v = d.0;
    let bits = d.bits(x);
    let mut k = v.avx2._mm256_sub_epi64(v.avx2._mm256_srli_epi64::<52>(bits), d.splat_i(1023));
    let mut mbits = v.avx2._mm256_or_si256(
        v.avx2._mm256_and_si256(bits, d.splat_i(0x000F_FFFF_FFFF_FFFF)),
        d.splat_i(0x3FF0_0000_0000_0000),
    );
    let above = v.avx2._mm256_cmpgt_epi64(mbits, d.splat_i(0x3FF6_A09E_667F_3BCD)); // both operands positive
    mbits = v.avx2._mm256_sub_epi64(mbits, v.avx2._mm256_and_si256(above, d.splat_i(0x0010_0000_0000_0000)));
    k = v.avx2._mm256_sub_epi64(k, above); // `above` is -1 where set
    let one = d.splat(1.0);
    let fr = d.sub(d.of_bits(mbits), one);
    let s = d.div(fr, d.add(d.splat(2.0), fr));
    let z = d.mul(s, s);
    let c = &LOG_F64;
    let mut p = d.splat(c[6]);
    for &ci in c[..6].iter().rev() {
        p = d.fma(p, z, d.splat(ci));
    }
    let r = d.mul(z, p);
    let hfsq = d.mul(d.mul(d.splat(0.5), fr), fr);
    let dk = d.convert_small_i64(k);
    let inner = d.fma(s, d.add(hfsq, r), d.mul(dk, d.splat(LN2_LO_F64)));
    d.sub(d.mul(dk, d.splat(LN2_HI_F64)), d.sub(d.sub(hfsq, inner), fr))
}

#[inline(always)]
fn two_sum_f64(d: D, a: __m256d, b: __m256d) -> (__m256d, __m256d) {
    let s = d.add(a, b);
    let bb = d.sub(s, a);
    (s, d.add(d.sub(a, d.sub(s, bb)), d.sub(b, bb)))
}

#[inline(always)]
fn sin_kernel_f64(d: D, r_hi: __m256d, r_lo: __m256d) -> __m256d {
    let z = d.mul(r_hi, r_hi);
    let v = d.mul(z, r_hi);
    let c = &SIN_F64;
    let mut p = d.splat(c[5]);
    for &ci in c[..5].iter().rev() {
        p = d.fma(p, z, d.splat(ci));
    }
    d.add(r_hi, d.fma(v, p, d.fma(d.mul(d.splat(-0.5), z), r_lo, r_lo)))
}

#[inline(always)]
fn cos_kernel_f64(d: D, r_hi: __m256d, r_lo: __m256d) -> __m256d {
    let z = d.mul(r_hi, r_hi);
    let z_lo = d.fma(r_hi, r_hi, d.neg(z));
    let hz = d.mul(d.splat(0.5), z);
    let one = d.splat(1.0);
    let w = d.sub(one, hz);
    let c = &COS_F64;
    let mut p = d.splat(c[5]);
    for &ci in c[..5].iter().rev() {
        p = d.fma(p, z, d.splat(ci));
    }
    let tail = d.fma(d.mul(z, z), p, d.neg(d.mul(r_hi, r_lo)));
    d.add(w, d.add(d.sub(d.sub(d.sub(one, w), hz), d.mul(d.splat(0.5), z_lo)), tail))
}

/// `sincos_f64` for finite, positive lanes below `2^30`: `(sin x, cos x)`.
#[inline(always)]
fn sincos_positive_f64(d: D, x: __m256d) -> (__m256d, __m256d) {
    let v = d.0;
    const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52, as in the scalar form
                                           // Cody–Waite (the scalar `rem_pio2` below 2^30). `t` holds k in its low mantissa bits.
    let t = d.fma(x, d.splat(TWO_OVER_PI_F64), d.splat(SHIFT));
    let k = d.sub(t, d.splat(SHIFT));
    let r1 = d.fma(d.neg(k), d.splat(PIO2_1_F64), x);
    let w_hi = d.mul(k, d.splat(PIO2_2_F64));
    let w_lo = d.fma(k, d.splat(PIO2_2_F64), d.neg(w_hi));
    let (s, e) = two_sum_f64(d, r1, d.neg(w_hi));
    let lo = d.sub(d.sub(e, w_lo), d.mul(k, d.splat(PIO2_3_F64)));
    let (r_hi, r_lo) = two_sum_f64(d, s, lo);
    let q = v.avx2._mm256_and_si256(d.bits(t), d.splat_i(3)); // k & 3 (k >= 0)
    let small = d.le(x, d.splat(core::f64::consts::FRAC_PI_4));
    let h = d.select(small, x, r_hi);
    let l = d.select(small, d.splat(0.0), r_lo);
    let q = v.avx2._mm256_andnot_si256(d.bits(small), q);
    let sn = sin_kernel_f64(d, h, l);
    let cs = cos_kernel_f64(d, h, l);
    let odd = d.of_bits(v.avx2._mm256_cmpeq_epi64(v.avx2._mm256_and_si256(q, d.splat_i(1)), d.splat_i(1)));
    let (sin_v, cos_v) = (d.select(odd, cs, sn), d.select(odd, sn, cs));
    let sin_neg = v.avx2._mm256_slli_epi64::<62>(v.avx2._mm256_and_si256(q, d.splat_i(2)));
    let cos_neg = v.avx2._mm256_slli_epi64::<63>(v.avx2._mm256_xor_si256(q, v.avx2._mm256_srli_epi64::<1>(q)));
    let sin_v = d.of_bits(v.avx2._mm256_xor_si256(d.bits(sin_v), sin_neg));
    let cos_v = d.of_bits(v.avx2._mm256_xor_si256(d.bits(cos_v), cos_neg));
    let tiny = d.lt(x, d.splat(7.450580596923828e-9)); // |x| < 2^-27: (x, 1)
    (d.select(tiny, x, sin_v), d.select(tiny, d.splat(1.0), cos_v))
}

#[inline(always)]
fn radius_f64(d: D, u: __m128i) -> __m256d {
    let l = log_normal_positive_f64(d, uniform_f64(d, u));
    d.0.avx._mm256_sqrt_pd(d.mul(d.splat(-2.0), l))
}

#[inline(always)]
fn angle_f64(d: D, v: __m128i) -> (__m256d, __m256d) {
    sincos_positive_f64(d, d.mul(d.splat(TAU_F64), uniform_f64(d, v)))
}

/// [`box_muller_f64`](super::box_muller_f64) on four pairs of words: `(r cos θ, r sin θ)` lane by lane.
#[inline(always)]
pub(crate) fn box_muller_f64x4(simd: V3, u: __m128i, v: __m128i) -> (__m256d, __m256d) {
    let d = D(simd);
    let r = radius_f64(d, u);
    let (s, c) = angle_f64(d, v);
    (d.mul(r, c), d.mul(r, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lanes<'a> {
        simd: V3,
        words: &'a [u32],
        out32: &'a mut [[f32; 3]],
        out64: &'a mut [[f64; 3]],
    }

    impl pulp::WithSimd for Lanes<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) {
            let (f, d) = (F(self.simd), D(self.simd));
            for ((w, o32), o64) in
                self.words.chunks_exact(8).zip(self.out32.chunks_exact_mut(8)).zip(self.out64.chunks_exact_mut(8))
            {
                let x: __m256i = pulp::cast(<[u32; 8]>::try_from(w).unwrap());
                let r: [f32; 8] = pulp::cast(radius(f, x));
                let (s, c) = angle(f, x);
                let (s, c): ([f32; 8], [f32; 8]) = (pulp::cast(s), pulp::cast(c));
                for j in 0..8 {
                    o32[j] = [r[j], s[j], c[j]];
                }
                for half in 0..2 {
                    let x: __m128i = pulp::cast(<[u32; 4]>::try_from(&w[4 * half..4 * half + 4]).unwrap());
                    let r: [f64; 4] = pulp::cast(radius_f64(d, x));
                    let (s, c) = angle_f64(d, x);
                    let (s, c): ([f64; 4], [f64; 4]) = (pulp::cast(s), pulp::cast(c));
                    for j in 0..4 {
                        o64[4 * half + j] = [r[j], s[j], c[j]];
                    }
                }
            }
        }
    }

    fn check(simd: V3, words: &[u32]) {
        let mut out32 = vec![[0.0f32; 3]; words.len()];
        let mut out64 = vec![[0.0f64; 3]; words.len()];
        pulp::Simd::vectorize(simd, Lanes { simd, words, out32: &mut out32, out64: &mut out64 });
        use super::super::{log_f32, log_f64, sincos_f32, sincos_f64, uniform_f32, uniform_f64};
        for ((&w, got32), got64) in words.iter().zip(out32).zip(out64) {
            let r = (-2.0 * log_f32(uniform_f32(w))).sqrt();
            let (s, c) = sincos_f32(TAU_F32 * uniform_f32(w));
            assert_eq!(got32.map(f32::to_bits), [r, s, c].map(f32::to_bits), "f32, word {w:#x}: {got32:?}");
            let r = (-2.0 * log_f64(uniform_f64(w))).sqrt();
            let (s, c) = sincos_f64(TAU_F64 * uniform_f64(w));
            assert_eq!(got64.map(f64::to_bits), [r, s, c].map(f64::to_bits), "f64, word {w:#x}: {got64:?}");
        }
    }

    /// Edges (0, 1, all ones, the tiny-angle and π/4 switches, powers of two and their neighbours) and a
    /// stride through all 2^32 words.
    #[test]
    fn lanes_match_the_scalar_form() {
        let Some(simd) = V3::try_new() else { return };
        let mut words: Vec<u32> = vec![0, 1, 2, 3, u32::MAX, u32::MAX - 1, 0x8000_0000, 0x7FFF_FFFF];
        for b in 0..32 {
            let p = 1u32 << b;
            words.extend([p, p - 1, p.wrapping_add(1)]);
        }
        // Around the angle thresholds: θ = 2π u crosses 2^-13 (binary32) near u = 83 000, 2^-27 (binary64)
        // near u = 5, and π/4 near u = 2^29.
        words.extend(0..100);
        words.extend(80_000..90_000);
        words.extend((1 << 29) - 4096..(1 << 29) + 4096);
        words.extend((0..(1u64 << 32)).step_by(4099).map(|w| w as u32));
        words.resize(words.len().next_multiple_of(8), 0);
        check(simd, &words);
    }

    /// Every 32-bit word (2^32 of them; a few minutes in a release build):
    /// `cargo test --release -p streamdsl --lib every_input_matches -- --ignored`.
    #[test]
    #[ignore]
    fn every_input_matches_the_scalar_form() {
        let Some(simd) = V3::try_new() else { return };
        use rayon::prelude::*;
        (0..1u64 << 16).into_par_iter().for_each(|hi| {
            let words: Vec<u32> = (0..1u32 << 16).map(|lo| ((hi as u32) << 16) | lo).collect();
            check(simd, &words);
        });
    }
}
