//! The server side of the transparency log: an in-memory cache of every perfect subtree hash.
//!
//! Leaves (their exact bytes and hashes) are stored in SQLite (`log_leaves`); at start-up the
//! server reads the leaf hashes once and builds [`LogTree`], which keeps, per level, the hash of
//! every complete aligned subtree (`levels[l][i]` covers leaves `[i·2^l, (i+1)·2^l)`), about
//! 2 × 32 bytes per leaf. Appending a leaf adds at most log₂ n nodes; a root is O(log n) lookups
//! and a proof O(log² n) (via [`fieldcap_evidence::tlog::SubtreeSource`]): nothing is recomputed per
//! request. The proof *algorithms* are the pure functions of [`fieldcap_evidence::tlog`], shared with
//! the devices that verify them.
//!
//! ```
//! use fieldcap_server::log::LogTree;
//! use fieldcap_evidence::tlog::{leaf_hash, root_of, verify_inclusion};
//! let leaves: Vec<_> = (0..5u8).map(|i| leaf_hash(&[i])).collect();
//! let mut t = LogTree::default();
//! for l in &leaves { t.push(*l); }
//! assert_eq!(t.root(5).unwrap(), root_of(&leaves));
//! let p = t.inclusion(2, 5).unwrap();
//! verify_inclusion(2, 5, &leaves[2], &p, &root_of(&leaves)).unwrap();
//! ```

use fieldcap_evidence::tlog::{self as core_log, Hash, SubtreeSource};

/// Perfect-subtree hash cache of an append-only RFC 6962 tree.
#[derive(Debug, Clone, Default)]
pub struct LogTree {
    levels: Vec<Vec<Hash>>,
}

impl LogTree {
    /// A tree of these leaf hashes.
    pub fn from_leaves(leaves: &[Hash]) -> LogTree {
        let mut t = LogTree::default();
        for l in leaves {
            t.push(*l);
        }
        t
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        let index = self.size();
        self.levels[0].push(leaf);
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let n = self.levels[level].len();
            let parent = core_log::node_hash(&self.levels[level][n - 2], &self.levels[level][n - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
        index
    }

    /// Drops leaves back to `size` (undo of failed appends).
    pub fn truncate(&mut self, size: u64) {
        for (l, v) in self.levels.iter_mut().enumerate() {
            v.truncate((size >> l) as usize);
        }
        while self.levels.last().is_some_and(|v| v.is_empty()) && self.levels.len() > 1 {
            self.levels.pop();
        }
    }

    /// Root of the first `size` leaves.
    pub fn root(&self, size: u64) -> fieldcap_evidence::Result<Hash> {
        self.check(size)?;
        core_log::root_from(self, size)
    }

    /// Inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> fieldcap_evidence::Result<Vec<Hash>> {
        self.check(size)?;
        core_log::inclusion_proof_from(self, index, size)
    }

    /// Consistency proof from `old_size` to `new_size`.
    pub fn consistency(&self, old_size: u64, new_size: u64) -> fieldcap_evidence::Result<Vec<Hash>> {
        self.check(new_size)?;
        core_log::consistency_proof_from(self, old_size, new_size)
    }

    fn check(&self, size: u64) -> fieldcap_evidence::Result<()> {
        if size > self.size() {
            return Err(fieldcap_evidence::Error::InvalidInput(format!("tree size {size} is larger than the log ({})", self.size())));
        }
        Ok(())
    }
}

impl SubtreeSource for LogTree {
    fn subtree(&self, level: u32, index: u64) -> fieldcap_evidence::Result<Hash> {
        self.levels
            .get(level as usize)
            .and_then(|v| v.get(index as usize))
            .copied()
            .ok_or_else(|| fieldcap_evidence::Error::InvalidInput("subtree lies outside the log".into()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fieldcap_evidence::tlog::{consistency_proof, inclusion_proof, leaf_hash, root_of};

    #[test]
    fn cache_agrees_with_direct_computation_and_truncates() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut t = LogTree::default();
        for (i, l) in leaves.iter().enumerate() {
            assert_eq!(t.push(*l), i as u64);
            let n = i + 1;
            assert_eq!(t.root(n as u64).unwrap(), root_of(&leaves[..n]));
        }
        for n in [1usize, 2, 3, 8, 33, 64, 70] {
            for i in 0..n {
                assert_eq!(t.inclusion(i as u64, n as u64).unwrap(), inclusion_proof(&leaves[..n], i as u64).unwrap());
            }
            for m in 0..=n {
                assert_eq!(t.consistency(m as u64, n as u64).unwrap(), consistency_proof(&leaves[..n], m as u64).unwrap());
            }
        }
        t.truncate(37);
        assert_eq!(t.size(), 37);
        assert_eq!(t.root(37).unwrap(), root_of(&leaves[..37]));
        t.push(leaves[37]);
        assert_eq!(t.root(38).unwrap(), root_of(&leaves[..38]));
        assert!(t.root(39).is_err());
    }
}
