//! Reliability: no silent garbage after a failure, no growth over long runs, out of memory as an error, no
//! hang when a host function calls back into the machine. Each test names the row of the reliability issue it
//! reproduces. The tests that count live bookkeeping entries or switch process-wide modes hold `SERIAL`, so
//! the other tests of this binary do not disturb their counts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use streamdsl::__private::{access_log_entries, cpu_bookkeeping};
use streamdsl::prelude::*;
use streamdsl_tests::{block, cpu_test, test_device};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Row 1: a tensor whose producer was skipped on a poisoned stream is an error to read, on every stream, also
/// after `clear_error`, and also when the reader was enqueued before the producer was skipped.
fn poisoned_tensors_stay_errors(dev: &Device) -> Result<()> {
    let _serial = serial();
    let s = Stream::new(dev)?;
    s.launch_host_func(|| panic!("producer exploded"));
    let x = ops::full_on(&s, [4], 1.0f32)?; // skipped
    assert!(s.synchronize().is_err());
    assert!(s.clear_error().is_some());
    let named = |e: &Error| e.to_string().contains("producer exploded");
    // Before: `add_scalar_on(&s, &x, 1.0)?.to_vec()` was Ok([1, 1, 1, 1]), computed from zeros.
    let on_s = ops::add_scalar_on(&s, &x, 1.0).and_then(|y| y.to_vec());
    assert!(on_s.as_ref().is_err_and(named), "{on_s:?}");
    let other = Stream::new(dev)?;
    let on_other = ops::mul_scalar_on(&other, &x, 2.0).and_then(|y| y.to_vec());
    assert!(on_other.as_ref().is_err_and(named), "{on_other:?}");
    assert!(x.to_vec().is_err_and(|e| named(&e)));
    // A reader enqueued while the producer is still queued finds out when it runs.
    let held = Stream::new(dev)?;
    let gate = block(&held);
    held.launch_host_func(|| panic!("late failure"));
    let late = ops::full_on(&held, [4], 3.0f32)?;
    let reader = Stream::new(dev)?;
    let z = ops::add_scalar_on(&reader, &late, 1.0)?; // enqueued: the write it reads has not happened yet
    gate.open();
    assert!(z.to_vec().is_err_and(|e| e.to_string().contains("late failure")));
    assert!(reader.synchronize().is_err(), "the reader's stream is poisoned by its bad input");
    reader.clear_error();
    held.clear_error();
    // A full overwrite makes the tensor valid again.
    late.fill_(5.0)?;
    assert_eq!(late.to_vec()?, vec![5.0; 4]);
    assert_eq!(ops::add_scalar_on(&reader, &late, 1.0)?.to_vec()?, vec![6.0; 4]);
    Ok(())
}
cpu_test!(poisoned_tensors, poisoned_tensors_stay_errors);

/// Row 2: work enqueued before `clear_error` never runs, even when it is still queued at the call; work
/// enqueued after it runs.
fn clear_error_does_not_release_queued_work(dev: &Device) -> Result<()> {
    let _serial = serial();
    let (s, other) = (Stream::new(dev)?, Stream::new(dev)?);
    let gate = block(&other);
    s.launch_host_func(|| panic!("first failure"));
    s.wait_stream(&other)?; // holds what follows in the queue until the gate opens
    let (before, after) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let b = before.clone();
    s.launch_host_func(move || b.store(true, Ordering::SeqCst));
    while s.clear_error().is_none() {
        std::thread::yield_now(); // until the failure has happened
    }
    let a = after.clone();
    s.launch_host_func(move || a.store(true, Ordering::SeqCst));
    gate.open();
    s.synchronize()?;
    assert!(!before.load(Ordering::SeqCst), "work enqueued while the stream was poisoned ran");
    assert!(after.load(Ordering::SeqCst), "work enqueued after clear_error did not run");
    Ok(())
}
cpu_test!(clear_error_rule, clear_error_does_not_release_queued_work);

/// Row 4: streams dropped while poisoned are forgotten once drained.
#[test]
fn dropped_poisoned_streams_are_forgotten() {
    let _serial = serial();
    let dev = Device::cpu();
    let before = cpu_bookkeeping()[0];
    for _ in 0..2_000 {
        let s = Stream::new(&dev).unwrap();
        s.launch_host_func(|| panic!("dropped while poisoned"));
        let _ = ops::full_on(&s, [1], 1.0f32).unwrap();
    }
    // Later work is not slowed by them, and they are gone once they drained.
    let s = Stream::new(&dev).unwrap();
    for _ in 0..100 {
        assert_eq!(ops::ones_on::<f32>(&s, [4]).unwrap().to_vec().unwrap(), vec![1.0; 4]);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cpu_bookkeeping()[0] > before + 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let after = cpu_bookkeeping()[0];
    assert!(after <= before + 2, "{} streams left of 2,000 dropped ones (before: {before})", after);
}

/// Row 5: a long-lived stream that waits on many short-lived ones keeps a bounded map of what it waited for.
#[test]
fn waits_on_short_lived_streams_do_not_accumulate() {
    let _serial = serial();
    let dev = Device::cpu();
    let long = Stream::new(&dev).unwrap();
    let mut sizes = Vec::new();
    for _ in 0..10 {
        let hold = Stream::new(&dev).unwrap();
        let gate = block(&hold);
        let held = hold.record_event();
        for _ in 0..500 {
            let short = Stream::new(&dev).unwrap();
            short.wait_event(&held).unwrap(); // so its record below is still pending
            long.wait_event(&short.record_event()).unwrap();
        }
        gate.open();
        long.synchronize().unwrap();
        sizes.push(cpu_bookkeeping()[2]);
    }
    // Each batch's 500 short-lived streams may be remembered until the next batch prunes them; without
    // pruning the map would hold every stream ever waited for (500, 1000, …, 5000).
    assert!(sizes.iter().all(|&n| n <= 1_100), "streams a stream remembers having waited for, per batch: {sizes:?}");
}

/// Row 6: reading one long-lived tensor over and over keeps its access log short.
#[test]
fn repeated_reads_keep_the_access_log_short() {
    let _serial = serial();
    let t = ops::full_on(&Stream::new(&Device::cpu()).unwrap(), [16], 2.0f32).unwrap();
    for _ in 0..20_000 {
        assert_eq!(t.to_vec().unwrap()[0], 2.0);
    }
    let n = access_log_entries(&t);
    assert!(n <= 2, "the access log holds {n} points after 20,000 reads");
}

/// Row 7: the race checker's memory is bounded by what is live, not by how long the program ran.
#[test]
fn the_race_checker_forgets_what_is_gone() {
    let _serial = serial();
    streamdsl::set_sanitize(true);
    let dev = Device::cpu();
    let streams: Vec<Stream> = (0..8).map(|_| Stream::new(&dev).unwrap()).collect();
    let mut sizes = Vec::new();
    for round in 0..4 {
        for i in 0..1_000 {
            let (a, b, c) = (&streams[i % 8], &streams[(i + 3) % 8], &streams[(i + 5) % 8]);
            let x = ops::full_on(a, [8], 1.0f32).unwrap();
            let y = ops::add_scalar_on(b, &x, 1.0).unwrap();
            ops::fill_on(c, &x, 3.0).unwrap();
            let transient = Stream::new(&dev).unwrap();
            let z = ops::mul_on(&transient, &x, &y).unwrap();
            if i % 100 == 0 {
                assert_eq!(z.to_vec().unwrap(), vec![6.0; 8], "round {round}, op {i}");
            }
        }
        streams.iter().for_each(|s| s.synchronize().unwrap());
        sizes.push(cpu_bookkeeping()[3]);
    }
    streamdsl::set_sanitize(false);
    // Linear growth would put the last round at four times the first.
    assert!(sizes[3] <= 2 * sizes[0] + 1_000, "race checker entries per 1,000 rounds: {sizes:?}");
}

/// Row 8: strict mode refuses implicit host synchronisation; the waits one stream makes for another stay
/// allowed (they never block the host).
#[test]
fn strict_mode_refuses_host_blocking_only() {
    let _serial = serial();
    let dev = Device::cpu();
    let (a, b) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    let gate = block(&a);
    let x = ops::full_on(&a, [4], 1.0f32).unwrap();
    streamdsl::set_strict(true);
    let y = ops::add_scalar_on(&b, &x, 1.0); // a cross-stream wait, on the device side
    let read = x.to_vec();
    streamdsl::set_strict(false);
    gate.open();
    assert!(matches!(read, Err(Error::ImplicitSync { op: "to_vec" })), "{read:?}");
    assert_eq!(y.unwrap().to_vec().unwrap(), vec![2.0; 4]);
}

/// Row 9: a host function that waits on the machine gets an error instead of hanging forever.
fn host_functions_may_not_wait(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let t = ops::full_on(&s, [4], 1.0f32)?;
    let results = Arc::new(Mutex::new(Vec::new()));
    let (own, r, tensor) = (s.clone(), results.clone(), t.clone());
    s.launch_host_func(move || {
        let mut r = r.lock().unwrap();
        r.push(own.synchronize().map(|_| ()));
        r.push(tensor.to_vec().map(|_| ()));
        r.push(ops::ones_on::<f32>(&own, [1]).map(|_| ()));
    });
    s.synchronize()?;
    let results = results.lock().unwrap();
    assert_eq!(results.len(), 3);
    for r in results.iter() {
        assert!(matches!(r, Err(Error::InHostFunction { .. })), "{r:?}");
    }
    assert_eq!(t.to_vec()?, vec![1.0; 4], "outside the host function the same calls work");
    Ok(())
}
test_device!(host_function_waits, host_functions_may_not_wait);

/// Row 3: allocations that cannot be satisfied are errors. The CPU backend refuses live tensors beyond the
/// machine's memory instead of letting Linux overcommit them.
#[test]
fn tensors_beyond_physical_memory_are_refused() {
    let _serial = serial();
    let total: usize = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok())
        .map(|kib: usize| kib * 1024)
        .expect("/proc/meminfo");
    let s = Stream::new(&Device::cpu()).unwrap();
    let elements = total / 4 * 6 / 10; // 0.6 of the machine in f32, never touched
    let first = ops::zeros_on::<f32>(&s, [elements]).unwrap();
    let second = ops::zeros_on::<f32>(&s, [elements]).unwrap_err();
    assert!(matches!(second, Error::OutOfMemory { bytes, .. } if bytes == elements * 4), "{second}");
    drop(first);
    let third = ops::zeros_on::<f32>(&s, [elements]);
    assert!(third.is_ok(), "memory is available again once the first tensor is dropped");
}

/// Row 3, with a limit on the address space (`ulimit -v`): `to_vec` of a large tensor and the f16 product's
/// scratch are `Err`s, not aborts. Runs in a child process that sets the limit.
#[test]
fn out_of_address_space_is_an_error() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--ignored", "--exact", "address_space_child", "--nocapture", "--test-threads=1"])
        .env("STREAMDSL_TEST_ADDRESS_SPACE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("address space: ok"), "{stdout}");
}

#[test]
#[ignore = "a child process of `out_of_address_space_is_an_error`"]
fn address_space_child() {
    if std::env::var_os("STREAMDSL_TEST_ADDRESS_SPACE_CHILD").is_none() {
        return;
    }
    let s = Stream::new(&Device::cpu()).unwrap();
    let big = ops::zeros_on::<f32>(&s, [300 << 20]).unwrap(); // 1.2 GB of lazily zeroed pages
    let a = ops::ones_on::<f16>(&s, [8192, 8192]).unwrap();
    s.synchronize().unwrap();
    // Room for what exists now plus 600 MB: not for a 1.2 GB copy, nor for the f16 product's f32 scratch.
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().next().unwrap().parse().unwrap();
    let limit = pages * 4096 + (600 << 20);
    let rl = libc::rlimit { rlim_cur: limit, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: a plain setrlimit call with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
    let copy = big.to_vec();
    assert!(matches!(copy, Err(Error::OutOfMemory { .. })), "to_vec: {:?}", copy.map(|v| v.len()));
    let product = ops::mm_on(&s, &a, &a).and_then(|c| c.to_vec());
    let cause = product.unwrap_err();
    assert!(cause.to_string().contains("out of memory"), "mm f16: {cause}");
    println!("address space: ok");
}

/// `zeros` on a poisoned stream is skipped like any other op, whether its buffer is fresh zeroed memory or a
/// reused one: the result is an error (at once or when read), never a readable tensor, on every backend.
fn zeros_on_a_poisoned_stream_is_an_error(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    for len in [4usize, 1 << 16] {
        // A freed buffer of this size, so the second round gets a reused one where the backend caches.
        drop(ops::full_on(&s, [len], 3.0f32)?);
        s.synchronize()?;
        s.launch_host_func(|| panic!("poisoned on purpose"));
        assert!(s.synchronize().is_err());
        match ops::zeros_on::<f32>(&s, [len]) {
            Err(_) => {}
            Ok(z) => assert!(z.to_vec().is_err(), "zeros of {len} on a poisoned stream read back"),
        }
        s.clear_error();
        assert_eq!(ops::zeros_on::<f32>(&s, [len])?.to_vec()?, vec![0.0; len], "after clear_error");
    }
    Ok(())
}
test_device!(zeros_on_poisoned_stream, zeros_on_a_poisoned_stream_is_an_error);
