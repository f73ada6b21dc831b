//! `#[kernel]`: every construct of the subset against a plain-Rust reference on the CPU backend; the same kernels
//! on CUDA (the simulated driver in CI) give the CPU backend's bits; every generated kernel compiles with NVRTC
//! for sm_80 and sm_90; launches are ordered across streams like built-in ops; faults are errors, not panics.

use std::f32::consts::FRAC_1_SQRT_2;

use streamdsl::half::{bf16, f16};
use streamdsl::jit::{Arch, KernelCache, KernelSource};
use streamdsl::kernel::LaunchConfig;
use streamdsl::math;
use streamdsl::prelude::*;
use streamdsl_tests::{cpu_test, nvrtc_or_skip, report, test_device};

// ---- kernels -------------------------------------------------------------------------------------------------

/// GELU, tanh form (the example).
#[kernel]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

fn gelu_ref(x: f32) -> f32 {
    0.5 * x * (1.0 + math::tanh_f32(0.797_884_6 * (x + 0.044_715 * x * x * x)))
}

#[kernel(device)]
fn erf_of_scaled(x: f32) -> f32 {
    erf(x * std::f32::consts::FRAC_1_SQRT_2)
}

#[kernel(device)]
fn half_of(x: f32) -> f32 {
    0.5 * x
}

/// GELU, erf form, through two device functions.
#[kernel]
fn gelu_erf(x: f32) -> f32 {
    let e: f32 = erf_of_scaled(x);
    half_of(x) * (1.0 + e)
}

fn gelu_erf_ref(x: f32) -> f32 {
    0.5 * x * (1.0 + math::erf_f32(x * FRAC_1_SQRT_2))
}

/// Float methods with exact or portable forms: bit-identical to the reference.
#[kernel]
fn methods(x: f32, y: f32) -> f32 {
    let a = x.abs().sqrt() + x.exp() * 0.25 - (x.abs() + 1.0).ln();
    let b = x.sin() * y.cos() + x.tanh() + x.exp_m1() * 0.5;
    let c = x.mul_add(y, 1.5) + x.min(y) - x.max(y) + x.abs();
    let d = x.floor() + y.ceil() + (x * 3.3).trunc() + (y * 2.5).round() + (y + 10.0).recip() + x.signum();
    a + b + c + d + erf(y) + std::f32::consts::PI - f32::EPSILON
}

fn methods_ref(x: f32, y: f32) -> f32 {
    let a = x.abs().sqrt() + math::exp_f32(x) * 0.25 - math::log_f32(x.abs() + 1.0);
    let b = math::sin_f32(x) * math::cos_f32(y) + math::tanh_f32(x) + math::expm1_f32(x) * 0.5;
    let min = if y < x || x.is_nan() { y } else { x };
    let max = if y > x || x.is_nan() { y } else { x };
    let c = x.mul_add(y, 1.5) + min - max + x.abs();
    let d = x.floor() + y.ceil() + (x * 3.3).trunc() + (y * 2.5).round() + 1.0 / (y + 10.0) + x.signum();
    a + b + c + d + math::erf_f32(y) + std::f32::consts::PI - f32::EPSILON
}

/// Powers and `tan`: the portable forms, checked against std within a few ulp.
#[kernel]
fn powers(x: f64, y: f64) -> (f64, f64, f64) {
    (x.abs().powf(y), x.powi(5), (x * 0.25).tan())
}

/// Loops: `for` over exclusive and inclusive ranges, `while` with `continue`, `loop` with `break`.
#[kernel]
fn loops(x: f32, n: i32) -> f32 {
    let mut acc = 0.0;
    for i in 0..n {
        acc += x * i as f32;
    }
    for i in 1..=3 {
        acc -= i as f32;
    }
    let mut k = 0;
    while k < 5 {
        k += 1;
        if k == 2 {
            continue;
        }
        acc += 0.5;
    }
    let mut j: u32 = 0;
    loop {
        j += 1;
        if j >= 4 {
            break;
        }
    }
    for b in 250u32..=u32::MAX {
        if b > 252 {
            break;
        }
        acc += 0.125;
    }
    acc + j as f32
}

fn loops_ref(x: f32, n: i32) -> f32 {
    let mut acc = 0.0f32;
    for i in 0..n {
        acc += x * i as f32;
    }
    for i in 1..=3 {
        acc -= i as f32;
    }
    let mut k = 0;
    while k < 5 {
        k += 1;
        if k == 2 {
            continue;
        }
        acc += 0.5;
    }
    acc + 3.0 * 0.125 + 4.0
}

/// `if`/`else` as values, blocks, shadowing, typed and inferred `let`s, compound assignment, f64.
#[kernel]
fn branches(x: f64, t: f64) -> f64 {
    let y = if x > t {
        x * 2.0
    } else if x < -t {
        -x
    } else {
        0.5
    };
    let z = {
        let w = y + 1.0;
        w * w
    };
    let x = x + 1.0;
    let mut s: f64 = z;
    s *= 2.0;
    s -= x;
    s /= 4.0;
    s %= 7.5;
    let big;
    if s > 1.0 {
        let q = s / 100.0;
        big = q.sqrt();
    } else {
        big = s;
    }
    if big > 0.01 {
        return big;
    }
    big - 1.0
}

fn branches_ref(x: f64, t: f64) -> f64 {
    let y = if x > t {
        x * 2.0
    } else if x < -t {
        -x
    } else {
        0.5
    };
    let z = (y + 1.0) * (y + 1.0);
    let x = x + 1.0;
    let mut s = z;
    s *= 2.0;
    s -= x;
    s /= 4.0;
    s %= 7.5;
    let big = if s > 1.0 { (s / 100.0).sqrt() } else { s };
    if big > 0.01 {
        big
    } else {
        big - 1.0
    }
}

/// Integers: casts (saturating), wrapping arithmetic, shifts, bit and logical operators, division.
#[kernel]
fn ints(x: f32, a: i32, b: u32) -> f32 {
    let i = x as i32;
    let u = (x * 1000.0) as u32;
    let w = i * 65536 * 65536 + a * 2_000_000_000;
    let m = (u << 3) ^ (b >> 1) | (u & 0xff);
    let s = (a << 31) >> 3;
    let big = (u as u64) * 3_000_000_000 + (a as i64).abs() as u64;
    let q = i / 3 + i % 3 + (u / 7) as i32;
    let neg = -a;
    let c = (a > 0 && b > 2) || !(a == 5);
    let f = if c { 1.0 } else { 0.0 };
    let f = f + if m & 4 == 4 { 2.0 } else { 0.0 } + if (m | 1) ^ 3 > 2 { 4.0 } else { 0.0 };
    let mut sh: i64 = -1;
    sh <<= 40;
    sh >>= 3;
    let mut v = u;
    v -= 1;
    v *= 3;
    v /= 2;
    v |= 1;
    v &= 0xffff;
    (w as f32) + (m as f32) * 0.001 + s as f32 + (big % 1000) as f32 + q as f32 + neg as f32 + f + sh as f32 + v as f32
        - i64::MAX as f32 * 0.0
}

fn ints_ref(x: f32, a: i32, b: u32) -> f32 {
    let i = x as i32;
    let u = (x * 1000.0) as u32;
    let w = i.wrapping_mul(65536).wrapping_mul(65536).wrapping_add(a.wrapping_mul(2_000_000_000));
    let m = (u.wrapping_shl(3)) ^ (b >> 1) | (u & 0xff);
    let s = a.wrapping_shl(31) >> 3;
    let big = (u as u64).wrapping_mul(3_000_000_000).wrapping_add((a as i64).unsigned_abs());
    let q = i / 3 + i % 3 + (u / 7) as i32;
    let neg = a.wrapping_neg();
    let c = (a > 0 && b > 2) || a != 5;
    let f = if c { 1.0 } else { 0.0 };
    let f = f + if m & 4 == 4 { 2.0 } else { 0.0 } + if (m | 1) ^ 3 > 2 { 4.0 } else { 0.0 };
    let sh: i64 = (-1i64 << 40) >> 3;
    let v = ((((u.wrapping_sub(1)).wrapping_mul(3)) / 2) | 1) & 0xffff;
    (w as f32) + (m as f32) * 0.001 + s as f32 + (big % 1000) as f32 + q as f32 + neg as f32 + f + sh as f32 + v as f32
        - i64::MAX as f32 * 0.0
}

/// Several outputs.
#[kernel]
fn polar(x: f32, y: f32) -> (f32, f32) {
    let r = (x * x + y * y).sqrt();
    (r, if r > 0.0 { x / r } else { 1.0 })
}

/// Broadcasting, mixed tensor and value arguments.
#[kernel]
fn axpby(a: f32, x: f32, b: f32, y: f32) -> f32 {
    a * x + b * y
}

/// Parameters named like the generated code's own (`stream`, `T`-like names, C keywords, header names).
#[kernel]
fn awkward_names(stream: f32, int: f32, k_n: u32, exp: f32) -> f32 {
    let double = stream * 2.0 + int;
    let float = double + exp;
    float + k_n as f32
}

/// An f64 kernel on narrower tensors: computed in f64, rounded once.
#[kernel]
fn fma64(x: f64, y: f64) -> f64 {
    x * y + 1.0 / 3.0
}

/// The grid example.
#[kernel(grid)]
fn transpose(out: &mut [f32], inp: &[f32], rows: u32, cols: u32) {
    let i = global_index();
    if i < rows * cols {
        out[((i % cols) * rows + i / cols) as usize] = inp[i as usize];
    }
}

/// Every index built-in, over a launch configuration.
#[kernel(grid)]
fn indices(out: &mut [f32], scale: f32) {
    let g = global_index();
    let t = thread_index();
    let b = block_index();
    let d = block_dim();
    let ok = g == b * d + t && g < grid_dim() * d && out.len() == (grid_dim() * d) as usize;
    out[g as usize] = if ok { t as f32 + scale * b as f32 } else { -1.0 };
}

/// Row sums: `while`, compound assignment to slice elements, reading and writing one slice.
#[kernel(grid)]
fn row_sums(out: &mut [f64], inp: &[f64], width: usize) {
    let row = global_index() as usize;
    let mut j = 0;
    out[row] = 0.0;
    while j < width {
        out[row] += inp[row * width + j];
        j += 1;
    }
    out[row] *= 0.5;
}

/// Reads one element past the end.
#[kernel(grid)]
fn shift_left(out: &mut [f32], inp: &[f32]) {
    let i = global_index() as usize;
    out[i] = inp[i + 1];
}

/// Integer division by a parameter (zero on purpose).
#[kernel(grid)]
fn divide(out: &mut [f32], by: i32) {
    let i = global_index() as i32;
    out[i as usize] = (i / by) as f32;
}

/// An `f32` kernel whose PTX must have no `.f64` instruction: literals, arithmetic, `exp`, `ln`, `sqrt`, `powi`,
/// `min`/`max` all stay in f32. (`sin`/`cos` reduce huge arguments in f64, and `tanh`, `erf`, `exp_m1`, `powf`
/// are the f64 function rounded once: by design of the portable library, for accuracy and the same bits.)
#[kernel]
fn f32_only(x: f32, y: f32) -> f32 {
    let a = 2.5 * x + y.abs().sqrt();
    let b = (a * 0.5).exp() - (x * y).max(0.0) + (x.abs() + 1.0).ln();
    b.max(1e-3) / (b.abs() + 1.0) + a.powi(2) + 1e-7
}

// ---- helpers ---------------------------------------------------------------------------------------------------

/// Inputs with the interesting values: zeros, tiny, huge, infinities, NaN, and a spread.
fn inputs(n: usize, seed: u32) -> Vec<f32> {
    let special = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, -1e-30, 3.0e9, -3.0e9, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    let mut v: Vec<f32> = special.to_vec();
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(12345);
    while v.len() < n {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        v.push(((state % 200_000) as f32 - 100_000.0) * 1e-4);
    }
    v.truncate(n);
    v
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_same_f32(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            same_bits(*g, *w),
            "{what}[{i}]: got {g:e} ({:#010x}), want {w:e} ({:#010x})",
            g.to_bits(),
            w.to_bits()
        );
    }
}

fn assert_same_f64(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(same, "{what}[{i}]: got {g:e}, want {w:e}");
    }
}

fn tensor(v: Vec<f32>, shape: &[usize], dev: &Device) -> Result<Tensor<f32>> {
    Tensor::from_vec(v, shape, dev)
}

/// Runs `f` on `dev`, and on the CPU backend when `dev` is another: both must give the same bits.
fn on_both<V: PartialEq + std::fmt::Debug>(
    dev: &Device,
    what: &str,
    f: impl Fn(&Device) -> Result<V>,
    same: impl Fn(&V, &V) -> bool,
) -> Result<V> {
    let here = f(dev)?;
    if !dev.is_cpu() {
        let cpu = f(&Device::cpu())?;
        assert!(same(&here, &cpu), "{what}: {dev} and the CPU backend differ:\n{here:?}\n{cpu:?}");
    }
    Ok(here)
}

#[allow(clippy::ptr_arg)]
fn bits_f32(a: &Vec<f32>, b: &Vec<f32>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_bits(*x, *y))
}

// ---- elementwise -------------------------------------------------------------------------------------------------

type Binary = dyn Fn(&Tensor<f32>, &Tensor<f32>) -> Result<Tensor<f32>>;

fn elementwise_kernels_match_references(dev: &Device) -> Result<()> {
    let xs = inputs(5000, 1);
    let ys = inputs(5000, 2);
    let n = xs.len();
    let run = |d: &Device, k: &Binary| -> Result<Vec<f32>> {
        let x = tensor(xs.clone(), &[n], d)?;
        let y = tensor(ys.clone(), &[n], d)?;
        k(&x, &y)?.to_vec()
    };
    type Case = (&'static str, Box<Binary>, Box<dyn Fn(f32, f32) -> f32>);
    let cases: Vec<Case> = vec![
        ("gelu", Box::new(|x, _| gelu(x)), Box::new(|x, _| gelu_ref(x))),
        ("gelu_erf", Box::new(|x, _| gelu_erf(x)), Box::new(|x, _| gelu_erf_ref(x))),
        ("methods", Box::new(|x, y| methods(x, y)), Box::new(methods_ref)),
        ("loops", Box::new(|x, _| loops(x, 7)), Box::new(|x, _| loops_ref(x, 7))),
        ("ints", Box::new(|x, _| ints(x, -123_457, 77)), Box::new(|x, _| ints_ref(x, -123_457, 77))),
        ("ints(MIN)", Box::new(|x, _| ints(x, i32::MIN, u32::MAX)), Box::new(|x, _| ints_ref(x, i32::MIN, u32::MAX))),
        ("axpby", Box::new(|x, y| axpby(2.0, x, y, y)), Box::new(|x, y| 2.0 * x + y * y)),
        ("awkward_names", Box::new(|x, y| awkward_names(x, y, 3, 0.5)), Box::new(|x, y| x * 2.0 + y + 0.5 + 3.0)),
    ];
    for (name, k, r) in &cases {
        let got = on_both(dev, name, |d| run(d, &**k), bits_f32)?;
        let want: Vec<f32> = xs.iter().zip(&ys).map(|(x, y)| r(*x, *y)).collect();
        assert_same_f32(&got, &want, name);
    }
    Ok(())
}
test_device!(elementwise_kernels, elementwise_kernels_match_references);

fn f64_kernels_match_references(dev: &Device) -> Result<()> {
    let xs: Vec<f64> = inputs(3000, 3).into_iter().map(f64::from).collect();
    let n = xs.len();
    let got = on_both(
        dev,
        "branches",
        |d| {
            let x = Tensor::from_vec(xs.clone(), [n], d)?;
            branches(&x, 2.0)?.to_vec()
        },
        |a, b| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())),
    )?;
    let want: Vec<f64> = xs.iter().map(|&x| branches_ref(x, 2.0)).collect();
    assert_same_f64(&got, &want, "branches");

    let (p, q, r) = on_both(
        dev,
        "powers",
        |d| {
            let x = Tensor::from_vec(xs.clone(), [n], d)?;
            let y = Tensor::from_vec(xs.iter().map(|v| v * 0.37).collect::<Vec<_>>(), [n], d)?;
            let (p, q, r) = powers(&x, &y)?;
            Ok((p.to_vec()?, q.to_vec()?, r.to_vec()?))
        },
        |a, b| {
            let same = |u: &Vec<f64>, v: &Vec<f64>| {
                u.iter().zip(v).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
            };
            same(&a.0, &b.0) && same(&a.1, &b.1) && same(&a.2, &b.2)
        },
    )?;
    let close = |g: f64, w: f64, ulps: f64| {
        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) || (g - w).abs() <= ulps * f64::EPSILON * w.abs()
    };
    for (i, &x) in xs.iter().enumerate() {
        let y = x * 0.37;
        assert!(close(p[i], x.abs().powf(y), 2048.0), "powf({x}, {y}): {} vs {}", p[i], x.abs().powf(y));
        assert!(close(q[i], x.powi(5), 8.0), "powi({x}, 5): {} vs {}", q[i], x.powi(5));
        if x.abs() < 1e6 {
            assert!(close(r[i], (x * 0.25).tan(), 16.0), "tan({x}): {} vs {}", r[i], (x * 0.25).tan());
        }
    }
    Ok(())
}
test_device!(f64_kernels, f64_kernels_match_references);

fn several_outputs_broadcasting_and_values(dev: &Device) -> Result<()> {
    // Two outputs.
    let (r, c) = on_both(
        dev,
        "polar",
        |d| {
            let x = tensor(vec![3.0, 0.0, -1.0], &[3], d)?;
            let y = tensor(vec![4.0, 0.0, 0.0], &[3], d)?;
            let (r, c) = polar(&x, &y)?;
            Ok((r.to_vec()?, c.to_vec()?))
        },
        |a, b| bits_f32(&a.0, &b.0) && bits_f32(&a.1, &b.1),
    )?;
    assert_eq!((r, c), (vec![5.0, 0.0, 1.0], vec![0.6, 1.0, -1.0]));
    // Broadcasting: x [4, 1, 3] with y [5, 3], a value and a one-element tensor.
    let xs: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    let ys: Vec<f32> = (0..15).map(|i| 10.0 - i as f32).collect();
    let out = on_both(
        dev,
        "axpby broadcast",
        |d| {
            let x = tensor(xs.clone(), &[4, 1, 3], d)?;
            let y = tensor(ys.clone(), &[5, 3], d)?;
            let b = tensor(vec![0.25], &[1], d)?;
            let out = axpby(1.5, &x, &b, &y)?;
            assert_eq!(out.shape(), &[4, 5, 3]);
            out.to_vec()
        },
        bits_f32,
    )?;
    for i in 0..4 {
        for j in 0..5 {
            for k in 0..3 {
                let want = 1.5 * xs[i * 3 + k] + 0.25 * ys[j * 3 + k];
                assert_eq!(out[(i * 5 + j) * 3 + k], want, "[{i}, {j}, {k}]");
            }
        }
    }
    // A broadcast over several chunks of the CPU backend, runs starting mid-row.
    let (p, q, r) = (300, 61, 7);
    let xs: Vec<f32> = (0..p * r).map(|i| (i % 97) as f32).collect();
    let ys: Vec<f32> = (0..q).map(|j| j as f32 * 1000.0).collect();
    let out = on_both(
        dev,
        "axpby big broadcast",
        |d| {
            let x = tensor(xs.clone(), &[p, 1, r], d)?;
            let y = tensor(ys.clone(), &[1, q, 1], d)?;
            axpby(1.0, &x, 1.0, &y)?.to_vec()
        },
        bits_f32,
    )?;
    for i in 0..p {
        for j in 0..q {
            for k in 0..r {
                assert_eq!(out[(i * q + j) * r + k], xs[i * r + k] + ys[j], "[{i}, {j}, {k}]");
            }
        }
    }
    // Shapes that do not broadcast, and a kernel with no tensor.
    let s = Stream::new(dev)?;
    let a = ops::zeros_on::<f32>(&s, [3])?;
    let b = ops::zeros_on::<f32>(&s, [4])?;
    assert!(matches!(axpby_on(&s, 1.0, &a, 1.0, &b), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(axpby_on::<f32>(&s, 1.0, 2.0, 3.0, 4.0), Err(Error::InvalidArgument { .. })));
    Ok(())
}
test_device!(several_outputs, several_outputs_broadcasting_and_values);

fn narrow_tensors_compute_in_the_kernels_type(dev: &Device) -> Result<()> {
    let xs = inputs(3000, 5);
    let n = xs.len();
    // f16 and bf16 tensors run the f32 kernel, rounded once.
    let h = on_both(
        dev,
        "gelu f16",
        |d| {
            let x = Tensor::from_vec(xs.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(), [n], d)?;
            Ok(gelu(&x)?.to_vec()?.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        },
        |a, b| a == b,
    )?;
    let b = on_both(
        dev,
        "gelu bf16",
        |d| {
            let x = Tensor::from_vec(xs.iter().map(|&v| bf16::from_f32(v)).collect::<Vec<_>>(), [n], d)?;
            Ok(gelu(&x)?.to_vec()?.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        },
        |a, b| a == b,
    )?;
    for (i, &v) in xs.iter().enumerate() {
        let wh = <f16 as Element>::from_f32(gelu_ref(f16::from_f32(v).to_f32()));
        let wb = <bf16 as Element>::from_f32(gelu_ref(bf16::from_f32(v).to_f32()));
        assert!(h[i] == wh.to_bits() || wh.is_nan(), "f16 gelu({v})");
        assert!(b[i] == wb.to_bits() || wb.is_nan(), "bf16 gelu({v})");
    }
    // An f64 kernel on f32 tensors: in f64, rounded once.
    let got = on_both(
        dev,
        "fma64 f32",
        |d| {
            let x = tensor(xs.clone(), &[n], d)?;
            fma64(&x, 3.0)?.to_vec()
        },
        bits_f32,
    )?;
    let want: Vec<f32> = xs.iter().map(|&x| (f64::from(x) * 3.0 + 1.0 / 3.0) as f32).collect();
    assert_same_f32(&got, &want, "fma64 on f32");
    Ok(())
}
test_device!(narrow_tensors, narrow_tensors_compute_in_the_kernels_type);

// ---- grid ----------------------------------------------------------------------------------------------------------

fn grid_kernels_match_references(dev: &Device) -> Result<()> {
    let (rows, cols) = (37usize, 53usize);
    let xs = inputs(rows * cols, 9);
    let t = on_both(
        dev,
        "transpose",
        |d| {
            let x = tensor(xs.clone(), &[rows, cols], d)?;
            let mut t = Tensor::from_vec(vec![0.0f32; rows * cols], [cols, rows], d)?;
            transpose(&mut t, &x, rows as u32, cols as u32).launch(rows * cols)?;
            t.to_vec()
        },
        bits_f32,
    )?;
    for r in 0..rows {
        for c in 0..cols {
            assert!(same_bits(t[c * rows + r], xs[r * cols + c]), "transpose [{r}, {c}]");
        }
    }
    let idx = on_both(
        dev,
        "indices",
        |d| {
            let mut out = Tensor::from_vec(vec![0.0f32; 3 * 64], [3 * 64], d)?;
            indices(&mut out, 1000.0).launch_config(LaunchConfig::new(3, 64))?;
            out.to_vec()
        },
        bits_f32,
    )?;
    let want: Vec<f32> = (0..192).map(|g| (g % 64) as f32 + 1000.0 * (g / 64) as f32).collect();
    assert_eq!(idx, want);
    let width = 17;
    let inp: Vec<f64> = (0..width * 300).map(|i| (i as f64).sin()).collect();
    let sums = on_both(
        dev,
        "row_sums",
        |d| {
            let x = Tensor::from_vec(inp.clone(), [300, width], d)?;
            let mut out = Tensor::from_vec(vec![0.0f64; 300], [300], d)?;
            row_sums(&mut out, &x, width).launch(300)?;
            out.to_vec()
        },
        |a, b| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
    )?;
    let want: Vec<f64> = inp.chunks(width).map(|row| row.iter().fold(0.0, |s, v| s + v) * 0.5).collect();
    assert_same_f64(&sums, &want, "row_sums");
    Ok(())
}
test_device!(grid_kernels, grid_kernels_match_references);

fn grid_launches_are_validated(dev: &Device) -> Result<()> {
    let s = Stream::new(dev)?;
    let mut t = ops::zeros_on::<f32>(&s, [64])?;
    let mut u = t.clone();
    let bad = |r: Result<()>| matches!(r, Err(Error::InvalidArgument { .. }));
    assert!(bad(indices(&mut t, 1.0).on(&s).launch_config(LaunchConfig::new(1, 2048))));
    assert!(bad(indices(&mut t, 1.0).on(&s).launch_config(LaunchConfig::new(0, 32))));
    assert!(bad(transpose(&mut t, &u, 8, 8).on(&s).launch(64)), "the same tensor as &mut and &");
    assert!(bad(shift_left(&mut u, &t).on(&s).launch(63)), "a clone shares the data");
    // Nothing to do: no launch, no error.
    indices(&mut t, 1.0).on(&s).launch(0)?;
    s.synchronize()
}
test_device!(grid_validation, grid_launches_are_validated);

fn faults_are_errors_that_poison_the_stream(dev: &Device) -> Result<()> {
    // One element past the end: an error (CPU: the bounds check; CUDA: the simulated driver's guard page).
    let s = Stream::new(dev)?;
    let inp = ops::ones_on::<f32>(&s, [100])?;
    let mut out = ops::zeros_on::<f32>(&s, [100])?;
    shift_left(&mut out, &inp).on(&s).launch(99)?;
    s.synchronize()?;
    shift_left(&mut out, &inp).on(&s).launch(100)?;
    let err = s.synchronize().expect_err("reading past the end must fail");
    if dev.is_cpu() {
        let text = err.to_string();
        assert!(text.contains("shift_left") && text.contains("`inp` has length 100 but the index is 100"), "{text}");
        assert!(text.contains("global index 99"), "{text}");
        // Division by zero is an error on the CPU backend (on a GPU it gives 0).
        let s2 = Stream::new(dev)?;
        let mut q = ops::zeros_on::<f32>(&s2, [10])?;
        divide(&mut q, 0).on(&s2).launch(10)?;
        let text = s2.synchronize().expect_err("division by zero").to_string();
        assert!(text.contains("attempt to divide by zero"), "{text}");
        divide(&mut q, -1).on(&s2).launch(10)?;
    }
    Ok(())
}
test_device!(faults, faults_are_errors_that_poison_the_stream);

// ---- streams -------------------------------------------------------------------------------------------------------

fn kernels_run_on_the_scope_stream_and_are_ordered_across_streams(dev: &Device) -> Result<()> {
    let (s1, s2) = (Stream::new(dev)?, Stream::new(dev)?);
    let n = 1 << 16;
    // Written on s1 behind a busy period, read on s2: s2 must wait for s1's kernel.
    let x = ops::full_on(&s1, [n], 2.0f32)?;
    let mut t = ops::zeros_on::<f32>(&s1, [n])?;
    streamdsl::__private::busy_on(&s1, std::time::Duration::from_millis(50), 64)?;
    transpose(&mut t, &x, 1, n as u32).on(&s1).launch(n)?;
    let y = gpu_scope!(stream = s2, { gelu(&t)? });
    assert_eq!(y.producer_stream_id(), Some(s2.id()), "the implicit form runs on the scope's stream");
    assert_eq!(y.to_vec()?, vec![gelu_ref(2.0); n]);
    // A write after a read on another stream waits for the read.
    let mut z = ops::zeros_on::<f32>(&s1, [n])?;
    let read = gelu_on(&s2, &z)?;
    transpose(&mut z, &x, 1, n as u32).on(&s1).launch(n)?;
    assert_eq!(read.to_vec()?, vec![0.0; n]);
    assert_eq!(z.to_vec()?, vec![2.0; n]);
    // The explicit form ignores the current stream.
    let w = gpu_scope!(stream = s1, { gelu_on(&s2, &x)? });
    assert_eq!(w.producer_stream_id(), Some(s2.id()));
    Ok(())
}
test_device!(ordering, kernels_run_on_the_scope_stream_and_are_ordered_across_streams);

fn the_race_checker_sees_kernel_accesses(dev: &Device) -> Result<()> {
    streamdsl::set_sanitize(true);
    let (s1, s2) = (Stream::new(dev)?, Stream::new(dev)?);
    let x = ops::randn_on::<f32>(&s1, [4096])?;
    let mut t = ops::zeros_on::<f32>(&s2, [4096])?;
    transpose(&mut t, &x, 64, 64).on(&s2).launch(4096)?;
    let y = gelu_on(&s1, &t)?;
    let r = y.to_vec();
    streamdsl::set_sanitize(false);
    assert_eq!(r?.len(), 4096);
    Ok(())
}
cpu_test!(race_checker, the_race_checker_sees_kernel_accesses);

// ---- NVRTC ---------------------------------------------------------------------------------------------------------

/// Every kernel of this file, with the element types it runs on.
fn sources() -> Vec<(&'static KernelSource, &'static [DType])> {
    const F32: &[DType] = &[DType::F32, DType::F16, DType::BF16];
    const ALL: &[DType] = &[DType::F32, DType::F64, DType::F16, DType::BF16];
    const ONE: &[DType] = &[DType::F32];
    vec![
        (&gelu::CUDA_SOURCE, F32),
        (&gelu_erf::CUDA_SOURCE, F32),
        (&methods::CUDA_SOURCE, F32),
        (&powers::CUDA_SOURCE, ALL),
        (&loops::CUDA_SOURCE, F32),
        (&branches::CUDA_SOURCE, ALL),
        (&ints::CUDA_SOURCE, F32),
        (&polar::CUDA_SOURCE, F32),
        (&axpby::CUDA_SOURCE, F32),
        (&awkward_names::CUDA_SOURCE, F32),
        (&fma64::CUDA_SOURCE, ALL),
        (&f32_only::CUDA_SOURCE, F32),
        (&transpose::CUDA_SOURCE, ONE),
        (&indices::CUDA_SOURCE, ONE),
        (&row_sums::CUDA_SOURCE, ONE),
        (&shift_left::CUDA_SOURCE, ONE),
        (&divide::CUDA_SOURCE, ONE),
    ]
}

#[test]
fn every_generated_kernel_compiles_for_sm80_and_sm90() {
    let Some(nvrtc) = nvrtc_or_skip("every_generated_kernel_compiles_for_sm80_and_sm90") else { return };
    let sources = sources();
    // One thread per arch, as `tests/kernels.rs` does.
    let counts: Vec<usize> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["sm_80", "sm_90"]
            .into_iter()
            .map(|arch| {
                let (nvrtc, sources) = (&nvrtc, &sources);
                scope.spawn(move || {
                    let cache = KernelCache::in_memory();
                    let arch: Arch = arch.parse().unwrap();
                    let mut count = 0;
                    for (source, dtypes) in sources {
                        for &dtype in *dtypes {
                            let spec = source.spec(dtype).unwrap();
                            match cache.get_or_compile(nvrtc, &spec, arch) {
                                Ok(k) => assert!(k.cubin.len() > 1000, "{} {arch}: a tiny CUBIN", spec.name()),
                                Err(e) => panic!("{} {dtype} {arch} does not compile:\n{e}\n{source}", source.name()),
                            }
                            count += 1;
                        }
                    }
                    count
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let count: usize = counts.iter().sum();
    report(&format!("compiled {count} #[kernel] specialisations for sm_80 and sm_90 with {nvrtc}"));
}

#[test]
fn an_f32_kernel_does_no_f64_arithmetic() {
    let Some(nvrtc) = nvrtc_or_skip("an_f32_kernel_does_no_f64_arithmetic") else { return };
    for source in [&f32_only::CUDA_SOURCE, &transpose::CUDA_SOURCE, &axpby::CUDA_SOURCE] {
        let ptx = nvrtc.ptx(&source.spec(DType::F32).unwrap(), Arch::new(9, 0)).unwrap();
        let f64_lines: Vec<&str> = ptx.lines().filter(|l| l.contains(".f64")).collect();
        assert!(f64_lines.is_empty(), "{}: f64 instructions in the PTX:\n{}", source.name(), f64_lines.join("\n"));
        assert!(ptx.contains(".f32"), "{}: no f32 arithmetic at all?", source.name());
    }
    // The f64 kernel does use f64 (the check above is not vacuous).
    let ptx = nvrtc.ptx(&fma64::CUDA_SOURCE.spec(DType::F64).unwrap(), Arch::new(9, 0)).unwrap();
    assert!(ptx.contains("mul.rn.f64") || ptx.contains("mul.f64"), "fma64's PTX:\n{ptx}");
}

#[test]
fn the_generated_cuda_c_is_readable() {
    let text = gelu::CUDA_SOURCE.to_string();
    assert!(text.contains("return 0.5f * x * (1.0f + k_tanh(0.7978846f * (x + 0.044715f * x * x * x)));"), "{text}");
    let t = transpose::CUDA_SOURCE.to_string();
    assert!(t.contains("extern \"C\" __global__ void transpose(float* __restrict__ out, u64 k_len_out, const float* __restrict__ inp, u64 k_len_inp, u32 rows, u32 cols, u32 k_n)"), "{t}");
    assert!(t.contains("out[(usize)(k_rem(i, cols) * rows + k_div(i, cols))] = inp[(usize)i];"), "{t}");
    // Device functions come first, once.
    let g = gelu_erf::CUDA_SOURCE.to_string();
    let (a, b) = (g.find("dev_erf_of_scaled(float x) {").unwrap(), g.find("gelu_erf_scalar(").unwrap());
    assert!(a < b, "{g}");
    assert_eq!(g.matches("__device__ __forceinline__ float dev_half_of").count(), 1);
    // Integer arithmetic wraps and divides through kernel.cuh.
    let i = ints::CUDA_SOURCE.to_string();
    assert!(i.contains("k_mul(k_mul(i, 65536), 65536)") && i.contains("k_div(i, 3)"), "{i}");
    // C's precedence differs from Rust's (`m & 4 == 4` is `(m & 4) == 4` in Rust): parentheses say it.
    assert!(i.contains("(m & 4u) == 4u") && i.contains("((m | 1u) ^ 3u) > 2u"), "{i}");
}

#[test]
fn device_functions_are_plain_rust_too() {
    assert_eq!(half_of(3.0), 1.5);
    assert_eq!(erf_of_scaled(0.0), 0.0);
}
