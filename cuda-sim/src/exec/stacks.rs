//! Fiber stacks: per worker thread, reused from block to block, each with a `PROT_NONE` guard page below
//! (an overflow faults, and is reported as one).

use std::ffi::c_void;
use std::sync::Mutex;

/// Bytes of each fiber stack.
pub const STACK_SIZE: usize = 256 * 1024;
const GUARD: usize = 4096;

static GUARDS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// A worker's stacks.
#[derive(Default)]
pub struct Stacks {
    stacks: Vec<*mut c_void>,
}

// SAFETY: the stacks are plain memory owned by one worker thread at a time.
unsafe impl Send for Stacks {}

impl Stacks {
    /// At least `n` stacks; false if memory ran out.
    pub fn ensure(&mut self, n: usize) -> bool {
        while self.stacks.len() < n {
            // SAFETY: a fresh anonymous mapping; the lowest page becomes the guard.
            let mem = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    STACK_SIZE + GUARD,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if mem == libc::MAP_FAILED {
                return false;
            }
            // SAFETY: the first page of the mapping we just made.
            unsafe { libc::mprotect(mem, GUARD, libc::PROT_NONE) };
            GUARDS.lock().unwrap_or_else(|e| e.into_inner()).push((mem as usize, GUARD));
            // SAFETY: inside the mapping.
            self.stacks.push(unsafe { mem.cast::<u8>().add(GUARD) }.cast());
        }
        true
    }

    /// The stacks, as the block runner takes them.
    pub fn as_ptr(&self) -> *const *mut c_void {
        self.stacks.as_ptr()
    }
}

/// Whether `addr` is in a fiber stack's guard page (a kernel thread overflowed its stack).
pub fn is_guard(addr: usize) -> bool {
    GUARDS.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|&(s, l)| addr >= s && addr < s + l)
}
