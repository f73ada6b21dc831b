#!/usr/bin/env python3
"""The orchestrator of ./scripts/bench: starts one persistent runner per tool, asks each for every case in
rotating order, round after round, and prints one side-by-side table (also written as JSON, Markdown and an
SVG chart). Run it through ./scripts/bench, which builds the runners and sets up the peers; `--help` lists
the options.

Protocol: bench/harness/src/lib.rs. Runners: bench/streamdsl-runner (streamdsl through its public API, plus
the machine probes), bench/candle (candle-core), bench/py_runner.py (numpy, torch).
"""

import argparse
import datetime
import json
import math
import os
import platform
import select
import shlex
import statistics
import subprocess
import sys
import time

PEERS = ("numpy", "torch", "candle")
M = 1_000_000

# Units: the direction says which way is better.
UNITS = {
    "GFLOP/s": "higher",
    "GB/s": "higher",
    "M/s": "higher",
    "µs": "lower",
}

SIZES = {"f32": 4, "f64": 8, "f16": 2, "bf16": 2}


class Row:
    """One line of the table: a case (the spec sent to every runner) and how to turn seconds into its unit."""

    def __init__(self, label, shape, dtype, spec, unit, work=None, device="cpu", quick=True, kind=None,
                 skip=None):
        self.label, self.shape, self.dtype, self.unit, self.device = label, shape, dtype, unit, device
        self.spec = dict(spec, dtype=spec.get("dtype", dtype.split("→")[0]), device=device)
        self.work = work  # flops, bytes or elements per op (None for µs rows)
        self.quick = quick
        self.kind = kind  # "mm", "memory", or None: what the % column compares with
        self.skip = skip or {}  # tool -> why it is not asked (unless --slow)

    @property
    def key(self):
        return "{} | {} | {} | {}".format(self.label, self.shape, self.dtype, self.device)

    def value(self, seconds):
        if self.unit == "µs":
            return seconds * 1e6
        scale = {"GFLOP/s": 1e9, "GB/s": 1e9, "M/s": 1e6}[self.unit]
        return self.work / seconds / scale


def mm_row(n, dtype, device="cpu", batch=0, quick=True, skip=None):
    label = "bmm" if batch else "mm"
    shape = "{}×{}³".format(batch, n) if batch else "{}³".format(n)
    flops = 2.0 * max(batch, 1) * n ** 3
    return Row(label, shape, dtype, {"op": "mm", "batch": batch, "m": n, "k": n, "n": n}, "GFLOP/s", flops,
               device, quick, kind="mm", skip=skip)


def cpu_rows():
    n10 = 10 * M
    numpy_f16 = {"numpy": "numpy's float16 matmul has no BLAS path (~0.1 GFLOP/s: ~20 s per 1024³ product "
                          "on a 2-core machine); asked only with --slow"}
    rows = [
        mm_row(256, "f32"),
        mm_row(512, "f32"),
        mm_row(1024, "f32"),
        mm_row(2048, "f32"),
        mm_row(1024, "f64"),
        mm_row(1024, "f16", skip=numpy_f16),
        mm_row(1024, "bf16"),
        mm_row(256, "f32", batch=32),
        Row("randn", "10 M", "f32", {"op": "randn", "len": n10}, "M/s", n10),
        Row("randn", "10 M", "f64", {"op": "randn", "len": n10}, "M/s", n10),
        Row("add", "10 M + 10 M", "f32", {"op": "add", "len": n10}, "GB/s", 3 * 4 * n10, kind="memory"),
        Row("add, broadcast", "[4096,4096] + [4096]", "f32", {"op": "add_bcast", "rows": 4096, "cols": 4096},
            "GB/s", 4 * (2 * 4096 * 4096 + 4096), kind="memory"),
        Row("mul by scalar", "10 M", "f32", {"op": "mul_scalar", "len": n10, "scalar": 2.0}, "GB/s", 2 * 4 * n10,
            kind="memory"),
        Row("sum", "10 M", "f32", {"op": "sum", "len": n10}, "GB/s", 4 * n10, kind="memory"),
        Row("mean", "10 M", "f32", {"op": "mean", "len": n10}, "GB/s", 4 * n10, kind="memory"),
        Row("to_dtype", "10 M", "f32→bf16", {"op": "to_dtype", "len": n10, "dtype": "f32", "to": "bf16"}, "GB/s",
            (4 + 2) * n10, kind="memory"),
    ]
    return rows + tiny_rows("cpu")


def tiny_rows(device):
    return [
        Row("tiny add, per op end to end", "4 (x = x + b)", "f32", {"op": "tiny_add", "len": 4}, "µs",
            device=device),
        Row("tiny add, enqueue only", "4", "f32", {"op": "tiny_enqueue", "len": 4}, "µs", device=device),
        Row("tiny adds, 1 stream", "4, independent", "f32", {"op": "tiny_streams", "len": 4, "streams": 1}, "µs",
            device=device),
        Row("tiny adds, 8 streams", "4, independent", "f32", {"op": "tiny_streams", "len": 4, "streams": 8}, "µs",
            device=device),
    ]


def cuda_rows():
    n = 64 * M
    return [
        mm_row(1024, "f32", "cuda"),
        mm_row(4096, "f32", "cuda"),
        mm_row(2048, "f64", "cuda"),
        mm_row(4096, "f16", "cuda"),
        mm_row(4096, "bf16", "cuda"),
        mm_row(256, "f32", "cuda", batch=32),
        Row("randn", "64 M", "f32", {"op": "randn", "len": n}, "M/s", n, "cuda"),
        Row("add", "64 M + 64 M", "f32", {"op": "add", "len": n}, "GB/s", 3 * 4 * n, "cuda"),
        Row("sum", "64 M", "f32", {"op": "sum", "len": n}, "GB/s", 4 * n, "cuda"),
        Row("to_dtype", "64 M", "f32→bf16", {"op": "to_dtype", "len": n, "dtype": "f32", "to": "bf16"}, "GB/s",
            6 * n, "cuda"),
    ] + tiny_rows("cuda")


def smoke_rows(device="cpu"):
    """Tiny shapes, odd sizes: every case once, results compared across runners."""
    mm = {"op": "mm", "batch": 0, "m": 17, "k": 33, "n": 9}
    rows = [Row("mm", "17×33 · 33×9", dt, mm, "GFLOP/s", 1, device, kind="mm") for dt in ("f32", "f64", "f16", "bf16")]
    rows += [
        mm_row(8, "f32", device, batch=3),
        Row("randn", "4096", "f32", {"op": "randn", "len": 4096}, "M/s", 4096, device),
        Row("randn", "4096", "f64", {"op": "randn", "len": 4096}, "M/s", 4096, device),
        Row("add", "1000", "f32", {"op": "add", "len": 1000}, "GB/s", 12000, device),
        Row("add, broadcast", "[33,17] + [17]", "f32", {"op": "add_bcast", "rows": 33, "cols": 17}, "GB/s", 1, device),
        Row("mul by scalar", "1000", "f32", {"op": "mul_scalar", "len": 1000, "scalar": 2.0}, "GB/s", 8000, device),
        Row("sum", "1000", "f32", {"op": "sum", "len": 1000}, "GB/s", 4000, device),
        Row("mean", "1000", "f64", {"op": "mean", "len": 1000}, "GB/s", 8000, device),
        Row("to_dtype", "1000", "f32→bf16", {"op": "to_dtype", "len": 1000, "dtype": "f32", "to": "bf16"}, "GB/s",
            6000, device),
    ]
    return rows + tiny_rows(device)


class Runner:
    """One persistent runner process; `ask` sends a request and waits for its answer line."""

    def __init__(self, name, command, log_dir, env=None):
        self.name, self.command = name, command
        self.log = open(os.path.join(log_dir, "runner-{}.log".format(safe(name))), "w")
        try:
            self.proc = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.log, text=True, bufsize=1, env=env)
        except OSError as e:
            raise SystemExit("bench: cannot start the {} runner ({}): {}".format(name, command, e))
        self.dead = None

    def ask(self, request, timeout):
        if self.dead:
            return {"ok": False, "error": self.dead}
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                self.kill("no answer within {:.0f} s (the runner was stopped)".format(timeout))
                return {"ok": False, "error": self.dead}
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as e:
            line, err = "", e
        else:
            err = None
        if not line:
            code = self.proc.poll()
            self.dead = "the runner ended (exit status {}; {}); see {}".format(code, err or "no answer",
                                                                              self.log.name)
            return {"ok": False, "error": self.dead}
        try:
            return json.loads(line)
        except ValueError:
            return {"ok": False, "error": "not JSON from the runner: {}".format(line.strip()[:200])}

    def kill(self, why):
        self.dead = why
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd":"quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.kill("stopped")
        self.log.close()


def safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def machine_info():
    model = platform.processor() or platform.machine()
    flags, ident = [], {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                for field in ("cpu family", "model", "stepping"):
                    if line.split(":")[0].strip() == field and field not in ident:
                        ident[field] = line.split(":", 1)[1].strip()
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    if ident:
        model += " (" + ", ".join("{} {}".format(k, v) for k, v in ident.items()) + ")"
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "simd": [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512fp16", "amx_tile")
                 if f in flags],
        "os": "{} {}".format(platform.system(), platform.release()),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def fmt(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    a = abs(v)
    if a >= 100:
        return "{:.0f}".format(v)
    if a >= 10:
        return "{:.1f}".format(v)
    if a >= 1:
        return "{:.2f}".format(v)
    return "{:.3g}".format(v)


class Cell:
    def __init__(self):
        self.values = []  # in the row's unit
        self.seconds = []  # per op
        self.reps = []
        self.note = None  # "unsupported: …", "skipped: …" or "error: …"

    def summary(self):
        if not self.values:
            return None
        return {"median": statistics.median(self.values), "min": min(self.values), "max": max(self.values),
                "samples": len(self.values)}

    def text(self):
        s = self.summary()
        if s is None:
            return "n/a" if self.note else "—"
        if s["samples"] == 1:
            return fmt(s["median"])
        return "{} ({}–{})".format(fmt(s["median"]), fmt(s["min"]), fmt(s["max"]))


def ratio_to_best_peer(row, cells):
    """(ratio, peer): streamdsl's speed over the best peer's (> 1 means streamdsl is faster), medians."""
    mine = cells.get("streamdsl")
    if not mine or not mine.values:
        return None, None
    best = None
    for peer in PEERS:
        c = cells.get(peer)
        if c and c.values:
            v = statistics.median(c.values)
            if best is None or (v > best[0] if UNITS[row.unit] == "higher" else v < best[0]):
                best = (v, peer)
    if best is None:
        return None, None
    m = statistics.median(mine.values)
    return (m / best[0] if UNITS[row.unit] == "higher" else best[0] / m), best[1]


def share_of_machine(row, cells, probes):
    mine = cells.get("streamdsl")
    if not mine or not mine.values or row.device != "cpu":
        return None
    m = statistics.median(mine.values)
    if row.kind == "mm" and probes.get("fma"):
        peak = probes["fma"]["gflops"] / (2 if row.dtype == "f64" else 1)
        return "{:.0f}% of FMA peak".format(100 * m / peak) if peak else None
    if row.kind == "memory" and probes.get("bandwidth"):
        bw = max(probes["bandwidth"]["copy_gbs"], probes["bandwidth"]["triad_gbs"])
        return "{:.0f}% of bandwidth".format(100 * m / bw) if bw else None
    return None


def probe(runner, probes):
    """The FMA peak and the bandwidth, keeping the best of this and any earlier measurement."""
    for name, request in (("fma", {"cmd": "probe_fma", "seconds": 0.2}), ("bandwidth", {"cmd": "probe_bandwidth"})):
        reply = runner.ask(request, 300)
        if reply.get("ok"):
            old = probes.get(name)
            if old is None:
                probes[name] = reply
            else:
                for k, v in reply.items():
                    if isinstance(v, float) and v > old.get(k, 0):
                        old[k] = v
                        if k == "gflops":
                            old["isa"] = reply.get("isa")


def run_rounds(rows, runners, args, log):
    cells = {row.key: {r.name: Cell() for r in runners} for row in rows}
    timeout = args.timeout
    start = time.time()
    for rnd in range(args.rounds):
        t0 = time.time()
        for i, row in enumerate(rows):
            shift = (rnd + i) % len(runners)
            for runner in runners[shift:] + runners[:shift]:
                cell = cells[row.key][runner.name]
                if cell.note:
                    continue
                if runner.name in row.skip and not args.slow:
                    cell.note = "skipped: " + row.skip[runner.name]
                    continue
                if cell.seconds and len(cell.seconds) >= 3 and statistics.median(cell.seconds) > args.slow_op:
                    continue  # one op takes seconds: three samples are enough
                # Let the previous tool's threads go to sleep first: OpenBLAS's and OpenMP's workers spin for a
                # while after a parallel region and would steal the cores of the next tool's sample.
                time.sleep(args.gap)
                reply = runner.ask({"cmd": "run", "case": row.spec, "min_time": args.min_time}, timeout)
                if reply.get("ok"):
                    cell.seconds.append(reply["seconds"])
                    cell.values.append(row.value(reply["seconds"]))
                    cell.reps.append(reply["reps"])
                elif "unsupported" in reply:
                    cell.note = "unsupported: " + reply["unsupported"]
                else:
                    cell.note = "error: " + str(reply.get("error"))
                    log("  {} / {}: {}".format(row.key, runner.name, cell.note))
        log("round {}/{} done in {:.0f} s ({:.0f} s so far)".format(rnd + 1, args.rounds, time.time() - t0,
                                                                      time.time() - start))
    return cells


def table(rows, runners, cells, probes):
    names = [r.name for r in runners]
    extras = [n for n in names if n != "streamdsl" and n not in PEERS]
    cols = ["streamdsl"] + [p for p in PEERS] + extras
    header = ["op", "shape", "dtype", "device", "unit"] + cols + ["ratio to best peer", "streamdsl vs machine"]
    lines = []
    for row in rows:
        c = cells[row.key]
        ratio, peer = ratio_to_best_peer(row, c)
        lines.append([row.label, row.shape, row.dtype, row.device, row.unit]
                     + [c[n].text() if n in c else "not run" for n in cols]
                     + ["{:.2f} ({})".format(ratio, peer) if ratio else "—", share_of_machine(row, c, probes) or ""])
    return header, lines


def print_table(header, lines, out):
    widths = [max(len(header[i]), *(len(l[i]) for l in lines)) for i in range(len(header))]
    fmt_line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out.write(fmt_line(header) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for l in lines:
        out.write(fmt_line(l) + "\n")


def markdown(header, lines):
    md = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    md += ["| " + " | ".join(l) + " |" for l in lines]
    return "\n".join(md)


def notes(rows, cells, rounds):
    out = []
    for row in rows:
        for name, cell in cells[row.key].items():
            if cell.note and not cell.note.startswith("unsupported"):
                out.append("{} ({} {}) — {}: {}".format(row.label, row.shape, row.dtype, name, cell.note))
            elif cell.seconds and len(cell.seconds) < rounds:
                out.append("{} ({} {}) — {}: one op takes {:.1f} s; sampled in {} rounds only".format(
                    row.label, row.shape, row.dtype, name, statistics.median(cell.seconds), len(cell.seconds)))
    for dev in ("cpu", "cuda"):
        one = next((r for r in rows if r.device == dev and r.spec["op"] == "tiny_streams"
                    and r.spec["streams"] == 1), None)
        eight = next((r for r in rows if r.device == dev and r.spec["op"] == "tiny_streams"
                      and r.spec["streams"] == 8), None)
        if one and eight:
            for name in cells[one.key]:
                a, b = cells[one.key][name], cells[eight.key][name]
                if a.values and b.values:
                    out.append("{} on {}: 8 streams give {:.2f}× the tiny-op throughput of 1 stream".format(
                        name, dev, statistics.median(a.values) / statistics.median(b.values)))
    return out


def svg_chart(rows, cells, title):
    """Horizontal bars of the ratio to the best peer (log scale, 1.0 marked), one per row that has one."""
    items = []
    for row in rows:
        ratio, peer = ratio_to_best_peer(row, cells[row.key])
        if ratio:
            items.append(("{} {} {}{}".format(row.label, row.shape, row.dtype,
                                               "" if row.device == "cpu" else " (" + row.device + ")"), ratio, peer))
    lo, hi = 1 / 16, 16
    left, width, bar, gap, top = 330, 420, 16, 6, 46
    height = top + len(items) * (bar + gap) + 40
    x = lambda r: left + width * (math.log2(min(max(r, lo), hi)) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" '
         'font-size="12">'.format(left + width + 120, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="20" font-size="14" font-weight="bold">{}</text>'.format(esc(title)),
         '<text x="10" y="36" fill="#555">streamdsl speed / best peer speed (median); right of 1.0: streamdsl '
         'faster; log scale</text>']
    for t in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8, 16):
        s.append('<line x1="{0:.1f}" y1="{1}" x2="{0:.1f}" y2="{2}" stroke="{3}" stroke-width="{4}"/>'.format(
            x(t), top - 4, height - 30, "#000" if t == 1 else "#ddd", 2 if t == 1 else 1))
        s.append('<text x="{:.1f}" y="{}" text-anchor="middle" fill="#555">{}</text>'.format(
            x(t), height - 14, fmt(t) if t >= 1 else "1/{}".format(int(round(1 / t)))))
    for i, (label, ratio, peer) in enumerate(items):
        y = top + i * (bar + gap)
        x0, x1 = sorted((x(1), x(ratio)))
        color = "#2e8b57" if ratio >= 1 else ("#d98c1f" if ratio >= 0.8 else "#c0392b")
        s.append('<text x="{}" y="{}" text-anchor="end">{}</text>'.format(left - 8, y + bar - 4, esc(label)))
        s.append('<rect x="{:.1f}" y="{}" width="{:.1f}" height="{}" fill="{}"/>'.format(
            x0, y, max(x1 - x0, 1), bar, color))
        s.append('<text x="{:.1f}" y="{}" fill="#333">{:.2f} vs {}</text>'.format(
            max(x(ratio), x(1)) + 6, y + bar - 4, ratio, esc(peer)))
    s.append("</svg>")
    return "\n".join(s) + "\n"


def smoke(rows, runners, args, log):
    """Each case once per runner (check + a 2-repetition timing); results must agree with streamdsl's."""
    tol = {"f64": 1e-9, "f32": 1e-4, "f16": 2e-2, "bf16": 2e-2}
    passed = failed = 0
    for row in rows:
        ref = None
        for runner in runners:
            check = runner.ask({"cmd": "check", "case": row.spec, "reps": 3}, args.timeout)
            timing = runner.ask({"cmd": "run", "case": row.spec, "reps": 2, "min_time": 0}, args.timeout)
            what = "{:<44} {:<10}".format(row.key, runner.name)
            if "unsupported" in timing:
                log("skip  {} ({})".format(what, timing["unsupported"][:70]))
                continue
            problems = []
            if not timing.get("ok"):
                problems.append("timing: {}".format(timing.get("error")))
            if check.get("ok"):
                if row.spec["op"] == "randn":
                    n = check["numel"]
                    mean, var = check["sum"] / n, check["sumsq"] / n
                    if n != row.work or abs(mean) > 0.1 or abs(var - 1) > 0.15:
                        problems.append("randn: {} numbers, mean {:.3f}, variance {:.3f}".format(n, mean, var))
                elif ref is None:
                    ref = check
                else:
                    t = tol[row.dtype.split("→")[-1]]
                    for k in ("sum", "sumsq"):
                        scale = max(ref["abs"] if k == "sum" else ref["sumsq"], 1e-30)
                        if check["numel"] != ref["numel"] or abs(check[k] - ref[k]) > t * scale:
                            problems.append("{} {} vs the first runner's {} (numel {} vs {})".format(
                                k, check[k], ref[k], check["numel"], ref["numel"]))
            elif "timed only" not in str(check.get("error", "")) and "unsupported" not in check:
                problems.append("check: {}".format(check.get("error")))
            if problems:
                failed += 1
                log("FAIL  {} {}".format(what, "; ".join(problems)))
            else:
                passed += 1
                log("ok    {}".format(what))
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runner", action="append", default=[], metavar="NAME=COMMAND",
                    help="a runner to start (streamdsl is required; numpy, torch, candle are the peers; any other "
                         "name is an extra column, e.g. another streamdsl build)")
    ap.add_argument("--quick", action="store_true", help="5 rounds of 0.1 s samples, fewer rows (see --list)")
    ap.add_argument("--smoke", action="store_true", help="each op once on tiny shapes; check the runners agree")
    ap.add_argument("--rounds", type=int, help="rounds (default 7, --quick 5)")
    ap.add_argument("--min-time", type=float, help="seconds per sample (default 0.25, --quick 0.1)")
    ap.add_argument("--gap", type=float,
                    help="idle seconds before each sample, so the previous tool's spinning threads go to sleep "
                         "(default 0.2, --quick 0.1)")
    ap.add_argument("--slow-op", type=float, default=1.0,
                    help="a cell whose op takes longer than this (seconds) is sampled in 3 rounds only")
    ap.add_argument("--only", help="only rows whose 'op | shape | dtype | device' contains this text")
    ap.add_argument("--slow", action="store_true", help="also ask cells skipped as too slow (numpy f16 mm)")
    ap.add_argument("--no-cuda", action="store_true", help="no CUDA rows even where a GPU is present")
    ap.add_argument("--label", default="", help="a note on the machine, printed with the results")
    ap.add_argument("--out", default="target/bench", help="where bench.json, bench.md and bench.svg go")
    ap.add_argument("--timeout", type=float, default=600, help="seconds a runner may take to answer")
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    args = ap.parse_args()
    args.rounds = args.rounds or (5 if args.quick else 7)
    if args.min_time is None:
        args.min_time = 0.1 if args.quick else 0.25
    if args.gap is None:
        args.gap = 0.1 if args.quick else 0.2
    if args.rounds < 1 or args.min_time < 0:
        ap.error("--rounds must be ≥ 1 and --min-time ≥ 0")

    rows = smoke_rows() if args.smoke else [r for r in cpu_rows() if r.quick or not args.quick]
    if args.only:
        rows = [r for r in rows if args.only in r.key]
    if args.list:
        for r in rows + ([] if args.smoke else cuda_rows()):
            print("{}  [{}]{}".format(r.key, r.unit, "" if r.quick else "  (not in --quick)"))
        return 0

    specs = []
    for item in args.runner:
        name, sep, command = item.partition("=")
        if not sep or not name or not command:
            ap.error("--runner takes NAME=COMMAND, got {!r}".format(item))
        specs.append((name, command))
    if "streamdsl" not in [n for n, _ in specs]:
        ap.error("a runner named streamdsl is required")
    os.makedirs(args.out, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)

    machine = machine_info()
    # OpenBLAS honours these on some processors (set here for old OpenBLAS builds); they slow a current numpy.
    py_env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    runners = [Runner(n, c, args.out, env=py_env) for n, c in specs]
    # streamdsl first, then the peers in the table's order, then the extras.
    order = {"streamdsl": 0, "numpy": 1, "torch": 2, "candle": 3}
    runners.sort(key=lambda r: order.get(r.name, 4))
    try:
        infos = {}
        for r in runners:
            reply = r.ask({"cmd": "info"}, 120)
            infos[r.name] = reply.get("info") if reply.get("ok") else {"error": reply.get("error")}
            if not reply.get("ok"):
                log("bench: the {} runner does not answer: {}".format(r.name, reply.get("error")))
        runners = [r for r in runners if not r.dead]
        if "streamdsl" not in [r.name for r in runners]:
            log("bench: the streamdsl runner is required and did not start; see {}".format(args.out))
            return 2
        main_runner = runners[0]

        if args.smoke:
            probe_ok = all(main_runner.ask(req, 120).get("ok") for req in (
                {"cmd": "probe_fma", "seconds": 0.005}, {"cmd": "probe_bandwidth", "len": 1 << 16}))
            cuda = infos.get("streamdsl", {}).get("cuda", {})
            if cuda.get("available") and not args.no_cuda:
                rows += [r for r in smoke_rows("cuda") if not args.only or args.only in r.key]
            t0 = time.time()
            passed, failed = smoke(rows, runners, args, log)
            if not probe_ok:
                failed += 1
                log("FAIL  the machine probes did not answer")
            else:
                passed += 1
            log("smoke of {} ({:.1f} s): {} passed, {} failed".format(
                ", ".join(r.name for r in runners), time.time() - t0, passed, failed))
            return 1 if failed else 0

        cuda = infos.get("streamdsl", {}).get("cuda", {})
        if cuda.get("available") and not args.no_cuda:
            extra = cuda_rows()
            rows += [r for r in extra if not args.only or args.only in r.key]
            log("bench: CUDA device found ({}); CUDA rows added".format(cuda.get("device")))
        else:
            log("bench: no CUDA rows: {}".format(cuda.get("why", "--no-cuda") if not cuda.get("available")
                                                 else "--no-cuda"))

        log("bench: measuring the machine (f32 FMA peak of all cores, memory bandwidth)")
        probes = {}
        probe(main_runner, probes)
        log("bench: {} rows × {} runners ({}), {} rounds of {:.2f} s samples".format(
            len(rows), len(runners), ", ".join(r.name for r in runners), args.rounds, args.min_time))
        t0 = time.time()
        cells = run_rounds(rows, runners, args, log)
        elapsed = time.time() - t0
        probe(main_runner, probes)  # again at the end: the better of the two counts (a busy machine has lulls)
        machine["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    finally:
        for r in runners:
            r.close()

    header, lines = table(rows, runners, cells, probes)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    peak = probes.get("fma", {})
    bw = probes.get("bandwidth", {})
    head = [
        "Machine: {} — {} cores, {} GiB{}; SIMD: {}".format(
            machine["cpu_model"], machine["cores"], machine["memory_gib"],
            " — " + args.label if args.label else "", ", ".join(machine["simd"]) or "?"),
        "Measured f32 FMA peak (all cores): {} GFLOP/s ({}); memory bandwidth: copy {} GB/s, triad {} GB/s".format(
            fmt(peak.get("gflops")), peak.get("isa", "?"), fmt(bw.get("copy_gbs")), fmt(bw.get("triad_gbs"))),
        "Load average at start / end: {} / {}".format(
            " ".join("{:.2f}".format(x) for x in machine["load_average_start"] or []),
            " ".join("{:.2f}".format(x) for x in machine["load_average_end"] or [])),
        "Run: {}, {} rounds of ≥ {:.2f} s samples, interleaved, {:.2f} s idle before each; {:.0f} s. Cells: median (min–max) over rounds; "
        "ratio: streamdsl's median speed / the best peer's (> 1: streamdsl faster; for µs rows, the inverse "
        "of the time ratio). f64 mm % is of half the f32 peak; memory-bound rows count bytes read + written "
        "and compare with the better of copy and triad.".format(stamp, args.rounds, args.min_time, args.gap,
                                                                 elapsed),
        "Tools: " + "; ".join("{} {}".format(n, info.get("version", info.get("error", "?")))
                              + (" ({})".format(describe(info)) if describe(info) else "")
                              for n, info in infos.items()),
    ]
    extra_notes = notes(rows, cells, args.rounds)
    out = sys.stdout
    out.write("\n" + "\n".join(head) + "\n\n")
    print_table(header, lines, out)
    if extra_notes:
        out.write("\nNotes:\n" + "".join("- {}\n".format(n) for n in extra_notes))

    result = {
        "date": stamp, "label": args.label, "machine": machine, "probes": probes, "tools": infos,
        "config": {"rounds": args.rounds, "min_time": args.min_time, "quick": args.quick, "slow": args.slow},
        "rows": [{
            "op": r.label, "shape": r.shape, "dtype": r.dtype, "device": r.device, "unit": r.unit,
            "better": UNITS[r.unit], "spec": r.spec, "work": r.work,
            "ratio_to_best_peer": ratio_to_best_peer(r, cells[r.key])[0],
            "best_peer": ratio_to_best_peer(r, cells[r.key])[1],
            "tools": {n: {"values": c.values, "reps": c.reps, "summary": c.summary(), "note": c.note}
                      for n, c in cells[r.key].items()},
        } for r in rows],
        "notes": extra_notes,
    }
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write("\n\n".join(head) + "\n\n" + markdown(header, lines) + "\n")
        if extra_notes:
            f.write("\n" + "".join("- {}\n".format(n) for n in extra_notes))
    with open(os.path.join(args.out, "bench.svg"), "w") as f:
        f.write(svg_chart(rows, cells, "streamdsl vs the best peer — {} ({} cores), {}{}".format(
            machine["cpu_model"], machine["cores"], stamp, " — " + args.label if args.label else "")))
    log("\nbench: wrote {0}/bench.json, {0}/bench.md, {0}/bench.svg".format(args.out))
    return 0


def describe(info):
    keys = ("blas", "threads", "cpu_workers", "rayon_threads", "cpu_capability")
    return ", ".join("{} {}".format(k.replace("_", " "), info[k]) for k in keys if info.get(k) not in (None, ""))


if __name__ == "__main__":
    sys.exit(main())
