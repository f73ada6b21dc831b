//! The simulated devices' properties (`cuDeviceGetAttribute`, name, memory).

use super::config::config;

/// The value of device attribute `attr` (a `CUdevice_attribute`), or `None` when it is not an attribute.
/// Attributes the simulator does not model read as 0.
pub fn attribute(attr: u32) -> Option<i32> {
    let cfg = config();
    let sms = i32::try_from(cfg.sms).unwrap_or(i32::MAX);
    let cc_major = i32::try_from(cfg.cc.0).unwrap_or(0);
    let cc_minor = i32::try_from(cfg.cc.1).unwrap_or(0);
    Some(match attr {
        1 => 1024,              // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,          // MAX_BLOCK_DIM_X / Y
        4 => 64,                // MAX_BLOCK_DIM_Z
        5 => i32::MAX,          // MAX_GRID_DIM_X
        6 | 7 => 65535,         // MAX_GRID_DIM_Y / Z
        8 => 48 * 1024,         // MAX_SHARED_MEMORY_PER_BLOCK
        9 => 64 * 1024,         // TOTAL_CONSTANT_MEMORY
        10 => 32,               // WARP_SIZE
        11 => i32::MAX,         // MAX_PITCH
        12 => 65536,            // MAX_REGISTERS_PER_BLOCK
        13 => 1_755_000,        // CLOCK_RATE (kHz)
        14 => 512,              // TEXTURE_ALIGNMENT
        15 => 1,                // GPU_OVERLAP
        16 => sms,              // MULTIPROCESSOR_COUNT
        17 => 0,                // KERNEL_EXEC_TIMEOUT
        18 => 0,                // INTEGRATED
        19 => 1,                // CAN_MAP_HOST_MEMORY
        20 => 0,                // COMPUTE_MODE (default)
        31 => 1,                // CONCURRENT_KERNELS
        32 => 0,                // ECC_ENABLED
        33 | 34 | 50 => 0,      // PCI bus / device / domain
        36 => 2_619_000,        // MEMORY_CLOCK_RATE (kHz)
        37 => 5120,             // GLOBAL_MEMORY_BUS_WIDTH
        38 => 50 * 1024 * 1024, // L2_CACHE_SIZE
        39 => 2048,             // MAX_THREADS_PER_MULTIPROCESSOR
        40 => 2,                // ASYNC_ENGINE_COUNT
        41 => 1,                // UNIFIED_ADDRESSING
        75 => cc_major,         // COMPUTE_CAPABILITY_MAJOR
        76 => cc_minor,         // COMPUTE_CAPABILITY_MINOR
        78 => 1,                // STREAM_PRIORITIES_SUPPORTED
        79 | 80 => 1,           // GLOBAL / LOCAL_L1_CACHE_SUPPORTED
        81 => 228 * 1024,       // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        82 => 65536,            // MAX_REGISTERS_PER_MULTIPROCESSOR
        83 => 0,                // MANAGED_MEMORY (not simulated)
        95 => 0,                // COOPERATIVE_LAUNCH (not simulated)
        97 => 227 * 1024,       // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        106 => 32,              // MAX_BLOCKS_PER_MULTIPROCESSOR
        115 => 1,               // MEMORY_POOLS_SUPPORTED
        0..=255 => 0,
        _ => return None,
    })
}

/// `cuDeviceGetName`.
pub fn name() -> &'static str {
    &config().name
}

/// `cuDeviceTotalMem`.
pub fn total_memory() -> u64 {
    config().memory
}

/// The stream priority range `(least, greatest)`, as `cuCtxGetStreamPriorityRange` reports it.
pub const PRIORITY_RANGE: (i32, i32) = (0, -5);
