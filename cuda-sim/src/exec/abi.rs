//! The C ABI between the simulator and a compiled kernel module (mirrors `emulation.h`). Version 1.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};

/// The module's ABI version this simulator speaks.
pub const ABI_VERSION: c_int = 1;

/// Block outcome: every block ran.
pub const SIM_OK: c_int = 0;
/// A hardware fault (SIGSEGV/SIGBUS) in kernel code.
pub const SIM_FAULT: c_int = 1;
/// Threads wait at a barrier or warp collective that cannot complete.
pub const SIM_DEADLOCK: c_int = 2;
/// `__trap()`, a failed `assert`, or a misused warp collective.
pub const SIM_TRAP: c_int = 3;

/// `sim_dim3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dim3 {
    /// x
    pub x: c_uint,
    /// y
    pub y: c_uint,
    /// z
    pub z: c_uint,
}

/// `sim_launch`.
#[repr(C)]
pub struct SimLaunch {
    /// One pointer per parameter.
    pub params: *const *mut c_void,
    /// Grid size.
    pub grid: Dim3,
    /// Block size.
    pub block: Dim3,
    /// Fiber stacks (lowest addresses).
    pub stacks: *const *mut c_void,
    /// Bytes per stack.
    pub stack_size: usize,
    /// Arms the fault handler for this thread.
    pub arm: extern "C" fn(*mut c_void, Option<unsafe extern "C" fn(*mut c_void)>),
    /// Disarms it.
    pub disarm: extern "C" fn(),
    /// Non-zero: stop (another block failed).
    pub abort: *const c_int,
    /// The global timer, in nanoseconds.
    pub now_ns: extern "C" fn() -> u64,
    /// Sleeps the calling OS thread for that many nanoseconds (0: yields).
    pub sleep_ns: extern "C" fn(u64),
}

/// `sim_outcome`.
#[repr(C)]
pub struct SimOutcome {
    /// `SIM_*`.
    pub status: c_int,
    /// The failing block.
    pub block: Dim3,
    /// The failing thread.
    pub thread: Dim3,
    /// A NUL-terminated description (deadlock, trap).
    pub message: [c_char; 1024],
}

/// `sim_param`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SimParam {
    /// `sizeof`.
    pub size: c_uint,
    /// `alignof`.
    pub align: c_uint,
    /// 0 value, 1 pointer to const, 2 pointer to non-const.
    pub kind: c_uint,
}

/// `sim_run_fn`.
pub type RunFn = unsafe extern "C" fn(*const SimLaunch, c_ulonglong, c_ulonglong, *mut SimOutcome) -> c_int;

/// `sim_entry`.
#[repr(C)]
pub struct SimEntry {
    /// The kernel's name.
    pub name: *const c_char,
    /// Runs a range of its blocks.
    pub run: RunFn,
    /// Parameter count.
    pub nparams: c_int,
    /// Parameter table.
    pub params: *const SimParam,
    /// `__launch_bounds__` maximum threads per block (1024 without).
    pub max_threads: c_int,
}

/// `streamdsl_sim_entries`.
pub type EntriesFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> *const SimEntry;
