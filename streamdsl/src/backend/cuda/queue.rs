//! A CUDA stream as the ops see it: which kernel specialisation each op launches, with which launch shape
//! and arguments.
//!
//! Every function enqueues on the stream through the machine's `submit` with the op's reads and writes, so
//! cross-stream ordering and stream-ordered frees are the machine's job. Arguments are built next to the
//! kernel signatures they match (in `kernels/src/cuda/*.cu`).

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Duration;

use super::launch::Launcher;
use super::machine::CudaMachine;
use crate::backend::{Access, BinaryOp, Kernels, Machine, MatmulDims, Operand, Storage, Work};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::hazard::{Point, SharedLog};
use crate::jit::{KernelSpec, MmTile, REDUCE_BLOCK};
use crate::shape::{broadcast_strides, MAX_DIMS};

/// Stream `stream` of a CUDA machine.
pub(crate) struct Queue<'a> {
    pub machine: &'a Arc<CudaMachine>,
    pub stream: u64,
}

fn arg<V>(v: &mut V) -> *mut c_void {
    (v as *mut V).cast()
}

impl Queue<'_> {
    fn submit_work(&self, op: &'static str, reads: &[&SharedLog], writes: &[&SharedLog], work: Work) -> Result<Point> {
        self.machine.submit(self.stream, op, Access { reads, writes }, work)
    }

    /// Enqueues `body(launcher, input addresses, output address)`, which reads `inputs` and writes `out`.
    fn submit<T: Element, U: Element>(
        &self,
        op: &'static str,
        inputs: &[&Arc<Storage<T>>],
        out: &Arc<Storage<U>>,
        body: impl FnOnce(&Launcher<'_>, &[u64], u64) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let ins = inputs.iter().map(|s| s.device().map(|b| b.ptr())).collect::<Result<Vec<u64>>>()?;
        let dst = out.device()?.ptr();
        let reads: Vec<_> = inputs.iter().map(|s| &s.log).collect();
        self.submit_work(op, &reads, &[&out.log], Work::Device(Box::new(move |l| body(l, &ins, dst))))?;
        Ok(())
    }
}

/// The `Broadcast` struct of `elementwise.cu`, passed by value.
#[repr(C)]
struct Broadcast {
    out_shape: [u64; MAX_DIMS],
    a_stride: [u64; MAX_DIMS],
    b_stride: [u64; MAX_DIMS],
    ndim: i32,
}

fn op_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
    }
}

/// The most blocks a launch may have along grid y and z.
const MAX_GRID_YZ: usize = 65_535;

impl Kernels for Queue<'_> {
    fn alloc<T: Element>(&self, len: usize) -> Result<Storage<T>> {
        let bytes = len.checked_mul(size_of::<T>()).ok_or(Error::InvalidArgument {
            op: "alloc",
            reason: format!("{len} elements of {} overflow the address space", T::DTYPE),
        })?;
        Ok(Storage::from_device(self.machine.alloc(self.stream, bytes)?))
    }

    fn fill<T: Element>(&self, out: &Arc<Storage<T>>, value: T) -> Result<()> {
        let spec = KernelSpec::elementwise(T::DTYPE);
        let n = out.len() as u64;
        self.submit::<T, T>("fill", &[], out, move |l, _, mut dst| {
            let (mut value, mut n) = (value.to_f64(), n);
            // SAFETY: `fill(T* out, double value, u64 n)`; `dst` holds `n` elements written by this op.
            unsafe {
                l.launch(
                    &spec,
                    "fill",
                    (l.blocks_for(n), 1, 1),
                    256,
                    &mut [arg(&mut dst), arg(&mut value), arg(&mut n)],
                )
            }
        })
    }

    fn zero<T: Element>(&self, out: &Arc<Storage<T>>) -> Result<()> {
        let bytes = out.len() * T::DTYPE.size_in_bytes();
        // SAFETY: `dst` is this op's output of `bytes` bytes.
        self.submit::<T, T>("zeros", &[], out, move |l, _, dst| unsafe { l.memset_zero(dst, bytes) })
    }

    fn randn<T: Element>(&self, out: &Arc<Storage<T>>, seed: u64, offset: u64) -> Result<()> {
        let spec = KernelSpec::randn(T::DTYPE);
        let n = out.len() as u64;
        self.submit::<T, T>("randn", &[], out, move |l, _, mut dst| {
            let (mut n, mut seed, mut offset) = (n, seed, offset);
            let grid = l.blocks_for(n.div_ceil(4));
            let args = &mut [arg(&mut dst), arg(&mut n), arg(&mut seed), arg(&mut offset)];
            // SAFETY: `randn(OUT_T* out, u64 n, u64 seed, u64 offset)`; `dst` holds `n` elements.
            unsafe { l.launch(&spec, "randn", (grid, 1, 1), 256, args) }
        })
    }

    fn binary<T: Element>(
        &self,
        op: BinaryOp,
        a: Operand<'_, T>,
        b: Operand<'_, T>,
        out: Operand<'_, T>,
    ) -> Result<()> {
        let spec = KernelSpec::elementwise(T::DTYPE);
        let n = out.storage.len() as u64;
        if a.shape == b.shape {
            return self.submit(op.name(), &[a.storage, b.storage], out.storage, move |l, ins, mut dst| {
                let (mut code, mut pa, mut pb, mut n) = (op_code(op), ins[0], ins[1], n);
                let args = &mut [arg(&mut code), arg(&mut pa), arg(&mut pb), arg(&mut dst), arg(&mut n)];
                // SAFETY: `binary_same(int op, const T* a, const T* b, T* out, u64 n)`; all three hold `n`
                // elements (equal shapes).
                unsafe { l.launch(&spec, "binary_same", (l.blocks_for(n), 1, 1), 256, args) }
            });
        }
        let mut bc = Broadcast {
            out_shape: [1; MAX_DIMS],
            a_stride: [0; MAX_DIMS],
            b_stride: [0; MAX_DIMS],
            ndim: out.shape.len() as i32,
        };
        let (sa, sb) = (broadcast_strides(a.shape, out.shape), broadcast_strides(b.shape, out.shape));
        for d in 0..out.shape.len() {
            bc.out_shape[d] = out.shape[d] as u64;
            bc.a_stride[d] = sa[d] as u64;
            bc.b_stride[d] = sb[d] as u64;
        }
        self.submit(op.name(), &[a.storage, b.storage], out.storage, move |l, ins, mut dst| {
            let (mut code, mut pa, mut pb, mut n, mut bc) = (op_code(op), ins[0], ins[1], n, bc);
            let args = &mut [arg(&mut code), arg(&mut pa), arg(&mut pb), arg(&mut dst), arg(&mut n), arg(&mut bc)];
            // SAFETY: `binary_broadcast(int, const T*, const T*, T*, u64, Broadcast)`; the strides map every
            // output index into the operands' shapes (checked by the op's broadcast rules).
            unsafe { l.launch(&spec, "binary_broadcast", (l.blocks_for(n), 1, 1), 256, args) }
        })
    }

    fn scalar<T: Element>(&self, op: BinaryOp, a: &Arc<Storage<T>>, value: f64, out: &Arc<Storage<T>>) -> Result<()> {
        let spec = KernelSpec::elementwise(T::DTYPE);
        let n = out.len() as u64;
        self.submit(op.name(), &[a], out, move |l, ins, mut dst| {
            let (mut code, mut pa, mut value, mut reversed, mut n) = (op_code(op), ins[0], value, 0i32, n);
            let args =
                &mut [arg(&mut code), arg(&mut pa), arg(&mut value), arg(&mut reversed), arg(&mut dst), arg(&mut n)];
            // SAFETY: `scalar_op(int, const T*, double, int, T*, u64)`; `a` and `out` hold `n` elements.
            unsafe { l.launch(&spec, "scalar_op", (l.blocks_for(n), 1, 1), 256, args) }
        })
    }

    fn copy<T: Element>(&self, src: &Arc<Storage<T>>, dst: &Arc<Storage<T>>) -> Result<()> {
        let spec = KernelSpec::elementwise(T::DTYPE);
        let n = dst.len() as u64;
        self.submit("copy_", &[src], dst, move |l, ins, mut d| {
            let (mut s, mut n) = (ins[0], n);
            // SAFETY: `copy(const T* src, T* dst, u64 n)`; both hold `n` elements (equal shapes).
            unsafe {
                l.launch(&spec, "copy", (l.blocks_for(n), 1, 1), 256, &mut [arg(&mut s), arg(&mut d), arg(&mut n)])
            }
        })
    }

    fn convert<T: Element, U: Element>(&self, a: &Arc<Storage<T>>, out: &Arc<Storage<U>>) -> Result<()> {
        let n = out.len() as u64;
        if T::DTYPE == U::DTYPE {
            let bytes = out.len() * T::DTYPE.size_in_bytes();
            // SAFETY: both are device buffers of `bytes` bytes, read and written by this op.
            return self.submit("to_dtype", &[a], out, move |l, ins, dst| unsafe { l.copy_device(dst, ins[0], bytes) });
        }
        let spec = KernelSpec::convert(T::DTYPE, U::DTYPE);
        self.submit("to_dtype", &[a], out, move |l, ins, mut dst| {
            let (mut src, mut n) = (ins[0], n);
            // SAFETY: `convert(const IN_T* in, OUT_T* out, u64 n)`; both hold `n` elements.
            unsafe {
                l.launch(
                    &spec,
                    "convert",
                    (l.blocks_for(n), 1, 1),
                    256,
                    &mut [arg(&mut src), arg(&mut dst), arg(&mut n)],
                )
            }
        })
    }

    /// `out[0] = scale · Σ a`, deterministic: per-block partial sums in f64, then one block adds them in order.
    /// `out[0] = scale · Σ a` along the fixed tree of `reduce.cu` (the CPU backend's): one launch per level
    /// of `SUM_CHUNK`-element chunks, independent of the device's multiprocessor count.
    fn sum<T: Element>(&self, op: &'static str, a: &Arc<Storage<T>>, scale: f64, out: &Arc<Storage<T>>) -> Result<()> {
        let spec = KernelSpec::reduce(T::DTYPE);
        let n = a.len() as u64;
        let chunk = crate::math::SUM_CHUNK as u64;
        let blocks = move |count: u64| {
            u32::try_from(count.div_ceil(chunk)).map_err(|_| Error::InvalidArgument {
                op,
                reason: format!("{count} elements are more than the CUDA sum's {} chunks of {chunk}", u32::MAX),
            })
        };
        blocks(n)?;
        self.submit(op, &[a], out, move |l, ins, mut dst| {
            // Level 0 reads the tensor; each later level reads the previous level's sums, until one is left.
            let (mut src, mut count, mut entry) = (ins[0], n, "sum_chunks");
            let mut scratch = Vec::new();
            loop {
                let grid = blocks(count)?;
                let mut sums = l.scratch(grid as usize * size_of::<f64>())?;
                scratch.push(sums);
                let mut n = count;
                // SAFETY: `sum_chunks(const T*, u64 n, double* out)` / `sum_chunks_f64(const double*, u64 n,
                // double* out)` read `n` values at `src` (the tensor, or the previous level's `count` sums) and
                // write one sum per block into `sums` (`grid` doubles).
                unsafe {
                    l.launch(
                        &spec,
                        entry,
                        (grid, 1, 1),
                        REDUCE_BLOCK,
                        &mut [arg(&mut src), arg(&mut n), arg(&mut sums)],
                    )?
                };
                (src, count, entry) = (sums, u64::from(grid), "sum_chunks_f64");
                if count == 1 {
                    break;
                }
            }
            let mut scale = scale;
            // SAFETY: `sum_write(const double* total, double scale, T* out)` reads the one sum left and writes
            // `out[0]`; every scratch buffer is freed after, on this stream, once.
            unsafe {
                l.launch(&spec, "sum_write", (1, 1, 1), 1, &mut [arg(&mut src), arg(&mut scale), arg(&mut dst)])?;
                scratch.into_iter().try_for_each(|p| l.free(p))
            }
        })
    }

    fn mm<T: Element>(
        &self,
        a: &Arc<Storage<T>>,
        b: &Arc<Storage<T>>,
        out: &Arc<Storage<T>>,
        d: MatmulDims,
    ) -> Result<()> {
        let (spec, entry, (bm, bn), block) = match T::DTYPE {
            DType::F16 | DType::BF16 => (KernelSpec::mm(T::DTYPE, MmTile::SMALL), "mm_mma", (64, 64), 128),
            DType::F32 | DType::F64 => {
                let tile = MmTile::for_shape(T::DTYPE, d.m, d.n);
                (KernelSpec::mm(T::DTYPE, tile), "mm_tiled", (tile.bm as usize, tile.bn as usize), tile.threads())
            }
        };
        // The kernels index rows and columns with 32-bit ints and tile the rows along grid y: refuse what
        // would not fit rather than compute on wrapped indices.
        let too_large = |reason: String| Error::InvalidArgument { op: "mm", reason };
        let (Ok(m), Ok(n), Ok(k)) = (i32::try_from(d.m), i32::try_from(d.n), i32::try_from(d.k)) else {
            return Err(too_large(format!(
                "the CUDA kernels take dimensions up to {} (got m={}, k={}, n={})",
                i32::MAX,
                d.m,
                d.k,
                d.n
            )));
        };
        if d.m.div_ceil(bm) > MAX_GRID_YZ {
            return Err(too_large(format!(
                "{} rows are more than the CUDA kernel's {} row tiles of {bm}",
                d.m, MAX_GRID_YZ
            )));
        }
        let grid_x = d.n.div_ceil(bn) as u32;
        let grid_y = d.m.div_ceil(bm) as u32;
        let elem = T::DTYPE.size_in_bytes() as u64;
        self.submit("mm", &[a, b], out, move |l, ins, c| {
            let (mut m, mut n, mut k) = (m, n, k);
            let (mut abs, mut bbs) = (d.a_batch_stride as u64, d.b_batch_stride as u64);
            // Grid z is the batch index and holds at most 65,535: longer batches take several launches.
            for first in (0..d.batch).step_by(MAX_GRID_YZ) {
                let count = (d.batch - first).min(MAX_GRID_YZ) as u32;
                let first = first as u64;
                let mut pa = ins[0] + first * abs * elem;
                let mut pb = ins[1] + first * bbs * elem;
                let mut pc = c + first * d.m as u64 * d.n as u64 * elem;
                let args = &mut [
                    arg(&mut pa),
                    arg(&mut pb),
                    arg(&mut pc),
                    arg(&mut m),
                    arg(&mut n),
                    arg(&mut k),
                    arg(&mut abs),
                    arg(&mut bbs),
                ];
                // SAFETY: `mm_*(const T* A, const T* B, T* C, int M, int N, int K, u64 a_batch_stride, u64
                // b_batch_stride)`; the op checked that A holds batch·m·k (or m·k shared), B batch·k·n (or k·n)
                // and C batch·m·n elements, and these launches cover batches `first..first + count`.
                unsafe { l.launch(&spec, entry, (grid_x, grid_y, count), block, args)? };
            }
            Ok(())
        })
    }

    fn upload<T: Element>(&self, data: Vec<T>, out: &Arc<Storage<T>>) -> Result<()> {
        let bytes = data.len() * T::DTYPE.size_in_bytes();
        if data.len() != out.len() {
            return Err(Error::InvalidArgument {
                op: "to_device",
                reason: "the data and the buffer differ in length".into(),
            });
        }
        let dst = out.device()?.ptr();
        let work = Work::Device(Box::new(move |l| {
            // SAFETY: `data` is owned by this closure and dropped only after the call returns; a copy from
            // pageable memory is staged by the driver before the call returns. `dst` holds `bytes` bytes.
            unsafe { l.copy_to_device(dst, data.as_ptr().cast(), bytes) }
        }));
        self.submit_work("to_device", &[], &[&out.log], work)?;
        Ok(())
    }

    /// Waits for the producer first, without holding the stream: a copy into pageable memory returns only
    /// once it has run, so enqueued behind unfinished work it would hold the stream's enqueue lock all that
    /// time.
    fn download<T: Element>(&self, src: &Arc<Storage<T>>) -> Result<Vec<T>> {
        if let Some(producer) = self.machine.last_write(&src.log) {
            self.machine.wait_host(producer)?;
        }
        let n = src.len();
        let mut data: Vec<T> = vec![T::ZERO; n];
        let (dst, from, bytes) = (data.as_mut_ptr() as usize, src.device()?.ptr(), n * T::DTYPE.size_in_bytes());
        // SAFETY: `data` holds `bytes` bytes and outlives the copy: we wait for its point below before
        // returning or dropping it, and touch it only then. `from` holds `bytes` bytes, read by this op.
        let work = Work::Device(Box::new(move |l| unsafe { l.copy_to_host(dst as *mut c_void, from, bytes) }));
        let point = self.submit_work("to_vec", &[&src.log], &[], work)?;
        self.machine.wait_host(point)?;
        Ok(data)
    }

    /// Waits for the work already on the stream first, without holding the stream: the copy into pageable
    /// memory returns only once it has run.
    fn philox_bits(&self, groups: usize, seed: u64, offset: u64) -> Result<Vec<u32>> {
        self.machine.wait_host(self.machine.tail(self.stream))?;
        let spec = KernelSpec::randn(DType::F32);
        let bytes = groups * 4 * size_of::<u32>();
        let mut out = vec![0u32; groups * 4];
        let dst_host = out.as_mut_ptr() as usize;
        let work = Work::Device(Box::new(move |l| {
            let mut buf = l.scratch(bytes.max(4))?;
            let (mut groups, mut seed, mut offset) = (groups as u64, seed, offset);
            let args = &mut [arg(&mut buf), arg(&mut groups), arg(&mut seed), arg(&mut offset)];
            // SAFETY: `philox_bits(u32* out, u64 groups, u64 seed, u64 offset)` writes 4·groups words into the
            // scratch; `out` (4·groups words) outlives the copy: the caller waits for this op's point before
            // using or dropping it; the scratch is freed after the copy, on this stream.
            unsafe {
                l.launch(&spec, "philox_bits", (l.blocks_for(groups), 1, 1), 256, args)?;
                l.copy_to_host(dst_host as *mut c_void, buf, bytes)?;
                l.free(buf)
            }
        }));
        let point = self.submit_work("philox_bits", &[], &[], work)?;
        self.machine.wait_host(point)?;
        Ok(out)
    }

    /// `blocks` one-warp blocks each spinning for `duration` of the GPU's global timer.
    fn busy(&self, duration: Duration, blocks: u32) -> Result<()> {
        let spec = KernelSpec::busy();
        let ns = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let work = Work::Device(Box::new(move |l| {
            let mut ns = ns;
            // SAFETY: `busy(u64 ns)` touches no memory.
            unsafe { l.launch(&spec, "busy", (blocks.max(1), 1, 1), 32, &mut [arg(&mut ns)]) }
        }));
        self.submit_work("busy", &[], &[], work)?;
        Ok(())
    }
}
