//! Elementwise arithmetic: tensor ∘ tensor with NumPy broadcasting, and tensor ∘ scalar.

use std::ops::{Add, Div, Mul, Sub};

use crate::backend::{BinaryOp, Kernels, Queue};
use crate::dtype::Element;
use crate::error::Result;
use crate::shape::broadcast_shape;
use crate::stream::Stream;
use crate::tensor::Tensor;

fn binary_on<T: Element>(stream: &Stream, op: BinaryOp, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    crate::ops::check_devices(stream, op.name(), &[a.device(), b.device()])?;
    let out = Tensor::alloc(stream, broadcast_shape(op.name(), a.shape(), b.shape())?)?;
    let _trace = crate::trace::describe(&[(T::DTYPE, a.shape()), (T::DTYPE, b.shape())], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.binary(op, a.operand(), b.operand(), out.operand()),
        Queue::Cuda(q) => q.binary(op, a.operand(), b.operand(), out.operand()),
    }?;
    Ok(out)
}

fn scalar_on<T: Element>(stream: &Stream, op: BinaryOp, a: &Tensor<T>, value: f64) -> Result<Tensor<T>> {
    crate::ops::check_devices(stream, op.name(), &[a.device()])?;
    let out = Tensor::alloc(stream, a.shape().to_vec())?;
    let _trace = crate::trace::describe(&[(T::DTYPE, a.shape())], Some((T::DTYPE, out.shape())));
    match stream.queue() {
        Queue::Cpu(q) => q.scalar(op, &a.storage, value, &out.storage),
        Queue::Cuda(q) => q.scalar(op, &a.storage, value, &out.storage),
    }?;
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
