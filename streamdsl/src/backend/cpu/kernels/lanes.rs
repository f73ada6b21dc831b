//! Per-element conversions written without branches, so that the loops of the kernels vectorise: each is a
//! fixed sequence of integer and IEEE operations and selects, with the same result as the scalar conversion
//! of [`Element`] (`crate::math::f32_to_f16` and friends) for every input, NaN included (`0x7FFF` for the
//! 16-bit types).

use half::{bf16, f16};

use crate::dtype::{DType, Element};

/// Reinterprets `x` as `B`, which is the same type.
#[inline(always)]
pub(super) fn same<A: Element, B: Element>(x: A) -> B {
    assert!(A::DTYPE == B::DTYPE); // a constant after monomorphisation
                                   // SAFETY: `Element` is sealed to four types with four distinct `DTYPE` tags, so equal tags mean `A` and
                                   // `B` are the same type.
    unsafe { std::mem::transmute_copy::<A, B>(&x) }
}

/// The element types as the SIMD loops see them. Arithmetic on `f32`, `f16` and `bf16` is done in `f32`
/// (exact widening, one rounding back), on `f64` in `f64`.
pub(crate) trait Lane: Element {
    /// Widen to `f32`: exact for `f32`, `f16`, `bf16` (rounds for `f64`; the kernels never ask that).
    fn to32(self) -> f32;
    /// Round from `f32` to nearest even, once; a NaN becomes `0x7FFF` in `f16`/`bf16`.
    fn from32(x: f32) -> Self;
    /// Widen to `f64`, exactly.
    fn to64(self) -> f64;
    /// Round from `f64` to nearest even, once (`f16`/`bf16` too: not through a rounding to `f32`).
    fn from64(x: f64) -> Self;
}

impl<T: Element> Lane for T {
    #[inline(always)]
    fn to32(self) -> f32 {
        match T::DTYPE {
            DType::F32 => same(self),
            DType::F64 => same::<T, f64>(self) as f32,
            DType::F16 => f16_to_f32(same::<T, f16>(self).to_bits()),
            DType::BF16 => bf16_to_f32(same::<T, bf16>(self).to_bits()),
        }
    }

    #[inline(always)]
    fn from32(x: f32) -> Self {
        match T::DTYPE {
            DType::F32 => same(x),
            DType::F64 => same(x as f64),
            DType::F16 => same(f16::from_bits(f32_to_f16(x))),
            DType::BF16 => same(bf16::from_bits(f32_to_bf16(x))),
        }
    }

    #[inline(always)]
    fn to64(self) -> f64 {
        match T::DTYPE {
            DType::F64 => same(self),
            _ => self.to32() as f64,
        }
    }

    #[inline(always)]
    fn from64(x: f64) -> Self {
        match T::DTYPE {
            DType::F32 => same(x as f32),
            DType::F64 => same(x),
            DType::F16 | DType::BF16 => Self::from32(round_to_odd(x)),
        }
    }
}

/// `crate::math::round_to_odd_f32` without branches: `x` rounded to binary32 toward zero, with the last bit
/// set when anything was lost; a NaN stays a NaN. Rounding that to a 16-bit type rounds `x` once.
#[inline(always)]
pub(super) fn round_to_odd(x: f64) -> f32 {
    let r = x as f32; // nearest even
    let back = r as f64;
    let inexact = back != x && !x.is_nan();
    let away = back.abs() > x.abs(); // rounded away from zero (false for NaN)
    let bits = r.to_bits().wrapping_sub(away as u32) | inexact as u32;
    f32::from_bits(bits)
}

/// binary16 bits → binary32, exactly; a NaN keeps its payload with the quiet bit set (as `half` does).
#[inline(always)]
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7FFF;
    let exp = em & 0x7C00;
    let normal = (em << 13) + ((127 - 15) << 23);
    let subnormal = (em as f32 * (1.0 / 16_777_216.0)).to_bits(); // em · 2^-24, exact
    let special = (em << 13) | 0x7F80_0000 | if em > 0x7C00 { 0x0040_0000 } else { 0 };
    let bits = if exp == 0 {
        subnormal
    } else if exp == 0x7C00 {
        special
    } else {
        normal
    };
    f32::from_bits(bits | sign)
}

/// binary32 → binary16 bits, round to nearest even (subnormals, overflow to ±inf); a NaN gives `0x7FFF`.
/// (F. Giesen's `float_to_half_fast3_rtne`.)
#[inline(always)]
pub(super) fn f32_to_f16(x: f32) -> u16 {
    const F16_OVERFLOW: u32 = 143 << 23; // 65536: from here on, inf
    const F16_NORMAL: u32 = 113 << 23; // 2^-14, the smallest normal binary16
    const DENORM_MAGIC: u32 = 126 << 23; // 0.5: adding it rounds to a multiple of 2^-24 in its last bits
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let a = bits ^ sign;
    // Normal range: rebias the exponent, round the 13 dropped bits to nearest even.
    let odd = (a >> 13) & 1;
    let normal = a.wrapping_sub((127 - 15) << 23).wrapping_add(0xFFF + odd) >> 13;
    // Subnormal range: let the FPU round at 2^-24.
    let subnormal = (f32::from_bits(a) + f32::from_bits(DENORM_MAGIC)).to_bits().wrapping_sub(DENORM_MAGIC);
    let mut h = if a < F16_NORMAL { subnormal } else { normal };
    h = if a >= F16_OVERFLOW { 0x7C00 } else { h };
    h |= sign >> 16;
    if x.is_nan() {
        crate::math::CANONICAL_NAN_16
    } else {
        h as u16
    }
}

/// bfloat16 bits → binary32, exactly; a NaN gets the quiet bit (as `half` does).
#[inline(always)]
pub(super) fn bf16_to_f32(h: u16) -> f32 {
    let bits = (h as u32) << 16;
    let nan = (bits & 0x7FFF_FFFF) > 0x7F80_0000;
    f32::from_bits(if nan { bits | 0x0040_0000 } else { bits })
}

/// binary32 → bfloat16 bits, round to nearest even; a NaN gives `0x7FFF`.
#[inline(always)]
pub(super) fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16;
    if x.is_nan() {
        crate::math::CANONICAL_NAN_16
    } else {
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math;

    /// Edge values of binary32 and a stride through all 2^32 patterns (the ignored test below takes all).
    fn f32_samples() -> impl Iterator<Item = u32> {
        let edges = [0u32, 1, 0x3FF, 0x400, 0x7F_FFFF, 0x80_0000, 0x3380_0000, 0x3300_0000, 0x3880_0000]
            .into_iter()
            .chain([0x477F_E000, 0x477F_EFFF, 0x477F_F000, 0x477F_F001, 0x4780_0000, 0x7F7F_FFFF, 0x7F80_0000])
            .chain([0x7F80_0001, 0x7FC0_0000, 0x7FFF_FFFF, 0x3F80_8000, 0x3F81_8000, 0x3F80_7FFF]);
        edges.flat_map(|b| [b, b | 0x8000_0000]).chain((0..=u32::MAX).step_by(997))
    }

    #[test]
    fn narrowing_from_f32_matches_the_scalar_conversions() {
        for b in f32_samples() {
            let x = f32::from_bits(b);
            assert_eq!(f32_to_f16(x), math::f32_to_f16(x).to_bits(), "f16 of {b:#x}");
            assert_eq!(f32_to_bf16(x), math::f32_to_bf16(x).to_bits(), "bf16 of {b:#x}");
        }
    }

    #[test]
    fn widening_to_f32_matches_half() {
        for h in 0..=u16::MAX {
            assert_eq!(f16_to_f32(h).to_bits(), f16::from_bits(h).to_f32().to_bits(), "f16 {h:#x}");
            assert_eq!(bf16_to_f32(h).to_bits(), bf16::from_bits(h).to_f32().to_bits(), "bf16 {h:#x}");
        }
    }

    #[test]
    fn narrowing_from_f64_rounds_once() {
        let mut values: Vec<f64> = vec![
            0.0,
            1.0,
            2049.0 + 1e-9,
            1.0 + 2f64.powi(-8) + 2f64.powi(-40),
            65_504.0,
            65_520.0,
            65_519.999_999,
            5.960_464_477_539_063e-8,
            2.98e-8,
            2.980_232_238_769_531_3e-8,
            1e-40,
            f32::MAX as f64,
            3.4e38 * 1.01,
            1e300,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::NAN,
            f64::INFINITY,
            1.0 / 3.0,
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            values.push(f64::from_bits(state));
            values.push((state >> 11) as f64 * 2f64.powi(-53) * 70_000.0); // the binary16 range, densely
        }
        let values: Vec<f64> = values.iter().flat_map(|&v| [v, -v]).collect();
        for &v in &values {
            assert_eq!(round_to_odd(v).to_bits(), math::round_to_odd_f32(v).to_bits(), "{v:e}");
            assert_eq!(<f16 as Lane>::from64(v).to_bits(), math::f64_to_f16(v).to_bits(), "f16 of {v:e}");
            assert_eq!(<bf16 as Lane>::from64(v).to_bits(), math::f64_to_bf16(v).to_bits(), "bf16 of {v:e}");
            let (a, b) = (<f32 as Lane>::from64(v), v as f32);
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "f32 of {v:e}");
        }
    }

    /// Every binary32 pattern: `cargo test --release -p streamdsl --lib every_f32 -- --ignored`.
    #[test]
    #[ignore]
    fn every_f32_narrows_like_the_scalar_conversions() {
        use rayon::prelude::*;
        (0..=u16::MAX).into_par_iter().for_each(|hi| {
            for lo in 0..=u16::MAX {
                let x = f32::from_bits((u32::from(hi) << 16) | u32::from(lo));
                assert_eq!(f32_to_f16(x), math::f32_to_f16(x).to_bits(), "f16 of {x:e}");
                assert_eq!(f32_to_bf16(x), math::f32_to_bf16(x).to_bits(), "bf16 of {x:e}");
            }
        });
    }
}
