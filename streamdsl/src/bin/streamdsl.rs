//! The `streamdsl` command: `precompile` fills the kernel cache ahead of time (no GPU needed), `info`
//! prints what this machine offers.
//!
//! ```text
//! cargo run --release --bin streamdsl -- precompile --arch sm_90 [--arch sm_80 ...] [--cache-dir DIR]
//! cargo run --release --bin streamdsl -- info
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use streamdsl::jit::{catalog, Arch, CacheOutcome, KernelCache, Nvrtc};
use streamdsl::{Device, Error};

const USAGE: &str = "usage:
  streamdsl precompile --arch sm_XY [--arch sm_XY ...] [--cache-dir DIR]
      compile every built-in kernel specialisation for each arch into the kernel cache (no GPU needed)
  streamdsl info
      print the devices found, the driver and NVRTC versions and paths, and the cache directory";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("precompile") => precompile(&args[1..]),
        Some("info") => info(),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("streamdsl: {message}");
            ExitCode::FAILURE
        }
    }
}

fn precompile(args: &[String]) -> Result<(), String> {
    let mut archs: Vec<Arch> = Vec::new();
    let mut cache_dir = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("`{flag}` needs a value\n{USAGE}"));
        match arg.as_str() {
            "--arch" => archs.push(value("--arch")?.parse().map_err(|e: Error| e.to_string())?),
            "--cache-dir" => cache_dir = Some(value("--cache-dir")?),
            other => match other.strip_prefix("--arch=") {
                Some(a) => archs.push(a.parse().map_err(|e: Error| e.to_string())?),
                None => return Err(format!("unknown option `{other}`\n{USAGE}")),
            },
        }
    }
    if archs.is_empty() {
        return Err(format!("give at least one `--arch`, e.g. `--arch sm_90`\n{USAGE}"));
    }
    archs.dedup();
    let nvrtc = Nvrtc::find().map_err(|e| e.to_string())?;
    let dir = cache_dir.map_or_else(KernelCache::default_dir, Into::into);
    let cache = KernelCache::open(&dir).map_err(|e| e.to_string())?;
    let specs = catalog();
    println!("{nvrtc}\ncache: {}", dir.display());

    let total = (specs.len() * archs.len()) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut compiled, mut hits, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    let started = Instant::now();
    for &arch in &archs {
        for spec in &specs {
            bar.set_message(format!("{} {arch}", spec.name()));
            let t = Instant::now();
            match cache.get_or_compile(&nvrtc, spec, arch) {
                Ok(k) => {
                    let line =
                        format!("{:<34} {arch}  {:>7} bytes  {:>8.1} ms", spec.name(), k.cubin.len(), ms(t.elapsed()));
                    match k.outcome {
                        CacheOutcome::Disk | CacheOutcome::Memory => hits.push(t.elapsed()),
                        CacheOutcome::Compiled | CacheOutcome::Recompiled => {
                            bar.suspend(|| println!("  compiled {line}"));
                            compiled.push(t.elapsed());
                        }
                    }
                }
                Err(e) => {
                    bar.suspend(|| println!("  FAILED   {} {arch}: {e}", spec.name()));
                    failures.push(spec.name().to_string());
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let per = |v: &[Duration]| if v.is_empty() { 0.0 } else { ms(v.iter().sum::<Duration>()) / v.len() as f64 };
    println!(
        "{} kernel specialisations for {}: {} compiled ({:.1} ms each), {} cache hits ({:.2} ms each), {} failed; {:.2} s in all",
        total,
        archs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        compiled.len(),
        per(&compiled),
        hits.len(),
        per(&hits),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("{} kernels failed to compile: {}", failures.len(), failures.join(", ")))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn info() -> Result<(), String> {
    let cpu = Device::cpu();
    println!("devices:");
    println!("  cpu      streamdsl CPU backend, {} stream workers", cpu.concurrency());
    match Device::cuda_devices() {
        Ok((driver, gpus)) => {
            println!("  CUDA driver {driver}, {} device(s)", gpus.len());
            for g in &gpus {
                let (major, minor) = g.compute_capability;
                let gib = g.memory_bytes as f64 / (1u64 << 30) as f64;
                let sim =
                    if g.simulated { "; the simulated driver (cuda-sim): kernels run on CPU threads" } else { "" };
                println!("  cuda:{}   {} (sm_{major}{minor}, {gib:.1} GiB{sim})", g.ordinal, g.name);
            }
        }
        Err(e) => println!("  no CUDA device: {e}"),
    }
    println!("default device: {}", Device::default());
    match Nvrtc::find() {
        Ok(nvrtc) => println!("nvrtc: {} at {}", nvrtc.version_string(), nvrtc.path().display()),
        Err(e) => println!("nvrtc: {e}"),
    }
    println!("kernel cache: {}", KernelCache::default_dir().display());
    Ok(())
}
