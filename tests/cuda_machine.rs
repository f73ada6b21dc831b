//! The CUDA stream machine's failure paths, one test per review finding of issue 8 (allocation ordering,
//! failed waits and frees, pinned events, work enqueued without the machine's lock, host functions that touch
//! the machine, out-of-memory retries, the caller's context, device faults, refused work).
//!
//! Most run on the simulated driver only: they inject driver failures and faults (`sim_fail_next`,
//! `sim_fault_next`) or count the simulator's reports; on a real GPU they say they were skipped. A test that
//! could hang the machine when it fails runs its blocking parts on helper threads with a time limit.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamdsl::__private::{busy_on, cuda as machine};
use streamdsl::prelude::*;
use streamdsl_tests::{block, cuda_or_skip, report};

/// `CUDA_ERROR_INVALID_HANDLE`: what an injected driver failure returns.
const INVALID_HANDLE: i32 = 400;
/// `CUDA_ERROR_NOT_PERMITTED`: what the simulator returns (and reports) for a driver call from a host function.
const NOT_PERMITTED: i32 = 800;

/// The CUDA device when it runs on the simulated driver; `None` (with a printed reason) otherwise.
fn sim_device(test: &str) -> Option<Device> {
    let dev = cuda_or_skip(test)?;
    if !machine::on_simulator() {
        report(&format!("skipped {test}: it injects failures into the simulated driver"));
        return None;
    }
    Some(dev)
}

/// Runs `f` on a thread of its own; its result if it returns within `limit` (else the thread is left behind).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

fn free_stream_ok(dev: &Device) {
    let status = machine::free_stream_status(dev).expect("a CUDA device");
    assert!(status.is_ok(), "the free stream failed: {status:?}; last report: {:?}", machine::sim_last_report());
}

/// Finding 1: a buffer dropped before anything wrote it (its op was refused, or its launch failed) is freed
/// after its allocation, not unordered with it.
#[test]
fn a_buffer_dropped_unwritten_is_freed_after_its_allocation() {
    let Some(dev) = sim_device("a_buffer_dropped_unwritten_is_freed_after_its_allocation") else { return };
    let s = Stream::new(&dev).unwrap();
    s.launch_host_func(|| panic!("poisoned on purpose"));
    assert!(s.synchronize().is_err());
    for _ in 0..3 {
        // The output is allocated on `s`, then the op is refused: it is dropped with nothing written.
        assert!(ops::full_on(&s, [1024], 1.0f32).is_err());
    }
    let t = Stream::new(&dev).unwrap();
    assert!(machine::sim_fail_next("cuLaunchKernel", INVALID_HANDLE));
    assert!(ops::full_on(&t, [1024], 1.0f32).is_err(), "the launch failed");
    free_stream_ok(&dev);
}

/// Finding 2: when the wait that orders a free after a buffer's last use fails, the buffer is leaked (with a
/// warning), never freed unordered; a failed free is counted too.
#[test]
fn a_failed_wait_before_a_free_leaks_instead_of_freeing() {
    let Some(dev) = sim_device("a_failed_wait_before_a_free_leaks_instead_of_freeing") else { return };
    let s = Stream::new(&dev).unwrap();
    busy_on(&s, Duration::from_millis(300), 1).unwrap();
    let x = ops::full_on(&s, [1024], 1.0f32).unwrap(); // written ~300 ms from now
    let leaked = machine::leaked_frees(&dev).unwrap();
    assert!(machine::sim_fail_next("cuStreamWaitEvent", INVALID_HANDLE));
    drop(x);
    assert_eq!(machine::leaked_frees(&dev), Some(leaked + 1), "the buffer must be leaked, not freed");
    let y = ops::full_on(&s, [1024], 1.0f32).unwrap();
    s.synchronize().unwrap();
    assert!(machine::sim_fail_next("cuMemFreeAsync", INVALID_HANDLE));
    drop(y);
    assert_eq!(machine::leaked_frees(&dev), Some(leaked + 2), "a failed free is a leak too");
    free_stream_ok(&dev);
}

/// Finding 3: a wait that failed is not remembered as done: the next op that needs it waits.
#[test]
fn a_failed_wait_is_made_again_by_the_next_op() {
    let Some(dev) = sim_device("a_failed_wait_is_made_again_by_the_next_op") else { return };
    let (a, b) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    busy_on(&a, Duration::from_millis(300), 1).unwrap();
    let x = ops::full_on(&a, [1024], 1.0f32).unwrap();
    assert!(machine::sim_fail_next("cuStreamWaitEvent", INVALID_HANDLE));
    let first = ops::add_scalar_on(&b, &x, 1.0);
    assert!(matches!(first, Err(Error::Driver { .. })), "{:?}", first.map(|_| ()));
    let y = ops::add_scalar_on(&b, &x, 1.0).unwrap();
    let got = y.to_vec();
    assert!(got.as_ref().is_ok_and(|v| v == &vec![2.0; 1024]), "{got:?}");
    b.synchronize().unwrap();
}

/// Finding 4: the event a host waiter sleeps on is not recycled under it, so another stream's later record
/// cannot make the waiter wait for unrelated (here: blocked) work.
#[test]
fn a_host_waiter_keeps_its_event() {
    let Some(dev) = sim_device("a_host_waiter_keeps_its_event") else { return };
    let (s1, s2) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    busy_on(&s1, Duration::from_millis(100), 1).unwrap();
    let e = s1.record_event(); // completes ~100 ms from now
    let waited = e.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Picks e's event (still pending), then sleeps before waiting on it.
        machine::delay_host_waits_on_this_thread(Duration::from_millis(1000));
        let _ = tx.send(waited.synchronize());
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(e.query(), "e completed; the machine recycles the events of completed points now");
    assert!(machine::event_pool(&dev).unwrap()[1] >= 1, "the waiter's event is pinned");
    let gate = block(&s2); // records on s2 behind a host function that waits for the gate
    let later = s2.record_event();
    let outcome = rx.recv_timeout(Duration::from_secs(5));
    gate.open();
    later.synchronize().unwrap();
    assert!(
        matches!(outcome, Ok(Ok(()))),
        "the waiter for a completed event must return without the gate: {outcome:?}"
    );
}

/// Finding 5: a copy into pageable memory waiting behind a blocked stream holds no lock that other streams
/// or host functions need: other streams keep working, and a host function that reads the machine runs.
#[test]
fn a_copy_behind_a_blocked_stream_holds_up_nothing_else() {
    let Some(dev) = cuda_or_skip("a_copy_behind_a_blocked_stream_holds_up_nothing_else") else { return };
    let (s, other) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    let gate = block(&s);
    let seen = other.clone();
    s.launch_host_func(move || {
        let _ = seen.query(); // reads the machine's state from inside a host function
    });
    let copier = s.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(streamdsl::random::philox_bits_on(&copier, 4, 1, 0));
    });
    std::thread::sleep(Duration::from_millis(200)); // the copier is blocked behind the gate by now
    let started = Instant::now();
    let independent =
        within(Duration::from_secs(10), move || ops::full_on(&other, [16], 3.0f32).and_then(|t| t.to_vec()));
    let independent_took = started.elapsed();
    gate.open();
    let bits = rx.recv_timeout(Duration::from_secs(10));
    assert!(
        matches!(&independent, Some(Ok(v)) if v == &vec![3.0; 16]),
        "work on another stream waited for the blocked copy: {independent:?} after {independent_took:?}"
    );
    assert!(matches!(&bits, Ok(Ok(v)) if v.len() == 16), "the copy never finished: {bits:?}");
}

/// Finding 6: host functions may drop streams, tensors and timed events and may query streams, events and
/// tensors: none of it makes a driver call inside the callback (the simulator counts every such call), the
/// calls that need one are refused, and what was deferred happens at the next machine call.
#[test]
fn host_functions_that_touch_the_machine_make_no_driver_calls() {
    let Some(dev) = sim_device("host_functions_that_touch_the_machine_make_no_driver_calls") else { return };
    let refused = machine::sim_report_count(NOT_PERMITTED).unwrap();
    let (s, other) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    let doomed = Stream::new(&dev).unwrap(); // its last handle is dropped inside the host function
    busy_on(&doomed, Duration::from_millis(200), 1).unwrap();
    let from_doomed = ops::full_on(&doomed, [64], 4.0f32).unwrap();
    let dropped = ops::full_on(&s, [64], 2.0f32).unwrap(); // its last handle too
    let kept = ops::full_on(&s, [64], 5.0f32).unwrap();
    let (start, end) = (Event::timed(&dev), Event::timed(&dev));
    other.record(&start).unwrap();
    other.record(&end).unwrap();
    end.synchronize().unwrap();
    let plain = other.record_event();
    let results = Arc::new(Mutex::new(Vec::new()));
    let (r, o, k, f) = (results.clone(), other.clone(), kept.clone(), from_doomed.clone());
    s.launch_host_func(move || {
        let mut r = r.lock().unwrap();
        r.push(format!("query: {}", o.query()));
        r.push(format!("event: {}", plain.query()));
        r.push(format!("ready: {} {}", k.is_ready(), f.is_ready()));
        r.push(format!("elapsed: {:?}", start.elapsed_time(&end)));
        r.push(format!("clear: {:?}", o.clear_error()));
        r.push(format!("synchronize: {:?}", o.synchronize()));
        drop((doomed, dropped, start, end, plain));
    });
    s.synchronize().unwrap();
    let results = results.lock().unwrap().clone();
    assert_eq!(results.len(), 6, "{results:?}");
    assert!(results[3].contains("InHostFunction"), "elapsed_time needs the driver: refused, {results:?}");
    assert!(results[5].contains("InHostFunction"), "{results:?}");
    // The deferred release, frees and event destruction happen now, outside the callback.
    assert_eq!(kept.to_vec().unwrap(), vec![5.0; 64]);
    assert_eq!(from_doomed.to_vec().unwrap(), vec![4.0; 64], "the released stream's work still ran");
    free_stream_ok(&dev);
    let now = machine::sim_report_count(NOT_PERMITTED).unwrap();
    assert_eq!(now, refused, "driver calls from a host function; last report: {:?}", machine::sim_last_report());
}

/// Finding 7: memory a dropped tensor frees stream-ordered is available to the next allocation, even when the
/// free has not run yet (the allocation waits for pending frees and trims the pool, then retries). Runs in a
/// child process with a small simulated device.
#[test]
fn memory_of_a_dropped_tensor_is_reused() {
    if sim_device("memory_of_a_dropped_tensor_is_reused").is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "small_device_child", "--nocapture", "--test-threads=1"])
        .env("STREAMDSL_TEST_SMALL_DEVICE_CHILD", "1")
        .env("STREAMDSL_SIM_MEMORY", (8u64 << 20).to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("small device: ok"), "{stdout}");
}

#[test]
#[ignore = "a child process of `memory_of_a_dropped_tensor_is_reused`"]
fn small_device_child() {
    if std::env::var_os("STREAMDSL_TEST_SMALL_DEVICE_CHILD").is_none() {
        return;
    }
    let dev = cuda_or_skip("small_device_child").expect("the simulated device");
    let s = Stream::new(&dev).unwrap();
    let n = 5 << 18; // 5 MiB of f32 on an 8 MiB device: two do not fit
    for round in 0..3 {
        busy_on(&s, Duration::from_millis(200), 1).unwrap();
        let x = ops::zeros_on::<f32>(&s, [n]).unwrap();
        drop(x); // freed once the memset has run, ~200 ms from now
        let y = ops::zeros_on::<f32>(&s, [n]);
        let y = y.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(y.to_vec().unwrap().len(), n);
    }
    println!("small device: ok");
}

/// Finding 8: the machine leaves the calling thread's context binding as it found it.
#[test]
fn the_callers_context_binding_is_left_as_it_was() {
    let Some(dev) = cuda_or_skip("the_callers_context_binding_is_left_as_it_was") else { return };
    let seen = std::thread::spawn(move || -> Result<Vec<(&'static str, bool)>> {
        let mut seen = vec![("before", machine::context_is_current())];
        let s = Stream::new(&dev)?;
        seen.push(("Stream::new", machine::context_is_current()));
        let t = ops::full_on(&s, [4], 1.0f32)?;
        seen.push(("full_on", machine::context_is_current()));
        assert_eq!(t.to_vec()?, vec![1.0; 4]);
        seen.push(("to_vec", machine::context_is_current()));
        let (a, b) = (Event::timed(&dev), Event::timed(&dev));
        s.record(&a)?;
        s.record(&b)?;
        b.synchronize()?;
        a.elapsed_time(&b)?;
        seen.push(("events", machine::context_is_current()));
        s.synchronize()?;
        drop((t, a, b, s));
        seen.push(("drops", machine::context_is_current()));
        Ok(seen)
    })
    .join()
    .unwrap()
    .unwrap();
    assert!(seen.iter().all(|(_, current)| !current), "a context was left current: {seen:?}");
}

/// Finding 9: a fault on the device (injected into the simulator) surfaces as `StreamPoisoned` with the
/// driver's message from `synchronize` and `to_vec`, poisons what the failed work wrote, leaves other
/// streams working, and `clear_error` recovers the stream.
#[test]
fn a_device_fault_poisons_its_stream_until_cleared() {
    let Some(dev) = sim_device("a_device_fault_poisons_its_stream_until_cleared") else { return };
    let (s, other) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    let x = ops::full_on(&s, [256], 1.0f32).unwrap();
    s.synchronize().unwrap();
    assert!(machine::sim_fault_next());
    let y = ops::add_scalar_on(&s, &x, 1.0).unwrap(); // enqueued; faults when it runs
    let err = s.synchronize().unwrap_err();
    assert!(matches!(err, Error::StreamPoisoned { .. }), "{err}");
    assert!(err.to_string().contains("injected fault"), "the driver's message with the report: {err}");
    let read = y.to_vec();
    assert!(matches!(read, Err(Error::StreamPoisoned { .. })), "{read:?}");
    let derived = ops::mul_scalar_on(&other, &y, 2.0).and_then(|z| z.to_vec());
    assert!(matches!(derived, Err(Error::StreamPoisoned { .. })), "{derived:?}");
    assert_eq!(ops::add_scalar_on(&other, &x, 2.0).unwrap().to_vec().unwrap(), vec![3.0; 256]);
    assert!(ops::full_on(&s, [4], 1.0f32).is_err(), "the stream refuses work until cleared");
    let cause = s.clear_error().expect("the fault is handed over once");
    assert!(cause.to_string().contains("injected fault"), "{cause}");
    s.synchronize().unwrap();
    assert_eq!(ops::add_scalar_on(&s, &x, 4.0).unwrap().to_vec().unwrap(), vec![5.0; 256]);

    // Found by `to_vec` first, this time.
    assert!(machine::sim_fault_next());
    let z = ops::add_scalar_on(&s, &x, 1.0).unwrap();
    let read = z.to_vec();
    assert!(matches!(read, Err(Error::StreamPoisoned { .. })), "{read:?}");
    assert!(s.synchronize().is_err());
    assert!(s.clear_error().is_some());
    assert_eq!(ops::full_on(&s, [2], 7.0f32).unwrap().to_vec().unwrap(), vec![7.0; 2]);
    drop((x, y, z));
    free_stream_ok(&dev);
}

/// Finding 9, refused work: an op refused on a poisoned stream poisons the tensor it would have written (as
/// the CPU backend's skipped work does), on every stream and after `clear_error`, until a write replaces it.
#[test]
fn work_refused_on_a_poisoned_stream_poisons_what_it_would_have_written() {
    let Some(dev) = cuda_or_skip("work_refused_on_a_poisoned_stream_poisons_what_it_would_have_written") else {
        return;
    };
    let (s, other) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    let x = ops::full_on(&s, [4], 1.0f32).unwrap();
    s.synchronize().unwrap();
    s.launch_host_func(|| panic!("poisoned on purpose"));
    assert!(s.synchronize().is_err());
    assert!(ops::fill_on(&s, &x, 3.0).is_err(), "refused: x was to hold 3.0");
    let named = |e: &Error| e.to_string().contains("poisoned on purpose");
    let read = x.to_vec();
    assert!(read.as_ref().is_err_and(named), "{read:?}");
    let derived = ops::add_scalar_on(&other, &x, 1.0).and_then(|y| y.to_vec());
    assert!(derived.as_ref().is_err_and(named), "{derived:?}");
    assert!(s.clear_error().is_some());
    assert!(x.to_vec().is_err(), "clear_error does not make the contents valid");
    ops::fill_on(&other, &x, 5.0).unwrap();
    assert_eq!(x.to_vec().unwrap(), vec![5.0; 4]);
}

/// A stream dropped with work still queued: the work runs, its results are readable, its memory is freed in
/// order, and timed events measure it.
#[test]
fn a_released_stream_finishes_its_work() {
    let Some(dev) = cuda_or_skip("a_released_stream_finishes_its_work") else { return };
    let s = Stream::new(&dev).unwrap();
    let (start, end) = (Event::timed(&dev), Event::timed(&dev));
    s.record(&start).unwrap();
    busy_on(&s, Duration::from_millis(100), 1).unwrap();
    let x = ops::full_on(&s, [64], 2.0f32).unwrap();
    let y = ops::mul_scalar_on(&s, &x, 3.0).unwrap();
    s.record(&end).unwrap();
    drop(s);
    drop(x);
    assert_eq!(y.to_vec().unwrap(), vec![6.0; 64]);
    end.synchronize().unwrap();
    let dt = start.elapsed_time(&end).unwrap();
    assert!(dt >= Duration::from_millis(100), "{dt:?}");
    if machine::on_simulator() {
        free_stream_ok(&dev);
    }
}
