//! Run-time compilation of the CUDA kernels in `kernels/` with NVRTC, and their cache.
//!
//! Kernels are compiled on first use for the device's exact architecture (`sm_XY`, as CUBIN), specialised
//! by element type and tile sizes ([`KernelSpec`]), and cached in memory and on disk ([`KernelCache`]).
//! NVRTC needs no GPU, so every specialisation compiles on any machine that has the library: the test
//! suite compiles the whole [`catalog`] for sm_80, sm_90 and sm_90a, and `streamdsl precompile --arch sm_90`
//! fills the cache ahead of time. Arch-specific targets (`sm_90a`, see [`Arch`]) are accepted everywhere an
//! arch is, so Hopper-only kernels (`wgmma`, TMA) can be added to the catalog later.
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
pub(crate) use nvrtc::{library_candidates, library_search_places};

use crate::error::{Error, Result};

/// A real GPU architecture: `sm_XY` (compute capability X.Y), or an architecture-specific target `sm_XYa`
/// (features of exactly that compute capability, e.g. Hopper's `wgmma` on `sm_90a`) or family-specific target
/// `sm_XYf` (CUDA 12.9+: features shared by later members of the family).
///
/// A CUBIN for `sm_90a` runs only on compute capability 9.0; one for `sm_90` on 9.0 and later 9.x. The
/// suffix is part of the name NVRTC is given (`--gpu-architecture=sm_90a`), of [`Display`](fmt::Display) and
/// so of the kernel cache key: `sm_90` and `sm_90a` entries never mix.
///
/// ```
/// use streamdsl::jit::{Arch, ArchVariant};
/// let a: Arch = "sm_90".parse()?;
/// assert_eq!(a, Arch::new(9, 0));
/// assert_eq!(a.to_string(), "sm_90");
/// assert_eq!("86".parse::<Arch>()?.to_string(), "sm_86");
/// let h: Arch = "sm_90a".parse()?;
/// assert_eq!(h, Arch::new(9, 0).with_variant(ArchVariant::Specific));
/// assert_eq!((h.to_string(), h.base()), ("sm_90a".to_string(), a));
/// assert_eq!("sm_100f".parse::<Arch>()?.variant(), ArchVariant::Family);
/// assert!("sm_9x".parse::<Arch>().is_err());
/// assert!("sm_90b".parse::<Arch>().is_err());
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch {
    major: u32,
    minor: u32,
    variant: ArchVariant,
}

/// Which features of an architecture a target may use (the suffix of `sm_XY`, `sm_XYa`, `sm_XYf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ArchVariant {
    /// `sm_XY`: the features every later architecture keeps; the CUBIN runs on X.Y and later X.*.
    #[default]
    Base,
    /// `sm_XYa`: also the architecture-specific features of exactly X.Y (`wgmma`, `setmaxnreg` on `sm_90a`).
    Specific,
    /// `sm_XYf`: also the family-specific features shared by later members of the family (CUDA 12.9+).
    Family,
}

impl Arch {
    /// Compute capability `major.minor`, the base target `sm_XY`.
    pub const fn new(major: u32, minor: u32) -> Arch {
        Arch { major, minor, variant: ArchVariant::Base }
    }

    /// The same compute capability with another target variant (`sm_90` → `sm_90a`).
    pub const fn with_variant(self, variant: ArchVariant) -> Arch {
        Arch { variant, ..self }
    }

    /// The target variant.
    pub const fn variant(&self) -> ArchVariant {
        self.variant
    }

    /// The base target of the same compute capability (`sm_90a` → `sm_90`).
    pub const fn base(&self) -> Arch {
        Arch::new(self.major, self.minor)
    }

    /// `(major, minor)`.
    pub const fn compute_capability(&self) -> (u32, u32) {
        (self.major, self.minor)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suffix = match self.variant {
            ArchVariant::Base => "",
            ArchVariant::Specific => "a",
            ArchVariant::Family => "f",
        };
        write!(f, "sm_{}{}{suffix}", self.major, self.minor)
    }
}

impl FromStr for Arch {
    type Err = Error;

    /// Parses `sm_90`, `sm_80`, `90`, and the arch- and family-specific `sm_90a`, `sm_100f`.
    fn from_str(s: &str) -> Result<Arch> {
        let name = s.trim().strip_prefix("sm_").unwrap_or(s.trim());
        let bad = || Error::InvalidArgument {
            op: "Arch::from_str",
            reason: format!("`{s}` is not a GPU architecture; write it as `sm_80`, `sm_90`, `sm_90a`, …"),
        };
        let (digits, variant) = match name.as_bytes().last() {
            Some(b'a') => (&name[..name.len() - 1], ArchVariant::Specific),
            Some(b'f') => (&name[..name.len() - 1], ArchVariant::Family),
            _ => (name, ArchVariant::Base),
        };
        if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (major, minor) = digits.split_at(digits.len() - 1);
        Ok(Arch { major: major.parse().map_err(|_| bad())?, minor: minor.parse().map_err(|_| bad())?, variant })
    }
}
