#!/usr/bin/env python3
"""numpy's and torch's runner for ./scripts/bench.

    python bench/py_runner.py numpy|torch

A persistent process that speaks the protocol of the Rust runners (bench/harness/src/lib.rs): one JSON request
a line on stdin, one JSON answer a line on stdout. It times each case the same way (the repetition count grows
until a sample lasts about `min_time`, is kept for later rounds, and each later sample follows a warm-up of a
tenth of a sample), on the same inputs (element i of operand `seed` is ((37 i + 11 seed) mod 101) / 101 - 0.5,
rounded to the element type).
"""

import json
import math
import os
import sys
import time

MAX_REPS = 1 << 24


class Unsupported(Exception):
    """The tool has no such op, dtype or device."""


def measure(case, cached, min_time, reps):
    """One sample: (seconds per op, repetitions); see `measure` in bench/harness/src/lib.rs."""
    k = reps or cached.get("k")
    if k:
        case.run(max(1, k // 10))
    else:
        k = 1
        while True:
            t = case.run(k)
            if t >= min_time / 4 or k >= MAX_REPS:
                k = min(MAX_REPS, max(1, math.ceil(k * min_time / max(t, 1e-9))))
                break
            grow = math.ceil(min_time / 4 / t * 1.5) if t > 0 else 100
            k = min(MAX_REPS, int(k * min(100, max(2, grow))))
    if not reps:
        cached["k"] = k
    t = case.run(k)
    return t / k, k


def time_loop(k, f):
    t = time.perf_counter()
    for _ in range(k):
        f()
    return time.perf_counter() - t


class Each:
    """Every repetition is one op run to completion (`sync` waits for a GPU)."""

    def __init__(self, op, to_numpy, sync=None):
        self.op, self.to_numpy, self.sync = op, to_numpy, sync

    def run(self, k):
        op, sync = self.op, self.sync
        if sync is None:
            return time_loop(k, op)

        def once():
            op()
            sync()

        return time_loop(k, once)

    def check(self, k):
        out = self.op()
        if self.sync:
            self.sync()
        return self.to_numpy(out)


class TinyChain:
    """x = x + b, k times (4 elements), one sync at the end; with `enqueue_only`, only the enqueueing calls
    are counted (batches of 2,000, the wait between batches not counted: meaningful on a GPU only)."""

    def __init__(self, add, x0, b, to_numpy, sync=None, enqueue_only=False):
        self.add, self.x0, self.b, self.to_numpy, self.sync = add, x0, b, to_numpy, sync
        self.enqueue_only = enqueue_only

    def chain(self, k):
        add, b, x = self.add, self.b, self.x0
        if self.enqueue_only:
            counted, left = 0.0, k
            while left > 0:
                n = min(left, 2000)
                t = time.perf_counter()
                for _ in range(n):
                    x = add(x, b)
                counted += time.perf_counter() - t
                self.sync()
                left -= n
            return x, counted
        t = time.perf_counter()
        for _ in range(k):
            x = add(x, b)
        if self.sync:
            self.sync()
        return x, time.perf_counter() - t

    def run(self, k):
        return self.chain(k)[1]

    def check(self, k):
        return self.to_numpy(self.chain(k)[0])


class NumpyTool:
    name = "numpy"

    def __init__(self):
        import numpy as np

        self.np = np
        self.dtypes = {"f32": np.float32, "f64": np.float64, "f16": np.float16}

    def info(self):
        np = self.np
        blas = {}
        try:
            config = np.show_config(mode="dicts")
            blas = config.get("Build Dependencies", {}).get("blas", {})
        except Exception:  # older numpy: no dict mode
            pass
        return {
            "tool": "numpy",
            "version": np.__version__,
            "blas": "{} {}".format(blas.get("name", "?"), blas.get("version", "")).strip(),
            "threads_env": {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS") if k in os.environ},
            "cuda": {"available": False, "why": "numpy runs on the CPU only"},
        }

    def input(self, shape, seed, dt):
        np = self.np
        n = math.prod(shape)
        i = np.arange(n, dtype=np.int64)
        return (((i * 37 + seed * 11) % 101).astype(np.float64) / 101.0 - 0.5).astype(dt).reshape(shape)

    def to_numpy(self, out):
        return self.np.asarray(out, dtype=self.np.float64).ravel()

    def build(self, spec):
        np = self.np
        if spec.get("device", "cpu") != "cpu":
            raise Unsupported("numpy runs on the CPU only")
        dt = self.dtypes.get(spec["dtype"])
        if dt is None:
            raise Unsupported("numpy has no {}".format(spec["dtype"]))
        op, tn = spec["op"], self.to_numpy
        if op == "mm":
            b_, m, k, n = spec["batch"], spec["m"], spec["k"], spec["n"]
            sa, sb = ([m, k], [k, n]) if b_ == 0 else ([b_, m, k], [b_, k, n])
            a, b = self.input(sa, 1, dt), self.input(sb, 2, dt)
            return Each(lambda: np.matmul(a, b), tn)
        if op == "randn":
            if dt not in (np.float32, np.float64):
                raise Unsupported("numpy's standard_normal makes f32 and f64 only")
            rng, n = np.random.default_rng(spec.get("seed", 0)), spec["len"]
            return Each(lambda: rng.standard_normal(n, dtype=dt), tn)
        if op == "add":
            a, b = self.input([spec["len"]], 1, dt), self.input([spec["len"]], 2, dt)
            return Each(lambda: np.add(a, b), tn)
        if op == "add_bcast":
            a, b = self.input([spec["rows"], spec["cols"]], 1, dt), self.input([spec["cols"]], 2, dt)
            return Each(lambda: np.add(a, b), tn)
        if op == "mul_scalar":
            a, v = self.input([spec["len"]], 1, dt), float(spec.get("scalar", 2.0))
            return Each(lambda: np.multiply(a, v), tn)
        if op == "sum":
            a = self.input([spec["len"]], 1, dt)
            return Each(lambda: a.sum(), tn)
        if op == "mean":
            a = self.input([spec["len"]], 1, dt)
            return Each(lambda: a.mean(), tn)
        if op == "to_dtype":
            to = self.dtypes.get(spec["to"])
            if to is None:
                raise Unsupported("numpy has no {}".format(spec["to"]))
            a = self.input([spec["len"]], 1, dt)
            return Each(lambda: a.astype(to), tn)
        if op == "tiny_add":
            return TinyChain(np.add, self.input([spec["len"]], 1, dt), self.input([spec["len"]], 2, dt), tn)
        if op in ("tiny_enqueue", "tiny_streams"):
            raise Unsupported("numpy is synchronous: no enqueue, no streams")
        raise Unsupported("the numpy runner has no case {}".format(op))


class TorchTool:
    name = "torch"

    def __init__(self):
        import numpy as np
        import torch

        self.np, self.torch = np, torch
        self.dtypes = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}
        # The fp32 reference: no TF32 on a GPU (the default for matmul, said explicitly).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def info(self):
        torch = self.torch
        cuda = {"available": torch.cuda.is_available()}
        if cuda["available"]:
            cuda["device"] = torch.cuda.get_device_name(0)
            cuda["cuda"] = torch.version.cuda
        else:
            cuda["why"] = "torch.cuda.is_available() is False"
        return {
            "tool": "torch",
            "version": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "cuda": cuda,
        }

    def to_numpy(self, out):
        return out.detach().to(self.torch.float64).cpu().numpy().ravel()

    def input(self, shape, seed, dt, dev):
        np, torch = self.np, self.torch
        n = math.prod(shape)
        i = np.arange(n, dtype=np.int64)
        host = ((i * 37 + seed * 11) % 101).astype(np.float64) / 101.0 - 0.5
        t = torch.from_numpy(host).reshape(shape).to(dt).to(dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return t

    def build(self, spec):
        torch = self.torch
        device = spec.get("device", "cpu")
        if device == "cuda" and not torch.cuda.is_available():
            raise Unsupported("torch sees no CUDA device")
        dev = torch.device("cuda:0" if device == "cuda" else "cpu")
        sync = torch.cuda.synchronize if dev.type == "cuda" else None
        dt = self.dtypes.get(spec["dtype"])
        if dt is None:
            raise Unsupported("torch has no {}".format(spec["dtype"]))
        op, tn = spec["op"], self.to_numpy

        def inp(shape, seed):
            return self.input(shape, seed, dt, dev)

        if op == "mm":
            b_, m, k, n = spec["batch"], spec["m"], spec["k"], spec["n"]
            sa, sb = ([m, k], [k, n]) if b_ == 0 else ([b_, m, k], [b_, k, n])
            a, b = inp(sa, 1), inp(sb, 2)
            return Each(lambda: torch.matmul(a, b), tn, sync)
        if op == "randn":
            n = spec["len"]
            gen = torch.Generator(device=dev)
            gen.manual_seed(spec.get("seed", 0))
            return Each(lambda: torch.randn(n, dtype=dt, device=dev, generator=gen), tn, sync)
        if op == "add":
            a, b = inp([spec["len"]], 1), inp([spec["len"]], 2)
            return Each(lambda: torch.add(a, b), tn, sync)
        if op == "add_bcast":
            a, b = inp([spec["rows"], spec["cols"]], 1), inp([spec["cols"]], 2)
            return Each(lambda: torch.add(a, b), tn, sync)
        if op == "mul_scalar":
            a, v = inp([spec["len"]], 1), float(spec.get("scalar", 2.0))
            return Each(lambda: torch.mul(a, v), tn, sync)
        if op == "sum":
            a = inp([spec["len"]], 1)
            return Each(lambda: a.sum(), tn, sync)
        if op == "mean":
            a = inp([spec["len"]], 1)
            return Each(lambda: a.mean(), tn, sync)
        if op == "to_dtype":
            to = self.dtypes.get(spec["to"])
            if to is None:
                raise Unsupported("torch has no {}".format(spec["to"]))
            a = inp([spec["len"]], 1)
            return Each(lambda: a.to(to), tn, sync)
        if op in ("tiny_add", "tiny_enqueue"):
            if op == "tiny_enqueue" and sync is None:
                raise Unsupported("torch's CPU ops are synchronous: no enqueue-only cost")
            x0, b = inp([spec["len"]], 1), inp([spec["len"]], 2)
            return TinyChain(torch.add, x0, b, tn, sync, enqueue_only=(op == "tiny_enqueue"))
        if op == "tiny_streams":
            if sync is None:
                raise Unsupported("torch has no CPU streams")
            return TorchStreams(torch, [torch.cuda.Stream() for _ in range(spec["streams"])],
                                [(inp([spec["len"]], 1), inp([spec["len"]], 2)) for _ in range(spec["streams"])])
        raise Unsupported("the torch runner has no case {}".format(op))


class TorchStreams:
    """Independent 4-element adds spread round-robin over CUDA streams from one thread."""

    def __init__(self, torch, streams, inputs):
        self.torch, self.streams, self.inputs = torch, streams, inputs

    def run(self, k):
        torch, streams, inputs = self.torch, self.streams, self.inputs
        n = len(streams)
        t = time.perf_counter()
        for i in range(k):
            with torch.cuda.stream(streams[i % n]):
                a, b = inputs[i % n]
                torch.add(a, b)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    def check(self, k):
        raise Unsupported("this case is timed only")


def serve(tool):
    cases = {}
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            reply = {"ok": False, "error": "not a JSON request ({}): {}".format(e, line)}
        else:
            cmd = req.get("cmd")
            if cmd == "quit":
                break
            try:
                reply = answer(tool, cases, cmd, req)
            except Unsupported as e:
                reply = {"ok": False, "unsupported": str(e)}
            except Exception as e:  # one failing case must not end the runner
                reply = {"ok": False, "error": "{}: {}".format(type(e).__name__, e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def answer(tool, cases, cmd, req):
    if cmd == "info":
        return {"ok": True, "info": tool.info()}
    if cmd == "forget":
        cases.clear()
        return {"ok": True}
    if cmd not in ("run", "check"):
        return {"ok": False, "error": "unknown command `{}`".format(cmd)}
    spec = req["case"]
    key = json.dumps(spec, sort_keys=True)
    if key not in cases:
        cases[key] = (tool.build(spec), {})
    case, cached = cases[key]
    if cmd == "check":
        v = case.check(req.get("reps") or 1)
        return {"ok": True, "numel": int(v.size), "sum": float(v.sum()), "abs": float(abs(v).sum()),
                "sumsq": float((v * v).sum())}
    seconds, reps = measure(case, cached, float(req.get("min_time", 0.2)), req.get("reps"))
    return {"ok": True, "seconds": seconds, "reps": reps}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("numpy", "torch"):
        sys.exit("usage: py_runner.py numpy|torch")
    try:
        tool = NumpyTool() if sys.argv[1] == "numpy" else TorchTool()
    except ImportError as e:
        sys.exit("py_runner: cannot import {}: {}".format(sys.argv[1], e))
    serve(tool)


if __name__ == "__main__":
    main()
