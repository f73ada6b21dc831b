//! Every op on CUDA compared with the CPU backend on the same seeds, and the stream semantics that need
//! device work to show (overlap, priorities). Runs only where a GPU is present; `STREAMDSL_REQUIRE_CUDA=1`
//! makes a missing GPU a failure.

use std::time::Duration;

use streamdsl::__private::busy_on;
use streamdsl::prelude::*;
use streamdsl_tests::{cuda_or_skip, rel_err, to_f64};

/// Tolerance of a GPU result against the CPU one, relative, per element type.
fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 2e-6,
        DType::F16 => 2e-3,
        DType::BF16 => 1e-2,
    }
}

fn compare<T: Element>(gpu_dev: &Device) -> Result<()> {
    let (cpu, gpu) = (Stream::new(&Device::cpu())?, Stream::new(gpu_dev)?);
    let name = T::DTYPE;
    let on = |s: &Stream, seed: u64, shape: &[usize]| ops::randn_with_on::<T>(s, shape, &Generator::new(seed));
    let both = |seed: u64, shape: &[usize]| -> Result<(Tensor<T>, Tensor<T>)> {
        Ok((on(&cpu, seed, shape)?, on(&gpu, seed, shape)?))
    };
    let close = |what: &str, c: &Tensor<T>, g: &Tensor<T>, bound: f64| {
        assert_eq!(c.shape(), g.shape(), "{name} {what}: shapes");
        assert!(g.device().is_cuda(), "{name} {what}: the result is not on the GPU");
        let (gv, cv) = (to_f64(g), to_f64(c));
        if bound == 0.0 {
            assert_eq!(gv, cv, "{name} {what}: GPU and CPU differ");
        } else {
            let err = rel_err(&gv, &cv);
            assert!(err <= bound, "{name} {what}: GPU vs CPU relative error {err:e} > {bound:e}");
        }
    };
    let (a, ag) = both(1, &[67, 129])?;
    let (b, bg) = both(2, &[129, 33])?;
    close("randn", &a, &ag, tol(name));
    close("randn", &b, &bg, tol(name));
    // Products of the CPU's inputs on both backends (GPU inputs uploaded), so only the product differs.
    let (au, bu) = (ops::to_device_on(&gpu, &a)?, ops::to_device_on(&gpu, &b)?);
    close("mm", &ops::mm_on(&cpu, &a, &b)?, &ops::mm_on(&gpu, &au, &bu)?, 4.0 * tol(name));
    let (x, y) = (on(&cpu, 3, &[4, 67, 5])?, on(&cpu, 4, &[4, 5, 9])?);
    let (xu, yu) = (ops::to_device_on(&gpu, &x)?, ops::to_device_on(&gpu, &y)?);
    close("batched mm", &ops::mm_on(&cpu, &x, &y)?, &ops::mm_on(&gpu, &xu, &yu)?, 4.0 * tol(name));
    let row = on(&cpu, 5, &[129])?;
    let rowu = ops::to_device_on(&gpu, &row)?;
    // Elementwise arithmetic rounds once from f64 on both backends: bit-equal.
    close("add", &ops::add_on(&cpu, &a, &a)?, &ops::add_on(&gpu, &au, &au)?, 0.0);
    close("broadcast sub", &ops::sub_on(&cpu, &a, &row)?, &ops::sub_on(&gpu, &au, &rowu)?, 0.0);
    close("mul", &ops::mul_on(&cpu, &a, &a)?, &ops::mul_on(&gpu, &au, &au)?, 0.0);
    close("div scalar", &ops::div_scalar_on(&cpu, &a, 3.0)?, &ops::div_scalar_on(&gpu, &au, 3.0)?, 0.0);
    close("sum", &ops::sum_on(&cpu, &a)?, &ops::sum_on(&gpu, &au)?, tol(name));
    close("mean", &ops::mean_on(&cpu, &a)?, &ops::mean_on(&gpu, &au)?, tol(name));
    close("full", &ops::full_on(&cpu, [7], T::from_f64(0.3))?, &ops::full_on(&gpu, [7], T::from_f64(0.3))?, 0.0);
    close("zeros", &ops::zeros_on::<T>(&cpu, [9])?, &ops::zeros_on::<T>(&gpu, [9])?, 0.0);
    let c64 = ops::to_dtype_on::<T, f64>(&cpu, &a)?;
    let g64 = ops::to_dtype_on::<T, f64>(&gpu, &au)?;
    assert_eq!(c64.to_vec()?, g64.to_vec()?, "{name} to_dtype f64");
    let ch = ops::to_dtype_on::<f64, bf16>(&cpu, &c64)?;
    let gh = ops::to_dtype_on::<f64, bf16>(&gpu, &g64)?;
    assert_eq!(ch.to_vec()?, gh.to_vec()?, "{name} to_dtype bf16 (round to nearest even from f64)");
    // In-place ops and copies back to the host.
    let t = ops::zeros_on::<T>(&gpu, [5])?;
    ops::fill_on(&gpu, &t, T::ONE)?;
    ops::copy_on(&gpu, &t, &ops::full_on(&gpu, [5], T::from_f64(2.0))?)?;
    assert_eq!(to_f64(&t), vec![2.0; 5]);
    Ok(())
}

#[test]
fn every_op_matches_the_cpu_backend() {
    let Some(dev) = cuda_or_skip("every_op_matches_the_cpu_backend") else { return };
    compare::<f32>(&dev).unwrap();
    compare::<f64>(&dev).unwrap();
    compare::<f16>(&dev).unwrap();
    compare::<bf16>(&dev).unwrap();
}

#[test]
fn large_products_and_randn_on_the_gpu() {
    let Some(dev) = cuda_or_skip("large_products_and_randn_on_the_gpu") else { return };
    let s = Stream::new(&dev).unwrap();
    let g = Generator::new(9);
    // Big enough for the large f32 tiles, odd enough for edge tiles.
    let a = ops::randn_with_on::<f32>(&s, [1031, 517], &g).unwrap();
    let b = ops::randn_with_on::<f32>(&s, [517, 1029], &g).unwrap();
    let c = ops::mm_on(&s, &a, &b).unwrap();
    let cpu = Stream::new(&Device::cpu()).unwrap();
    let (ac, bc) = (ops::to_device_on(&cpu, &a).unwrap(), ops::to_device_on(&cpu, &b).unwrap());
    let err = rel_err(&to_f64(&c), &to_f64(&ops::mm_on(&cpu, &ac, &bc).unwrap()));
    assert!(err < 1e-5, "f32 1031x517·517x1029 relative error {err:e}");
    // Out of memory is an error, not an abort.
    let huge = ops::zeros_on::<f32>(&s, [1 << 20, 1 << 20]).unwrap_err();
    assert!(matches!(huge, Error::OutOfMemory { .. }), "{huge}");
    s.synchronize().unwrap();
}

/// A span of work on `s` between two timed events.
fn timed_busy(s: &Stream, duration: Duration, blocks: u32) -> Result<(Event, Event)> {
    let (start, end) = (Event::timed(&s.device()), Event::timed(&s.device()));
    s.record(&start)?;
    busy_on(s, duration, blocks)?;
    s.record(&end)?;
    Ok((start, end))
}

#[test]
fn two_streams_run_at_the_same_time() {
    let Some(dev) = cuda_or_skip("two_streams_run_at_the_same_time") else { return };
    let (a, b) = (Stream::new(&dev).unwrap(), Stream::new(&dev).unwrap());
    let (a0, a1) = timed_busy(&a, Duration::from_millis(100), 1).unwrap();
    let (b0, b1) = timed_busy(&b, Duration::from_millis(100), 1).unwrap();
    a.synchronize().unwrap();
    b.synchronize().unwrap();
    // The spans intersect exactly when each starts before the other ends; `elapsed_time` is an error when
    // its end event completed before its start. Run one after the other, `b0 → a1` would be backwards.
    assert!(a0.elapsed_time(&a1).unwrap() >= Duration::from_millis(100));
    a0.elapsed_time(&b1).expect("b's work ended before a's began: the streams did not overlap");
    b0.elapsed_time(&a1).expect("a's work ended before b's began: the streams did not overlap");
}

#[test]
fn high_priority_work_overtakes_a_full_device() {
    let Some(dev) = cuda_or_skip("high_priority_work_overtakes_a_full_device") else { return };
    let low = Stream::with_priority(&dev, 0).unwrap();
    let high = Stream::with_priority(&dev, dev.priority_range().1).unwrap();
    assert!(high.priority() < low.priority(), "the device offers one priority only: {:?}", dev.priority_range());
    // Many waves of 10 ms blocks (at most 32 resident per multiprocessor), then one small high-priority block:
    // the block scheduler must start it as soon as a low-priority block retires, not after all of them.
    let blocks = dev.concurrency() as u32 * 32 * 16;
    let (low0, low1) = timed_busy(&low, Duration::from_millis(10), blocks).unwrap();
    let (_, high1) = timed_busy(&high, Duration::from_millis(1), 1).unwrap();
    low.synchronize().unwrap();
    high.synchronize().unwrap();
    let low_total = low0.elapsed_time(&low1).unwrap();
    let high_done = low0.elapsed_time(&high1).unwrap();
    assert!(low_total >= Duration::from_millis(40), "the low-priority work was too short to test: {low_total:?}");
    assert!(
        high_done * 3 < low_total,
        "the high-priority block finished {high_done:?} after the low-priority work began, which took {low_total:?}"
    );
}
