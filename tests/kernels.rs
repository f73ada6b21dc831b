//! NVRTC compiles every built-in kernel specialisation, and the kernel cache behaves (no GPU needed).
//!
//! These need the NVRTC library. `./scripts/test` installs the `nvidia-cuda-nvrtc` wheel when none is
//! found and sets `STREAMDSL_REQUIRE_NVRTC=1`, which turns a missing NVRTC into a failure.

use std::path::{Path, PathBuf};

use streamdsl::jit::{catalog, Arch, CacheOutcome, KernelCache, KernelSpec};
use streamdsl::{DType, Error};
use streamdsl_tests::nvrtc_or_skip;

fn temp_cache_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamdsl-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn every_kernel_compiles_for_sm80_and_sm90() {
    let Some(nvrtc) = nvrtc_or_skip("every_kernel_compiles_for_sm80_and_sm90") else { return };
    let specs = catalog();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ["sm_80", "sm_90"]
            .into_iter()
            .map(|arch| {
                let (nvrtc, specs) = (&nvrtc, &specs);
                s.spawn(move || {
                    let cache = KernelCache::in_memory();
                    let arch: Arch = arch.parse().unwrap();
                    let mut failed = Vec::new();
                    for spec in specs {
                        match cache.get_or_compile(nvrtc, spec, arch) {
                            Ok(k) => assert!(k.cubin.len() > 1000, "{} {arch}: a tiny CUBIN", spec.name()),
                            Err(e) => failed.push(format!("{} {arch}: {e}", spec.name())),
                        }
                    }
                    streamdsl_tests::report(&format!(
                        "compiled {} kernel specialisations for {arch} with {nvrtc}",
                        specs.len()
                    ));
                    failed
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "kernels that failed to compile:\n{}", failures.join("\n"));
}

#[test]
fn every_kernel_compiles_for_sm90a() {
    // The arch-specific Hopper target (where wgmma and TMA live) is accepted by the JIT, its options and its
    // cache key; today's kernels compile for it unchanged.
    let Some(nvrtc) = nvrtc_or_skip("every_kernel_compiles_for_sm90a") else { return };
    let arch: Arch = "sm_90a".parse().unwrap();
    assert_eq!(arch.to_string(), "sm_90a");
    let cache = KernelCache::in_memory();
    let failures: Vec<String> = catalog()
        .iter()
        .filter_map(|spec| cache.get_or_compile(&nvrtc, spec, arch).err().map(|e| format!("{}: {e}", spec.name())))
        .collect();
    assert!(failures.is_empty(), "kernels that failed to compile for sm_90a:\n{}", failures.join("\n"));
    // sm_90a and sm_90 are separate cache entries.
    let spec = KernelSpec::busy();
    let dir = temp_cache_dir("sm90a-key");
    let disk = KernelCache::open(&dir).unwrap();
    let a = disk.get_or_compile(&nvrtc, &spec, arch).unwrap();
    let b = disk.get_or_compile(&nvrtc, &spec, Arch::new(9, 0)).unwrap();
    assert_ne!(a.path, b.path);
    assert_eq!(b.outcome, CacheOutcome::Compiled);
    let _ = std::fs::remove_dir_all(&dir);
    streamdsl_tests::report(&format!("compiled {} kernel specialisations for sm_90a with {nvrtc}", catalog().len()));
}

#[test]
fn compile_errors_name_the_kernel_and_the_line() {
    let Some(nvrtc) = nvrtc_or_skip("compile_errors_name_the_kernel_and_the_line") else { return };
    let src =
        "#include \"common.cuh\"\nextern \"C\" __global__ void broken(float* x) {\n    x[0] = undefined_name;\n}\n";
    let spec = KernelSpec::custom("broken", src, &["broken"]);
    let err = KernelCache::in_memory().get_or_compile(&nvrtc, &spec, Arch::new(9, 0)).unwrap_err();
    let Error::Compile { kernel, arch, log, line } = &err else { panic!("expected a compile error, got {err}") };
    assert_eq!(kernel, "broken");
    assert_eq!(arch, "sm_90");
    assert!(log.contains("undefined_name"), "{log}");
    assert!(line.as_deref().is_some_and(|l| l.contains("x[0] = undefined_name;")), "{line:?}");
    assert!(err.to_string().contains("broken.cu:"), "{err}");
}

fn entry_path(dir: &Path) -> PathBuf {
    let entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(entries.len(), 1, "one entry and no temporary files: {entries:?}");
    entries.into_iter().next().unwrap()
}

#[test]
fn cache_miss_memory_hit_and_disk_hit() {
    let Some(nvrtc) = nvrtc_or_skip("cache_miss_memory_hit_and_disk_hit") else { return };
    let dir = temp_cache_dir("hits");
    let spec = KernelSpec::elementwise(DType::F32);
    let arch = Arch::new(8, 0);
    let cache = KernelCache::open(&dir).unwrap();
    let first = cache.get_or_compile(&nvrtc, &spec, arch).unwrap();
    assert_eq!(first.outcome, CacheOutcome::Compiled);
    assert_eq!(cache.get_or_compile(&nvrtc, &spec, arch).unwrap().outcome, CacheOutcome::Memory);
    let fresh = KernelCache::open(&dir).unwrap(); // another process, as far as the cache can tell
    let loaded = fresh.get_or_compile(&nvrtc, &spec, arch).unwrap();
    assert_eq!(loaded.outcome, CacheOutcome::Disk);
    assert_eq!(loaded.cubin, first.cubin);
    assert_eq!(loaded.path, first.path);
    // Another arch or specialisation is another entry.
    let other = fresh.get_or_compile(&nvrtc, &spec, Arch::new(9, 0)).unwrap();
    assert_eq!(other.outcome, CacheOutcome::Compiled);
    assert_ne!(other.path, first.path);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_or_truncated_entries_are_recompiled_not_loaded() {
    let Some(nvrtc) = nvrtc_or_skip("corrupt_or_truncated_entries_are_recompiled_not_loaded") else { return };
    let dir = temp_cache_dir("corrupt");
    let spec = KernelSpec::convert(DType::F32, DType::BF16);
    let arch = Arch::new(9, 0);
    let good = KernelCache::open(&dir).unwrap().get_or_compile(&nvrtc, &spec, arch).unwrap();
    let path = entry_path(&dir);
    let bytes = std::fs::read(&path).unwrap();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damages: Vec<Damage> = vec![
        Box::new(|b| b.truncate(b.len() / 2)),
        Box::new(|b| {
            let last = b.len() - 1;
            b[last] ^= 0x5a;
        }),
        Box::new(|b| b.truncate(10)),
        Box::new(|b| b.clear()),
    ];
    for damage in damages {
        let mut broken = bytes.clone();
        damage(&mut broken);
        std::fs::write(&path, &broken).unwrap();
        let k = KernelCache::open(&dir).unwrap().get_or_compile(&nvrtc, &spec, arch).unwrap();
        assert_eq!(k.outcome, CacheOutcome::Recompiled);
        assert!(k.cubin.len() > 1000);
        // The entry was replaced by a valid one.
        let again = KernelCache::open(&dir).unwrap().get_or_compile(&nvrtc, &spec, arch).unwrap();
        assert_eq!(again.outcome, CacheOutcome::Disk);
        assert_eq!(again.cubin.len(), good.cubin.len());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_writers_leave_one_valid_entry() {
    let Some(nvrtc) = nvrtc_or_skip("concurrent_writers_leave_one_valid_entry") else { return };
    let dir = temp_cache_dir("concurrent");
    let spec = KernelSpec::reduce(DType::F64);
    let arch = Arch::new(8, 0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                // Separate caches share nothing in memory: each compiles and writes, like separate processes.
                let k = KernelCache::open(&dir).unwrap().get_or_compile(&nvrtc, &spec, arch).unwrap();
                assert!(matches!(k.outcome, CacheOutcome::Compiled | CacheOutcome::Disk));
            });
        }
    });
    entry_path(&dir); // exactly one file, no temporaries left behind
    let k = KernelCache::open(&dir).unwrap().get_or_compile(&nvrtc, &spec, arch).unwrap();
    assert_eq!(k.outcome, CacheOutcome::Disk);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A FIFO (or anything but a regular file) at an entry's path is a cache miss, never a blocking read.
#[test]
fn a_fifo_at_an_entry_path_is_a_miss_not_a_hang() {
    let Some(nvrtc) = nvrtc_or_skip("a_fifo_at_an_entry_path_is_a_miss_not_a_hang") else { return };
    let dir = temp_cache_dir("fifo");
    let spec = KernelSpec::convert(DType::F16, DType::F32);
    let arch = Arch::new(8, 0);
    KernelCache::open(&dir).unwrap().get_or_compile(&nvrtc, &spec, arch).unwrap();
    let path = entry_path(&dir);
    std::fs::remove_file(&path).unwrap();
    let fifo = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a plain mkfifo call on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let (n, s, d) = (nvrtc.clone(), spec.clone(), dir.clone());
    std::thread::spawn(move || {
        let _ = tx.send(KernelCache::open(&d).unwrap().get_or_compile(&n, &s, arch).map(|k| k.outcome));
    });
    let outcome = rx.recv_timeout(std::time::Duration::from_secs(120)).expect("reading the cache hung on a FIFO");
    assert_eq!(outcome.unwrap(), CacheOutcome::Compiled);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cache directory others may write to, or that another user owns, is refused (ssh's rule for key folders):
/// anyone who can write there could plant a kernel for this process to run.
#[test]
fn a_cache_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_cache_dir("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = KernelCache::open(&dir).unwrap_err();
    assert!(matches!(err, Error::Io { .. }) && err.to_string().contains("writable by other users"), "{err}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(KernelCache::open(&dir).is_ok());
    // Owned by someone else (only root can arrange that here).
    let path = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: a plain chown call on a NUL-terminated path; it fails harmlessly when we are not root.
    if unsafe { libc::chown(path.as_ptr(), 65_534, 65_534) } == 0 {
        let err = KernelCache::open(&dir).unwrap_err();
        assert!(err.to_string().contains("owned by user 65534"), "{err}");
    } else {
        streamdsl_tests::report("skipped part of a_cache_others_can_write_is_refused: not root, cannot chown");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
