//! The synchronisation primitives of the CPU stream machine: std's, or loom's when the crate is built with
//! `--cfg loom` for the model test of the machine (`backend::cpu::machine`'s `loom_model` tests), which
//! explores the interleavings of submission, completion, waits and poisoning.

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Starts a worker thread named `name` running `body`; false if it could not be started.
#[cfg(not(loom))]
pub(crate) fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> bool {
    std::thread::Builder::new().name(name).spawn(body).is_ok()
}

/// Starts a modelled thread (loom names them itself).
#[cfg(loom)]
pub(crate) fn spawn(_name: String, body: impl FnOnce() + Send + 'static) -> bool {
    loom::thread::spawn(body);
    true
}
