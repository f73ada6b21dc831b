//! Element type conversions, rounding once.

use super::for_each_chunk;
use super::lanes::Lane;
use crate::dtype::{DType, Element};

/// `U::from_f64(x.to_f64())` (the CUDA kernel's "through `f64`, rounded once") by the shortest exact path:
/// from `f64`, or to `f64`, or `f32` to `f32`, through `f64`; between the 32- and 16-bit types through `f32`,
/// which holds each of them exactly, so the one rounding is the same.
#[inline(always)]
fn convert_one<T: Element, U: Element>(x: T) -> U {
    if T::DTYPE == DType::F64 || U::DTYPE == DType::F64 || (T::DTYPE == DType::F32 && U::DTYPE == DType::F32) {
        U::from64(x.to64())
    } else {
        U::from32(x.to32())
    }
}

/// `out[i] = U::from(a[i])`, rounding once.
pub(crate) fn convert<T: Element, U: Element>(a: &[T], out: &mut [U]) {
    for_each_chunk(
        out,
        #[inline(always)]
        |start, o| {
            for (o, &x) in o.iter_mut().zip(&a[start..]) {
                *o = convert_one::<T, U>(x);
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    fn check<T: Element, U: Element>(values: &[f64]) {
        let a: Vec<T> = values.iter().map(|&v| T::from_f64(v)).collect();
        let mut out = vec![U::ZERO; a.len()];
        convert(&a, &mut out);
        for (x, y) in a.iter().zip(&out) {
            let want = U::from_f64(x.to_f64());
            let same = want.to_f64().to_bits() == y.to_f64().to_bits()
                || (U::DTYPE != DType::F16 && U::DTYPE != DType::BF16 && want.to_f64().is_nan() && y.to_f64().is_nan());
            assert!(same, "{} -> {}: {x} gave {y}, want {want}", T::DTYPE, U::DTYPE);
        }
    }

    #[test]
    fn every_pair_of_types_rounds_once() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            2049.0 + 1e-9,
            1.0 + 2f64.powi(-8) + 2f64.powi(-40),
            65_504.0,
            65_520.0,
            5.960_464_477_539_063e-8,
            2.98e-8,
            1e-40,
            f32::MAX as f64,
            3.4e38 * 1.01,
            1e300,
            5e-324,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.0 / 3.0,
        ];
        let mut state = 0x853C_49E6_748F_EA9Bu64;
        for _ in 0..40_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            values.push(f64::from_bits(state));
            values.push(((state >> 11) as f64 * 2f64.powi(-53) - 0.5) * 2f64.powi((state % 60) as i32 - 30));
        }
        macro_rules! all_to {
            ($t:ty) => {
                check::<$t, f32>(&values);
                check::<$t, f64>(&values);
                check::<$t, f16>(&values);
                check::<$t, bf16>(&values);
            };
        }
        all_to!(f32);
        all_to!(f64);
        all_to!(f16);
        all_to!(bf16);
    }
}
