//! Counter-based random numbers: Philox4x32-10 generators and Box–Muller, pure math with the same bits on every
//! backend. (The public `streamdsl::random` module re-exports these with the op that runs them on a device.)

mod generator;
mod philox;

pub use generator::{default_generator, manual_seed, Generator};
pub(crate) use philox::{counter, key, normals_f32, normals_f64};
pub use philox::{philox4x32_10, uniform_f32, uniform_f64};
