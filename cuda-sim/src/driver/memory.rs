//! Device memory accounting: the stream-ordered pool of each device (release threshold, trim, reuse of
//! memory whose free has run) and synchronous allocations. Addresses are never reused (see
//! `check::alloc`); the pool only models *how much* memory is held.
//!
//! - `cuMemAllocAsync` succeeds while `pool used + synchronous + size ≤ capacity`: the pool reuses memory
//!   it holds from frees that have *run*; memory whose free is still pending on a stream is still used
//!   (so a free stream that lags behind causes out-of-memory, as on a GPU).
//! - A free that runs moves its bytes from *used* to *held*; at every synchronisation (`cuStreamSynchronize`,
//!   `cuEventSynchronize`, `cuCtxSynchronize`) the pool releases held memory above its release threshold
//!   (default 0); `cuMemPoolTrimTo` releases down to a size.
//! - `cuMemAlloc` (not from the pool) needs `pool used + held + synchronous + size ≤ capacity`.
//!
//! Sizes are rounded up to 256 bytes (CUDA's allocation granularity).

use std::sync::{Mutex, MutexGuard};

/// A device's default memory pool and its memory.
pub struct Pool {
    /// The device ordinal.
    pub device: usize,
    state: Mutex<PoolState>,
}

#[derive(Debug, Default)]
struct PoolState {
    capacity: u64,
    used: u64,
    held: u64,
    sync_used: u64,
    threshold: u64,
    reserved_high: u64,
    used_high: u64,
}

/// Bytes an allocation of `size` takes.
pub fn rounded(size: u64) -> u64 {
    size.div_ceil(256).saturating_mul(256)
}

impl Pool {
    /// The pool of a device with `capacity` bytes.
    pub fn new(device: usize, capacity: u64) -> Pool {
        Pool { device, state: Mutex::new(PoolState { capacity, ..PoolState::default() }) }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `size` bytes for a stream-ordered allocation; false: out of memory.
    pub fn alloc_async(&self, size: u64) -> bool {
        let mut s = self.lock();
        let need = rounded(size);
        if s.used.saturating_add(s.sync_used).saturating_add(need) > s.capacity {
            return false;
        }
        s.used += need;
        s.held = s.held.min(s.capacity - s.used - s.sync_used);
        s.used_high = s.used_high.max(s.used);
        s.reserved_high = s.reserved_high.max(s.used + s.held);
        true
    }

    /// A stream-ordered free has run.
    pub fn free_async(&self, size: u64) {
        let mut s = self.lock();
        let n = rounded(size);
        s.used = s.used.saturating_sub(n);
        s.held += n;
    }

    /// Reserves memory for a synchronous allocation; false: out of memory.
    pub fn alloc_sync(&self, size: u64) -> bool {
        let mut s = self.lock();
        let need = rounded(size);
        if s.used.saturating_add(s.held).saturating_add(s.sync_used).saturating_add(need) > s.capacity {
            return false;
        }
        s.sync_used += need;
        true
    }

    /// A synchronous free.
    pub fn free_sync(&self, size: u64) {
        let mut s = self.lock();
        s.sync_used = s.sync_used.saturating_sub(rounded(size));
    }

    /// At a synchronisation: release held memory above the threshold.
    pub fn on_sync(&self) {
        let mut s = self.lock();
        s.held = s.held.min(s.threshold);
    }

    /// `cuMemPoolTrimTo`.
    pub fn trim_to(&self, keep: u64) {
        let mut s = self.lock();
        s.held = s.held.min(keep);
    }

    /// `(free, total)` as `cuMemGetInfo` reports them.
    pub fn info(&self) -> (u64, u64) {
        let s = self.lock();
        (s.capacity.saturating_sub(s.used + s.held + s.sync_used), s.capacity)
    }

    /// `cuMemPoolGetAttribute` for the numeric attributes (4..=8); `None` for others.
    pub fn get(&self, attr: u32) -> Option<u64> {
        let s = self.lock();
        Some(match attr {
            4 => s.threshold,
            5 => s.used + s.held,
            6 => s.reserved_high,
            7 => s.used,
            8 => s.used_high,
            _ => return None,
        })
    }

    /// `cuMemPoolSetAttribute` (threshold, and resetting the high-water marks); false: not supported.
    pub fn set(&self, attr: u32, value: u64) -> bool {
        let mut s = self.lock();
        match attr {
            4 => s.threshold = value,
            6 => s.reserved_high = s.used + s.held,
            8 => s.used_high = s.used,
            1..=3 => {}
            _ => return false,
        }
        true
    }
}
