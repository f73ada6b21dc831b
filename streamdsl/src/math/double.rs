//! The binary64 functions. Every line has a twin in `kernels/src/cuda/math.cuh` (same operations, same
//! order); keep them in step.

use super::coeffs::*;
use super::NAN_F64;

#[inline(always)]
fn fma(a: f64, b: f64, c: f64) -> f64 {
    a.mul_add(b, c)
}

/// `2^k` for `-1022 <= k <= 1023`.
#[inline(always)]
fn pow2(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

#[inline(always)]
fn abs(x: f64) -> f64 {
    f64::from_bits(x.to_bits() & 0x7FFF_FFFF_FFFF_FFFF)
}

/// `a + b` as an unevaluated sum `(s, e)`, exactly (Knuth's TwoSum).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

/// `a + b` exactly, for `|a| >= |b|` (or `a == 0`).
#[inline(always)]
fn fast_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

const SHIFT: f64 = 6755399441055744.0; // 1.5 * 2^52: adding it rounds to an integer (|t| < 2^51)

/// Natural logarithm. `log(±0) = -inf`, `log(x < 0) = NaN`, `log(inf) = inf`.
#[inline(always)]
pub fn log_f64(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return if x == 0.0 { f64::NEG_INFINITY } else { NAN_F64 };
    }
    if x == f64::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut k: i32 = 0;
    if bits < 0x0010_0000_0000_0000 {
        bits = (x * 18014398509481984.0).to_bits(); // 2^54
        k = -54;
    }
    k += (bits >> 52) as i32 - 1023;
    let mut mbits = (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000;
    if mbits > 0x3FF6_A09E_667F_3BCD {
        // m > sqrt(2): use m / 2, so that m - 1 lies in [sqrt(2)/2 - 1, sqrt(2) - 1].
        mbits -= 0x0010_0000_0000_0000;
        k += 1;
    }
    let f = f64::from_bits(mbits) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let c = &LOG_F64;
    let mut p = c[6];
    p = fma(p, z, c[5]);
    p = fma(p, z, c[4]);
    p = fma(p, z, c[3]);
    p = fma(p, z, c[2]);
    p = fma(p, z, c[1]);
    p = fma(p, z, c[0]);
    let r = z * p;
    let hfsq = 0.5 * f * f;
    let dk = k as f64;
    // log(1 + f) = f - hfsq + s (hfsq + R), and k ln2 split so that k * LN2_HI is exact.
    dk * LN2_HI_F64 - ((hfsq - fma(s, hfsq + r, dk * LN2_LO_F64)) - f)
}

/// `exp(r + c) - 1` for `|r| <= ln2/2 (1 + 2^-10)`, `|c| <= ulp(r)`, as `(hi, lo)` with `|lo| <= ulp(hi)/2`.
#[inline(always)]
fn expm1_kernel(r: f64, c: f64) -> (f64, f64) {
    let q = &EXP_F64;
    let mut p = q[10];
    p = fma(p, r, q[9]);
    p = fma(p, r, q[8]);
    p = fma(p, r, q[7]);
    p = fma(p, r, q[6]);
    p = fma(p, r, q[5]);
    p = fma(p, r, q[4]);
    p = fma(p, r, q[3]);
    p = fma(p, r, q[2]);
    p = fma(p, r, q[1]);
    p = fma(p, r, q[0]);
    let t = fma(r * r, p, c);
    fast_two_sum(r, t)
}

/// `x = k ln2 + r + c`: `(k, r, c)` with `|r| <= ln2/2 (1 + 2^-10)`, for `|x| < 1024 ln2`.
#[inline(always)]
fn reduce_ln2(x: f64) -> (f64, f64, f64) {
    let k = fma(x, INV_LN2_F64, SHIFT) - SHIFT;
    let r_hi = fma(-k, LN2_HI_F64, x); // exact
    let r_lo = -k * LN2_LO_F64;
    let r = r_hi + r_lo;
    (k, r, (r_hi - r) + r_lo)
}

/// Exponential. Overflows to `inf` above `709.782712893384`, underflows to `+0` below `-745.1332191019412`.
#[inline(always)]
pub fn exp_f64(x: f64) -> f64 {
    if x.is_nan() {
        return NAN_F64;
    }
    if x > 709.782712893384 {
        return f64::INFINITY;
    }
    if x < -745.1332191019412 {
        return 0.0;
    }
    let (k, r, c) = reduce_ln2(x);
    let (hi, lo) = expm1_kernel(r, c);
    let p = 1.0 + (hi + lo);
    let ki = k as i32;
    if ki > 1023 {
        (p * 2.0) * pow2(ki - 1)
    } else if ki < -1021 {
        // The second product rounds once into the subnormal range.
        (p * pow2(ki + 1000)) * pow2(-1000)
    } else {
        p * pow2(ki)
    }
}

/// `exp(x) - 1` as `(hi, lo)` for `|x| <= 36`.
#[inline(always)]
fn expm1_dd(x: f64) -> (f64, f64) {
    let (k, r, c) = reduce_ln2(x);
    let (e_hi, e_lo) = expm1_kernel(r, c);
    if k == 0.0 {
        return (e_hi, e_lo);
    }
    // 2^k (1 + e) - 1 = (2^k - 1) + 2^k e, with 2^k - 1 exact for |k| <= 52.
    let ki = k as i32;
    let sc = pow2(ki);
    let (s, t) = two_sum(sc - 1.0, sc * e_hi);
    fast_two_sum(s, t + sc * e_lo)
}

/// `exp(x) - 1`, accurate near 0.
#[inline(always)]
pub fn expm1_f64(x: f64) -> f64 {
    if x.is_nan() {
        return NAN_F64;
    }
    let ax = abs(x);
    if ax < 5.551115123125783e-17 {
        return x; // |x| < 2^-54 (also ±0 and subnormals)
    }
    if ax > 36.0 {
        return exp_f64(x) - 1.0;
    }
    expm1_dd(x).0
}

/// Hyperbolic tangent; `±1` for `|x| >= 22`.
#[inline(always)]
pub fn tanh_f64(x: f64) -> f64 {
    if x.is_nan() {
        return NAN_F64;
    }
    let ax = abs(x);
    if ax < 3.725290298461914e-9 {
        return x; // |x| < 2^-28: tanh x = x (1 - x^2/3) rounds to x
    }
    let t = if ax >= 22.0 {
        1.0
    } else if ax < 1.0 {
        // tanh = e / (e + 2) with e = expm1(2|x|) carried in double-double.
        let (e_hi, e_lo) = expm1_dd(2.0 * ax);
        let (d_hi, d_e) = two_sum(e_hi, 2.0);
        let d_lo = d_e + e_lo;
        let q = e_hi / d_hi;
        let rem = fma(-q, d_hi, e_hi) + fma(-q, d_lo, e_lo);
        q + rem / d_hi
    } else {
        1.0 - 2.0 / (exp_f64(2.0 * ax) + 1.0)
    };
    if x < 0.0 {
        -t
    } else {
        t
    }
}

/// The error function; `±1` for `|x| >= 6`.
#[inline(always)]
pub fn erf_f64(x: f64) -> f64 {
    if x.is_nan() {
        return NAN_F64;
    }
    let ax = abs(x);
    if ax < 1.0 {
        // erf x = x + x P(x^2)
        let z = x * x;
        let c = &ERF_SMALL_F64;
        let mut p = c[12];
        p = fma(p, z, c[11]);
        p = fma(p, z, c[10]);
        p = fma(p, z, c[9]);
        p = fma(p, z, c[8]);
        p = fma(p, z, c[7]);
        p = fma(p, z, c[6]);
        p = fma(p, z, c[5]);
        p = fma(p, z, c[4]);
        p = fma(p, z, c[3]);
        p = fma(p, z, c[2]);
        p = fma(p, z, c[1]);
        p = fma(p, z, c[0]);
        return fma(x, p, x);
    }
    let v = if ax >= 6.0 {
        1.0
    } else {
        // Pieces [1, 1.5), [1.5, 2), ..., [3.5, 4), [4, 5), [5, 6), each a polynomial in t = |x| - centre.
        let (i, centre) = if ax < 4.0 {
            let i = ((ax - 1.0) * 2.0) as usize; // exact: ax - 1 is exact, the product a power-of-two scaling
            (i, 1.25 + 0.5 * i as f64)
        } else if ax < 5.0 {
            (6, 4.5)
        } else {
            (7, 5.5)
        };
        let c = &ERF_PIECES_F64[i];
        let t = ax - centre;
        let mut p = c[14];
        let mut j = 14;
        while j > 0 {
            j -= 1;
            p = fma(p, t, c[j]);
        }
        p
    };
    if x < 0.0 {
        -v
    } else {
        v
    }
}

/// `x = q π/2 + (r_hi + r_lo)` with `|r| <= π/4 (1 + 2^-20)`, for finite `|x| >= 2^-27`; `q` in `0..4`.
#[inline(always)]
pub(crate) fn rem_pio2(x: f64) -> (i32, f64, f64) {
    if abs(x) < 1073741824.0 {
        // |x| < 2^30: Cody–Waite with π/2 in three 53-bit pieces; the first step is exact (see the module
        // doc), the rest is carried in double-double.
        let k = fma(x, TWO_OVER_PI_F64, SHIFT) - SHIFT;
        let r1 = fma(-k, PIO2_1_F64, x);
        let w_hi = k * PIO2_2_F64;
        let w_lo = fma(k, PIO2_2_F64, -w_hi);
        let (s, e) = two_sum(r1, -w_hi);
        let lo = (e - w_lo) - k * PIO2_3_F64;
        let (r_hi, r_lo) = two_sum(s, lo);
        return ((k as i64 & 3) as i32, r_hi, r_lo);
    }
    super::reduce::rem_pio2_large(x)
}

/// `sin(r_hi + r_lo)` for `|r| <= π/4 (1 + 2^-10)`.
#[inline(always)]
fn sin_kernel(r_hi: f64, r_lo: f64) -> f64 {
    let z = r_hi * r_hi;
    let v = z * r_hi;
    let c = &SIN_F64;
    let mut p = c[5];
    p = fma(p, z, c[4]);
    p = fma(p, z, c[3]);
    p = fma(p, z, c[2]);
    p = fma(p, z, c[1]);
    p = fma(p, z, c[0]);
    r_hi + fma(v, p, fma(-0.5 * z, r_lo, r_lo))
}

/// `cos(r_hi + r_lo)` for `|r| <= π/4 (1 + 2^-10)`.
#[inline(always)]
fn cos_kernel(r_hi: f64, r_lo: f64) -> f64 {
    let z = r_hi * r_hi;
    let z_lo = fma(r_hi, r_hi, -z);
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let c = &COS_F64;
    let mut p = c[5];
    p = fma(p, z, c[4]);
    p = fma(p, z, c[3]);
    p = fma(p, z, c[2]);
    p = fma(p, z, c[1]);
    p = fma(p, z, c[0]);
    // (1 - w) - hz is the rounding error of w, exactly.
    w + ((((1.0 - w) - hz) - 0.5 * z_lo) + fma(z * z, p, -(r_hi * r_lo)))
}

/// Sine and cosine together (one argument reduction).
#[inline(always)]
pub fn sincos_f64(x: f64) -> (f64, f64) {
    let ax = abs(x);
    if !ax.is_finite() {
        return (NAN_F64, NAN_F64);
    }
    if ax < 7.450580596923828e-9 {
        return (x, 1.0); // |x| < 2^-27
    }
    let (q, h, l) = if ax <= std::f64::consts::FRAC_PI_4 { (0, x, 0.0) } else { rem_pio2(x) };
    let s = sin_kernel(h, l);
    let c = cos_kernel(h, l);
    match q {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

/// Sine.
#[inline(always)]
pub fn sin_f64(x: f64) -> f64 {
    let ax = abs(x);
    if !ax.is_finite() {
        return NAN_F64;
    }
    if ax < 7.450580596923828e-9 {
        return x;
    }
    let (q, h, l) = if ax <= std::f64::consts::FRAC_PI_4 { (0, x, 0.0) } else { rem_pio2(x) };
    match q {
        0 => sin_kernel(h, l),
        1 => cos_kernel(h, l),
        2 => -sin_kernel(h, l),
        _ => -cos_kernel(h, l),
    }
}

/// Cosine.
#[inline(always)]
pub fn cos_f64(x: f64) -> f64 {
    let ax = abs(x);
    if !ax.is_finite() {
        return NAN_F64;
    }
    if ax < 7.450580596923828e-9 {
        return 1.0;
    }
    let (q, h, l) = if ax <= std::f64::consts::FRAC_PI_4 { (0, x, 0.0) } else { rem_pio2(x) };
    match q {
        0 => cos_kernel(h, l),
        1 => -sin_kernel(h, l),
        2 => -cos_kernel(h, l),
        _ => sin_kernel(h, l),
    }
}
