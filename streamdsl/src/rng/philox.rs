//! Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
//! Box–Muller transform that turns its bits into normals.
//!
//! The element-to-counter mapping is part of streamdsl's contract, so the CUDA kernel in
//! `kernels/` reproduces it bit for bit: element `i` of a `randn` call with generator `(seed, offset)`
//! takes output word `i % 4` of `philox4x32_10([g_lo, g_hi, offset_lo, offset_hi], [seed_lo, seed_hi])`
//! with `g = i / 4`.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

#[inline(always)]
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mulhilo(M0, c[0]);
    let (hi1, lo1) = mulhilo(M1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox4x32 with 10 rounds: 128 random bits from a 128-bit counter and a 64-bit key.
///
/// ```
/// use streamdsl::random::philox4x32_10;
/// // Random123's known-answer vector for a zero counter and key.
/// assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
/// ```
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    c = round(c, k);
    for _ in 1..10 {
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
        c = round(c, k);
    }
    c
}

/// The counter of group `g` (elements `4g..4g+4`) for a call at `offset`.
#[inline(always)]
pub(crate) fn counter(group: u64, offset: u64) -> [u32; 4] {
    [group as u32, (group >> 32) as u32, offset as u32, (offset >> 32) as u32]
}

/// The key for `seed`.
#[inline(always)]
pub(crate) fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// A uniform in (0, 1] from 32 random bits: `x · 2⁻³² + 2⁻³³` (never 0, so `ln` is finite).
///
/// ```
/// assert!(streamdsl::random::uniform_f32(0) > 0.0);
/// assert_eq!(streamdsl::random::uniform_f32(u32::MAX), 1.0);
/// ```
#[inline(always)]
pub fn uniform_f32(x: u32) -> f32 {
    crate::math::uniform_f32(x)
}

/// The same in double precision.
///
/// ```
/// assert!(streamdsl::random::uniform_f64(u32::MAX) < 1.0);
/// ```
#[inline(always)]
pub fn uniform_f64(x: u32) -> f64 {
    crate::math::uniform_f64(x)
}

/// Four standard normals from one Philox block, in single precision (Box–Muller on pairs).
#[inline(always)]
pub(crate) fn normals_f32(bits: [u32; 4]) -> [f32; 4] {
    let (z0, z1) = crate::math::box_muller_f32(bits[0], bits[1]);
    let (z2, z3) = crate::math::box_muller_f32(bits[2], bits[3]);
    [z0, z1, z2, z3]
}

/// Four standard normals from one Philox block, in double precision.
#[inline(always)]
pub(crate) fn normals_f64(bits: [u32; 4]) -> [f64; 4] {
    let (z0, z1) = crate::math::box_muller_f64(bits[0], bits[1]);
    let (z2, z3) = crate::math::box_muller_f64(bits[2], bits[3]);
    [z0, z1, z2, z3]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's `kat_vectors` for philox4x32 with 10 rounds.
    #[test]
    fn known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
        assert_eq!(
            philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn uniforms_are_open_at_zero_and_closed_at_one() {
        assert!(uniform_f32(0) > 0.0);
        assert!(uniform_f32(u32::MAX) <= 1.0);
        assert!(uniform_f64(0) > 0.0 && uniform_f64(u32::MAX) < 1.0);
        assert!(normals_f32([0, 0, u32::MAX, u32::MAX]).iter().all(|z| z.is_finite()));
    }
}
