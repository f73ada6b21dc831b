//! The CUDA side of each op: which kernel specialisation, which launch shape, which arguments.
//!
//! Every function enqueues on `stream` through [`Stream::submit`] with the op's reads and writes, so
//! cross-stream ordering and stream-ordered frees are the machine's job. Arguments are built next to the
//! kernel signatures they match (in `kernels/src/cuda/*.cu`).

use std::ffi::c_void;

use crate::backend::cpu::{broadcast_strides, BinaryOp, MatmulDims};
use crate::backend::cuda::Launcher;
use crate::backend::Work;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::jit::{KernelSpec, MmTile, REDUCE_BLOCK};
use crate::shape::MAX_DIMS;
use crate::stream::Stream;
use crate::tensor::Tensor;

fn arg<V>(v: &mut V) -> *mut c_void {
    (v as *mut V).cast()
}

/// Enqueues `body(launcher, input pointers, output pointer)` reading `inputs` and writing `out`.
fn submit<T: Element, U: Element>(
    stream: &Stream,
    op: &'static str,
    inputs: &[&Tensor<T>],
    out: &Tensor<U>,
    body: impl FnOnce(&Launcher<'_>, &[u64], u64) -> Result<()> + Send + 'static,
) -> Result<()> {
    for t in inputs {
        stream.check_same_device(op, &t.device())?;
    }
    stream.check_same_device(op, &out.device())?;
    let ins = inputs.iter().map(|t| t.storage.device_ptr()).collect::<Result<Vec<u64>>>()?;
    let dst = out.storage.device_ptr()?;
    let reads: Vec<_> = inputs.iter().map(|t| &t.storage.log).collect();
    stream.submit(op, &reads, &[&out.storage.log], Work::Device(Box::new(move |l| body(l, &ins, dst))))?;
    Ok(())
}

pub(crate) fn fill<T: Element>(stream: &Stream, out: &Tensor<T>, value: T) -> Result<()> {
    let spec = KernelSpec::elementwise(T::DTYPE);
    let n = out.numel() as u64;
    submit::<T, T>(stream, "fill", &[], out, move |l, _, mut dst| {
        let (mut value, mut n) = (value.to_f64(), n);
        l.launch(&spec, "fill", (l.blocks_for(n), 1, 1), 256, &mut [arg(&mut dst), arg(&mut value), arg(&mut n)])
    })
}

pub(crate) fn zero<T: Element>(stream: &Stream, out: &Tensor<T>) -> Result<()> {
    let bytes = out.numel() * T::DTYPE.size_in_bytes();
    submit::<T, T>(stream, "zeros", &[], out, move |l, _, dst| l.memset_zero(dst, bytes))
}

pub(crate) fn randn<T: Element>(stream: &Stream, out: &Tensor<T>, seed: u64, offset: u64) -> Result<()> {
    let spec = KernelSpec::randn(T::DTYPE);
    let n = out.numel() as u64;
    submit::<T, T>(stream, "randn", &[], out, move |l, _, mut dst| {
        let (mut n, mut seed, mut offset) = (n, seed, offset);
        let grid = l.blocks_for(n.div_ceil(4));
        l.launch(&spec, "randn", (grid, 1, 1), 256, &mut [arg(&mut dst), arg(&mut n), arg(&mut seed), arg(&mut offset)])
    })
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

pub(crate) fn binary<T: Element>(
    stream: &Stream,
    op: BinaryOp,
    a: &Tensor<T>,
    b: &Tensor<T>,
    out: &Tensor<T>,
) -> Result<()> {
    let spec = KernelSpec::elementwise(T::DTYPE);
    let n = out.numel() as u64;
    if a.shape() == b.shape() {
        return submit(stream, op.name(), &[a, b], out, move |l, ins, mut dst| {
            let (mut code, mut pa, mut pb, mut n) = (op_code(op), ins[0], ins[1], n);
            let args = &mut [arg(&mut code), arg(&mut pa), arg(&mut pb), arg(&mut dst), arg(&mut n)];
            l.launch(&spec, "binary_same", (l.blocks_for(n), 1, 1), 256, args)
        });
    }
    let out_shape = out.shape();
    let mut bc = Broadcast {
        out_shape: [1; MAX_DIMS],
        a_stride: [0; MAX_DIMS],
        b_stride: [0; MAX_DIMS],
        ndim: out_shape.len() as i32,
    };
    let (sa, sb) = (broadcast_strides(a.shape(), out_shape), broadcast_strides(b.shape(), out_shape));
    for d in 0..out_shape.len() {
        bc.out_shape[d] = out_shape[d] as u64;
        bc.a_stride[d] = sa[d] as u64;
        bc.b_stride[d] = sb[d] as u64;
    }
    submit(stream, op.name(), &[a, b], out, move |l, ins, mut dst| {
        let (mut code, mut pa, mut pb, mut n, mut bc) = (op_code(op), ins[0], ins[1], n, bc);
        let args = &mut [arg(&mut code), arg(&mut pa), arg(&mut pb), arg(&mut dst), arg(&mut n), arg(&mut bc)];
        l.launch(&spec, "binary_broadcast", (l.blocks_for(n), 1, 1), 256, args)
    })
}

pub(crate) fn scalar<T: Element>(
    stream: &Stream,
    op: BinaryOp,
    a: &Tensor<T>,
    value: f64,
    out: &Tensor<T>,
) -> Result<()> {
    let spec = KernelSpec::elementwise(T::DTYPE);
    let n = out.numel() as u64;
    submit(stream, op.name(), &[a], out, move |l, ins, mut dst| {
        let (mut code, mut pa, mut value, mut reversed, mut n) = (op_code(op), ins[0], value, 0i32, n);
        let args = &mut [arg(&mut code), arg(&mut pa), arg(&mut value), arg(&mut reversed), arg(&mut dst), arg(&mut n)];
        l.launch(&spec, "scalar_op", (l.blocks_for(n), 1, 1), 256, args)
    })
}

pub(crate) fn copy<T: Element>(stream: &Stream, src: &Tensor<T>, dst: &Tensor<T>) -> Result<()> {
    let spec = KernelSpec::elementwise(T::DTYPE);
    let n = dst.numel() as u64;
    submit(stream, "copy_", &[src], dst, move |l, ins, mut d| {
        let (mut s, mut n) = (ins[0], n);
        l.launch(&spec, "copy", (l.blocks_for(n), 1, 1), 256, &mut [arg(&mut s), arg(&mut d), arg(&mut n)])
    })
}

pub(crate) fn convert<T: Element, U: Element>(stream: &Stream, a: &Tensor<T>, out: &Tensor<U>) -> Result<()> {
    let n = out.numel() as u64;
    if T::DTYPE == U::DTYPE {
        let bytes = out.numel() * T::DTYPE.size_in_bytes();
        return submit(stream, "to_dtype", &[a], out, move |l, ins, dst| {
            // SAFETY: both are device buffers of `bytes` bytes; the D2D copy is enqueued on this stream.
            let (src, dst) = (ins[0], dst);
            l.copy_device(dst, src, bytes)
        });
    }
    let spec = KernelSpec::convert(T::DTYPE, U::DTYPE);
    submit(stream, "to_dtype", &[a], out, move |l, ins, mut dst| {
        let (mut src, mut n) = (ins[0], n);
        l.launch(&spec, "convert", (l.blocks_for(n), 1, 1), 256, &mut [arg(&mut src), arg(&mut dst), arg(&mut n)])
    })
}

/// `out[0] = scale · Σ a`, deterministic: per-block partial sums in f64, then one block adds them in order.
pub(crate) fn sum<T: Element>(
    stream: &Stream,
    op: &'static str,
    a: &Tensor<T>,
    scale: f64,
    out: &Tensor<T>,
) -> Result<()> {
    let spec = KernelSpec::reduce(T::DTYPE);
    let n = a.numel() as u64;
    submit(stream, op, &[a], out, move |l, ins, mut dst| {
        let blocks = l.blocks_for(n);
        let mut partial = l.scratch(blocks as usize * size_of::<f64>())?;
        let (mut src, mut n, mut count, mut scale) = (ins[0], n, u64::from(blocks), scale);
        l.launch(
            &spec,
            "sum_partial",
            (blocks, 1, 1),
            REDUCE_BLOCK,
            &mut [arg(&mut src), arg(&mut n), arg(&mut partial)],
        )?;
        let args = &mut [arg(&mut partial), arg(&mut count), arg(&mut scale), arg(&mut dst)];
        l.launch(&spec, "sum_final", (1, 1, 1), REDUCE_BLOCK, args)?;
        l.free(partial)
    })
}

/// The most blocks a launch may have along grid y and z.
const MAX_GRID_YZ: usize = 65_535;

pub(crate) fn mm<T: Element>(
    stream: &Stream,
    a: &Tensor<T>,
    b: &Tensor<T>,
    out: &Tensor<T>,
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
    let too_large = |reason: String| crate::Error::InvalidArgument { op: "mm", reason };
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
    submit(stream, "mm", &[a, b], out, move |l, ins, c| {
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
            l.launch(&spec, entry, (grid_x, grid_y, count), block, args)?;
        }
        Ok(())
    })
}

/// Holds `stream` busy: `blocks` one-warp blocks each spinning for `ns` nanoseconds (touches no tensor).
pub(crate) fn busy(stream: &Stream, ns: u64, blocks: u32) -> Result<()> {
    let spec = KernelSpec::busy();
    let work = Work::Device(Box::new(move |l| {
        let mut ns = ns;
        l.launch(&spec, "busy", (blocks, 1, 1), 32, &mut [arg(&mut ns)])
    }));
    stream.submit("busy", &[], &[], work)?;
    Ok(())
}

/// Copies a host tensor into a new device tensor on `stream`.
pub(crate) fn upload<T: Element>(stream: &Stream, host: &Tensor<T>) -> Result<Tensor<T>> {
    let out = Tensor::alloc(stream, host.shape().to_vec())?;
    let storage = std::sync::Arc::clone(&host.storage);
    let bytes = host.numel() * T::DTYPE.size_in_bytes();
    let dst = out.storage.device_ptr()?;
    stream.submit(
        "to_device",
        &[],
        &[&out.storage.log],
        Work::Device(Box::new(move |l| {
            // SAFETY: `host` is a host tensor nothing else writes (it was just made, or the caller read it after
            // its producer); pageable copies return once the source has been staged.
            let src = unsafe { storage.slice()? };
            unsafe { l.copy_to_device(dst, src.as_ptr().cast(), bytes) }
        })),
    )?;
    Ok(out)
}

/// Copies a device tensor to the host, waiting only for its producer (on a transient stream).
pub(crate) fn download<T: Element>(t: &Tensor<T>) -> Result<Vec<T>> {
    let device = t.device();
    // Wait for the producer first, without holding the machine: a copy into pageable memory returns only
    // once it has run, so enqueued behind unfinished work it would hold the machine's lock all that time.
    let machine = device.machine()?;
    if let Some(producer) = machine.last_write(&t.storage.log) {
        machine.wait_host(producer)?;
    }
    let reader = Stream::create(device, device.priority_range().1)?;
    let n = t.numel();
    let mut data: Vec<T> = vec![T::ZERO; n];
    let (dst, src, bytes) = (data.as_mut_ptr() as usize, t.storage.device_ptr()?, n * T::DTYPE.size_in_bytes());
    let point = reader.submit(
        "to_vec",
        &[&t.storage.log],
        &[],
        // SAFETY: `data` outlives the copy: we wait for its point below before returning or dropping it.
        Work::Device(Box::new(move |l| unsafe { l.copy_to_host(dst as *mut c_void, src, bytes) })),
    )?;
    reader.machine().wait_host(point)?;
    Ok(data)
}

/// The raw Philox words of `groups` counters, computed by the `philox_bits` kernel.
pub(crate) fn philox_bits(stream: &Stream, groups: usize, seed: u64, offset: u64) -> Result<Vec<u32>> {
    let spec = KernelSpec::randn(DType::F32);
    let bytes = groups * 4 * size_of::<u32>();
    let mut out = vec![0u32; groups * 4];
    let dst_host = out.as_mut_ptr() as usize;
    let point = stream.submit(
        "philox_bits",
        &[],
        &[],
        Work::Device(Box::new(move |l| {
            let mut buf = l.scratch(bytes.max(4))?;
            let (mut groups, mut seed, mut offset) = (groups as u64, seed, offset);
            let args = &mut [arg(&mut buf), arg(&mut groups), arg(&mut seed), arg(&mut offset)];
            l.launch(&spec, "philox_bits", (l.blocks_for(groups), 1, 1), 256, args)?;
            // SAFETY: `out` outlives the copy: the caller waits for this op's point before using or dropping it.
            unsafe { l.copy_to_host(dst_host as *mut c_void, buf, bytes)? };
            l.free(buf)
        })),
    )?;
    stream.machine().wait_host(point)?;
    Ok(out)
}
