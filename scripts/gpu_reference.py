"""Reference figures for the GPU benchmark (benches/gpu.rs), measured the same way: CUDA events, warm-up,
median. cuBLAS through torch with TF32 off for f32, torch.randn for random numbers.

Run on the GPU machine in the same session as `bash .gpu/run.sh bench`: python3 scripts/gpu_reference.py
"""
import statistics

import torch


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


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"reference on {torch.cuda.get_device_name()} (torch {torch.__version__})\n")
    print("| what | reference | time |")
    print("| --- | --- | --- |")
    for dtype, n, reps in [(torch.float32, 4096, 10), (torch.float64, 2048, 5), (torch.bfloat16, 8192, 10), (torch.float16, 8192, 10)]:
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        s = timed(lambda: torch.mm(a, b), reps)
        print(f"| cuBLAS mm {dtype} {n}³ | {2 * n**3 / s / 1e12:.1f} TFLOP/s | {s * 1e3:.3f} ms |")
    n = 1 << 26
    s = timed(lambda: torch.randn(n, device="cuda"), 10)
    print(f"| torch.randn f32 64 M | {n / s / 1e9:.1f} G numbers/s | {s * 1e3:.3f} ms |")
    x = torch.randn(n, device="cuda")
    s = timed(lambda: x + x, 10)
    print(f"| torch add f32 64 M | {3 * 4 * n / s / 1e9:.0f} GB/s | {s * 1e3:.3f} ms |")


if __name__ == "__main__":
    main()
