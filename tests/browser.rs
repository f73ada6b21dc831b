//! The trace exports in a real browser: the `multistream` example's SVG timeline and Chrome trace JSON,
//! loaded through `tests/browser/index.html` in headless Chromium. The page must report no errors, two stream
//! lanes whose boxes overlap in time (read from the SVG and from the JSON), and a screenshot is taken
//! (`STREAMDSL_UPDATE_DOCS=1` copies it to `docs/timeline.png`, the README's picture).
//!
//! Skipped with a message where no Chromium is installed (`./scripts/test` installs Debian's `chromium`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use streamdsl_tests::report;

fn chromium() -> Option<PathBuf> {
    let names = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
    let from_env = std::env::var_os("STREAMDSL_CHROMIUM").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(names.iter().map(PathBuf::from))
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

/// Serves the files of `dir` on 127.0.0.1 (one thread, one request per connection) until the process ends.
fn serve(dir: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                    break;
                }
            }
            let name = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/');
            let name = if name.is_empty() { "index.html" } else { name };
            let safe = !name.contains("..") && !name.contains('/');
            let body = if safe { std::fs::read(dir.join(name)).ok() } else { None };
            let kind = match Path::new(name).extension().and_then(|e| e.to_str()) {
                Some("html") => "text/html; charset=utf-8",
                Some("svg") => "image/svg+xml",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            let mut out = &stream;
            let _ = match body {
                Some(b) => out
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())
                            .as_bytes(),
                    )
                    .and_then(|_| out.write_all(&b)),
                None => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            };
        }
    });
    port
}

/// Chromium headless with the flags this machine needs (no sandbox as root, no background network).
fn headless(chrome: &Path, profile: &Path) -> Command {
    let mut c = Command::new(chrome);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=15000",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).map_or(text.len(), |i| i + open.len());
    let rest = &text[start..];
    &rest[..rest.find(close).unwrap_or(rest.len())]
}

/// `(width, height)` of a PNG file.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn the_timeline_and_the_trace_show_two_overlapping_lanes_in_chromium() {
    let Some(chrome) = chromium() else {
        report("skipped the_timeline_and_the_trace_show_two_overlapping_lanes_in_chromium: no Chromium installed (apt-get install chromium)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("streamdsl-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(root.join("browser/index.html"), dir.join("index.html")).unwrap();

    // The example, as the README runs it, writing both files.
    let exe = std::env::current_exe().unwrap();
    let example = exe.parent().unwrap().parent().unwrap().join("examples/multistream");
    if !example.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "-q", "-p", "streamdsl-examples", "--example", "multistream"])
            .status()
            .unwrap();
        assert!(built.success());
    }
    let run = Command::new(&example)
        .env("STREAMDSL_TRACE", format!("{},{}", dir.join("trace.json").display(), dir.join("timeline.svg").display()))
        .env("STREAMDSL_DEVICE", "cpu")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let port = serve(dir.clone());
    let url = format!("http://127.0.0.1:{port}/index.html");
    let profile = dir.join("profile");
    let dom =
        headless(&chrome, &profile).args(["--enable-logging=stderr", "--v=0", "--dump-dom", &url]).output().unwrap();
    let (html, log) = (String::from_utf8_lossy(&dom.stdout), String::from_utf8_lossy(&dom.stderr));
    assert!(dom.status.success(), "chromium failed: {log}");
    assert!(html.contains("<title>done</title>"), "the page's script did not finish:\n{html}\n{log}");
    let errors = between(&html, "<pre id=\"errors\">", "</pre>");
    assert!(errors.trim().is_empty(), "the page reported errors: {errors}");
    for line in log.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(!line.contains("Uncaught") && !line.contains("Error"), "console: {line}");
    }
    let result: serde_json::Value = serde_json::from_str(between(&html, "<pre id=\"result\">", "</pre>")).unwrap();
    assert_eq!(result["lanes"], 2, "{result}");
    assert_eq!(result["jsonTracks"], 2, "{result}");
    assert!(result["svgOverlapUs"].as_f64().unwrap() > 0.0, "the SVG's two lanes overlap in time: {result}");
    assert!(result["jsonOverlapUs"].as_f64().unwrap() > 0.0, "the JSON's two tracks overlap in time: {result}");
    assert!(result["arrows"].as_u64().unwrap() >= 8 && result["jsonFlows"].as_u64().unwrap() >= 8, "{result}");

    let shot = dir.join("timeline.png");
    let status = headless(&chrome, &profile)
        .args(["--window-size=1240,480", &format!("--screenshot={}", shot.display()), &url])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(png_size(&png), (1240, 480));
    assert!(png.len() > 20_000, "a screenshot with content: {} bytes", png.len());
    if std::env::var("STREAMDSL_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::copy(&shot, root.join("../docs/timeline.png")).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
}
