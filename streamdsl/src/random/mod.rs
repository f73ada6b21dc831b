//! Counter-based random numbers: Philox4x32-10 generators, the same bits on every backend.

mod generator;
mod philox;

pub use generator::{default_generator, manual_seed, Generator};
pub(crate) use philox::{counter, key, normals_f32, normals_f64};
pub use philox::{philox4x32_10, uniform_f32, uniform_f64};
