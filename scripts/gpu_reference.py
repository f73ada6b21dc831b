"""Reference figures for the GPU benchmark (benches/gpu.rs), measured the same way: CUDA events, warm-up,
median. torch.mm (cuBLAS) with TF32 off for f32, torch.randn for random numbers.

Run on the GPU machine in the same session as `bash .gpu/run.sh bench`: python3 scripts/gpu_reference.py
`cargo bench -p streamdsl --bench gpu` runs it itself with `--json` (one JSON object per line) and prints its
figures next to streamdsl's two `mm` paths; MM_CASES below must list the same products as MM_CASES there.
"""
import json
import statistics
import sys

import torch

# (dtype, batch, m, k, n, reps): the products benches/gpu.rs times (batch 0 = 2-D).
MM_CASES = [
    ("f32", 0, 4096, 4096, 4096, 10),
    ("f32", 0, 4095, 4095, 4095, 10),
    ("f64", 0, 2048, 2048, 2048, 5),
    ("bf16", 0, 8192, 8192, 8192, 10),
    ("f16", 0, 8192, 8192, 8192, 10),
    ("bf16", 0, 4096, 4096, 4096, 10),
    ("bf16", 32, 512, 512, 512, 10),
]
DTYPES = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def mm_cases():
    for name, batch, m, k, n, reps in MM_CASES:
        dtype = DTYPES[name]
        lead = [batch] if batch else []
        a = torch.randn(*lead, m, k, device="cuda", dtype=dtype)
        b = torch.randn(*lead, k, n, device="cuda", dtype=dtype)
        f = (lambda: torch.bmm(a, b)) if batch else (lambda: torch.mm(a, b))
        yield name, batch, m, k, n, timed(f, reps)


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    if "--json" in sys.argv:
        print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                          "cuda": torch.version.cuda}), flush=True)
        for name, batch, m, k, n, s in mm_cases():
            print(json.dumps({"op": "mm", "dtype": name, "batch": batch, "m": m, "k": k, "n": n, "seconds": s}),
                  flush=True)
        return
    print(f"reference on {torch.cuda.get_device_name()} (torch {torch.__version__})\n")
    print("| what | reference | time |")
    print("| --- | --- | --- |")
    for name, batch, m, k, n, s in mm_cases():
        flops = 2 * max(batch, 1) * m * k * n
        shape = f"{batch}×{m}×{k}×{n}" if batch else f"{m}×{k}×{n}"
        print(f"| torch.mm {name} {shape} | {flops / s / 1e12:.1f} TFLOP/s | {s * 1e3:.3f} ms |")
    n = 1 << 26
    s = timed(lambda: torch.randn(n, device="cuda"), 10)
    print(f"| torch.randn f32 64 M | {n / s / 1e9:.1f} G numbers/s | {s * 1e3:.3f} ms |")
    x = torch.randn(n, device="cuda")
    s = timed(lambda: x + x, 10)
    print(f"| torch add f32 64 M | {3 * 4 * n / s / 1e9:.0f} GB/s | {s * 1e3:.3f} ms |")


if __name__ == "__main__":
    main()
