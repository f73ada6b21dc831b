//! Element types: `f32`, `f64`, `half::f16`, `half::bf16`.

use std::fmt;

use half::{bf16, f16};

/// The runtime tag of an element type.
///
/// ```
/// use streamdsl::DType;
/// assert_eq!(DType::F16.size_in_bytes(), 2);
/// assert_eq!(DType::BF16.to_string(), "bf16");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary64.
    F64,
    /// IEEE 754 binary16 (`half::f16`).
    F16,
    /// bfloat16 (`half::bf16`).
    BF16,
}

impl DType {
    /// Bytes per element.
    ///
    /// ```
    /// assert_eq!(streamdsl::DType::F64.size_in_bytes(), 8);
    /// ```
    pub const fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The name used in messages and in the CUDA kernels (`f32`, `f64`, `f16`, `bf16`).
    ///
    /// ```
    /// assert_eq!(streamdsl::DType::F32.as_str(), "f32");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// A type a [`Tensor`](crate::Tensor) can hold: `f32`, `f64`, `half::f16` or `half::bf16`.
///
/// The trait is sealed; arithmetic goes through `f32` for the 16-bit types, as on the GPU.
///
/// ```
/// use streamdsl::{DType, Element};
/// assert_eq!(<half::bf16 as Element>::DTYPE, DType::BF16);
/// assert_eq!(<f32 as Element>::from_f64(1.5), 1.5f32);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a streamdsl element type",
    label = "tensors hold `f32`, `f64`, `half::f16` or `half::bf16`",
    note = "convert the data to one of the supported element types first"
)]
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + PartialEq + PartialOrd + fmt::Debug + fmt::Display + 'static
{
    /// The runtime tag.
    const DTYPE: DType;
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// Round from `f64` to nearest even, once (f16/bf16 too: not through f32; see
    /// [`math::f64_to_f16`](crate::math::f64_to_f16)). A NaN becomes `0x7FFF` in f16/bf16, as on CUDA.
    fn from_f64(v: f64) -> Self;
    /// Widen to `f64` (exact).
    fn to_f64(self) -> f64;
    /// Round from `f32` to nearest even. A NaN becomes `0x7FFF` in f16/bf16, as on CUDA.
    fn from_f32(v: f32) -> Self;
    /// Convert to `f32` (exact for the 16-bit types, rounding for `f64`).
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    const ZERO: Self = f16::ZERO;
    const ONE: Self = f16::ONE;
    #[inline]
    fn from_f64(v: f64) -> Self {
        crate::math::f64_to_f16(v) // rounded once, as the CUDA kernels do
    }
    #[inline]
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        crate::math::f32_to_f16(v) // NaN -> 0x7FFF, as `cvt.rn.f16.f32`
    }
    #[inline]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    const ZERO: Self = bf16::ZERO;
    const ONE: Self = bf16::ONE;
    #[inline]
    fn from_f64(v: f64) -> Self {
        crate::math::f64_to_bf16(v) // rounded once, as the CUDA kernels do
    }
    #[inline]
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    #[inline]
    fn from_f32(v: f32) -> Self {
        crate::math::f32_to_bf16(v) // NaN -> 0x7FFF, as `cvt.rn.bf16.f32`
    }
    #[inline]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_types_round_once_from_f64() {
        // Through f32 (as `half` converts) these round twice and land one step off.
        assert_eq!(<f16 as Element>::from_f64(2049.0 + 1e-9).to_f32(), 2050.0);
        assert_eq!(<bf16 as Element>::from_f64(1.0 + 2f64.powi(-8) + 2f64.powi(-40)).to_f32(), 1.0078125);
        assert_eq!(<f16 as Element>::from_f32(f32::NAN).to_bits(), 0x7FFF);
        assert_eq!(<bf16 as Element>::from_f64(-f64::NAN).to_bits(), 0x7FFF);
    }
}
