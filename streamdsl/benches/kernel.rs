//! `#[kernel]` against the hand-written built-in ops, on the CPU backend (and on CUDA when
//! `STREAMDSL_DEVICE=cuda` names a real GPU): prints a table.
//!
//! `cargo bench -p streamdsl --bench kernel`
//!
//! Each row times two ops on the same inputs, enqueued and synchronised one at a time, interleaved (A, B, A, B,
//! …) so drift and neighbours' load hit both alike; the figure is the median of the runs.

use std::time::Instant;

use streamdsl::half::f16;
use streamdsl::prelude::*;

#[kernel]
fn add(a: f32, b: f32) -> f32 {
    a + b
}

#[kernel]
fn scale(x: f32, s: f32) -> f32 {
    x * s
}

#[kernel]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
}

/// `gelu(x) * s + y` in one kernel: what fusing the three ops by hand gives.
#[kernel]
fn gelu_scale_add(x: f32, s: f32, y: f32) -> f32 {
    let g = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
    g * s + y
}

/// The built-in binary ops as one kernel, as they compute: in f64, rounded once (the bits of `ops::add_on`, …,
/// and of the scalar forms with `b` a value), for any element type.
#[kernel]
fn binary(a: f64, b: f64, op: u32) -> f64 {
    if op == 0 {
        a + b
    } else if op == 1 {
        a - b
    } else if op == 2 {
        a * b
    } else {
        a / b
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `a` and of `b` over `reps` interleaved runs, after one warm-up of each.
fn interleaved(
    reps: usize,
    s: &Stream,
    mut a: impl FnMut() -> Result<()>,
    mut b: impl FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    a()?;
    b()?;
    s.synchronize()?;
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t = Instant::now();
        a()?;
        s.synchronize()?;
        ta.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b()?;
        s.synchronize()?;
        tb.push(t.elapsed().as_secs_f64());
    }
    Ok((median(ta), median(tb)))
}

fn row(what: &str, ours: f64, theirs: f64, reference: &str, bytes: f64) {
    println!(
        "| {what} | {:.2} ms ({:.1} GB/s) | {reference}: {:.2} ms ({:.1} GB/s) | {:.2}× |",
        ours * 1e3,
        bytes / ours / 1e9,
        theirs * 1e3,
        bytes / theirs / 1e9,
        theirs / ours
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn main() -> Result<()> {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dev = Device::default();
    let s = Stream::new(&dev)?;
    let n = 10_000_000;
    let reps = 21;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("device: {dev}; CPU: {} ({threads} threads)", cpu_model());
    println!("10^7 elements, median of {reps} interleaved runs, each enqueue + synchronize\n");
    println!("| op | #[kernel] | hand-written built-in (same run) | kernel speed ÷ built-in |");
    println!("| --- | --- | --- | --- |");
    let want = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let x = ops::randn_on::<f32>(&s, [n])?;
    let y = ops::randn_on::<f32>(&s, [n])?;
    let mb = (n * 4) as f64;
    if want("add") {
        let (k, b) = interleaved(reps, &s, || add_on(&s, &x, &y).map(drop), || ops::add_on(&s, &x, &y).map(drop))?;
        row("add f32 (a + b)", k, b, "`ops::add_on`", 3.0 * mb);
    }
    if want("scale") {
        let (k, b) =
            interleaved(reps, &s, || scale_on(&s, &x, 2.5).map(drop), || ops::mul_scalar_on(&s, &x, 2.5).map(drop))?;
        row("scale f32 (x * 2.5)", k, b, "`ops::mul_scalar_on`", 2.0 * mb);
    }
    if want("dogfood") {
        let (k, b) =
            interleaved(reps, &s, || binary_on(&s, &x, &y, 0).map(drop), || ops::add_on(&s, &x, &y).map(drop))?;
        row("add f32 as the built-in computes it (f64, rounded once)", k, b, "`ops::add_on`", 3.0 * mb);
        let (k, b) = interleaved(
            reps,
            &s,
            || binary_on(&s, &x, 2.5, 2).map(drop),
            || ops::mul_scalar_on(&s, &x, 2.5).map(drop),
        )?;
        row("mul_scalar f32 as the built-in computes it", k, b, "`ops::mul_scalar_on`", 2.0 * mb);
        let got = binary_on(&s, &x, &y, 3)?.to_vec()?;
        let want = ops::div_on(&s, &x, &y)?.to_vec()?;
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "the same bits as the built-in");
    }
    if want("broadcast") {
        let row_t = ops::randn_on::<f32>(&s, [10_000])?;
        let x2 = Tensor::from_vec(x.to_vec()?, [1000, 10_000], &dev)?;
        let (k, b) =
            interleaved(reps, &s, || add_on(&s, &x2, &row_t).map(drop), || ops::add_on(&s, &x2, &row_t).map(drop))?;
        row("add f32 broadcast [1000, 10⁴] + [10⁴]", k, b, "`ops::add_on`", 2.0 * mb);
    }
    if want("f16") {
        let xh = ops::to_dtype_on::<f32, f16>(&s, &x)?;
        let yh = ops::to_dtype_on::<f32, f16>(&s, &y)?;
        let (k, b) = interleaved(reps, &s, || add_on(&s, &xh, &yh).map(drop), || ops::add_on(&s, &xh, &yh).map(drop))?;
        row("add f16 (in f32, rounded once)", k, b, "`ops::add_on`", 1.5 * mb);
    }
    if want("gelu") {
        // No built-in gelu: this row is one hand-fused kernel against the unfused chain (what fusion would
        // save), not a kernel-vs-built-in comparison.
        let (k, b) = interleaved(
            reps,
            &s,
            || gelu_scale_add_on(&s, &x, 2.0, &y).map(drop),
            || {
                let g = gelu_on(&s, &x)?;
                let m = ops::mul_scalar_on(&s, &g, 2.0)?;
                ops::add_on(&s, &m, &y).map(drop)
            },
        )?;
        row(
            "gelu(x) · 2 + y, hand-fused in one #[kernel]",
            k,
            b,
            "gelu kernel → `mul_scalar` → `add` (3 ops)",
            3.0 * mb,
        );
    }
    Ok(())
}
