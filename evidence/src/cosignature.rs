//! Witness cosignatures of log checkpoints (C2SP `tlog-cosignature`, Ed25519 `cosignature/v1`),
//! signed-note verifier keys (C2SP `signed-note` vkeys) and the body of the C2SP `tlog-witness`
//! `add-checkpoint` request.
//!
//! A *witness* is an independent party (a District Attorney's office, a civil-society group)
//! that keeps, per log, the newest checkpoint it verified, and cosigns a new checkpoint only if a
//! consistency proof shows it extends that one. A checkpoint carrying cosignatures of witnesses
//! a recipient trusts cannot be one of two histories shown to different people: the witnesses
//! would have had to see both, and refuse the second.
//!
//! * A cosignature is one more signature line on the checkpoint note:
//!   `— <witness name> base64(key id || timestamp || signature)`, where the key id is
//!   `SHA-256(name || 0x0A || 0x04 || public key)[:4]` (signature type `0x04`), the timestamp
//!   is 8 bytes big-endian (POSIX seconds, below 2^63) and the Ed25519 signature is over
//!   ```text
//!   cosignature/v1
//!   time <timestamp>
//!   <the whole checkpoint body, extension lines included>
//!   ```
//!   The note stays a valid signed note: a verifier that knows only the log's key ignores the
//!   extra lines (C2SP signed-note: unknown keys are ignored).
//! * A verifier key ("vkey") is `<name>+<8 hex digits of the key id>+base64(type || key)`;
//!   type `0x01` for a log's Ed25519 checkpoint key, `0x04` for a witness's cosigning key.
//! * `add-checkpoint` sends `old <size>\n`, one base64 consistency-proof hash per line (at most
//!   63), an empty line and the checkpoint note ([`AddCheckpoint`]).
//!
//! ```
//! use fieldcap_evidence::cosignature::*;
//! use fieldcap_evidence::identity::DeviceKey;
//! use fieldcap_evidence::tlog::{leaf_hash, sign_checkpoint, Checkpoint};
//! let log = DeviceKey::generate();
//! let cp = Checkpoint { origin: "example.org/log".into(), size: 3, root: leaf_hash(b"r") };
//! let note = sign_checkpoint(&cp, "example.org/log", &log);
//! let witness = Cosigner::new("witness.example/w1", DeviceKey::generate()).unwrap();
//! let line = witness.cosign(&cp.body(), 1_700_000_000).unwrap();
//! let cosigned = append_signatures(&note, &line).unwrap();
//! let check = check_cosignatures(&cosigned, &[witness.vkey()]).unwrap();
//! assert_eq!(check.valid.len(), 1);
//! // The log's own signature still verifies on the cosigned note.
//! fieldcap_evidence::tlog::verify_checkpoint(&cosigned, "example.org/log", &log.verifying_key()).unwrap();
//! ```

use crate::error::{Error, Result};
use crate::identity::DeviceKey;
use crate::tlog::{parse_note, Hash, SignedNote};
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};
use std::fmt;

/// Signature type byte of plain Ed25519 signed-note signatures (a log's checkpoint key).
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 witness cosignatures (`cosignature/v1`).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;
/// Most consistency-proof lines an `add-checkpoint` request may carry (C2SP tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;
/// The media type of a witness's `409 Conflict` answer (its tree size and a newline).
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

/// Key id of a signed-note key: `SHA-256(name || 0x0A || type || public key)[:4]`.
pub fn key_id(name: &str, sig_type: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0A, sig_type]);
    h.update(key.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// Checks a signed-note key name: non-empty, no Unicode space, no `+`, no control character.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control()) {
        return Err(invalid("a key name must be non-empty, without spaces, '+' or control characters"));
    }
    Ok(())
}

/// A signed-note verifier key: a name, a signature type and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    /// The key name (for a log: its origin; for a witness: its name).
    pub name: String,
    /// [`SIG_TYPE_ED25519`] or [`SIG_TYPE_COSIGNATURE_V1`].
    pub sig_type: u8,
    /// The Ed25519 public key.
    pub key: VerifyingKey,
}

impl VerifierKey {
    /// A log's checkpoint key (type `0x01`) under the key name `name` (the log origin).
    pub fn log(name: &str, key: VerifyingKey) -> Result<VerifierKey> {
        check_name(name)?;
        Ok(VerifierKey { name: name.to_string(), sig_type: SIG_TYPE_ED25519, key })
    }

    /// A witness's cosigning key (type `0x04`).
    pub fn witness(name: &str, key: VerifyingKey) -> Result<VerifierKey> {
        check_name(name)?;
        Ok(VerifierKey { name: name.to_string(), sig_type: SIG_TYPE_COSIGNATURE_V1, key })
    }

    /// Parses `<name>+<hex key id>+<base64(type || key)>`; the key id must match the rest, the
    /// type must be `0x01` or `0x04`, the key 32 bytes.
    pub fn parse(vkey: &str) -> Result<VerifierKey> {
        let vkey = vkey.trim();
        // The base64 part may itself hold '+': split at the first two.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid("a verifier key has the form <name>+<key id>+<base64 key>"));
        };
        check_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(invalid("a verifier key's id is not 8 lowercase hex digits"));
        }
        let raw = b64().decode(key_b64).map_err(|_| invalid("a verifier key's key is not base64"))?;
        let (&sig_type, key) = raw.split_first().ok_or_else(|| invalid("a verifier key's key is empty"))?;
        if sig_type != SIG_TYPE_ED25519 && sig_type != SIG_TYPE_COSIGNATURE_V1 {
            return Err(invalid(format!(
                "a verifier key of signature type 0x{sig_type:02x}; only 0x01 (Ed25519) and 0x04 (Ed25519 cosignature/v1) are supported"
            )));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| invalid("a verifier key's Ed25519 key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| invalid("a verifier key's Ed25519 key is not a valid point"))?;
        let vk = VerifierKey { name: name.to_string(), sig_type, key };
        if hex::encode(vk.key_id()) != id_hex {
            return Err(invalid(format!("the verifier key of {name:?} has a key id that does not match its key")));
        }
        Ok(vk)
    }

    /// The 4-byte key id.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.sig_type, &self.key)
    }

    /// True for a witness's cosigning key.
    pub fn is_witness(&self) -> bool {
        self.sig_type == SIG_TYPE_COSIGNATURE_V1
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(self.sig_type);
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, hex::encode(self.key_id()), b64().encode(raw))
    }
}

/// The message a `cosignature/v1` signs: `cosignature/v1\ntime <timestamp>\n` and the whole
/// checkpoint body.
pub fn cosigned_message(checkpoint_body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_body}").into_bytes()
}

/// A witness's signing side: its name and Ed25519 key.
pub struct Cosigner {
    name: String,
    key: DeviceKey,
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cosigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner named `name` (a schema-less URL is recommended, e.g. `witness.example.org/w1`).
    pub fn new(name: &str, key: DeviceKey) -> Result<Cosigner> {
        check_name(name)?;
        Ok(Cosigner { name: name.to_string(), key })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key others configure to check this witness's cosignatures.
    pub fn vkey(&self) -> VerifierKey {
        VerifierKey { name: self.name.clone(), sig_type: SIG_TYPE_COSIGNATURE_V1, key: self.key.verifying_key() }
    }

    /// The cosignature line (ending in a newline) of a checkpoint body at `timestamp` (POSIX
    /// seconds, below 2^63).
    pub fn cosign(&self, checkpoint_body: &str, timestamp: u64) -> Result<String> {
        if timestamp > i64::MAX as u64 {
            return Err(invalid("a cosignature timestamp must be below 2^63"));
        }
        let sig = self.key.sign(&cosigned_message(checkpoint_body, timestamp));
        let mut raw = Vec::with_capacity(76);
        raw.extend_from_slice(&self.vkey().key_id());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig);
        Ok(format!("\u{2014} {} {}\n", self.name, b64().encode(raw)))
    }
}

/// Verifies the cosignature of `witness` on a parsed note: `Ok(Some(timestamp))` when a valid
/// one is there, `Ok(None)` when the note has no line of this key (name and key id), and an
/// error when it has one that does not verify (a forged or damaged cosignature: C2SP signed-note
/// says to reject the note).
pub fn verify_cosignature(note: &SignedNote, witness: &VerifierKey) -> Result<Option<u64>> {
    if !witness.is_witness() {
        return Err(invalid(format!("{:?} is not a witness key (signature type 0x04)", witness.name)));
    }
    let id = witness.key_id();
    let mut found = None;
    for (name, kid, sig) in &note.signatures {
        if name != &witness.name || *kid != id {
            continue;
        }
        let bad = || Error::Integrity(format!("the cosignature of witness {:?} does not verify", witness.name));
        if sig.len() != 72 {
            return Err(bad());
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&sig[..8]);
        let timestamp = u64::from_be_bytes(ts);
        if timestamp > i64::MAX as u64 {
            return Err(bad());
        }
        crate::identity::verify(&witness.key, &cosigned_message(&note.text, timestamp), &sig[8..]).map_err(|_| bad())?;
        found = Some(found.map_or(timestamp, |t: u64| t.max(timestamp)));
    }
    Ok(found)
}

/// Which of the expected witnesses cosigned a checkpoint note.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CosignatureCheck {
    /// `(witness name, timestamp)` of each valid cosignature, in the order the witnesses were given.
    pub valid: Vec<(String, u64)>,
    /// Names of the witnesses with no cosignature on the note.
    pub missing: Vec<String>,
    /// Names of the witnesses whose cosignature line does not verify.
    pub forged: Vec<String>,
}

impl CosignatureCheck {
    /// Checks a quorum: at least `threshold` valid cosignatures and none forged. The error names
    /// the missing and forged witnesses.
    pub fn require(&self, threshold: usize) -> Result<()> {
        if self.forged.is_empty() && self.valid.len() >= threshold {
            return Ok(());
        }
        let mut why = Vec::new();
        if !self.forged.is_empty() {
            why.push(format!("cosignatures that do not verify: {}", self.forged.join(", ")));
        }
        if !self.missing.is_empty() {
            why.push(format!("no cosignature of: {}", self.missing.join(", ")));
        }
        Err(Error::Integrity(format!(
            "{} of the {} required witness cosignatures verify ({})",
            self.valid.len(),
            threshold,
            why.join("; ")
        )))
    }
}

/// Checks a checkpoint note's cosignatures against each of `witnesses` (a forged line is
/// reported, not an error, so a caller can name every witness concerned). Errors only when the
/// note does not parse or a key is not a witness key.
pub fn check_cosignatures(note: &str, witnesses: &[VerifierKey]) -> Result<CosignatureCheck> {
    let parsed = parse_note(note)?;
    let mut out = CosignatureCheck::default();
    for w in witnesses {
        match verify_cosignature(&parsed, w) {
            Ok(Some(ts)) => out.valid.push((w.name.clone(), ts)),
            Ok(None) => out.missing.push(w.name.clone()),
            Err(Error::Integrity(_)) => out.forged.push(w.name.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The note with the signature `lines` (each `— name base64\n`) appended, skipping any line it
/// already carries. The note's text and existing signatures are unchanged; the result must
/// still parse as a signed note.
pub fn append_signatures(note: &str, lines: &str) -> Result<String> {
    parse_note(note)?;
    if lines.is_empty() {
        return Ok(note.to_string());
    }
    if !lines.ends_with('\n') {
        return Err(invalid("signature lines must end with a newline"));
    }
    let existing: std::collections::HashSet<&str> = note.lines().collect();
    let mut out = note.to_string();
    for line in lines[..lines.len() - 1].split('\n') {
        if !line.starts_with("\u{2014} ") {
            return Err(invalid("a signature line does not start with an em dash"));
        }
        if !existing.contains(line) && !out.ends_with(&format!("\n{line}\n")) {
            out.push_str(line);
            out.push('\n');
        }
    }
    parse_note(&out)?;
    Ok(out)
}

/// The cosignature lines of `witness` in a witness's `200` answer that verify on
/// `checkpoint_body`; other lines are ignored (C2SP tlog-witness: cosignatures from unknown keys
/// are ignored). An error when a line of this witness does not verify.
pub fn cosignature_lines_of(answer: &str, checkpoint_body: &str, witness: &VerifierKey) -> Result<String> {
    let mut kept = String::new();
    for line in answer.lines() {
        let candidate = format!("{checkpoint_body}\n{line}\n");
        let Ok(parsed) = parse_note(&candidate) else { continue };
        if verify_cosignature(&parsed, witness)?.is_some() {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(kept)
}

/// The body of a C2SP tlog-witness `add-checkpoint` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the witness is believed to hold (0 when none).
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size (empty when `old_size` is 0).
    pub proof: Vec<Hash>,
    /// The checkpoint note (signed by the log, maybe with other cosignatures).
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// `old N\n`, the proof lines, an empty line, the note.
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&b64().encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses a request body strictly: a malformed body is an `InvalidInput` error naming what
    /// is wrong (a witness answers it with 400).
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint> {
        let body = std::str::from_utf8(body).map_err(|_| invalid("the request body is not UTF-8"))?;
        let (first, mut rest) = body.split_once('\n').ok_or_else(|| invalid("the request has no old size line"))?;
        let n = first.strip_prefix("old ").ok_or_else(|| invalid("the first line is not `old <size>`"))?;
        if n.is_empty() || (n.len() > 1 && n.starts_with('0')) || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the old size is not a decimal number without leading zeroes"));
        }
        let old_size: u64 = n.parse().map_err(|_| invalid("the old size is out of range"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or_else(|| invalid("the request has no empty line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(invalid(format!("the request has more than {MAX_PROOF_LINES} consistency proof lines")));
            }
            let h: Hash = b64()
                .decode(line)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| invalid(format!("consistency proof line {} is not base64 of 32 bytes", proof.len() + 1)))?;
            proof.push(h);
        }
        parse_note(rest)?;
        Ok(AddCheckpoint { old_size, proof, checkpoint: rest.to_string() })
    }
}

/// Parses a witness's `409 Conflict` body: its tree size in decimal and a newline.
pub fn parse_tlog_size(body: &[u8]) -> Result<u64> {
    let s = std::str::from_utf8(body).ok().and_then(|s| s.strip_suffix('\n')).ok_or_else(|| invalid("the size answer is not a line"))?;
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("the size answer is not a decimal number"));
    }
    s.parse().map_err(|_| invalid("the size answer is out of range"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tlog::{leaf_hash, sign_checkpoint, verify_checkpoint, Checkpoint};

    /// A real checkpoint of a public log (arche2025h1.staging.ct.transparency.dev, a static-CT
    /// log) with the cosignatures of five public witnesses, and the verifier keys of the log's
    /// note key and of the witness remora.n621.de, as published (quoted in the tests of
    /// tlog-scales and transparency-dev/formats).
    const REAL_CHECKPOINT: &str = "arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n\n\u{2014} arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n\u{2014} arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n\u{2014} transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n\u{2014} witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n\u{2014} remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n\u{2014} witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n";
    const REAL_LOG_VKEY: &str = "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f";
    const REAL_WITNESS_VKEY: &str = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";

    #[test]
    fn a_real_cosigned_checkpoint_verifies() {
        let log = VerifierKey::parse(REAL_LOG_VKEY).unwrap();
        assert_eq!(log.sig_type, SIG_TYPE_ED25519);
        let cp = verify_checkpoint(REAL_CHECKPOINT, &log.name, &log.key).unwrap();
        assert_eq!(cp.size, 1432088532);
        let w = VerifierKey::parse(REAL_WITNESS_VKEY).unwrap();
        assert!(w.is_witness());
        assert_eq!(w.to_string(), REAL_WITNESS_VKEY);
        let check = check_cosignatures(REAL_CHECKPOINT, std::slice::from_ref(&w)).unwrap();
        assert_eq!(check.valid.len(), 1, "{check:?}");
        assert!(check.forged.is_empty() && check.missing.is_empty());
        // The timestamp is the 8 bytes after the key id ("AAAAAGoSISA" → 0x6a122120).
        assert_eq!(check.valid[0].1, 0x6a12_2120);
        // Any change of the checkpoint body breaks the cosignature.
        let changed = REAL_CHECKPOINT.replacen("1432088532", "1432088533", 1);
        let check = check_cosignatures(&changed, &[w]).unwrap();
        assert_eq!(check.forged, vec!["remora.n621.de".to_string()]);
    }

    #[test]
    fn the_signed_note_example_vkey_parses() {
        // C2SP signed-note's example key and golang.org/x/mod's sumdb/note test key.
        let vk = VerifierKey::parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k").unwrap();
        assert_eq!(hex::encode(vk.key.as_bytes()), "e932791ae6e7a840a46164c904786426d5e7821dd8b29a00d61cae72afdd4da4");
        let peter = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let vk = VerifierKey::parse(peter).unwrap();
        assert_eq!(vk.to_string(), peter);
        // The Go note example, signed by that key (type 0x01, key id = the tlog module's).
        let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        let note = format!("{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n");
        let parsed = parse_note(&note).unwrap();
        assert_eq!(parsed.signatures[0].1, vk.key_id());
        assert_eq!(crate::tlog::note_key_id("PeterNeumann", &vk.key), vk.key_id());
        crate::identity::verify(&vk.key, parsed.text.as_bytes(), &parsed.signatures[0].2).unwrap();
        // A cosignature verifier refuses a plain key.
        assert!(verify_cosignature(&parsed, &vk).is_err());
    }

    #[test]
    fn malformed_vkeys_are_refused() {
        let good = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        for bad in [
            "",
            "PeterNeumann",
            "PeterNeumann+c74f20a3",
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
            "PeterNeumann+c74f20a3+A3pc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ] {
            assert!(VerifierKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(VerifierKey::parse(good).is_ok());
        // Every truncation fails.
        for i in 0..good.len() {
            assert!(VerifierKey::parse(&good[..i]).is_err());
        }
    }

    fn setup() -> (DeviceKey, Checkpoint, String, Cosigner, Cosigner) {
        let log = DeviceKey::generate();
        let cp = Checkpoint { origin: "example.org/log".into(), size: 9, root: leaf_hash(b"root") };
        let note = sign_checkpoint(&cp, "example.org/log", &log);
        let a = Cosigner::new("witness.example/a", DeviceKey::generate()).unwrap();
        let b = Cosigner::new("witness.example/b", DeviceKey::generate()).unwrap();
        (log, cp, note, a, b)
    }

    #[test]
    fn cosignatures_round_trip_and_name_missing_and_forged_witnesses() {
        let (log, cp, note, a, b) = setup();
        // The key id uses type 0x04 and is computed by hand here.
        let mut data = b"witness.example/a\n\x04".to_vec();
        data.extend_from_slice(a.vkey().key.as_bytes());
        assert_eq!(a.vkey().key_id()[..], Sha256::digest(&data)[..4]);
        assert_eq!(VerifierKey::parse(&a.vkey().to_string()).unwrap(), a.vkey());

        let la = a.cosign(&cp.body(), 1_700_000_000).unwrap();
        let lb = b.cosign(&cp.body(), 1_700_000_001).unwrap();
        // The line is name, key id, 8-byte big-endian time, 64-byte signature.
        let raw = b64().decode(la.trim_end().rsplit(' ').next().unwrap()).unwrap();
        assert_eq!(raw.len(), 76);
        assert_eq!(&raw[4..12], &1_700_000_000u64.to_be_bytes());
        crate::identity::verify(&a.vkey().key, &cosigned_message(&cp.body(), 1_700_000_000), &raw[12..]).unwrap();
        assert!(cosigned_message("o\n1\nr\n", 7).starts_with(b"cosignature/v1\ntime 7\no\n"));

        let both = append_signatures(&append_signatures(&note, &la).unwrap(), &lb).unwrap();
        // Appending again changes nothing.
        assert_eq!(append_signatures(&both, &format!("{la}{lb}")).unwrap(), both);
        // The log's signature still verifies; the witnesses' too.
        assert_eq!(verify_checkpoint(&both, "example.org/log", &log.verifying_key()).unwrap(), cp);
        let ws = [a.vkey(), b.vkey()];
        let c = check_cosignatures(&both, &ws).unwrap();
        assert_eq!(c.valid, vec![("witness.example/a".into(), 1_700_000_000), ("witness.example/b".into(), 1_700_000_001)]);
        c.require(2).unwrap();

        // One missing.
        let only_a = append_signatures(&note, &la).unwrap();
        let c = check_cosignatures(&only_a, &ws).unwrap();
        assert_eq!(c.missing, vec!["witness.example/b".to_string()]);
        c.require(1).unwrap();
        let e = c.require(2).unwrap_err().to_string();
        assert!(e.contains("1 of the 2") && e.contains("no cosignature of: witness.example/b"), "{e}");

        // A forged line: b's name and key id with a's signature bytes.
        let mut forged_raw = raw.clone();
        forged_raw[..4].copy_from_slice(&b.vkey().key_id());
        let forged = format!("\u{2014} witness.example/b {}\n", b64().encode(&forged_raw));
        let c = check_cosignatures(&append_signatures(&only_a, &forged).unwrap(), &ws).unwrap();
        assert_eq!(c.forged, vec!["witness.example/b".to_string()]);
        let e = c.require(1).unwrap_err().to_string();
        assert!(e.contains("do not verify: witness.example/b"), "{e}");

        // A cosignature of another checkpoint (another size) does not verify on this one.
        let other = Checkpoint { size: 10, ..cp.clone() };
        let l_other = a.cosign(&other.body(), 1_700_000_000).unwrap();
        let c = check_cosignatures(&append_signatures(&note, &l_other).unwrap(), &ws).unwrap();
        assert_eq!(c.forged, vec!["witness.example/a".to_string()]);

        // A plain Ed25519 signature by the witness key under its name is another key (type
        // 0x01 id): ignored, so the witness counts as missing.
        let plain = sign_checkpoint(&cp, "witness.example/a", &DeviceKey::generate());
        let plain_line = plain.lines().last().unwrap().to_string() + "\n";
        let c = check_cosignatures(&append_signatures(&note, &plain_line).unwrap(), &ws[..1]).unwrap();
        assert_eq!(c.missing, vec!["witness.example/a".to_string()]);

        // Timestamps of 2^63 and more are refused when signing and verifying.
        assert!(a.cosign(&cp.body(), 1 << 63).is_err());
        let mut big = raw.clone();
        big[4..12].copy_from_slice(&(1u64 << 63).to_be_bytes());
        let line = format!("\u{2014} witness.example/a {}\n", b64().encode(&big));
        assert_eq!(check_cosignatures(&append_signatures(&note, &line).unwrap(), &ws[..1]).unwrap().forged.len(), 1);
    }

    #[test]
    fn witness_answers_keep_only_the_witness_lines_that_verify() {
        let (_, cp, _, a, b) = setup();
        let la = a.cosign(&cp.body(), 5).unwrap();
        let lb = b.cosign(&cp.body(), 6).unwrap();
        assert_eq!(cosignature_lines_of(&format!("{lb}{la}garbage\n"), &cp.body(), &a.vkey()).unwrap(), la);
        assert_eq!(cosignature_lines_of(&lb, &cp.body(), &a.vkey()).unwrap(), "");
        let wrong = a.cosign(&Checkpoint { size: 1, ..cp.clone() }.body(), 5).unwrap();
        assert!(cosignature_lines_of(&wrong, &cp.body(), &a.vkey()).is_err());
    }

    #[test]
    fn add_checkpoint_bodies_round_trip_and_malformed_ones_are_named() {
        let (_, _, note, _, _) = setup();
        let req = AddCheckpoint { old_size: 3, proof: vec![leaf_hash(b"a"), leaf_hash(b"b")], checkpoint: note.clone() };
        let body = req.to_body();
        assert!(body.starts_with("old 3\n"));
        assert_eq!(AddCheckpoint::parse(body.as_bytes()).unwrap(), req);
        let empty = AddCheckpoint { old_size: 0, proof: vec![], checkpoint: note.clone() };
        assert_eq!(empty.to_body(), format!("old 0\n\n{note}"));
        assert_eq!(AddCheckpoint::parse(empty.to_body().as_bytes()).unwrap(), empty);
        let h = b64().encode(leaf_hash(b"a"));
        for (bad, why) in [
            (format!("old 03\n\n{note}"), "leading zeroes"),
            (format!("old -1\n\n{note}"), "decimal"),
            (format!("new 3\n\n{note}"), "old <size>"),
            (format!("old 3\n{}\n\n{note}", &h[..40]), "proof line 1"),
            (format!("old 3\n{h}\n{note}"), "proof line 2"),
            ("old 3\n".to_string(), "no empty line"),
            ("old 3\n\nnot a note".to_string(), "signed note"),
            (format!("old 3\n{}\n{note}", format!("{h}\n").repeat(64)), "more than 63"),
        ] {
            let e = AddCheckpoint::parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
        assert!(AddCheckpoint::parse(format!("old 3\n{}\n{note}", format!("{h}\n").repeat(63)).as_bytes()).is_ok());
        assert!(AddCheckpoint::parse(&[0xff, 0xfe]).is_err());
        assert_eq!(parse_tlog_size(b"42\n").unwrap(), 42);
        for bad in [&b"42"[..], b"042\n", b"\n", b"x\n", b"99999999999999999999999\n"] {
            assert!(parse_tlog_size(bad).is_err());
        }
    }
}
