//! Payne–Hanek argument reduction for `|x| >= 2^30`, in integer arithmetic: exact up to the 192 bits of
//! 2/π it reads (the twin of `math_rem_pio2_large` in `kernels/src/cuda/math.cuh`).

use super::coeffs::{PIO2_HI_F64, PIO2_LO_F64, TWO_OVER_PI_BITS};

/// The leading zeros of a nonzero `v` (the C form counts them with shifts; the result is the same).
#[inline(always)]
fn clz64(v: u64) -> u32 {
    v.leading_zeros()
}

/// `2^e` for `-1022 <= e <= 1023`.
#[inline(always)]
fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// `x = q π/2 + (r_hi + r_lo)` for finite `|x| >= 2^30`, `q` in `0..4`, `|r| <= π/4`.
///
/// With `|x| = m 2^e` (`m` a 53-bit integer), only the bits of 2/π from position `e - 1` on matter modulo 4:
/// the product of `m` and the 192-bit window of 2/π that starts there holds the quadrant in its top two
/// bits and the fraction below, with more than 120 correct bits after the worst cancellation of any double.
#[inline(never)]
#[allow(clippy::needless_range_loop)] // the limb loops read like the C twin
pub(crate) fn rem_pio2_large(x: f64) -> (i32, f64, f64) {
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7FF) as i32 - 1075; // >= -22
    let m = (bits & 0x000F_FFFF_FFFF_FFFF) | 0x0010_0000_0000_0000;
    // The window: table bits j0 .. j0 + 191, most significant first (table bit 64 is 2/π's first bit).
    let j0 = (e + 62) as usize;
    let (w, sh) = (j0 >> 5, (j0 & 31) as u32);
    let mut win = [0u32; 6]; // little-endian limbs
    for (n, limb) in win.iter_mut().rev().enumerate() {
        let pair = (u64::from(TWO_OVER_PI_BITS[w + n]) << 32) | u64::from(TWO_OVER_PI_BITS[w + n + 1]);
        *limb = (pair >> (32 - sh)) as u32;
    }
    // p = m * window mod 2^192, in little-endian 32-bit limbs.
    let (m_lo, m_hi) = (m & 0xFFFF_FFFF, m >> 32);
    let mut p = [0u32; 6];
    let mut carry = 0u64;
    for i in 0..6 {
        let t = m_lo * u64::from(win[i]) + carry;
        p[i] = t as u32;
        carry = t >> 32;
    }
    carry = 0;
    for i in 0..5 {
        let t = m_hi * u64::from(win[i]) + u64::from(p[i + 1]) + carry;
        p[i + 1] = t as u32;
        carry = t >> 32;
    }
    let limb64 = |hi: u32, lo: u32| (u64::from(hi) << 32) | u64::from(lo);
    let mut q = (p[5] >> 30) as i32;
    // The fraction, scaled to 2^192, as a signed number: a fraction >= 1/2 rounds the quadrant up.
    let mut g2 = (limb64(p[5], p[4]) << 2) | (u64::from(p[3]) >> 30);
    let mut g1 = (limb64(p[3], p[2]) << 2) | (u64::from(p[1]) >> 30);
    let mut g0 = limb64(p[1], p[0]) << 2;
    let negative = (g2 >> 63) != 0;
    if negative {
        q += 1;
        // Two's complement negation of the 192-bit fraction.
        g0 = !g0;
        g1 = !g1;
        g2 = !g2;
        g0 = g0.wrapping_add(1);
        if g0 == 0 {
            g1 = g1.wrapping_add(1);
            if g1 == 0 {
                g2 = g2.wrapping_add(1);
            }
        }
    }
    // Normalise: shift left until the top bit is set; `shift` counts the bits.
    let mut shift: i32 = 0;
    while g2 == 0 && shift < 192 {
        g2 = g1;
        g1 = g0;
        g0 = 0;
        shift += 64;
    }
    if g2 == 0 {
        return (q & 3, 0.0, 0.0);
    }
    let s = clz64(g2);
    if s > 0 {
        g2 = (g2 << s) | (g1 >> (64 - s));
        g1 = (g1 << s) | (g0 >> (64 - s));
        shift += s as i32;
    }
    // |f| = (g2 2^128 + g1 2^64 + ...) 2^(-192 - shift): a 53-bit head and the next 53 bits.
    let head = g2 >> 11;
    let tail = ((g2 & 0x7FF) << 42) | (g1 >> 22);
    let f_hi = head as f64 * pow2(-53 - shift);
    let f_lo = tail as f64 * pow2(-106 - shift);
    // r = f π/2 in double-double.
    let r_hi = f_hi * PIO2_HI_F64;
    let r_err = f_hi.mul_add(PIO2_HI_F64, -r_hi);
    let r_lo = r_err + f_hi.mul_add(PIO2_LO_F64, f_lo * PIO2_HI_F64);
    let s = r_hi + r_lo;
    let mut r_lo = r_lo - (s - r_hi);
    let mut r_hi = s;
    if negative {
        r_hi = -r_hi;
        r_lo = -r_lo;
    }
    if x < 0.0 {
        return ((-q) & 3, -r_hi, -r_lo);
    }
    (q & 3, r_hi, r_lo)
}
