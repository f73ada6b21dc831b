//! A CPU stream as the ops see it: each kernel enqueued as host work on the stream machine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{kernels, Machine};
use crate::backend::{Access, BinaryOp, HostWork, Kernels, MatmulDims, Operand, Storage};
use crate::device::Device;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::hazard::{Point, SharedLog};
use crate::rng::{counter, key, philox4x32_10};

/// Stream `stream` of the CPU machine.
pub(crate) struct Queue<'a> {
    pub machine: &'a Arc<Machine>,
    pub stream: u64,
}

/// Work on at most this many elements (inputs and output) runs on the submitting thread when it is ready at
/// once (see `Machine::submit_job`): a hand-off to a worker costs more than the op.
const INLINE_ELEMENTS: usize = 1 << 15;

impl Queue<'_> {
    /// Enqueues host work; `inline` for cheap kernels that never block.
    fn submit(
        &self,
        op: &'static str,
        reads: &[&SharedLog],
        writes: &[&SharedLog],
        work: HostWork,
        inline: bool,
    ) -> Result<Point> {
        self.machine.submit_job(self.stream, op, Access { reads, writes }, work, inline)
    }

    /// Enqueues `kernel(inputs, out)`: it reads `inputs` and writes `out` (a distinct buffer).
    fn launch<T: Element, U: Element>(
        &self,
        op: &'static str,
        inputs: &[&Arc<Storage<T>>],
        out: &Arc<Storage<U>>,
        kernel: impl FnOnce(&[&[T]], &mut [U]) + Send + 'static,
    ) -> Result<()> {
        self.try_launch(op, inputs, out, move |i, o| {
            kernel(i, o);
            Ok(())
        })
    }

    /// [`Queue::launch`] for a kernel that can fail (an error poisons the stream).
    fn try_launch<T: Element, U: Element>(
        &self,
        op: &'static str,
        inputs: &[&Arc<Storage<T>>],
        out: &Arc<Storage<U>>,
        kernel: impl FnOnce(&[&[T]], &mut [U]) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let sources: Vec<_> = inputs.iter().map(|s| Arc::clone(s)).collect();
        let dest = Arc::clone(out);
        let reads: Vec<_> = inputs.iter().map(|s| &s.log).collect();
        let work: HostWork = Box::new(move || {
            // SAFETY: the stream machine runs this after the last write of every input and after every earlier
            // access to `dest`, and nothing else touches them until it completes.
            let ins = sources.iter().map(|s| unsafe { s.slice() }).collect::<Result<Vec<&[T]>>>()?;
            // SAFETY: as above; `dest` is a distinct buffer from every input (outputs are fresh; in-place ops
            // check for sharing before they get here).
            kernel(&ins, unsafe { dest.slice_mut()? })
        });
        let elements = out.len() + inputs.iter().map(|s| s.len()).sum::<usize>();
        self.submit(op, &reads, &[&out.log], work, elements <= INLINE_ELEMENTS)?;
        Ok(())
    }
}

impl Kernels for Queue<'_> {
    fn alloc<T: Element>(&self, len: usize) -> Result<Storage<T>> {
        Storage::host_output(len)
    }

    fn fill<T: Element>(&self, out: &Arc<Storage<T>>, value: T) -> Result<()> {
        self.launch::<T, T>("fill", &[], out, move |_, o| kernels::fill(o, value))
    }

    fn zero<T: Element>(&self, out: &Arc<Storage<T>>) -> Result<()> {
        if out.is_fresh_zeroed() {
            // Nothing to write, but still an op of the stream, so a poisoned stream skips it and poisons the
            // output as it does a reused buffer's fill (and as CUDA does its memset). It touches no memory, so
            // it holds no reference to the buffer and runs inline whatever the size.
            self.submit("zeros", &[], &[&out.log], Box::new(|| Ok(())), true)?;
            return Ok(());
        }
        self.fill(out, T::ZERO) // a reused buffer holds old values
    }

    fn randn<T: Element>(&self, out: &Arc<Storage<T>>, seed: u64, offset: u64) -> Result<()> {
        self.launch::<T, T>("randn", &[], out, move |_, o| kernels::randn(o, seed, offset))
    }

    fn binary<T: Element>(
        &self,
        op: BinaryOp,
        a: Operand<'_, T>,
        b: Operand<'_, T>,
        out: Operand<'_, T>,
    ) -> Result<()> {
        // Same-shape operands need no shapes in the kernel (it compares only `a`'s and `b`'s): no copies to make.
        let (sa, sb, so) = if a.shape == b.shape {
            (Vec::new(), Vec::new(), Vec::new())
        } else {
            (a.shape.to_vec(), b.shape.to_vec(), out.shape.to_vec())
        };
        self.launch(op.name(), &[a.storage, b.storage], out.storage, move |i, o| {
            kernels::binary(op, i[0], &sa, i[1], &sb, o, &so)
        })
    }

    fn scalar<T: Element>(&self, op: BinaryOp, a: &Arc<Storage<T>>, value: f64, out: &Arc<Storage<T>>) -> Result<()> {
        self.launch(op.name(), &[a], out, move |i, o| kernels::scalar(op, i[0], value, false, o))
    }

    fn copy<T: Element>(&self, src: &Arc<Storage<T>>, dst: &Arc<Storage<T>>) -> Result<()> {
        self.launch("copy_", &[src], dst, |i, o| kernels::copy(i[0], o))
    }

    fn convert<T: Element, U: Element>(&self, a: &Arc<Storage<T>>, out: &Arc<Storage<U>>) -> Result<()> {
        self.launch("to_dtype", &[a], out, |i, o| kernels::convert(i[0], o))
    }

    fn sum<T: Element>(&self, op: &'static str, a: &Arc<Storage<T>>, scale: f64, out: &Arc<Storage<T>>) -> Result<()> {
        self.launch(op, &[a], out, move |i, o| o[0] = T::from_f64(kernels::sum(i[0]) * scale))
    }

    fn mm<T: Element>(
        &self,
        a: &Arc<Storage<T>>,
        b: &Arc<Storage<T>>,
        out: &Arc<Storage<T>>,
        dims: MatmulDims,
    ) -> Result<()> {
        self.try_launch("mm", &[a, b], out, move |i, o| kernels::matmul(i[0], i[1], o, dims))
    }

    fn upload<T: Element>(&self, data: Vec<T>, out: &Arc<Storage<T>>) -> Result<()> {
        self.launch::<T, T>("to_device", &[], out, move |_, o| kernels::copy(&data, o))
    }

    /// Copies the data once its last write has completed. The copy is an op of this (transient, highest
    /// priority) stream: it waits only for the producer, and later writes wait for it.
    fn download<T: Element>(&self, src: &Arc<Storage<T>>) -> Result<Vec<T>> {
        // Allocated here, fallibly: a tensor too large for the host is an error for the caller, not an abort.
        let mut data = Vec::new();
        if !crate::backend::host_pool::try_reserve_exact(&mut data, src.len()) {
            return Err(Error::OutOfMemory { device: Device::cpu(), bytes: src.len().saturating_mul(size_of::<T>()) });
        }
        let slot = Arc::new(Mutex::new(None));
        let (filled, source) = (Arc::clone(&slot), Arc::clone(src));
        let work: HostWork = Box::new(move || {
            // SAFETY: ordered after the buffer's last write by the machine.
            data.extend_from_slice(unsafe { source.slice()? });
            *filled.lock().unwrap_or_else(|e| e.into_inner()) = Some(data);
            Ok(())
        });
        let point = self.submit("to_vec", &[&src.log], &[], work, src.len() <= INLINE_ELEMENTS)?;
        crate::backend::Machine::wait_host(&**self.machine, point)?;
        let data = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        data.ok_or_else(|| Error::OpFailed { op: "to_vec".into(), message: "the copy to the host did not run".into() })
    }

    fn philox_bits(&self, groups: usize, seed: u64, offset: u64) -> Result<Vec<u32>> {
        Ok((0..groups as u64).flat_map(|g| philox4x32_10(counter(g, offset), key(seed))).collect())
    }

    fn custom_elementwise<T: Element, K: crate::backend::custom::ElementwiseCpu<T>>(
        &self,
        launch: crate::backend::custom::ElementwiseLaunch<'_, T>,
        cpu: K,
    ) -> Result<()> {
        super::custom::elementwise(self.machine, self.stream, launch, cpu)
    }

    fn custom_grid(
        &self,
        launch: crate::backend::custom::GridLaunchDesc<'_>,
        cpu: crate::backend::custom::GridCpu,
    ) -> Result<()> {
        super::custom::grid(self.machine, self.stream, launch, cpu)
    }

    fn busy(&self, duration: Duration, _blocks: u32) -> Result<()> {
        self.submit(
            "busy",
            &[],
            &[],
            Box::new(move || {
                std::thread::sleep(duration);
                Ok(())
            }),
            false,
        )?;
        Ok(())
    }
}
