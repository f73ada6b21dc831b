//! Shared helpers of the integration tests: one test body for every backend, references, gates.

use std::sync::{Arc, Condvar, Mutex};

use streamdsl::prelude::*;

/// The CUDA device to test on, or `None` (with a printed reason) where there is none.
/// `STREAMDSL_REQUIRE_CUDA=1` turns a missing device into a failure, for runs on GPU machines.
pub fn cuda_or_skip(test: &str) -> Option<Device> {
    found_or_skip(test, "STREAMDSL_REQUIRE_CUDA", Device::cuda(0))
}

/// NVRTC, or `None` (with a printed reason) where it is not found. `STREAMDSL_REQUIRE_NVRTC=1` (set by
/// `./scripts/test`, which installs the wheel) turns a missing NVRTC into a failure.
pub fn nvrtc_or_skip(test: &str) -> Option<streamdsl::jit::Nvrtc> {
    found_or_skip(test, "STREAMDSL_REQUIRE_NVRTC", streamdsl::jit::Nvrtc::find())
}

/// `found`'s value, or `None` with a reported skip of `test`; a panic instead when `require` (an environment
/// variable) is `1`.
fn found_or_skip<T, E: std::fmt::Display>(test: &str, require: &str, found: Result<T, E>) -> Option<T> {
    match found {
        Ok(value) => Some(value),
        Err(e) if std::env::var(require).is_ok_and(|v| v == "1") => panic!("{test}: {require}=1 but {e}"),
        Err(e) => {
            report(&format!("skipped {test}: {e}"));
            None
        }
    }
}

/// Reports a line about the run (what was skipped and why, what the compile tests covered) where a passing
/// test's output is not hidden: appended to the file `STREAMDSL_TEST_REPORT` names (`./scripts/test` prints
/// it after the tests), else written to the real stderr rather than the harness's captured output.
pub fn report(message: &str) {
    use std::io::Write;
    let to_file = std::env::var_os("STREAMDSL_TEST_REPORT")
        .and_then(|path| std::fs::OpenOptions::new().create(true).append(true).open(path).ok());
    let _ = match to_file {
        // One write per line, so lines from parallel tests do not interleave.
        Some(mut file) => file.write_all(format!("{message}\n").as_bytes()),
        None => writeln!(std::io::stderr(), "{message}"),
    };
}

/// Runs `$body(&Device) -> streamdsl::Result<()>` as `$name::cpu` and `$name::cuda` (skipped without a GPU).
#[macro_export]
macro_rules! test_device {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body(&streamdsl::Device::cpu()).unwrap();
            }
            #[test]
            fn cuda() {
                if let Some(dev) = $crate::cuda_or_skip(concat!(module_path!(), "::cuda")) {
                    super::$body(&dev).unwrap();
                }
            }
        }
    };
}

/// Runs `$body(&Device) -> streamdsl::Result<()>` as `$name::cpu` only: for semantics of the CPU stream
/// machine's host work (concurrent host functions, skipping work after a failure) that CUDA host callbacks do
/// not share — the driver may run all callbacks on one thread, so a blocked callback would stall the others.
#[macro_export]
macro_rules! cpu_test {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$body(&streamdsl::Device::cpu()).unwrap();
            }
        }
    };
}

/// A latch a host function can block on until the test opens it.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
    pub fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }
}

/// Blocks `stream` until the returned gate is opened.
pub fn block(stream: &Stream) -> Gate {
    let gate = Gate::new();
    let g = gate.clone();
    stream.launch_host_func(move || g.wait());
    gate
}

/// `a · b` in f64 for row-major `m×k` and `k×n`.
pub fn naive_mm(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            for j in 0..n {
                c[i * n + j] += x * b[p * n + j];
            }
        }
    }
    c
}

/// ‖x − y‖ / ‖y‖.
pub fn rel_err(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len());
    let num: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = y.iter().map(|b| b * b).sum();
    (num / den).sqrt()
}

/// Widens a tensor's data to f64.
pub fn to_f64<T: Element>(t: &Tensor<T>) -> Vec<f64> {
    t.to_vec().unwrap().into_iter().map(|v| v.to_f64()).collect()
}

/// Proves concurrency: `parties` host functions each call [`Rendezvous::meet`], which returns true only if all
/// of them were running at the same moment (it waits up to 10 s for the others, so a test never hangs).
#[derive(Clone)]
pub struct Rendezvous {
    arrived: Arc<std::sync::atomic::AtomicUsize>,
    parties: usize,
}

impl Rendezvous {
    pub fn new(parties: usize) -> Rendezvous {
        Rendezvous { arrived: Arc::default(), parties }
    }

    pub fn meet(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.arrived.load(Ordering::SeqCst) < self.parties {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }
}
