//! NVRTC cold compile vs warm cache load, per kernel specialisation: prints a table.
//!
//! `cargo bench -p streamdsl --bench jit` (needs NVRTC: `./scripts/test` installs the wheel into .venv;
//! or set STREAMDSL_NVRTC). Uses a fresh temporary cache directory.

use std::time::{Duration, Instant};

use streamdsl::jit::{catalog, Arch, CacheOutcome, KernelCache, Nvrtc};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), streamdsl::Error> {
    let nvrtc = match Nvrtc::find() {
        Ok(n) => n,
        Err(e) => {
            println!("jit benchmark skipped: {e}");
            return Ok(());
        }
    };
    let arch: Arch = "sm_90".parse()?;
    let dir = std::env::temp_dir().join(format!("streamdsl-jit-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    println!("{nvrtc}, arch {arch}, cache {}\n", dir.display());
    println!("| kernel | cold compile (ms) | warm, disk (ms) | warm, memory (µs) |");
    println!("| --- | --- | --- | --- |");
    let (mut cold_all, mut disk_all) = (Duration::ZERO, Duration::ZERO);
    let specs = catalog();
    for spec in &specs {
        let cold_cache = KernelCache::open(&dir)?;
        let t = Instant::now();
        let k = cold_cache.get_or_compile(&nvrtc, spec, arch)?;
        let cold = t.elapsed();
        assert_eq!(k.outcome, CacheOutcome::Compiled);
        let warm_cache = KernelCache::open(&dir)?; // a new process, as far as the cache can tell
        let t = Instant::now();
        let k = warm_cache.get_or_compile(&nvrtc, spec, arch)?;
        let disk = t.elapsed();
        assert_eq!(k.outcome, CacheOutcome::Disk);
        let t = Instant::now();
        let k = warm_cache.get_or_compile(&nvrtc, spec, arch)?;
        let memory = t.elapsed();
        assert_eq!(k.outcome, CacheOutcome::Memory);
        println!("| {} | {:.1} | {:.3} | {:.1} |", spec.name(), ms(cold), ms(disk), memory.as_secs_f64() * 1e6);
        cold_all += cold;
        disk_all += disk;
    }
    let n = specs.len() as f64;
    println!("| **mean of {}** | **{:.1}** | **{:.3}** | |", specs.len(), ms(cold_all) / n, ms(disk_all) / n);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
