//! `#[kernel]`s on the CPU backend: the generated Rust runs as host work on the stream machine, in parallel
//! with rayon: an elementwise kernel over chunks of its outputs, a grid kernel over blocks of threads.
//!
//! A grid kernel's `&mut [T]` slices are written by many threads at once; every access to them is a relaxed
//! atomic load or store ([`SharedSlice`]), so even a kernel whose threads race (as on a GPU) is not undefined
//! behaviour in Rust. Its `&[T]` slices are only read while it runs (a tensor passed as both is refused).

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use super::Machine;
use crate::backend::custom::{
    ElementwiseCpu, ElementwiseLaunch, ErasedStorage, EwInput, Fault, GridCpu, GridLaunchDesc,
};
use crate::backend::{Access, Compute, HostWork, KernelFloat, Storage, Work};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::shape::broadcast_strides;

/// Elements per chunk of an elementwise kernel (the inputs' widened copies fit in L1/L2).
const CHUNK: usize = 1 << 14;
/// Below this many elements or threads, a kernel runs on the stream's worker alone.
const PAR_MIN: usize = 1 << 15;

/// One input of an elementwise kernel as its host work sees it.
struct Input<'a, T> {
    data: &'a [T],
    /// Broadcast strides over the output shape; `None` when the input has the output's shape.
    strides: Option<Vec<usize>>,
}

/// A chunk of an elementwise kernel's index space: `len` elements from `start`.
pub struct Chunk<'a, T> {
    start: usize,
    len: usize,
    inputs: &'a [Option<Input<'a, T>>],
    shape: &'a [usize],
}

impl<'a, T: Element> Chunk<'a, T> {
    /// The chunk's values of parameter `pos`: `value` for every element where the caller gave a value, else the
    /// tensor's elements (broadcast, and widened to `F` in `scratch` unless the tensor holds `F`).
    #[inline]
    pub fn arg<'s, F: KernelFloat>(
        &'s self,
        pos: usize,
        value: Option<F>,
        scratch: &'s mut Vec<F>,
    ) -> std::result::Result<&'s [F], Fault>
    where
        T: Compute<F>,
    {
        if let Some(v) = value {
            scratch.clear();
            scratch.resize(self.len, v);
            return Ok(scratch);
        }
        let input = self.inputs.get(pos).and_then(Option::as_ref).ok_or_else(Fault::internal)?;
        match &input.strides {
            None => {
                let data = input.data.get(self.start..self.start + self.len).ok_or_else(Fault::internal)?;
                if TypeId::of::<T>() == TypeId::of::<F>() {
                    // SAFETY: `T` and `F` are the same type.
                    return Ok(unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<F>(), data.len()) });
                }
                scratch.clear();
                scratch.extend(data.iter().map(|&x| x.widen()));
                Ok(scratch)
            }
            Some(strides) => {
                scratch.clear();
                scratch.reserve(self.len);
                let shape = self.shape;
                // Walk a multi-index alongside the flat one, as the built-in broadcasting kernels do.
                let mut idx = vec![0usize; shape.len()];
                let mut rem = self.start;
                for d in (0..shape.len()).rev() {
                    idx[d] = rem % shape[d];
                    rem /= shape[d];
                }
                let mut at: usize = idx.iter().zip(strides).map(|(i, s)| i * s).sum();
                let last = shape.len() - 1;
                let (extent, step) = (shape[last], strides[last]);
                let mut left = self.len;
                // A run along the innermost dimension at a time: a slice (stride 1) or one value (stride 0).
                while left > 0 {
                    let run = (extent - idx[last]).min(left);
                    match step {
                        0 => {
                            let x = input.data.get(at).ok_or_else(Fault::internal)?.widen();
                            scratch.extend(std::iter::repeat_n(x, run));
                        }
                        1 => {
                            let xs = input.data.get(at..at + run).ok_or_else(Fault::internal)?;
                            scratch.extend(xs.iter().map(|&x| x.widen()));
                        }
                        _ => {
                            for k in 0..run {
                                scratch.push(input.data.get(at + k * step).ok_or_else(Fault::internal)?.widen());
                            }
                        }
                    }
                    left -= run;
                    // Advance the multi-index by `run` (the innermost dimension wraps at most once).
                    idx[last] += run;
                    at += run * step;
                    let mut d = last;
                    while idx[d] == shape[d] && d > 0 {
                        at -= strides[d] * shape[d];
                        idx[d] = 0;
                        d -= 1;
                        idx[d] += 1;
                        at += strides[d];
                    }
                }
                Ok(scratch)
            }
        }
    }
}

fn fault_error(op: &'static str, f: Fault) -> Error {
    Error::OpFailed { op: op.to_string(), message: f.to_string() }
}

/// Enqueues an elementwise kernel's CPU form on `stream`.
pub(crate) fn elementwise<T: Element, K: ElementwiseCpu<T>>(
    machine: &Arc<Machine>,
    stream: u64,
    launch: ElementwiseLaunch<'_, T>,
    kernel: K,
) -> Result<()> {
    let name = launch.source.name();
    let shape = launch.shape.to_vec();
    // Each tensor input with its broadcast strides (none where it has the output's shape).
    type Owned<T> = Option<(Arc<Storage<T>>, Option<Vec<usize>>)>;
    let inputs: Vec<Owned<T>> = launch
        .inputs
        .iter()
        .map(|i| match i {
            EwInput::Float { tensor: Some(t), .. } => {
                let strides = (t.shape != shape.as_slice()).then(|| broadcast_strides(t.shape, &shape));
                Some((Arc::clone(t.storage), strides))
            }
            _ => None,
        })
        .collect();
    let outs: Vec<Arc<Storage<T>>> = launch.outs.iter().map(|o| Arc::clone(o)).collect();
    let (reads, writes) = launch.logs();
    let work: HostWork = Box::new(move || {
        let views = inputs
            .iter()
            .map(|i| match i {
                // SAFETY: the machine runs this after the last write of every input; nothing writes them until it
                // completes.
                Some((s, strides)) => Ok(Some(Input { data: unsafe { s.slice()? }, strides: strides.clone() })),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        // SAFETY: the outputs are fresh buffers of this op, distinct from each other and from every input.
        let mut outs: Vec<&mut [T]> = outs.iter().map(|o| unsafe { o.slice_mut() }).collect::<Result<_>>()?;
        // Large fresh outputs are first touched here: one fault per huge page, as for the built-in ops.
        outs.iter_mut().for_each(|o| super::advise_huge(o));
        let n: usize = shape.iter().product();
        let fma = has_fma();
        let run = |start: usize, chunk: &mut [&mut [T]]| {
            let len = chunk.first().map_or(0, |c| c.len());
            let c = Chunk { start, len, inputs: &views, shape: &shape };
            #[cfg(target_arch = "x86_64")]
            if fma {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                return unsafe { call_with_fma(&kernel, &c, chunk) };
            }
            let _ = fma;
            kernel(&c, chunk)
        };
        let mut chunks: Vec<Vec<&mut [T]>> = (0..n.div_ceil(CHUNK)).map(|_| Vec::with_capacity(outs.len())).collect();
        for out in outs.iter_mut() {
            for (c, piece) in out.chunks_mut(CHUNK).enumerate() {
                chunks[c].push(piece);
            }
        }
        let outcome = if n < PAR_MIN {
            chunks.iter_mut().enumerate().try_for_each(|(c, chunk)| run(c * CHUNK, chunk))
        } else {
            chunks.par_iter_mut().enumerate().try_for_each(|(c, chunk)| run(c * CHUNK, chunk))
        };
        outcome.map_err(|f| fault_error(name, f))
    });
    Machine::submit_host(machine, stream, name, Access { reads: &reads, writes: &writes }, work)
}

/// Whether this CPU has AVX2 and FMA (detected once, cached by std).
fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs a kernel's chunk compiled for AVX2 and FMA: the kernel's code is inlined here, so its explicit
/// `mul_add`s (the portable math library's, the kernel's own) become FMA instructions instead of calls, and its
/// loops use 256-bit vectors. Rust never contracts `a * b + c`, so the results are the same bits.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn call_with_fma<T, K: ElementwiseCpu<T>>(
    kernel: &K,
    chunk: &Chunk<'_, T>,
    outs: &mut [&mut [T]],
) -> std::result::Result<(), Fault> {
    kernel(chunk, outs)
}

/// A slice's host memory for the duration of one grid kernel.
struct View {
    ptr: *mut u8,
    len: usize,
    elem: TypeId,
    write: bool,
}

// SAFETY: the pointers are into buffers the running op owns for its duration; `read` views are only read, and
// `write` views only accessed atomically (see `SharedSlice`).
unsafe impl Send for View {}
// SAFETY: as above.
unsafe impl Sync for View {}

/// One block of a grid kernel's threads on the CPU: its indices and the kernel's slices.
pub struct GridBlock<'a> {
    block: u32,
    block_dim: u32,
    grid_dim: u32,
    active: u32,
    views: &'a [View],
}

impl<'a> GridBlock<'a> {
    /// `block_index()`.
    pub fn block(&self) -> u32 {
        self.block
    }

    /// `block_dim()`.
    pub fn block_dim(&self) -> u32 {
        self.block_dim
    }

    /// `grid_dim()`.
    pub fn grid_dim(&self) -> u32 {
        self.grid_dim
    }

    /// The global index of the block's first thread.
    pub fn first(&self) -> u32 {
        self.block.wrapping_mul(self.block_dim)
    }

    /// How many of the block's threads run the body (the last block of `launch(n)` may have fewer).
    pub fn active(&self) -> u32 {
        self.active
    }

    fn view<E: 'static>(&self, slot: usize, write: bool) -> std::result::Result<&View, Fault> {
        self.views.get(slot).filter(|v| v.elem == TypeId::of::<E>() && v.write == write).ok_or_else(Fault::internal)
    }

    /// Slice parameter `slot`, read-only (`&[E]`).
    pub fn read<E: SliceElem>(&self, slot: usize, name: &'static str) -> std::result::Result<ReadSlice<'_, E>, Fault> {
        let v = self.view::<E>(slot, false)?;
        // SAFETY: a live buffer of `len` elements of `E` (checked above) that nothing writes while the kernel runs.
        let data = unsafe { std::slice::from_raw_parts(v.ptr.cast::<E>().cast_const(), v.len) };
        Ok(ReadSlice { data, name })
    }

    /// Slice parameter `slot`, written (`&mut [E]`).
    pub fn write<E: SliceElem>(
        &self,
        slot: usize,
        name: &'static str,
    ) -> std::result::Result<SharedSlice<'_, E>, Fault> {
        let v = self.view::<E>(slot, true)?;
        Ok(SharedSlice { ptr: v.ptr.cast::<E>(), len: v.len, name, _data: PhantomData })
    }
}

/// A `&[T]` parameter of a grid kernel: indexing checks the bounds.
#[derive(Clone, Copy)]
pub struct ReadSlice<'a, E> {
    data: &'a [E],
    name: &'static str,
}

impl<E: Copy> ReadSlice<'_, E> {
    /// `slice[index]`, or a fault.
    #[inline(always)]
    pub fn get(&self, index: usize) -> std::result::Result<E, Fault> {
        self.data.get(index).copied().ok_or_else(|| Fault::index(self.name, index, self.data.len()))
    }

    /// `slice.len()`.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A `&mut [T]` parameter of a grid kernel, shared by the threads: every access is a relaxed atomic one and
/// checks the bounds.
#[derive(Clone, Copy)]
pub struct SharedSlice<'a, E> {
    ptr: *mut E,
    len: usize,
    name: &'static str,
    _data: PhantomData<&'a [E]>,
}

// SAFETY: accesses are atomic (see `SliceElem`), to a buffer the running op owns.
unsafe impl<E: SliceElem> Send for SharedSlice<'_, E> {}
// SAFETY: as above.
unsafe impl<E: SliceElem> Sync for SharedSlice<'_, E> {}

impl<E: SliceElem> SharedSlice<'_, E> {
    /// `slice[index]`, or a fault.
    #[inline(always)]
    pub fn load(&self, index: usize) -> std::result::Result<E, Fault> {
        if index >= self.len {
            return Err(Fault::index(self.name, index, self.len));
        }
        // SAFETY: in bounds of a live buffer of `E`, accessed only atomically while the kernel runs.
        Ok(unsafe { E::load(self.ptr.add(index)) })
    }

    /// `slice[index] = value`, or a fault.
    #[inline(always)]
    pub fn store(&self, index: usize, value: E) -> std::result::Result<(), Fault> {
        if index >= self.len {
            return Err(Fault::index(self.name, index, self.len));
        }
        // SAFETY: as in `load`.
        unsafe { E::store(self.ptr.add(index), value) };
        Ok(())
    }

    /// `slice.len()`.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The element types of grid kernels' slices (`f32`, `f64`), accessed atomically on the CPU.
pub trait SliceElem: Element + KernelFloat {
    /// Relaxed atomic load.
    ///
    /// # Safety
    /// `p` is valid and aligned, and only accessed atomically meanwhile.
    unsafe fn load(p: *mut Self) -> Self;
    /// Relaxed atomic store.
    ///
    /// # Safety
    /// As [`SliceElem::load`].
    unsafe fn store(p: *mut Self, v: Self);
}

impl SliceElem for f32 {
    #[inline(always)]
    unsafe fn load(p: *mut f32) -> f32 {
        // SAFETY: per the contract (f32 and AtomicU32 have the same size and alignment).
        f32::from_bits(unsafe { AtomicU32::from_ptr(p.cast()) }.load(Ordering::Relaxed))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: f32) {
        // SAFETY: as above.
        unsafe { AtomicU32::from_ptr(p.cast()) }.store(v.to_bits(), Ordering::Relaxed)
    }
}

impl SliceElem for f64 {
    #[inline(always)]
    unsafe fn load(p: *mut f64) -> f64 {
        // SAFETY: per the contract (f64 and AtomicU64 have the same size and alignment on every 64-bit target).
        f64::from_bits(unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Relaxed))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f64, v: f64) {
        // SAFETY: as above.
        unsafe { AtomicU64::from_ptr(p.cast()) }.store(v.to_bits(), Ordering::Relaxed)
    }
}

/// Enqueues a grid kernel's CPU form on `stream`.
pub(crate) fn grid(machine: &Arc<Machine>, stream: u64, launch: GridLaunchDesc<'_>, kernel: GridCpu) -> Result<()> {
    let name = launch.source.name();
    let slices: Vec<(Arc<dyn ErasedStorage>, bool)> =
        launch.slices.iter().map(|s| (Arc::clone(&s.storage), s.write)).collect();
    let (threads, block_dim, grid_dim) = (launch.threads, launch.block, launch.grid);
    let (reads, writes) = launch.logs();
    let work: HostWork = Box::new(move || {
        let views = slices
            .iter()
            .map(|(s, write)| {
                // SAFETY: the machine ordered this op after the last write of what it reads and after every access
                // to what it writes; the launch refused a buffer passed both ways.
                let ptr = unsafe { s.host_ptr(*write)? };
                Ok(View { ptr, len: s.len(), elem: s.elem(), write: *write })
            })
            .collect::<Result<Vec<_>>>()?;
        let run = |block: u32| {
            let first = block as u64 * block_dim as u64;
            let active = (threads as u64 - first).min(block_dim as u64) as u32;
            kernel(&GridBlock { block, block_dim, grid_dim, active, views: &views })
        };
        let blocks = (threads as u64).div_ceil(block_dim as u64) as u32;
        let outcome = if (threads as usize) < PAR_MIN {
            (0..blocks).try_for_each(run)
        } else {
            let per_task = (4096 / block_dim.max(1)).max(1) as usize;
            (0..blocks).into_par_iter().with_min_len(per_task).try_for_each(run)
        };
        outcome.map_err(|f| fault_error(name, f))
    });
    Machine::submit_host(machine, stream, name, Access { reads: &reads, writes: &writes }, work)
}

impl Machine {
    /// Enqueues host work on `stream` behind the waits its accesses need.
    fn submit_host(self: &Arc<Self>, stream: u64, op: &'static str, access: Access<'_>, work: HostWork) -> Result<()> {
        crate::backend::Machine::submit(&**self, stream, op, access, Work::Host(work))?;
        Ok(())
    }
}
