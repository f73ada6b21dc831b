//! The runner side of `./scripts/bench`: one persistent process per tool reads commands on stdin (one JSON
//! object a line) and answers each with one JSON line on stdout. The orchestrator (`bench/bench.py`) asks
//! every tool for the same case in turn, round after round, so no process pays its start-up cost inside a
//! measurement. The Python runner (`bench/py_runner.py`) speaks the same protocol and times the same way.
//!
//! Commands:
//!
//! - `{"cmd": "info"}` → `{"ok": true, "info": {…}}`: versions, threads, devices.
//! - `{"cmd": "run", "case": {…}, "min_time": 0.2, "reps": null}` → `{"ok": true, "seconds": s, "reps": k}`:
//!   one sample, `s` seconds per op over `k` repetitions (chosen so that the sample lasts about `min_time`;
//!   chosen once per case and kept for later rounds; `reps` forces it).
//! - `{"cmd": "check", "case": {…}, "reps": k}` → `{"ok": true, "numel": n, "sum": …, "abs": …, "sumsq": …}`:
//!   the op run from fresh inputs (`k` times for the tiny chained add), and a checksum of its result, so the
//!   orchestrator can compare tools.
//! - `{"cmd": "forget"}` drops the prepared cases (their inputs); `{"cmd": "quit"}` ends the process.
//!
//! A case the tool cannot run answers `{"ok": false, "unsupported": "why"}`; a failure answers
//! `{"ok": false, "error": "what"}` and the runner keeps serving.
//!
//! Inputs are the same numbers in every tool: element `i` of operand `seed` is [`pattern`]`(i, seed)`, rounded
//! to the element type.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use serde_json::{json, Map, Value};

/// The description of one case, as the orchestrator sends it: `op`, `dtype`, `device` and the sizes.
pub type Spec = Map<String, Value>;

/// At most this many repetitions in one sample (the tiny ops need ~10⁵–10⁶).
pub const MAX_REPS: u64 = 1 << 24;

/// Element `i` of the input operand `seed`: a value in [-0.5, 0.5) that every tool computes exactly.
pub fn pattern(i: usize, seed: u64) -> f64 {
    (((i as u64).wrapping_mul(37).wrapping_add(seed * 11)) % 101) as f64 / 101.0 - 0.5
}

/// `n` elements of [`pattern`] for operand `seed`, converted by `f`.
pub fn pattern_vec<T>(n: usize, seed: u64, f: impl Fn(f64) -> T) -> Vec<T> {
    (0..n).map(|i| f(pattern(i, seed))).collect()
}

/// A checksum of a result, accumulated in f64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    pub numel: usize,
    pub sum: f64,
    pub abs: f64,
    pub sumsq: f64,
}

impl Check {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Check {
        let mut c = Check { numel: 0, sum: 0.0, abs: 0.0, sumsq: 0.0 };
        for v in values {
            c.numel += 1;
            c.sum += v;
            c.abs += v.abs();
            c.sumsq += v * v;
        }
        c
    }

    fn to_json(self) -> Value {
        json!({"ok": true, "numel": self.numel, "sum": self.sum, "abs": self.abs, "sumsq": self.sumsq})
    }
}

/// One prepared case: inputs made once, then timed many times.
pub trait Case {
    /// Runs the op `k` times, each to completion, and returns the seconds that count for those `k` ops
    /// (for most cases the wall time of the whole loop; the enqueue-only case counts the enqueues only).
    fn run(&mut self, k: u64) -> Result<f64, String>;

    /// Runs the op from fresh inputs (`k` times where the case chains) and returns a checksum of the result.
    fn check(&mut self, _k: u64) -> Result<Check, String> {
        Err("this case is timed only; it has no result to compare".into())
    }
}

/// What a runner makes of a spec.
pub enum Build {
    Case(Box<dyn Case>),
    /// The tool has no such op, dtype or device; the reason is shown in the table.
    Unsupported(String),
}

/// A tool: how it describes itself and how it prepares cases.
pub trait Runner {
    fn info(&mut self) -> Value;
    fn build(&mut self, spec: &Spec) -> Result<Build, String>;
    /// Commands of this runner's own (the streamdsl runner's machine probes); `None` when unknown.
    fn extra(&mut self, _cmd: &str, _request: &Value) -> Option<Result<Value, String>> {
        None
    }
}

/// One timed sample of a case.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub seconds_per_op: f64,
    pub reps: u64,
}

/// Times `case`: the first time (no `cached` count) grows the repetition count until a sample lasts about
/// `min_time` (those runs are its warm-up); later, one short warm-up (a tenth of a sample) and the sample.
pub fn measure(
    case: &mut dyn Case,
    cached: &mut Option<u64>,
    min_time: f64,
    reps: Option<u64>,
) -> Result<Timing, String> {
    let k = match reps.or(*cached) {
        Some(k) => {
            case.run((k / 10).max(1))?;
            k
        }
        None => {
            let mut k = 1u64;
            loop {
                let t = case.run(k)?;
                if t >= min_time / 4.0 || k >= MAX_REPS {
                    break ((k as f64 * min_time / t.max(1e-9)).ceil() as u64).clamp(1, MAX_REPS);
                }
                let grow = if t > 0.0 { (min_time / 4.0 / t * 1.5).ceil() } else { 100.0 };
                k = ((k as f64 * grow.clamp(2.0, 100.0)) as u64).min(MAX_REPS);
            }
        }
    };
    if reps.is_none() {
        *cached = Some(k);
    }
    let t = case.run(k)?;
    Ok(Timing { seconds_per_op: t / k as f64, reps: k })
}

/// Times `f` run `k` times (a helper for cases whose every repetition runs to completion).
pub fn time_loop(k: u64, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let t = Instant::now();
    for _ in 0..k {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// A string field of a spec.
pub fn get_str<'a>(spec: &'a Spec, key: &str) -> Result<&'a str, String> {
    spec.get(key).and_then(Value::as_str).ok_or_else(|| format!("the case has no string field `{key}`: {spec:?}"))
}

/// A non-negative integer field of a spec.
pub fn get_usize(spec: &Spec, key: &str) -> Result<usize, String> {
    spec.get(key)
        .and_then(Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("the case has no integer field `{key}`: {spec:?}"))
}

/// A number field of a spec, with a default.
pub fn get_f64_or(spec: &Spec, key: &str, default: f64) -> f64 {
    spec.get(key).and_then(Value::as_f64).unwrap_or(default)
}

struct Prepared {
    case: Box<dyn Case>,
    reps: Option<u64>,
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

fn error(message: impl Into<String>) -> Value {
    json!({"ok": false, "error": message.into()})
}

/// Answers one request line; `None` for `quit`.
fn answer(runner: &mut dyn Runner, cases: &mut HashMap<String, Prepared>, line: &str) -> Option<Value> {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Some(error(format!("not a JSON request ({e}): {line}"))),
    };
    let cmd = request.get("cmd").and_then(Value::as_str).unwrap_or("");
    match cmd {
        "quit" => None,
        "info" => Some(json!({"ok": true, "info": runner.info()})),
        "forget" => {
            cases.clear();
            Some(json!({"ok": true}))
        }
        "run" | "check" => {
            let Some(spec) = request.get("case").and_then(Value::as_object) else {
                return Some(error(format!("`{cmd}` needs a `case` object: {line}")));
            };
            let key = Value::Object(spec.clone()).to_string();
            if !cases.contains_key(&key) {
                match catch_unwind(AssertUnwindSafe(|| runner.build(spec))) {
                    Ok(Ok(Build::Case(case))) => {
                        cases.insert(key.clone(), Prepared { case, reps: None });
                    }
                    Ok(Ok(Build::Unsupported(why))) => return Some(json!({"ok": false, "unsupported": why})),
                    Ok(Err(e)) => return Some(error(e)),
                    Err(p) => return Some(error(format!("panicked while preparing the case: {}", panic_text(&*p)))),
                }
            }
            let Some(prepared) = cases.get_mut(&key) else {
                return Some(error("the prepared case went missing"));
            };
            let reps = request.get("reps").and_then(Value::as_u64);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                if cmd == "check" {
                    prepared.case.check(reps.unwrap_or(1)).map(Check::to_json)
                } else {
                    let min_time = request.get("min_time").and_then(Value::as_f64).unwrap_or(0.2);
                    measure(&mut *prepared.case, &mut prepared.reps, min_time, reps)
                        .map(|t| json!({"ok": true, "seconds": t.seconds_per_op, "reps": t.reps}))
                }
            }));
            Some(match outcome {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => error(e),
                Err(p) => {
                    cases.remove(&key);
                    error(format!("panicked: {}", panic_text(&*p)))
                }
            })
        }
        other => Some(
            runner
                .extra(other, &request)
                .unwrap_or_else(|| Err(format!("unknown command `{other}`")))
                .unwrap_or_else(error),
        ),
    }
}

/// Serves requests from stdin until `quit` or end of input.
pub fn serve(runner: &mut dyn Runner) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut cases = HashMap::new();
    for line in stdin.lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Some(reply) = answer(runner, &mut cases, &line) else { break };
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleepy(u64);
    impl Case for Sleepy {
        fn run(&mut self, k: u64) -> Result<f64, String> {
            self.0 += k;
            Ok(k as f64 * 1e-4)
        }
        fn check(&mut self, k: u64) -> Result<Check, String> {
            Ok(Check::of((0..k).map(|i| i as f64)))
        }
    }

    struct Tool;
    impl Runner for Tool {
        fn info(&mut self) -> Value {
            json!({"tool": "test"})
        }
        fn build(&mut self, spec: &Spec) -> Result<Build, String> {
            match get_str(spec, "op")? {
                "sleep" => Ok(Build::Case(Box::new(Sleepy(0)))),
                "boom" => panic!("boom"),
                other => Ok(Build::Unsupported(format!("no {other}"))),
            }
        }
    }

    #[test]
    fn the_pattern_is_small_and_exact_in_every_type() {
        assert_eq!(pattern(0, 0), -0.5);
        assert!((0..1000).all(|i| (-0.5..0.5).contains(&pattern(i, 3))));
        assert_eq!(pattern(101, 2), pattern(0, 2));
    }

    #[test]
    fn measure_grows_the_count_until_a_sample_lasts_min_time() {
        let mut case = Sleepy(0);
        let mut cached = None;
        let t = measure(&mut case, &mut cached, 0.2, None).unwrap();
        assert!((1999..=2001).contains(&t.reps), "{t:?}");
        assert!((t.seconds_per_op - 1e-4).abs() < 1e-12);
        assert_eq!(cached, Some(t.reps));
        assert_eq!(measure(&mut case, &mut cached, 0.2, None).unwrap().reps, t.reps);
        assert_eq!(measure(&mut case, &mut cached, 0.2, Some(3)).unwrap().reps, 3);
    }

    #[test]
    fn requests_are_answered_and_failures_do_not_end_the_runner() {
        let mut cases = HashMap::new();
        let mut ask = |line: &str| answer(&mut Tool, &mut cases, line);
        assert_eq!(ask(r#"{"cmd":"info"}"#).unwrap()["info"]["tool"], "test");
        let run = ask(r#"{"cmd":"run","case":{"op":"sleep"},"min_time":0.01}"#).unwrap();
        assert_eq!(run["ok"], true, "{run}");
        assert_eq!(ask(r#"{"cmd":"check","case":{"op":"sleep"},"reps":3}"#).unwrap()["sum"], 3.0);
        assert_eq!(ask(r#"{"cmd":"run","case":{"op":"mm"}}"#).unwrap()["unsupported"], "no mm");
        assert!(ask(r#"{"cmd":"run","case":{"op":"boom"}}"#).unwrap()["error"].as_str().unwrap().contains("boom"));
        assert!(ask("not json").unwrap()["error"].as_str().unwrap().contains("not a JSON request"));
        assert!(ask(r#"{"cmd":"fly"}"#).unwrap()["error"].as_str().unwrap().contains("unknown command"));
        assert!(ask(r#"{"cmd":"quit"}"#).is_none());
    }
}
