//! The SVG timeline: a lane per stream, a box per op coloured by its kind, arrows for waits, a time axis and a
//! legend; below the streams, the host: a lane per device for the copies `to_vec` makes on transient streams,
//! and a lane per thread for its blocking calls.
//!
//! It stays readable with thousands of ops: neighbouring boxes of one kind that are each narrower than a
//! pixel merge into one box (its tooltip says how many ops it holds), and arrows are thin and translucent.

use std::fmt::{self, Write};
use std::path::Path;
use std::time::Duration;

use super::{OpKind, StreamKey, Trace};
use crate::device::Device;

/// Sizes of the drawing.
pub(super) struct Options {
    pub width: f64,
    pub lane_height: f64,
    pub label_width: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options { width: 1200.0, lane_height: 28.0, label_width: 200.0 }
    }
}

/// A lane of the timeline: one stream, or all of a device's transient reader streams.
pub(super) struct Lane {
    pub title: String,
    pub device: Device,
    pub streams: Vec<StreamKey>,
    pub reader: bool,
}

/// The lanes in drawing order: each device's streams by id, then its readers' lane.
pub(super) fn lanes(t: &Trace) -> Vec<Lane> {
    let mut streams: Vec<_> = t.streams.iter().collect();
    streams.sort_by_key(|s| (s.key.device.to_string(), s.reader, s.key.id));
    let mut out: Vec<Lane> = Vec::new();
    for s in streams {
        if s.reader {
            match out.iter_mut().find(|l| l.reader && l.device == s.key.device) {
                Some(lane) => lane.streams.push(s.key),
                None => out.push(Lane {
                    title: format!("{} host reads (to_vec)", s.key.device),
                    device: s.key.device,
                    streams: vec![s.key],
                    reader: true,
                }),
            }
        } else {
            let title = match s.priority {
                Some(p) => format!("{} · priority {p}", s.name),
                None => s.name.clone(),
            };
            out.push(Lane { title, device: s.key.device, streams: vec![s.key], reader: false });
        }
    }
    out
}

/// An SVG picture of a [`Trace`]: shows inline in evcxr, prints as SVG text (`Display`), saves to a file.
///
/// ```
/// use streamdsl::prelude::*;
/// let dev = Device::cpu();
/// let (s1, s2) = (Stream::new(&dev)?, Stream::with_priority(&dev, -1)?);
/// streamdsl::trace::start();
/// s1.launch_host_func(|| std::thread::sleep(std::time::Duration::from_millis(5)));
/// let a = ops::randn_on::<f32>(&s1, [128, 128])?;
/// let b = ops::mm_on(&s2, &a, &a)?;
/// s2.synchronize()?;
/// let timeline = streamdsl::trace::stop().timeline();
/// assert_eq!(timeline.lanes(), 2);
/// let svg = timeline.to_string();
/// assert!(svg.contains("priority -1") && svg.contains("matmul") && svg.contains("class=\"flow hazard\""));
/// # drop(b);
/// # Ok::<(), streamdsl::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Timeline {
    svg: String,
    lanes: usize,
    ops: usize,
}

impl Timeline {
    /// The number of stream lanes (one per stream that has records; the host's lanes are not counted).
    ///
    /// ```
    /// assert_eq!(streamdsl::trace::Trace::default().timeline().lanes(), 0);
    /// ```
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// The SVG document.
    ///
    /// ```
    /// assert!(streamdsl::trace::Trace::default().timeline().as_str().ends_with("</svg>\n"));
    /// ```
    pub fn as_str(&self) -> &str {
        &self.svg
    }

    /// Writes the SVG document to `path`.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("streamdsl-timeline-doc-{}.svg", std::process::id()));
    /// streamdsl::trace::Trace::default().timeline().save(&path)?;
    /// assert!(std::fs::read_to_string(&path)?.starts_with("<svg"));
    /// # std::fs::remove_file(&path).ok();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, &self.svg)
    }

    /// evcxr's display hook: the picture inline (`image/svg+xml`), plus a text line for frontends without SVG.
    ///
    /// ```
    /// streamdsl::trace::Trace::default().timeline().evcxr_display();
    /// ```
    pub fn evcxr_display(&self) {
        // Each part is one `EVCXR_BEGIN_CONTENT` … `EVCXR_END_CONTENT` block; evcxr reads them line by line.
        println!(
            "EVCXR_BEGIN_CONTENT text/plain\ntimeline: {} stream lanes, {} ops\nEVCXR_END_CONTENT",
            self.lanes, self.ops
        );
        println!("EVCXR_BEGIN_CONTENT image/svg+xml\n{}EVCXR_END_CONTENT", self.svg);
    }

    pub(super) fn render(t: &Trace, o: &Options) -> Timeline {
        let stream_lanes: Vec<Lane> = lanes(t);
        let (streams, readers): (Vec<&Lane>, Vec<&Lane>) = stream_lanes.iter().partition(|l| !l.reader);
        let mut threads: Vec<u64> = t.host_calls.iter().map(|h| h.thread).collect();
        threads.sort_unstable();
        threads.dedup();
        let host_rows = readers.len() + threads.len();

        let top = 58.0;
        let gap = if host_rows > 0 { 14.0 } else { 0.0 };
        let lanes_bottom = top + o.lane_height * (streams.len() + host_rows) as f64 + gap;
        let kinds: Vec<OpKind> = {
            let mut k: Vec<OpKind> = t.ops.iter().map(|op| op.kind).collect();
            k.sort();
            k.dedup();
            k
        };
        let height = lanes_bottom + 56.0;
        let plot_left = o.label_width;
        let plot_width = o.width - o.label_width - 16.0;
        let span = t.duration().max(Duration::from_micros(1));
        let x = |d: Duration| plot_left + d.as_secs_f64() / span.as_secs_f64() * plot_width;

        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12" class="streamdsl-timeline">"#,
            w = o.width,
            h = height
        );
        s.push_str(
            "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" \
             orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#333\"/></marker></defs>\n",
        );
        let _ = writeln!(s, r##"<rect x="0" y="0" width="{}" height="{height}" fill="#ffffff"/>"##, o.width);
        let mut title = format!(
            "streamdsl timeline: {} ops on {} streams, {} waits, {}",
            t.ops.len(),
            streams.len(),
            t.waits.len(),
            human(span)
        );
        if t.dropped > 0 {
            let _ = write!(title, " ({} oldest records dropped: ring of {})", t.dropped, t.capacity);
        }
        let _ = writeln!(s, r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#, esc(&title));
        if t.ops.is_empty() {
            let _ = writeln!(s, r##"<text x="10" y="44" fill="#666">no ops recorded</text>"##);
        }

        // The time axis: ticks at 1, 2 or 5 × 10^k, about ten of them.
        let step = nice_step(span.as_nanos() as f64 / 10.0);
        let _ = writeln!(s, r#"<g class="axis">"#);
        let mut tick = 0.0;
        while tick <= span.as_nanos() as f64 + 0.5 {
            let px = x(Duration::from_nanos(tick as u64));
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{lanes_bottom:.1}" stroke="#e3e3e3"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
                top - 8.0,
                top - 12.0,
                human(Duration::from_nanos(tick as u64))
            );
            tick += step;
        }
        let _ = writeln!(s, "</g>");

        // Lanes: backgrounds and labels.
        let mut lane_y = std::collections::HashMap::new();
        let mut row = 0usize;
        let mut lane_rows: Vec<(f64, String, &'static str, String)> = Vec::new();
        for lane in &streams {
            let y = top + o.lane_height * row as f64;
            for key in &lane.streams {
                lane_y.insert(*key, y);
            }
            let data = format!(r#" data-stream="{}" data-device="{}""#, esc(&lane.title), lane.device);
            lane_rows.push((y, lane.title.clone(), "lane", data));
            row += 1;
        }
        for lane in &readers {
            let y = top + gap + o.lane_height * row as f64;
            for key in &lane.streams {
                lane_y.insert(*key, y);
            }
            lane_rows.push((y, lane.title.clone(), "host-lane", String::new()));
            row += 1;
        }
        let mut thread_y = std::collections::HashMap::new();
        for th in &threads {
            let y = top + gap + o.lane_height * row as f64;
            thread_y.insert(*th, y);
            lane_rows.push((y, format!("host thread {th} (blocking calls)"), "host-lane", String::new()));
            row += 1;
        }
        for (i, (y, label, class, data)) in lane_rows.iter().enumerate() {
            let fill = if i % 2 == 0 { "#f6f6f6" } else { "#ffffff" };
            let _ = writeln!(
                s,
                r##"<g class="{class}"{data}><rect x="0" y="{y:.1}" width="{}" height="{}" fill="{fill}"/><text x="8" y="{:.1}" fill="#222">{}</text></g>"##,
                o.width,
                o.lane_height,
                y + o.lane_height / 2.0 + 4.0,
                esc(&clip(label, 30))
            );
        }
        if host_rows > 0 {
            let y = top + o.lane_height * streams.len() as f64 + gap / 2.0;
            let _ = writeln!(s, r##"<line x1="0" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#bbb"/>"##, o.width);
        }

        // Ops, lane by lane, neighbouring sub-pixel boxes of one kind merged.
        let box_h = o.lane_height - 8.0;
        let mut op_px: Vec<Option<(f64, f64, f64)>> = vec![None; t.ops.len()];
        let _ = writeln!(s, r#"<g class="ops">"#);
        let mut by_lane: std::collections::BTreeMap<u64, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, op) in t.ops.iter().enumerate() {
            if let Some(&y) = lane_y.get(&op.stream) {
                by_lane.entry((y * 10.0) as u64).or_default().push(i);
            }
        }
        for (_, mut list) in by_lane {
            list.sort_by_key(|&i| t.ops[i].start.unwrap_or(t.ops[i].enqueued));
            let mut k = 0;
            while k < list.len() {
                let first = &t.ops[list[k]];
                let y = lane_y[&first.stream] + 4.0;
                let start = first.start.unwrap_or(first.enqueued);
                let mut end = first.end.unwrap_or(start);
                let mut group = vec![list[k]];
                let narrow = |a: Duration, b: Duration| x(b) - x(a) < 1.0;
                while k + group.len() < list.len() && narrow(start, end) {
                    let next = &t.ops[list[k + group.len()]];
                    let ns = next.start.unwrap_or(next.enqueued);
                    let ne = next.end.unwrap_or(ns);
                    if next.kind != first.kind || x(ns) - x(end) > 0.5 || !narrow(ns, ne) || x(ne) - x(start) > 2.0 {
                        break;
                    }
                    end = end.max(ne);
                    group.push(list[k + group.len()]);
                }
                let (x0, x1) = (x(start), x(end));
                let w = (x1 - x0).max(1.0);
                for &i in &group {
                    op_px[i] = Some((x0, x0 + w, y + box_h / 2.0));
                }
                let tip = if group.len() == 1 {
                    describe(t, first)
                } else {
                    format!("{} × {} ({} to {})", group.len(), first.op, human(start), human(end))
                };
                let status = match first.status {
                    super::Status::Failed => r##" stroke="#000" stroke-width="1.5""##,
                    super::Status::Skipped => r#" fill-opacity="0.35""#,
                    _ => "",
                };
                let _ = writeln!(
                    s,
                    r#"<rect class="op" data-kind="{}" data-start="{:.3}" data-end="{:.3}" data-count="{}" x="{x0:.2}" y="{y:.1}" width="{w:.2}" height="{box_h:.1}" fill="{}"{status}><title>{}</title></rect>"#,
                    first.kind.label(),
                    start.as_secs_f64() * 1e6,
                    end.as_secs_f64() * 1e6,
                    group.len(),
                    first.kind.colour(),
                    esc(&tip)
                );
                if w > 40.0 && group.len() == 1 {
                    let _ = writeln!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" fill="#fff" font-size="10" pointer-events="none">{}</text>"##,
                        x0 + 3.0,
                        y + box_h / 2.0 + 3.5,
                        esc(&clip(first.op, ((w - 6.0) / 6.0) as usize))
                    );
                }
                k += group.len();
            }
        }
        let _ = writeln!(s, "</g>");

        // Event records: a small diamond where the event completed.
        let _ = writeln!(s, r#"<g class="events">"#);
        for e in &t.events {
            if let Some(&y) = lane_y.get(&e.stream) {
                let px = x(e.completed.unwrap_or(e.enqueued));
                let cy = y + o.lane_height / 2.0;
                let _ = writeln!(
                    s,
                    r##"<path class="event" d="M{px:.1},{:.1} l4,4 l-4,4 l-4,-4 z" fill="#222"><title>event recorded (seq {})</title></path>"##,
                    cy - 4.0,
                    e.seq
                );
            }
        }
        let _ = writeln!(s, "</g>");

        // Host calls that blocked.
        let _ = writeln!(s, r#"<g class="host">"#);
        for h in &t.host_calls {
            let y = thread_y[&h.thread] + 4.0;
            let (x0, x1) = (x(h.start), x(h.end));
            let _ = writeln!(
                s,
                r##"<rect class="host-call" x="{x0:.2}" y="{y:.1}" width="{:.2}" height="{box_h:.1}" fill="#c9c9c9" stroke="#888" stroke-width="0.5"><title>{} ({}) {}</title></rect>"##,
                (x1 - x0).max(1.0),
                h.call,
                h.device,
                human(h.end.saturating_sub(h.start))
            );
        }
        let _ = writeln!(s, "</g>");

        // Wait arrows: from the end of the op waited for to the start of the first op after the wait.
        let flows = t.flows();
        let opacity = if flows.len() > 200 { 0.35 } else { 0.8 };
        let _ = writeln!(s, r#"<g class="flows" fill="none" stroke-opacity="{opacity}">"#);
        for f in &flows {
            let (Some(a), Some(b)) = (op_px[f.from], op_px[f.to]) else { continue };
            let (class, style) = if f.hazard {
                ("flow hazard", r##"stroke="#c0392b""##)
            } else {
                ("flow wait", r##"stroke="#2c3e9a" stroke-dasharray="4 2""##)
            };
            let (x0, y0, x1, y1) = (a.1, a.2, b.0, b.2);
            let bend = ((x1 - x0).abs() / 2.0).max(12.0);
            let _ = writeln!(
                s,
                r#"<path class="{class}" d="M{x0:.1},{y0:.1} C{:.1},{y0:.1} {:.1},{y1:.1} {x1:.1},{y1:.1}" {style} stroke-width="1.2" marker-end="url(#arrow)"/>"#,
                x0 + bend,
                x1 - bend
            );
        }
        let _ = writeln!(s, "</g>");

        // Legend.
        let ly = lanes_bottom + 22.0;
        let _ = writeln!(s, r#"<g class="legend">"#);
        let mut lx = 10.0;
        for k in &kinds {
            let _ = writeln!(
                s,
                r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{ly:.1}" fill="#222">{}</text>"##,
                ly - 10.0,
                k.colour(),
                lx + 16.0,
                k.label()
            );
            lx += 28.0 + 7.0 * k.label().len() as f64;
        }
        let items: [(&str, &str); 2] = [
            (r##"stroke="#c0392b""##, "hazard wait (data dependency)"),
            (r##"stroke="#2c3e9a" stroke-dasharray="4 2""##, "wait_event / wait_stream"),
        ];
        for (style, label) in items {
            let _ = writeln!(
                s,
                r##"<path d="M{lx:.1},{:.1} L{:.1},{:.1}" {style} stroke-width="1.5" marker-end="url(#arrow)"/><text x="{:.1}" y="{ly:.1}" fill="#222">{label}</text>"##,
                ly - 4.0,
                lx + 22.0,
                ly - 4.0,
                lx + 28.0
            );
            lx += 40.0 + 6.5 * label.len() as f64;
        }
        let _ = writeln!(
            s,
            r##"<path d="M{:.1},{:.1} l4,4 l-4,4 l-4,-4 z" fill="#222"/><text x="{:.1}" y="{ly:.1}" fill="#222">event</text>"##,
            lx + 4.0,
            ly - 9.0,
            lx + 14.0
        );
        lx += 60.0;
        let _ = writeln!(
            s,
            r##"<rect x="{lx:.1}" y="{:.1}" width="12" height="12" fill="#c9c9c9" stroke="#888"/><text x="{:.1}" y="{ly:.1}" fill="#222">blocking host call</text>"##,
            ly - 10.0,
            lx + 16.0
        );
        let _ = writeln!(s, "</g>");
        s.push_str("</svg>\n");
        Timeline { svg: s, lanes: streams.len(), ops: t.ops.len() }
    }
}

impl fmt::Display for Timeline {
    /// The SVG document.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.svg)
    }
}

/// The tooltip of one op.
fn describe(t: &Trace, op: &super::OpRecord) -> String {
    let mut s = format!("{} on {}", op.op, t.streams.iter().find(|i| i.key == op.stream).map_or("?", |i| &i.name));
    if !op.inputs.is_empty() {
        let ins: Vec<String> = op.inputs.iter().map(ToString::to_string).collect();
        let _ = write!(s, "({})", ins.join(", "));
    }
    if let Some(out) = &op.output {
        let _ = write!(s, " → {out}");
    }
    if let (Some(a), Some(b)) = (op.start, op.end) {
        let _ = write!(s, ", {} (queued {})", human(b.saturating_sub(a)), human(a.saturating_sub(op.enqueued)));
    }
    if let Some(bytes) = op.bytes {
        let _ = write!(s, ", {bytes} bytes");
    }
    if op.status != super::Status::Completed {
        let _ = write!(s, ", {:?}", op.status);
    }
    s
}

/// 1, 2 or 5 × 10^k, the smallest at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|&v| v >= raw).unwrap_or(10.0 * mag)
}

/// A duration for people: `850 ns`, `12.5 µs`, `3.20 ms`, `1.50 s`.
fn human(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = match ns {
        n if n < 1e3 => return format!("{n:.0} ns"),
        n if n < 1e6 => (n / 1e3, "µs"),
        n if n < 1e9 => (n / 1e6, "ms"),
        n => (n / 1e9, "s"),
    };
    let digits = format!("{value:.3}");
    format!("{} {unit}", digits.trim_end_matches('0').trim_end_matches('.'))
}

/// At most `n` characters, with an ellipsis.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n.saturating_sub(1)).chain(std::iter::once('…')).collect()
    }
}

/// Text escaped for SVG (XML).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_durations_read_well() {
        assert_eq!(nice_step(3.0e6), 5.0e6);
        assert_eq!(nice_step(1.0e3), 1.0e3);
        assert_eq!(nice_step(1.1e3), 2.0e3);
        assert_eq!(human(Duration::from_micros(1500)), "1.5 ms");
        assert_eq!(human(Duration::from_nanos(800)), "800 ns");
        assert_eq!(human(Duration::from_micros(20)), "20 µs");
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
