//! Stream and event semantics, checked against torch.Stream / torch.Event behaviour.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streamdsl::prelude::*;
use streamdsl_tests::{block, cpu_test, test_device, Gate, Rendezvous};

fn query_reflects_completion(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    assert!(s.query(), "a fresh stream has no work");
    let gate = block(&s);
    let t = ops::ones_on::<f32>(&s, [16])?;
    assert!(!s.query(), "work is queued behind the gate");
    assert!(!t.is_ready());
    gate.open();
    s.synchronize()?;
    assert!(s.query(), "after synchronize everything has completed");
    assert!(t.is_ready());
    Ok(())
}
test_device!(query, query_reflects_completion);

fn wait_event_orders_streams(dev: &Device) -> Result<()> {
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    a.launch_host_func(move || {
        std::thread::sleep(Duration::from_millis(50));
        d.store(true, Ordering::SeqCst);
    });
    let e = a.record_event();
    assert!(!e.query());
    b.wait_event(&e)?;
    let seen = Arc::new(AtomicBool::new(false));
    let (d, s) = (done.clone(), seen.clone());
    b.launch_host_func(move || s.store(d.load(Ordering::SeqCst), Ordering::SeqCst));
    b.synchronize()?;
    assert!(seen.load(Ordering::SeqCst), "b's work ran before the event it waited for");
    assert!(e.query());
    Ok(())
}
test_device!(wait_event, wait_event_orders_streams);

fn wait_stream_orders_streams(dev: &Device) -> Result<()> {
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let gate = block(&a);
    let x = ops::full_on(&a, [4], 3.0f32)?;
    b.wait_stream(&a)?;
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    b.launch_host_func(move || f.store(true, Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(30));
    assert!(!flag.load(Ordering::SeqCst), "b ran past its wait_stream");
    assert!(!b.query());
    gate.open();
    b.synchronize()?;
    assert!(flag.load(Ordering::SeqCst));
    assert!(x.is_ready(), "wait_stream covers all work already on a");
    Ok(())
}
test_device!(wait_stream, wait_stream_orders_streams);

fn high_priority_overtakes_queued_low_priority(dev: &Device) -> Result<()> {
    // Occupy every worker, queue low-priority work, then high-priority work; free one worker.
    let workers = dev.concurrency();
    let started = Arc::new(AtomicUsize::new(0));
    let blockers: Vec<Stream> = (0..workers).map(|_| Stream::new(dev)).collect::<Result<_>>()?;
    let gates: Vec<Gate> = blockers
        .iter()
        .map(|s| {
            let (gate, st) = (Gate::new(), started.clone());
            let g2 = gate.clone();
            s.launch_host_func(move || {
                st.fetch_add(1, Ordering::SeqCst);
                g2.wait();
            });
            gate
        })
        .collect();
    while started.load(Ordering::SeqCst) < workers {
        std::thread::yield_now();
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    let low: Vec<Stream> = (0..3).map(|_| Stream::with_priority(dev, 0)).collect::<Result<_>>()?;
    for (i, s) in low.iter().enumerate() {
        let o = order.clone();
        s.launch_host_func(move || o.lock().unwrap().push(format!("low{i}")));
    }
    let high = Stream::with_priority(dev, -3)?;
    let o = order.clone();
    high.launch_host_func(move || o.lock().unwrap().push("high".to_string()));
    gates[0].open();
    high.synchronize()?;
    gates.iter().for_each(Gate::open);
    for s in &low {
        s.synchronize()?;
    }
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 4);
    assert_eq!(order[0], "high", "the high-priority stream must go first: {order:?}");
    Ok(())
}
// Blocks every worker with host functions: CPU-machine semantics (see `cpu_test!`).
cpu_test!(priority, high_priority_overtakes_queued_low_priority);

fn elapsed_time_measures_the_work_between_events(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let (start, end) = (Event::timed(dev), Event::timed(dev));
    s.record(&start)?;
    s.launch_host_func(|| std::thread::sleep(Duration::from_millis(40)));
    s.record(&end)?;
    assert!(matches!(start.elapsed_time(&end), Err(Error::EventNotReady) | Ok(_)));
    end.synchronize()?;
    let dt = start.elapsed_time(&end)?;
    assert!(dt >= Duration::from_millis(40), "{dt:?}");
    assert!(dt < Duration::from_secs(5), "{dt:?}");
    assert!(matches!(end.elapsed_time(&start), Err(Error::InvalidArgument { .. })));
    let untimed = s.record_event();
    assert!(matches!(start.elapsed_time(&untimed), Err(Error::EventNotTimed)));
    assert!(matches!(start.elapsed_time(&Event::timed(dev)), Err(Error::EventNotRecorded)));
    Ok(())
}
test_device!(elapsed_time, elapsed_time_measures_the_work_between_events);

fn independent_streams_overlap(dev: &Device) -> Result<()> {
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let meeting = Rendezvous::new(2);
    let met = Arc::new(Mutex::new(Vec::new()));
    for s in [&a, &b] {
        let (meeting, met) = (meeting.clone(), met.clone());
        s.launch_host_func(move || {
            let both = meeting.meet();
            met.lock().unwrap().push(both);
        });
    }
    a.synchronize()?;
    b.synchronize()?;
    assert_eq!(*met.lock().unwrap(), vec![true, true], "the two streams' work did not run at the same time");
    Ok(())
}
// Two host functions running at once: CPU-machine semantics (see `cpu_test!`).
cpu_test!(overlap, independent_streams_overlap);

fn enqueue_returns_immediately(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let gate = block(&s);
    let t0 = Instant::now();
    let a = ops::randn_on::<f32>(&s, [512, 512])?;
    let b = ops::mm_on(&s, &a, &a)?;
    let c = b.add(&a)?; // default stream: waits for s inside the machine, not on the host
    assert!(t0.elapsed() < Duration::from_millis(200), "enqueueing blocked the host");
    assert!(!c.is_ready());
    gate.open();
    assert_eq!(c.to_vec()?.len(), 512 * 512);
    Ok(())
}
test_device!(async_enqueue, enqueue_returns_immediately);

fn record_again_keeps_earlier_waits(dev: &Device) -> Result<()> {
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let e = Event::new(dev);
    a.record(&e)?; // nothing before it: complete at once
    b.wait_event(&e)?;
    let gate = block(&a);
    a.record(&e)?; // overwrite: now behind the gate
    assert!(!e.query());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    b.launch_host_func(move || r.store(true, Ordering::SeqCst));
    b.synchronize()?; // must not wait for the gate: b's wait kept the first point
    assert!(ran.load(Ordering::SeqCst));
    gate.open();
    e.synchronize()?;
    Ok(())
}
// A host function on `b` while one on `a` is blocked: CPU-machine semantics (see `cpu_test!`).
cpu_test!(record_override, record_again_keeps_earlier_waits);

fn current_stream_and_scopes(dev: &Device) -> Result<()> {
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    assert_eq!(Stream::current(dev), dev.default_stream());
    {
        let _ga = a.scope();
        assert_eq!(Stream::current(dev), a);
        {
            let _gb = b.scope();
            assert_eq!(Stream::current(dev), b);
        }
        assert_eq!(Stream::current(dev), a);
    }
    assert_eq!(Stream::current(dev), dev.default_stream());
    // A panic inside the scope restores the previous stream too.
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _ga = a.scope();
        panic!("inside the scope");
    }));
    assert!(r.is_err());
    assert_eq!(Stream::current(dev), dev.default_stream());
    // Scopes are per thread.
    let _ga = a.scope();
    let other = std::thread::scope(|sc| sc.spawn(|| Stream::current(dev)).join().unwrap());
    assert_eq!(other, dev.default_stream());
    Ok(())
}
test_device!(current, current_stream_and_scopes);

fn display_equality_and_priorities(dev: &Device) -> Result<()> {
    let s = Stream::with_priority(dev, -1)?;
    assert_eq!(s.clone(), s);
    assert_ne!(Stream::new(dev)?, s);
    let shown = format!("{s}");
    assert!(shown.contains(&format!("device={dev}")) && shown.contains("priority=-1"), "{shown}");
    assert!(shown.contains(&format!("id={}", s.id())));
    assert_eq!(s.device(), *dev);
    assert_eq!(Stream::with_priority(dev, -1000)?.priority(), dev.priority_range().1);
    assert!(matches!(Stream::with_priority(dev, 3), Err(Error::InvalidPriority { priority: 3 })));
    Ok(())
}
test_device!(display, display_equality_and_priorities);

fn failed_work_poisons_its_stream(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let x = ops::full_on(&s, [4], 1.0f32)?;
    s.launch_host_func(|| panic!("kernel exploded"));
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    s.launch_host_func(move || r.store(true, Ordering::SeqCst));
    let y = x.add_scalar(1.0)?; // on the default stream: fine, x was written before the failure
    let z = ops::mul_scalar_on(&s, &x, 2.0)?; // after the failure on s: skipped
    let err = s.synchronize().unwrap_err();
    assert!(matches!(err, Error::StreamPoisoned { .. }));
    assert!(err.to_string().contains("kernel exploded"), "{err}");
    assert!(!ran.load(Ordering::SeqCst), "work after a failure must not run");
    assert_eq!(y.to_vec()?, vec![2.0; 4]);
    assert!(matches!(z.to_vec(), Err(Error::StreamPoisoned { .. })), "z was never computed");
    // Reading a tensor whose producer was skipped fails on any stream, with the failure that skipped it.
    let other = Stream::new(dev)?;
    let e = ops::add_on(&other, &z, &x).unwrap_err();
    assert!(matches!(&e, Error::StreamPoisoned { .. }) && e.to_string().contains("kernel exploded"), "{e}");
    other.synchronize()?; // nothing was enqueued there
                          // Recovery.
    assert!(s.clear_error().is_some());
    assert!(s.clear_error().is_none());
    s.synchronize()?;
    let again = ops::mul_scalar_on(&s, &x, 3.0)?;
    assert_eq!(again.to_vec()?, vec![3.0; 4]);
    assert!(z.to_vec().is_err(), "tensors produced while poisoned stay invalid");
    assert!(ops::add_scalar_on(&s, &z, 1.0).is_err(), "also as an input on the recovered stream");
    Ok(())
}
// On CUDA, work enqueued before a failing host callback has run is not skipped (documented).
cpu_test!(poison, failed_work_poisons_its_stream);

/// What both backends share when work fails: the error (with its message) comes back from `synchronize`,
/// `clear_error` hands it over once, and the stream runs work again afterwards.
fn failure_surfaces_and_clears(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    s.launch_host_func(|| panic!("callback exploded"));
    let err = s.synchronize().unwrap_err();
    assert!(matches!(err, Error::StreamPoisoned { .. }), "{err}");
    assert!(err.to_string().contains("callback exploded"), "{err}");
    assert!(s.synchronize().is_err(), "the stream stays poisoned until cleared");
    let cause = s.clear_error().expect("the failure is reported once");
    assert!(cause.to_string().contains("callback exploded"), "{cause}");
    assert!(s.clear_error().is_none());
    s.synchronize()?;
    let x = ops::full_on(&s, [3], 2.0f64)?;
    assert_eq!(ops::mul_scalar_on(&s, &x, 4.0)?.to_vec()?, vec![8.0; 3]);
    Ok(())
}
test_device!(poison_recovery, failure_surfaces_and_clears);

fn unrecorded_events_are_complete(dev: &Device) -> Result<()> {
    let e = Event::new(dev);
    assert!(e.query() && !e.is_recorded());
    e.synchronize()?;
    let s = Stream::new(dev)?;
    s.wait_event(&e)?; // a no-op, as in CUDA
    s.synchronize()?;
    Ok(())
}
test_device!(unrecorded_event, unrecorded_events_are_complete);
