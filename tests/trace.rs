//! `streamdsl::trace`: what it records, the Chrome trace JSON's schema (the `multistream` example run with
//! `STREAMDSL_TRACE`), the SVG timeline, overlap read from the trace data, and the ring's bound.
//!
//! Tracing is process-wide, so every test here holds one lock while it records.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use streamdsl::__private::{busy_on, cuda as machine};
use streamdsl::prelude::*;
use streamdsl::trace::{self, Status, StreamKey};
use streamdsl_tests::{cuda_or_skip, report, test_device, Gate};

static TRACING: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    TRACING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks a Chrome trace-event document as Perfetto's JSON importer reads it: every event has `ph`, `ts`,
/// `pid` and `tid`; complete events have a non-negative duration; every flow start has exactly one end with
/// the same id, and each binds to a complete event on its own track that contains its timestamp. Returns the
/// complete events' `(pid, tid, name, ts, dur)`.
pub fn validate_chrome_trace(json: &str) -> Vec<(i64, i64, String, f64, f64)> {
    let doc: Value = serde_json::from_str(json).expect("the trace is JSON");
    let events = doc["traceEvents"].as_array().expect("a traceEvents array");
    assert!(!events.is_empty());
    let mut slices = Vec::new();
    let mut flows: std::collections::HashMap<i64, Vec<(String, i64, i64, f64)>> = Default::default();
    for e in events {
        let ph = e["ph"].as_str().unwrap_or_else(|| panic!("no ph: {e}"));
        let ts = e["ts"].as_f64().unwrap_or_else(|| panic!("no ts: {e}"));
        let pid = e["pid"].as_i64().unwrap_or_else(|| panic!("no pid: {e}"));
        let tid = e["tid"].as_i64().unwrap_or_else(|| panic!("no tid: {e}"));
        assert!(ts >= 0.0, "negative ts: {e}");
        match ph {
            "X" => {
                let dur = e["dur"].as_f64().unwrap_or_else(|| panic!("an X event without dur: {e}"));
                assert!(dur >= 0.0, "negative duration: {e}");
                let name = e["name"].as_str().expect("a slice has a name").to_string();
                slices.push((pid, tid, name, ts, dur));
            }
            "s" | "f" => {
                let id = e["id"].as_i64().unwrap_or_else(|| panic!("a flow without id: {e}"));
                if ph == "f" {
                    assert_eq!(e["bp"], "e", "flow ends bind to the enclosing slice: {e}");
                }
                flows.entry(id).or_default().push((ph.to_string(), pid, tid, ts));
            }
            "M" | "i" => {}
            other => panic!("unexpected phase {other}: {e}"),
        }
    }
    for (id, ends) in &flows {
        let kinds: Vec<&str> = ends.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "s").count(), 1, "flow {id}: {kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "f").count(), 1, "flow {id}: {kinds:?}");
        for (ph, pid, tid, ts) in ends {
            let bound = slices.iter().any(|(p, t, _, s, d)| p == pid && t == tid && *s <= *ts && *ts <= s + d);
            assert!(bound, "flow {id}'s {ph} at {ts} on {pid}/{tid} binds to no slice");
        }
    }
    slices
}

/// The example binary `name`, built by `cargo test` (examples are built with the tests), else built now.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "streamdsl-examples", "--example", name])
            .status()
            .expect("cargo runs");
        assert!(status.success());
    }
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamdsl-trace-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lanes_in_svg(svg: &str) -> usize {
    svg.matches("<g class=\"lane\"").count()
}

#[test]
fn the_multistream_example_writes_a_valid_trace_and_timeline() {
    let dir = temp_dir("example");
    let (json, svg) = (dir.join("trace.json"), dir.join("timeline.svg"));
    let out = std::process::Command::new(example("multistream"))
        .env("STREAMDSL_TRACE", format!("{},{}", json.display(), svg.display()))
        .env("STREAMDSL_DEVICE", "cpu")
        .output()
        .expect("the example runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let slices = validate_chrome_trace(&std::fs::read_to_string(&json).unwrap());
    for op in ["randn", "mul", "mm", "mean"] {
        assert_eq!(slices.iter().filter(|s| s.2 == op).count(), if op == "randn" { 9 } else { 8 }, "{op}");
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(lanes_in_svg(&svg), 2, "a lane per stream: producer and consumer");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_streams_overlap_and_one_stream_does_not() -> Result<()> {
    let _x = exclusive();
    let dev = Device::cpu();
    let recording = trace::guard();
    let two = streamdsl_examples::pipeline(&dev, true, 8)?;
    let t = recording.finish();
    let overlap = t.overlap(&two.producer, &two.consumer);
    assert!(overlap > Duration::ZERO, "the producer makes the next batch while the consumer multiplies");
    assert_eq!(t.timeline().lanes(), 2);
    // The JSON says the same: slices on the two stream tracks intersect in time.
    let slices = validate_chrome_trace(&t.to_chrome_json());
    let on_track = |tid: i64| slices.iter().filter(move |s| s.0 == 2 && s.1 == tid);
    let (p, c) = (two.producer.id() as i64 + 1, two.consumer.id() as i64 + 1);
    let crossing = on_track(p).any(|a| on_track(c).any(|b| a.3 < b.3 + b.4 && b.3 < a.3 + a.4));
    assert!(crossing, "overlapping slices on the two stream tracks");

    let recording = trace::guard();
    let one = streamdsl_examples::pipeline(&dev, false, 8)?;
    let t = recording.finish();
    assert_eq!(one.producer, one.consumer);
    assert_eq!(t.timeline().lanes(), 1);
    let mut spans: Vec<(Duration, Duration)> =
        t.ops_on(&one.consumer).map(|op| (op.start.unwrap(), op.end.unwrap())).collect();
    spans.sort();
    assert_eq!(spans.len(), 9 + 8 * 3);
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "one stream runs its ops one after another");
    assert_eq!(two.means, one.means, "same work, same numbers");
    Ok(())
}

#[test]
fn ops_carry_streams_shapes_bytes_and_times() -> Result<()> {
    let _x = exclusive();
    let dev = Device::cpu();
    let (s1, s2) = (Stream::new(&dev)?, Stream::with_priority(&dev, -2)?);
    let gate = Gate::new();
    trace::start();
    let held = gate.clone();
    s1.launch_host_func(move || held.wait()); // so that mm's inputs are still pending when it is enqueued
    let a = ops::randn_on::<f32>(&s1, [64, 32])?;
    let b = ops::randn_on::<f32>(&s1, [32, 16])?;
    let c = ops::mm_on(&s2, &a, &b)?; // hazard waits: s2 reads what s1 writes
    let e = s2.record_event();
    s1.wait_event(&e)?; // an explicit wait (it also covers to_dtype's read of `c`)
    let d = ops::to_dtype_on::<f32, f64>(&s1, &c)?;
    gate.open();
    let total = ops::sum_on(&s1, &d)?.item()?;
    let t = trace::stop();
    assert!(total.is_finite());

    let mm = t.ops.iter().find(|o| o.op == "mm").unwrap();
    assert_eq!(mm.stream, StreamKey::from(&s2));
    assert_eq!(mm.inputs.iter().map(|i| i.shape.clone()).collect::<Vec<_>>(), [vec![64, 32], vec![32, 16]]);
    assert_eq!(mm.output.as_ref().unwrap().shape, [64, 16]);
    assert_eq!(mm.bytes, Some(4 * (64 * 32 + 32 * 16 + 64 * 16)));
    assert_eq!(mm.status, Status::Completed);
    let (start, end) = (mm.start.unwrap(), mm.end.unwrap());
    assert!(mm.enqueued <= start && start <= end);
    let convert = t.ops.iter().find(|o| o.op == "to_dtype").unwrap();
    assert_eq!(convert.output.as_ref().unwrap().dtype, DType::F64);
    assert_eq!(convert.bytes, Some(64 * 16 * (4 + 8)));

    let info = t.streams.iter().find(|s| s.key == StreamKey::from(&s2)).unwrap();
    assert_eq!(info.priority, Some(-2));
    let (k1, k2) = (StreamKey::from(&s1), StreamKey::from(&s2));
    let hazards: Vec<_> = t.waits.iter().filter(|w| w.hazard && w.stream == k2).collect();
    assert_eq!(hazards.len(), 2, "mm waits for each randn");
    assert!(hazards.iter().all(|w| w.on == k1 && w.resolved.is_some()));
    let explicit: Vec<_> = t.waits.iter().filter(|w| !w.hazard).collect();
    assert_eq!((explicit.len(), explicit[0].stream, explicit[0].on), (1, k1, k2));
    // Arrows: each randn → mm (hazard), mm → to_dtype (the explicit wait for the event after mm), and the
    // copy to the host waiting for the sum.
    let flows: Vec<(&str, &str, bool)> =
        t.flows().iter().map(|f| (t.ops[f.from].op, t.ops[f.to].op, f.hazard)).collect();
    // The copy to the host waits for the sum too, unless the sum already ran (cheap work may run inline).
    assert_eq!(flows[..3], [("randn", "mm", true), ("randn", "mm", true), ("mm", "to_dtype", false)]);
    assert!(flows[3..].iter().all(|f| *f == ("sum", "to_vec", true)), "{flows:?}");
    let from: Vec<u64> = t.flows()[..2].iter().map(|f| t.ops[f.from].seq).collect();
    assert_eq!(from, [2, 3], "each arrow starts at the randn it waits for");
    assert!(t.events.iter().any(|ev| ev.stream == StreamKey::from(&s2) && ev.completed.is_some()));
    // `item` blocked the host, and its copy ran on a transient reader stream drawn in the host part.
    let item = t.host_calls.iter().find(|h| h.call == "item").unwrap();
    assert!(item.end >= item.start);
    let copy = t.ops.iter().find(|o| o.op == "to_vec").unwrap();
    assert!(t.streams.iter().any(|s| s.key == copy.stream && s.reader));
    assert_eq!(copy.inputs[0].shape, Vec::<usize>::new());
    let svg = t.timeline().to_string();
    assert_eq!(lanes_in_svg(&svg), 2);
    assert!(svg.contains("host reads (to_vec)") && svg.contains("class=\"flow hazard\""));
    assert!(svg.contains("class=\"flow wait\"") && svg.contains("priority -2"));
    validate_chrome_trace(&t.to_chrome_json());
    Ok(())
}

#[test]
fn nothing_is_recorded_while_off() -> Result<()> {
    let _x = exclusive();
    let s = Stream::new(&Device::cpu())?;
    trace::start();
    ops::ones_on::<f32>(&s, [4])?;
    let t = trace::stop();
    let ours = t.ops_on(&s).count();
    ops::ones_on::<f32>(&s, [4])?;
    s.synchronize()?;
    assert_eq!(trace::snapshot().ops_on(&s).count(), ours);
    assert!(!trace::is_enabled());
    Ok(())
}

#[test]
fn a_full_ring_drops_the_oldest_records() -> Result<()> {
    let _x = exclusive();
    let s = Stream::new(&Device::cpu())?;
    trace::start_with_capacity(64);
    for _ in 0..500 {
        s.launch_host_func(|| {});
    }
    s.synchronize()?;
    let t = trace::stop();
    assert_eq!(t.capacity, 64);
    assert_eq!(t.dropped as usize + t.ops.len() + t.host_calls.len(), 500 + 1);
    assert_eq!(t.ops.len() + t.host_calls.len(), 64, "the ring stays full");
    // The most recent records are kept, and the ones kept still get their times.
    let seqs: Vec<u64> = t.ops_on(&s).map(|o| o.seq).collect();
    assert_eq!(*seqs.last().unwrap(), 500);
    assert!(t.ops.iter().all(|o| o.status == Status::Completed && o.end.is_some()));
    assert!(t.to_string().contains("oldest records dropped"));
    assert!(t.timeline().to_string().contains("oldest records dropped"));
    Ok(())
}

#[test]
fn thousands_of_ops_make_a_small_readable_timeline() -> Result<()> {
    let _x = exclusive();
    let dev = Device::cpu();
    let (s1, s2) = (Stream::new(&dev)?, Stream::new(&dev)?);
    trace::start();
    let mut x = ops::ones_on::<f32>(&s1, [16])?;
    for i in 0..3000 {
        let s = if i % 500 == 0 { &s2 } else { &s1 };
        x = ops::add_scalar_on(s, &x, 1.0)?;
    }
    assert_eq!(ops::sum_on(&s1, &x)?.item()?, 16.0 * 3001.0);
    let t = trace::stop();
    assert_eq!(t.ops.iter().filter(|o| o.op == "add").count(), 3000);
    let svg = t.timeline().to_string();
    // Sub-pixel neighbours merge: far fewer boxes than ops, and a bounded document.
    let boxes = svg.matches("class=\"op\"").count();
    assert!(boxes < 1500, "{boxes} boxes");
    let merged: usize =
        svg.split("data-count=\"").skip(1).map(|s| s.split('"').next().unwrap().parse::<usize>().unwrap()).sum();
    assert_eq!(merged, t.ops.len(), "every op is in exactly one box");
    assert!(svg.len() < 600_000, "{} bytes", svg.len());
    assert_eq!(lanes_in_svg(&svg), 2);
    Ok(())
}

fn device_ops_are_traced(dev: &Device) -> Result<()> {
    let _x = exclusive();
    let (s1, s2) = (Stream::new(dev)?, Stream::new(dev)?);
    let gate = Gate::new();
    trace::start();
    let held = gate.clone();
    s1.launch_host_func(move || held.wait()); // the fill is still pending when the add is enqueued
    let a = ops::full_on(&s1, [256], 2.0f32)?;
    let b = ops::add_on(&s2, &a, &a)?;
    gate.open();
    let total = ops::sum_on(&s2, &b)?.item()?;
    let t = trace::stop();
    assert_eq!(total, 1024.0);
    let add = t.ops.iter().find(|o| o.op == "add" && o.stream == StreamKey::from(&s2)).unwrap();
    assert_eq!(add.stream.device, *dev);
    assert_eq!(add.output.as_ref().unwrap().shape, [256]);
    // The hazard tracker's wait for `a` is an arrow from the fill to the add.
    let flows: Vec<(&str, &str)> = t.flows().iter().map(|f| (t.ops[f.from].op, t.ops[f.to].op)).collect();
    assert!(flows.contains(&("fill", "add")), "{flows:?}");
    // Both backends time the op: the CPU worker's clock, or CUDA's timed events (the sum after it on s2 has
    // completed, so `stop` finds them complete).
    assert_eq!(add.status, Status::Completed);
    let (start, end) = (add.start.unwrap(), add.end.unwrap());
    assert!(add.enqueued <= start && start <= end, "{add:?}");
    validate_chrome_trace(&t.to_chrome_json());
    assert_eq!(t.timeline().lanes(), 2);
    Ok(())
}
test_device!(device_ops, device_ops_are_traced);

#[test]
fn the_guard_writes_its_file_on_drop() -> Result<()> {
    let _x = exclusive();
    let dir = temp_dir("guard");
    let path = dir.join("t.svg");
    {
        let _g = trace::guard().save_on_drop(&path);
        ops::ones_on::<f32>(&Stream::new(&Device::cpu())?, [2])?;
    }
    assert!(!trace::is_enabled());
    let svg = std::fs::read_to_string(&path).unwrap();
    assert_eq!(lanes_in_svg(&svg), 1);
    std::fs::remove_dir_all(Path::new(&dir)).ok();
    Ok(())
}

/// The ops traced on `stream`, sorted by start, each with its start and end (which every one must have).
fn timed_spans(t: &trace::Trace, stream: &Stream) -> Vec<(&'static str, Duration, Duration)> {
    let mut spans: Vec<_> = t
        .ops_on(stream)
        .map(|op| {
            let (start, end) = (op.start.unwrap_or_else(|| panic!("{op:?} has a start")), op.end.unwrap());
            assert_eq!(op.status, Status::Completed, "{op:?}");
            assert!(op.enqueued <= start && start <= end, "{op:?}");
            (op.op, start, end)
        })
        .collect();
    spans.sort_by_key(|s| s.1);
    spans
}

/// CUDA ops get start and end from timed events: after the enqueue, the end after the start, a kernel that
/// spins for 60 ms lasts at least that long, one stream's ops one after another; the Chrome JSON has the
/// slices with their durations; and the timed events go back to their pool.
#[test]
fn cuda_ops_are_timed_by_events() -> Result<()> {
    let Some(dev) = cuda_or_skip("cuda_ops_are_timed_by_events") else { return Ok(()) };
    let _x = exclusive();
    let s = Stream::new(&dev)?;
    trace::start();
    let x = ops::full_on(&s, [4096], 1.5f32)?;
    busy_on(&s, Duration::from_millis(60), 1)?;
    let y = ops::add_on(&s, &x, &x)?;
    busy_on(&s, Duration::from_millis(30), 1)?;
    let total = ops::sum_on(&s, &y)?;
    s.synchronize()?;
    let t = trace::stop();
    assert_eq!(total.item()?, 3.0 * 4096.0);
    let spans = timed_spans(&t, &s);
    let names: Vec<&str> = spans.iter().map(|s| s.0).collect();
    assert_eq!(names, ["fill", "busy", "add", "busy", "sum"]);
    assert!(spans.windows(2).all(|w| w[0].2 <= w[1].1), "one stream runs its ops one after another: {spans:?}");
    let busy: Vec<Duration> = spans.iter().filter(|s| s.0 == "busy").map(|s| s.2 - s.1).collect();
    assert!(busy[0] >= Duration::from_millis(55) && busy[1] >= Duration::from_millis(27), "{busy:?}");
    assert!(busy[0] > busy[1], "the longer kernel lasts longer: {busy:?}");
    // The JSON's slices carry the durations (microseconds).
    let slices = validate_chrome_trace(&t.to_chrome_json());
    let long = slices.iter().filter(|sl| sl.2 == "busy").map(|sl| sl.4).fold(0.0, f64::max);
    assert!(long >= 55_000.0, "the 60 ms kernel's slice lasts {long} us");
    let svg = t.timeline().to_string();
    assert_eq!(lanes_in_svg(&svg), 1);
    // Every pair was resolved and its events pooled: nothing pending, one reference event.
    let [idle, pending, anchors] = machine::trace_timing(&dev).unwrap();
    assert_eq!((pending, anchors), (0, 1));
    assert!(idle >= 2, "the timed events went back to the pool ({idle})");
    Ok(())
}

/// Two CUDA streams each running a long kernel overlap in the trace; each stream's own ops do not.
#[test]
fn cuda_streams_overlap_in_the_trace() -> Result<()> {
    let Some(dev) = cuda_or_skip("cuda_streams_overlap_in_the_trace") else { return Ok(()) };
    let _x = exclusive();
    let (s1, s2) = (Stream::new(&dev)?, Stream::new(&dev)?);
    let recording = trace::guard();
    for _ in 0..2 {
        busy_on(&s1, Duration::from_millis(150), 1)?;
        busy_on(&s2, Duration::from_millis(150), 1)?;
    }
    let a = ops::full_on(&s1, [1024], 2.0f32)?;
    let b = ops::mul_on(&s2, &a, &a)?; // waits for s1's work: ordered after it in the trace too
    s1.synchronize()?;
    s2.synchronize()?;
    let t = recording.finish();
    let overlap = t.overlap(&s1, &s2);
    assert!(overlap >= Duration::from_millis(100), "two 300 ms runs of kernels overlap by {overlap:?}");
    for s in [&s1, &s2] {
        let spans = timed_spans(&t, s);
        assert!(spans.windows(2).all(|w| w[0].2 <= w[1].1), "{spans:?}");
    }
    let fill = t.ops_on(&s1).find(|o| o.op == "fill").unwrap();
    let mul = t.ops_on(&s2).find(|o| o.op == "mul").unwrap();
    assert!(fill.end.unwrap() <= mul.start.unwrap(), "the hazard wait orders the mul after the fill");
    assert_eq!(b.to_vec()?, vec![4.0; 1024]);
    // The JSON shows it too: busy slices on the two stream tracks intersect in time.
    let slices = validate_chrome_trace(&t.to_chrome_json());
    let on_track = |tid: i64| slices.iter().filter(move |sl| sl.1 == tid && sl.2 == "busy");
    let (p, c) = (s1.id() as i64 + 1, s2.id() as i64 + 1);
    let crossing = on_track(p).any(|a| on_track(c).any(|b| a.3 < b.3 + b.4 && b.3 < a.3 + a.4));
    assert!(crossing, "overlapping slices on the two stream tracks");
    assert_eq!(t.timeline().lanes(), 2);
    Ok(())
}

/// Runs `f` on a thread of its own; its result if it returns within `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// `stop` never waits for work: on a stream blocked by a host function it returns at once, with the work
/// behind the block still pending (a later snapshot fills in its times once it ran); on a stream whose
/// kernel faulted (injected into the simulated driver), the failed work keeps its enqueue time only.
#[test]
fn cuda_stop_returns_with_blocked_and_faulted_streams() -> Result<()> {
    let test = "cuda_stop_returns_with_blocked_and_faulted_streams";
    let Some(dev) = cuda_or_skip(test) else { return Ok(()) };
    let _x = exclusive();
    let blocked = Stream::new(&dev)?;
    let gate = Gate::new();
    trace::start();
    let held = gate.clone();
    blocked.launch_host_func(move || held.wait());
    let x = ops::full_on(&blocked, [256], 1.0f32)?;
    let begun = Instant::now();
    let t = within(Duration::from_secs(20), trace::stop).expect("stop returns while a stream is blocked");
    let waited = begun.elapsed();
    let fill = t.ops_on(&blocked).find(|o| o.op == "fill").unwrap();
    assert!(fill.start.is_none() && fill.status == Status::Pending, "{fill:?}");
    gate.open();
    blocked.synchronize()?;
    let later = trace::snapshot();
    let fill = later.ops_on(&blocked).find(|o| o.op == "fill").unwrap();
    assert_eq!(fill.status, Status::Completed, "a later snapshot resolves what completed since");
    assert!(fill.start.unwrap() >= fill.enqueued && fill.end.unwrap() >= fill.start.unwrap());
    assert!(waited < Duration::from_secs(20));
    drop(x);

    if !machine::on_simulator() {
        report(&format!("skipped the fault half of {test}: it injects a fault into the simulated driver"));
        return Ok(());
    }
    let s = Stream::new(&dev)?;
    let x = ops::full_on(&s, [256], 1.0f32)?;
    s.synchronize()?;
    trace::start();
    let ok = ops::add_scalar_on(&s, &x, 1.0)?;
    s.synchronize()?;
    assert!(machine::sim_fault_next());
    let bad = ops::add_scalar_on(&s, &x, 2.0)?; // enqueued; faults when it runs
    let after = ops::add_scalar_on(&s, &x, 3.0); // enqueued behind the fault, or refused once it is known
    let t = within(Duration::from_secs(20), trace::stop).expect("stop returns with a faulted stream");
    assert!(s.synchronize().is_err(), "the fault poisons the stream");
    let t2 = within(Duration::from_secs(20), trace::snapshot).expect("snapshot returns with a poisoned stream");
    let adds: Vec<_> = t2.ops_on(&s).filter(|o| o.op == "add").collect();
    assert!(adds.len() >= 2, "{adds:?}");
    assert_eq!(adds[0].status, Status::Completed);
    assert!(adds[0].start.is_some() && adds[0].end.is_some());
    for op in &adds[1..] {
        assert!(op.start.is_none() && op.end.is_none(), "failed work keeps its enqueue time: {op:?}");
        assert_ne!(op.status, Status::Completed);
    }
    assert!(t.ops_on(&s).count() >= 2);
    let [_, pending, _] = machine::trace_timing(&dev).unwrap();
    assert_eq!(pending, 0, "the faulted pairs were given up, not kept");
    validate_chrome_trace(&t2.to_chrome_json());
    t2.timeline();
    s.clear_error();
    drop((ok, bad, after));
    Ok(())
}

/// Tracing off, the CUDA machine records no timed events.
#[test]
fn cuda_records_no_timed_events_while_off() -> Result<()> {
    let Some(dev) = cuda_or_skip("cuda_records_no_timed_events_while_off") else { return Ok(()) };
    let _x = exclusive();
    assert!(!trace::is_enabled());
    let s = Stream::new(&dev)?;
    let before = machine::trace_timing(&dev).unwrap();
    let x = ops::full_on(&s, [64], 1.0f32)?;
    let y = ops::add_on(&s, &x, &x)?;
    busy_on(&s, Duration::from_millis(1), 1)?;
    assert_eq!(y.to_vec()?, vec![2.0; 64]);
    assert_eq!(machine::trace_timing(&dev).unwrap(), before, "no timed events taken or queued");
    Ok(())
}
