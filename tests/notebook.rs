//! Every notebook in `examples/` runs in Jupyter with the evcxr kernel and shows the outputs saved in it.
//!
//! Executed headless with Jupyter's `nbconvert --execute` (as a person's "Run all" would), then compared with
//! the saved outputs, cell by cell: text outputs exactly (the notebooks print only deterministic values:
//! shapes, checksums from fixed seeds, booleans about timings), a timeline by its number of stream lanes, and
//! errors only where the saved notebook shows one on purpose. `STREAMDSL_NOTEBOOK_UPDATE=1` writes the
//! executed outputs back into the notebooks instead (then read the diff).
//!
//! Needs `jupyter` with `nbconvert` (`./.venv/bin` or the PATH) and the evcxr kernel (`evcxr_jupyter --install`);
//! `./scripts/test` installs both. Elsewhere the test says it was skipped. The kernels share one evcxr work
//! folder (`~/.cache/streamdsl/evcxr-<checkout>`, or `STREAMDSL_EVCXR_DIR`), so the dependencies compile once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use streamdsl_tests::report;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `jupyter`, if it has nbconvert and a kernel named `rust`.
fn jupyter() -> Result<PathBuf, String> {
    let local = root().join(".venv/bin/jupyter");
    let candidates = [local, PathBuf::from("jupyter")];
    let jupyter = candidates
        .into_iter()
        .find(|j| Command::new(j).args(["nbconvert", "--version"]).output().is_ok_and(|o| o.status.success()))
        .ok_or("Jupyter's nbconvert is not installed (./scripts/test installs it into ./.venv)")?;
    let kernels = Command::new(&jupyter).args(["kernelspec", "list", "--json"]).output().map_err(|e| e.to_string())?;
    let list: Value = serde_json::from_slice(&kernels.stdout).unwrap_or_default();
    if list["kernelspecs"].get("rust").is_none() {
        return Err(
            "the evcxr Jupyter kernel is not installed (cargo install evcxr_jupyter && evcxr_jupyter --install)".into(),
        );
    }
    Ok(jupyter)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(lines) => lines.iter().filter_map(Value::as_str).collect(),
        _ => String::new(),
    }
}

fn code_cells(nb: &Value) -> Vec<&Value> {
    nb["cells"].as_array().expect("a notebook has cells").iter().filter(|c| c["cell_type"] == "code").collect()
}

/// The SVG timeline's stream lanes.
fn lanes(svg: &str) -> usize {
    svg.matches("<g class=\"lane\"").count()
}

/// What must match between a saved output and an executed one.
fn comparable(output: &Value) -> String {
    match output["output_type"].as_str().unwrap_or("") {
        "stream" => format!("{}: {}", output["name"].as_str().unwrap_or(""), text(&output["text"])),
        "error" => format!("error: {}", text(&output["evalue"]).lines().next().unwrap_or("").trim()),
        kind => {
            let data = &output["data"];
            match data.get("image/svg+xml") {
                Some(svg) => {
                    let svg = text(svg);
                    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
                    format!("{kind}: an SVG timeline with {} stream lanes", lanes(&svg))
                }
                None => format!("{kind}: {}", text(&data["text/plain"]).trim()),
            }
        }
    }
}

/// evcxr's work folder, kept between runs so that the dependencies compile once: outside the repository (a
/// Cargo project inside the workspace's folder would be taken for a member), one per checkout.
fn evcxr_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STREAMDSL_EVCXR_DIR") {
        return PathBuf::from(dir);
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    root().canonicalize().unwrap_or_else(|_| root()).hash(&mut h);
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join(format!("streamdsl/evcxr-{:016x}", h.finish()))
}

/// Runs `notebook` in Jupyter, with `examples/` as the kernel's working folder (the notebooks name the crate by
/// a path relative to it); the executed notebook.
fn execute(jupyter: &Path, name: &str, notebook: &Value) -> Value {
    use std::io::Write;
    let work = evcxr_dir();
    std::fs::create_dir_all(&work).unwrap();
    // Not `--stdout`: the kernel's compiler output shares nbconvert's stdout.
    let out_dir = std::env::temp_dir().join(format!("streamdsl-notebooks-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut child = Command::new(jupyter)
        .args(["nbconvert", "--stdin", "--to", "notebook", "--execute", "--allow-errors"])
        .args(["--ExecutePreprocessor.timeout=1800", "--ExecutePreprocessor.startup_timeout=120"])
        .arg(format!("--output-dir={}", out_dir.display()))
        .arg(format!("--output={name}"))
        .current_dir(root().join("examples"))
        .env("EVCXR_TMPDIR", &work)
        .env("STREAMDSL_DEVICE", "cpu")
        .env("STREAMDSL_CPU_WORKERS", "4")
        .env_remove("STREAMDSL_TRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jupyter runs");
    child.stdin.take().unwrap().write_all(notebook.to_string().as_bytes()).unwrap();
    let run = child.wait_with_output().unwrap();
    assert!(run.status.success(), "nbconvert failed on {name}:\n{}", String::from_utf8_lossy(&run.stderr));
    let written = out_dir.join(name);
    let ran = std::fs::read_to_string(&written).unwrap_or_else(|e| {
        panic!("nbconvert wrote no notebook for {name} ({e}):\n{}", String::from_utf8_lossy(&run.stderr))
    });
    std::fs::remove_dir_all(&out_dir).ok();
    serde_json::from_str(&ran).unwrap()
}

/// Compares every code cell's outputs; returns the executed notebook's outputs by cell for an update.
fn compare(name: &str, saved: &Value, ran: &Value) {
    let (saved_cells, ran_cells) = (code_cells(saved), code_cells(ran));
    assert_eq!(saved_cells.len(), ran_cells.len(), "{name}: the executed copy has other cells");
    for (s, r) in saved_cells.iter().zip(&ran_cells) {
        let want: Vec<String> = s["outputs"].as_array().unwrap().iter().map(comparable).collect();
        let got: Vec<String> = r["outputs"].as_array().unwrap().iter().map(comparable).collect();
        assert_eq!(got, want, "{name}: the cell\n{}\nshowed other outputs than the saved ones", text(&s["source"]));
    }
}

/// Run after the quickstart's cells. evcxr links a copy of streamdsl into every cell; these fail if the copies
/// do not share one runtime. The sum is enqueued in a later cell than the write it reads, while that write is
/// held back by a gate: with a CPU stream machine per copy nothing would order the two, and the sum would read
/// zeros. Each copy would also number its streams from 0.
const CROSS_CELL_CHECKS: &[(&str, &str)] = &[
    ("let slow = Stream::new(&Device::cpu())?;\nlet gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));\nlet g = gate.clone();\nslow.launch_host_func(move || while !g.load(std::sync::atomic::Ordering::SeqCst) { std::thread::sleep(std::time::Duration::from_millis(1)) });", ""),
    ("let x = gpu_scope!(stream = slow, { ones::<f32>([1000])? });", ""),
    ("let total = x.sum()?;", ""),
    ("gate.store(true, std::sync::atomic::Ordering::SeqCst);\nformat!(\"cross-cell sum: {:?}\", total.item()?)", "\"cross-cell sum: 1000.0\""),
    ("fn on_current() -> Result<Tensor<f32>> { ones::<f32>([1]) }", ""),
    ("let t = gpu_scope!(stream = slow, { on_current()? });\nformat!(\"cross-cell scope: {}\", t.producer_stream_id() == Some(slow.id()))", "\"cross-cell scope: true\""),
    ("let later = Stream::new(&Device::cpu())?;\nformat!(\"cross-cell streams: {}\", later.id() > slow.id())", "\"cross-cell streams: true\""),
];

#[test]
fn every_notebook_runs_in_jupyter_and_shows_its_saved_outputs() {
    let examples = root().join("examples");
    let mut notebooks: Vec<PathBuf> = std::fs::read_dir(&examples)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "ipynb")).collect())
        .unwrap_or_default();
    notebooks.sort();
    if notebooks.is_empty() {
        report(
            "skipped every_notebook_runs_in_jupyter_and_shows_its_saved_outputs: the notebooks are not on this machine",
        );
        return;
    }
    let jupyter = match jupyter() {
        Ok(j) => j,
        Err(why) => {
            report(&format!("skipped every_notebook_runs_in_jupyter_and_shows_its_saved_outputs: {why}"));
            return;
        }
    };
    let update = std::env::var("STREAMDSL_NOTEBOOK_UPDATE").is_ok_and(|v| v == "1");
    let names: Vec<String> = notebooks.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(names.contains(&"quickstart.ipynb".into()) && names.contains(&"streams.ipynb".into()), "{names:?}");
    for path in &notebooks {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut saved: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let sources: Vec<String> = code_cells(&saved).iter().map(|c| text(&c["source"])).collect();
        assert!(sources.iter().any(|s| s.contains("gpu_scope!")), "{name} shows gpu_scope!");
        // The quickstart gets the cross-cell checks appended to the copy that runs.
        let mut to_run = saved.clone();
        if name == "quickstart.ipynb" {
            let cells = to_run["cells"].as_array_mut().unwrap();
            for (source, _) in CROSS_CELL_CHECKS {
                cells.push(json!({"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [], "source": source}));
            }
        }
        let ran = execute(&jupyter, &name, &to_run);
        if name == "custom_kernel.ipynb" {
            // The `#[kernel]` notebook defines kernels in cells and prints the CUDA C generated for `gelu`.
            assert!(sources.iter().any(|s| s.contains("#[kernel]")), "{name} shows #[kernel]");
            let shown: String =
                code_cells(&ran).iter().flat_map(|c| c["outputs"].as_array().unwrap()).map(comparable).collect();
            assert!(
                shown.contains("__device__ __forceinline__ float gelu_scalar(float x)"),
                "{name} prints the CUDA C:\n{shown}"
            );
        }
        let mut ran_cells: Vec<Value> = code_cells(&ran).into_iter().cloned().collect();
        if name == "quickstart.ipynb" {
            let extra = ran_cells.split_off(ran_cells.len() - CROSS_CELL_CHECKS.len());
            for (cell, (source, expected)) in extra.iter().zip(CROSS_CELL_CHECKS) {
                let shown: Vec<String> = cell["outputs"].as_array().unwrap().iter().map(comparable).collect();
                let want: Vec<String> =
                    if expected.is_empty() { vec![] } else { vec![format!("execute_result: {expected}")] };
                assert_eq!(shown, want, "the cross-cell check\n{source}");
            }
        }
        if update {
            // The executed outputs become the saved ones (execution counts and timings as Jupyter left them).
            let mut ran_iter = ran_cells.into_iter();
            for cell in saved["cells"].as_array_mut().unwrap().iter_mut().filter(|c| c["cell_type"] == "code") {
                let r = ran_iter.next().unwrap();
                cell["outputs"] = r["outputs"].clone();
                cell["execution_count"] = r["execution_count"].clone();
            }
            let mut text = serde_json::to_string_pretty(&saved).unwrap();
            text.push('\n');
            std::fs::write(path, text).unwrap();
            report(&format!("updated the saved outputs of {name}"));
            continue;
        }
        let ran_only = json!({ "cells": ran_cells.clone() });
        compare(&name, &saved, &ran_only);
        // Every cell ran: an error shows only where the saved notebook shows it on purpose.
        let errors =
            ran_cells.iter().flat_map(|c| c["outputs"].as_array().unwrap()).filter(|o| o["output_type"] == "error");
        let saved_errors = code_cells(&saved)
            .iter()
            .flat_map(|c| c["outputs"].as_array().unwrap().clone())
            .filter(|o| o["output_type"] == "error")
            .count();
        assert_eq!(errors.count(), saved_errors, "{name}: unexpected errors");
    }
}
