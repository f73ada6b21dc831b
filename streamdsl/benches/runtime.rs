//! Runtime benchmarks: prints a table for this machine.
//!
//! `cargo bench -p streamdsl --bench runtime`
//!
//! Each figure is the median of several timed runs after a warm-up, with the reference it is compared
//! to measured in the same run: `mm` against a direct faer `matmul` call on the same buffers (no stream
//! machine), `randn` against a single-threaded Philox + Box–Muller loop.

use std::time::Instant;

use streamdsl::prelude::*;
use streamdsl::random::{philox4x32_10, uniform_f32, uniform_f64};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` runs after one warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn mm_row(s: &Stream, n: usize, reps: usize) -> Result<()> {
    let g = Generator::new(n as u64);
    let a = ops::randn_with_on::<f32>(s, [n, n], &g)?;
    let b = ops::randn_with_on::<f32>(s, [n, n], &g)?;
    s.synchronize()?;
    let (av, bv) = (a.to_vec()?, b.to_vec()?);
    let mut cv = vec![0f32; n * n];
    let threads = rayon::current_num_threads();
    // Interleaved: one timing of each per round, so load changes hit both alike.
    let (mut ours, mut direct) = (Vec::new(), Vec::new());
    for round in 0..=reps {
        let t = Instant::now();
        let c = ops::mm_on(s, &a, &b)?;
        s.synchronize()?;
        drop(c);
        let o = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = faer::MatMut::from_row_major_slice_mut(&mut cv, n, n);
        let (fa, fb) = (faer::MatRef::from_row_major_slice(&av, n, n), faer::MatRef::from_row_major_slice(&bv, n, n));
        faer::linalg::matmul::matmul(c, faer::Accum::Replace, fa, fb, 1.0f32, faer::Par::rayon(threads));
        let d = t.elapsed().as_secs_f64();
        if round > 0 {
            ours.push(o);
            direct.push(d);
        }
    }
    let flops = 2.0 * (n as f64).powi(3);
    println!(
        "| mm f32 {n}x{n}x{n} | {:.1} GFLOP/s | direct faer call: {:.1} GFLOP/s |",
        flops / median(ours) / 1e9,
        flops / median(direct) / 1e9
    );
    Ok(())
}

fn randn_row(s: &Stream) -> Result<()> {
    let n = 10_000_000;
    let g = Generator::new(1);
    let ours = time(7, || {
        let t = ops::randn_with_on::<f32>(s, [n], &g).expect("randn");
        s.synchronize().expect("sync");
        drop(t);
    });
    let mut out = vec![0f32; n];
    let serial = time(3, || {
        for (i, quad) in out.chunks_mut(4).enumerate() {
            let b = philox4x32_10([i as u32, 0, 0, 0], [1, 0]);
            let r0 = (-2.0 * uniform_f32(b[0]).ln()).sqrt();
            let (s0, c0) = (std::f32::consts::TAU * uniform_f32(b[1])).sin_cos();
            let r1 = (-2.0 * uniform_f32(b[2]).ln()).sqrt();
            let (s1, c1) = (std::f32::consts::TAU * uniform_f32(b[3])).sin_cos();
            quad.copy_from_slice(&[r0 * c0, r0 * s0, r1 * c1, r1 * s1]);
        }
        std::hint::black_box(&out);
    });
    println!(
        "| randn f32 10M | {:.0} M numbers/s | single-threaded loop: {:.0} M numbers/s |",
        n as f64 / ours / 1e6,
        n as f64 / serial / 1e6
    );
    Ok(())
}

fn randn_f64_row(s: &Stream) -> Result<()> {
    let n = 10_000_000;
    let g = Generator::new(1);
    let ours = time(7, || {
        let t = ops::randn_with_on::<f64>(s, [n], &g).expect("randn");
        s.synchronize().expect("sync");
        drop(t);
    });
    let mut out = vec![0f64; n];
    let serial = time(3, || {
        for (i, quad) in out.chunks_mut(4).enumerate() {
            let b = philox4x32_10([i as u32, 0, 0, 0], [1, 0]);
            let r0 = (-2.0 * uniform_f64(b[0]).ln()).sqrt();
            let (s0, c0) = (std::f64::consts::TAU * uniform_f64(b[1])).sin_cos();
            let r1 = (-2.0 * uniform_f64(b[2]).ln()).sqrt();
            let (s1, c1) = (std::f64::consts::TAU * uniform_f64(b[3])).sin_cos();
            quad.copy_from_slice(&[r0 * c0, r0 * s0, r1 * c1, r1 * s1]);
        }
        std::hint::black_box(&out);
    });
    println!(
        "| randn f64 10M | {:.0} M numbers/s | single-threaded loop: {:.0} M numbers/s |",
        n as f64 / ours / 1e6,
        n as f64 / serial / 1e6
    );
    Ok(())
}

fn enqueue_row(s: &Stream) -> Result<()> {
    const BATCH: usize = 2_000;
    let mut per_op = Vec::new();
    for _ in 0..51 {
        let t = Instant::now();
        for _ in 0..BATCH {
            s.launch_host_func(|| {});
        }
        per_op.push(t.elapsed().as_secs_f64() / BATCH as f64);
        s.synchronize()?;
    }
    let x = ops::zeros_on::<f32>(s, [4])?;
    let mut per_tensor_op = Vec::new();
    for _ in 0..51 {
        let t = Instant::now();
        let ys: Vec<_> = (0..BATCH).map(|_| ops::add_scalar_on(s, &x, 1.0).expect("add")).collect();
        per_tensor_op.push(t.elapsed().as_secs_f64() / BATCH as f64);
        s.synchronize()?;
        drop(ys);
    }
    // The implicit form outside any scope: finds the current stream (the default device's default stream).
    let mut per_implicit_op = Vec::new();
    for _ in 0..51 {
        let t = Instant::now();
        let ys: Vec<_> = (0..BATCH).map(|_| ones::<f32>([4]).expect("ones")).collect();
        per_implicit_op.push(t.elapsed().as_secs_f64() / BATCH as f64);
        Device::default().default_stream().synchronize()?;
        drop(ys);
    }
    println!(
        "| enqueue an empty op (host cost) | {:.2} µs median | target < 1 µs; a 4-element `add_scalar` (validate + allocate + enqueue): {:.2} µs; `ones::<f32>([4])` on the current stream, outside any scope: {:.2} µs |",
        median(per_op) * 1e6,
        median(per_tensor_op) * 1e6,
        median(per_implicit_op) * 1e6
    );
    Ok(())
}

/// Tracing's cost per op: batches with tracing off and on, interleaved in one run. "Enqueue" is the host's time
/// to enqueue an empty op (what `enqueue_row` measures); "to completion" adds the worker's part (its timestamps and
/// the record's update), from the first enqueue until the stream drained, per op.
fn trace_row(s: &Stream) -> Result<()> {
    const BATCH: usize = 2_000;
    let x = ops::zeros_on::<f32>(s, [4])?;
    // [empty op, 4-element add_scalar] × [enqueue, to completion] × [off, on]
    let mut t =
        [[[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]], [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]]];
    for round in 0..80 {
        let on = round % 2 == 1;
        for (kind, samples) in t.iter_mut().enumerate() {
            if on {
                streamdsl::trace::start_with_capacity(4 * BATCH);
            }
            let start = Instant::now();
            let mut ys = Vec::with_capacity(BATCH);
            for _ in 0..BATCH {
                if kind == 0 {
                    s.launch_host_func(|| {});
                } else {
                    ys.push(ops::add_scalar_on(s, &x, 1.0)?);
                }
            }
            let enqueued = start.elapsed().as_secs_f64() / BATCH as f64;
            s.synchronize()?;
            let done = start.elapsed().as_secs_f64() / BATCH as f64;
            if on {
                let trace = streamdsl::trace::stop();
                assert_eq!(trace.ops.len(), BATCH, "every op recorded");
            }
            samples[0][usize::from(on)].push(enqueued);
            samples[1][usize::from(on)].push(done);
        }
    }
    let m = t.map(|kind| kind.map(|phase| phase.map(median)));
    let cell = |k: usize, p: usize| {
        format!("{:.3} / {:.3} µs (+{:.3})", m[k][p][0] * 1e6, m[k][p][1] * 1e6, (m[k][p][1] - m[k][p][0]) * 1e6)
    };
    println!(
        "| tracing off / on, per op (interleaved batches) | empty op: enqueue {}, to completion {} | 4-element `add_scalar_on`: enqueue {}, to completion {}; target < 1 µs per op on |",
        cell(0, 0),
        cell(0, 1),
        cell(1, 0),
        cell(1, 1)
    );
    Ok(())
}

fn main() -> Result<()> {
    let dev = Device::default();
    let s = Stream::new(&dev)?;
    println!(
        "streamdsl runtime benchmarks on {dev} ({} workers, {} rayon threads)",
        dev.concurrency(),
        rayon::current_num_threads()
    );
    println!();
    println!("| what | streamdsl | reference, same run |");
    println!("| --- | --- | --- |");
    // `cargo bench --bench runtime -- randn` runs only the rows whose name contains "randn".
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    if "mm".contains(only.as_str()) {
        mm_row(&s, 512, 41)?;
        mm_row(&s, 1024, 11)?;
        mm_row(&s, 2048, 5)?;
    }
    if "randn".contains(only.as_str()) {
        randn_row(&s)?;
        randn_f64_row(&s)?;
    }
    if "enqueue".contains(only.as_str()) {
        enqueue_row(&s)?;
    }
    if "trace".contains(only.as_str()) {
        trace_row(&s)?;
    }
    Ok(())
}
