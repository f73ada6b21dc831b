//! GPU benchmarks: prints a table where a CUDA device is present, and says why it skipped otherwise.
//!
//! `cargo bench -p streamdsl --bench gpu` (or `bash .gpu/run.sh bench` on a lent GPU machine). Each product
//! runs through both of streamdsl's `mm` paths — cuBLAS (where found) and its own NVRTC kernels — next to
//! `torch.mm` on the same device: the torch figures come from `scripts/gpu_reference.py --json`, which this
//! benchmark runs itself when Python and torch are there (`STREAMDSL_PYTHON` names the interpreter,
//! `STREAMDSL_GPU_REFERENCE` the script), so one call measures everything.
//!
//! Timing: CUDA events around the region, after a warm-up (module load and JIT stay out), median of
//! several runs, inputs from randn (never zeros). TF32 is off everywhere (torch's default too).
//!
//! `STREAMDSL_GPU_BENCH_SMOKE=1` runs every row once on small shapes (the simulated driver can run it): a check
//! of the plumbing, not a measurement.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use streamdsl::prelude::*;
use streamdsl::MmPath;

/// `(dtype, batch, m, k, n, reps)`; batch 0 is a 2-D product. `scripts/gpu_reference.py` lists the same.
const MM_CASES: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("f32", 0, 4096, 4096, 4096, 10),
    ("f32", 0, 4095, 4095, 4095, 10),
    ("f64", 0, 2048, 2048, 2048, 5),
    ("bf16", 0, 8192, 8192, 8192, 10),
    ("f16", 0, 8192, 8192, 8192, 10),
    ("bf16", 0, 4096, 4096, 4096, 10),
    ("bf16", 32, 512, 512, 512, 10),
];

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

/// One product through `path`: (median seconds, the result as f64 for comparing the paths).
fn time_mm<T: Element>(s: &Stream, path: MmPath, case: (usize, usize, usize, usize, usize)) -> Result<(f64, Vec<f64>)> {
    let (batch, m, k, n, reps) = case;
    let g = Generator::new((m * 31 + k * 7 + n) as u64);
    let lead: Vec<usize> = if batch > 0 { vec![batch] } else { vec![] };
    let a = ops::randn_with_on::<T>(s, [lead.clone(), vec![m, k]].concat(), &g)?;
    let b = ops::randn_with_on::<T>(s, [lead, vec![k, n]].concat(), &g)?;
    streamdsl::set_mm_path(path);
    let secs = time_on(s, reps, || ops::mm_on(s, &a, &b).map(drop))?;
    let c = ops::mm_on(s, &a, &b)?;
    let values = c.to_vec()?.into_iter().map(|v| v.to_f64()).collect();
    streamdsl::set_mm_path(MmPath::Auto);
    Ok((secs, values))
}

fn time_mm_named(
    s: &Stream,
    path: MmPath,
    dtype: &str,
    case: (usize, usize, usize, usize, usize),
) -> Result<(f64, Vec<f64>)> {
    match dtype {
        "f32" => time_mm::<f32>(s, path, case),
        "f64" => time_mm::<f64>(s, path, case),
        "f16" => time_mm::<f16>(s, path, case),
        _ => time_mm::<bf16>(s, path, case),
    }
}

/// ‖x − y‖ / ‖y‖.
fn rel_diff(x: &[f64], y: &[f64]) -> f64 {
    let num: f64 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = y.iter().map(|b| b * b).sum();
    (num / den).sqrt()
}

/// The value of `"key": value` in a flat JSON object line (numbers and strings; enough for the reference).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
    let rest = rest.trim_start();
    if let Some(text) = rest.strip_prefix('"') {
        return text.split('"').next();
    }
    rest.split([',', '}']).next().map(str::trim)
}

/// torch's seconds per product, by `dtype batch m k n`, and a description of the reference; or why none.
fn torch_reference() -> std::result::Result<(String, HashMap<String, f64>), String> {
    let script = std::env::var_os("STREAMDSL_GPU_REFERENCE")
        .map(PathBuf::from)
        .into_iter()
        .chain(["scripts/gpu_reference.py", "../scripts/gpu_reference.py"].map(PathBuf::from))
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu_reference.py")])
        .find(|p| p.is_file())
        .ok_or("scripts/gpu_reference.py not found (set STREAMDSL_GPU_REFERENCE)")?;
    let python = std::env::var("STREAMDSL_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(&script)
        .arg("--json")
        .output()
        .map_err(|e| format!("could not run {python}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("{} --json failed: {}", script.display(), err.lines().last().unwrap_or("")));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("");
    let about = format!(
        "torch {} (CUDA {}) on {}",
        field(head, "torch").unwrap_or("?"),
        field(head, "cuda").unwrap_or("?"),
        field(head, "device").unwrap_or("?")
    );
    let mut times = HashMap::new();
    for line in lines {
        let key = ["dtype", "batch", "m", "k", "n"].map(|k| field(line, k).unwrap_or("?")).join(" ");
        if let Some(secs) = field(line, "seconds").and_then(|v| v.parse::<f64>().ok()) {
            times.insert(key, secs);
        }
    }
    Ok((about, times))
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
    println!("streamdsl GPU benchmarks on {} (CUDA driver {driver})", gpus[0].name);
    streamdsl::set_allow_tf32(false);
    let route = streamdsl::cuda_mm_route();
    match &route {
        Ok(r) => println!("mm on CUDA by default: {r}"),
        Err(e) => println!("mm on CUDA: {e}"),
    }
    let cublas = route.as_ref().is_ok_and(|r| r.cublas);
    let s = Stream::new(&dev)?;
    let mut rows = Vec::new();
    let smoke = std::env::var("STREAMDSL_GPU_BENCH_SMOKE").is_ok_and(|v| v == "1");
    for &(dtype, batch, m, k, n, reps) in MM_CASES {
        let (batch, m, k, n, reps) =
            if smoke { (batch.min(2), m / 64 + 1, k / 64 + 3, n / 64 + 5, 1) } else { (batch, m, k, n, reps) };
        let case = (batch, m, k, n, reps);
        let (kt, kv) = time_mm_named(&s, MmPath::Kernels, dtype, case)?;
        let cb = if cublas { Some(time_mm_named(&s, MmPath::Cublas, dtype, case)?) } else { None };
        let diff = cb.as_ref().map(|(_, cv)| rel_diff(&kv, cv));
        rows.push((dtype, batch, m, k, n, kt, cb.map(|(t, _)| t), diff));
    }
    let reference = torch_reference();
    match &reference {
        Ok((about, _)) => println!("reference: {about}, TF32 off\n"),
        Err(why) => println!("no torch reference: {why}\n"),
    }
    println!("| mm | streamdsl kernels | streamdsl cuBLAS | torch.mm | kernels / torch | cuBLAS / torch | kernels vs cuBLAS |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let tflops = |flops: f64, secs: f64| format!("{:.1} TFLOP/s ({:.3} ms)", flops / secs / 1e12, secs * 1e3);
    for (dtype, batch, m, k, n, kt, ct, diff) in rows {
        let flops = 2.0 * batch.max(1) as f64 * (m * k * n) as f64;
        let shape = if batch > 0 { format!("{batch}×{m}×{k}×{n}") } else { format!("{m}×{k}×{n}") };
        let torch = reference.as_ref().ok().and_then(|(_, t)| t.get(&format!("{dtype} {batch} {m} {k} {n}")).copied());
        let na = || "n/a".to_string();
        let ratio = |ours: Option<f64>| match (ours, torch) {
            (Some(o), Some(t)) => format!("{:.2}×", t / o),
            _ => na(),
        };
        println!(
            "| {dtype} {shape} | {} | {} | {} | {} | {} | {} |",
            tflops(flops, kt),
            ct.map_or_else(na, |t| tflops(flops, t)),
            torch.map_or_else(na, |t| tflops(flops, t)),
            ratio(Some(kt)),
            ratio(ct),
            diff.map_or_else(na, |d| format!("{d:.1e}")),
        );
    }
    println!("\n| what | streamdsl | time |");
    println!("| --- | --- | --- |");
    let n = if smoke { 1 << 12 } else { 1usize << 26 };
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
    Ok(())
}
