//! Reports: what a check found, printed once to stderr and kept as the process's last report.

use std::sync::{Arc, Mutex};

use cudarc::driver::sys::CUresult;

/// A failed operation: the status its stream is poisoned with and the report's text.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The error code later synchronisations on the stream return.
    pub code: CUresult,
    /// What happened (names the operation, the stream and the allocation).
    pub text: Arc<str>,
}

static LAST: Mutex<Option<(u64, Arc<str>)>> = Mutex::new(None);

/// How many reports were made, by error code.
static COUNTS: Mutex<Vec<(i32, u64)>> = Mutex::new(Vec::new());

fn lock_last() -> std::sync::MutexGuard<'static, Option<(u64, Arc<str>)>> {
    LAST.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records and prints a report (to stderr, unless `STREAMDSL_SIM_QUIET=1`), returning it as a fault.
pub fn report(code: CUresult, text: String) -> Fault {
    let text: Arc<str> = Arc::from(text);
    {
        let mut last = lock_last();
        let seq = last.as_ref().map_or(1, |(n, _)| n + 1);
        *last = Some((seq, Arc::clone(&text)));
    }
    {
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        match counts.iter_mut().find(|(c, _)| *c == code as i32) {
            Some((_, n)) => *n += 1,
            None => counts.push((code as i32, 1)),
        }
    }
    if !crate::driver::config::config().quiet {
        eprintln!("streamdsl-cuda-sim: {text}");
    }
    Fault { code, text }
}

/// The last report's text, if any, with a sequence number that changes with every report.
pub fn last() -> Option<(u64, Arc<str>)> {
    lock_last().clone()
}

/// How many reports with error `code` were made so far (`None`: of every code).
pub fn count(code: Option<i32>) -> u64 {
    let counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    counts.iter().filter(|(c, _)| code.is_none_or(|want| *c == want)).map(|(_, n)| n).sum()
}
