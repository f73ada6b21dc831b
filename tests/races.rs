//! Deliberately conflicting multi-stream programs: safe code must not race.
//!
//! Every test here also runs the vector-clock race checker (`set_sanitize`), which fails an op whose accesses
//! the tracker's waits leave unordered; the results are checked as values too.

use std::time::Duration;

use streamdsl::prelude::*;
use streamdsl_tests::{block, test_device};

/// `test_device!` bodies call this first: the race checker is on for this whole test binary.
fn sanitized() {
    streamdsl::set_sanitize(true);
}

fn sleep_on(s: &Stream, ms: u64) {
    s.launch_host_func(move || std::thread::sleep(Duration::from_millis(ms)));
}

/// Read after write: a read on another stream waits for the write.
fn read_waits_for_foreign_write(dev: &Device) -> Result<()> {
    sanitized();
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let x = ops::zeros_on::<f32>(&a, [1024])?;
    sleep_on(&a, 50);
    ops::fill_on(&a, &x, 1.0)?; // lands after the sleep
    let y = ops::mul_scalar_on(&b, &x, 2.0)?; // b would read zeros without the wait
    assert_eq!(y.to_vec()?, vec![2.0; 1024]);
    Ok(())
}
test_device!(raw, read_waits_for_foreign_write);

/// Write after read: a write on another stream waits for an earlier read.
fn write_waits_for_foreign_read(dev: &Device) -> Result<()> {
    sanitized();
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let x = ops::full_on(&a, [1024], 3.0f64)?;
    a.synchronize()?;
    sleep_on(&b, 50);
    let y = ops::add_scalar_on(&b, &x, 0.0)?; // reads x after the sleep
    ops::fill_on(&a, &x, -1.0)?; // must not overwrite x before b has read it
    assert_eq!(y.to_vec()?, vec![3.0; 1024]);
    assert_eq!(x.to_vec()?, vec![-1.0; 1024]);
    Ok(())
}
test_device!(war, write_waits_for_foreign_read);

/// A write waits for *every* earlier reader, not only the most recent one (cudarc keeps one read event).
fn write_waits_for_all_readers(dev: &Device) -> Result<()> {
    sanitized();
    let (a, b, c) = (Stream::new(dev)?, Stream::new(dev)?, Stream::new(dev)?);
    let x = ops::full_on(&a, [4096], 5.0f32)?;
    a.synchronize()?;
    sleep_on(&b, 120); // the slow, earlier reader
    let y1 = ops::mul_scalar_on(&b, &x, 1.0)?;
    sleep_on(&c, 10); // the fast, later reader
    let y2 = ops::mul_scalar_on(&c, &x, 1.0)?;
    ops::fill_on(&a, &x, 0.0)?;
    assert_eq!(y1.to_vec()?, vec![5.0; 4096], "the write overtook the earlier reader");
    assert_eq!(y2.to_vec()?, vec![5.0; 4096]);
    Ok(())
}
test_device!(many_readers, write_waits_for_all_readers);

/// Write after write on two streams keeps program order.
fn writes_keep_program_order(dev: &Device) -> Result<()> {
    sanitized();
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let x = ops::zeros_on::<f32>(&a, [256])?;
    sleep_on(&a, 40);
    ops::fill_on(&a, &x, 1.0)?;
    ops::fill_on(&b, &x, 2.0)?; // later in program order: must land last
    assert_eq!(x.to_vec()?, vec![2.0; 256]);
    Ok(())
}
test_device!(waw, writes_keep_program_order);

/// Buffers stay alive while pending work uses them, even when every handle is dropped.
fn storage_outlives_its_handles(dev: &Device) -> Result<()> {
    sanitized();
    let (a, b) = (Stream::new(dev)?, Stream::new(dev)?);
    let gate = block(&a);
    let y = {
        let x = ops::full_on(&a, [1 << 16], 4.0f32)?;
        let t = ops::add_scalar_on(&b, &x, 1.0)?;
        drop(x);
        t
    };
    drop(a); // the stream handle too: queued work still runs
    gate.open();
    assert_eq!(y.to_vec()?, vec![5.0; 1 << 16]);
    Ok(())
}
test_device!(lifetime, storage_outlives_its_handles);

/// `to_vec` waits for the producer only, not for unrelated work queued after it on the same stream.
fn to_vec_waits_only_for_the_producer(dev: &Device) -> Result<()> {
    sanitized();
    let s = Stream::new(dev)?;
    let x = ops::full_on(&s, [8], 1.5f32)?;
    let gate = block(&s); // unrelated work after the producer
    assert_eq!(x.to_vec()?, vec![1.5; 8]);
    assert!(!s.query());
    gate.open();
    s.synchronize()
}
test_device!(to_vec_producer_only, to_vec_waits_only_for_the_producer);

/// One thread's mixed program over 8 streams; returns every result.
fn program(seed: u64, streams: &[Stream]) -> Result<Vec<Vec<f32>>> {
    let g = Generator::new(seed);
    let n = streams.len();
    let mut outs = Vec::new();
    let mut carry = ops::randn_with_on::<f32>(&streams[0], [24, 24], &g)?;
    for i in 0..3 * n {
        let (s0, s1, s2) = (&streams[i % n], &streams[(i + 1) % n], &streams[(i + 3) % n]);
        let a = ops::randn_with_on::<f32>(s0, [24, 24], &g)?;
        let b = ops::mm_on(s1, &a, &carry)?; // reads a (s0) and carry (elsewhere)
        let c = ops::add_on(s2, &b, &a)?;
        let d = ops::mul_scalar_on(s0, &c, 0.5)?;
        ops::copy_on(s1, &carry, &d)?; // overwrite a tensor others may still read
        let total = ops::sum_on(s2, &carry)?;
        if i % 4 == 0 {
            outs.push(total.to_vec()?);
        }
        carry = ops::div_scalar_on(s2, &carry, 1.0 + f64::from(total.item()?.abs()))?;
    }
    outs.push(carry.to_vec()?);
    Ok(outs)
}

#[test]
fn stress_16_threads_8_streams_equals_sequential() {
    sanitized();
    let dev = Device::cpu();
    let sequential: Vec<_> = (0..16u64)
        .map(|t| {
            let one = Stream::new(&dev).unwrap();
            program(t, &vec![one; 8]).unwrap()
        })
        .collect();
    let concurrent: Vec<_> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..16u64)
            .map(|t| {
                sc.spawn(move || {
                    let streams: Vec<Stream> =
                        (0..8).map(|i| Stream::with_priority(&dev, -(i % 3))).collect::<Result<_>>()?;
                    program(t, &streams)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    assert_eq!(concurrent, sequential);
}
