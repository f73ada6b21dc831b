//! Support for the code `#[kernel]` generates: the launch of an elementwise kernel, the parameters of a grid
//! kernel, and the scalar operations whose Rust form must match `kernel.cuh` bit for bit. Not public API: names
//! here may change at any time.

use crate::backend::{custom::EwInput, KernelFloat, Kernels, Queue};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::jit::KernelSource;
use crate::math::{exp_f64, log_f64, sincos_f32, sincos_f64, NAN_F32, NAN_F64};
use crate::shape::broadcast_shape;
use crate::stream::Stream;
use crate::tensor::Tensor;

pub use crate::backend::cpu::{Chunk, GridBlock, ReadSlice, SharedSlice, SliceElem};
pub use crate::backend::custom::{Fault, GridParam, SliceArg};

use super::Arg;

/// One parameter of an elementwise kernel's launch, in the signature's order.
pub enum Param<'a, T> {
    /// A float: a tensor, or one value (its bits).
    Float { tensor: Option<&'a Tensor<T>>, bits: u64 },
    /// An integer or `bool`.
    Scalar { bits: u64 },
}

impl<'a, T> Param<'a, T> {
    /// A float parameter.
    pub fn float<F: KernelFloat>(arg: &Arg<'a, F, T>) -> Param<'a, T> {
        match arg {
            Arg::Tensor(t) => Param::Float { tensor: Some(t), bits: 0 },
            Arg::Value(v) => Param::Float { tensor: None, bits: v.bits() },
        }
    }

    /// An integer or `bool` parameter.
    pub fn scalar<S: ScalarBits>(v: S) -> Param<'a, T> {
        Param::Scalar { bits: v.bits() }
    }
}

/// A scalar kernel argument's bits, as the CUDA C reads them from an 8-byte slot.
pub trait ScalarBits: Copy {
    /// The bits, zero-extended (two's complement for signed integers).
    fn bits(self) -> u64;
}

macro_rules! scalar_bits {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl ScalarBits for $t {
            fn bits(self) -> u64 {
                let $v = self;
                $e
            }
        }
    )*};
}

scalar_bits! {
    bool => |v| u64::from(v);
    i32 => |v| u64::from(v as u32);
    u32 => |v| u64::from(v);
    i64 => |v| v as u64;
    u64 => |v| v;
    usize => |v| v as u64;
    isize => |v| v as i64 as u64;
    f32 => |v| u64::from(v.to_bits());
    f64 => |v| v.to_bits();
}

impl GridParam {
    /// A scalar parameter of a grid kernel.
    pub fn scalar<S: ScalarBits>(v: S) -> GridParam {
        GridParam::Scalar(v.bits())
    }
}

impl SliceArg {
    /// A `&[E]` parameter: `t` is read.
    pub fn read<E: SliceElem>(t: &Tensor<E>) -> SliceArg {
        SliceArg { storage: t.storage.clone(), write: false, device: t.device() }
    }

    /// A `&mut [E]` parameter: `t` is written.
    pub fn write<E: SliceElem>(t: &mut Tensor<E>) -> SliceArg {
        SliceArg { storage: t.storage.clone(), write: true, device: t.device() }
    }
}

/// Runs an elementwise kernel: `M` fresh output tensors of the inputs' broadcast shape, on `stream` or else on
/// the current stream of the first tensor's device.
pub fn elementwise<T: Element, const M: usize>(
    stream: Option<&Stream>,
    source: &'static KernelSource,
    params: &[Param<'_, T>],
    cpu: impl Fn(&Chunk<'_, T>, &mut [&mut [T]]) -> std::result::Result<(), Fault> + Send + Sync + 'static,
) -> Result<[Tensor<T>; M]> {
    let name = source.name();
    let tensors: Vec<&Tensor<T>> = params
        .iter()
        .filter_map(|p| match p {
            Param::Float { tensor, .. } => *tensor,
            Param::Scalar { .. } => None,
        })
        .collect();
    let Some(first) = tensors.first() else {
        return Err(Error::InvalidArgument {
            op: name,
            reason: "an elementwise kernel needs at least one tensor argument (every argument is a plain value)".into(),
        });
    };
    let current;
    let stream = match stream {
        Some(s) => s,
        None => {
            current = Stream::current(&first.device());
            &current
        }
    };
    let mut shape = first.shape().to_vec();
    for t in &tensors {
        stream.check_same_device(name, &t.device())?;
        shape = broadcast_shape(name, &shape, t.shape())?;
    }
    let mut outs = Vec::with_capacity(M);
    for _ in 0..M {
        outs.push(Tensor::<T>::alloc(stream, shape.clone())?);
    }
    let inputs = params
        .iter()
        .map(|p| match p {
            Param::Float { tensor, bits } => EwInput::Float { tensor: tensor.map(|t| t.operand()), bits: *bits },
            Param::Scalar { bits } => EwInput::Scalar { bits: *bits },
        })
        .collect();
    let launch = crate::backend::custom::ElementwiseLaunch {
        source,
        inputs,
        outs: outs.iter().map(|t| &t.storage).collect(),
        shape: &shape,
    };
    match stream.queue() {
        Queue::Cpu(q) => q.custom_elementwise(launch, cpu),
        Queue::Cuda(q) => q.custom_elementwise(launch, cpu),
    }?;
    outs.try_into().map_err(|_| Error::InvalidArgument { op: name, reason: "internal: output count".into() })
}

/// The integer types' division and remainder as kernels define them: a fault where Rust would panic.
pub trait KernelInt: Copy + PartialEq {
    /// Zero.
    const ZERO: Self;
    /// `checked_div`.
    fn checked_div_(self, other: Self) -> Option<Self>;
    /// `checked_rem`.
    fn checked_rem_(self, other: Self) -> Option<Self>;
}

macro_rules! kernel_int {
    ($($t:ty),*) => {$(
        impl KernelInt for $t {
            const ZERO: Self = 0;
            #[inline(always)]
            fn checked_div_(self, other: Self) -> Option<Self> {
                self.checked_div(other)
            }
            #[inline(always)]
            fn checked_rem_(self, other: Self) -> Option<Self> {
                self.checked_rem(other)
            }
        }
    )*};
}

kernel_int!(i32, u32, i64, u64, usize, isize);

/// `a / b` of integers: a fault on division by zero and on `MIN / -1`.
#[inline(always)]
pub fn div<I: KernelInt>(a: I, b: I) -> std::result::Result<I, Fault> {
    if b == I::ZERO {
        return Err(Fault::divide_by_zero());
    }
    a.checked_div_(b).ok_or_else(Fault::overflow)
}

/// `a % b` of integers: a fault on division by zero and on `MIN % -1`.
#[inline(always)]
pub fn rem<I: KernelInt>(a: I, b: I) -> std::result::Result<I, Fault> {
    if b == I::ZERO {
        return Err(Fault::divide_by_zero());
    }
    a.checked_rem_(b).ok_or_else(Fault::overflow)
}

macro_rules! float_helpers {
    ($t:ty, $min:ident, $max:ident, $tan:ident, $sincos:ident, $recip:ident, $signum:ident, $nan:ident, $powi:ident) => {
        /// `a.min(b)`: a NaN operand is ignored; between equal operands the first (as `k_min`).
        #[inline(always)]
        pub fn $min(a: $t, b: $t) -> $t {
            if b < a || a.is_nan() {
                b
            } else {
                a
            }
        }

        /// `a.max(b)`: a NaN operand is ignored; between equal operands the first (as `k_max`).
        #[inline(always)]
        pub fn $max(a: $t, b: $t) -> $t {
            if b > a || a.is_nan() {
                b
            } else {
                a
            }
        }

        /// `x.tan()`: sine over cosine of one argument reduction.
        #[inline(always)]
        pub fn $tan(x: $t) -> $t {
            let (s, c) = $sincos(x);
            s / c
        }

        /// `x.recip()`.
        #[inline(always)]
        pub fn $recip(x: $t) -> $t {
            1.0 / x
        }

        /// `x.signum()`, with the canonical NaN.
        #[inline(always)]
        pub fn $signum(x: $t) -> $t {
            if x.is_nan() {
                $nan
            } else {
                (1.0 as $t).copysign(x)
            }
        }

        /// `x.powi(n)` by binary powering (as `k_powi`).
        #[inline(always)]
        pub fn $powi(x: $t, n: i32) -> $t {
            let mut e = n.unsigned_abs();
            let (mut r, mut b): ($t, $t) = (1.0, x);
            while e != 0 {
                if e & 1 == 1 {
                    r *= b;
                }
                b *= b;
                e >>= 1;
            }
            if n < 0 {
                1.0 / r
            } else {
                r
            }
        }
    };
}

float_helpers!(f32, min_f32, max_f32, tan_f32, sincos_f32, recip_f32, signum_f32, NAN_F32, powi_f32);
float_helpers!(f64, min_f64, max_f64, tan_f64, sincos_f64, recip_f64, signum_f64, NAN_F64, powi_f64);

/// `x.powf(y)`: IEEE pow's special cases; an integer exponent up to 64 by binary powering (exact where the result
/// is representable); else `exp(y ln|x|)` in binary64 (as `k_pow`).
#[inline]
pub fn pow_f64(x: f64, y: f64) -> f64 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() {
        return NAN_F64;
    }
    let (ax, ay) = (x.abs(), y.abs());
    let integer = ay >= 4_503_599_627_370_496.0 || y.trunc() == y;
    if integer && ay <= 64.0 {
        return powi_f64(x, y as i32);
    }
    let odd = integer && ay < 9_007_199_254_740_992.0 && ay % 2.0 == 1.0;
    let negative = x.is_sign_negative();
    if negative && !integer && ax != 0.0 && ax != f64::INFINITY {
        return NAN_F64;
    }
    let sign = if negative && odd { -1.0 } else { 1.0 };
    if ax == 0.0 {
        return if y < 0.0 { sign * f64::INFINITY } else { sign * 0.0 };
    }
    if ax == f64::INFINITY {
        return if y < 0.0 { sign * 0.0 } else { sign * f64::INFINITY };
    }
    if ay == f64::INFINITY {
        if ax == 1.0 {
            return 1.0;
        }
        return if (ax < 1.0) == (y < 0.0) { f64::INFINITY } else { 0.0 };
    }
    let r = exp_f64(y * log_f64(ax));
    if sign < 0.0 {
        -r
    } else {
        r
    }
}

/// `x.powf(y)` in binary32: the binary64 result rounded once.
#[inline]
pub fn pow_f32(x: f32, y: f32) -> f32 {
    let r = pow_f64(f64::from(x), f64::from(y));
    if r.is_nan() {
        NAN_F32
    } else {
        r as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow_follows_ieee_special_cases() {
        assert_eq!(pow_f64(2.0, 10.0), 1024.0);
        assert_eq!(pow_f64(-2.0, 3.0), -8.0);
        assert_eq!(pow_f64(-2.0, 2.0), 4.0);
        assert!(pow_f64(-2.0, 0.5).is_nan());
        assert_eq!(pow_f64(f64::NAN, 0.0), 1.0);
        assert_eq!(pow_f64(1.0, f64::NAN), 1.0);
        assert_eq!(pow_f64(-0.0, -3.0), f64::NEG_INFINITY);
        assert_eq!(pow_f64(0.0, -2.0), f64::INFINITY);
        assert_eq!(pow_f64(-1.0, f64::INFINITY), 1.0);
        assert_eq!(pow_f64(0.5, f64::INFINITY), 0.0);
        assert_eq!(pow_f64(f64::NEG_INFINITY, 3.0), f64::NEG_INFINITY);
        assert_eq!(pow_f32(3.0, 4.0), 81.0);
        assert_eq!(pow_f64(10.0, 15.0), 1e15);
        assert_eq!(pow_f64(2.0, -3.0), 0.125);
        assert!((pow_f64(2.0, 0.5) - std::f64::consts::SQRT_2).abs() <= 4.0 * f64::EPSILON);
        assert!((pow_f32(2.0, 0.5) - std::f32::consts::SQRT_2).abs() <= f32::EPSILON);
        assert_eq!(powi_f32(3.0, 5), 243.0);
        assert_eq!(powi_f64(2.0, -2), 0.25);
        assert_eq!(div(7i32, 2).unwrap(), 3);
        assert!(div(1u32, 0).is_err());
        assert!(rem(i32::MIN, -1).is_err());
        assert_eq!(min_f32(f32::NAN, 1.0), 1.0);
        assert_eq!(max_f64(1.0, f64::NAN), 1.0);
        assert_eq!(signum_f32(-0.0), -1.0);
    }
}
