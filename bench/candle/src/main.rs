//! candle's runner for `./scripts/bench`: the cases of the streamdsl runner through candle-core's CPU
//! backend (synchronous: each op returns a computed tensor), with the protocol and timing loop of
//! `streamdsl-bench-harness`.

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use streamdsl_bench_harness::{
    get_f64_or, get_str, get_usize, pattern_vec, serve, time_loop, Build, Case, Check, Runner, Spec,
};

type Answer<T> = Result<T, String>;

fn text<T>(r: candle_core::Result<T>) -> Answer<T> {
    r.map_err(|e| e.to_string())
}

fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "f32" => DType::F32,
        "f64" => DType::F64,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        _ => return None,
    })
}

/// The shared input pattern for operand `seed`, made in f64 and converted once to `dt`.
fn input(shape: &[usize], seed: u64, dt: DType) -> Answer<Tensor> {
    let n = shape.iter().product();
    text(Tensor::from_vec(pattern_vec(n, seed, |v| v), shape, &Device::Cpu).and_then(|t| t.to_dtype(dt)))
}

fn checksum(t: &Tensor) -> Answer<Check> {
    let v = text(t.to_dtype(DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f64>()))?;
    Ok(Check::of(v))
}

/// A case whose every repetition is one op (candle computes it before returning).
struct Each<F>(F);

impl<F: FnMut() -> candle_core::Result<Tensor>> Case for Each<F> {
    fn run(&mut self, k: u64) -> Answer<f64> {
        time_loop(k, || text((self.0)()).map(drop))
    }

    fn check(&mut self, _k: u64) -> Answer<Check> {
        checksum(&text((self.0)())?)
    }
}

fn each(op: impl FnMut() -> candle_core::Result<Tensor> + 'static) -> Build {
    Build::Case(Box::new(Each(op)))
}

/// `x = x + b` `k` times on 4 elements: the cost per op end to end.
struct TinyChain {
    x0: Tensor,
    b: Tensor,
}

impl TinyChain {
    fn chain(&self, k: u64) -> Answer<Tensor> {
        let mut x = self.x0.clone();
        for _ in 0..k {
            x = text(x.add(&self.b))?;
        }
        Ok(x)
    }
}

impl Case for TinyChain {
    fn run(&mut self, k: u64) -> Answer<f64> {
        let t = std::time::Instant::now();
        self.chain(k)?;
        Ok(t.elapsed().as_secs_f64())
    }

    fn check(&mut self, k: u64) -> Answer<Check> {
        checksum(&self.chain(k)?)
    }
}

struct CandleRunner;

impl Runner for CandleRunner {
    fn info(&mut self) -> Value {
        json!({
            "tool": "candle",
            "version": "candle-core 0.11 (default features, CPU)",
            "threads": candle_core::utils::get_num_threads(),
            "cuda": {"available": false, "why": "this runner is built without candle's `cuda` feature"},
        })
    }

    fn build(&mut self, spec: &Spec) -> Answer<Build> {
        if spec.get("device").and_then(Value::as_str).unwrap_or("cpu") != "cpu" {
            return Ok(Build::Unsupported("candle runner built for the CPU only".into()));
        }
        let name = get_str(spec, "dtype")?;
        let Some(dt) = dtype(name) else { return Ok(Build::Unsupported(format!("candle has no dtype `{name}`"))) };
        let op = get_str(spec, "op")?;
        Ok(match op {
            "mm" => {
                let (batch, m, k, n) =
                    (get_usize(spec, "batch")?, get_usize(spec, "m")?, get_usize(spec, "k")?, get_usize(spec, "n")?);
                let (sa, sb) =
                    if batch == 0 { (vec![m, k], vec![k, n]) } else { (vec![batch, m, k], vec![batch, k, n]) };
                let (a, b) = (input(&sa, 1, dt)?, input(&sb, 2, dt)?);
                each(move || a.matmul(&b))
            }
            "randn" => {
                let len = get_usize(spec, "len")?;
                match dt {
                    DType::F32 => each(move || Tensor::randn(0f32, 1f32, len, &Device::Cpu)),
                    DType::F64 => each(move || Tensor::randn(0f64, 1f64, len, &Device::Cpu)),
                    _ => each(move || Tensor::randn(0f32, 1f32, len, &Device::Cpu)?.to_dtype(dt)),
                }
            }
            "add" => {
                let len = get_usize(spec, "len")?;
                let (a, b) = (input(&[len], 1, dt)?, input(&[len], 2, dt)?);
                each(move || a.add(&b))
            }
            "add_bcast" => {
                let (rows, cols) = (get_usize(spec, "rows")?, get_usize(spec, "cols")?);
                let (a, b) = (input(&[rows, cols], 1, dt)?, input(&[cols], 2, dt)?);
                each(move || a.broadcast_add(&b))
            }
            "mul_scalar" => {
                let (len, value) = (get_usize(spec, "len")?, get_f64_or(spec, "scalar", 2.0));
                let a = input(&[len], 1, dt)?;
                each(move || &a * value)
            }
            "sum" => {
                let a = input(&[get_usize(spec, "len")?], 1, dt)?;
                each(move || a.sum_all())
            }
            "mean" => {
                let a = input(&[get_usize(spec, "len")?], 1, dt)?;
                each(move || a.mean_all())
            }
            "to_dtype" => {
                let to_name = get_str(spec, "to")?;
                let Some(to) = dtype(to_name) else {
                    return Ok(Build::Unsupported(format!("candle has no dtype `{to_name}`")));
                };
                let a = input(&[get_usize(spec, "len")?], 1, dt)?;
                each(move || a.to_dtype(to))
            }
            "tiny_add" => {
                let len = get_usize(spec, "len")?;
                Build::Case(Box::new(TinyChain { x0: input(&[len], 1, dt)?, b: input(&[len], 2, dt)? }))
            }
            "tiny_enqueue" | "tiny_streams" => Build::Unsupported("candle's CPU backend has no streams".into()),
            other => Build::Unsupported(format!("the candle runner has no case `{other}`")),
        })
    }
}

fn main() -> std::io::Result<()> {
    serve(&mut CandleRunner)
}
