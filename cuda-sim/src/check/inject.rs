//! Fault injection, for testing a program's error handling (see `api::sim`): per thread, so a test injects
//! into its own calls only.
//!
//! - A *failing call*: the next call of a named driver function on this thread returns a given error and does
//!   nothing else.
//! - A *faulting operation*: the next kernel launch, copy or memset this thread enqueues is accepted, then
//!   fails when its turn comes on the stream, as a kernel that touches a bad address would
//!   (`CUDA_ERROR_ILLEGAL_ADDRESS`, with a report): the stream is poisoned from there on.

use std::cell::{Cell, RefCell};

use cudarc::driver::sys::CUresult;

thread_local! {
    static FAIL_NEXT: RefCell<Vec<(String, CUresult)>> = const { RefCell::new(Vec::new()) };
    static FAULT_NEXT: Cell<bool> = const { Cell::new(false) };
}

/// Makes the next call of `name` (the function's name without a `_v2` suffix, as reports spell it) on this
/// thread return `code`.
pub fn fail_next(name: &str, code: CUresult) {
    FAIL_NEXT.with(|f| f.borrow_mut().push((name.to_string(), code)));
}

/// The injected result of this call of `name`, if one is pending on this thread (taken).
pub fn take_failure(name: &str) -> Option<CUresult> {
    FAIL_NEXT.with(|f| {
        let mut f = f.borrow_mut();
        let i = f.iter().position(|(n, _)| n == name)?;
        Some(f.remove(i).1)
    })
}

/// Makes the next kernel launch, copy or memset this thread enqueues fault when it runs.
pub fn fault_next_operation() {
    FAULT_NEXT.with(|f| f.set(true));
}

/// Whether the operation being enqueued should fault (taken).
pub fn take_fault() -> bool {
    FAULT_NEXT.with(|f| f.replace(false))
}
