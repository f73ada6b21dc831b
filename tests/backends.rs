//! Every op on CUDA compared with the CPU backend on the same seeds, and the stream semantics that need
//! device work to show (overlap, priorities). Runs where a CUDA driver is present: a GPU, or the simulated
//! driver (`./scripts/test` runs it there); `STREAMDSL_REQUIRE_CUDA=1` makes a missing one a failure.
//!
//! Everything but `mm` is compared **bit for bit** (see the README's "Numerics"): randn, conversions,
//! elementwise arithmetic, sums and means. `mm` accumulates in another order on each backend and is compared
//! with a tolerance.

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
    close("randn", &a, &ag, 0.0);
    close("randn", &b, &bg, 0.0);
    // Several seeds, generator offsets and odd lengths.
    for (seed, skip, len) in [(0u64, 0, 1usize), (7, 3, 3), (0xdead_beef, 1, 4_097), (u64::MAX, 5, 12_345)] {
        let (gc, gg) = (Generator::new(seed), Generator::new(seed));
        for _ in 0..skip {
            ops::randn_with_on::<T>(&cpu, [1], &gc)?;
            ops::randn_with_on::<T>(&gpu, [1], &gg)?;
        }
        let (c, g) = (ops::randn_with_on::<T>(&cpu, [len], &gc)?, ops::randn_with_on::<T>(&gpu, [len], &gg)?);
        close(&format!("randn seed {seed:#x} offset {skip} length {len}"), &c, &g, 0.0);
    }
    // Products of the CPU's inputs on both backends (GPU inputs uploaded), so only the product differs.
    let (au, bu) = (ops::to_device_on(&gpu, &a)?, ops::to_device_on(&gpu, &b)?);
    close("mm", &ops::mm_on(&cpu, &a, &b)?, &ops::mm_on(&gpu, &au, &bu)?, 4.0 * tol(name));
    let (x, y) = (on(&cpu, 3, &[4, 67, 5])?, on(&cpu, 4, &[4, 5, 9])?);
    let (xu, yu) = (ops::to_device_on(&gpu, &x)?, ops::to_device_on(&gpu, &y)?);
    close("batched mm", &ops::mm_on(&cpu, &x, &y)?, &ops::mm_on(&gpu, &xu, &yu)?, 4.0 * tol(name));
    let row = on(&cpu, 5, &[129])?;
    let rowu = ops::to_device_on(&gpu, &row)?;
    // Elementwise arithmetic rounds once from f64 on both backends: bit-equal.
    let (bu2, b2) =
        (ops::to_device_on(&gpu, &ops::mul_scalar_on(&cpu, &a, -0.7)?)?, ops::mul_scalar_on(&cpu, &a, -0.7)?);
    type Binary<T> = fn(&Stream, &Tensor<T>, &Tensor<T>) -> Result<Tensor<T>>;
    type Scalar<T> = fn(&Stream, &Tensor<T>, f64) -> Result<Tensor<T>>;
    let binary: [(&str, Binary<T>); 4] =
        [("add", ops::add_on), ("sub", ops::sub_on), ("mul", ops::mul_on), ("div", ops::div_on)];
    let scalar: [(&str, Scalar<T>); 4] = [
        ("add", ops::add_scalar_on),
        ("sub", ops::sub_scalar_on),
        ("mul", ops::mul_scalar_on),
        ("div", ops::div_scalar_on),
    ];
    for (op, f) in binary {
        close(op, &f(&cpu, &a, &b2)?, &f(&gpu, &au, &bu2)?, 0.0);
        close(&format!("broadcast {op}"), &f(&cpu, &a, &row)?, &f(&gpu, &au, &rowu)?, 0.0);
    }
    for (op, f) in scalar {
        close(&format!("{op} scalar"), &f(&cpu, &a, 1.0 / 3.0)?, &f(&gpu, &au, 1.0 / 3.0)?, 0.0);
    }
    // Sums follow one fixed tree on both: bit-equal, also for a length of many chunks.
    close("sum", &ops::sum_on(&cpu, &a)?, &ops::sum_on(&gpu, &au)?, 0.0);
    close("mean", &ops::mean_on(&cpu, &a)?, &ops::mean_on(&gpu, &au)?, 0.0);
    let (long, longg) = both(6, &[100_003])?;
    close("long sum", &ops::sum_on(&cpu, &long)?, &ops::sum_on(&gpu, &longg)?, 0.0);
    close("long mean", &ops::mean_on(&cpu, &long)?, &ops::mean_on(&gpu, &longg)?, 0.0);
    close("full", &ops::full_on(&cpu, [7], T::from_f64(0.3))?, &ops::full_on(&gpu, [7], T::from_f64(0.3))?, 0.0);
    close("zeros", &ops::zeros_on::<T>(&cpu, [9])?, &ops::zeros_on::<T>(&gpu, [9])?, 0.0);
    // Conversions round once, to every type, also at the edges (ties, subnormals, overflow, NaN, ±0, ±inf).
    let specials = Tensor::from_vec(special_values(), [special_values().len()], &Device::cpu())?;
    let (sc, sg) = (
        ops::to_dtype_on::<f64, T>(&cpu, &specials)?,
        ops::to_dtype_on::<f64, T>(&gpu, &ops::to_device_on(&gpu, &specials)?)?,
    );
    same_bits(&format!("{name} from f64 edge values"), &sc, &sg)?;
    for (c, g) in [(&a, &au), (&sc, &sg)] {
        convert_to::<T, f32>(&cpu, &gpu, c, g)?;
        convert_to::<T, f64>(&cpu, &gpu, c, g)?;
        convert_to::<T, f16>(&cpu, &gpu, c, g)?;
        convert_to::<T, bf16>(&cpu, &gpu, c, g)?;
    }
    // In-place ops and copies back to the host.
    let t = ops::zeros_on::<T>(&gpu, [5])?;
    ops::fill_on(&gpu, &t, T::ONE)?;
    ops::copy_on(&gpu, &t, &ops::full_on(&gpu, [5], T::from_f64(2.0))?)?;
    assert_eq!(to_f64(&t), vec![2.0; 5]);
    Ok(())
}

/// Values at the edges of every conversion: ties between neighbours of the 16-bit types, their subnormals and
/// overflow thresholds, double-rounding traps, NaN, ±0 and ±inf.
fn special_values() -> Vec<f64> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        2049.0 + 1e-9,                        // f16: 2050 when rounded once, 2048 through f32
        1.0 + 2f64.powi(-8) + 2f64.powi(-40), // bf16: 1.0078125 when rounded once
        65_504.0,
        65_520.0,                 // f16 overflow tie: rounds to inf
        5.960_464_477_539_063e-8, // the smallest f16 subnormal
        2.98e-8,                  // half of it, just below: rounds to 0
        1e-40,                    // an f32 subnormal
        f32::MAX as f64,
        3.4e38 * 1.01,
        1e300,
        5e-324,
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0 / 3.0,
        -2.0 / 3.0,
    ]
}

/// Compares two tensors' values bit for bit (widened exactly to f64). A NaN matches any NaN: IEEE 754 leaves
/// NaN payloads to the implementation (a GPU returns its canonical NaN where a CPU keeps the payload), so they
/// are not part of the promise.
fn same_bits<T: Element>(what: &str, c: &Tensor<T>, g: &Tensor<T>) -> Result<()> {
    let bit = |v: T| if v.to_f64().is_nan() { u64::MAX } else { v.to_f64().to_bits() };
    let bits = |t: &Tensor<T>| -> Result<Vec<u64>> { Ok(t.to_vec()?.into_iter().map(bit).collect()) };
    assert_eq!(bits(c)?, bits(g)?, "{what}: GPU and CPU differ");
    Ok(())
}

fn convert_to<T: Element, U: Element>(cpu: &Stream, gpu: &Stream, c: &Tensor<T>, g: &Tensor<T>) -> Result<()> {
    let (cu, gu) = (ops::to_dtype_on::<T, U>(cpu, c)?, ops::to_dtype_on::<T, U>(gpu, g)?);
    same_bits(&format!("to_dtype {} -> {}", T::DTYPE, U::DTYPE), &cu, &gu)
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

/// `mm` on odd shapes for every element type and kernel (tiled f32/f64, tensor-core f16/bf16): one element,
/// sizes that fill no tile evenly, a shared 2-D operand, and a batch longer than grid z holds (65,535), which
/// takes two launches.
fn odd_products<T: Element>(gpu_dev: &Device, long_batch: bool) -> Result<()> {
    let (cpu, gpu) = (Stream::new(&Device::cpu())?, Stream::new(gpu_dev)?);
    let g = Generator::new(17);
    let mut shapes: Vec<(&[usize], &[usize])> =
        vec![(&[1, 1], &[1, 1]), (&[17, 33], &[33, 65]), (&[3, 17, 33], &[33, 5])];
    if long_batch {
        shapes.push((&[65_537, 2, 3], &[65_537, 3, 2]));
    }
    for (sa, sb) in shapes {
        let (a, b) = (ops::randn_with_on::<T>(&cpu, sa, &g)?, ops::randn_with_on::<T>(&cpu, sb, &g)?);
        let want = ops::mm_on(&cpu, &a, &b)?;
        let got = ops::mm_on(&gpu, &ops::to_device_on(&gpu, &a)?, &ops::to_device_on(&gpu, &b)?)?;
        assert_eq!(got.shape(), want.shape());
        let err = rel_err(&to_f64(&got), &to_f64(&want));
        assert!(err <= 4.0 * tol(T::DTYPE), "{} mm {sa:?}·{sb:?}: relative error {err:e}", T::DTYPE);
    }
    Ok(())
}

#[test]
fn every_mm_kernel_on_odd_shapes() {
    let Some(dev) = cuda_or_skip("every_mm_kernel_on_odd_shapes") else { return };
    // The batch beyond grid z once per kernel family: tiled (f32) and tensor-core (bf16).
    odd_products::<f32>(&dev, true).unwrap();
    odd_products::<f64>(&dev, false).unwrap();
    odd_products::<f16>(&dev, false).unwrap();
    odd_products::<bf16>(&dev, true).unwrap();
}
