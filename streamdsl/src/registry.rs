//! Which machine runs each device: the CPU machine, CUDA devices opened once per process, the default device,
//! and the process-wide switches that reach every machine (the race checker).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::backend::cuda::{driver, CudaMachine};
use crate::backend::{cpu, Backend, Machine};
use crate::device::{Device, DeviceKind};
use crate::error::{Error, Result};
use crate::runtime::ProcessWide;

/// CUDA devices opened so far, by ordinal: one machine per device per process.
static OPENED: ProcessWide<Mutex<HashMap<usize, Arc<CudaMachine>>>> = ProcessWide::new("devices.cuda", Mutex::default);

/// The device `Device::default()` picked, decided once per process.
static DEFAULT: ProcessWide<OnceLock<Device>> = ProcessWide::new("devices.default", OnceLock::new);

fn opened() -> std::sync::MutexGuard<'static, HashMap<usize, Arc<CudaMachine>>> {
    OPENED.get().lock().unwrap_or_else(|e| e.into_inner())
}

/// Opens CUDA device `ordinal` once per process (context, NVRTC, kernel cache), or says what is missing.
fn open_cuda(ordinal: usize) -> Result<Arc<CudaMachine>> {
    let mut opened = opened();
    if let Some(machine) = opened.get(&ordinal) {
        return Ok(Arc::clone(machine));
    }
    let unavailable = |reason: String| Error::CudaUnavailable { reason };
    let driver = driver::probe().map_err(unavailable)?;
    let Some(gpu) = driver.devices.get(ordinal) else {
        return Err(unavailable(format!(
            "there is no CUDA device {ordinal}: the driver (CUDA {}.{}) reports {} device(s)",
            driver.version / 1000,
            driver.version % 1000 / 10,
            driver.devices.len()
        )));
    };
    let machine = CudaMachine::open(ordinal, gpu.compute_capability, gpu.sm_count)
        .map_err(|e| unavailable(format!("found {}, but it cannot be used: {e}", gpu.name)))?;
    let machine = Arc::new(machine);
    opened.insert(ordinal, Arc::clone(&machine));
    Ok(machine)
}

impl Device {
    /// CUDA device `ordinal`, or an error that says which piece is missing.
    ///
    /// ```
    /// // On a machine without a GPU this is an error value, never a panic.
    /// match streamdsl::Device::cuda(0) {
    ///     Ok(dev) => assert_eq!(dev.to_string(), "cuda:0"),
    ///     Err(e) => assert!(e.to_string().contains("CUDA is not available")),
    /// }
    /// ```
    pub fn cuda(ordinal: usize) -> Result<Device> {
        open_cuda(ordinal).map(|_| Device::cuda_unopened(ordinal))
    }

    /// The device named by `STREAMDSL_DEVICE`, or the best one present when it is unset.
    ///
    /// ```
    /// let dev = streamdsl::Device::from_env()?;
    /// println!("running on {dev}");
    /// # Ok::<(), streamdsl::Error>(())
    /// ```
    pub fn from_env() -> Result<Device> {
        Self::from_setting(std::env::var("STREAMDSL_DEVICE").ok().as_deref())
    }

    /// The device a `STREAMDSL_DEVICE` value names; unset or blank picks CUDA 0 when usable, else the CPU.
    fn from_setting(setting: Option<&str>) -> Result<Device> {
        match setting {
            Some(name) if !name.trim().is_empty() => name.parse(),
            _ => Ok(Device::cuda(0).unwrap_or(Device::cpu())),
        }
    }

    /// The stream machine that runs this device's streams.
    pub(crate) fn backend(&self) -> Result<Backend> {
        match self.kind {
            DeviceKind::Cpu => Ok(Backend::Cpu(Arc::clone(cpu::machine()))),
            DeviceKind::Cuda(n) => open_cuda(n).map(Backend::Cuda),
        }
    }

    /// The range of stream priorities as `(lowest, highest)`: the device's own on CUDA, `(0, -5)` on the CPU
    /// backend (as on current CUDA devices).
    ///
    /// ```
    /// assert_eq!(streamdsl::Device::cpu().priority_range(), (0, -5));
    /// ```
    pub fn priority_range(&self) -> (i32, i32) {
        match self.backend() {
            Ok(Backend::Cuda(m)) => m.priority_range,
            Ok(Backend::Cpu(_)) | Err(_) => cpu::PRIORITY_RANGE,
        }
    }

    /// How many streams run at the same moment: the CPU backend's worker threads
    /// (`STREAMDSL_CPU_WORKERS`, default the number of cores, at least 4), or a CUDA device's multiprocessors.
    ///
    /// ```
    /// assert!(streamdsl::Device::cpu().concurrency() >= 1);
    /// ```
    pub fn concurrency(&self) -> usize {
        match self.backend() {
            Ok(Backend::Cuda(m)) => m.sm_count as usize,
            Ok(Backend::Cpu(m)) => m.worker_count(),
            Err(_) => cpu::machine().worker_count(),
        }
    }

    /// The CUDA driver's version (`"13.0"`) and its devices, or why there is no usable driver.
    ///
    /// ```
    /// match streamdsl::Device::cuda_devices() {
    ///     Ok((driver, gpus)) => println!("CUDA {driver}: {} device(s)", gpus.len()),
    ///     Err(e) => println!("{e}"),
    /// }
    /// ```
    pub fn cuda_devices() -> Result<(String, Vec<CudaDeviceInfo>)> {
        let driver = driver::probe().map_err(|reason| Error::CudaUnavailable { reason })?;
        let version = format!("{}.{}", driver.version / 1000, driver.version % 1000 / 10);
        let devices = driver
            .devices
            .into_iter()
            .map(|g| CudaDeviceInfo {
                ordinal: g.ordinal,
                name: g.name,
                compute_capability: g.compute_capability,
                memory_bytes: g.memory_bytes,
                simulated: driver.simulated,
            })
            .collect();
        Ok((version, devices))
    }
}

/// A CUDA device as the driver reports it (see [`Device::cuda_devices`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    /// The ordinal, as in `Device::cuda(ordinal)` and `cuda:N`.
    pub ordinal: usize,
    /// The marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// `(major, minor)`, e.g. `(9, 0)` for sm_90.
    pub compute_capability: (u32, u32),
    /// Total device memory in bytes.
    pub memory_bytes: usize,
    /// Whether the driver is streamdsl's simulated driver (`cuda-sim`), which runs kernels on CPU threads.
    pub simulated: bool,
}

impl Default for Device {
    /// [`Device::from_env`], decided once per process at first use (as torch picks its device once);
    /// when `STREAMDSL_DEVICE` names a device that cannot be used, a warning goes to stderr and the CPU
    /// backend is used. Implicit ops outside any scope run on this device's default stream.
    fn default() -> Self {
        *DEFAULT.get().get_or_init(|| {
            Device::from_env().unwrap_or_else(|e| {
                eprintln!("streamdsl: {e}; using the CPU backend");
                Device::cpu()
            })
        })
    }
}

impl std::str::FromStr for Device {
    type Err = Error;

    /// Parses `cpu`, `cuda` or `cuda:N` (and opens a CUDA device: an error says why it cannot be used).
    fn from_str(s: &str) -> Result<Device> {
        let s = s.trim();
        match s {
            "cpu" => Ok(Device::cpu()),
            "cuda" | "gpu" => Device::cuda(0),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Device::cuda(n),
                _ => Err(Error::InvalidArgument {
                    op: "Device::from_str",
                    reason: format!("unknown device `{s}`, expected `cpu`, `cuda` or `cuda:N`"),
                }),
            },
        }
    }
}

/// Turns the vector-clock race checker on or off for the process (it starts from `STREAMDSL_SANITIZE=1`).
///
/// With it on, every op the stream machines enqueue is checked against vector clocks (like PyTorch's CUDA
/// sanitizer): an access not ordered after a conflicting earlier one fails that op with the race. Safe code
/// cannot produce one, so a report means a bug in streamdsl's hazard tracking. It costs a little time per op.
///
/// ```
/// use streamdsl::prelude::*;
/// streamdsl::set_sanitize(true);
/// let (a, b) = (Stream::new(&Device::cpu())?, Stream::new(&Device::cpu())?);
/// let x = ops::full_on(&a, [4], 1.0f32)?;
/// let y = ops::mul_scalar_on(&b, &x, 2.0)?; // ordered by the tracker: no race
/// b.synchronize()?;
/// assert_eq!(y.to_vec()?, vec![2.0; 4]);
/// streamdsl::set_sanitize(false);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn set_sanitize(on: bool) {
    cpu::machine().set_sanitize(on);
    let machines: Vec<Arc<CudaMachine>> = opened().values().cloned().collect();
    machines.iter().for_each(|m| m.set_sanitize(on));
}

/// Frees the CPU backend's cached host buffers and returns how many bytes went back to the system (like
/// `torch.cuda.empty_cache()`, for host memory).
///
/// The CPU backend keeps freed tensor buffers of 64 KiB and more — up to `STREAMDSL_CPU_CACHE_BYTES` bytes
/// (`0` turns the cache off; by default the smaller of 1 GiB and an eighth of physical memory) — and reuses
/// them for the next outputs of the same size, which saves clearing fresh pages on every op. The cache is
/// also emptied before the CPU backend reports out of memory. Live tensors are never touched.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let t = ops::ones_on::<f32>(&s, [1 << 20])?; // 4 MiB
/// s.synchronize()?;
/// drop(t); // its buffer goes to the cache (unless STREAMDSL_CPU_CACHE_BYTES is below 4 MiB)
/// let freed = streamdsl::empty_host_cache();
/// assert_eq!(streamdsl::empty_host_cache(), 0);
/// println!("{freed} bytes given back");
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn empty_host_cache() -> usize {
    crate::backend::release_host_cache()
}

/// Which implementation `mm` uses on CUDA devices and why (what `streamdsl info` prints): cuBLAS where the
/// library is found (`STREAMDSL_CUBLAS`, `CUDA_PATH`/`CUDA_HOME`, the loader path, the `nvidia-cublas`
/// wheel) and the driver is a real one, else streamdsl's NVRTC kernels; [`set_mm_path`](crate::set_mm_path)
/// or `STREAMDSL_MM=kernels|cublas` force one. An `Err` when cuBLAS is forced but cannot be used (the
/// error names what is missing), or `STREAMDSL_MM` is not a path. Opens no device; a device whose cuBLAS
/// handle cannot be created still falls back to the kernels when `mm` first runs there.
///
/// ```
/// match streamdsl::cuda_mm_route() {
///     Ok(route) => println!("mm on CUDA: {route}"),
///     Err(e) => println!("mm on CUDA: {e}"),
/// }
/// ```
pub fn cuda_mm_route() -> Result<crate::mm_config::MmRoute> {
    let simulator = driver::probe().ok().map(|_| crate::backend::cuda::on_simulator());
    crate::backend::cuda::blas::describe(simulator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamdsl_device_names_the_device() {
        assert_eq!(Device::from_setting(Some("cpu")).unwrap(), Device::cpu());
        assert_eq!(Device::from_setting(Some(" cpu ")).unwrap(), Device::cpu());
        let gpu = Device::cuda(0);
        for name in ["cuda", "cuda:0", "gpu"] {
            match (&gpu, Device::from_setting(Some(name))) {
                (Ok(g), Ok(d)) => assert_eq!(*g, d),
                (Err(_), Err(e)) => assert!(matches!(e, Error::CudaUnavailable { .. }), "{name}: {e}"),
                (g, d) => panic!("{name}: Device::cuda(0) gave {g:?} but the setting gave {d:?}"),
            }
        }
        for bad in ["tpu", "cuda:", "cuda:x", "cuda:-1", "CPU0"] {
            let e = Device::from_setting(Some(bad)).unwrap_err();
            assert!(e.to_string().contains("expected `cpu`, `cuda` or `cuda:N`"), "{bad}: {e}");
        }
        // Unset or blank: the best device present.
        let best = if gpu.is_ok() { Device::cuda_unopened(0) } else { Device::cpu() };
        assert_eq!(Device::from_setting(None).unwrap(), best);
        assert_eq!(Device::from_setting(Some("  ")).unwrap(), best);
    }

    #[test]
    fn a_missing_cuda_device_says_why() {
        if let Err(e) = Device::cuda(0) {
            assert!(matches!(e, Error::CudaUnavailable { .. }));
            assert!(e.to_string().contains("CUDA is not available"), "{e}");
        }
        let e = Device::cuda(4096).unwrap_err();
        assert!(matches!(e, Error::CudaUnavailable { .. }), "{e}");
    }
}
