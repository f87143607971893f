//! The transparency log: RFC 6962 / RFC 9162 Merkle trees and C2SP signed-note checkpoints.
//!
//! The council server appends one leaf per received item ([`crate::protocol::log_leaf_bytes`])
//! and signs a *checkpoint* (tree size and root) after each append. A receipt carries an
//! inclusion proof from its leaf to a checkpoint; a device that keeps the newest checkpoint it has
//! seen asks for a consistency proof on every sync, so a server that rewrote history (dropped or
//! changed a leaf) is caught.
//!
//! * Hashes follow RFC 6962 §2.1: leaf hash `SHA-256(0x00 || data)`, interior node
//!   `SHA-256(0x01 || left || right)`, the empty tree's root `SHA-256("")`.
//! * Proofs are generated with RFC 6962's `PATH` and `SUBPROOF` and verified with the
//!   algorithms of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).
//! * Generation works over any [`SubtreeSource`]: a slice of leaf hashes (computes what it
//!   needs), or a store of cached perfect-subtree hashes (as the council server keeps),
//!   so a server does O(log² n) lookups per proof instead of rehashing the tree.
//! * Checkpoints are C2SP `tlog-checkpoint` notes signed per C2SP `signed-note` with Ed25519:
//!   ```text
//!   <origin>
//!   <tree size>
//!   <base64 root hash>
//!
//!   — <key name> <base64(4-byte key id || 64-byte signature)>
//!   ```
//!   The key id is the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public key)`.
//!
//! ```
//! use fieldcap_evidence::tlog::*;
//! let leaves: Vec<Hash> = (0..7u8).map(|i| leaf_hash(&[i])).collect();
//! let root = root_of(&leaves);
//! let proof = inclusion_proof(&leaves, 3).unwrap();
//! verify_inclusion(3, 7, &leaves[3], &proof, &root).unwrap();
//! let old_root = root_of(&leaves[..4]);
//! let cons = consistency_proof(&leaves, 4).unwrap();
//! verify_consistency(4, 7, &old_root, &root, &cons).unwrap();
//!
//! let key = fieldcap_evidence::identity::DeviceKey::generate();
//! let note = sign_checkpoint(&Checkpoint { origin: "example.org/log".into(), size: 7, root }, "example.org/log", &key);
//! let cp = verify_checkpoint(&note, "example.org/log", &key.verifying_key()).unwrap();
//! assert_eq!(cp.size, 7);
//! ```

use crate::error::{Error, Result};
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

/// A SHA-256 node or leaf hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 || data)`: the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Lowercase hex of a hash.
pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

/// Parses a 64-digit hex hash; `what` names it in errors.
pub fn from_hex(s: &str, what: &str) -> Result<Hash> {
    let v = hex::decode(s).map_err(|_| Error::InvalidInput(format!("{what} is not hex")))?;
    v.try_into().map_err(|_| Error::InvalidInput(format!("{what} is not 32 bytes")))
}

/// Parses a proof given as hex strings.
pub fn proof_from_hex(proof: &[String]) -> Result<Vec<Hash>> {
    proof.iter().enumerate().map(|(i, s)| from_hex(s, &format!("proof node {i}"))).collect()
}

/// Hex strings of a proof.
pub fn proof_to_hex(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(to_hex).collect()
}

/// Anything that can give the hash of a *perfect* subtree: the `2^level` leaves starting at leaf
/// `index * 2^level`. Level 0 is the leaf hash itself.
///
/// Callers only ask for subtrees that lie entirely inside the tree they work on.
pub trait SubtreeSource {
    /// Hash of the perfect subtree at (`level`, `index`).
    fn subtree(&self, level: u32, index: u64) -> Result<Hash>;
}

impl SubtreeSource for [Hash] {
    fn subtree(&self, level: u32, index: u64) -> Result<Hash> {
        let width = 1u64 << level;
        let start = index.checked_mul(width).ok_or_else(|| Error::InvalidInput("subtree index overflows".into()))?;
        let end = start + width;
        if end > self.len() as u64 {
            return Err(Error::InvalidInput("subtree lies outside the tree".into()));
        }
        Ok(mth_slice(&self[start as usize..end as usize]))
    }
}

impl SubtreeSource for Vec<Hash> {
    fn subtree(&self, level: u32, index: u64) -> Result<Hash> {
        self.as_slice().subtree(level, index)
    }
}

/// Merkle tree hash of a slice of leaf hashes, computed directly.
fn mth_slice(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_pow2_below(n as u64) as usize;
            node_hash(&mth_slice(&leaves[..k]), &mth_slice(&leaves[k..]))
        }
    }
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn largest_pow2_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Merkle tree hash of leaves `[start, end)` using the perfect subtrees of `src`.
///
/// In RFC 6962 recursion every range starts at a multiple of the largest power of two not above
/// its width, so its left part is always a perfect, aligned subtree: O(log n) lookups.
fn mth<S: SubtreeSource + ?Sized>(src: &S, start: u64, end: u64) -> Result<Hash> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return src.subtree(level, start >> level);
    }
    let k = largest_pow2_below(n);
    Ok(node_hash(&mth(src, start, start + k)?, &mth(src, start + k, end)?))
}

/// Root of the first `size` leaves of `src`.
pub fn root_from<S: SubtreeSource + ?Sized>(src: &S, size: u64) -> Result<Hash> {
    mth(src, 0, size)
}

/// Root of a list of leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    mth_slice(leaves)
}

/// Inclusion proof (RFC 6962 `PATH`) of leaf `index` in the tree of the first `size` leaves of
/// `src`, nodes ordered from the leaf up.
pub fn inclusion_proof_from<S: SubtreeSource + ?Sized>(src: &S, index: u64, size: u64) -> Result<Vec<Hash>> {
    if index >= size {
        return Err(Error::InvalidInput(format!("leaf index {index} is not below tree size {size}")));
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path<S: SubtreeSource + ?Sized>(src: &S, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<()> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = largest_pow2_below(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(mth(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(mth(src, start, start + k)?);
    }
    Ok(())
}

/// Inclusion proof of leaf `index` in the tree of all `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>> {
    inclusion_proof_from(leaves, index, leaves.len() as u64)
}

/// Consistency proof (RFC 6962 `PROOF`) from the tree of the first `old_size` leaves to the tree
/// of the first `new_size` leaves of `src`. Empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof_from<S: SubtreeSource + ?Sized>(src: &S, old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
    if old_size > new_size {
        return Err(Error::InvalidInput(format!("old tree size {old_size} is larger than new size {new_size}")));
    }
    let mut out = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(out);
    }
    subproof(src, old_size, 0, new_size, true, &mut out)?;
    Ok(out)
}

fn subproof<S: SubtreeSource + ?Sized>(src: &S, m: u64, start: u64, end: u64, b: bool, out: &mut Vec<Hash>) -> Result<()> {
    let n = end - start;
    if m == n {
        if !b {
            out.push(mth(src, start, end)?);
        }
        return Ok(());
    }
    let k = largest_pow2_below(n);
    if m <= k {
        subproof(src, m, start, start + k, b, out)?;
        out.push(mth(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(mth(src, start, start + k)?);
    }
    Ok(())
}

/// Consistency proof from the first `old_size` of `leaves` to all of them.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>> {
    consistency_proof_from(leaves, old_size, leaves.len() as u64)
}

/// The longest inclusion proof a tree of at most `2^64 - 1` leaves has: one node per level.
pub const MAX_INCLUSION_PROOF: usize = 64;

/// The longest consistency proof the verifier can use for such a tree: its loop consumes one node
/// per right shift of the 64-bit `new_size - 1` (64 at most), plus the first node of the path
/// when the old size is not a power of two.
pub const MAX_CONSISTENCY_PROOF: usize = 65;

/// `x >> n`, and 0 when `n` is 64 or more (no overflow panic, no masked shift count).
fn shr(x: u64, n: u32) -> u64 {
    x.checked_shr(n).unwrap_or(0)
}

fn bad(msg: &str) -> Error {
    Error::Integrity(msg.to_string())
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2) of `leaf` (a leaf *hash*) at `index` in the
/// tree of `size` leaves with root `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<()> {
    if index >= size {
        return Err(bad("inclusion proof: leaf index is not below the tree size"));
    }
    if proof.len() > MAX_INCLUSION_PROOF {
        return Err(bad("inclusion proof is longer than any tree of 2^64 - 1 leaves needs"));
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(bad("inclusion proof is too long"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            // RFC 9162: "until LSB(fn) is set or fn is 0, right-shift fn and sn equally"; one
            // shift by the count of trailing zeros instead of a loop (fn is not 0 here: fn == sn
            // and sn is not 0).
            let z = fn_.trailing_zeros();
            fn_ = shr(fn_, z);
            sn = shr(sn, z);
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(bad("inclusion proof is too short"));
    }
    if &r != root {
        return Err(bad("inclusion proof does not lead to the root"));
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2) between the tree of `old_size` leaves with
/// root `old_root` and the tree of `new_size` leaves with root `new_root`.
///
/// An old size of 0 is consistent with anything (empty proof); equal sizes need equal roots and
/// an empty proof.
pub fn verify_consistency(old_size: u64, new_size: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> Result<()> {
    if old_size > new_size {
        return Err(bad("consistency proof: the old tree is larger than the new one"));
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(bad("consistency proof between equal sizes must be empty"));
        }
        if old_root != new_root {
            return Err(bad("two checkpoints of the same size have different roots"));
        }
        return Ok(());
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(bad("consistency proof from the empty tree must be empty"));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(bad("consistency proof is empty"));
    }
    if proof.len() > MAX_CONSISTENCY_PROOF {
        return Err(bad("consistency proof is longer than any tree of 2^64 - 1 leaves needs"));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    // RFC 9162: "if LSB(fn) is set, right-shift fn and sn until LSB(fn) is not set", as one shift.
    let ones = (old_size - 1).trailing_ones();
    let mut fn_ = shr(old_size - 1, ones);
    let mut sn = shr(new_size - 1, ones);
    let mut fr = path[0];
    let mut sr = path[0];
    for c in &path[1..] {
        if sn == 0 {
            return Err(bad("consistency proof is too long"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // "until LSB(fn) is set or fn is 0": fn == sn != 0 here, or fn is odd (no shift).
            let z = fn_.trailing_zeros();
            fn_ = shr(fn_, z);
            sn = shr(sn, z);
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(bad("consistency proof is too short"));
    }
    if &fr != old_root {
        return Err(bad("consistency proof does not lead to the old root"));
    }
    if &sr != new_root {
        return Err(bad("consistency proof does not lead to the new root"));
    }
    Ok(())
}

/// A log checkpoint: origin, tree size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line (a schema-less URL-like name, unique per log).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, base64::engine::general_purpose::STANDARD.encode(self.root))
    }

    /// Parses a note body (extension lines after the root are allowed and ignored).
    pub fn parse_body(body: &str) -> Result<Checkpoint> {
        if !body.ends_with('\n') {
            return Err(Error::InvalidInput("checkpoint body does not end with a newline".into()));
        }
        let mut lines = body[..body.len() - 1].split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(Error::InvalidInput("checkpoint has no origin line".into()));
        }
        let size_s = lines.next().ok_or_else(|| Error::InvalidInput("checkpoint has no size line".into()))?;
        if size_s.is_empty() || (size_s.len() > 1 && size_s.starts_with('0')) || !size_s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::InvalidInput("checkpoint size is not a decimal number".into()));
        }
        let size: u64 = size_s.parse().map_err(|_| Error::InvalidInput("checkpoint size is out of range".into()))?;
        let root_s = lines.next().ok_or_else(|| Error::InvalidInput("checkpoint has no root line".into()))?;
        let root: Hash = base64::engine::general_purpose::STANDARD
            .decode(root_s)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| Error::InvalidInput("checkpoint root is not base64 of 32 bytes".into()))?;
        if lines.any(|l| l.is_empty()) {
            return Err(Error::InvalidInput("checkpoint extension lines must not be empty".into()));
        }
        Ok(Checkpoint { origin: origin.to_string(), size, root })
    }
}

/// C2SP signed-note key id of an Ed25519 key: the first 4 bytes of
/// `SHA-256(name || 0x0A || 0x01 || public key)`.
pub fn note_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, 0x01]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Checks a signed-note key name: non-empty, no Unicode space, no `+` (C2SP signed-note), and no
/// control character.
fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(Error::InvalidInput("a note key name must be non-empty, without spaces, '+' or control characters".into()));
    }
    Ok(())
}

/// The largest signed note accepted (C2SP signed-note: verifiers should bound a note's size).
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Formats and signs a checkpoint as a C2SP signed note, signature by `key` under `key_name`.
pub fn sign_checkpoint(cp: &Checkpoint, key_name: &str, key: &crate::identity::DeviceKey) -> String {
    let body = cp.body();
    let sig = key.sign(body.as_bytes());
    let mut blob = Vec::with_capacity(68);
    blob.extend_from_slice(&note_key_id(key_name, &key.verifying_key()));
    blob.extend_from_slice(&sig);
    format!("{body}\n\u{2014} {key_name} {}\n", base64::engine::general_purpose::STANDARD.encode(blob))
}

/// A signed note split into its text and signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, ending in a newline.
    pub text: String,
    /// `(key name, key id, signature)` per signature line.
    pub signatures: Vec<(String, [u8; 4], Vec<u8>)>,
}

/// Parses a C2SP signed note (no signature is checked here).
pub fn parse_note(note: &str) -> Result<SignedNote> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(Error::InvalidInput("signed note is larger than 1 MiB".into()));
    }
    if note.bytes().any(|b| b < 0x20 && b != b'\n') {
        return Err(Error::InvalidInput("signed note contains a control character other than newline".into()));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| Error::InvalidInput("signed note has no blank line before its signatures".into()))?;
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    if !sigs.ends_with('\n') {
        return Err(Error::InvalidInput("signed note does not end with a newline".into()));
    }
    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| Error::InvalidInput("signature line does not start with an em dash".into()))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| Error::InvalidInput("signature line has no key name".into()))?;
        check_key_name(name)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Error::InvalidInput("signature is not base64".into()))?;
        if raw.len() < 5 {
            return Err(Error::InvalidInput("signature is too short".into()));
        }
        let id = [raw[0], raw[1], raw[2], raw[3]];
        signatures.push((name.to_string(), id, raw[4..].to_vec()));
    }
    if signatures.is_empty() {
        return Err(Error::InvalidInput("signed note has no signature".into()));
    }
    Ok(SignedNote { text: text.to_string(), signatures })
}

/// Parses a signed checkpoint and verifies the signature of `key` under `key_name`; other
/// signatures are ignored. Returns the checkpoint.
pub fn verify_checkpoint(note: &str, key_name: &str, key: &VerifyingKey) -> Result<Checkpoint> {
    let parsed = parse_note(note)?;
    let id = note_key_id(key_name, key);
    let mut found = false;
    for (name, kid, sig) in &parsed.signatures {
        if name == key_name && *kid == id {
            crate::identity::verify(key, parsed.text.as_bytes(), sig)
                .map_err(|_| bad("checkpoint signature does not verify"))?;
            found = true;
        }
    }
    if !found {
        return Err(bad("checkpoint carries no signature by the expected key"));
    }
    Checkpoint::parse_body(&parsed.text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect()
    }

    #[test]
    fn rfc6962_known_roots() {
        // Certificate Transparency test vectors (leaves "", 0x00, 0x10, 0x2021, …).
        let inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            vec![0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
        ];
        let l: Vec<Hash> = inputs.iter().map(|d| leaf_hash(d)).collect();
        assert_eq!(to_hex(&empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(to_hex(&root_of(&l[..1])), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        assert_eq!(to_hex(&root_of(&l[..2])), "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125");
        assert_eq!(to_hex(&root_of(&l[..3])), "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77");
        assert_eq!(to_hex(&root_of(&l[..4])), "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7");
        assert_eq!(to_hex(&root_of(&l[..5])), "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4");
        assert_eq!(to_hex(&root_of(&l[..6])), "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef");
        assert_eq!(to_hex(&root_of(&l[..7])), "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c");
        assert_eq!(to_hex(&root_of(&l[..8])), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
    }

    #[test]
    fn every_index_and_size_up_to_64_verifies_and_roots_agree() {
        let all = leaves(64);
        for n in 1..=64usize {
            let l = &all[..n];
            let root = root_of(l);
            assert_eq!(root_from(&all, n as u64).unwrap(), root);
            for i in 0..n as u64 {
                let p = inclusion_proof(l, i).unwrap();
                assert_eq!(p, inclusion_proof_from(&all, i, n as u64).unwrap());
                verify_inclusion(i, n as u64, &l[i as usize], &p, &root).unwrap();
            }
            for m in 0..=n as u64 {
                let p = consistency_proof(l, m).unwrap();
                verify_consistency(m, n as u64, &root_of(&l[..m as usize]), &root, &p).unwrap();
            }
        }
    }

    #[test]
    fn wrong_sizes_and_roots_fail() {
        let l = leaves(13);
        let root = root_of(&l);
        let p = inclusion_proof(&l, 5).unwrap();
        assert!(verify_inclusion(5, 8, &l[5], &p, &root).is_err());
        assert!(verify_inclusion(5, 6, &l[5], &p, &root).is_err());
        assert!(verify_inclusion(6, 13, &l[5], &p, &root).is_err());
        assert!(verify_inclusion(13, 13, &l[5], &p, &root).is_err());
        let c = consistency_proof(&l, 7).unwrap();
        assert!(verify_consistency(7, 13, &root, &root, &c).is_err());
        assert!(verify_consistency(6, 13, &root_of(&l[..7]), &root, &c).is_err());
        assert!(verify_consistency(7, 7, &root_of(&l[..7]), &root, &[]).is_err());
        assert!(verify_consistency(8, 7, &root, &root, &[]).is_err());
        assert!(consistency_proof(&l, 14).is_err());
        assert!(inclusion_proof(&l, 13).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn proofs_verify_and_any_tampered_node_fails(n in 1usize..200, i_seed in any::<u64>(), m_seed in any::<u64>(), flip in any::<u8>(), node_seed in any::<usize>()) {
            let l = leaves(n);
            let root = root_of(&l);
            let i = i_seed % n as u64;
            let p = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(i, n as u64, &l[i as usize], &p, &root).is_ok());
            let bit = 1u8 << (flip % 8);
            if !p.is_empty() {
                let mut t = p.clone();
                let k = node_seed % t.len();
                t[k][(flip as usize) % 32] ^= bit;
                prop_assert!(verify_inclusion(i, n as u64, &l[i as usize], &t, &root).is_err());
                let mut short = p.clone();
                short.pop();
                prop_assert!(verify_inclusion(i, n as u64, &l[i as usize], &short, &root).is_err());
            }
            let mut long = p.clone();
            long.push(l[0]);
            prop_assert!(verify_inclusion(i, n as u64, &l[i as usize], &long, &root).is_err());
            let mut bad_leaf = l[i as usize];
            bad_leaf[0] ^= 1;
            prop_assert!(verify_inclusion(i, n as u64, &bad_leaf, &p, &root).is_err());

            let m = m_seed % (n as u64 + 1);
            let old = root_of(&l[..m as usize]);
            let c = consistency_proof(&l, m).unwrap();
            prop_assert!(verify_consistency(m, n as u64, &old, &root, &c).is_ok());
            if !c.is_empty() {
                let mut t = c.clone();
                let k = node_seed % t.len();
                t[k][(flip as usize) % 32] ^= bit;
                prop_assert!(verify_consistency(m, n as u64, &old, &root, &t).is_err());
            }
            if m > 0 && (m as usize) < n {
                let mut bad_old = old;
                bad_old[31] ^= 1;
                prop_assert!(verify_consistency(m, n as u64, &bad_old, &root, &c).is_err());
            }
        }
    }

    #[test]
    fn checkpoint_sign_parse_verify() {
        let key = crate::identity::DeviceKey::generate();
        let other = crate::identity::DeviceKey::generate();
        let cp = Checkpoint { origin: "fieldcap.example/log".into(), size: 42, root: leaf_hash(b"x") };
        let note = sign_checkpoint(&cp, "fieldcap.example/log", &key);
        assert!(note.starts_with("fieldcap.example/log\n42\n"));
        assert!(note.contains("\n\n\u{2014} fieldcap.example/log "));
        assert_eq!(verify_checkpoint(&note, "fieldcap.example/log", &key.verifying_key()).unwrap(), cp);
        assert!(verify_checkpoint(&note, "fieldcap.example/log", &other.verifying_key()).is_err());
        assert!(verify_checkpoint(&note, "other-name", &key.verifying_key()).is_err());
        let tampered = note.replacen("\n42\n", "\n43\n", 1);
        assert!(verify_checkpoint(&tampered, "fieldcap.example/log", &key.verifying_key()).is_err());
        // A second, unknown signature is ignored.
        let extra = format!("{note}\u{2014} someone AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n");
        assert_eq!(verify_checkpoint(&extra, "fieldcap.example/log", &key.verifying_key()).unwrap(), cp);
        assert!(parse_note("no blank line\n").is_err());
        assert!(Checkpoint::parse_body("o\n01\nAAAA\n").is_err());
    }

    const NAME: &str = "fieldcap.example/log";

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    /// A signature line by `key` under `name` over `text`.
    fn sig_line(text: &str, name: &str, key: &crate::identity::DeviceKey) -> String {
        let mut blob = note_key_id(name, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&key.sign(text.as_bytes()));
        format!("\u{2014} {name} {}\n", b64(&blob))
    }

    #[test]
    fn signature_lines_are_matched_on_name_and_key_id_together() {
        let key = crate::identity::DeviceKey::generate();
        let other = crate::identity::DeviceKey::generate();
        let cp = Checkpoint { origin: NAME.into(), size: 9, root: leaf_hash(b"r") };
        let body = cp.body();
        let good = sig_line(&body, NAME, &key);
        // The right name with another key's id and signature: an unknown key, to be ignored.
        let same_name_other_key = sig_line(&body, NAME, &other);
        // Another name carrying the expected key's id (for NAME) and a signature that does not
        // verify: also an unknown key (C2SP: name *and* id identify the key), to be ignored.
        let mut blob = note_key_id(NAME, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&[7u8; 64]);
        let other_name_same_id = format!("\u{2014} other.example/log {}\n", b64(&blob));
        for extra in [&same_name_other_key, &other_name_same_id] {
            for note in [format!("{body}\n{extra}{good}"), format!("{body}\n{good}{extra}")] {
                assert_eq!(verify_checkpoint(&note, NAME, &key.verifying_key()).unwrap(), cp, "{note}");
            }
            // Alone, neither is a signature by the expected key.
            let alone = format!("{body}\n{extra}");
            let e = verify_checkpoint(&alone, NAME, &key.verifying_key()).unwrap_err().to_string();
            assert!(e.contains("no signature by the expected key"), "{e}");
        }
        // A known key (name and id match) whose signature fails rejects the whole note, even when
        // a good signature follows.
        let mut blob = note_key_id(NAME, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&other.sign(body.as_bytes()));
        let forged = format!("\u{2014} {NAME} {}\n", b64(&blob));
        let e = verify_checkpoint(&format!("{body}\n{forged}{good}"), NAME, &key.verifying_key()).unwrap_err().to_string();
        assert!(e.contains("does not verify"), "{e}");
    }

    #[test]
    fn size_line_is_strict_decimal() {
        let root = b64(&leaf_hash(b"r"));
        for (size, want) in [("0", Some(0u64)), ("7", Some(7)), ("42", Some(42)), ("18446744073709551615", Some(u64::MAX))] {
            assert_eq!(Checkpoint::parse_body(&format!("o\n{size}\n{root}\n")).unwrap().size, want.unwrap());
        }
        for size in ["042", "00", "01", "+42", "-1", "-0", " 42", "42 ", "4 2", "", "4_2", "0x2a", "4.2", "1e3", "\u{0664}\u{0662}", "\u{ff14}2", "18446744073709551616", "99999999999999999999999"] {
            let e = Checkpoint::parse_body(&format!("o\n{size}\n{root}\n"));
            assert!(e.is_err(), "size line {size:?} accepted");
        }
        // The other lines.
        assert!(Checkpoint::parse_body(&format!("\n1\n{root}\n")).is_err(), "empty origin");
        assert!(Checkpoint::parse_body(&format!("o\n1\n{root}")).is_err(), "no final newline");
        assert!(Checkpoint::parse_body("o\n1\n").is_err(), "no root line");
        assert!(Checkpoint::parse_body("o\n").is_err(), "no size line");
        assert!(Checkpoint::parse_body(&format!("o\n1\n{}\n", b64(&[1u8; 31]))).is_err(), "31-byte root");
        assert!(Checkpoint::parse_body(&format!("o\n1\n{}\n", &root[..43])).is_err(), "unpadded root");
        assert!(Checkpoint::parse_body(&format!("o\n1\n{root}\n\n")).is_err(), "empty extension line");
        assert!(Checkpoint::parse_body(&format!("o\n1\n{root}\next\n\nmore\n")).is_err(), "empty extension line");
        let cp = Checkpoint::parse_body(&format!("o\n1\n{root}\next one\next two\n")).unwrap();
        assert_eq!((cp.origin.as_str(), cp.size, b64(&cp.root)), ("o", 1, root));
    }

    #[test]
    fn key_names_follow_the_signed_note_rules() {
        let sig = b64(&[5u8; 68]);
        for name in ["example.com/log", "a", "fieldcap.intake/0123abcd", "caf\u{e9}/log", "a=b/c_d-e"] {
            let n = parse_note(&format!("t\n\n\u{2014} {name} {sig}\n")).unwrap();
            assert_eq!(n.signatures[0].0, name);
            assert_eq!(n.signatures[0].1, [5u8; 4]);
            assert_eq!(n.signatures[0].2, vec![5u8; 64]);
            assert_eq!(n.text, "t\n");
        }
        for name in ["", "a+b", "+", "a\u{a0}b", "a\u{2003}b", "a\u{3000}b", "a\u{85}b", "a\u{7f}b", "a\u{9f}b"] {
            let r = parse_note(&format!("t\n\n\u{2014} {name} {sig}\n"));
            assert!(r.is_err(), "key name {name:?} accepted");
        }
        // ASCII control characters (other than newline) are refused anywhere in a note.
        for bad in ["a\tb", "a\rb", "a\u{0}b", "a\u{1b}b"] {
            assert!(parse_note(&format!("t\n\n\u{2014} {bad} {sig}\n")).is_err(), "{bad:?} in a key name");
            assert!(parse_note(&format!("t{bad}\n\n\u{2014} k {sig}\n")).is_err(), "{bad:?} in the text");
        }
        // A space inside a name cannot be told from the separator: the rest is not base64.
        assert!(parse_note(&format!("t\n\n\u{2014} a b {sig}\n")).is_err());
    }

    #[test]
    fn signatures_of_four_bytes_or_fewer_are_refused_without_panic() {
        let key = crate::identity::DeviceKey::generate();
        let cp = Checkpoint { origin: NAME.into(), size: 1, root: leaf_hash(b"r") };
        let body = cp.body();
        let id = note_key_id(NAME, &key.verifying_key());
        for len in 0..=4usize {
            let raw = &id[..len];
            let note = format!("{body}\n\u{2014} {NAME} {}\n", b64(raw));
            let e = parse_note(&note).unwrap_err().to_string();
            assert!(e.contains("too short"), "{len} bytes: {e}");
            assert!(verify_checkpoint(&note, NAME, &key.verifying_key()).is_err());
        }
        // Five bytes: a well-formed line (any algorithm), but not an Ed25519 signature.
        let mut raw = id.to_vec();
        raw.push(0);
        let note = format!("{body}\n\u{2014} {NAME} {}\n", b64(&raw));
        assert_eq!(parse_note(&note).unwrap().signatures[0].2, vec![0u8]);
        let e = verify_checkpoint(&note, NAME, &key.verifying_key()).unwrap_err().to_string();
        assert!(e.contains("does not verify"), "{e}");
    }

    #[test]
    fn signed_notes_up_to_one_mib_are_read_and_larger_ones_refused() {
        let key = crate::identity::DeviceKey::generate();
        let cp = Checkpoint { origin: NAME.into(), size: 3, root: leaf_hash(b"r") };
        let sig_len = sig_line("x", NAME, &key).len();
        // Body with one extension line sized so the whole note is exactly MAX_NOTE_BYTES.
        let base = cp.body().len() + 1 + 1 + sig_len; // body, ext newline, blank line, signature
        let ext = "e".repeat(MAX_NOTE_BYTES - base);
        let body = format!("{}{ext}\n", cp.body());
        let note = format!("{body}\n{}", sig_line(&body, NAME, &key));
        assert_eq!(note.len(), MAX_NOTE_BYTES);
        assert_eq!(verify_checkpoint(&note, NAME, &key.verifying_key()).unwrap(), cp);
        let body = format!("{}{ext}e\n", cp.body());
        let note = format!("{body}\n{}", sig_line(&body, NAME, &key));
        assert_eq!(note.len(), MAX_NOTE_BYTES + 1);
        let e = verify_checkpoint(&note, NAME, &key.verifying_key()).unwrap_err().to_string();
        assert!(e.contains("larger than 1 MiB"), "{e}");
    }

    #[test]
    fn note_structure_is_checked() {
        let sig = b64(&[5u8; 68]);
        assert!(parse_note(&format!("t\n\n\u{2014} k {sig}")).is_err(), "no final newline");
        assert!(parse_note("t\n\n").is_err(), "no signature line");
        assert!(parse_note(&format!("t\n\n- k {sig}\n")).is_err(), "hyphen, not em dash");
        assert!(parse_note(&format!("t\n\n\u{2014} k {sig}\n\n")).is_err(), "blank line after signatures");
        assert!(parse_note("t\n\n\u{2014} k-only-a-name\n").is_err(), "no signature");
        assert!(parse_note("t\n\n\u{2014} k not*base64\n").is_err());
        // The text may hold blank lines; the last blank line separates the signatures.
        let n = parse_note(&format!("a\n\nb\n\n\u{2014} k {sig}\n\u{2014} l {sig}\n")).unwrap();
        assert_eq!(n.text, "a\n\nb\n");
        assert_eq!(n.signatures.len(), 2);
    }

    /// A tree with leaves repeating with period 4 (`leaf_hash([i % 4])`): every perfect subtree of
    /// level >= 2 has the same hash, so subtrees, roots and proofs of trees of up to `2^64 - 1`
    /// leaves cost O(64) hashes. Levels 0 and 1 still depend on the position.
    struct Periodic;

    impl SubtreeSource for Periodic {
        fn subtree(&self, level: u32, index: u64) -> Result<Hash> {
            let leaf = |i: u64| leaf_hash(&[(i % 4) as u8]);
            let mut h = match level {
                0 => return Ok(leaf(index)),
                1 => return Ok(node_hash(&leaf(2 * (index % 2)), &leaf(2 * (index % 2) + 1))),
                _ => node_hash(&node_hash(&leaf(0), &leaf(1)), &node_hash(&leaf(2), &leaf(3))),
            };
            for _ in 2..level {
                h = node_hash(&h, &h);
            }
            Ok(h)
        }
    }

    #[test]
    fn proofs_in_trees_of_up_to_2_pow_64_minus_1_leaves_verify() {
        let src = Periodic;
        let small: Vec<Hash> = (0..37u64).map(|i| src.subtree(0, i).unwrap()).collect();
        // The periodic source agrees with a real tree.
        assert_eq!(root_from(&src, 37).unwrap(), root_of(&small));
        let n = u64::MAX;
        let root = root_from(&src, n).unwrap();
        for index in [0, 1, 2, 5, 1 << 32, (1 << 63) - 1, 1 << 63, n - 3, n - 2, n - 1] {
            let p = inclusion_proof_from(&src, index, n).unwrap();
            assert!(p.len() <= MAX_INCLUSION_PROOF);
            let leaf = src.subtree(0, index).unwrap();
            verify_inclusion(index, n, &leaf, &p, &root).unwrap();
            let mut long = p.clone();
            long.push(leaf);
            assert!(verify_inclusion(index, n, &leaf, &long, &root).is_err());
            if index % 4 != 3 {
                // A neighbour's leaf at this index (leaves repeat with period 4, so only a
                // different residue changes the leaf).
                let wrong = src.subtree(0, index + 1).unwrap();
                assert!(verify_inclusion(index, n, &wrong, &p, &root).is_err());
            }
        }
        // The leftmost leaf of the largest tree has a 64-node path, every sibling on its right.
        let p = inclusion_proof_from(&src, 0, n).unwrap();
        assert_eq!(p.len(), MAX_INCLUSION_PROOF);
        let folded = p.iter().fold(src.subtree(0, 0).unwrap(), |r, s| node_hash(&r, s));
        assert_eq!(folded, root);

        for (old, new) in [(1, n), (3, n), (5, n), (1 << 63, n), ((1 << 63) + 1, n), (n - 1, n), (3, 1 << 63), (6, 1 << 40)] {
            let p = consistency_proof_from(&src, old, new).unwrap();
            assert!(p.len() <= MAX_CONSISTENCY_PROOF, "{old}->{new}: {}", p.len());
            let (ro, rn) = (root_from(&src, old).unwrap(), root_from(&src, new).unwrap());
            verify_consistency(old, new, &ro, &rn, &p).unwrap();
            let mut long = p.clone();
            long.push(ro);
            assert!(verify_consistency(old, new, &ro, &rn, &long).is_err());
        }
        // Old size 3 into the largest tree needs the longest proof the verifier accepts.
        assert_eq!(consistency_proof_from(&src, 3, n).unwrap().len(), MAX_CONSISTENCY_PROOF);
    }

    #[test]
    fn hostile_sizes_indices_and_proof_lengths_fail_fast() {
        let h = leaf_hash(b"h");
        let huge = vec![h; 1_000_000];
        for (index, size) in [(0, 0), (5, 0), (u64::MAX, u64::MAX), (u64::MAX, 0), (7, 7), (8, 7)] {
            let e = verify_inclusion(index, size, &h, &[h], &h).unwrap_err().to_string();
            assert!(e.contains("not below the tree size"), "{index}/{size}: {e}");
        }
        for size in [1, 2, 3, 1 << 40, u64::MAX] {
            for len in [MAX_INCLUSION_PROOF + 1, huge.len()] {
                let e = verify_inclusion(0, size, &h, &huge[..len], &h).unwrap_err().to_string();
                assert!(e.contains("longer than any tree"), "{size}/{len}: {e}");
            }
            // Longer than this tree needs (but within 64): refused as too long.
            if size < 1 << 32 {
                let e = verify_inclusion(0, size, &h, &huge[..MAX_INCLUSION_PROOF], &h).unwrap_err().to_string();
                assert!(e.contains("too long"), "{size}: {e}");
            }
            // A one-leaf tree needs no proof; a bigger one does.
            if size > 1 {
                assert!(verify_inclusion(size - 1, size, &h, &[], &h).unwrap_err().to_string().contains("too short"));
            }
        }
        verify_inclusion(0, 1, &h, &[], &h).unwrap();
        for (old, new) in [(1, 2), (3, u64::MAX), (1 << 63, u64::MAX), (u64::MAX - 1, u64::MAX), (5, 1 << 20)] {
            for len in [MAX_CONSISTENCY_PROOF + 1, huge.len()] {
                let e = verify_consistency(old, new, &h, &h, &huge[..len]).unwrap_err().to_string();
                assert!(e.contains("longer than any tree"), "{old}->{new}/{len}: {e}");
            }
            let e = verify_consistency(old, new, &h, &h, &huge[..MAX_CONSISTENCY_PROOF]).unwrap_err().to_string();
            assert!(e.contains("too long") || e.contains("does not lead"), "{old}->{new}: {e}");
        }
        assert!(verify_consistency(u64::MAX, u64::MAX, &h, &h, &[]).is_ok());
        assert!(verify_consistency(u64::MAX, u64::MAX, &h, &leaf_hash(b"other"), &[]).is_err());
        assert!(verify_consistency(u64::MAX, u64::MAX, &h, &h, &[h]).is_err());
        assert!(verify_consistency(u64::MAX, u64::MAX - 1, &h, &h, &[]).is_err());
        assert!(verify_consistency(0, u64::MAX, &h, &h, &[]).is_ok());
        assert!(verify_consistency(0, u64::MAX, &h, &h, &[h]).is_err());
        assert!(verify_consistency(1, u64::MAX, &h, &h, &[]).is_err());
        assert!(inclusion_proof_from(&Periodic, u64::MAX, u64::MAX).is_err());
        assert!(consistency_proof_from(&Periodic, u64::MAX, 3).is_err());
    }

    #[test]
    fn hashes_and_proofs_in_hex() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        assert_eq!(to_hex(&a).len(), 64);
        assert_eq!(from_hex(&to_hex(&a), "x").unwrap(), a);
        let hexes = proof_to_hex(&[a, b]);
        assert_eq!(hexes, vec![to_hex(&a), to_hex(&b)]);
        assert_eq!(proof_from_hex(&hexes).unwrap(), vec![a, b]);
        assert!(proof_from_hex(&[]).unwrap().is_empty());
        assert!(proof_to_hex(&[]).is_empty());
        assert!(from_hex("zz", "the root").unwrap_err().to_string().contains("the root is not hex"));
        assert!(from_hex(&to_hex(&a)[..62], "the root").unwrap_err().to_string().contains("the root is not 32 bytes"));
        let e = proof_from_hex(&[to_hex(&a), "0g".repeat(32)]).unwrap_err().to_string();
        assert!(e.contains("proof node 1 is not hex"), "{e}");
    }

    #[test]
    fn key_id_matches_the_signed_note_definition() {
        // Key id = SHA-256(name || "\n" || 0x01 || key)[:4], computed here by hand.
        let key = crate::identity::DeviceKey::generate();
        let vk = key.verifying_key();
        let mut data = b"example.com/log\n\x01".to_vec();
        data.extend_from_slice(vk.as_bytes());
        let d = Sha256::digest(&data);
        assert_eq!(note_key_id("example.com/log", &vk), [d[0], d[1], d[2], d[3]]);
    }
}
