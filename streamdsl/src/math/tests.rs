//! Accuracy of the portable math library, its special values, and the conversions.
//!
//! References: glibc's binary64 functions (via `std`, documented < 1 ulp; within 2⁻²⁰ ulp of binary32) for
//! the binary32 forms (and this module's `erf_f64` for `erf_f32`, itself checked against astro-float);
//! astro-float at 256 bits (1280 bits for huge trigonometric arguments) for the binary64 forms.
//! Sample counts are smaller in debug builds; the maxima found are printed (`--nocapture`).

use astro_float::{BigFloat, Consts, RoundingMode, Sign};
use half::{bf16, f16};

use super::*;

/// Debug builds run unoptimised: fewer samples there.
const SCALE: u64 = if cfg!(debug_assertions) { 1 } else { 16 };

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The error of `y` in units of the last place of binary32 at the exact value `r` (given in binary64).
fn ulp_err32(y: f32, r: f64) -> f64 {
    if y.is_nan() || r.is_nan() {
        return if y.is_nan() && r.is_nan() { 0.0 } else { f64::INFINITY };
    }
    if r.is_infinite() || y.is_infinite() {
        return if (r as f32) == y { 0.0 } else { f64::INFINITY };
    }
    let e = (r.abs().log2().floor() as i32).max(-126);
    (y as f64 - r).abs() / 2f64.powi(e - 23)
}

fn ulp32_of(x: f32, f: fn(f32) -> f32, reference: fn(f64) -> f64) -> f64 {
    ulp_err32(f(x), reference(x as f64))
}

/// Max ulp error of `f` against `reference` over a stride through all binary32 bit patterns, a dense
/// sweep of `[lo, hi]` and the edge cases.
fn max_ulp32(name: &str, f: fn(f32) -> f32, reference: fn(f64) -> f64, lo: f32, hi: f32) -> f64 {
    let mut worst = (0.0f64, 0.0f32);
    let mut check = |x: f32| {
        let e = ulp32_of(x, f, reference);
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    };
    let stride = 4093 / SCALE as u32;
    let mut b = 0u32;
    while let Some(next) = b.checked_add(stride) {
        check(f32::from_bits(b));
        b = next;
    }
    let n = 200_000 * SCALE;
    for i in 0..=n {
        check(lo + (hi - lo) * (i as f32 / n as f32));
    }
    for x in [0.0, -0.0, f32::MIN_POSITIVE, 1e-45, -1e-45, f32::MAX, f32::MIN, 1.0, -1.0, 0.5, 2.0] {
        check(x);
    }
    eprintln!("{name}: max {:.3} ulp (at {:e})", worst.0, worst.1);
    worst.0
}

#[test]
fn binary32_accuracy() {
    assert!(max_ulp32("log_f32", log_f32, f64::ln, 0.0, 4.0) <= 1.0);
    assert!(max_ulp32("exp_f32", exp_f32, f64::exp, -104.0, 89.0) <= 1.0);
    assert!(max_ulp32("expm1_f32", expm1_f32, f64::exp_m1, -20.0, 20.0) <= 1.0);
    assert!(max_ulp32("sin_f32", sin_f32, f64::sin, -20.0, 20.0) <= 1.0);
    assert!(max_ulp32("cos_f32", cos_f32, f64::cos, -20.0, 20.0) <= 1.0);
    assert!(max_ulp32("tanh_f32", tanh_f32, f64::tanh, -10.0, 10.0) <= 1.0);
    assert!(max_ulp32("erf_f32", erf_f32, erf_f64, -6.0, 6.0) <= 1.0);
}

/// The Box–Muller range: `log` on (0, 1] and `sin`/`cos` on (0, 2π], densely.
#[test]
fn binary32_randn_ranges_densely() {
    let mut worst = [0.0f64; 3];
    let n = 1u32 << (20 + SCALE.trailing_zeros());
    for i in 0..n {
        let u = ((i as u64 * (u32::MAX as u64 / n as u64)) as u32) | 1;
        let x = u as f32 * 2.328_306_4e-10 + 1.164_153_2e-10;
        worst[0] = worst[0].max(ulp32_of(x, log_f32, f64::ln));
        let t = coeffs::TAU_F32 * x;
        worst[1] = worst[1].max(ulp32_of(t, sin_f32, f64::sin));
        worst[2] = worst[2].max(ulp32_of(t, cos_f32, f64::cos));
    }
    eprintln!("box-muller ranges: log {:.3}, sin {:.3}, cos {:.3} ulp", worst[0], worst[1], worst[2]);
    assert!(worst.iter().all(|&w| w <= 1.0), "{worst:?}");
}

/// Every float in `[2^13, 2^14)` (the top of the Cody–Waite range) and a stride over huge arguments.
#[test]
fn binary32_trig_reduction_ranges() {
    let mut worst = 0.0f64;
    let step = if cfg!(debug_assertions) { 61 } else { 1 };
    let mut b = 16384.0f32.to_bits() - (1 << 23);
    while b < 16384.0f32.to_bits() + (1 << 23) {
        let x = f32::from_bits(b);
        worst = worst.max(ulp32_of(x, sin_f32, f64::sin)).max(ulp32_of(x, cos_f32, f64::cos));
        b += step;
    }
    eprintln!("sin/cos f32 around 2^14: max {worst:.3} ulp");
    assert!(worst <= 1.0);
}

// ---- binary64 against astro-float ----------------------------------------------------------------------

const RM: RoundingMode = RoundingMode::ToEven;

/// `x` as a BigFloat (astro-float reads binary64 subnormals as 0: scale those up first, exactly).
fn big(x: f64, p: usize) -> BigFloat {
    if x != 0.0 && x.abs() < f64::MIN_POSITIVE {
        let scale = 2f64.powi(200);
        return BigFloat::from_f64(x * scale, p).div(&BigFloat::from_f64(scale, p), p, RM);
    }
    BigFloat::from_f64(x, p)
}

/// `2^e` for `-1074 <= e <= 1023` (`powi` of a negative exponent goes through an overflowing reciprocal).
fn exp2i(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// A BigFloat's value as f64 (enough for an error estimate: the top 64 bits of the mantissa).
fn to_f64(b: &BigFloat) -> f64 {
    if b.is_zero() {
        return 0.0;
    }
    let (m, _, s, e, _) = b.as_raw_parts().expect("a finite number");
    let top = *m.last().unwrap() as f64 / 2f64.powi(64);
    let v = if e > 1000 {
        top * 2f64.powi(e - 200) * 2f64.powi(200)
    } else if e > -1000 {
        top * 2f64.powi(e)
    } else {
        top * 2f64.powi(e + 200) * exp2i(-200)
    };
    if s == Sign::Neg {
        -v
    } else {
        v
    }
}

/// `|y - r| / ulp(r)` with binary64's ulp (subnormals: 2^-1074).
fn ulp_err64(y: f64, r: &BigFloat, p: usize) -> f64 {
    let rf = to_f64(r);
    let e = if rf == 0.0 { -1022 } else { (rf.abs().log2().floor() as i32).max(-1022) };
    let ulp = big(exp2i(e - 52), p);
    to_f64(&big(y, p).sub(r, p, RM).div(&ulp, p, RM)).abs()
}

type Reference = fn(&BigFloat, usize, &mut Consts) -> BigFloat;

fn ref_ln(x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
    x.ln(p, RM, cc)
}
fn ref_exp(x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
    x.exp(p, RM, cc)
}
fn ref_expm1(x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
    if to_f64(x).abs() > 1e-3 {
        return x.exp(2 * p, RM, cc).sub(&BigFloat::from_f64(1.0, p), p, RM);
    }
    // Near 0, the series (no cancellation).
    let (mut term, mut sum) = (x.clone(), x.clone());
    for n in 2..60u64 {
        term = term.mul(x, 2 * p, RM).div(&BigFloat::from_u64(n, p), 2 * p, RM);
        sum = sum.add(&term, 2 * p, RM);
    }
    sum
}
fn ref_sin(x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
    x.sin(p, RM, cc)
}
fn ref_cos(x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
    x.cos(p, RM, cc)
}
fn ref_tanh(x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
    x.tanh(p, RM, cc)
}
/// erf by its Taylor series, with enough guard bits for the cancellation (terms grow to about e^(x²)).
fn ref_erf(x: &BigFloat, p: usize, cc: &mut Consts) -> BigFloat {
    let xf = to_f64(x);
    let wp = p + 64 + (xf * xf * 1.5) as usize;
    let z = x.mul(x, wp, RM);
    let mut term = x.clone(); // x^(2n+1) (-1)^n / n!
    let mut sum = x.clone();
    let mut n = 1u64;
    loop {
        term = term.mul(&z, wp, RM).div(&BigFloat::from_u64(n, wp), wp, RM).neg();
        let t = term.div(&BigFloat::from_u64(2 * n + 1, wp), wp, RM);
        sum = sum.add(&t, wp, RM);
        if to_f64(&t).abs() < 2f64.powi(-(wp as i32) - 8) * to_f64(&sum).abs().max(1e-300) || n > 4000 {
            break;
        }
        n += 1;
    }
    let two_over_sqrt_pi = BigFloat::from_f64(2.0, wp).div(&cc.pi(wp, RM).sqrt(wp, RM), wp, RM);
    sum.mul(&two_over_sqrt_pi, p, RM)
}

fn max_ulp64(name: &str, f: fn(f64) -> f64, reference: Reference, inputs: &[f64], p: usize) -> f64 {
    let mut cc = Consts::new().unwrap();
    let mut worst = (0.0f64, 0.0f64);
    for &x in inputs {
        let y = f(x);
        let r = reference(&big(x, p), p, &mut cc);
        let e = if r.is_inf_pos() {
            if y == f64::INFINITY {
                0.0
            } else {
                f64::INFINITY
            }
        } else if to_f64(&r).abs() > f64::MAX {
            // Beyond MAX: inf is right when the value rounds up past MAX + ulp/2.
            if y.is_infinite() || y.abs() == f64::MAX {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            ulp_err64(y, &r, p)
        };
        if e > worst.0 || e.is_nan() {
            worst = (e, x);
        }
    }
    eprintln!("{name}: max {:.3} ulp over {} inputs (at {:e})", worst.0, inputs.len(), worst.1);
    worst.0
}

/// Uniform samples of `[lo, hi]`, plus random doubles with exponents in `[e_lo, e_hi]` of either sign.
fn samples64(seed: u64, lo: f64, hi: f64, e_lo: i32, e_hi: i32, n: u64) -> Vec<f64> {
    let mut st = seed;
    let mut v = Vec::new();
    for i in 0..n {
        let r = splitmix(&mut st);
        if i % 2 == 0 {
            v.push(lo + (hi - lo) * ((r >> 11) as f64 / 2f64.powi(53)));
        } else {
            let e = e_lo + (r >> 52) as i32 % (e_hi - e_lo + 1);
            let sign = if r & 1 == 1 { -1.0 } else { 1.0 };
            v.push(sign * f64::from_bits((r & 0x000F_FFFF_FFFF_FFFF) | (((e + 1023) as u64) << 52)));
        }
    }
    v
}

const N64: u64 = 6_000;

#[test]
fn binary64_log_exp_expm1() {
    let p = 256;
    let mut xs = samples64(1, 0.0, 4.0, -1074 + 52, 1023, N64 * SCALE).into_iter().map(f64::abs).collect::<Vec<_>>();
    xs.extend([f64::MIN_POSITIVE, 5e-324, 2.2e-308, f64::MAX, 1.0 - f64::EPSILON / 2.0, 1.0 + f64::EPSILON]);
    assert!(max_ulp64("log_f64", log_f64, ref_ln, &xs, p) <= 1.0);
    let mut xs = samples64(2, -745.2, 709.8, -60, 9, N64 * SCALE);
    // The overflow and underflow boundaries, and the subnormal results.
    xs.extend([709.782712893384, 709.7827128933839, -745.1332191019411, -745.13, -740.0, -708.4, -708.39]);
    xs.retain(|x| x.abs() < 746.0);
    assert!(max_ulp64("exp_f64", exp_f64, ref_exp, &xs, p) <= 1.0);
    let mut xs = samples64(3, -40.0, 40.0, -60, 5, N64 * SCALE);
    xs.extend([1e-300, -1e-300, 0.3, -0.3, 0.35, -0.35, 0.7, -0.7, 36.0, 36.5, -36.5, 709.78]);
    xs.retain(|x| x.abs() < 709.78);
    assert!(max_ulp64("expm1_f64", expm1_f64, ref_expm1, &xs, p) <= 1.5);
}

#[test]
fn binary64_trig() {
    let p = 256;
    let xs = samples64(4, -10.0, 10.0, -30, 29, N64 * SCALE);
    assert!(max_ulp64("sin_f64", sin_f64, ref_sin, &xs, p) <= 1.0);
    assert!(max_ulp64("cos_f64", cos_f64, ref_cos, &xs, p) <= 1.0);
    // Huge arguments (the Payne–Hanek range, up to f64::MAX), with a precision that covers the exponent,
    // and the classic hard case near a multiple of π/2 (6381956970095103 · 2^797).
    let mut huge = samples64(5, 1e9, 1e10, 30, 1023, 150 * SCALE);
    huge.extend([6381956970095103.0 * 2f64.powi(797), 1073741824.0, f64::MAX, -f64::MAX, 1e22, 5.319372648326541e+255]);
    assert!(max_ulp64("sin_f64 huge", sin_f64, ref_sin, &huge, 1280) <= 1.0);
    assert!(max_ulp64("cos_f64 huge", cos_f64, ref_cos, &huge, 1280) <= 1.0);
    for x in huge.iter().chain(&xs) {
        assert_eq!(sincos_f64(*x), (sin_f64(*x), cos_f64(*x)));
    }
}

#[test]
fn binary64_tanh_erf() {
    let p = 256;
    let mut xs = samples64(6, -23.0, 23.0, -40, 4, N64 * SCALE);
    xs.extend([22.0, -22.0, 21.9, 1.0, -1.0, 0.9999999999999999, 3.7e-9, 3.8e-9, 19.0]);
    assert!(max_ulp64("tanh_f64", tanh_f64, ref_tanh, &xs, p) <= 1.0);
    let mut xs = samples64(7, -6.5, 6.5, -40, 2, N64 * SCALE / 2);
    xs.extend([1.0, -1.0, 0.9999999999999999, 1.5, 2.0, 4.0, 5.0, 5.999999999999999, 6.0, 1e-300, 5e-324]);
    assert!(max_ulp64("erf_f64", erf_f64, ref_erf, &xs, p) <= 1.5);
}

// ---- special values ------------------------------------------------------------------------------------

#[test]
fn nan_in_canonical_nan_out() {
    let nans32 = [f32::NAN, -f32::NAN, f32::from_bits(0x7F80_0001), f32::from_bits(0xFFC0_1234)];
    let fs32: [fn(f32) -> f32; 7] = [log_f32, exp_f32, expm1_f32, sin_f32, cos_f32, tanh_f32, erf_f32];
    for x in nans32 {
        for f in fs32 {
            assert_eq!(f(x).to_bits(), NAN_F32.to_bits());
        }
        let (s, c) = sincos_f32(x);
        assert_eq!((s.to_bits(), c.to_bits()), (NAN_F32.to_bits(), NAN_F32.to_bits()));
    }
    let nans64 = [f64::NAN, -f64::NAN, f64::from_bits(0x7FF0_0000_0000_0001), f64::from_bits(0xFFF8_0000_0000_1234)];
    let fs64: [fn(f64) -> f64; 7] = [log_f64, exp_f64, expm1_f64, sin_f64, cos_f64, tanh_f64, erf_f64];
    for x in nans64 {
        for f in fs64 {
            assert_eq!(f(x).to_bits(), NAN_F64.to_bits());
        }
    }
    // Invalid arguments give the same NaN.
    assert_eq!(log_f32(-1.0).to_bits(), NAN_F32.to_bits());
    assert_eq!(log_f64(-f64::MIN_POSITIVE).to_bits(), NAN_F64.to_bits());
    assert_eq!(sin_f32(f32::INFINITY).to_bits(), NAN_F32.to_bits());
    assert_eq!(cos_f64(f64::NEG_INFINITY).to_bits(), NAN_F64.to_bits());
}

#[test]
fn zeros_infinities_and_saturation() {
    assert_eq!(log_f32(0.0), f32::NEG_INFINITY);
    assert_eq!(log_f64(-0.0), f64::NEG_INFINITY);
    assert_eq!(log_f64(f64::INFINITY), f64::INFINITY);
    assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp_f64(f64::INFINITY), f64::INFINITY);
    assert_eq!(expm1_f64(f64::NEG_INFINITY), -1.0);
    assert_eq!(expm1_f32(f32::INFINITY), f32::INFINITY);
    for (x, y) in [(0.0f64, 0.0f64), (-0.0, -0.0)] {
        assert_eq!(sin_f64(x).to_bits(), y.to_bits());
        assert_eq!(tanh_f64(x).to_bits(), y.to_bits());
        assert_eq!(erf_f64(x).to_bits(), y.to_bits());
        assert_eq!(expm1_f64(x).to_bits(), y.to_bits());
        assert_eq!(sin_f32(x as f32).to_bits(), (y as f32).to_bits());
        assert_eq!(tanh_f32(x as f32).to_bits(), (y as f32).to_bits());
        assert_eq!(erf_f32(x as f32).to_bits(), (y as f32).to_bits());
    }
    assert_eq!(cos_f64(-0.0), 1.0);
    assert_eq!(exp_f64(-0.0), 1.0);
    // exp: the last finite results and the first infinite ones; the smallest subnormal results.
    assert!(exp_f64(709.782712893384).is_finite());
    assert_eq!(exp_f64(709.7827128933841), f64::INFINITY);
    assert!(exp_f32(88.72283).is_finite());
    assert_eq!(exp_f32(88.72284_f32.next_up_compat()), f32::INFINITY);
    assert_eq!(exp_f64(-745.1332191019411), 5e-324);
    assert_eq!(exp_f64(-745.1332191019412), 0.0);
    assert_eq!(exp_f32(-103.97208), 1e-45); // just above ln(2^-150)
    assert_eq!(exp_f32(-103.9721), 0.0);
    // Saturation.
    assert_eq!(tanh_f64(22.0), 1.0);
    assert_eq!(tanh_f64(-1e300), -1.0);
    assert_eq!(tanh_f32(9.1), 1.0);
    assert_eq!(tanh_f64(f64::INFINITY), 1.0);
    assert_eq!(erf_f64(6.0), 1.0);
    assert_eq!(erf_f64(f64::NEG_INFINITY), -1.0);
    assert_eq!(erf_f32(4.0), 1.0);
    // Subnormal inputs.
    assert_eq!(sin_f64(5e-324), 5e-324);
    assert_eq!(tanh_f32(1e-45), 1e-45);
    assert_eq!(erf_f64(5e-324), 5e-324);
    assert_eq!(log_f64(5e-324), 5e-324f64.ln());
    assert_eq!(log_f64(2.5e-310), 2.5e-310f64.ln());
    assert!((log_f32(1e-45) - (-103.27893)).abs() < 1e-5);
}

trait NextUp {
    fn next_up_compat(self) -> Self;
}
impl NextUp for f32 {
    fn next_up_compat(self) -> f32 {
        f32::from_bits(self.to_bits() + 1)
    }
}

#[test]
fn box_muller_dispatch_and_uniforms_agree() {
    let (p32, p64) = box_muller_portable();
    let mut st = 9;
    for _ in 0..20_000 {
        let r = splitmix(&mut st);
        let (u, v) = (r as u32, (r >> 32) as u32);
        assert_eq!(box_muller_f32(u, v), p32(u, v));
        assert_eq!(box_muller_f64(u, v), p64(u, v));
    }
    for (u, v) in [(0, 0), (u32::MAX, u32::MAX), (0, u32::MAX), (u32::MAX, 0)] {
        let (a, b) = box_muller_f32(u, v);
        let (c, d) = box_muller_f64(u, v);
        assert!(a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite());
    }
}

// ---- conversions ---------------------------------------------------------------------------------------

#[test]
fn double_rounding_regressions() {
    assert_eq!(f64_to_f16(2049.0 + 1e-9).to_f32(), 2050.0);
    assert_eq!(f64_to_bf16(1.0 + 2f64.powi(-8) + 2f64.powi(-40)).to_f32(), 1.0078125);
    // The old path (through f32) got them wrong.
    assert_eq!(f16::from_f64(2049.0 + 1e-9).to_f32(), 2048.0);
}

/// The correctly rounded (nearest, ties to even) 16-bit value of `x` among the finite values `table`
/// (sorted, positive, as f64), with `inf_at` the first magnitude that rounds to infinity.
fn reference_round(x: f64, table: &[f64], bits_of: &dyn Fn(usize) -> u16, inf: u16, inf_at: f64) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
    let a = x.abs();
    if a >= inf_at {
        return sign | inf;
    }
    let i = table.partition_point(|&v| v <= a) - 1; // table[i] <= a < table[i + 1]
    let (lo, hi) = (table[i], table.get(i + 1).copied().unwrap_or(f64::INFINITY));
    let (dl, dh) = (a - lo, hi - a); // exact (Sterbenz)
    let pick = if dl < dh || (dl == dh && bits_of(i) & 1 == 0) { i } else { i + 1 };
    sign | bits_of(pick)
}

fn check_format(name: &str, convert: fn(f64) -> u16, to_f64: fn(u16) -> f64, max_finite: u16, inf: u16) {
    let table: Vec<f64> = (0..=max_finite).map(to_f64).collect();
    let inf_at = (table[max_finite as usize] + to_f64(inf.wrapping_add(0))) / 2.0; // the tie rounds to even: inf
    let bits_of = |i: usize| i as u16;
    let mut count = 0u64;
    let mut check = |x: f64| {
        let want = reference_round(x, &table, &bits_of, inf, inf_at);
        assert_eq!(convert(x), want, "{name}: {x:e} ({:#x})", x.to_bits());
        count += 1;
    };
    for i in 0..max_finite as usize {
        let (v, w) = (table[i], table[i + 1]);
        let mid = (v + w) / 2.0; // exact in f64
        for x in [
            v,
            mid,
            mid.next_up_compat(),
            mid.next_down_compat(),
            mid + (w - v) * 2f64.powi(-30),
            mid - (w - v) * 2f64.powi(-30),
        ] {
            check(x);
            check(-x);
        }
    }
    for x in [inf_at, inf_at.next_down_compat(), f64::MAX, f64::INFINITY, 1e-30, 5e-324, 0.0, -0.0] {
        check(x);
        check(-x);
    }
    assert_eq!(convert(f64::NAN), 0x7FFF);
    assert_eq!(convert(-f64::NAN), 0x7FFF);
    eprintln!("{name}: {count} conversions match the correctly rounded reference");
}

trait NextF64 {
    fn next_up_compat(self) -> Self;
    fn next_down_compat(self) -> Self;
}
impl NextF64 for f64 {
    fn next_up_compat(self) -> f64 {
        if self == 0.0 {
            return 5e-324;
        }
        f64::from_bits(self.to_bits() + 1)
    }
    fn next_down_compat(self) -> f64 {
        if self == 0.0 {
            return 0.0;
        }
        f64::from_bits(self.to_bits() - 1)
    }
}

/// Every f16/bf16 value, every midpoint between neighbours (the ties), and the values just around them,
/// including subnormals and the overflow threshold.
#[test]
fn f64_to_16_bit_rounds_once_everywhere() {
    // The "infinity" entries: 2^16 for f16 (what the next binade would start with), 2^128 for bf16.
    check_format(
        "f16",
        |x| f64_to_f16(x).to_bits(),
        |b| if b == 0x7C00 { 65536.0 } else { f16::from_bits(b).to_f64() },
        0x7BFF,
        0x7C00,
    );
    check_format(
        "bf16",
        |x| f64_to_bf16(x).to_bits(),
        |b| if b == 0x7F80 { 2f64.powi(128) } else { bf16::from_bits(b).to_f64() },
        0x7F7F,
        0x7F80,
    );
}

#[test]
fn f32_to_16_bit_nans_are_canonical() {
    for bits in [0x7FC0_0000u32, 0xFFC0_0000, 0x7F80_0001, 0xFFFF_FFFF, 0x7FBF_FFFF] {
        assert_eq!(f32_to_f16(f32::from_bits(bits)).to_bits(), 0x7FFF);
        assert_eq!(f32_to_bf16(f32::from_bits(bits)).to_bits(), 0x7FFF);
    }
    // Everything else is half's (correct, round to nearest even) conversion.
    let mut st = 11;
    for _ in 0..100_000 {
        let x = f32::from_bits(splitmix(&mut st) as u32);
        if !x.is_nan() {
            assert_eq!(f32_to_f16(x), f16::from_f32(x));
            assert_eq!(f32_to_bf16(x), bf16::from_f32(x));
            // From f64, an f32 input converts the same way.
            assert_eq!(f64_to_f16(x as f64), f16::from_f32(x));
            assert_eq!(f64_to_bf16(x as f64), bf16::from_f32(x));
        }
    }
}

#[test]
fn reference_helpers_are_sane() {
    for x in [3.0, -0.1, 1e-300, 6.02e23, 5e-324, -2.5e-310, 1.7e308] {
        assert_eq!(to_f64(&big(x, 128)), x);
    }
    let mut cc = Consts::new().unwrap();
    let e = to_f64(&ref_erf(&big(0.5, 256), 256, &mut cc));
    assert!((e - 0.5204998778130465).abs() < 1e-16, "{e}");
}
