//! The one error type of streamdsl.

use std::sync::Arc;

use crate::device::Device;

/// Everything that can go wrong in streamdsl, as a value.
///
/// Mixing element types (`Tensor<f32>` with `Tensor<f16>`) is a compile error, not a runtime one: ops
/// are generic over one element type; convert with `to_dtype` first.
///
/// Errors detected when an op is enqueued (bad shapes, dtypes, devices, priorities, allocation failures)
/// are returned by that call. Errors raised while the work runs on a stream poison the stream and come
/// back from the next [`Stream::synchronize`](crate::Stream::synchronize) or read of a tensor it produced,
/// as [`Error::StreamPoisoned`].
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let s = Stream::new(&dev)?;
/// let a = Tensor::<f32>::zeros_on(&s, [2, 3])?;
/// let b = Tensor::<f32>::zeros_on(&s, [2, 3])?;
/// let err = a.mm(&b).unwrap_err();
/// assert!(matches!(err, Error::ShapeMismatch { op: "mm", .. }));
/// assert!(err.to_string().contains("[2, 3]"));
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The shapes of an op's operands do not fit together.
    #[error("shape mismatch in `{op}`: {lhs:?} and {rhs:?} ({reason})")]
    ShapeMismatch {
        /// The op that rejected its operands.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Vec<usize>,
        /// Shape of the second operand.
        rhs: Vec<usize>,
        /// What would have to hold.
        reason: String,
    },
    /// An operand lives on another device than the stream the op runs on.
    #[error("device mismatch in `{op}`: the stream is on {expected} but an operand is on {found}")]
    DeviceMismatch {
        /// The op that rejected its operands.
        op: &'static str,
        /// The device of the stream.
        expected: Device,
        /// The device of the offending operand.
        found: Device,
    },
    /// A shape that describes no data (a zero dimension) or more elements than fit in memory addressing.
    #[error("invalid shape {shape:?}: {reason}")]
    InvalidShape {
        /// The rejected shape.
        shape: Vec<usize>,
        /// Why it was rejected.
        reason: String,
    },
    /// An argument other than a shape is out of its domain.
    #[error("invalid argument to `{op}`: {reason}")]
    InvalidArgument {
        /// The function that rejected the argument.
        op: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An allocation could not be satisfied.
    #[error("out of memory on {device}: could not allocate {bytes} bytes")]
    OutOfMemory {
        /// The device the allocation was for.
        device: Device,
        /// The size that was asked for.
        bytes: usize,
    },
    /// Stream priorities are 0 (the default) or negative (higher priority), as in CUDA and PyTorch.
    #[error("invalid stream priority {priority}: use 0 (default) or a negative value (higher priority)")]
    InvalidPriority {
        /// The rejected priority.
        priority: i32,
    },
    /// Work running on a stream failed.
    #[error("op `{op}` failed: {message}")]
    OpFailed {
        /// The op that failed.
        op: String,
        /// What went wrong (the panic message for a panic).
        message: String,
    },
    /// A stream is poisoned by an earlier failure; its later work was not run.
    #[error("stream {stream} is poisoned: {cause}; call `Stream::clear_error` to use it again")]
    StreamPoisoned {
        /// The stream, as it displays.
        stream: String,
        /// The error that poisoned it.
        #[source]
        cause: Arc<Error>,
    },
    /// An event was used in a way that needs it to be recorded first.
    #[error("event has not been recorded: record it on a stream first")]
    EventNotRecorded,
    /// `elapsed_time` needs both events created with [`Event::timed`](crate::Event::timed).
    #[error("event was not created with timing enabled: use `Event::timed`")]
    EventNotTimed,
    /// `elapsed_time` was asked before both events completed.
    #[error("event has not completed yet: synchronize it before asking for the elapsed time")]
    EventNotReady,
    /// The requested CUDA device is not available on this machine.
    #[error("CUDA is not available: {reason}")]
    CudaUnavailable {
        /// Which piece is missing.
        reason: String,
    },
    /// No usable NVRTC library was found.
    #[error("NVRTC is not available: {reason}")]
    NvrtcUnavailable {
        /// Where the search looked, or why the library found could not be used.
        reason: String,
    },
    /// `mm` was asked to use cuBLAS (`STREAMDSL_MM=cublas`, [`set_mm_path`](crate::set_mm_path)) where it
    /// cannot: no library found, the library found is unusable, or the driver is the simulator.
    #[error("cuBLAS is not available for `mm`: {reason}")]
    CublasUnavailable {
        /// What is missing: where the search looked, or why the library found could not be used.
        reason: String,
    },
    /// NVRTC rejected a kernel.
    #[error("compiling kernel `{kernel}` for {arch} failed{}:\n{log}", line.as_ref().map(|l| format!(" at {l}")).unwrap_or_default())]
    Compile {
        /// The kernel specialisation, e.g. `mm_tiled.f32.128x128x8.8x8`.
        kernel: String,
        /// The target, e.g. `sm_90`.
        arch: String,
        /// NVRTC's log.
        log: String,
        /// The first offending source line, `file:line: text`, when the log names one.
        line: Option<String>,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver call `{call}` failed: {message}")]
    Driver {
        /// The driver function, e.g. `cuLaunchKernel`.
        call: &'static str,
        /// The driver's error name and description.
        message: String,
    },
    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A host function (see [`Stream::launch_host_func`](crate::Stream::launch_host_func)) called into a
    /// stream machine: it runs on the machine, in stream order, and must not wait for or enqueue stream work
    /// (it could wait on itself; CUDA forbids driver calls in host functions).
    #[error("`{op}` was called from inside a host function, which may not wait for or enqueue stream work: do it from the thread that enqueued the host function, after it")]
    InHostFunction {
        /// The call that was refused.
        op: &'static str,
    },
    /// Strict mode forbids the implicit synchronisation this call would need.
    #[error("`{op}` would implicitly synchronise with unfinished work (strict mode): synchronize the stream first")]
    ImplicitSync {
        /// The call that would have blocked.
        op: &'static str,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
