//! The simulated device and the simulator's switches, read once from the environment.

use std::path::PathBuf;
use std::sync::OnceLock;

/// What the environment configures (see the crate docs for each variable).
#[derive(Debug, Clone)]
pub struct Config {
    /// `STREAMDSL_SIM_DEVICES` (default 1).
    pub devices: usize,
    /// `STREAMDSL_SIM_CC`, e.g. `9.0` (default).
    pub cc: (u32, u32),
    /// `STREAMDSL_SIM_SMS` (default 132).
    pub sms: u32,
    /// `STREAMDSL_SIM_MEMORY` in bytes (default 80 GB).
    pub memory: u64,
    /// `STREAMDSL_SIM_NAME` (default "streamdsl simulated GPU").
    pub name: String,
    /// `STREAMDSL_SIM_JITTER=1`.
    pub jitter: bool,
    /// `STREAMDSL_SIM_SEED`.
    pub seed: Option<u64>,
    /// `STREAMDSL_SIM_WORKERS` (default: the available parallelism, at least 2).
    pub workers: usize,
    /// `STREAMDSL_SIM_ALIGN`: allocation start alignment (default: tight, see `check::alloc`).
    pub align: Option<usize>,
    /// `STREAMDSL_SIM_QUIET=1`: reports are not printed (still returned and kept).
    pub quiet: bool,
    /// `STREAMDSL_SIM_CACHE_DIR`, else `<user cache dir>/streamdsl/sim`.
    pub cache_dir: PathBuf,
    /// `STREAMDSL_SIM_OPT`: the optimisation flag kernels are compiled with (default `-O2`).
    pub opt: String,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn parsed<T: std::str::FromStr>(name: &str, ok: impl Fn(&T) -> bool) -> Option<T> {
    let v = var(name)?;
    match v.parse::<T>() {
        Ok(x) if ok(&x) => Some(x),
        _ => {
            eprintln!("streamdsl-cuda-sim: ignoring {name}={v:?} (not a valid value)");
            None
        }
    }
}

fn parse_cc(name: &str) -> Option<(u32, u32)> {
    let v = var(name)?;
    let cc = v.split_once('.').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    if cc.is_none() {
        eprintln!("streamdsl-cuda-sim: ignoring {name}={v:?} (expected MAJOR.MINOR, e.g. 8.0)");
    }
    cc
}

/// The configuration (read on first use).
pub fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config {
        devices: parsed("STREAMDSL_SIM_DEVICES", |n: &usize| *n <= 64).unwrap_or(1),
        cc: parse_cc("STREAMDSL_SIM_CC").unwrap_or((9, 0)),
        sms: parsed("STREAMDSL_SIM_SMS", |n: &u32| *n >= 1).unwrap_or(132),
        memory: parsed("STREAMDSL_SIM_MEMORY", |n: &u64| *n >= 1).unwrap_or(80_000_000_000),
        name: var("STREAMDSL_SIM_NAME").unwrap_or_else(|| "streamdsl simulated GPU".into()),
        jitter: var("STREAMDSL_SIM_JITTER").is_some_and(|v| v != "0"),
        seed: parsed("STREAMDSL_SIM_SEED", |_: &u64| true),
        workers: parsed("STREAMDSL_SIM_WORKERS", |n: &usize| (1..=256).contains(n))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)),
        align: parsed("STREAMDSL_SIM_ALIGN", |n: &usize| n.is_power_of_two() && *n <= 4096),
        quiet: var("STREAMDSL_SIM_QUIET").is_some_and(|v| v != "0"),
        cache_dir: var("STREAMDSL_SIM_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("streamdsl").join("sim")),
        opt: var("STREAMDSL_SIM_OPT").unwrap_or_else(|| "-O2".into()),
    })
}
