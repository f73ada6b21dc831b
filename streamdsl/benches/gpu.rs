//! GPU benchmarks: prints a table where a CUDA device is present, and says why it skipped otherwise.
//!
//! `cargo bench -p streamdsl --bench gpu` (or `bash .gpu/run.sh bench` on a lent GPU machine). The references
//! (cuBLAS through torch with TF32 off, torch.randn) come from `scripts/gpu_reference.py`, run in the same
//! session: `python3 scripts/gpu_reference.py`.
//!
//! Timing: CUDA events around the region, after a warm-up (module load and JIT stay out), median of
//! several runs, inputs from randn (never zeros).

use std::time::Duration;

use streamdsl::prelude::*;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` (which enqueues on `s`) over `reps` runs, timed with CUDA events.
fn time_on(s: &Stream, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    s.synchronize()?;
    let dev = s.device();
    let mut times = Vec::new();
    for _ in 0..reps {
        let (start, end) = (Event::timed(&dev), Event::timed(&dev));
        s.record(&start)?;
        f()?;
        s.record(&end)?;
        end.synchronize()?;
        times.push(start.elapsed_time(&end)?.as_secs_f64());
    }
    Ok(median(times))
}

fn mm_row<T: Element>(s: &Stream, n: usize, reps: usize) -> Result<()> {
    let g = Generator::new(n as u64);
    let a = ops::randn_with_on::<T>(s, [n, n], &g)?;
    let b = ops::randn_with_on::<T>(s, [n, n], &g)?;
    let secs = time_on(s, reps, || ops::mm_on(s, &a, &b).map(drop))?;
    println!("| mm {} {n}³ | {:.1} TFLOP/s | {:.3} ms |", T::DTYPE, 2.0 * (n as f64).powi(3) / secs / 1e12, secs * 1e3);
    Ok(())
}

fn main() -> Result<()> {
    let dev = match Device::cuda(0) {
        Ok(d) => d,
        Err(e) => {
            println!("GPU benchmarks skipped: {e}");
            return Ok(());
        }
    };
    let (driver, gpus) = Device::cuda_devices()?;
    println!("streamdsl GPU benchmarks on {} (CUDA driver {driver})\n", gpus[0].name);
    println!("| what | streamdsl | time |");
    println!("| --- | --- | --- |");
    let s = Stream::new(&dev)?;
    mm_row::<f32>(&s, 4096, 10)?;
    mm_row::<f64>(&s, 2048, 5)?;
    mm_row::<bf16>(&s, 8192, 10)?;
    mm_row::<f16>(&s, 8192, 10)?;
    let n = 1usize << 26;
    let g = Generator::new(1);
    let secs = time_on(&s, 10, || ops::randn_with_on::<f32>(&s, [n], &g).map(drop))?;
    println!("| randn f32 64 M | {:.1} G numbers/s | {:.3} ms |", n as f64 / secs / 1e9, secs * 1e3);
    let x = ops::randn_with_on::<f32>(&s, [n], &g)?;
    let secs = time_on(&s, 10, || ops::add_on(&s, &x, &x).map(drop))?;
    println!(
        "| add f32 64 M (3 × 256 MiB moved) | {:.0} GB/s | {:.3} ms |",
        3.0 * 4.0 * n as f64 / secs / 1e9,
        secs * 1e3
    );
    let _ = Duration::ZERO;
    Ok(())
}
