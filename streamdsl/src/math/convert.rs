//! Narrowing conversions that round once, with the NaN the CUDA kernels produce.

use half::{bf16, f16};

/// `x` rounded to binary32 toward zero, with the last bit set when anything was lost ("round to odd").
///
/// Rounding that result to a format with at least two bits less precision (f16, bf16) gives the same as
/// rounding `x` directly, so `f64 → f32 (odd) → f16/bf16 (nearest even)` rounds once. The CUDA kernels do
/// the same with `cvt.rz.f32.f64` (`common.cuh`, `round_to_odd_f32`). NaN gives a NaN.
///
/// ```
/// use streamdsl::math::round_to_odd_f32;
/// assert_eq!(round_to_odd_f32(1.0), 1.0);
/// assert_eq!(round_to_odd_f32(1.0 + 1e-12).to_bits(), 1.0f32.to_bits() | 1);
/// assert_eq!(round_to_odd_f32(-1e300), -f32::MAX);
/// ```
#[inline]
pub fn round_to_odd_f32(x: f64) -> f32 {
    let r = x as f32; // nearest even
    if r as f64 == x || x.is_nan() {
        return r;
    }
    let mut bits = r.to_bits();
    if (r as f64).abs() > x.abs() {
        bits -= 1; // rounded away from zero: step back toward zero (inf becomes MAX)
    }
    f32::from_bits(bits | 1)
}

/// The NaN that CUDA's conversions to f16 and bf16 produce for every NaN input (`0x7FFF`, sign dropped:
/// the hardware's canonical NaN, and what `cuda_fp16.hpp`/`cuda_bf16.hpp` do on the host).
pub const CANONICAL_NAN_16: u16 = 0x7FFF;

/// binary32 → f16, round to nearest even (subnormals, overflow to ±inf); every NaN becomes `0x7FFF`, as
/// `cvt.rn.f16.f32` does.
///
/// ```
/// use half::f16;
/// use streamdsl::math::f32_to_f16;
/// assert_eq!(f32_to_f16(2049.0), f16::from_f32(2048.0)); // a tie: to even
/// assert_eq!(f32_to_f16(f32::NAN).to_bits(), 0x7FFF);
/// assert_eq!(f32_to_f16(-f32::NAN).to_bits(), 0x7FFF);
/// ```
#[inline]
pub fn f32_to_f16(x: f32) -> f16 {
    if x.is_nan() {
        return f16::from_bits(CANONICAL_NAN_16);
    }
    f16::from_f32(x)
}

/// binary32 → bf16, round to nearest even; every NaN becomes `0x7FFF`, as `cvt.rn.bf16.f32` does.
///
/// ```
/// use half::bf16;
/// use streamdsl::math::f32_to_bf16;
/// assert_eq!(f32_to_bf16(1.00390625), bf16::from_f32(1.0)); // a tie: to even
/// assert_eq!(f32_to_bf16(f32::NAN).to_bits(), 0x7FFF);
/// ```
#[inline]
pub fn f32_to_bf16(x: f32) -> bf16 {
    if x.is_nan() {
        return bf16::from_bits(CANONICAL_NAN_16);
    }
    bf16::from_f32(x)
}

/// binary64 → f16, correctly rounded (one rounding: round to odd to f32, then to nearest even); every NaN
/// becomes `0x7FFF`. The CUDA kernels' `from_double<f16_t>` gives the same bits.
///
/// ```
/// use half::f16;
/// use streamdsl::math::f64_to_f16;
/// // Through f32 this rounds twice (2049 + 1e-9 → 2049.0 → 2048, a tie to even); the nearest f16 is 2050.
/// assert_eq!(f64_to_f16(2049.0 + 1e-9), f16::from_f32(2050.0));
/// ```
#[inline]
pub fn f64_to_f16(x: f64) -> f16 {
    f32_to_f16(round_to_odd_f32(x))
}

/// binary64 → bf16, correctly rounded; every NaN becomes `0x7FFF`.
///
/// ```
/// use half::bf16;
/// use streamdsl::math::f64_to_bf16;
/// let x = 1.0 + 2f64.powi(-8) + 2f64.powi(-40);
/// assert_eq!(f64_to_bf16(x), bf16::from_f32(1.0078125)); // through f32 it would round to 1.0
/// ```
#[inline]
pub fn f64_to_bf16(x: f64) -> bf16 {
    f32_to_bf16(round_to_odd_f32(x))
}
