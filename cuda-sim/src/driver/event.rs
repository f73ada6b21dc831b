//! Events: each record is a new `Signal` (completed in stream order); the event points at its latest one.

use std::sync::{Arc, Mutex};

use super::stream::Signal;

/// `CU_EVENT_DISABLE_TIMING`.
pub const DISABLE_TIMING: u32 = 0x2;

/// A CUDA event.
pub struct Event {
    /// Its handle.
    pub id: u64,
    /// `cuEventCreate` flags.
    pub flags: u32,
    /// The device it was created on.
    pub device: usize,
    record: Mutex<Option<Arc<Signal>>>,
}

impl Event {
    /// A new, never-recorded event.
    pub fn new(id: u64, flags: u32, device: usize) -> Event {
        Event { id, flags, device, record: Mutex::new(None) }
    }

    /// Whether timing is enabled.
    pub fn timed(&self) -> bool {
        self.flags & DISABLE_TIMING == 0
    }

    /// The latest record (as of now).
    pub fn record(&self) -> Option<Arc<Signal>> {
        self.record.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Points the event at a new record.
    pub fn set_record(&self, s: Arc<Signal>) {
        *self.record.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }
}
