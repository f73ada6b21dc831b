//! Process-wide settings of `mm`: TF32 (like torch's `allow_tf32`) and which implementation `mm` uses on
//! CUDA devices (`STREAMDSL_MM`). Plain values; the backends read them when an op is enqueued.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::runtime::ProcessWide;

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static TF32: ProcessWide<AtomicU8> = ProcessWide::new("mm.tf32", || AtomicU8::new(UNSET));

/// Lets f32 `mm` on CUDA use TF32 tensor cores (10-bit mantissa inputs, f32 accumulation), like torch's
/// `torch.backends.cuda.matmul.allow_tf32 = True`. Off by default, as in torch since 1.12: f32 products are
/// then computed in full f32. The process starts from `STREAMDSL_ALLOW_TF32=1` when set. Only the cuBLAS
/// path has a TF32 mode; streamdsl's own kernels and the CPU backend always compute in f32.
///
/// ```
/// streamdsl::set_allow_tf32(true);
/// assert!(streamdsl::allow_tf32());
/// streamdsl::set_allow_tf32(false);
/// assert!(!streamdsl::allow_tf32());
/// ```
pub fn set_allow_tf32(on: bool) {
    TF32.get().store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether f32 `mm` may use TF32 on CUDA (see [`set_allow_tf32`]).
pub fn allow_tf32() -> bool {
    match TF32.get().load(Ordering::Relaxed) {
        UNSET => {
            let on = std::env::var("STREAMDSL_ALLOW_TF32").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
            // Only the first reader decides; a concurrent `set_allow_tf32` wins over the environment.
            let _ = TF32.get().compare_exchange(UNSET, if on { ON } else { OFF }, Ordering::Relaxed, Ordering::Relaxed);
            TF32.get().load(Ordering::Relaxed) == ON
        }
        v => v == ON,
    }
}

/// Which implementation `mm` uses on CUDA devices (`STREAMDSL_MM=auto|kernels|cublas`, or [`set_mm_path`]).
///
/// ```
/// use streamdsl::MmPath;
/// assert_eq!("cublas".parse::<MmPath>()?, MmPath::Cublas);
/// assert_eq!(MmPath::Kernels.to_string(), "kernels");
/// assert!("cutlass".parse::<MmPath>().is_err());
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MmPath {
    /// cuBLAS where the library is found and usable (not on the simulated driver), else streamdsl's kernels.
    #[default]
    Auto,
    /// Always streamdsl's NVRTC kernels.
    Kernels,
    /// Always cuBLAS: `mm` on CUDA is an [`Error::CublasUnavailable`] where it cannot be used.
    Cublas,
}

impl fmt::Display for MmPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MmPath::Auto => "auto",
            MmPath::Kernels => "kernels",
            MmPath::Cublas => "cublas",
        })
    }
}

impl FromStr for MmPath {
    type Err = Error;

    fn from_str(s: &str) -> Result<MmPath> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(MmPath::Auto),
            "kernels" | "kernel" | "nvrtc" => Ok(MmPath::Kernels),
            "cublas" | "cublaslt" => Ok(MmPath::Cublas),
            _ => Err(Error::InvalidArgument {
                op: "mm",
                reason: format!("STREAMDSL_MM=`{s}` is not one of `auto`, `kernels`, `cublas`"),
            }),
        }
    }
}

const PATH_UNSET: u8 = 0;
const PATH_AUTO: u8 = 1;
const PATH_KERNELS: u8 = 2;
const PATH_CUBLAS: u8 = 3;
const PATH_INVALID: u8 = 4;

static PATH: ProcessWide<AtomicU8> = ProcessWide::new("mm.path", || AtomicU8::new(PATH_UNSET));

fn encode(path: MmPath) -> u8 {
    match path {
        MmPath::Auto => PATH_AUTO,
        MmPath::Kernels => PATH_KERNELS,
        MmPath::Cublas => PATH_CUBLAS,
    }
}

/// Sets which implementation `mm` uses on CUDA devices from now on, for the whole process (it starts from
/// `STREAMDSL_MM`, else [`MmPath::Auto`]). `streamdsl info` prints the choice and why.
///
/// ```
/// use streamdsl::MmPath;
/// streamdsl::set_mm_path(MmPath::Kernels);
/// assert_eq!(streamdsl::mm_path()?, MmPath::Kernels);
/// streamdsl::set_mm_path(MmPath::Auto);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn set_mm_path(path: MmPath) {
    PATH.get().store(encode(path), Ordering::Relaxed);
}

/// The implementation `mm` is asked to use on CUDA devices: [`set_mm_path`], else `STREAMDSL_MM`, else
/// [`MmPath::Auto`]. An `STREAMDSL_MM` that names none of them is an [`Error::InvalidArgument`] here and
/// from every CUDA `mm`, until [`set_mm_path`] replaces it.
pub fn mm_path() -> Result<MmPath> {
    let decode = |v: u8| match v {
        PATH_AUTO => Some(MmPath::Auto),
        PATH_KERNELS => Some(MmPath::Kernels),
        PATH_CUBLAS => Some(MmPath::Cublas),
        _ => None,
    };
    let from_env = || std::env::var("STREAMDSL_MM").map_or(Ok(MmPath::Auto), |v| v.parse::<MmPath>());
    let mut v = PATH.get().load(Ordering::Relaxed);
    if v == PATH_UNSET {
        let read = from_env().map_or(PATH_INVALID, encode);
        let _ = PATH.get().compare_exchange(PATH_UNSET, read, Ordering::Relaxed, Ordering::Relaxed);
        v = PATH.get().load(Ordering::Relaxed);
    }
    match decode(v) {
        Some(path) => Ok(path),
        None => from_env(),
    }
}

/// What runs `mm` on CUDA devices, as [`cuda_mm_route`](crate::cuda_mm_route) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MmRoute {
    /// True when cuBLAS runs it, false for streamdsl's NVRTC kernels.
    pub cublas: bool,
    /// Why, in words: the library found and its version, or why the kernels run.
    pub reason: String,
}

impl fmt::Display for MmRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.cublas { "cuBLAS" } else { "streamdsl's NVRTC kernels" };
        write!(f, "{what} ({})", self.reason)
    }
}
