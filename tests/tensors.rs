//! Tensor ops against references, and every bad input as an `Err`.

use streamdsl::prelude::*;
use streamdsl::random::philox4x32_10;
use streamdsl_tests::{naive_mm, rel_err, test_device, to_f64};

/// Relative error bound of a product with `k`-term dot products for element type `T` (inputs are
/// rounded to `T`, so the reference is computed from the rounded inputs).
fn mm_tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 1e-5,
        DType::F16 => 2e-3,
        DType::BF16 => 1e-2,
    }
}

fn check_mm<T: Element>(dev: &Device, m: usize, k: usize, n: usize) -> Result<()> {
    let s = Stream::new(dev)?;
    let g = Generator::new((m * 1000 + k * 10 + n) as u64);
    let a = ops::randn_with_on::<T>(&s, [m, k], &g)?;
    let b = ops::randn_with_on::<T>(&s, [k, n], &g)?;
    let c = ops::mm_on(&s, &a, &b)?;
    assert_eq!(c.shape(), &[m, n]);
    let reference = naive_mm(&to_f64(&a), &to_f64(&b), m, k, n);
    let err = rel_err(&to_f64(&c), &reference);
    assert!(err < mm_tolerance(T::DTYPE), "{} {m}x{k}·{k}x{n}: relative error {err:e}", T::DTYPE);
    Ok(())
}

fn mm_matches_f64_reference(dev: &Device) -> Result<()> {
    // Odd shapes (element-wise loads on CUDA) and multiples of 8 (128-bit loads, edge tiles where m, n are not
    // multiples of the tile).
    for (m, k, n) in [(1, 1, 1), (3, 7, 5), (17, 33, 65), (257, 129, 65), (72, 40, 136)] {
        check_mm::<f32>(dev, m, k, n)?;
        check_mm::<f64>(dev, m, k, n)?;
        check_mm::<f16>(dev, m, k, n)?;
        check_mm::<bf16>(dev, m, k, n)?;
    }
    Ok(())
}
test_device!(mm_reference, mm_matches_f64_reference);

fn batched_mm(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let g = Generator::new(11);
    let (b, m, k, n) = (3, 4, 5, 6);
    let a = ops::randn_with_on::<f64>(&s, [b, m, k], &g)?;
    let w3 = ops::randn_with_on::<f64>(&s, [b, k, n], &g)?;
    let w2 = ops::randn_with_on::<f64>(&s, [k, n], &g)?;
    let (av, w3v, w2v) = (to_f64(&a), to_f64(&w3), to_f64(&w2));
    let c3 = to_f64(&ops::mm_on(&s, &a, &w3)?);
    let c2 = to_f64(&ops::mm_on(&s, &a, &w2)?);
    for i in 0..b {
        let ai = &av[i * m * k..][..m * k];
        let r3 = naive_mm(ai, &w3v[i * k * n..][..k * n], m, k, n);
        let r2 = naive_mm(ai, &w2v, m, k, n);
        assert!(rel_err(&c3[i * m * n..][..m * n], &r3) < 1e-12);
        assert!(rel_err(&c2[i * m * n..][..m * n], &r2) < 1e-12);
    }
    let shared_lhs = ops::mm_on(&s, &ops::ones_on::<f64>(&s, [2, k])?, &w3)?;
    assert_eq!(shared_lhs.shape(), &[b, 2, n]);
    Ok(())
}
test_device!(mm_batched, batched_mm);

fn randn_reproduces_philox_box_muller(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let (seed, n) = (0x1234_5678_9abc_def0u64, 4099);
    let g = Generator::new(seed);
    let _skip = ops::randn_with_on::<f32>(&s, [1], &g)?; // offset 0
    let x32 = ops::randn_with_on::<f32>(&s, [n], &g)?.to_vec()?; // offset 1
    let x64 = ops::randn_with_on::<f64>(&s, [n], &g)?.to_vec()?; // offset 2
    let key = [seed as u32, (seed >> 32) as u32];
    for i in [0usize, 1, 2, 3, 4, 1027, 4096, 4098] {
        let (group, word) = ((i / 4) as u32, i % 4);
        let bits32 = philox4x32_10([group, 0, 1, 0], key);
        let bits64 = philox4x32_10([group, 0, 2, 0], key);
        let pair = 2 * (word / 2);
        // Box–Muller through the portable math library: the same bits on every backend.
        let (c32, s32) = streamdsl::math::box_muller_f32(bits32[pair], bits32[pair + 1]);
        let (c64, s64) = streamdsl::math::box_muller_f64(bits64[pair], bits64[pair + 1]);
        let (z32, z64) = if word % 2 == 0 { (c32, c64) } else { (s32, s64) };
        assert_eq!(x32[i].to_bits(), z32.to_bits(), "f32 element {i} on {dev}");
        assert_eq!(x64[i].to_bits(), z64.to_bits(), "f64 element {i} on {dev}");
    }
    // The uniform bits are identical on every backend.
    let bits = streamdsl::random::philox_bits_on(&s, 1031, seed, 7)?;
    for (g, word) in bits.chunks(4).enumerate() {
        assert_eq!(word, philox4x32_10([g as u32, 0, 7, 0], key), "group {g}");
    }
    // Every element type draws the same normals, rounded.
    g.manual_seed(5);
    let h = ops::randn_with_on::<f16>(&s, [64], &g)?.to_vec()?;
    g.manual_seed(5);
    let f = ops::randn_with_on::<f32>(&s, [64], &g)?.to_vec()?;
    assert!(h.iter().zip(&f).all(|(h, f)| *h == f16::from_f32(*f)), "{h:?} vs {f:?}");
    Ok(())
}
test_device!(randn_bits, randn_reproduces_philox_box_muller);

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 through erf), accurate to ~1e-7.
fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    0.5 * (1.0 + erf.copysign(x))
}

fn check_normal_stats<T: Element>(dev: &Device) -> Result<()> {
    let n = 200_000;
    let s = Stream::new(dev)?;
    let g = Generator::new(2024);
    let mut x = to_f64(&ops::randn_with_on::<T>(&s, [n], &g)?);
    let mean = x.iter().sum::<f64>() / n as f64;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    assert!(mean.abs() < 0.01, "{}: mean {mean}", T::DTYPE); // 4.5 standard errors
    assert!((var - 1.0).abs() < 0.015, "{}: variance {var}", T::DTYPE);
    x.sort_by(f64::total_cmp);
    let d = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let f = normal_cdf(v);
            (f - i as f64 / n as f64).abs().max(((i + 1) as f64 / n as f64 - f).abs())
        })
        .fold(0.0, f64::max);
    // Kolmogorov–Smirnov critical value at α = 0.001 is 1.95 / √n; bf16 rounding adds ~2⁻⁹ at most.
    let bound = 1.95 / (n as f64).sqrt() + if T::DTYPE == DType::BF16 { 4e-3 } else { 1e-3 };
    assert!(d < bound, "{}: KS statistic {d} ≥ {bound}", T::DTYPE);
    Ok(())
}

fn randn_statistics(dev: &Device) -> Result<()> {
    check_normal_stats::<f32>(dev)?;
    check_normal_stats::<f64>(dev)?;
    check_normal_stats::<f16>(dev)?;
    check_normal_stats::<bf16>(dev)
}
test_device!(randn_stats, randn_statistics);

fn elementwise_and_reductions(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let _on = s.scope();
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], dev)?;
    let row = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], [3], dev)?;
    let col = Tensor::from_vec(vec![2.0f32, 4.0], [2, 1], dev)?;
    assert_eq!((&a + &row)?.to_vec()?, vec![11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    assert_eq!((&a - &row)?.to_vec()?, vec![-9.0, -18.0, -27.0, -6.0, -15.0, -24.0]);
    assert_eq!((&a * &col)?.to_vec()?, vec![2.0, 4.0, 6.0, 16.0, 20.0, 24.0]);
    assert_eq!((&a / &col)?.to_vec()?, vec![0.5, 1.0, 1.5, 1.0, 1.25, 1.5]);
    assert_eq!((&a + 1.0)?.to_vec()?, vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    assert_eq!((&a * 0.5)?.to_vec()?, vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
    assert_eq!(a.sub_scalar(1.0)?.div_scalar(2.0)?.to_vec()?, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
    assert_eq!(a.sum()?.item()?, 21.0);
    assert_eq!(a.mean()?.item()?, 3.5);
    assert_eq!(a.sum()?.shape(), &[] as &[usize]);
    // Broadcasting both ways: [2,1] with [3] gives [2,3].
    assert_eq!((&col + &row)?.to_vec()?, vec![12.0, 22.0, 32.0, 14.0, 24.0, 34.0]);
    // Half types round once from the exact result.
    let h = a.to_dtype::<f16>()?;
    assert_eq!((&h / 3.0)?.to_vec()?[0], f16::from_f64(1.0 / 3.0));
    let back = h.to_dtype::<bf16>()?.to_dtype::<f64>()?;
    assert_eq!(back.to_vec()?, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // Large sums accumulate in f64.
    let big = ops::full_on(&s, [1 << 20], 0.1f32)?;
    assert!((big.sum()?.item()? as f64 - 0.1f32 as f64 * (1 << 20) as f64).abs() < 1e-2);
    // In-place ops are seen by every handle.
    let alias = a.clone();
    a.fill_(7.0)?;
    assert_eq!(alias.to_vec()?, vec![7.0; 6]);
    a.copy_(&(&row * &col)?)?;
    assert_eq!(alias.to_vec()?, vec![20.0, 40.0, 60.0, 40.0, 80.0, 120.0]);
    Ok(())
}
test_device!(elementwise, elementwise_and_reductions);

fn bad_inputs_are_errors(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let a = ops::zeros_on::<f32>(&s, [2, 3])?;
    let b = ops::zeros_on::<f32>(&s, [4, 5])?;
    let e = ops::mm_on(&s, &a, &b).unwrap_err();
    assert!(matches!(&e, Error::ShapeMismatch { op: "mm", lhs, rhs, .. } if lhs == &[2, 3] && rhs == &[4, 5]));
    assert!(e.to_string().contains("[2, 3]") && e.to_string().contains("[4, 5]"), "{e}");
    let v = ops::zeros_on::<f32>(&s, [3])?;
    assert!(matches!(ops::mm_on(&s, &v, &v), Err(Error::ShapeMismatch { .. })));
    let b3 = ops::zeros_on::<f32>(&s, [2, 3, 4])?;
    let c3 = ops::zeros_on::<f32>(&s, [5, 4, 2])?;
    assert!(ops::mm_on(&s, &b3, &c3).unwrap_err().to_string().contains("batch sizes differ"));
    assert!(matches!(ops::add_on(&s, &a, &b), Err(Error::ShapeMismatch { op: "add", .. })));
    assert!(matches!(ops::copy_on(&s, &a, &b), Err(Error::ShapeMismatch { op: "copy_", .. })));
    // Zero-size and overflowing shapes.
    assert!(matches!(ops::zeros_on::<f32>(&s, [3, 0]), Err(Error::InvalidShape { .. })));
    assert!(matches!(ops::randn_on::<f32>(&s, [usize::MAX, 2]), Err(Error::InvalidShape { .. })));
    assert!(matches!(ops::ones_on::<f64>(&s, [1 << 31, 1 << 31]), Err(Error::InvalidShape { .. })));
    assert!(matches!(Tensor::from_vec(vec![1.0f32; 5], [2, 3], dev), Err(Error::InvalidShape { .. })));
    // An allocation larger than the machine is an error, not an abort.
    let oom = ops::zeros_on::<f32>(&s, [1 << 20, 1 << 20]).unwrap_err();
    assert!(matches!(oom, Error::OutOfMemory { bytes, .. } if bytes == 4 << 40), "{oom}");
    assert!(matches!(Stream::with_priority(dev, 1), Err(Error::InvalidPriority { priority: 1 })));
    assert!(matches!(a.item(), Err(Error::InvalidArgument { op: "item", .. })));
    assert!(matches!("tpu".parse::<Device>(), Err(Error::InvalidArgument { .. })));
    s.synchronize()?; // none of the above left work or poison behind
    Ok(())
}
test_device!(bad_inputs, bad_inputs_are_errors);

/// Freed buffers are reused for later outputs of the same size (the CPU backend's host cache, CUDA's memory
/// pool): `zeros` still reads as zeros there, and ops overwrite whatever the buffer held.
fn reused_buffers_read_as_written(dev: &Device) -> Result<()> {
    fn check<T: Element>(s: &Stream, len: usize) -> Result<()> {
        for round in 0..3 {
            let old = ops::full_on(s, [len], T::from_f64(7.0))?;
            s.synchronize()?;
            drop(old);
            let z = ops::zeros_on::<T>(s, [len])?;
            let v = z.to_vec()?;
            assert!(v.iter().all(|x| x.to_f64() == 0.0), "{} zeros of {len}, round {round}", T::DTYPE);
            drop(z);
            let old = ops::full_on(s, [len], T::from_f64(-3.0))?;
            s.synchronize()?;
            drop(old);
            let two = ops::full_on(s, [len], T::from_f64(2.0))?;
            let sum = ops::add_scalar_on(s, &two, 0.5)?;
            assert!(sum.to_vec()?.iter().all(|x| x.to_f64() == 2.5), "{} add of {len}, round {round}", T::DTYPE);
        }
        Ok(())
    }
    let s = Stream::new(dev)?;
    for len in [16_384, 16_385, 1 << 20] {
        check::<f32>(&s, len)?;
        check::<f16>(&s, len)?;
        check::<f64>(&s, len)?;
    }
    // The cache can be emptied at any time; live tensors are untouched.
    let keep = ops::full_on(&s, [1 << 16], 1.5f32)?;
    streamdsl::empty_host_cache();
    assert!(keep.to_vec()?.iter().all(|&x| x == 1.5));
    Ok(())
}
test_device!(reused_buffers, reused_buffers_read_as_written);
