//! CUDA C sources of streamdsl's kernels, embedded as strings so the runtime can JIT-compile them with
//! NVRTC and so this crate packages on its own.
