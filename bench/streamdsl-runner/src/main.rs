//! streamdsl's runner for `./scripts/bench`: a persistent process that times each op through the public API
//! (explicit-stream `ops::*_on`, then `synchronize`), speaking the protocol of `streamdsl-bench-harness`.
//!
//! Not meant to be run by hand, but it can be: `cargo run --release -p streamdsl-bench-runner` and type
//! `{"cmd":"run","case":{"op":"mm","dtype":"f32","device":"cpu","batch":0,"m":512,"k":512,"n":512}}`.
//! Its own commands: `{"cmd":"probe_fma"}` (f32 FMA peak of all cores) and `{"cmd":"probe_bandwidth"}`
//! (copy and triad bandwidth).

mod probe;

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Value};
use streamdsl::half::{bf16, f16};
use streamdsl::prelude::*;
use streamdsl_bench_harness::{
    get_f64_or, get_str, get_usize, pattern_vec, serve, time_loop, Build, Case, Check, Runner, Spec,
};

/// streamdsl's errors as the protocol's strings.
trait OrText<T> {
    fn text(self) -> std::result::Result<T, String>;
}

impl<T> OrText<T> for streamdsl::Result<T> {
    fn text(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

type Answer<T> = std::result::Result<T, String>;

/// A device and the explicit stream every op of the runner is enqueued on.
#[derive(Clone)]
struct Ctx {
    dev: Device,
    stream: Stream,
}

impl Ctx {
    /// A tensor of `shape` holding the shared input pattern for operand `seed`, ready before the timing starts.
    fn input<T: Element>(&self, shape: &[usize], seed: u64) -> Answer<Tensor<T>> {
        let n = shape.iter().product();
        let t = Tensor::from_vec(pattern_vec(n, seed, T::from_f64), shape.to_vec(), &self.dev).text()?;
        // On a GPU the upload is enqueued on the device's current stream: let it finish before any timing.
        Stream::current(&self.dev).synchronize().text()?;
        Ok(t)
    }
}

fn checksum<T: Element>(t: &Tensor<T>) -> Answer<Check> {
    Ok(Check::of(t.to_vec().text()?.into_iter().map(|v| v.to_f64())))
}

/// A case whose every repetition is one op enqueued on the stream and waited for (`synchronize`), as a
/// synchronous library call would be.
struct Each<F> {
    stream: Stream,
    op: F,
}

impl<U: Element, F: FnMut(&Stream) -> streamdsl::Result<Tensor<U>>> Case for Each<F> {
    fn run(&mut self, k: u64) -> Answer<f64> {
        let (stream, op) = (&self.stream, &mut self.op);
        time_loop(k, || {
            let out = op(stream).text()?;
            stream.synchronize().text()?;
            drop(out);
            Ok(())
        })
    }

    fn check(&mut self, _k: u64) -> Answer<Check> {
        let out = (self.op)(&self.stream).text()?;
        checksum(&out)
    }
}

fn each<U: Element>(ctx: &Ctx, op: impl FnMut(&Stream) -> streamdsl::Result<Tensor<U>> + 'static) -> Build {
    Build::Case(Box::new(Each { stream: ctx.stream.clone(), op }))
}

/// The tiny-op cases: 4-element adds.
enum TinyMode {
    /// `x = x + b` `k` times, one `synchronize` at the end: the cost per op end to end (enqueue, run, and the
    /// caller's next enqueue overlapping the run).
    Chain,
    /// The same chain, counting only the time spent in the enqueueing calls (batches of 2,000; the wait
    /// between batches is not counted).
    Enqueue,
}

struct Tiny<T> {
    stream: Stream,
    x0: Tensor<T>,
    b: Tensor<T>,
    mode: TinyMode,
}

impl<T: Element> Tiny<T> {
    fn chain(&self, k: u64) -> Answer<(Tensor<T>, f64)> {
        let s = &self.stream;
        let mut x = self.x0.clone();
        match self.mode {
            TinyMode::Chain => {
                let t = Instant::now();
                for _ in 0..k {
                    x = ops::add_on(s, &x, &self.b).text()?;
                }
                s.synchronize().text()?;
                Ok((x, t.elapsed().as_secs_f64()))
            }
            TinyMode::Enqueue => {
                const BATCH: u64 = 2_000;
                let (mut left, mut counted) = (k, 0.0);
                while left > 0 {
                    let n = left.min(BATCH);
                    let t = Instant::now();
                    for _ in 0..n {
                        x = ops::add_on(s, &x, &self.b).text()?;
                    }
                    counted += t.elapsed().as_secs_f64();
                    s.synchronize().text()?;
                    left -= n;
                }
                Ok((x, counted))
            }
        }
    }
}

impl<T: Element> Case for Tiny<T> {
    fn run(&mut self, k: u64) -> Answer<f64> {
        Ok(self.chain(k)?.1)
    }

    fn check(&mut self, k: u64) -> Answer<Check> {
        checksum(&self.chain(k)?.0)
    }
}

/// Independent 4-element adds spread round-robin over `streams` streams from one host thread, then every
/// stream synchronised: throughput per op (compare 8 streams with 1).
struct TinyStreams<T> {
    streams: Vec<(Stream, Tensor<T>, Tensor<T>)>,
}

impl<T: Element> Case for TinyStreams<T> {
    fn run(&mut self, k: u64) -> Answer<f64> {
        let t = Instant::now();
        for i in 0..k as usize {
            let (s, a, b) = &self.streams[i % self.streams.len()];
            drop(ops::add_on(s, a, b).text()?);
        }
        for (s, _, _) in &self.streams {
            s.synchronize().text()?;
        }
        Ok(t.elapsed().as_secs_f64())
    }
}

/// Calls `$f::<T>($args)` with `T` named by the dtype string.
macro_rules! by_dtype {
    ($dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            "f32" => $f::<f32>($($arg),*),
            "f64" => $f::<f64>($($arg),*),
            "f16" => $f::<f16>($($arg),*),
            "bf16" => $f::<bf16>($($arg),*),
            other => Ok(Build::Unsupported(format!("streamdsl has no dtype `{other}`"))),
        }
    };
}

fn build_typed<T: Element>(ctx: &Ctx, spec: &Spec) -> Answer<Build> {
    let op = get_str(spec, "op")?;
    Ok(match op {
        "mm" => {
            let (batch, m, k, n) =
                (get_usize(spec, "batch")?, get_usize(spec, "m")?, get_usize(spec, "k")?, get_usize(spec, "n")?);
            let (sa, sb) = if batch == 0 { (vec![m, k], vec![k, n]) } else { (vec![batch, m, k], vec![batch, k, n]) };
            let (a, b) = (ctx.input::<T>(&sa, 1)?, ctx.input::<T>(&sb, 2)?);
            each(ctx, move |s| ops::mm_on(s, &a, &b))
        }
        "randn" => {
            let len = get_usize(spec, "len")?;
            let g = Generator::new(get_usize(spec, "seed").unwrap_or(0) as u64);
            each(ctx, move |s| ops::randn_with_on::<T>(s, [len], &g))
        }
        "add" => {
            let len = get_usize(spec, "len")?;
            let (a, b) = (ctx.input::<T>(&[len], 1)?, ctx.input::<T>(&[len], 2)?);
            each(ctx, move |s| ops::add_on(s, &a, &b))
        }
        "add_bcast" => {
            let (rows, cols) = (get_usize(spec, "rows")?, get_usize(spec, "cols")?);
            let (a, b) = (ctx.input::<T>(&[rows, cols], 1)?, ctx.input::<T>(&[cols], 2)?);
            each(ctx, move |s| ops::add_on(s, &a, &b))
        }
        "mul_scalar" => {
            let (len, value) = (get_usize(spec, "len")?, get_f64_or(spec, "scalar", 2.0));
            let a = ctx.input::<T>(&[len], 1)?;
            each(ctx, move |s| ops::mul_scalar_on(s, &a, value))
        }
        "sum" | "mean" => {
            let a = ctx.input::<T>(&[get_usize(spec, "len")?], 1)?;
            if op == "sum" {
                each(ctx, move |s| ops::sum_on(s, &a))
            } else {
                each(ctx, move |s| ops::mean_on(s, &a))
            }
        }
        "to_dtype" => {
            let a = ctx.input::<T>(&[get_usize(spec, "len")?], 1)?;
            return by_dtype!(get_str(spec, "to")?, to_dtype_case(ctx, a));
        }
        "tiny_add" | "tiny_enqueue" => {
            let len = get_usize(spec, "len")?;
            let mode = if op == "tiny_add" { TinyMode::Chain } else { TinyMode::Enqueue };
            let (x0, b) = (ctx.input::<T>(&[len], 1)?, ctx.input::<T>(&[len], 2)?);
            Build::Case(Box::new(Tiny { stream: ctx.stream.clone(), x0, b, mode }))
        }
        "tiny_streams" => {
            let len = get_usize(spec, "len")?;
            let streams = (0..get_usize(spec, "streams")?.max(1))
                .map(|_| Ok((Stream::new(&ctx.dev).text()?, ctx.input::<T>(&[len], 1)?, ctx.input::<T>(&[len], 2)?)))
                .collect::<Answer<Vec<_>>>()?;
            Build::Case(Box::new(TinyStreams { streams }))
        }
        other => Build::Unsupported(format!("the streamdsl runner has no case `{other}`")),
    })
}

fn to_dtype_case<U: Element>(ctx: &Ctx, a: Tensor<impl Element>) -> Answer<Build> {
    Ok(each(ctx, move |s| ops::to_dtype_on::<_, U>(s, &a)))
}

struct StreamdslRunner {
    /// One context per device name, made on first use; the error where the device is not there.
    ctxs: HashMap<String, Answer<Ctx>>,
}

impl StreamdslRunner {
    fn ctx(&mut self, device: &str) -> Answer<Ctx> {
        self.ctxs
            .entry(device.to_string())
            .or_insert_with(|| {
                let dev = match device {
                    "cpu" => Ok(Device::cpu()),
                    "cuda" => Device::cuda(0).map_err(|e| format!("no CUDA device for streamdsl: {e}")),
                    other => Err(format!("unknown device `{other}` (cpu or cuda)")),
                }?;
                Ok(Ctx { dev, stream: Stream::new(&dev).text()? })
            })
            .clone()
    }
}

impl Runner for StreamdslRunner {
    fn info(&mut self) -> Value {
        let cpu = Device::cpu();
        let cuda = match Device::cuda(0) {
            Ok(d) => json!({"available": true, "device": d.to_string()}),
            Err(e) => json!({"available": false, "why": e.to_string()}),
        };
        let mut features = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            for (name, present) in [
                ("avx2", is_x86_feature_detected!("avx2")),
                ("fma", is_x86_feature_detected!("fma")),
                ("avx512f", is_x86_feature_detected!("avx512f")),
            ] {
                if present {
                    features.push(name);
                }
            }
        }
        json!({
            "tool": "streamdsl",
            "version": env!("CARGO_PKG_VERSION"),
            "cpu_workers": cpu.concurrency(),
            "rayon_threads": rayon::current_num_threads(),
            "cpu_features": features,
            "cuda": cuda,
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        })
    }

    fn build(&mut self, spec: &Spec) -> Answer<Build> {
        let device = spec.get("device").and_then(Value::as_str).unwrap_or("cpu");
        let ctx = match self.ctx(device) {
            Ok(ctx) => ctx,
            Err(why) => return Ok(Build::Unsupported(why)),
        };
        by_dtype!(get_str(spec, "dtype")?, build_typed(&ctx, spec))
    }

    fn extra(&mut self, cmd: &str, request: &Value) -> Option<Answer<Value>> {
        match cmd {
            "probe_fma" => Some(Ok(probe::fma_peak(request.get("seconds").and_then(Value::as_f64).unwrap_or(0.3)))),
            "probe_bandwidth" => {
                let len = request.get("len").and_then(Value::as_u64).unwrap_or(1 << 25) as usize;
                Some(Ok(probe::bandwidth(len, 5)))
            }
            _ => None,
        }
    }
}

fn main() -> std::io::Result<()> {
    serve(&mut StreamdslRunner { ctxs: HashMap::new() })
}
