//! Seeded deterministic bytes and numbers (xorshift64; not a cryptographic source).
//!
//! The same seed always gives the same bytes, different seeds give unrelated ones, so a test's
//! media are reproducible and two items never share content by accident.

/// Multiplier that spreads small seeds (0, 1, 2 …) over the whole 64-bit state.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// A xorshift64 generator.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(SPREAD) | 1)
    }

    /// A generator whose state is `state` as given (it must not be 0), for a test that names
    /// its exact sequence.
    pub fn from_state(state: u64) -> XorShift {
        assert_ne!(state, 0, "xorshift state 0 repeats forever");
        XorShift(state)
    }

    /// The next number (the new state).
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// `len` deterministic pseudo-random bytes for `seed`.
pub fn seeded(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_and_seeds_differ() {
        assert_eq!(seeded(1000, 7), seeded(1000, 7));
        assert_ne!(seeded(1000, 7), seeded(1000, 8));
        assert_eq!(seeded(13, 3), seeded(16, 3)[..13]);
        assert!(seeded(0, 1).is_empty());
    }
}
