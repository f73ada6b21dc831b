//! Counter-based random numbers: Philox4x32-10 generators, the same bits on every backend.

mod generator;
mod philox;

pub use generator::{default_generator, manual_seed, Generator};
pub(crate) use philox::{counter, key, normals_f32, normals_f64};
pub use philox::{philox4x32_10, uniform_f32, uniform_f64};

use crate::error::Result;
use crate::stream::Stream;

/// The raw Philox4x32-10 words of `groups` counters `(g, offset)` under key `seed`, computed on `stream`'s
/// device: four words per group, group-major. Every backend returns the same bits; this is how the CUDA
/// kernel is checked against the CPU (and against Random123's known answers).
///
/// ```
/// use streamdsl::prelude::*;
/// let s = Stream::new(&Device::cpu())?;
/// let bits = streamdsl::random::philox_bits_on(&s, 2, 0, 0)?;
/// assert_eq!(&bits[..4], &[0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// assert_eq!(bits.len(), 8);
/// # Ok::<(), streamdsl::Error>(())
/// ```
pub fn philox_bits_on(stream: &Stream, groups: usize, seed: u64, offset: u64) -> Result<Vec<u32>> {
    if stream.device().is_cuda() {
        return crate::ops::cuda::philox_bits(stream, groups, seed, offset);
    }
    Ok((0..groups as u64).flat_map(|g| philox4x32_10(counter(g, offset), key(seed))).collect())
}
