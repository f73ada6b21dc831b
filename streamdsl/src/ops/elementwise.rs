//! Elementwise arithmetic: tensor ∘ tensor with NumPy broadcasting, and tensor ∘ scalar.

use std::ops::{Add, Div, Mul, Sub};

use crate::backend::cpu::{self, BinaryOp};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::tensor::Tensor;

/// The broadcast shape of `a` and `b` (NumPy rules: align trailing dimensions; each pair equal or 1).
fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() < rank {
            1
        } else {
            s[i + s.len() - rank]
        }
    };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            (x, y) => Err(Error::ShapeMismatch {
                op,
                lhs: a.to_vec(),
                rhs: b.to_vec(),
                reason: format!("dimension {i} is {x} vs {y}; they must be equal or one of them 1 (broadcasting)"),
            }),
        })
        .collect()
}

fn binary_on<T: Element>(stream: &Stream, op: BinaryOp, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    let shape = broadcast_shape(op.name(), a.shape(), b.shape())?;
    let out = Tensor::alloc(stream, shape.clone())?;
    if stream.device().is_cuda() {
        crate::ops::cuda::binary(stream, op, a, b, &out)?;
        return Ok(out);
    }
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    crate::ops::launch_host(stream, op.name(), &[a, b], &out, move |i, o| {
        cpu::binary(op, i[0], &sa, i[1], &sb, o, &shape)
    })?;
    Ok(out)
}

fn scalar_on<T: Element>(stream: &Stream, op: BinaryOp, a: &Tensor<T>, value: f64) -> Result<Tensor<T>> {
    let out = Tensor::alloc(stream, a.shape().to_vec())?;
    if stream.device().is_cuda() {
        crate::ops::cuda::scalar(stream, op, a, value, &out)?;
    } else {
        crate::ops::launch_host(stream, op.name(), &[a], &out, move |i, o| cpu::scalar(op, i[0], value, false, o))?;
    }
    Ok(out)
}

macro_rules! binary_ops {
    ($($op:ident, $on:ident, $variant:ident, $scalar:ident, $scalar_on:ident, $sym:literal;)*) => {$(
        #[doc = concat!("`a ", $sym, " b` elementwise on `stream`, with NumPy broadcasting.")]
        ///
        /// ```
        /// use streamdsl::prelude::*;
        /// let s = Stream::new(&Device::cpu())?;
        /// let a = Tensor::from_vec(vec![8.0f32, 6.0, 4.0, 2.0], [2, 2], &Device::cpu())?;
        /// let b = Tensor::from_vec(vec![2.0f32, 1.0], [2, 1], &Device::cpu())?;
        #[doc = concat!("let c = ops::", stringify!($on), "(&s, &a, &b)?;")]
        /// assert_eq!(c.shape(), &[2, 2]);
        /// assert!(ops::add_on(&s, &a, &ops::zeros_on::<f32>(&s, [3])?).is_err());
        /// # Ok::<(), streamdsl::Error>(())
        /// ```
        pub fn $on<T: Element>(stream: &Stream, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
            binary_on(stream, BinaryOp::$variant, a, b)
        }

        #[doc = concat!("`a ", $sym, " value` elementwise on `stream`; `value` is rounded to the element type's precision by the arithmetic.")]
        ///
        /// ```
        /// use streamdsl::prelude::*;
        /// let s = Stream::new(&Device::cpu())?;
        /// let a = ops::full_on(&s, [2], 6.0f64)?;
        #[doc = concat!("assert_eq!(ops::", stringify!($scalar_on), "(&s, &a, 2.0)?.to_vec()?, vec![6.0 ", $sym, " 2.0; 2]);")]
        /// # Ok::<(), streamdsl::Error>(())
        /// ```
        pub fn $scalar_on<T: Element>(stream: &Stream, a: &Tensor<T>, value: f64) -> Result<Tensor<T>> {
            scalar_on(stream, BinaryOp::$variant, a, value)
        }

        impl<T: Element> Tensor<T> {
            #[doc = concat!("`self ", $sym, " other` on the current stream; see [`", stringify!($on), "`].")]
            ///
            /// ```
            /// use streamdsl::prelude::*;
            /// let a = full([3], 6.0f32)?;
            #[doc = concat!("assert_eq!(a.", stringify!($op), "(&full([3], 2.0f32)?)?.to_vec()?, vec![6.0 ", $sym, " 2.0; 3]);")]
            /// # Ok::<(), streamdsl::Error>(())
            /// ```
            pub fn $op(&self, other: &Tensor<T>) -> Result<Tensor<T>> {
                $on(&self.current_stream(), self, other)
            }

            #[doc = concat!("`self ", $sym, " value` on the current stream; see [`", stringify!($scalar_on), "`].")]
            ///
            /// ```
            /// use streamdsl::prelude::*;
            #[doc = concat!("assert_eq!(full([2], 6.0f64)?.", stringify!($scalar), "(3.0)?.to_vec()?, vec![6.0 ", $sym, " 3.0; 2]);")]
            /// # Ok::<(), streamdsl::Error>(())
            /// ```
            pub fn $scalar(&self, value: f64) -> Result<Tensor<T>> {
                $scalar_on(&self.current_stream(), self, value)
            }
        }

        impl<T: Element> $variant<&Tensor<T>> for &Tensor<T> {
            type Output = Result<Tensor<T>>;
            fn $op(self, rhs: &Tensor<T>) -> Result<Tensor<T>> {
                self.$op(rhs)
            }
        }

        impl<T: Element> $variant<f64> for &Tensor<T> {
            type Output = Result<Tensor<T>>;
            fn $op(self, rhs: f64) -> Result<Tensor<T>> {
                self.$scalar(rhs)
            }
        }
    )*};
}

binary_ops! {
    add, add_on, Add, add_scalar, add_scalar_on, "+";
    sub, sub_on, Sub, sub_scalar, sub_scalar_on, "-";
    mul, mul_on, Mul, mul_scalar, mul_scalar_on, "*";
    div, div_on, Div, div_scalar, div_scalar_on, "/";
}
