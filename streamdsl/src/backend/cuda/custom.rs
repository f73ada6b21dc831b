//! `#[kernel]`s on the CUDA backend: the generated CUDA C, compiled by NVRTC per element type (and cached like
//! the built-in kernels), launched with arguments built here next to the signatures `lower_cuda` writes:
//!
//! - elementwise `name_contiguous(params…, T* k_out0…, u64 k_n)` and `name_broadcast(…, KBroadcast<N> k_bc)`:
//!   each float parameter is `const T* in_x, F val_x` (a null pointer when a value is given), each integer or
//!   `bool` parameter its value; a grid-stride loop of 256-thread blocks;
//! - grid `name(slices as T* x, u64 k_len_x; scalars…; u32 k_n)`: `grid` blocks of `block` threads, of which the
//!   first `k_n` run the body.

use std::ffi::c_void;
use std::sync::Arc;

use super::machine::CudaMachine;
use crate::backend::custom::{ElementwiseLaunch, EwInput, GridLaunchDesc, GridParam};
use crate::backend::{Access, Machine, Work};
use crate::dtype::Element;
use crate::error::Result;
use crate::shape::{broadcast_strides, MAX_DIMS};

/// Enqueues an elementwise kernel on `stream`.
pub(crate) fn elementwise<T: Element>(
    machine: &Arc<CudaMachine>,
    stream: u64,
    launch: ElementwiseLaunch<'_, T>,
) -> Result<()> {
    let spec = launch.source.spec(T::DTYPE)?;
    let shape = launch.shape;
    let contiguous = launch.inputs.iter().all(|i| match i {
        EwInput::Float { tensor: Some(t), .. } => t.shape == shape,
        _ => true,
    });
    let n: u64 = shape.iter().product::<usize>() as u64;
    // One buffer per argument (8-byte slots; a 4-byte value sits in the low bytes, as on a little-endian GPU).
    let mut args: Vec<Vec<u64>> = Vec::new();
    let mut strides: Vec<Vec<usize>> = Vec::new();
    for input in &launch.inputs {
        match input {
            EwInput::Float { tensor, bits, .. } => {
                let ptr = match tensor {
                    Some(t) => t.storage.device()?.ptr(),
                    None => 0,
                };
                args.push(vec![ptr]);
                args.push(vec![*bits]);
                strides.push(match tensor {
                    Some(t) => broadcast_strides(t.shape, shape),
                    None => vec![0; shape.len()],
                });
            }
            EwInput::Scalar { bits } => args.push(vec![*bits]),
        }
    }
    for out in &launch.outs {
        args.push(vec![out.device()?.ptr()]);
    }
    args.push(vec![n]);
    let entries = launch.source.entry_points();
    let entry = if contiguous {
        entries.first().cloned().unwrap_or_default()
    } else {
        // `KBroadcast<N>`: u64 shape[8]; u64 stride[N][8]; int ndim (padded to 8 bytes).
        let rows = strides.len().max(1);
        let mut bc = vec![1u64; MAX_DIMS];
        bc.resize(MAX_DIMS + rows * MAX_DIMS, 0);
        for (d, &extent) in shape.iter().enumerate() {
            bc[d] = extent as u64;
        }
        for (j, s) in strides.iter().enumerate() {
            for (d, &stride) in s.iter().enumerate() {
                bc[MAX_DIMS + j * MAX_DIMS + d] = stride as u64;
            }
        }
        bc.push(shape.len() as u64);
        args.push(bc);
        entries.get(1).cloned().unwrap_or_default()
    };
    let (reads, writes) = launch.logs();
    let work = Work::Device(Box::new(move |l| {
        let mut ptrs: Vec<*mut c_void> = args.iter_mut().map(|a| a.as_mut_ptr().cast()).collect();
        // SAFETY: `args` holds one buffer per parameter of the entry `lower_cuda` generated, in its order and
        // sizes (see the module docs); the pointers address this op's inputs (of their shapes, which the
        // strides map into) and outputs (`n` elements each).
        unsafe { l.launch(&spec, &entry, (l.blocks_for(n), 1, 1), 256, &mut ptrs) }
    }));
    machine.submit(stream, launch.source.name(), Access { reads: &reads, writes: &writes }, work)?;
    Ok(())
}

/// Enqueues a grid kernel on `stream`.
pub(crate) fn grid(machine: &Arc<CudaMachine>, stream: u64, launch: GridLaunchDesc<'_>) -> Result<()> {
    let spec = launch.source.spec(crate::dtype::DType::F32)?;
    let entry = launch.source.entry_points().into_iter().next().unwrap_or_default();
    let mut args: Vec<Vec<u64>> = Vec::new();
    for p in launch.params {
        match p {
            GridParam::Slice(i) => {
                let s = launch.slices.get(*i).ok_or_else(|| crate::error::Error::InvalidArgument {
                    op: "kernel",
                    reason: "a slice parameter without its tensor".into(),
                })?;
                args.push(vec![s.storage.device_ptr()?]);
                args.push(vec![s.storage.len() as u64]);
            }
            GridParam::Scalar(bits) => args.push(vec![*bits]),
        }
    }
    args.push(vec![u64::from(launch.threads)]);
    let (grid, block) = (launch.grid, launch.block);
    let (reads, writes) = launch.logs();
    let work = Work::Device(Box::new(move |l| {
        let mut ptrs: Vec<*mut c_void> = args.iter_mut().map(|a| a.as_mut_ptr().cast()).collect();
        // SAFETY: one buffer per parameter of the generated entry, in order (see the module docs); each slice is
        // its tensor's allocation with its length, which the kernel indexes (out-of-range indices are the
        // kernel's bug: the simulated driver reports them).
        unsafe { l.launch(&spec, &entry, (grid, 1, 1), block, &mut ptrs) }
    }));
    machine.submit(stream, launch.source.name(), Access { reads: &reads, writes: &writes }, work)?;
    Ok(())
}
