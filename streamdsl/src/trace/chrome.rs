//! Chrome trace-event JSON (the format of `chrome://tracing`, which Perfetto imports): see
//! <https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU>.
//!
//! Layout: process 1 is the host (a track per thread that blocked), processes 2, 3, … the devices, with a
//! track per stream (the lane order of the SVG timeline). Every op is a complete event (`X`) from its start to
//! its end; an op whose times are not known (not run yet, or on CUDA a stream that faulted) sits at its enqueue
//! time with a zero duration. Each wait is a flow (`s` inside the op
//! waited for, `f` bound to the first op after the wait). Every event, metadata included, has `ph`, `ts`,
//! `pid` and `tid`.

use std::fmt::Write;
use std::time::Duration;

use super::{StreamKey, Trace};

/// A string as a JSON string literal.
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Microseconds, as the format wants them, to the nanosecond.
fn us(d: Duration) -> String {
    format!("{}.{:03}", d.as_micros(), d.as_nanos() % 1000)
}

/// Where each stream's events go: `(pid, tid)`.
pub(super) struct Tracks {
    pub devices: Vec<crate::device::Device>,
    /// `(stream, pid, tid, track name, sort index)`.
    pub streams: Vec<(StreamKey, u32, u64, String, usize)>,
}

impl Tracks {
    fn of(&self, key: StreamKey) -> (u32, u64) {
        self.streams.iter().find(|s| s.0 == key).map_or((0, 0), |s| (s.1, s.2))
    }
}

/// The tracks: a device's streams in lane order; its transient reader streams on as few "host reads" tracks as
/// keep their copies from overlapping on one track.
pub(super) fn tracks(t: &Trace) -> Tracks {
    let lanes = super::svg::lanes(t);
    let mut devices: Vec<crate::device::Device> = Vec::new();
    let mut streams = Vec::new();
    for (index, lane) in lanes.iter().enumerate() {
        let d = match devices.iter().position(|d| *d == lane.device) {
            Some(d) => d,
            None => {
                devices.push(lane.device);
                devices.len() - 1
            }
        };
        let pid = d as u32 + 2;
        if !lane.reader {
            for key in &lane.streams {
                streams.push((*key, pid, key.id + 1, lane.title.clone(), index));
            }
            continue;
        }
        // Greedy interval partitioning of the reader streams (each holds one copy).
        let mut ends: Vec<Duration> = Vec::new();
        let first_tid = 1_000_000;
        for key in &lane.streams {
            let span = t.ops_on(*key).fold(None, |acc: Option<(Duration, Duration)>, op| {
                let (s, e) = (op.start.unwrap_or(op.enqueued), op.end.unwrap_or(op.enqueued));
                Some(acc.map_or((s, e), |(a, b)| (a.min(s), b.max(e))))
            });
            let (s, e) = span.unwrap_or_default();
            let slot = ends.iter().position(|&end| end <= s).unwrap_or_else(|| {
                ends.push(Duration::ZERO);
                ends.len() - 1
            });
            ends[slot] = e;
            let name = if slot == 0 { lane.title.clone() } else { format!("{} ({})", lane.title, slot + 1) };
            streams.push((*key, pid, first_tid + slot as u64, name, index));
        }
    }
    Tracks { devices, streams }
}

pub(super) fn render(t: &Trace) -> String {
    let tracks = tracks(t);
    let mut ev: Vec<String> = Vec::new();
    let meta = |ev: &mut Vec<String>, name: &str, pid: u32, tid: u64, args: String| {
        ev.push(format!(r#"{{"ph":"M","name":"{name}","ts":0,"pid":{pid},"tid":{tid},"args":{args}}}"#));
    };
    meta(&mut ev, "process_name", 1, 0, r#"{"name":"host"}"#.into());
    meta(&mut ev, "process_sort_index", 1, 0, r#"{"sort_index":0}"#.into());
    for (i, d) in tracks.devices.iter().enumerate() {
        let pid = i as u32 + 2;
        meta(&mut ev, "process_name", pid, 0, format!(r#"{{"name":{}}}"#, quote(&format!("streamdsl {d}"))));
        meta(&mut ev, "process_sort_index", pid, 0, format!(r#"{{"sort_index":{pid}}}"#));
    }
    let mut named = std::collections::HashSet::new();
    for (_, pid, tid, name, sort) in &tracks.streams {
        if named.insert((*pid, *tid)) {
            meta(&mut ev, "thread_name", *pid, *tid, format!(r#"{{"name":{}}}"#, quote(name)));
            meta(&mut ev, "thread_sort_index", *pid, *tid, format!(r#"{{"sort_index":{sort}}}"#));
        }
    }
    let mut threads: Vec<u64> = t.host_calls.iter().map(|h| h.thread).collect();
    threads.sort_unstable();
    threads.dedup();
    for th in threads {
        meta(&mut ev, "thread_name", 1, th, format!(r#"{{"name":"host thread {th}"}}"#));
    }

    // Where each op is drawn: (pid, tid, ts, dur).
    let placed: Vec<(u32, u64, Duration, Duration)> = t
        .ops
        .iter()
        .map(|op| {
            let (pid, tid) = tracks.of(op.stream);
            let start = op.start.unwrap_or(op.enqueued);
            (pid, tid, start, op.end.map_or(Duration::ZERO, |e| e.saturating_sub(start)))
        })
        .collect();
    let stream_names: std::collections::HashMap<StreamKey, (&str, Option<i32>)> =
        t.streams.iter().map(|s| (s.key, (s.name.as_str(), s.priority))).collect();
    for (op, &(pid, tid, ts, dur)) in t.ops.iter().zip(&placed) {
        let (name, priority) = stream_names.get(&op.stream).copied().unwrap_or(("?", None));
        let mut args = format!(
            r#""stream":{},"stream_id":{},"seq":{},"enqueued_us":{},"status":"{:?}","timed":{}"#,
            quote(name),
            op.stream.id,
            op.seq,
            us(op.enqueued),
            op.status,
            op.start.is_some()
        );
        if let Some(p) = priority {
            let _ = write!(args, r#","priority":{p}"#);
        }
        if let Some(start) = op.start {
            let _ = write!(args, r#","queued_us":{}"#, us(start.saturating_sub(op.enqueued)));
        }
        if !op.inputs.is_empty() {
            let inputs: Vec<String> = op.inputs.iter().map(|i| quote(&i.to_string())).collect();
            let _ = write!(args, r#","inputs":[{}]"#, inputs.join(","));
        }
        if let Some(out) = &op.output {
            let _ = write!(args, r#","output":{}"#, quote(&out.to_string()));
        }
        if let Some(bytes) = op.bytes {
            let _ = write!(args, r#","bytes":{bytes}"#);
        }
        ev.push(format!(
            r#"{{"ph":"X","name":{},"cat":"{}","ts":{},"dur":{},"pid":{pid},"tid":{tid},"args":{{{args}}}}}"#,
            quote(op.op),
            op.kind.label(),
            us(ts),
            us(dur)
        ));
    }
    for (i, f) in t.flows().iter().enumerate() {
        let (name, cat) = if f.hazard { ("hazard wait", "hazard") } else { ("wait_event", "wait") };
        let mid = |(pid, tid, ts, dur): (u32, u64, Duration, Duration)| (pid, tid, ts + dur / 2);
        let (pid, tid, ts) = mid(placed[f.from]);
        ev.push(format!(
            r#"{{"ph":"s","id":{},"name":"{name}","cat":"{cat}","ts":{},"pid":{pid},"tid":{tid}}}"#,
            i + 1,
            us(ts)
        ));
        let (pid, tid, ts) = mid(placed[f.to]);
        ev.push(format!(
            r#"{{"ph":"f","bp":"e","id":{},"name":"{name}","cat":"{cat}","ts":{},"pid":{pid},"tid":{tid}}}"#,
            i + 1,
            us(ts)
        ));
    }
    for e in &t.events {
        let (pid, tid) = tracks.of(e.stream);
        let ts = e.completed.unwrap_or(e.enqueued);
        ev.push(format!(
            r#"{{"ph":"i","s":"t","name":"record event","cat":"event","ts":{},"pid":{pid},"tid":{tid},"args":{{"seq":{},"timed":{},"completed":{}}}}}"#,
            us(ts),
            e.seq,
            e.timed,
            e.completed.is_some()
        ));
    }
    for h in &t.host_calls {
        let mut args = format!(r#""device":"{}""#, h.device);
        if let Some(s) = h.stream {
            let _ = write!(args, r#","stream_id":{s}"#);
        }
        ev.push(format!(
            r#"{{"ph":"X","name":{},"cat":"host","ts":{},"dur":{},"pid":1,"tid":{},"args":{{{args}}}}}"#,
            quote(h.call),
            us(h.start),
            us(h.end.saturating_sub(h.start)),
            h.thread
        ));
    }
    format!(
        "{{\"traceEvents\":[\n{}\n],\"displayTimeUnit\":\"ms\",\"otherData\":{{\"generator\":\"streamdsl\",\"dropped_records\":{},\"capacity\":{}}}}}\n",
        ev.join(",\n"),
        t.dropped,
        t.capacity
    )
}
