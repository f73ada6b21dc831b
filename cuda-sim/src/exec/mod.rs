//! Kernels: compiling CUDA C source as host C++ with the emulation header (`compile`), loading the result
//! (`module`), and running launches on the worker pool (`launch`, `stacks`) through the C ABI (`abi`).

pub mod abi;
pub mod compile;
pub mod launch;
pub mod module;
pub mod stacks;
