//! Devices: the CPU backend and (with the CUDA backend) GPUs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::backend::cuda::CudaMachine;
use crate::backend::Machine;
use crate::error::{Error, Result};
use crate::runtime::runtime;
use crate::stream::Stream;

/// An opened CUDA device: its machine and default stream.
pub(crate) struct CudaEntry {
    machine: Arc<CudaMachine>,
    default_stream: Stream,
}

fn opened() -> std::sync::MutexGuard<'static, HashMap<usize, Arc<CudaEntry>>> {
    runtime().cuda_devices.lock().unwrap_or_else(|e| e.into_inner())
}

/// Calls `f` with every CUDA machine opened so far.
pub(crate) fn for_each_cuda_machine(f: impl Fn(&CudaMachine)) {
    opened().values().for_each(|e| f(&e.machine));
}

/// Opens CUDA device `ordinal` once per process (context, NVRTC, default stream), or says what is missing.
fn cuda_registry(ordinal: usize) -> Result<Arc<CudaEntry>> {
    let mut opened = opened();
    if let Some(entry) = opened.get(&ordinal) {
        return Ok(Arc::clone(entry));
    }
    let unavailable = |reason: String| Error::CudaUnavailable { reason };
    let driver = crate::backend::cuda::driver::probe().map_err(unavailable)?;
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
    let device = Device { kind: DeviceKind::Cuda(ordinal) };
    let default_stream = Stream::from_machine(device, Arc::clone(&machine) as Arc<dyn Machine>, 0)?;
    let entry = Arc::new(CudaEntry { machine, default_stream });
    opened.insert(ordinal, Arc::clone(&entry));
    Ok(entry)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DeviceKind {
    Cpu,
    Cuda(usize),
}

/// A place where tensors live and streams run: `cpu` or `cuda:N`.
///
/// `Device::default()` follows `STREAMDSL_DEVICE` (`cpu`, `cuda`, `cuda:N`) when it is set, else picks
/// CUDA device 0 when a driver and a device are present, else the CPU backend. Devices compare equal
/// when they name the same device.
///
/// ```
/// use streamdsl::Device;
/// let cpu = Device::cpu();
/// assert_eq!(cpu.to_string(), "cpu");
/// assert!(cpu.is_cpu());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    pub(crate) kind: DeviceKind,
}

impl Device {
    /// The CPU backend: an asynchronous stream machine on a worker pool.
    ///
    /// ```
    /// assert_eq!(streamdsl::Device::cpu().to_string(), "cpu");
    /// ```
    pub const fn cpu() -> Device {
        Device { kind: DeviceKind::Cpu }
    }

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
        cuda_registry(ordinal).map(|_| Device { kind: DeviceKind::Cuda(ordinal) })
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

    /// Whether this is the CPU backend.
    ///
    /// ```
    /// assert!(streamdsl::Device::cpu().is_cpu());
    /// ```
    pub fn is_cpu(&self) -> bool {
        self.kind == DeviceKind::Cpu
    }

    /// Whether this is a CUDA device.
    ///
    /// ```
    /// assert!(!streamdsl::Device::cpu().is_cuda());
    /// ```
    pub fn is_cuda(&self) -> bool {
        matches!(self.kind, DeviceKind::Cuda(_))
    }

    /// The device's default stream (priority 0), the current stream of every thread that set no other.
    ///
    /// ```
    /// use streamdsl::prelude::*;
    /// let dev = Device::cpu();
    /// assert_eq!(dev.default_stream(), Stream::current(&dev));
    /// assert_eq!(dev.default_stream().priority(), 0);
    /// ```
    pub fn default_stream(&self) -> Stream {
        match self.kind {
            DeviceKind::Cuda(n) => match cuda_registry(n) {
                Ok(entry) => entry.default_stream.clone(),
                // Unreachable: a CUDA `Device` exists only once its registry entry does.
                Err(_) => Device::cpu().default_stream(),
            },
            DeviceKind::Cpu => runtime()
                .cpu_default_stream
                .get_or_init(|| {
                    let machine: Arc<dyn Machine> = Arc::clone(crate::backend::cpu::machine()) as Arc<dyn Machine>;
                    Stream::from_machine(*self, machine, 0).unwrap_or_else(|_| unreachable!("CPU streams never fail"))
                })
                .clone(),
        }
    }

    /// The stream machine that runs this device's streams.
    pub(crate) fn machine(&self) -> Result<Arc<dyn Machine>> {
        match self.kind {
            DeviceKind::Cpu => Ok(Arc::clone(crate::backend::cpu::machine()) as Arc<dyn Machine>),
            DeviceKind::Cuda(n) => cuda_registry(n).map(|e| Arc::clone(&e.machine) as Arc<dyn Machine>),
        }
    }

    /// The CUDA machine of a CUDA device.
    pub(crate) fn cuda_machine(&self) -> Result<Arc<CudaMachine>> {
        match self.kind {
            DeviceKind::Cuda(n) => cuda_registry(n).map(|e| Arc::clone(&e.machine)),
            DeviceKind::Cpu => Err(Error::InvalidArgument { op: "cuda", reason: "not a CUDA device".into() }),
        }
    }

    /// The range of stream priorities as `(lowest, highest)`: the device's own on CUDA, `(0, -5)` on the CPU
    /// backend (as on current CUDA devices).
    ///
    /// ```
    /// assert_eq!(streamdsl::Device::cpu().priority_range(), (0, -5));
    /// ```
    pub fn priority_range(&self) -> (i32, i32) {
        match self.cuda_machine() {
            Ok(m) => m.priority_range,
            Err(_) => crate::backend::cpu::PRIORITY_RANGE,
        }
    }

    /// How many streams run at the same moment: the CPU backend's worker threads
    /// (`STREAMDSL_CPU_WORKERS`, default the number of cores, at least 4), or a CUDA device's multiprocessors.
    ///
    /// ```
    /// assert!(streamdsl::Device::cpu().concurrency() >= 1);
    /// ```
    pub fn concurrency(&self) -> usize {
        match self.cuda_machine() {
            Ok(m) => m.sm_count as usize,
            Err(_) => crate::backend::cpu::machine().worker_count(),
        }
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
}

impl Device {
    /// The CUDA driver's version (`"13.0"`) and its devices, or why there is no usable driver.
    ///
    /// ```
    /// match streamdsl::Device::cuda_devices() {
    ///     Ok((driver, gpus)) => println!("CUDA {driver}: {} device(s)", gpus.len()),
    ///     Err(e) => println!("{e}"),
    /// }
    /// ```
    pub fn cuda_devices() -> Result<(String, Vec<CudaDeviceInfo>)> {
        let driver = crate::backend::cuda::driver::probe().map_err(|reason| Error::CudaUnavailable { reason })?;
        let version = format!("{}.{}", driver.version / 1000, driver.version % 1000 / 10);
        let devices = driver
            .devices
            .into_iter()
            .map(|g| CudaDeviceInfo {
                ordinal: g.ordinal,
                name: g.name,
                compute_capability: g.compute_capability,
                memory_bytes: g.memory_bytes,
            })
            .collect();
        Ok((version, devices))
    }
}

impl Default for Device {
    /// [`Device::from_env`], decided once per process at first use (as torch picks its device once);
    /// when `STREAMDSL_DEVICE` names a device that cannot be used, a warning goes to stderr and the CPU
    /// backend is used. Implicit ops outside any scope run on this device's default stream.
    fn default() -> Self {
        *runtime().default_device.get_or_init(|| {
            Device::from_env().unwrap_or_else(|e| {
                eprintln!("streamdsl: {e}; using the CPU backend");
                Device::cpu()
            })
        })
    }
}

impl std::str::FromStr for Device {
    type Err = Error;

    /// Parses `cpu`, `cuda` or `cuda:N`.
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

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Device({self})")
    }
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
        let best = if gpu.is_ok() { Device { kind: DeviceKind::Cuda(0) } } else { Device::cpu() };
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
