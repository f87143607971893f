//! Live-capture fragment records (`fieldcap.fragment/1`) and the server's acknowledgement
//! (`fieldcap.fragment-ack/1`).
//!
//! A live recording is one fragmented MP4 file that grows while the camera runs: first the
//! initialization segment (`ftyp` + `moov`, fragment index 0), then one media fragment (`moof` +
//! `mdat`) every couple of seconds. The device seals each piece the moment it has it: it appends
//! the bytes durably, continues the SHA-256 and BLAKE3 of the whole file, and signs a
//! **fragment record** naming the piece (index, byte range, its own digests), the whole file so
//! far (length and both digests of bytes `0..offset+bytes`), the capture time, the latest location
//! fix, and `prev` — the SHA-256 of the previous record's bytes. The records form a chain per
//! recording, so a prefix of the recording (a phone taken mid-recording) is provable on its own:
//! every record is signed, each follows the last, and the last names the digests of the whole
//! prefix, which `head -c N | sha256sum` (or `b3sum`) reproduces.
//!
//! The finished recording's ordinary `fieldcap.manifest/1` names the head of the chain
//! ([`crate::manifest::FragmentChain`]): `count` records, the last one's SHA-256.
//!
//! ```
//! use fieldcap_evidence::fragment::{FragmentRecord, ChainCheck};
//! use fieldcap_evidence::identity::DeviceKey;
//! let key = DeviceKey::generate();
//! let data = b"0123456789";
//! let rec = FragmentRecord::first("0192f0c8-8b5e-7c3a-9d2e-1f2a3b4c5d6e", key.device_id(), "video/mp4", &data[..4], "2026-11-30T12:00:00.000Z");
//! let body = rec.to_canonical_bytes().unwrap();
//! let sig = key.sign(&body);
//! let mut check = ChainCheck::new(&key.verifying_key());
//! check.push(&body, &sig).unwrap();
//! check.push_bytes(&data[..4]).unwrap();
//! assert_eq!(check.summary().bytes, 4);
//! ```

use crate::error::{Error, Result};
use crate::hashing::Digests;
use crate::track::TrackPoint;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The fragment record type string.
pub const FRAGMENT_TYPE: &str = "fieldcap.fragment/1";
/// The acknowledgement type string.
pub const FRAGMENT_ACK_TYPE: &str = "fieldcap.fragment-ack/1";
/// The largest fragment a record may name (64 MiB: a 2 s fragment at 1080p is 1–2 MB; a 4K
/// fragment with a long keyframe interval stays well below).
pub const MAX_FRAGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The most fragments one recording may have (at 2 s each, more than 11 days).
pub const MAX_FRAGMENTS: u64 = 500_000;
/// The largest record accepted (bytes of canonical JSON).
pub const MAX_RECORD_BYTES: usize = 4 * 1024;

/// One signed fragment record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentRecord {
    /// Always [`FRAGMENT_TYPE`].
    #[serde(rename = "type")]
    pub kind_type: String,
    /// The item the recording becomes (UUIDv7): the finished manifest's `clip_id`.
    pub clip_id: String,
    /// Device id (32 hex).
    pub device_id: String,
    /// MIME type of the recording (`video/mp4`, `audio/mp4`).
    pub mime: String,
    /// 0 for the initialization segment, then 1, 2, … per media fragment.
    pub index: u64,
    /// First byte of this piece in the recording file.
    pub offset: u64,
    /// Length of this piece.
    pub bytes: u64,
    /// SHA-256 hex of this piece.
    pub sha256: String,
    /// BLAKE3 hex of this piece.
    pub blake3: String,
    /// Length of the recording so far (`offset + bytes`).
    pub total_bytes: u64,
    /// SHA-256 hex of bytes `0..total_bytes` of the recording.
    pub total_sha256: String,
    /// BLAKE3 hex of bytes `0..total_bytes` of the recording.
    pub total_blake3: String,
    /// When the piece was sealed (device clock, RFC 3339 UTC ms).
    pub captured_at: String,
    /// The latest location fix at that time, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<TrackPoint>,
    /// SHA-256 hex of the previous record's bytes; `None` for index 0.
    pub prev: Option<String>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn bad<T>(m: impl Into<String>) -> Result<T> {
    Err(Error::InvalidInput(format!("fragment record: {}", m.into())))
}

impl FragmentRecord {
    /// The record of a recording's first piece (the initialization segment), for `data`.
    pub fn first(clip_id: &str, device_id: &str, mime: &str, data: &[u8], captured_at: &str) -> FragmentRecord {
        let d = Digests::of_bytes(data);
        FragmentRecord {
            kind_type: FRAGMENT_TYPE.into(),
            clip_id: clip_id.into(),
            device_id: device_id.into(),
            mime: mime.into(),
            index: 0,
            offset: 0,
            bytes: d.bytes,
            sha256: d.sha256_hex(),
            blake3: d.blake3_hex(),
            total_bytes: d.bytes,
            total_sha256: d.sha256_hex(),
            total_blake3: d.blake3_hex(),
            captured_at: captured_at.into(),
            fix: None,
            prev: None,
        }
    }

    /// Canonical bytes (to be signed and kept).
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        Ok(crate::canonical::to_vec_of(self)?)
    }

    /// Strictly parses record bytes: canonical JSON in its one spelling, every field well-formed.
    pub fn parse(bytes: &[u8]) -> Result<FragmentRecord> {
        if bytes.len() > MAX_RECORD_BYTES {
            return bad("larger than 4 KiB");
        }
        let r: FragmentRecord = serde_json::from_slice(bytes).map_err(|e| Error::InvalidInput(format!("fragment record does not match fieldcap.fragment/1: {e}")))?;
        r.validate()?;
        if r.to_canonical_bytes()? != bytes {
            return bad("not in its one canonical spelling (sorted keys, no whitespace, no explicit null for an absent fix)");
        }
        Ok(r)
    }

    /// Checks every field on its own (the chain is checked by [`ChainCheck`]).
    pub fn validate(&self) -> Result<()> {
        if self.kind_type != FRAGMENT_TYPE {
            return bad("type is not fieldcap.fragment/1");
        }
        match uuid::Uuid::parse_str(&self.clip_id) {
            Ok(u) if u.get_version_num() == 7 && u.hyphenated().to_string() == self.clip_id => {}
            _ => return bad("clip_id is not a lowercase hyphenated UUIDv7"),
        }
        if !is_hex(&self.device_id, 32) {
            return bad("device_id is not 32 lowercase hex digits");
        }
        if !matches!(self.mime.as_str(), "video/mp4" | "audio/mp4" | "video/quicktime") {
            return bad("mime must be video/mp4, audio/mp4 or video/quicktime (a fragmented ISO BMFF file)");
        }
        if self.index >= MAX_FRAGMENTS {
            return bad(format!("index is {MAX_FRAGMENTS} or more"));
        }
        if self.bytes == 0 || self.bytes > MAX_FRAGMENT_BYTES {
            return bad("bytes must be between 1 and 64 MiB");
        }
        if self.offset.checked_add(self.bytes) != Some(self.total_bytes) {
            return bad("total_bytes is not offset + bytes");
        }
        if (self.index == 0) != (self.offset == 0) {
            return bad("only the initialization segment (index 0) starts at offset 0");
        }
        for (name, v) in [("sha256", &self.sha256), ("blake3", &self.blake3), ("total_sha256", &self.total_sha256), ("total_blake3", &self.total_blake3)] {
            if !is_hex(v, 64) {
                return bad(format!("{name} is not 64 lowercase hex digits"));
            }
        }
        if self.index == 0 && (self.sha256 != self.total_sha256 || self.blake3 != self.total_blake3) {
            return bad("the initialization segment's digests must equal the totals");
        }
        crate::time::parse_canonical(&self.captured_at, "captured_at")?;
        if let Some(f) = &self.fix {
            let mut f2 = f.clone();
            f2.validate("fix")?;
            if &f2 != f {
                return bad("fix is not in canonical form");
            }
        }
        match (&self.prev, self.index) {
            (None, 0) => {}
            (Some(p), i) if i > 0 && is_hex(p, 64) => {}
            _ => return bad("prev must be null for index 0 and a SHA-256 hex otherwise"),
        }
        Ok(())
    }

    /// Whether `next` may follow this record in the same chain (ids, index, offset, `prev`, time).
    /// `self_sha256` is the SHA-256 hex of this record's bytes.
    pub fn check_successor(&self, self_sha256: &str, next: &FragmentRecord) -> Result<()> {
        if next.clip_id != self.clip_id || next.device_id != self.device_id || next.mime != self.mime {
            return bad(format!("record {} belongs to another recording", next.index));
        }
        if next.index != self.index + 1 {
            return bad(format!("record {} follows record {} (expected {})", next.index, self.index, self.index + 1));
        }
        if next.offset != self.total_bytes {
            return bad(format!("record {} starts at byte {} but the recording so far ends at {}", next.index, next.offset, self.total_bytes));
        }
        if next.prev.as_deref() != Some(self_sha256) {
            return bad(format!("record {}'s prev does not name record {}", next.index, self.index));
        }
        if crate::time::parse_canonical(&next.captured_at, "captured_at")? < crate::time::parse_canonical(&self.captured_at, "captured_at")? {
            return bad(format!("record {} was captured before record {}", next.index, self.index));
        }
        Ok(())
    }
}

/// The head of a fragment chain, as the finished manifest names it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainSummary {
    /// Records checked.
    pub count: u64,
    /// SHA-256 hex of the last record's bytes.
    pub head: String,
    /// Bytes of the recording the chain covers.
    pub bytes: u64,
    /// Capture time of the last record.
    pub last_captured_at: String,
    /// The last record.
    pub last: FragmentRecord,
}

/// Checks a fragment chain record by record (signature, strict form, succession) and, fed the
/// recording's bytes in order, each piece's digests and the running totals.
///
/// Records and bytes are pushed independently: [`ChainCheck::push`] a record, then
/// [`ChainCheck::push_bytes`] its piece (any split). [`ChainCheck::finish`] checks that the bytes
/// fed end exactly at the last record's end.
pub struct ChainCheck {
    key: VerifyingKey,
    records: Vec<(FragmentRecord, String)>,
    // Bytes side.
    piece: usize,
    piece_sha: sha2::Sha256,
    piece_b3: blake3::Hasher,
    piece_len: u64,
    total_sha: sha2::Sha256,
    total_b3: blake3::Hasher,
    total_len: u64,
}

impl ChainCheck {
    /// A check with the device's public key.
    pub fn new(key: &VerifyingKey) -> ChainCheck {
        ChainCheck {
            key: *key,
            records: Vec::new(),
            piece: 0,
            piece_sha: sha2::Sha256::new(),
            piece_b3: blake3::Hasher::new(),
            piece_len: 0,
            total_sha: sha2::Sha256::new(),
            total_b3: blake3::Hasher::new(),
            total_len: 0,
        }
    }

    /// Checks one record (its signature, its form, and that it follows the previous one).
    pub fn push(&mut self, body: &[u8], sig: &[u8]) -> Result<&FragmentRecord> {
        crate::identity::verify(&self.key, body, sig).map_err(|_| Error::Integrity(format!("fragment record {} has a bad signature", self.records.len())))?;
        let r = FragmentRecord::parse(body)?;
        let sha = crate::hashing::sha256_hex(body);
        match self.records.last() {
            None if r.index != 0 => return bad(format!("the chain starts at record {}, not 0", r.index)),
            None => {}
            Some((p, psha)) => p.check_successor(psha, &r)?,
        }
        if r.device_id != crate::identity::device_id_for(&self.key) {
            return bad("device_id is not the signing key's");
        }
        self.records.push((r, sha));
        Ok(&self.records[self.records.len() - 1].0)
    }

    /// Feeds recording bytes in order; each piece's digests and the totals are checked as each
    /// piece's last byte arrives. Bytes beyond the last pushed record are an error.
    pub fn push_bytes(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let Some((rec, _)) = self.records.get(self.piece) else {
                return bad(format!("the recording has bytes beyond byte {} (the end of the last record)", self.total_len));
            };
            let want = rec.bytes - self.piece_len;
            let n = (want.min(data.len() as u64)) as usize;
            let (now, rest) = data.split_at(n);
            self.piece_sha.update(now);
            self.piece_b3.update(now);
            self.total_sha.update(now);
            self.total_b3.update(now);
            self.piece_len += n as u64;
            self.total_len += n as u64;
            data = rest;
            if self.piece_len == rec.bytes {
                let psha = hex::encode(std::mem::take(&mut self.piece_sha).finalize());
                let pb3 = self.piece_b3.finalize().to_hex().to_string();
                self.piece_b3.reset();
                let tsha = hex::encode(self.total_sha.clone().finalize());
                let tb3 = self.total_b3.finalize().to_hex().to_string();
                if psha != rec.sha256 || pb3 != rec.blake3 {
                    return Err(Error::Integrity(format!("fragment {}'s bytes do not match its record's digests", rec.index)));
                }
                if tsha != rec.total_sha256 || tb3 != rec.total_blake3 {
                    return Err(Error::Integrity(format!("the recording up to fragment {} does not match the record's running digests", rec.index)));
                }
                self.piece += 1;
                self.piece_len = 0;
            }
        }
        Ok(())
    }

    /// Number of records pushed.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The chain so far. Panics never: an empty chain has count 0 and an empty head.
    pub fn summary(&self) -> ChainSummary {
        match self.records.last() {
            Some((r, sha)) => ChainSummary { count: self.records.len() as u64, head: sha.clone(), bytes: r.total_bytes, last_captured_at: r.captured_at.clone(), last: r.clone() },
            None => ChainSummary {
                count: 0,
                head: String::new(),
                bytes: 0,
                last_captured_at: String::new(),
                last: FragmentRecord::first("00000000-0000-7000-8000-000000000000", "", "video/mp4", b"", ""),
            },
        }
    }

    /// Ends the check: the bytes fed must end exactly where the last record ends.
    pub fn finish(self) -> Result<ChainSummary> {
        if self.records.is_empty() {
            return bad("the chain has no record");
        }
        let s = self.summary();
        if self.total_len != s.bytes || self.piece_len != 0 {
            return Err(Error::Integrity(format!("the recording holds {} bytes but its fragment chain covers {}", self.total_len, s.bytes)));
        }
        Ok(s)
    }
}

/// The server's signed acknowledgement of one fragment: it holds the piece durably and the
/// record continues the chain it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentAck {
    /// Always [`FRAGMENT_ACK_TYPE`].
    #[serde(rename = "type")]
    pub kind_type: String,
    /// The recording's item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// The fragment acknowledged.
    pub index: u64,
    /// SHA-256 hex of the record's bytes.
    pub record_sha256: String,
    /// Bytes of the recording the server holds through this fragment.
    pub total_bytes: u64,
    /// When the server stored it (RFC 3339 UTC ms).
    pub received_at: String,
    /// The server key's id.
    pub server_key_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::DeviceKey;

    const CLIP: &str = "0192f0c8-8b5e-7c3a-9d2e-1f2a3b4c5d6e";

    /// Builds a signed chain over `pieces`.
    fn chain(key: &DeviceKey, pieces: &[&[u8]]) -> Vec<(Vec<u8>, [u8; 64])> {
        let mut out = Vec::new();
        let mut whole = Vec::new();
        let mut prev: Option<(FragmentRecord, String)> = None;
        for (i, p) in pieces.iter().enumerate() {
            let offset = whole.len() as u64;
            whole.extend_from_slice(p);
            let d = Digests::of_bytes(p);
            let t = Digests::of_bytes(&whole);
            let r = FragmentRecord {
                kind_type: FRAGMENT_TYPE.into(),
                clip_id: CLIP.into(),
                device_id: key.device_id().into(),
                mime: "video/mp4".into(),
                index: i as u64,
                offset,
                bytes: d.bytes,
                sha256: d.sha256_hex(),
                blake3: d.blake3_hex(),
                total_bytes: t.bytes,
                total_sha256: t.sha256_hex(),
                total_blake3: t.blake3_hex(),
                captured_at: format!("2026-11-30T12:00:{:02}.000Z", i * 2),
                fix: None,
                prev: prev.as_ref().map(|p| p.1.clone()),
            };
            let b = r.to_canonical_bytes().unwrap();
            let s = key.sign(&b);
            prev = Some((r, crate::hashing::sha256_hex(&b)));
            out.push((b, s));
        }
        out
    }

    #[test]
    fn a_whole_chain_verifies_with_its_bytes_split_anywhere() {
        let key = DeviceKey::generate();
        let pieces: [&[u8]; 3] = [b"init", b"fragment-one", b"fragment-two!"];
        let recs = chain(&key, &pieces);
        let all: Vec<u8> = pieces.concat();
        for split in [1usize, 3, 7, all.len()] {
            let mut c = ChainCheck::new(&key.verifying_key());
            for (b, s) in &recs {
                c.push(b, s).unwrap();
            }
            for part in all.chunks(split) {
                c.push_bytes(part).unwrap();
            }
            let s = c.finish().unwrap();
            assert_eq!(s.count, 3);
            assert_eq!(s.bytes, all.len() as u64);
            assert_eq!(s.head, crate::hashing::sha256_hex(&recs[2].0));
        }
    }

    #[test]
    fn a_prefix_of_the_chain_verifies_on_its_own() {
        let key = DeviceKey::generate();
        let pieces: [&[u8]; 3] = [b"init", b"one", b"two"];
        let recs = chain(&key, &pieces);
        let mut c = ChainCheck::new(&key.verifying_key());
        c.push(&recs[0].0, &recs[0].1).unwrap();
        c.push(&recs[1].0, &recs[1].1).unwrap();
        c.push_bytes(b"initone").unwrap();
        assert_eq!(c.finish().unwrap().bytes, 7);
    }

    #[test]
    fn broken_chains_are_refused_naming_the_fault() {
        let key = DeviceKey::generate();
        let recs = chain(&key, &[b"init", b"one", b"two"]);
        let other = DeviceKey::generate();
        // Out of order.
        let mut c = ChainCheck::new(&key.verifying_key());
        c.push(&recs[0].0, &recs[0].1).unwrap();
        assert!(c.push(&recs[2].0, &recs[2].1).unwrap_err().to_string().contains("follows record 0"));
        // Starting mid-chain.
        let mut c = ChainCheck::new(&key.verifying_key());
        assert!(c.push(&recs[1].0, &recs[1].1).unwrap_err().to_string().contains("starts at record 1"));
        // Another key's signature.
        let mut c = ChainCheck::new(&other.verifying_key());
        assert!(c.push(&recs[0].0, &recs[0].1).unwrap_err().to_string().contains("bad signature"));
        // A forged record (one byte changed, re-signed by nobody).
        let mut forged = recs[1].0.clone();
        let pos = forged.len() - 3;
        forged[pos] ^= 1;
        let mut c = ChainCheck::new(&key.verifying_key());
        c.push(&recs[0].0, &recs[0].1).unwrap();
        assert!(c.push(&forged, &recs[1].1).is_err());
        // A fragment of another recording (its own chain), signed by the same key.
        let mut r = FragmentRecord::parse(&recs[1].0).unwrap();
        r.clip_id = "0192f0c8-8b5e-7c3a-9d2e-000000000000".into();
        let b = r.to_canonical_bytes().unwrap();
        let s = key.sign(&b);
        let mut c = ChainCheck::new(&key.verifying_key());
        c.push(&recs[0].0, &recs[0].1).unwrap();
        assert!(c.push(&b, &s).unwrap_err().to_string().contains("another recording"));
    }

    #[test]
    fn altered_or_extra_bytes_are_refused() {
        let key = DeviceKey::generate();
        let recs = chain(&key, &[b"init", b"one"]);
        let mut c = ChainCheck::new(&key.verifying_key());
        for (b, s) in &recs {
            c.push(b, s).unwrap();
        }
        assert!(c.push_bytes(b"inix").unwrap_err().to_string().contains("fragment 0"));
        let mut c = ChainCheck::new(&key.verifying_key());
        for (b, s) in &recs {
            c.push(b, s).unwrap();
        }
        assert!(c.push_bytes(b"initone!").unwrap_err().to_string().contains("beyond byte 7"));
        let mut c = ChainCheck::new(&key.verifying_key());
        for (b, s) in &recs {
            c.push(b, s).unwrap();
        }
        c.push_bytes(b"initon").unwrap();
        assert!(c.finish().unwrap_err().to_string().contains("covers 7"));
    }

    #[test]
    fn records_are_strict() {
        let key = DeviceKey::generate();
        let recs = chain(&key, &[b"init", b"one"]);
        let mut r = FragmentRecord::parse(&recs[1].0).unwrap();
        r.total_bytes += 1;
        assert!(r.validate().unwrap_err().to_string().contains("offset + bytes"));
        let mut r = FragmentRecord::parse(&recs[1].0).unwrap();
        r.prev = None;
        assert!(r.validate().is_err());
        let spaced = String::from_utf8(recs[0].0.clone()).unwrap().replacen(',', ", ", 1);
        assert!(FragmentRecord::parse(spaced.as_bytes()).is_err());
        let mut v: serde_json::Value = serde_json::from_slice(&recs[0].0).unwrap();
        v["extra"] = serde_json::json!(1);
        assert!(FragmentRecord::parse(&crate::canonical::to_vec(&v)).is_err());
    }
}
