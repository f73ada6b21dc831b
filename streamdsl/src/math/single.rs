//! The binary32 functions. `log`, `exp`, `sin`, `cos` work in binary32 (binary64 only for the rare
//! Payne–Hanek reduction of `|x| >= 2^14`); `expm1`, `tanh` and `erf` round the binary64 function once.
//! Every line has a twin in `kernels/src/cuda/math.cuh`; keep them in step.

use super::coeffs::*;
use super::double;
use super::NAN_F32;

#[inline(always)]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// `2^k` for `-126 <= k <= 127`.
#[inline(always)]
fn pow2(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

#[inline(always)]
fn abs(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7FFF_FFFF)
}

#[inline(always)]
fn two_sum(a: f32, b: f32) -> (f32, f32) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

const SHIFT: f32 = 12582912.0; // 1.5 * 2^23: adding it rounds to an integer (|t| < 2^22)

/// Natural logarithm. `log(±0) = -inf`, `log(x < 0) = NaN`, `log(inf) = inf`.
#[inline(always)]
pub fn log_f32(x: f32) -> f32 {
    if x.is_nan() || x <= 0.0 {
        return if x == 0.0 { f32::NEG_INFINITY } else { NAN_F32 };
    }
    if x == f32::INFINITY {
        return x;
    }
    let mut bits = x.to_bits();
    let mut k: i32 = 0;
    if bits < 0x0080_0000 {
        bits = (x * 33554432.0).to_bits(); // 2^25
        k = -25;
    }
    k += (bits >> 23) as i32 - 127;
    let mut mbits = (bits & 0x007F_FFFF) | 0x3F80_0000;
    if mbits > 0x3FB5_04F3 {
        mbits -= 0x0080_0000;
        k += 1;
    }
    let f = f32::from_bits(mbits) - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let c = &LOG_F32;
    let mut p = c[3];
    p = fma(p, z, c[2]);
    p = fma(p, z, c[1]);
    p = fma(p, z, c[0]);
    let r = z * p;
    let hfsq = 0.5 * f * f;
    let dk = k as f32;
    dk * LN2_HI_F32 - ((hfsq - fma(s, hfsq + r, dk * LN2_LO_F32)) - f)
}

/// Exponential. Overflows to `inf` above `88.72284`, underflows to `+0` below `-103.97208`.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return NAN_F32;
    }
    if x > 88.72284 {
        return f32::INFINITY;
    }
    if x < -103.97208 {
        return 0.0;
    }
    let k = fma(x, INV_LN2_F32, SHIFT) - SHIFT;
    let r_hi = fma(-k, LN2_HI_F32, x); // exact
    let r_lo = -k * LN2_LO_F32;
    let r = r_hi + r_lo;
    let c = (r_hi - r) + r_lo;
    let q = &EXP_F32;
    let mut p = q[4];
    p = fma(p, r, q[3]);
    p = fma(p, r, q[2]);
    p = fma(p, r, q[1]);
    p = fma(p, r, q[0]);
    let p = 1.0 + (r + fma(r * r, p, c));
    let ki = k as i32;
    if ki > 127 {
        (p * 2.0) * pow2(ki - 1)
    } else if ki < -125 {
        (p * pow2(ki + 100)) * pow2(-100)
    } else {
        p * pow2(ki)
    }
}

/// `x = q π/2 + (r_hi + r_lo)`, `|r| <= π/4 (1 + 2^-10)`, for finite `|x| > π/4`.
#[inline(always)]
fn rem_pio2(x: f32) -> (i32, f32, f32) {
    if abs(x) < 16384.0 {
        // Cody–Waite with π/2 in three binary32 pieces (the first step exact), double-float after.
        let k = fma(x, TWO_OVER_PI_F32, SHIFT) - SHIFT;
        let r1 = fma(-k, PIO2_1_F32, x);
        let w_hi = k * PIO2_2_F32;
        let w_lo = fma(k, PIO2_2_F32, -w_hi);
        let (s, e) = two_sum(r1, -w_hi);
        let lo = (e - w_lo) - k * PIO2_3_F32;
        let (r_hi, r_lo) = two_sum(s, lo);
        return ((k as i32) & 3, r_hi, r_lo);
    }
    let (q, h, l) = double::rem_pio2(x as f64);
    let r_hi = h as f32;
    let r_lo = ((h - r_hi as f64) + l) as f32;
    (q, r_hi, r_lo)
}

#[inline(always)]
fn sin_kernel(r_hi: f32, r_lo: f32) -> f32 {
    let z = r_hi * r_hi;
    let v = z * r_hi;
    let c = &SIN_F32;
    let mut p = c[3];
    p = fma(p, z, c[2]);
    p = fma(p, z, c[1]);
    p = fma(p, z, c[0]);
    r_hi + fma(v, p, fma(-0.5 * z, r_lo, r_lo))
}

#[inline(always)]
fn cos_kernel(r_hi: f32, r_lo: f32) -> f32 {
    let z = r_hi * r_hi;
    let z_lo = fma(r_hi, r_hi, -z);
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let c = &COS_F32;
    let mut p = c[3];
    p = fma(p, z, c[2]);
    p = fma(p, z, c[1]);
    p = fma(p, z, c[0]);
    w + ((((1.0 - w) - hz) - 0.5 * z_lo) + fma(z * z, p, -(r_hi * r_lo)))
}

/// Sine and cosine together (one argument reduction).
#[inline(always)]
pub fn sincos_f32(x: f32) -> (f32, f32) {
    let ax = abs(x);
    if !ax.is_finite() {
        return (NAN_F32, NAN_F32);
    }
    if ax < 0.00012207031 {
        // |x| < 2^-13: sin x rounds to x, cos x to 1 (within 0.05 ulp)
        return (x, 1.0);
    }
    let (q, h, l) = if ax <= std::f32::consts::FRAC_PI_4 { (0, x, 0.0) } else { rem_pio2(x) };
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
pub fn sin_f32(x: f32) -> f32 {
    let ax = abs(x);
    if !ax.is_finite() {
        return NAN_F32;
    }
    if ax < 0.00012207031 {
        return x;
    }
    let (q, h, l) = if ax <= std::f32::consts::FRAC_PI_4 { (0, x, 0.0) } else { rem_pio2(x) };
    match q {
        0 => sin_kernel(h, l),
        1 => cos_kernel(h, l),
        2 => -sin_kernel(h, l),
        _ => -cos_kernel(h, l),
    }
}

/// Cosine.
#[inline(always)]
pub fn cos_f32(x: f32) -> f32 {
    let ax = abs(x);
    if !ax.is_finite() {
        return NAN_F32;
    }
    if ax < 0.00012207031 {
        return 1.0;
    }
    let (q, h, l) = if ax <= std::f32::consts::FRAC_PI_4 { (0, x, 0.0) } else { rem_pio2(x) };
    match q {
        0 => cos_kernel(h, l),
        1 => -sin_kernel(h, l),
        2 => -cos_kernel(h, l),
        _ => sin_kernel(h, l),
    }
}

/// `exp(x) - 1` (the binary64 function, rounded once).
#[inline(always)]
pub fn expm1_f32(x: f32) -> f32 {
    if x.is_nan() {
        return NAN_F32;
    }
    double::expm1_f64(x as f64) as f32
}

/// Hyperbolic tangent (the binary64 function, rounded once).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    if x.is_nan() {
        return NAN_F32;
    }
    double::tanh_f64(x as f64) as f32
}

/// The error function (the binary64 function, rounded once).
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    if x.is_nan() {
        return NAN_F32;
    }
    double::erf_f64(x as f64) as f32
}
