//! Launching a grid kernel: the launch shape, the stream, and the one `match` on the backend.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::backend::custom::{GridCpu, GridLaunchDesc, GridParam, SliceArg};
use crate::backend::{Kernels, Queue};
use crate::error::{Error, Result};
use crate::jit::KernelSource;
use crate::stream::Stream;

/// Threads per block of [`GridLaunch::launch`].
const BLOCK: u32 = 256;

/// The shape of a grid kernel's launch: `grid` blocks of `block` threads (1-D), every thread running the body.
///
/// ```
/// use streamdsl::kernel::LaunchConfig;
/// let c = LaunchConfig::new(4, 128);
/// assert_eq!(c.threads(), 512);
/// assert_eq!(LaunchConfig::for_threads(1000), LaunchConfig::new(4, 256));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks (`grid_dim()`), 1 to 2³¹ − 1.
    pub grid: u32,
    /// Threads per block (`block_dim()`), 1 to 1024.
    pub block: u32,
}

impl LaunchConfig {
    /// `grid` blocks of `block` threads.
    pub const fn new(grid: u32, block: u32) -> LaunchConfig {
        LaunchConfig { grid, block }
    }

    /// Blocks of 256 threads, enough for `n` threads (some threads of the last block have nothing to do: guard
    /// the body with `if global_index() < n`).
    pub const fn for_threads(n: u32) -> LaunchConfig {
        LaunchConfig { grid: if n == 0 { 1 } else { n.div_ceil(BLOCK) }, block: BLOCK }
    }

    /// Threads in all.
    pub const fn threads(&self) -> u64 {
        self.grid as u64 * self.block as u64
    }
}

/// A grid kernel with its arguments, ready to be enqueued: what `#[kernel(grid)] fn name(..)` returns.
///
/// ```
/// use streamdsl::prelude::*;
/// use streamdsl::kernel::LaunchConfig;
///
/// #[kernel(grid)]
/// fn iota(out: &mut [f32]) {
///     let i = global_index() as usize;
///     if i < out.len() {
///         out[i] = i as f32;
///     }
/// }
///
/// let s = Stream::new(&Device::cpu())?;
/// let mut t = zeros::<f32>([1000])?;
/// iota(&mut t).on(&s).launch(1000)?;                          // threads 0..1000, on `s`
/// iota(&mut t).launch_config(LaunchConfig::new(8, 128))?;     // 1024 threads: the guard matters
/// assert_eq!(t.to_vec()?[999], 999.0);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[must_use = "a grid kernel runs when it is launched: call `.launch(n)` or `.launch_config(..)`"]
pub struct GridLaunch<'a> {
    source: &'static KernelSource,
    slices: Vec<SliceArg>,
    params: Vec<GridParam>,
    cpu: GridCpu,
    stream: Option<&'a Stream>,
    _tensors: PhantomData<&'a mut ()>,
}

impl<'a> GridLaunch<'a> {
    /// Used by `#[kernel(grid)]`'s expansion; not public API.
    #[doc(hidden)]
    pub fn __new(
        source: &'static KernelSource,
        slices: Vec<SliceArg>,
        params: Vec<GridParam>,
        cpu: GridCpu,
    ) -> GridLaunch<'a> {
        GridLaunch { source, slices, params, cpu, stream: None, _tensors: PhantomData }
    }

    /// Enqueues on `stream` instead of the current stream of the tensors' device.
    pub fn on(mut self, stream: &'a Stream) -> GridLaunch<'a> {
        self.stream = Some(stream);
        self
    }

    /// Runs the body once for each global index in `0..n` (blocks of 256 threads), enqueued on the stream;
    /// returns at once. `n` is at most `u32::MAX` (`global_index()` is a `u32`).
    pub fn launch(self, n: usize) -> Result<()> {
        let name = self.source.name();
        let n = u32::try_from(n).map_err(|_| Error::InvalidArgument {
            op: name,
            reason: format!("{n} threads are more than a launch's {} (global_index() is a u32)", u32::MAX),
        })?;
        let config = LaunchConfig::for_threads(n);
        self.run(n, config)
    }

    /// Runs the body in every thread of `config`'s grid, enqueued on the stream; returns at once.
    pub fn launch_config(self, config: LaunchConfig) -> Result<()> {
        let name = self.source.name();
        let bad = |reason: String| Error::InvalidArgument { op: name, reason };
        if config.block == 0 || config.block > 1024 {
            return Err(bad(format!("a block has 1 to 1024 threads, not {}", config.block)));
        }
        if config.grid == 0 || config.grid > i32::MAX as u32 {
            return Err(bad(format!("a grid has 1 to {} blocks, not {}", i32::MAX, config.grid)));
        }
        let threads = u32::try_from(config.threads())
            .map_err(|_| bad(format!("{} threads are more than a launch's {}", config.threads(), u32::MAX)))?;
        self.run(threads, config)
    }

    fn run(self, threads: u32, config: LaunchConfig) -> Result<()> {
        let name = self.source.name();
        if threads == 0 {
            return Ok(());
        }
        let current;
        let stream = match self.stream {
            Some(s) => s,
            None => {
                let first = self.slices.first().ok_or_else(|| Error::InvalidArgument {
                    op: name,
                    reason: "this kernel takes no tensor to find the current stream from: give one with `.on(&stream)`"
                        .into(),
                })?;
                current = Stream::current(&first.device);
                &current
            }
        };
        for (i, s) in self.slices.iter().enumerate() {
            stream.check_same_device(name, &s.device)?;
            let shared =
                self.slices[..i].iter().any(|o| Arc::ptr_eq(o.storage.log(), s.storage.log()) && (o.write || s.write));
            if shared {
                return Err(Error::InvalidArgument {
                    op: name,
                    reason: "one tensor is passed to a `&mut [T]` parameter and to another slice parameter: the \
                             threads would race; pass it once, as `&mut [T]`"
                        .into(),
                });
            }
        }
        let desc = GridLaunchDesc {
            source: self.source,
            slices: &self.slices,
            params: &self.params,
            threads,
            block: config.block,
            grid: config.grid,
        };
        match stream.queue() {
            Queue::Cpu(q) => q.custom_grid(desc, Arc::clone(&self.cpu)),
            Queue::Cuda(q) => q.custom_grid(desc, Arc::clone(&self.cpu)),
        }
    }
}
