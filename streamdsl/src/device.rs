//! `Device`: the name of a place where tensors live and streams run (`cpu` or `cuda:N`), as a plain value.
//!
//! Opening a device, its machine, the default device and the other run-time questions live in
//! `crate::registry`; this layer only names devices, so errors and every other layer can carry them.

use std::fmt;

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

    /// CUDA device `ordinal` by name only, not opened: for values such as errors.
    pub(crate) const fn cuda_unopened(ordinal: usize) -> Device {
        Device { kind: DeviceKind::Cuda(ordinal) }
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
