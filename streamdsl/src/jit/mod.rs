//! Run-time compilation of the CUDA kernels in `kernels/` with NVRTC, and their cache.
//!
//! Kernels are compiled on first use for the device's exact architecture (`sm_XY`, as CUBIN), specialised
//! by element type and tile sizes ([`KernelSpec`]), and cached in memory and on disk ([`KernelCache`]).
//! NVRTC needs no GPU, so every specialisation compiles on any machine that has the library: the test
//! suite compiles the whole [`catalog`] for sm_80 and sm_90, and `streamdsl precompile --arch sm_90` fills
//! the cache ahead of time.
//!
//! NVRTC is found without set-up where possible ([`Nvrtc::find`]): `STREAMDSL_NVRTC` (a path to the library
//! or its folder), `CUDA_PATH` / `CUDA_HOME`, `/usr/local/cuda`, the system loader path, and the
//! `nvidia-cuda-nvrtc` Python wheel in any `site-packages/nvidia/*/lib` (a `.venv` in the working directory
//! or a parent, the active virtual environment, the user's and the system's).

mod cache;
mod catalog;
mod kernel_source;
mod nvrtc;
mod nvrtc_api;
mod source;

use std::fmt;
use std::str::FromStr;

pub use cache::{CacheOutcome, Compiled, KernelCache};
pub use catalog::{catalog, cuda_type, KernelSpec, MmTile, REDUCE_BLOCK};
pub use kernel_source::KernelSource;
pub use nvrtc::Nvrtc;

use crate::error::{Error, Result};

/// A real GPU architecture, `sm_XY` (compute capability X.Y).
///
/// ```
/// use streamdsl::jit::Arch;
/// let a: Arch = "sm_90".parse()?;
/// assert_eq!(a, Arch::new(9, 0));
/// assert_eq!(a.to_string(), "sm_90");
/// assert_eq!("86".parse::<Arch>()?.to_string(), "sm_86");
/// assert!("sm_9x".parse::<Arch>().is_err());
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch {
    major: u32,
    minor: u32,
}

impl Arch {
    /// Compute capability `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Arch {
        Arch { major, minor }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sm_{}{}", self.major, self.minor)
    }
}

impl FromStr for Arch {
    type Err = Error;

    /// Parses `sm_90`, `sm_80`, `90`, `sm_90a`-style names are not accepted (use the base arch).
    fn from_str(s: &str) -> Result<Arch> {
        let digits = s.trim().strip_prefix("sm_").unwrap_or(s.trim());
        let bad = || Error::InvalidArgument {
            op: "Arch::from_str",
            reason: format!("`{s}` is not a GPU architecture; write it as `sm_80`, `sm_90`, …"),
        };
        if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (major, minor) = digits.split_at(digits.len() - 1);
        Ok(Arch { major: major.parse().map_err(|_| bad())?, minor: minor.parse().map_err(|_| bad())? })
    }
}
