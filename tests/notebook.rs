//! `examples/quickstart.ipynb` runs in evcxr and shows the outputs saved in it.
//!
//! Runs where the `evcxr` REPL is installed (`cargo install evcxr_repl`), and says it was skipped elsewhere:
//! installing evcxr takes minutes, so `./scripts/test` does not. The cells go through the REPL in order
//! (the evaluator the evcxr Jupyter kernel uses too); every saved result must appear in the output in
//! order, and the only errors must be the ones the notebook shows on purpose.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamdsl_tests::report;

/// A code cell: its source and the outputs saved with it.
struct Cell {
    source: String,
    results: Vec<String>,
    errors: Vec<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn code_cells(notebook: &Path) -> Vec<Cell> {
    let nb: Value = serde_json::from_str(&std::fs::read_to_string(notebook).unwrap()).unwrap();
    let cells = nb["cells"].as_array().expect("a notebook has cells");
    cells
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .map(|c| {
            let outputs = c["outputs"].as_array().cloned().unwrap_or_default();
            let of = |kind: &str| outputs.iter().filter(|o| o["output_type"] == kind).cloned().collect::<Vec<_>>();
            Cell {
                source: text(&c["source"]),
                results: of("execute_result").iter().map(|o| text(&o["data"]["text/plain"])).collect(),
                errors: of("error").iter().map(|o| text(&o["evalue"])).collect(),
            }
        })
        .collect()
}

fn evcxr() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let candidates = [Some(PathBuf::from("evcxr")), home.map(|h| h.join("bin/evcxr"))];
    candidates
        .into_iter()
        .flatten()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Runs `input` through the REPL in `dir`; its output with terminal colours removed.
fn run_repl(evcxr: &Path, dir: &Path, input: &str) -> String {
    let mut child = Command::new(evcxr)
        .current_dir(dir)
        .env("STREAMDSL_DEVICE", "cpu")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("evcxr starts");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(900);
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("evcxr did not finish the notebook in 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = reader.join().unwrap() + &errors.join().unwrap();
    strip_ansi(&all)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Run after the notebook, each line as its own cell. evcxr links a copy of streamdsl into every cell; these
/// fail if the copies do not share one runtime. The sum is enqueued in a later cell than the write it reads,
/// while that write is held back by a gate: with a CPU stream machine per copy nothing would order the two,
/// and the sum would read zeros. Each copy would also number its streams from 0.
const CROSS_CELL_CHECKS: &str = r#"let slow = Stream::new(&Device::cpu())?;
let gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
let g = gate.clone();
slow.launch_host_func(move || while !g.load(std::sync::atomic::Ordering::SeqCst) { std::thread::sleep(std::time::Duration::from_millis(1)) });
let x: Tensor<f32> = gpu_scope!(stream = slow, { ones::<f32>([1000])? });
let total: Tensor<f32> = x.sum()?;
gate.store(true, std::sync::atomic::Ordering::SeqCst);
format!("cross-cell sum: {:?}", total.item()?)
fn on_current() -> Result<Tensor<f32>> { ones::<f32>([1]) }
let t: Tensor<f32> = gpu_scope!(stream = slow, { on_current()? });
format!("cross-cell scope: {}", t.producer_stream_id() == Some(slow.id()))
let later = Stream::new(&Device::cpu())?;
format!("cross-cell streams: {}", later.id() > slow.id())
"#;

#[test]
fn the_quickstart_notebook_runs_in_evcxr() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let notebook = examples.join("quickstart.ipynb");
    if !notebook.is_file() {
        report("skipped the_quickstart_notebook_runs_in_evcxr: the notebook is not on this machine");
        return;
    }
    let cells = code_cells(&notebook);
    assert!(cells.iter().any(|c| c.source.contains("gpu_scope!")), "the notebook shows gpu_scope!");
    let Some(evcxr) = evcxr() else {
        report("skipped the_quickstart_notebook_runs_in_evcxr: evcxr is not installed (cargo install evcxr_repl)");
        return;
    };
    let input: String = cells.iter().map(|c| format!("{}\n", c.source)).collect::<String>() + CROSS_CELL_CHECKS;
    let output = run_repl(&evcxr, &examples, &input);
    // The checks after the notebook: one runtime for all the cells, whatever evcxr links into each.
    let tail: Vec<&str> =
        output.lines().filter(|l| l.starts_with("\"cross-cell")).map(|l| l.trim_matches('"')).collect();
    assert_eq!(
        tail,
        ["cross-cell sum: 1000.0", "cross-cell scope: true", "cross-cell streams: true"],
        "evcxr printed:\n{output}"
    );
    // Every saved result and error, in notebook order.
    let mut rest = output.as_str();
    for cell in &cells {
        for expected in cell.results.iter().chain(&cell.errors) {
            let line = rest.lines().position(|l| l.trim() == expected.trim() || l.contains(expected.trim()));
            let Some(i) = line else {
                panic!("the cell\n{}\ndid not show `{expected}`; evcxr printed:\n{output}", cell.source)
            };
            let skip: usize = rest.lines().take(i + 1).map(|l| l.len() + 1).sum();
            rest = &rest[skip.min(rest.len())..];
        }
    }
    let expected_errors: usize = cells.iter().map(|c| c.errors.len()).sum();
    let errors = output.lines().filter(|l| l.contains("Error")).count();
    assert_eq!(errors, expected_errors, "unexpected errors in the notebook's run:\n{output}");
}

/// `examples/custom_kernel.ipynb` (`#[kernel]` in evcxr) runs and shows its saved outputs, in order.
#[test]
fn the_custom_kernel_notebook_runs_in_evcxr() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let notebook = examples.join("custom_kernel.ipynb");
    if !notebook.is_file() {
        report("skipped the_custom_kernel_notebook_runs_in_evcxr: the notebook is not on this machine");
        return;
    }
    let cells = code_cells(&notebook);
    assert!(cells.iter().any(|c| c.source.contains("#[kernel]")), "the notebook shows #[kernel]");
    let Some(evcxr) = evcxr() else {
        report("skipped the_custom_kernel_notebook_runs_in_evcxr: evcxr is not installed (cargo install evcxr_repl)");
        return;
    };
    let input: String = cells.iter().map(|c| format!("{}\n", c.source)).collect();
    let output = run_repl(&evcxr, &examples, &input);
    assert!(
        output.contains("__device__ __forceinline__ float gelu_scalar(float x)"),
        "the CUDA C is printed:\n{output}"
    );
    let mut rest = output.as_str();
    for cell in &cells {
        for expected in cell.results.iter().chain(&cell.errors) {
            let line = rest.lines().position(|l| l.trim() == expected.trim() || l.contains(expected.trim()));
            let Some(i) = line else {
                panic!("the cell\n{}\ndid not show `{expected}`; evcxr printed:\n{output}", cell.source)
            };
            let skip: usize = rest.lines().take(i + 1).map(|l| l.len() + 1).sum();
            rest = &rest[skip.min(rest.len())..];
        }
    }
    let expected_errors: usize = cells.iter().map(|c| c.errors.len()).sum();
    let errors = output.lines().filter(|l| l.contains("Error")).count();
    assert_eq!(errors, expected_errors, "unexpected errors in the notebook's run:\n{output}");
}
