//! Deterministic pseudo-random numbers for the workloads and the examples.
#![allow(dead_code, unreachable_pub)]

/// A pseudo-random number in [0, 1) for (`seed`, `i`): splitmix64, so every item draws its own
/// numbers whatever engine or worker runs it.
pub fn uniform(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}
