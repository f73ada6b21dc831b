//! Finding NVRTC without set-up: `STREAMDSL_NVRTC`, `CUDA_PATH`/`CUDA_HOME`, the system loader path, and
//! the `nvidia-cuda-nvrtc` Python wheel in any `site-packages/nvidia/*/lib`. The same search finds cuBLAS
//! for the CUDA backend ([`library_candidates`]).

use std::fmt;
use std::path::{Path, PathBuf};

use super::nvrtc_api as raw;
use crate::error::{Error, Result};

/// A loaded NVRTC library.
///
/// ```
/// match streamdsl::jit::Nvrtc::find() {
///     Ok(nvrtc) => println!("NVRTC {} at {}", nvrtc.version_string(), nvrtc.path().display()),
///     Err(e) => println!("no NVRTC: {e}"), // says where it looked
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Nvrtc {
    path: PathBuf,
    version: (i32, i32),
}

impl Nvrtc {
    /// Finds and loads NVRTC, searching in the documented order. The first library found is kept loaded
    /// for the life of the process.
    pub fn find() -> Result<Nvrtc> {
        let candidates = candidates();
        let mut tried = Vec::new();
        for path in &candidates {
            if !path.is_file() {
                continue;
            }
            match raw::load(path) {
                Ok(version) => return Ok(Nvrtc { path: path.clone(), version }),
                Err(e) => tried.push(e),
            }
        }
        let searched: Vec<String> = search_places().into_iter().map(|p| p.to_string()).collect();
        Err(Error::NvrtcUnavailable {
            reason: if tried.is_empty() {
                format!(
                    "no libnvrtc found; searched {}. Install one with `pip install nvidia-cuda-nvrtc` or set STREAMDSL_NVRTC to its path",
                    searched.join(", ")
                )
            } else {
                format!("libnvrtc found but could not be loaded: {}", tried.join("; "))
            },
        })
    }

    /// The library's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(major, minor)`, e.g. `(13, 0)`.
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// The PTX NVRTC generates for `spec` on `arch`, with the options the kernel cache compiles with (for
    /// inspection: the runtime loads CUBIN). Not cached.
    ///
    /// ```no_run
    /// use streamdsl::jit::{Arch, KernelSpec, Nvrtc};
    /// let ptx = Nvrtc::find()?.ptx(&KernelSpec::busy(), Arch::new(9, 0))?;
    /// assert!(ptx.contains(".entry busy"));
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn ptx(&self, spec: &super::KernelSpec, arch: super::Arch) -> Result<String> {
        let source = spec.source();
        raw::compile_ptx(&source, spec.file(), &super::cache::compile_options(arch)).map_err(|failure| Error::Compile {
            kernel: spec.name().to_string(),
            arch: arch.to_string(),
            log: failure.log,
            line: None,
        })
    }

    /// `"13.0"`.
    pub fn version_string(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }
}

impl fmt::Display for Nvrtc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NVRTC {} ({})", self.version_string(), self.path.display())
    }
}

/// Where the search looks, in order, for messages.
fn search_places() -> Vec<&'static str> {
    library_search_places("$STREAMDSL_NVRTC")
}

/// Where [`library_candidates`] looks, in order, for messages; `variable` is the override's name.
pub(crate) fn library_search_places(variable: &'static str) -> Vec<&'static str> {
    vec![
        variable,
        "$CUDA_PATH",
        "$CUDA_HOME",
        "/usr/local/cuda",
        "the system loader path",
        "Python site-packages/nvidia/*/lib",
    ]
}

const NAMES: &[&str] = &["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];

/// Every path worth trying, in search order (duplicates removed).
fn candidates() -> Vec<PathBuf> {
    library_candidates("STREAMDSL_NVRTC", NAMES)
}

/// Every path worth trying for a CUDA library with file `names`, in search order (duplicates removed): the
/// environment variable `variable` (the library itself, or its folder), `CUDA_PATH`/`CUDA_HOME` and
/// `/usr/local/cuda`, `LD_LIBRARY_PATH` and the system library folders, then the NVIDIA Python wheels
/// (`site-packages/nvidia/*/lib`: `cu13` before `cu12`, then the per-library folders such as `cublas`).
/// NVRTC and cuBLAS are found the same way.
pub(crate) fn library_candidates(variable: &str, names: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os(variable).map(PathBuf::from) {
        if p.is_dir() {
            out.extend(names.iter().map(|n| p.join(n)));
        } else {
            out.push(p);
        }
    }
    let mut roots: Vec<PathBuf> =
        ["CUDA_PATH", "CUDA_HOME"].iter().filter_map(std::env::var_os).map(PathBuf::from).collect();
    roots.push("/usr/local/cuda".into());
    for root in roots {
        for lib in ["lib64", "lib", "targets/x86_64-linux/lib"] {
            out.extend(names.iter().map(|n| root.join(lib).join(n)));
        }
    }
    for dir in std::env::var_os("LD_LIBRARY_PATH").iter().flat_map(std::env::split_paths) {
        out.extend(names.iter().map(|n| dir.join(n)));
    }
    for dir in ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"] {
        out.extend(names.iter().map(|n| Path::new(dir).join(n)));
    }
    for site in site_packages() {
        let Ok(entries) = std::fs::read_dir(site.join("nvidia")) else { continue };
        let mut libs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join("lib")).collect();
        libs.sort();
        libs.reverse(); // cu13 before cu12, then the per-library folders (cuda_nvrtc, cublas)
        for lib in libs {
            out.extend(names.iter().map(|n| lib.join(n)));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// Python `site-packages` folders: the active virtual environment, `.venv` here or in any parent folder
/// (the one `./scripts/test` makes), the user's, pyenv's and the system's.
fn site_packages() -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(v.into());
    }
    if let Ok(cwd) = std::env::current_dir() {
        prefixes.extend(cwd.ancestors().map(|a| a.join(".venv")));
    }
    if let Ok(exe) = std::env::current_exe() {
        prefixes.extend(exe.ancestors().map(|a| a.join(".venv")));
    }
    if let Some(home) = dirs::home_dir() {
        prefixes.push(home.join(".local"));
        if let Ok(versions) = std::fs::read_dir(home.join(".pyenv/versions")) {
            prefixes.extend(versions.flatten().map(|e| e.path()));
        }
    }
    prefixes.extend(["/usr/local", "/usr", "/opt/conda"].iter().map(PathBuf::from));
    let mut out = Vec::new();
    for prefix in prefixes {
        for lib in ["lib", "lib64"] {
            let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else { continue };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("python3") {
                    out.push(e.path().join("site-packages"));
                    out.push(e.path().join("dist-packages"));
                }
            }
        }
    }
    out.push("/usr/lib/python3/dist-packages".into());
    out
}
