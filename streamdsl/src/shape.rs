//! Tensor shapes: validation and element counts.

use crate::error::{Error, Result};

/// The largest number of dimensions a tensor may have.
pub const MAX_DIMS: usize = 8;

/// Something that names a shape: `[2, 3]`, `vec![2, 3]`, `&[2, 3]`, `(2, 3)` or `()` for a scalar.
///
/// ```
/// use streamdsl::IntoShape;
/// assert_eq!([2, 3].into_shape(), vec![2, 3]);
/// assert_eq!((4, 5, 6).into_shape(), vec![4, 5, 6]);
/// assert_eq!(().into_shape(), Vec::<usize>::new());
/// ```
pub trait IntoShape {
    /// The dimensions, outermost first.
    fn into_shape(self) -> Vec<usize>;
}

impl<const N: usize> IntoShape for [usize; N] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}
impl IntoShape for &[usize] {
    fn into_shape(self) -> Vec<usize> {
        self.to_vec()
    }
}
impl IntoShape for Vec<usize> {
    fn into_shape(self) -> Vec<usize> {
        self
    }
}
impl IntoShape for &Vec<usize> {
    fn into_shape(self) -> Vec<usize> {
        self.clone()
    }
}
impl IntoShape for () {
    fn into_shape(self) -> Vec<usize> {
        Vec::new()
    }
}
impl IntoShape for usize {
    fn into_shape(self) -> Vec<usize> {
        vec![self]
    }
}
impl IntoShape for (usize, usize) {
    fn into_shape(self) -> Vec<usize> {
        vec![self.0, self.1]
    }
}
impl IntoShape for (usize, usize, usize) {
    fn into_shape(self) -> Vec<usize> {
        vec![self.0, self.1, self.2]
    }
}

/// Checks a shape for an element type of `elem_bytes` and returns its element count.
///
/// A zero dimension, more than [`MAX_DIMS`] dimensions, or a byte size that overflows `isize` is an
/// [`Error::InvalidShape`]. The empty shape is a scalar (one element).
pub(crate) fn checked_numel(shape: &[usize], elem_bytes: usize) -> Result<usize> {
    let invalid = |reason: String| Error::InvalidShape { shape: shape.to_vec(), reason };
    if shape.len() > MAX_DIMS {
        return Err(invalid(format!("{} dimensions, at most {MAX_DIMS} are supported", shape.len())));
    }
    if let Some(axis) = shape.iter().position(|&d| d == 0) {
        return Err(invalid(format!("dimension {axis} is zero; tensors must hold at least one element")));
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid("the element count overflows usize".into()))?;
    match numel.checked_mul(elem_bytes) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(numel),
        _ => Err(invalid("the size in bytes overflows the address space".into())),
    }
}

/// The broadcast shape of `a` and `b` (NumPy rules: align trailing dimensions; each pair equal or 1), or
/// [`Error::ShapeMismatch`] naming `op`.
pub(crate) fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
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

/// Row-major strides of `shape`, with 0 where a dimension of size 1 is broadcast to `out`'s.
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; out.len()];
    let lead = out.len() - shape.len();
    let mut stride = 1;
    for (i, &d) in shape.iter().enumerate().rev() {
        strides[lead + i] = if d == 1 { 0 } else { stride };
        stride *= d;
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rejects() {
        assert_eq!(checked_numel(&[], 4).unwrap(), 1);
        assert_eq!(checked_numel(&[3, 7], 4).unwrap(), 21);
        assert!(matches!(checked_numel(&[3, 0], 4), Err(Error::InvalidShape { .. })));
        assert!(matches!(checked_numel(&[usize::MAX, 2], 4), Err(Error::InvalidShape { .. })));
        assert!(matches!(checked_numel(&[1 << 62], 4), Err(Error::InvalidShape { .. })));
        assert!(matches!(checked_numel(&[1; 9], 4), Err(Error::InvalidShape { .. })));
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shape("add", &[2, 1], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shape("add", &[], &[4, 5]).unwrap(), vec![4, 5]);
        assert!(matches!(broadcast_shape("add", &[2, 3], &[4]), Err(Error::ShapeMismatch { op: "add", .. })));
        assert_eq!(broadcast_strides(&[2, 1], &[2, 3]), vec![1, 0]);
        assert_eq!(broadcast_strides(&[3], &[2, 3]), vec![0, 1]);
        assert_eq!(broadcast_strides(&[2, 3], &[2, 3]), vec![3, 1]);
    }
}
