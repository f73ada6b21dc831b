//! CPU compute kernels. They run on a stream's worker and parallelise inside with rayon (and faer, for `mm`).
//!
//! Each kernel gives the bits the CUDA kernels give (the README's "Numerics"; `tests/backends.rs` compares
//! them on the simulated driver):
//!
//! - Elementwise `+ - * /` of two tensors: `f64` in `f64`; `f32`, `f16` and `bf16` in `f32`, rounded once to
//!   the element type. That equals the CUDA kernels' "in `f64`, rounded once": for these four operations a
//!   result rounded to a format of `p'` bits and then to one of `p <= (p' - 2) / 2` bits is the result rounded
//!   once to `p` bits (f32 carries 24 ≥ 2·11 + 2 bits; f64 53 ≥ 2·24 + 2), so every path is the correctly
//!   rounded result.
//! - With a scalar (an `f64`): in `f64`, rounded once, for every element type (`x · (1/3)` in `f64` is not
//!   `x · f32(1/3)`).
//! - Conversions round once; reductions follow the fixed tree of `crate::math` (`chunk_sum`).
//!
//! The loops are written per element, without branches (`lanes`), and run inside [`vectorized`], which
//! compiles them for the widest SIMD the CPU has (AVX2+FMA or AVX-512 on x86-64, checked once at run time
//! by `pulp`) so that LLVM vectorises them; `randn` uses explicit AVX2 lanes (`crate::math::vector`). Work
//! above [`PAR_MIN`] elements is split into fixed chunks run by rayon; the result never depends on the number
//! of threads.

mod convert;
mod elementwise;
mod lanes;
mod matmul;
mod pages;
mod randn;
mod reduce;

pub(crate) use convert::convert;
pub(crate) use elementwise::{binary, scalar};
pub(crate) use lanes::Lane;
pub(crate) use matmul::matmul;
pub(crate) use pages::advise_huge;
pub(crate) use randn::randn;
pub(crate) use reduce::sum;

use rayon::prelude::*;

use crate::dtype::Element;

/// Below this many elements, work stays on the stream's worker thread.
const PAR_MIN: usize = 1 << 15;

/// Elements per rayon task of the elementwise kernels (64 KiB of `f32`).
const CHUNK: usize = 1 << 14;

/// Runs `f(first, chunk)` over `out` in chunks of [`CHUNK`] elements (in parallel above [`PAR_MIN`]), each
/// inside [`vectorized`]. The output's pages are asked to be huge first (see `pages`).
fn for_each_chunk<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
    pages::advise_huge(out);
    if out.len() < PAR_MIN {
        vectorized(
            #[inline(always)]
            || f(0, out),
        );
    } else {
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| {
            vectorized(
                #[inline(always)]
                || f(i * CHUNK, c),
            )
        });
    }
}

/// Runs `f` compiled for the best instruction set this CPU has (pulp's run-time dispatch: AVX-512 or
/// AVX2+FMA on x86-64, else the baseline), so the loops inlined into it vectorise for that set.
/// `f` must be `#[inline(always)]` (a closure marked so) for its body to be compiled with those features.
#[inline(always)]
pub(super) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    struct Op<F>(F);
    impl<R, F: FnOnce() -> R> pulp::WithSimd for Op<F> {
        type Output = R;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> R {
            (self.0)()
        }
    }
    pulp::Arch::new().dispatch(Op(f))
}

/// `out[i] = value`.
pub(crate) fn fill<T: Element>(out: &mut [T], value: T) {
    for_each_chunk(out, |_, c| c.fill(value));
}

/// `out[i] = src[i]` (the same length), in parallel above [`PAR_MIN`].
pub(crate) fn copy<T: Element>(src: &[T], out: &mut [T]) {
    assert_eq!(src.len(), out.len());
    for_each_chunk(out, |start, c| c.copy_from_slice(&src[start..start + c.len()]));
}
