//! How many bytes each `PATCH` carries: adaptive chunks.
//!
//! Every `PATCH` costs a round trip and, at the server, an fsync before it acknowledges; a cut
//! costs the re-send of at most the chunk in flight. Small chunks waste the first on a fast
//! link, big ones the second on a slow or flaky one. So the size follows the link, measured on
//! the chunks themselves:
//!
//! * It starts at [`SyncOptions::chunk_size`](super::super::SyncOptions::chunk_size) (4 MiB).
//! * **Grow**: a full chunk acknowledged at the first attempt within [`GROW_WITHIN`] (0.5 s)
//!   doubles the next, up to the cap
//!   ([`SyncOptions::max_chunk_size`](super::super::SyncOptions::max_chunk_size), 16 MiB). In
//!   terms of throughput: the link just carried the chunk at a rate at which the doubled chunk
//!   takes at most [`TARGET`] (1 s).
//! * **Shrink**: a `PATCH` that needed a retry (no answer, 5xx, 408, 429) or met a `409`
//!   halves the next chunk, and so does a chunk that took longer than [`SHRINK_AFTER`] (4 s: at
//!   that rate a cut costs seconds of re-sending, and the request timeout comes nearer). Never
//!   below [`FLOOR`] (1 MiB), or the starting size if that is smaller.
//! * A cap at or below the starting size fixes the size (no adaptation at all).
//!
//! The size is learned per pass and carries over from one item to the next.

use std::time::Duration;

/// The time a chunk should take at most once grown.
pub(crate) const TARGET: Duration = Duration::from_secs(1);
/// A full chunk acknowledged within this time doubles the next (the doubled one then takes at
/// most [`TARGET`] at the measured throughput).
pub(crate) const GROW_WITHIN: Duration = Duration::from_millis(TARGET.as_millis() as u64 / 2);
/// A chunk that took longer than this halves the next.
pub(crate) const SHRINK_AFTER: Duration = Duration::from_secs(4);
/// The smallest size adaptation shrinks to (a smaller starting size is kept as the floor).
pub(crate) const FLOOR: usize = 1 << 20;

/// The size of the next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkSizer {
    size: usize,
    floor: usize,
    cap: usize,
}

impl ChunkSizer {
    /// Starts at `start` bytes (at least 1) and adapts up to `cap`; a `cap` at or below `start`
    /// fixes the size at `start`.
    pub(crate) fn new(start: usize, cap: usize) -> ChunkSizer {
        let start = start.max(1);
        if cap <= start {
            ChunkSizer { size: start, floor: start, cap: start }
        } else {
            ChunkSizer { size: start, floor: start.min(FLOOR), cap }
        }
    }

    /// Bytes of the next chunk (the last chunk of a file may be shorter).
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// A chunk of `len` bytes was acknowledged after `elapsed`, at its first attempt.
    pub(crate) fn acknowledged(&mut self, len: usize, elapsed: Duration) {
        if elapsed > SHRINK_AFTER {
            self.shrink();
        } else if len >= self.size && elapsed <= GROW_WITHIN {
            // Only a full chunk measures the link: the short last one is mostly round trip.
            self.size = self.size.saturating_mul(2).min(self.cap);
        }
    }

    /// A `PATCH` failed at least once (no answer, 5xx, 408, 429) or met a `409`.
    pub(crate) fn failed(&mut self) {
        self.shrink();
    }

    fn shrink(&mut self) {
        self.size = (self.size / 2).max(self.floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;
    const FAST: Duration = Duration::from_millis(100);

    #[test]
    fn grows_by_doubling_while_chunks_are_fast_up_to_the_cap() {
        let mut c = ChunkSizer::new(4 * MIB, 16 * MIB);
        let mut seen = vec![c.size()];
        for _ in 0..4 {
            c.acknowledged(c.size(), FAST);
            seen.push(c.size());
        }
        assert_eq!(seen, vec![4 * MIB, 8 * MIB, 16 * MIB, 16 * MIB, 16 * MIB]);
    }

    #[test]
    fn the_growth_rule_is_the_measured_throughput_against_one_second() {
        let mut c = ChunkSizer::new(4 * MIB, 16 * MIB);
        // 4 MiB in 0.6 s: 8 MiB would take 1.2 s at that rate, over the target: stays.
        c.acknowledged(4 * MIB, Duration::from_millis(600));
        assert_eq!(c.size(), 4 * MIB);
        // 4 MiB in exactly 0.5 s: 8 MiB takes 1 s: grows.
        c.acknowledged(4 * MIB, GROW_WITHIN);
        assert_eq!(c.size(), 8 * MIB);
        // Between the two thresholds nothing changes.
        c.acknowledged(8 * MIB, Duration::from_secs(3));
        assert_eq!(c.size(), 8 * MIB);
        // Slower than 4 s: halves.
        c.acknowledged(8 * MIB, Duration::from_millis(4001));
        assert_eq!(c.size(), 4 * MIB);
    }

    #[test]
    fn a_short_last_chunk_does_not_grow_it() {
        let mut c = ChunkSizer::new(4 * MIB, 16 * MIB);
        c.acknowledged(1000, Duration::from_millis(1));
        assert_eq!(c.size(), 4 * MIB);
    }

    #[test]
    fn failures_halve_down_to_the_floor() {
        let mut c = ChunkSizer::new(4 * MIB, 16 * MIB);
        c.acknowledged(4 * MIB, FAST);
        c.acknowledged(8 * MIB, FAST);
        assert_eq!(c.size(), 16 * MIB);
        let mut seen = Vec::new();
        for _ in 0..6 {
            c.failed();
            seen.push(c.size());
        }
        assert_eq!(seen, vec![8 * MIB, 4 * MIB, 2 * MIB, MIB, MIB, MIB]);
        // And it grows back once the link is fast again.
        c.acknowledged(MIB, FAST);
        assert_eq!(c.size(), 2 * MIB);
    }

    #[test]
    fn a_small_start_is_its_own_floor() {
        let mut c = ChunkSizer::new(256 << 10, 16 * MIB);
        c.failed();
        assert_eq!(c.size(), 256 << 10);
        c.acknowledged(256 << 10, FAST);
        assert_eq!(c.size(), 512 << 10);
    }

    #[test]
    fn a_cap_at_or_below_the_start_fixes_the_size() {
        for cap in [0, 64 << 10, 128 << 10] {
            let mut c = ChunkSizer::new(128 << 10, cap);
            c.acknowledged(128 << 10, FAST);
            assert_eq!(c.size(), 128 << 10);
            c.failed();
            assert_eq!(c.size(), 128 << 10);
            c.acknowledged(128 << 10, Duration::from_secs(60));
            c.acknowledged(128 << 10, FAST);
            assert_eq!(c.size(), 128 << 10, "cap {cap}");
        }
    }

    #[test]
    fn never_zero_and_never_above_the_cap() {
        let mut c = ChunkSizer::new(0, 3);
        assert_eq!(c.size(), 1);
        for i in 0..20 {
            if i % 3 == 0 {
                c.failed()
            } else {
                c.acknowledged(c.size(), FAST)
            }
            assert!((1..=3).contains(&c.size()));
        }
    }
}
