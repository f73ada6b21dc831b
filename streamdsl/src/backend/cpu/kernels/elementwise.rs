//! `+ - * /` of two tensors (with NumPy broadcasting) and of a tensor and a scalar.
//!
//! The operation is a type parameter ([`Arith`]), chosen once per call, so the inner loops are plain
//! element-by-element loops that vectorise. A broadcast is walked one run of the innermost contiguous
//! dimension at a time (after merging the dimensions that are contiguous in both operands), each run one of
//! four loops: both operands contiguous, one of them a repeated value, or both.

use super::for_each_chunk;
use super::lanes::Lane;
use crate::backend::BinaryOp;
use crate::dtype::{DType, Element};
use crate::shape::broadcast_strides;

/// An arithmetic operation in both precisions the kernels compute in: in `f64` it is [`BinaryOp::apply`]
/// (the reference, a constant `match` folded away), in `f32` the same IEEE operation.
trait Arith: Copy + Send + Sync + 'static {
    const OP: BinaryOp;
    fn f32(a: f32, b: f32) -> f32;
    #[inline(always)]
    fn f64(a: f64, b: f64) -> f64 {
        Self::OP.apply(a, b)
    }
}

macro_rules! arith {
    ($name:ident, $op:tt) => {
        #[derive(Clone, Copy)]
        struct $name;
        impl Arith for $name {
            const OP: BinaryOp = BinaryOp::$name;
            #[inline(always)]
            fn f32(a: f32, b: f32) -> f32 {
                a $op b
            }
        }
    };
}
arith!(Add, +);
arith!(Sub, -);
arith!(Mul, *);
arith!(Div, /);

/// Calls `$f::<T, Op>($args)` with the operation type of `$op`.
macro_rules! with_op {
    ($op:expr, $f:ident::<$t:ty>($($args:expr),*)) => {
        match $op {
            BinaryOp::Add => $f::<$t, Add>($($args),*),
            BinaryOp::Sub => $f::<$t, Sub>($($args),*),
            BinaryOp::Mul => $f::<$t, Mul>($($args),*),
            BinaryOp::Div => $f::<$t, Div>($($args),*),
        }
    };
}

/// `x ∘ y` rounded once to `T` (in `f32` for the 32- and 16-bit types: see the module `kernels`).
#[inline(always)]
fn apply<T: Element, O: Arith>(x: T, y: T) -> T {
    if T::DTYPE == DType::F64 {
        T::from64(O::f64(x.to64(), y.to64()))
    } else {
        T::from32(O::f32(x.to32(), y.to32()))
    }
}

/// `out = a ∘ b` with NumPy broadcasting; `out_shape` is the broadcast shape.
pub(crate) fn binary<T: Element>(
    op: BinaryOp,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
    out_shape: &[usize],
) {
    with_op!(op, binary_with::<T>(a, a_shape, b, b_shape, out, out_shape))
}

fn binary_with<T: Element, O: Arith>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out: &mut [T],
    out_shape: &[usize],
) {
    if a_shape == b_shape {
        for_each_chunk(
            out,
            #[inline(always)]
            |start, o| {
                let n = o.len();
                both::<T, O>(&a[start..start + n], &b[start..start + n], o)
            },
        );
        return;
    }
    let plan = Plan::new(a_shape, b_shape, out_shape);
    for_each_chunk(
        out,
        #[inline(always)]
        |start, o| plan.walk::<T, O>(a, b, start, o),
    );
}

#[inline(always)]
fn both<T: Element, O: Arith>(a: &[T], b: &[T], out: &mut [T]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = apply::<T, O>(x, y);
    }
}

#[inline(always)]
fn left_repeated<T: Element, O: Arith>(x: T, b: &[T], out: &mut [T]) {
    for (o, &y) in out.iter_mut().zip(b) {
        *o = apply::<T, O>(x, y);
    }
}

#[inline(always)]
fn right_repeated<T: Element, O: Arith>(a: &[T], y: T, out: &mut [T]) {
    for (o, &x) in out.iter_mut().zip(a) {
        *o = apply::<T, O>(x, y);
    }
}

/// A broadcast, simplified: the output as `outer` dimensions (row-major) times an innermost run of `inner`
/// elements, with each operand's stride per dimension (0 where it is broadcast) and per element of a run
/// (0 or 1).
struct Plan {
    outer: Vec<usize>,
    a_strides: Vec<usize>,
    b_strides: Vec<usize>,
    inner: usize,
    a_step: usize,
    b_step: usize,
}

impl Plan {
    fn new(a_shape: &[usize], b_shape: &[usize], out_shape: &[usize]) -> Plan {
        let sa = broadcast_strides(a_shape, out_shape);
        let sb = broadcast_strides(b_shape, out_shape);
        // (size, a stride, b stride) per dimension, size-1 dimensions dropped, innermost last; a dimension
        // merges into the one inside it where both operands step through them as through one.
        let mut dims: Vec<(usize, usize, usize)> = Vec::new();
        for d in (0..out_shape.len()).rev() {
            let (n, a, b) = (out_shape[d], sa[d], sb[d]);
            if n == 1 {
                continue;
            }
            match dims.last_mut() {
                Some(inner) if a == inner.1 * inner.0 && b == inner.2 * inner.0 => inner.0 *= n,
                _ => dims.push((n, a, b)),
            }
        }
        let (inner, a_step, b_step) = if dims.is_empty() { (1, 0, 0) } else { dims.remove(0) };
        debug_assert!(a_step <= 1 && b_step <= 1, "row-major operands step by 0 or 1 in their last dimension");
        dims.reverse();
        Plan {
            outer: dims.iter().map(|d| d.0).collect(),
            a_strides: dims.iter().map(|d| d.1).collect(),
            b_strides: dims.iter().map(|d| d.2).collect(),
            inner,
            a_step,
            b_step,
        }
    }

    /// Computes `out`, the elements `start..start + out.len()` of the result.
    #[inline(always)]
    fn walk<T: Element, O: Arith>(&self, a: &[T], b: &[T], start: usize, out: &mut [T]) {
        if out.is_empty() {
            return;
        }
        let nd = self.outer.len();
        let mut idx = [0usize; 16];
        let mut idx_vec;
        let idx: &mut [usize] = if nd <= idx.len() {
            &mut idx[..nd]
        } else {
            idx_vec = vec![0; nd];
            &mut idx_vec
        };
        // The first run's position; later runs step the outer index by one.
        let (mut row, mut col) = (start / self.inner, start % self.inner);
        let (mut a_base, mut b_base) = (0, 0);
        for d in (0..nd).rev() {
            idx[d] = row % self.outer[d];
            row /= self.outer[d];
            a_base += idx[d] * self.a_strides[d];
            b_base += idx[d] * self.b_strides[d];
        }
        let mut done = 0;
        while done < out.len() {
            let len = (self.inner - col).min(out.len() - done);
            let o = &mut out[done..done + len];
            let (ia, ib) = (a_base + col * self.a_step, b_base + col * self.b_step);
            match (self.a_step, self.b_step) {
                (1, 1) => both::<T, O>(&a[ia..ia + len], &b[ib..ib + len], o),
                (0, 1) => left_repeated::<T, O>(a[ia], &b[ib..ib + len], o),
                (1, 0) => right_repeated::<T, O>(&a[ia..ia + len], b[ib], o),
                _ => o.fill(apply::<T, O>(a[ia], b[ib])),
            }
            done += len;
            col = 0;
            for d in (0..nd).rev() {
                idx[d] += 1;
                a_base += self.a_strides[d];
                b_base += self.b_strides[d];
                if idx[d] < self.outer[d] {
                    break;
                }
                a_base -= self.a_strides[d] * self.outer[d];
                b_base -= self.b_strides[d] * self.outer[d];
                idx[d] = 0;
            }
        }
    }
}

/// `out = a ∘ s` for a scalar `s` (or `s ∘ a` with `reversed`), in `f64`, rounded once to `T`.
pub(crate) fn scalar<T: Element>(op: BinaryOp, a: &[T], s: f64, reversed: bool, out: &mut [T]) {
    if reversed {
        with_op!(op, scalar_with::<T>(a, s, out, true))
    } else {
        with_op!(op, scalar_with::<T>(a, s, out, false))
    }
}

fn scalar_with<T: Element, O: Arith>(a: &[T], s: f64, out: &mut [T], reversed: bool) {
    // A scalar that `T` holds exactly (2.0, 0.5, 1e3, ...) makes this the elementwise op of two `T` values,
    // which `apply` computes in `f32` with the same one rounding (see the module `kernels`); others need the
    // `f64` arithmetic (`x · (1/3)` in `f64` is not `x · f32(1/3)`).
    let held = T::from64(s);
    if T::DTYPE != DType::F64 && held.to64() == s {
        fn run_held<T: Element, O: Arith, const REVERSED: bool>(a: &[T], y: T, out: &mut [T]) {
            for_each_chunk(
                out,
                #[inline(always)]
                |start, o| {
                    for (o, &x) in o.iter_mut().zip(&a[start..]) {
                        *o = if REVERSED { apply::<T, O>(y, x) } else { apply::<T, O>(x, y) };
                    }
                },
            );
        }
        return if reversed { run_held::<T, O, true>(a, held, out) } else { run_held::<T, O, false>(a, held, out) };
    }
    fn run<T: Element, O: Arith, const REVERSED: bool>(a: &[T], s: f64, out: &mut [T]) {
        for_each_chunk(
            out,
            #[inline(always)]
            |start, o| {
                for (o, &x) in o.iter_mut().zip(&a[start..]) {
                    let x = x.to64();
                    *o = T::from64(if REVERSED { O::f64(s, x) } else { O::f64(x, s) });
                }
            },
        );
    }
    if reversed {
        run::<T, O, true>(a, s, out)
    } else {
        run::<T, O, false>(a, s, out)
    }
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    /// The reference: every operation in `f64`, rounded once (`Element::from_f64`), one element at a time
    /// with the multi-index of each operand.
    fn reference<T: Element>(op: BinaryOp, a: &[T], sa: &[usize], b: &[T], sb: &[usize], so: &[usize]) -> Vec<T> {
        let n: usize = so.iter().product();
        let (ta, tb) = (broadcast_strides(sa, so), broadcast_strides(sb, so));
        (0..n)
            .map(|i| {
                let (mut rem, mut ia, mut ib) = (i, 0, 0);
                for d in (0..so.len()).rev() {
                    let k = rem % so[d];
                    rem /= so[d];
                    ia += k * ta[d];
                    ib += k * tb[d];
                }
                T::from_f64(op.apply(a[ia].to_f64(), b[ib].to_f64()))
            })
            .collect()
    }

    /// Bits, with every NaN one value for f32/f64 (IEEE leaves payloads open; the 16-bit types give 0x7FFF).
    fn bits<T: Element>(v: &[T]) -> Vec<u64> {
        v.iter()
            .map(|x| {
                let w = x.to_f64(); // 0x7FFF widens to one NaN: the 16-bit types are checked exactly
                if w.is_nan() && matches!(T::DTYPE, DType::F32 | DType::F64) {
                    u64::MAX
                } else {
                    w.to_bits()
                }
            })
            .collect()
    }

    /// Edge values (NaN, ±inf, ±0, subnormals of every type, overflow and tie neighbourhoods) and a spread of
    /// ordinary ones, `len` of them.
    fn values<T: Element>(len: usize, salt: u64) -> Vec<T> {
        let edges = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
            1e-40,
            -1e-45,
            5.960_464_477_539_063e-8,
            6.1e-5,
            9.2e-41,
            65_504.0,
            65_520.0,
            -3.0e38,
            3.4e38,
            1e300,
            5e-324,
            2049.0,
            1.0 / 3.0,
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64 ^ salt;
        (0..len)
            .map(|i| {
                if i % 3 == 0 {
                    T::from_f64(edges[(i / 3 + salt as usize) % edges.len()])
                } else {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let m = (state >> 11) as f64 * 2f64.powi(-53) - 0.5;
                    T::from_f64(m * 2f64.powi((state % 40) as i32 - 20))
                }
            })
            .collect()
    }

    fn check_binary<T: Element>(sa: &[usize], sb: &[usize], so: &[usize]) {
        let (na, nb, no): (usize, usize, usize) = (sa.iter().product(), sb.iter().product(), so.iter().product());
        let (a, b) = (values::<T>(na, 1), values::<T>(nb, 2));
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            let mut out = vec![T::ZERO; no];
            binary(op, &a, sa, &b, sb, &mut out, so);
            let want = reference(op, &a, sa, &b, sb, so);
            assert_eq!(bits(&out), bits(&want), "{} {op:?} {sa:?} {sb:?} -> {so:?}", T::DTYPE);
        }
    }

    type Check<'a> = &'a dyn Fn(&[usize], &[usize], &[usize]);

    fn each_type(f: &dyn Fn(Check<'_>)) {
        f(&|a, b, o| check_binary::<f32>(a, b, o));
        f(&|a, b, o| check_binary::<f64>(a, b, o));
        f(&|a, b, o| check_binary::<f16>(a, b, o));
        f(&|a, b, o| check_binary::<bf16>(a, b, o));
    }

    #[test]
    fn same_shapes_match_the_f64_reference() {
        each_type(&|check| {
            for len in [0, 1, 7, 31, 33, 1000, 40_961, 70_001] {
                check(&[len], &[len], &[len]);
            }
        });
    }

    #[test]
    fn broadcasts_match_the_f64_reference() {
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[3, 5], &[5], &[3, 5]),
            (&[3, 5], &[3, 1], &[3, 5]),
            (&[3, 1], &[1, 5], &[3, 5]),
            (&[1], &[7, 9], &[7, 9]),
            (&[7, 9], &[1, 1], &[7, 9]),
            (&[2, 3, 4], &[3, 1], &[2, 3, 4]),
            (&[2, 1, 4], &[3, 4], &[2, 3, 4]),
            (&[5, 1, 1, 3], &[1, 4, 2, 1], &[5, 4, 2, 3]),
            (&[1, 1], &[1], &[1, 1]),
            (&[0, 3], &[3], &[0, 3]),
            (&[257, 129], &[129], &[257, 129]), // above the parallel threshold, odd runs
            (&[129, 257], &[129, 1], &[129, 257]), // repeated value per row, chunks across rows
            (&[3, 40_000], &[1, 40_000], &[3, 40_000]),
        ];
        each_type(&|check| {
            for (a, b, o) in cases {
                check(a, b, o);
                check(b, a, o);
            }
        });
    }

    #[test]
    fn scalars_are_applied_in_f64() {
        fn check<T: Element>() {
            let a = values::<T>(50_003, 3);
            for s in [
                1.0 / 3.0,
                -0.7,
                2.0,
                0.5,
                -3.0,
                0.0,
                -0.0,
                f64::INFINITY,
                f64::NAN,
                1e-310,
                3e38,
                65_519.0,
                65_504.0,
                1e-7,
            ] {
                for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
                    for reversed in [false, true] {
                        let mut out = vec![T::ZERO; a.len()];
                        scalar(op, &a, s, reversed, &mut out);
                        let want: Vec<T> = a
                            .iter()
                            .map(|x| {
                                let x = x.to_f64();
                                T::from_f64(if reversed { op.apply(s, x) } else { op.apply(x, s) })
                            })
                            .collect();
                        assert_eq!(bits(&out), bits(&want), "{} {op:?} {s} reversed {reversed}", T::DTYPE);
                    }
                }
            }
        }
        check::<f32>();
        check::<f64>();
        check::<f16>();
        check::<bf16>();
    }

    #[test]
    fn broadcasting_walks_the_right_elements() {
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]; // [2, 3]
        let b = [10.0f64, 20.0]; // [2, 1]
        let mut out = [0.0f64; 6];
        binary(BinaryOp::Add, &a, &[2, 3], &b, &[2, 1], &mut out, &[2, 3]);
        assert_eq!(out, [11.0, 12.0, 13.0, 24.0, 25.0, 26.0]);
        let c = [100.0f64, 200.0, 300.0]; // [3]
        binary(BinaryOp::Sub, &a, &[2, 3], &c, &[3], &mut out, &[2, 3]);
        assert_eq!(out, [-99.0, -198.0, -297.0, -96.0, -195.0, -294.0]);
    }
}
