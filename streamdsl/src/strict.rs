//! Strict mode: implicit synchronisation becomes an error.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::runtime::ProcessWide;

const UNSET: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

/// Unset (read `STREAMDSL_STRICT` at first use), off or on; one switch per process.
static STRICT: ProcessWide<AtomicU8> = ProcessWide::new("strict", || AtomicU8::new(UNSET));

fn strict() -> &'static AtomicU8 {
    STRICT.get()
}

/// Turns strict mode on or off for the process (it starts from `STREAMDSL_STRICT=1`).
///
/// In strict mode a call that would block the host on unfinished device work without being asked to
/// (`Tensor::to_vec`, `Tensor::item`) returns [`Error::ImplicitSync`](crate::Error::ImplicitSync) naming
/// the call; explicit `synchronize` calls are always allowed.
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// s.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(50)));
/// let t = ops::ones_on::<f32>(&s, [4])?;
/// streamdsl::set_strict(true);
/// assert!(matches!(t.to_vec(), Err(Error::ImplicitSync { op: "to_vec" })));
/// s.synchronize()?;
/// assert_eq!(t.to_vec()?, vec![1.0; 4]);
/// streamdsl::set_strict(false);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn set_strict(on: bool) {
    strict().store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// Whether strict mode is on.
///
/// ```
/// streamdsl::set_strict(false);
/// assert!(!streamdsl::is_strict());
/// ```
pub fn is_strict() -> bool {
    match strict().load(Ordering::Relaxed) {
        UNSET => {
            let on = std::env::var("STREAMDSL_STRICT").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
            set_strict(on);
            on
        }
        v => v == ON,
    }
}
