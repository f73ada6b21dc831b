//! Which implementation runs `mm` on CUDA (`STREAMDSL_MM`, `set_mm_path`), and both implementations against
//! the CPU backend on odd shapes. One test in its own binary: it sets the process-wide path.
//!
//! On the simulated driver cuBLAS cannot run: `mm` falls back to streamdsl's kernels, and with
//! `STREAMDSL_MM=cublas` it is an error naming what is missing. On a GPU with cuBLAS, both paths run.

use streamdsl::prelude::*;
use streamdsl::MmPath;
use streamdsl_tests::{cuda_or_skip, rel_err, report, to_f64};

/// Tolerance of a GPU product against the CPU one, relative, per element type (accumulation order differs).
fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 4e-12,
        DType::F32 => 1e-5,
        DType::F16 => 8e-3,
        DType::BF16 => 4e-2,
    }
}

/// `[batch?, m, k]` · `[batch?, k, n]` shapes: odd (element-wise loads), multiples of 8 (128-bit loads with edge
/// tiles), large enough for the large tiles (≥ 128 blocks of 128 × 128), batched, and a 2-D operand shared by
/// a batch.
const SHAPES: &[(&[usize], &[usize])] = &[
    (&[1, 1], &[1, 1]),
    (&[17, 33], &[33, 65]),
    (&[257, 129], &[129, 65]),
    (&[72, 40], &[40, 136]),
    (&[3, 5], &[5, 1]),
    (&[1024, 16], &[16, 2048]),
    (&[3, 17, 33], &[3, 33, 65]),
    (&[4, 24, 16], &[16, 40]),
    (&[2, 9], &[3, 9, 11]),
];

fn compare<T: Element>(gpu: &Stream, path: MmPath) -> Result<()> {
    let cpu = Stream::new(&Device::cpu())?;
    for (i, (sa, sb)) in SHAPES.iter().enumerate() {
        let g = Generator::new(100 + i as u64);
        let (a, b) = (ops::randn_with_on::<T>(&cpu, *sa, &g)?, ops::randn_with_on::<T>(&cpu, *sb, &g)?);
        let want = ops::mm_on(&cpu, &a, &b)?;
        let got = ops::mm_on(gpu, &ops::to_device_on(gpu, &a)?, &ops::to_device_on(gpu, &b)?)?;
        assert_eq!(got.shape(), want.shape());
        let err = rel_err(&to_f64(&got), &to_f64(&want));
        assert!(err <= tol(T::DTYPE), "{path} {} {sa:?}·{sb:?}: relative error {err:e}", T::DTYPE);
    }
    Ok(())
}

fn compare_all(gpu: &Stream, path: MmPath) -> Result<()> {
    streamdsl::set_mm_path(path);
    compare::<f32>(gpu, path)?;
    compare::<f64>(gpu, path)?;
    compare::<f16>(gpu, path)?;
    compare::<bf16>(gpu, path)
}

#[test]
fn mm_paths() {
    // Read at first use: this binary's only test sets it before anything reads it.
    std::env::set_var("STREAMDSL_MM", "cublas");
    assert_eq!(streamdsl::mm_path().unwrap(), MmPath::Cublas);
    let route = streamdsl::cuda_mm_route();
    if let Err(e) = &route {
        // Forced but missing: the error says what is missing (no library found, or the simulated driver).
        let text = e.to_string();
        assert!(matches!(e, Error::CublasUnavailable { .. }), "{e:?}");
        assert!(text.contains("libcublas") || text.contains("simulator"), "{text}");
        assert!(text.contains("STREAMDSL_MM=cublas"), "{text}");
    }
    let Some(dev) = cuda_or_skip("mm_paths::mm_paths") else { return };
    let s = Stream::new(&dev).unwrap();
    let (a, b) = (ops::ones_on::<f32>(&s, [2, 3]).unwrap(), ops::ones_on::<f32>(&s, [3, 4]).unwrap());
    let cublas = match ops::mm_on(&s, &a, &b) {
        Ok(c) => {
            assert_eq!(c.to_vec().unwrap(), vec![3.0; 8]);
            true
        }
        Err(e) => {
            assert!(matches!(e, Error::CublasUnavailable { .. }), "{e:?}");
            assert!(route.is_err(), "cuda_mm_route said {route:?} but mm failed with {e}");
            report(&format!("mm_paths: cuBLAS not available here ({e}); kernels only"));
            false
        }
    };
    // The default picks cuBLAS where it can run, else the kernels, and never fails for want of cuBLAS.
    streamdsl::set_mm_path(MmPath::Auto);
    let auto = streamdsl::cuda_mm_route().unwrap();
    assert_eq!(auto.cublas, cublas, "{auto}");
    assert_eq!(ops::mm_on(&s, &a, &b).unwrap().to_vec().unwrap(), vec![3.0; 8]);
    compare_all(&s, MmPath::Kernels).unwrap();
    if cublas {
        compare_all(&s, MmPath::Cublas).unwrap();
        // TF32 (opt-in) stays within TF32's precision of the f32 product.
        streamdsl::set_allow_tf32(true);
        let g = Generator::new(7);
        let (x, y) = (
            ops::randn_with_on::<f32>(&s, [64, 256], &g).unwrap(),
            ops::randn_with_on::<f32>(&s, [256, 32], &g).unwrap(),
        );
        let fast = to_f64(&ops::mm_on(&s, &x, &y).unwrap());
        streamdsl::set_allow_tf32(false);
        let exact = to_f64(&ops::mm_on(&s, &x, &y).unwrap());
        assert!(rel_err(&fast, &exact) < 5e-3);
    }
    streamdsl::set_mm_path(MmPath::Auto);
}
