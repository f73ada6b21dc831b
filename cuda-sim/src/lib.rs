//! # streamdsl-cuda-sim: a simulated CUDA driver
//!
//! A shared library that exports the CUDA driver API functions streamdsl's CUDA backend calls (through
//! cudarc), with CUDA's semantics, on CPU threads — and runs the backend's CUDA C kernels for real. It is a
//! test harness (every CUDA test case runs on a machine without a GPU) and a debugging aid (like Numba's CUDA
//! simulator, with compute-sanitizer-style checks), never a performance claim.
//!
//! ## Using it
//!
//! The build produces `target/<profile>/libstreamdsl_cuda_sim.so`. cudarc loads the driver lazily, symbol by
//! symbol, by the name `libcuda.so` (its first candidate) from the loader path, so a folder holding a link
//! `libcuda.so → libstreamdsl_cuda_sim.so` on `LD_LIBRARY_PATH` makes the **unchanged** CUDA backend run on
//! the simulator:
//!
//! ```text
//! cargo build -p streamdsl-cuda-sim
//! mkdir -p target/cuda-sim && ln -sf ../debug/libstreamdsl_cuda_sim.so target/cuda-sim/libcuda.so
//! LD_LIBRARY_PATH=$PWD/target/cuda-sim STREAMDSL_DEVICE=cuda cargo test -p streamdsl-tests
//! ```
//!
//! The library is deliberately *not* named `libcuda.so`: cargo puts `target/<profile>` on the loader path of
//! every `cargo test` and `cargo run`, so a `libcuda.so` there would silently shadow the real driver on a
//! GPU machine and turn every CUDA test into a simulator run. No `libcuda.so.1` link is needed (cudarc finds
//! `libcuda.so` first); do not add one either: NVRTC dlopens `libcuda.so.1` for itself.
//!
//! A program knows it runs on the simulator when the driver exports `streamdsl_sim_version` (non-zero); the
//! device is named "streamdsl simulated GPU" unless configured otherwise. `streamdsl_sim_last_error(buf, len)`
//! returns the last report, `streamdsl_sim_report_count(code)` how many reports with that code (negative: any)
//! were made, and `cuGetErrorString` appends the last report to the text of the codes a report produces.
//!
//! **Fault injection**, for testing a program's error handling, per calling thread (so a test injects into
//! its own calls only; see `check::inject`): `streamdsl_sim_fail_next(name, code)` makes the next call of the
//! driver function `name` (spelled without `_v2`) return `code` and do nothing else;
//! `streamdsl_sim_fault_next()` makes the next kernel launch, copy or memset this thread enqueues fail when
//! it runs, as a kernel touching a bad address would (`CUDA_ERROR_ILLEGAL_ADDRESS`, with a report, the stream
//! poisoned from there on).
//!
//! ## The seam: kernels as source
//!
//! A real driver takes a CUBIN; the simulator takes CUDA C source. `cuModuleLoadData(image)` accepts a
//! NUL-terminated text whose first line is `//streamdsl-sim-source v1`, followed by the complete source (with
//! its headers inlined, as streamdsl's JIT assembles it). Anything else, a real CUBIN or PTX included, is
//! `CUDA_ERROR_INVALID_IMAGE`. streamdsl's `CudaMachine::function` hands the simulator this image when the
//! driver exports `streamdsl_sim_version`.
//!
//! The source is compiled as host C++ by the system compiler (`$CXX`, else `c++`, else `g++`; a missing
//! compiler is `CUDA_ERROR_JIT_COMPILER_NOT_FOUND` with a report naming what was looked for) after the
//! emulation header (`exec/emulation.h`), with `-std=c++17 -O2 -ffp-contract=off` (no fused multiply-add
//! unless written as `fma`, no fast-math). The shared object is cached on disk under a SHA-256 of (source,
//! header, compiler and its version, flags), written through a temporary file and a rename, in a directory
//! created with mode 0700; a compile error is `CUDA_ERROR_INVALID_SOURCE` with the compiler's output (the
//! translation unit is kept next to the cache entry).
//!
//! Entry points are the `extern "C" __global__` functions of the preprocessed source. For each, the
//! generated thunk deduces the parameter types from the function's signature, so the driver knows each
//! parameter's size and which are pointers, to `const` (the kernel reads) or not (reads and writes).
//!
//! ## What runs how
//!
//! - **Devices and contexts**: a configurable device (below); primary contexts; a context stack per thread
//!   (`cuCtxPushCurrent` / `cuCtxPopCurrent`; `cuCtxSetCurrent` replaces the top, null pops it), whose top is
//!   the current context (calls that need one fail with `CUDA_ERROR_INVALID_CONTEXT` without it).
//! - **Streams** each execute their queue in order on a thread of their own, so different streams really
//!   run concurrently; a kernel's blocks go to a shared pool of worker threads (the "SMs"), and the blocks of
//!   the highest-priority stream's launch are dispatched first (priority range: least 0, greatest -5). The
//!   NULL stream is an ordinary stream here (no implicit synchronisation with other streams).
//! - **Events**: record, query (`CUDA_ERROR_NOT_READY` before completion), synchronize, elapsed time
//!   (`CUDA_ERROR_INVALID_HANDLE` for `CU_EVENT_DISABLE_TIMING` events or never-recorded ones);
//!   `cuStreamWaitEvent` waits for the record *as of the call* (re-recording later does not move it); a wait
//!   on a never-recorded event is a no-op.
//! - **Host functions** (`cuLaunchHostFunc`) run in stream order on the stream's thread; any driver call from
//!   inside one returns `CUDA_ERROR_NOT_PERMITTED` (the real driver documents the rule without enforcing it).
//! - **Memory**: the stream-ordered pool (`cuMemAllocAsync` / `cuMemFreeAsync`, release threshold, trim,
//!   out-of-memory at the configured capacity; see `driver::memory`), synchronous `cuMemAlloc` / `cuMemFree`,
//!   async copies (host-to-device stages the host data at the call; device-to-host into pageable memory
//!   returns once done, as CUDA does) and memset.
//! - **Kernels really run**: every block and thread. Each thread is a fiber (a small context switch on
//!   x86-64, `ucontext` elsewhere); one OS thread runs all fibers of a block, so `__shared__` (a
//!   `static thread_local`) is per block; blocks are spread over the workers. `__syncthreads` (with the
//!   count/and/or forms), warp shuffles and votes (`__shfl*_sync`, `__ballot_sync`, `__any_sync`,
//!   `__all_sync`, `__reduce_*_sync`, `__syncwarp`) are rendezvous of the threads involved; atomics are real
//!   atomics; `__launch_bounds__` is checked at launch; the `_rn` intrinsics are the host's IEEE operations.
//!   Inline PTX has no host form, so kernels call the named functions of `kernels/src/cuda/ptx.cuh`, whose
//!   host versions here follow the PTX ISA: `cvt` rounding, subnormals and NaN (canonical NaN results),
//!   `%globaltimer`, `nanosleep` (lets the block's other threads run), and `mma.sync.m16n8k16` with the
//!   documented fragment layouts (products exact, each output summed in f64 and rounded once to f32).
//!
//! ## Checks (like compute-sanitizer)
//!
//! - **Bounds and lifetime, by hardware**: every allocation has its own pages in a reserved stretch of
//!   address space, placed so that its end abuts a `PROT_NONE` guard page; freed allocations become
//!   `PROT_NONE` and their addresses are never reused. A kernel touching one byte past the end, or freed
//!   memory, faults; the `SIGSEGV` handler maps the address to the allocation and fails only that launch.
//!   Placement choice: the end abuts the guard, so the start is aligned to the largest power of two dividing
//!   the size (at least the alignment of any element type an array of that size can hold) rather than to
//!   CUDA's 256 bytes; code that relies on 256-byte alignment of an odd-sized buffer is not supported
//!   (`STREAMDSL_SIM_ALIGN` trades detection for alignment). Reads before the start within the first page
//!   are not caught.
//! - **Copies, memsets, frees** are checked when enqueued: unknown pointer, out of bounds, use after free,
//!   double free (`CUDA_ERROR_INVALID_VALUE` at the call).
//! - **Races**: a vector-clock model of streams, events, waits and host synchronisation (see `check::race`)
//!   reports any access not ordered after its allocation's last conflicting access (write–write,
//!   read–write, free–use), using kernels' pointer arguments (const: read; non-const: write), copies (source
//!   read, destination write), memsets (write) and frees. Allocation counts as a write by its stream.
//! - A report fails the operation as a real fault would: it is printed to stderr (naming the operation, the
//!   stream, the allocation with who allocated and freed it, and for races both operations), the stream is
//!   poisoned (later work on it is not run; `cuStreamSynchronize`, `cuStreamQuery` and queries or
//!   synchronisations of events recorded after it return the error: `CUDA_ERROR_ILLEGAL_ADDRESS` for
//!   faults, `CUDA_ERROR_LAUNCH_FAILED` for races and deadlocks, `CUDA_ERROR_INVALID_VALUE` for refused
//!   copies and frees). Other streams and new streams keep working; a wait on an event of a poisoned stream
//!   does not poison the waiting stream.
//! - A block whose threads wait at a barrier or warp collective that cannot complete is reported as a
//!   deadlock; `__trap()` and failed `assert`s fail the launch.
//!
//! ## What it proves, and what it does not
//!
//! It proves stream ordering (what waits on what), memory bounds and lifetimes, the kernels' logic (every
//! block and thread, barriers, warp collectives, the PTX fragment layouts), and the backend's use of the
//! driver API. It does not prove: **speed** (nothing here is a timing claim), **the real memory model**
//! (threads of a block run one at a time; blocks run concurrently on OS threads under the host's memory
//! model; a thread spinning on another thread of its block without a barrier, `__nanosleep` or a warp
//! collective never yields), **hardware math** (the host's libm stands in for CUDA's math functions and fast
//! intrinsics; tensor-core accumulation order is not modelled), registers, occupancy, dynamic shared memory
//! (not supported), or accesses through host pointers (they work here; they would fault on a GPU).
//! `__shared__` arrays are not bounds-checked.
//!
//! ## Environment
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `STREAMDSL_SIM_DEVICES` | 1 | number of devices |
//! | `STREAMDSL_SIM_CC` | `9.0` | compute capability `MAJOR.MINOR` (also `__CUDA_ARCH__`) |
//! | `STREAMDSL_SIM_SMS` | 132 | multiprocessor count reported |
//! | `STREAMDSL_SIM_MEMORY` | 80000000000 | device memory in bytes; allocations beyond it are out of memory |
//! | `STREAMDSL_SIM_NAME` | `streamdsl simulated GPU` | the device name |
//! | `STREAMDSL_SIM_JITTER` | off | `1`: a random delay (up to 300 µs) before each stream operation, to shake out missing waits |
//! | `STREAMDSL_SIM_SEED` | time | seed of the jitter (per stream) |
//! | `STREAMDSL_SIM_WORKERS` | available parallelism, ≥ 2 | worker threads that run kernel blocks |
//! | `STREAMDSL_SIM_ALIGN` | tight | alignment of allocation starts (a power of two ≤ 4096) |
//! | `STREAMDSL_SIM_QUIET` | off | `1`: reports are not printed (still returned and kept) |
//! | `STREAMDSL_SIM_CACHE_DIR` | `<user cache dir>/streamdsl/sim` | where compiled kernels are cached |
//! | `STREAMDSL_SIM_OPT` | `-O2` | the optimisation flag kernels are compiled with |
//! | `CXX` | `c++`, then `g++` | the C++ compiler (may carry flags) |
//!
//! Linux only (x86-64 fast path; other architectures use `ucontext`).
//!
//! ## Layers
//!
//! [`api`] (the exported C functions: argument checks, panics caught at the boundary) → [`driver`] (objects
//! and their semantics) → [`exec`] (kernel compile and run) → [`check`] (allocation table, fault handler,
//! vector clocks, reports).

pub mod api;
pub mod check;
pub mod driver;
pub mod exec;
