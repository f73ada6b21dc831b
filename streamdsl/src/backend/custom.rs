//! Kernels written with `#[kernel]`: what a launch of one carries to a backend (the same description for
//! both), the element types they compute in, and the faults their CPU form reports.
//!
//! The CUDA backend launches the generated CUDA C with arguments built from [`ElementwiseLaunch`] /
//! [`GridLaunchDesc`]; the CPU backend runs the generated Rust, which it receives as a closure. Reads and writes
//! go through the access logs like a built-in op's.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use super::cpu::{Chunk, GridBlock, Lane};
use super::{Operand, Storage};
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::hazard::SharedLog;
use crate::jit::KernelSource;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The float types a kernel computes in: `f32` and `f64`.
pub trait KernelFloat: sealed::Sealed + Copy + Send + Sync + PartialEq + fmt::Debug + 'static {
    /// The element type of the same name.
    const DTYPE: DType;
    /// The value's bits, zero-extended to 64.
    fn bits(self) -> u64;
}

impl KernelFloat for f32 {
    const DTYPE: DType = DType::F32;
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl KernelFloat for f64 {
    const DTYPE: DType = DType::F64;
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// Tensors of `Self` run kernels that compute in `F`: loaded by widening (exact), stored by rounding once.
///
/// `f32`, `f16` and `bf16` tensors run `f32` kernels; every element type runs `f64` kernels. So
/// `#[kernel] fn gelu(x: f32) -> f32` maps `Tensor<f32>`, `Tensor<f16>` and `Tensor<bf16>`, computing in
/// `f32` and rounding each result once to the tensor's type, as the built-in ops do.
///
/// ```
/// use streamdsl::kernel::Compute;
/// use streamdsl::half::f16;
/// assert_eq!(<f16 as Compute<f32>>::widen(f16::from_f32(1.5)), 1.5f32);
/// assert_eq!(<f16 as Compute<f32>>::narrow(1.0 + 1e-4), f16::ONE);
/// ```
#[diagnostic::on_unimplemented(
    message = "tensors of `{Self}` cannot run a kernel that computes in `{F}`",
    label = "a kernel written for `{F}`",
    note = "`f32` kernels take `f32`, `f16` and `bf16` tensors (widened exactly, rounded once); `f64` kernels take \
            any tensor; write the kernel for `f64` or convert the tensor with `to_dtype`"
)]
pub trait Compute<F: KernelFloat>: Element {
    /// The element as the kernel sees it (exact).
    fn widen(self) -> F;
    /// A result rounded once to the element type.
    fn narrow(v: F) -> Self;
}

impl Compute<f32> for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
    #[inline(always)]
    fn narrow(v: f32) -> f32 {
        v
    }
}

impl Compute<f32> for half::f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        Lane::to32(self)
    }
    #[inline(always)]
    fn narrow(v: f32) -> Self {
        Lane::from32(v)
    }
}

impl Compute<f32> for half::bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        Lane::to32(self)
    }
    #[inline(always)]
    fn narrow(v: f32) -> Self {
        Lane::from32(v)
    }
}

impl<T: Element> Compute<f64> for T {
    #[inline(always)]
    fn widen(self) -> f64 {
        self.to_f64()
    }
    #[inline(always)]
    fn narrow(v: f64) -> Self {
        T::from_f64(v)
    }
}

/// Why a kernel's CPU form stopped: it becomes the op's error (and poisons its stream); a kernel never panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    kind: FaultKind,
    thread: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FaultKind {
    Index { slice: &'static str, index: usize, len: usize },
    DivideByZero,
    Overflow,
    Internal(&'static str),
}

impl Fault {
    /// `slice[index]` with `index >= len`.
    pub fn index(slice: &'static str, index: usize, len: usize) -> Fault {
        Fault { kind: FaultKind::Index { slice, index, len }, thread: None }
    }

    /// An integer division or remainder by zero.
    pub fn divide_by_zero() -> Fault {
        Fault { kind: FaultKind::DivideByZero, thread: None }
    }

    /// `MIN / -1` (or `MIN % -1`) of a signed integer.
    pub fn overflow() -> Fault {
        Fault { kind: FaultKind::Overflow, thread: None }
    }

    /// A broken invariant of the generated code (a bug in streamdsl).
    pub fn internal() -> Fault {
        Fault { kind: FaultKind::Internal("the generated code and the runtime disagree"), thread: None }
    }

    /// The fault, in the thread of global index `gid`.
    pub fn at(mut self, gid: u32) -> Fault {
        self.thread.get_or_insert(gid);
        self
    }

    /// Panics with the fault's message: what a `#[kernel(device)]` function called as plain Rust does, as Rust's
    /// own arithmetic and indexing would.
    #[track_caller]
    pub fn panic(self) -> ! {
        panic!("{self}")
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FaultKind::Index { slice, index, len } => {
                write!(f, "index out of bounds: `{slice}` has length {len} but the index is {index}")?
            }
            FaultKind::DivideByZero => write!(f, "attempt to divide by zero")?,
            FaultKind::Overflow => write!(f, "attempt to divide with overflow")?,
            FaultKind::Internal(why) => write!(f, "internal error: {why}")?,
        }
        if let Some(t) = self.thread {
            write!(f, " (in the thread of global index {t})")?;
        }
        Ok(())
    }
}

/// One parameter of an elementwise kernel, in the signature's order.
pub(crate) enum EwInput<'a, T> {
    /// A float parameter: a tensor to map over, or one value for every element (its bits).
    Float { tensor: Option<Operand<'a, T>>, bits: u64 },
    /// An integer or `bool` parameter: one value.
    Scalar { bits: u64 },
}

/// An elementwise kernel's launch: its inputs, its outputs (fresh buffers of `shape`) and its code.
pub(crate) struct ElementwiseLaunch<'a, T> {
    pub source: &'static KernelSource,
    pub inputs: Vec<EwInput<'a, T>>,
    pub outs: Vec<&'a Arc<Storage<T>>>,
    pub shape: &'a [usize],
}

impl<T> ElementwiseLaunch<'_, T> {
    /// Every input tensor's log once, and the outputs'.
    pub(crate) fn logs(&self) -> (Vec<&SharedLog>, Vec<&SharedLog>) {
        let mut reads: Vec<&SharedLog> = Vec::new();
        for input in &self.inputs {
            if let EwInput::Float { tensor: Some(t), .. } = input {
                if !reads.iter().any(|l| Arc::ptr_eq(l, &t.storage.log)) {
                    reads.push(&t.storage.log);
                }
            }
        }
        (reads, self.outs.iter().map(|o| &o.log).collect())
    }
}

/// The CPU form of an elementwise kernel: fills the output chunks from a [`Chunk`] of the inputs.
pub(crate) trait ElementwiseCpu<T>:
    Fn(&Chunk<'_, T>, &mut [&mut [T]]) -> std::result::Result<(), Fault> + Send + Sync + 'static
{
}

impl<T, K> ElementwiseCpu<T> for K where
    K: Fn(&Chunk<'_, T>, &mut [&mut [T]]) -> std::result::Result<(), Fault> + Send + Sync + 'static
{
}

/// The CPU form of a grid kernel: runs the threads of one block.
pub type GridCpu = Arc<dyn Fn(&GridBlock<'_>) -> std::result::Result<(), Fault> + Send + Sync>;

/// A tensor's buffer as a grid kernel's slice, whatever its element type.
pub(crate) trait ErasedStorage: Send + Sync {
    fn log(&self) -> &SharedLog;
    fn len(&self) -> usize;
    fn elem(&self) -> TypeId;
    fn device_ptr(&self) -> Result<u64>;
    /// The host data's address.
    ///
    /// # Safety
    /// As [`Storage::slice_mut`] (`write`) or [`Storage::slice`]: the machine ordered the caller after the
    /// accesses it conflicts with.
    unsafe fn host_ptr(&self, write: bool) -> Result<*mut u8>;
}

impl<E: Element> ErasedStorage for Storage<E> {
    fn log(&self) -> &SharedLog {
        &self.log
    }
    fn len(&self) -> usize {
        Storage::len(self)
    }
    fn elem(&self) -> TypeId {
        TypeId::of::<E>()
    }
    fn device_ptr(&self) -> Result<u64> {
        Ok(self.device()?.ptr())
    }
    unsafe fn host_ptr(&self, write: bool) -> Result<*mut u8> {
        // SAFETY: per this function's contract.
        unsafe {
            if write {
                Ok(self.slice_mut()?.as_mut_ptr().cast())
            } else {
                Ok(self.slice()?.as_ptr().cast_mut().cast())
            }
        }
    }
}

/// One slice parameter of a grid kernel: a tensor's buffer, read (`&[T]`) or written (`&mut [T]`).
pub struct SliceArg {
    pub(crate) storage: Arc<dyn ErasedStorage>,
    pub(crate) write: bool,
    pub(crate) device: crate::device::Device,
}

/// One parameter of a grid kernel, in the signature's order.
pub enum GridParam {
    /// The slice of this index among the launch's slices.
    Slice(usize),
    /// A scalar's bits.
    Scalar(u64),
}

/// A grid kernel's launch.
pub(crate) struct GridLaunchDesc<'a> {
    pub source: &'static KernelSource,
    pub slices: &'a [SliceArg],
    pub params: &'a [GridParam],
    /// Threads that run the body (global indices `0..threads`).
    pub threads: u32,
    pub block: u32,
    pub grid: u32,
}

impl GridLaunchDesc<'_> {
    /// The logs of the slices read and of those written.
    pub(crate) fn logs(&self) -> (Vec<&SharedLog>, Vec<&SharedLog>) {
        let of = |write: bool| self.slices.iter().filter(|s| s.write == write).map(|s| s.storage.log()).collect();
        (of(false), of(true))
    }
}
