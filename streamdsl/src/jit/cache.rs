//! Compiled kernels, cached in memory per process and on disk.
//!
//! The key is a SHA-256 of the compiler's *inputs* (source, options, arch, NVRTC version), never of its
//! output, which can differ run to run. An entry is `MAGIC`, the SHA-256 of the payload, then the CUBIN; a
//! truncated or corrupt entry is recompiled and replaced, never loaded. Writes go to a unique temporary
//! file that is renamed over the entry, so readers see a whole entry or none, also with several processes
//! writing at once. The directory is created with mode 0700.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::nvrtc_api as raw;
use super::{Arch, KernelSpec, Nvrtc};
use crate::error::{Error, Result};

const MAGIC: &[u8] = b"streamdsl-cubin-v1\n";

/// Where a compiled kernel came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// This process had compiled or loaded it already.
    Memory,
    /// A valid entry on disk.
    Disk,
    /// Compiled now (no entry).
    Compiled,
    /// Compiled now because the entry on disk was corrupt or truncated; the entry was replaced.
    Recompiled,
}

/// A compiled module.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The CUBIN for the requested arch.
    pub cubin: Arc<Vec<u8>>,
    /// Where it came from.
    pub outcome: CacheOutcome,
    /// The entry's file, when the cache has a directory.
    pub path: Option<PathBuf>,
}

/// The kernel cache: in memory, and on disk when it has a directory.
///
/// ```no_run
/// use streamdsl::jit::{Arch, KernelCache, KernelSpec, Nvrtc};
/// use streamdsl::DType;
/// let nvrtc = Nvrtc::find()?;
/// let cache = KernelCache::open(KernelCache::default_dir())?;
/// let k = cache.get_or_compile(&nvrtc, &KernelSpec::randn(DType::F32), "sm_90".parse::<Arch>()?)?;
/// println!("{:?}: {} bytes", k.outcome, k.cubin.len());
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Debug)]
pub struct KernelCache {
    dir: Option<PathBuf>,
    memory: Mutex<HashMap<[u8; 32], Arc<Vec<u8>>>>,
}

impl KernelCache {
    /// `$STREAMDSL_CACHE_DIR`, else `streamdsl/kernels` in the user's cache directory (`~/.cache` on Linux).
    pub fn default_dir() -> PathBuf {
        match std::env::var_os("STREAMDSL_CACHE_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("streamdsl").join("kernels"),
        }
    }

    /// A cache in `dir`, created (mode 0700) if missing. An existing directory that another user owns, or that
    /// is writable by group or others, is refused (as ssh refuses such key folders): anyone who can write
    /// there could plant a kernel that this process would load and run.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("streamdsl-doc-cache-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// use std::os::unix::fs::PermissionsExt;
    /// std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    /// let err = streamdsl::jit::KernelCache::open(&dir).unwrap_err();
    /// assert!(err.to_string().contains("writable by other users"), "{err}");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl Into<PathBuf>) -> Result<KernelCache> {
        let dir = dir.into();
        let io = |what: String| move |e: std::io::Error| Error::Io { what, source: Arc::new(e) };
        create_private_dir(&dir).map_err(io(format!("creating the kernel cache {}", dir.display())))?;
        check_private_dir(&dir).map_err(io(format!("the kernel cache {} is not safe to use", dir.display())))?;
        Ok(KernelCache { dir: Some(dir), memory: Mutex::default() })
    }

    /// A cache that keeps nothing on disk.
    pub fn in_memory() -> KernelCache {
        KernelCache { dir: None, memory: Mutex::default() }
    }

    /// The cache directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled `spec` for `arch`: from memory, from disk, or compiled now (and stored).
    pub fn get_or_compile(&self, nvrtc: &Nvrtc, spec: &KernelSpec, arch: Arch) -> Result<Compiled> {
        let source = spec.source();
        let options = compile_options(arch);
        let key = cache_key(&source, &options, arch, nvrtc);
        let path = self.dir.as_ref().map(|d| d.join(format!("{}.cubin", hex(&key))));
        if let Some(cubin) = self.memory.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Compiled { cubin: Arc::clone(cubin), outcome: CacheOutcome::Memory, path });
        }
        let mut outcome = CacheOutcome::Compiled;
        if let Some(p) = &path {
            match read_entry(p) {
                Entry::Valid(cubin) => {
                    let cubin = self.remember(key, cubin);
                    return Ok(Compiled { cubin, outcome: CacheOutcome::Disk, path });
                }
                Entry::Corrupt => outcome = CacheOutcome::Recompiled,
                Entry::Missing => {}
            }
        }
        let cubin = raw::compile_cubin(&source, spec.file(), &options)
            .map_err(|failure| compile_error(spec, arch, &source, failure.log))?;
        if let Some(p) = &path {
            if let Err(e) = write_entry(p, &cubin) {
                // A cache that cannot be written only costs a recompile next time.
                eprintln!("streamdsl: could not write the kernel cache entry {}: {e}", p.display());
            }
        }
        let cubin = self.remember(key, cubin);
        Ok(Compiled { cubin, outcome, path })
    }

    fn remember(&self, key: [u8; 32], cubin: Vec<u8>) -> Arc<Vec<u8>> {
        let cubin = Arc::new(cubin);
        self.memory.lock().unwrap_or_else(|e| e.into_inner()).insert(key, Arc::clone(&cubin));
        cubin
    }
}

/// NVRTC options for `arch`: a real `sm_XY` target, so the output is a CUBIN the driver loads without
/// JIT (PTX from an NVRTC newer than the driver would not load), and no contraction of `a * b + c` into an
/// FMA: the kernels' arithmetic must round exactly as the CPU backend's does (FMAs are written explicitly).
pub(crate) fn compile_options(arch: Arch) -> Vec<String> {
    vec![format!("--gpu-architecture={arch}"), "--std=c++17".into(), "--fmad=false".into()]
}

fn cache_key(source: &str, options: &[String], arch: Arch, nvrtc: &Nvrtc) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        b"streamdsl-jit-v1".as_slice(),
        source.as_bytes(),
        options.join(" ").as_bytes(),
        arch.to_string().as_bytes(),
        nvrtc.version_string().as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compile error with the log and, where the log names one, the offending source line.
fn compile_error(spec: &KernelSpec, arch: Arch, source: &str, log: String) -> Error {
    let line = log.lines().find(|l| l.contains("error")).and_then(|l| {
        let start = l.find('(')? + 1;
        let end = start + l[start..].find(')')?;
        let n: usize = l[start..end].parse().ok()?;
        source.lines().nth(n.checked_sub(1)?).map(|text| format!("{}:{n}: {}", spec.file(), text.trim()))
    });
    Error::Compile { kernel: spec.name().to_string(), arch: arch.to_string(), log: log.trim().to_string(), line }
}

enum Entry {
    Missing,
    Corrupt,
    Valid(Vec<u8>),
}

fn read_entry(path: &Path) -> Entry {
    let bytes = match read_regular_file(path) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            eprintln!("streamdsl: {} is not a regular file; ignoring it (recompiling)", path.display());
            return Entry::Missing;
        }
        Err(_) => return Entry::Missing,
    };
    let Some(rest) = bytes.strip_prefix(MAGIC) else { return Entry::Corrupt };
    if rest.len() < 32 {
        return Entry::Corrupt;
    }
    let (sum, payload) = rest.split_at(32);
    if payload.is_empty() || Sha256::digest(payload).as_slice() != sum {
        return Entry::Corrupt;
    }
    Entry::Valid(payload.to_vec())
}

fn write_entry(path: &Path, cubin: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(
        ".{}.{}.{}.{}.tmp",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    ));
    let mut data = Vec::with_capacity(MAGIC.len() + 32 + cubin.len());
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&Sha256::digest(cubin));
    data.extend_from_slice(cubin);
    let written = std::fs::write(&tmp, &data).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The contents of `path` if it is a regular file (`None` for a FIFO, device or directory, which must never be
/// read: a FIFO would block forever). Opened without blocking, then checked, so a file swapped in between the
/// check and the read cannot block either.
fn read_regular_file(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Refuses a cache directory that another user owns or that group or others may write.
fn check_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir)?;
        // SAFETY: `geteuid` has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let unsafe_dir = |why: String| Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, why));
        if meta.uid() != me {
            return unsafe_dir(format!("it is owned by user {}, not by this user ({me})", meta.uid()));
        }
        if meta.mode() & 0o022 != 0 {
            return unsafe_dir(format!(
                "it is writable by other users (mode {:o}); run `chmod go-w` on it or choose another with STREAMDSL_CACHE_DIR",
                meta.mode() & 0o777
            ));
        }
    }
    let _ = dir;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
