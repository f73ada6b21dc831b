//! CUDA C sources of streamdsl's kernels, embedded as strings so the runtime can JIT-compile them with
//! NVRTC for the device's exact architecture, and so this crate packages on its own.
//!
//! Each `.cu` file is specialised by defines that the runtime prepends (element types, tile sizes); the
//! headers are resolved by name through [`HEADERS`] (the runtime inlines them). The sources need no CUDA
//! headers: 16-bit types are storage structs converted with PTX `cvt`, tensor cores are used through
//! inline-PTX `mma.sync`, so NVRTC alone compiles them. All inline PTX sits behind the named device functions
//! of [`PTX`] (`ptx.cuh`), which streamdsl's simulated driver replaces with host forms.
//!
//! ```
//! assert!(streamdsl_kernels::MM.contains("mm_tiled"));
//! assert!(streamdsl_kernels::HEADERS.iter().any(|(name, _)| *name == "philox.cuh"));
//! ```

/// Named device functions for the inline PTX the kernels use (`cvt`, `%globaltimer`, `nanosleep`,
/// `mma.sync.m16n8k16`); hidden under `STREAMDSL_SIM`, where the simulator supplies host forms.
pub const PTX: &str = include_str!("cuda/ptx.cuh");
/// Element conversions and the grid-stride loop shared by every kernel.
pub const COMMON: &str = include_str!("cuda/common.cuh");
/// Philox4x32-10 and the uniform mapping, bit-compatible with the CPU backend.
pub const PHILOX: &str = include_str!("cuda/philox.cuh");
/// The portable math library (`log`, `exp`, `expm1`, `sin`, `cos`, `sincos`, `tanh`, `erf` in float and
/// double, Box–Muller): IEEE operations and explicit FMAs only, the twin of `streamdsl::math`, bit for bit.
pub const MATH: &str = include_str!("cuda/math.cuh");
/// `randn` (Box–Muller over Philox) and `philox_bits`.
pub const RANDN: &str = include_str!("cuda/randn.cu");
/// `binary_same`, `binary_broadcast`, `scalar_op`, `fill`, `copy`.
pub const ELEMENTWISE: &str = include_str!("cuda/elementwise.cu");
/// `convert` between element types.
pub const CONVERT: &str = include_str!("cuda/convert.cu");
/// `sum_chunks` / `sum_chunks_f64` / `sum_write`: sums along a fixed tree that depends only on the length.
pub const REDUCE: &str = include_str!("cuda/reduce.cu");
/// `mm_tiled` (f32/f64, register-blocked) and `mm_mma` (f16/bf16 on tensor cores, f32 accumulation).
pub const MM: &str = include_str!("cuda/mm.cu");

/// Support for the kernels `#[kernel]` generates: Rust's scalar types by their Rust names, Rust's integer and
/// cast semantics (wrapping, saturating, masked shifts), and the portable math library by overloading.
pub const KERNEL: &str = include_str!("cuda/kernel.cuh");

/// `busy`: blocks that spin on the global timer for a given time (test support: overlap, priorities).
pub const BUSY: &str = include_str!("cuda/busy.cu");

/// The headers the sources include, by the name they are included as.
pub const HEADERS: &[(&str, &str)] =
    &[("common.cuh", COMMON), ("philox.cuh", PHILOX), ("ptx.cuh", PTX), ("math.cuh", MATH), ("kernel.cuh", KERNEL)];
