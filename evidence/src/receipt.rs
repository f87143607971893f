//! Verifying a receipt (`fieldcap.receipt/1`, docs/FORMATS.md §9): the one verifier that the
//! device (after an upload), the server's own tests and a package's recipient all use, so that
//! a receipt means the same wherever it is checked.
//!
//! A receipt is the server's signed statement that it holds an item: which item (`clip_id`,
//! `device_id`, `seq`), which manifest (its SHA-256), which media (length, SHA-256 and BLAKE3 as
//! the server recomputed them), when, and where in its transparency log — a leaf index, a signed
//! checkpoint and the inclusion proof from the leaf to that checkpoint's root. [`ReceiptVerifier`]
//! checks, in this order, and the first failure is the error, naming what is wrong:
//!
//! 1. the Ed25519 signature over the exact receipt bytes is the server key's ([`ReceiptVerifier::open`]);
//! 2. the bytes parse as `fieldcap.receipt/1` and name that key's id;
//! 3. the receipt names the item the verifier expects: clip id, device id, seq, manifest SHA-256
//!    and the media digests, or no media for an observation ([`ExpectedItem::check`]);
//! 4. its checkpoint is signed by the server under the log's origin as key name (FORMATS §11) and
//!    is of that origin and of the receipt's tree size ([`ReceiptVerifier::checkpoint`]);
//! 5. the inclusion proof leads from the leaf rebuilt from the receipt's own fields (FORMATS §10)
//!    to that checkpoint's root ([`ReceiptVerifier::check_log`]).
//!
//! Whether the log stayed consistent *after* the receipt (a newer checkpoint extends this one)
//! is the caller's part: a device asks the server for a consistency proof to the newest
//! checkpoint it holds, a package carries one in `log/inclusion/<clip_id>.json`.
//!
//! ```
//! use fieldcap_evidence::receipt::{ExpectedItem, ReceiptVerifier};
//! # fn f(server_key: ed25519_dalek::VerifyingKey, body: &[u8], sig: &[u8]) -> fieldcap_evidence::Result<()> {
//! let verifier = ReceiptVerifier::new(server_key, "fieldcap.intake/0123456789abcdef0123456789abcdef");
//! let expected = ExpectedItem {
//!     clip_id: "01970a6e-1c2d-7e3f-8a4b-5c6d7e8f9a0b",
//!     device_id: "00112233445566778899aabbccddeeff",
//!     seq: 7,
//!     manifest_sha256: "…",
//!     media: None,
//! };
//! let receipt = verifier.verify(body, sig, &expected)?;
//! println!("leaf {} of {}", receipt.log.index, receipt.log.tree_size);
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::identity::device_id_for;
use crate::manifest::{Manifest, Media};
use crate::protocol::{types, Receipt};
use crate::tlog::{leaf_hash, proof_from_hex, verify_checkpoint, verify_inclusion, Checkpoint};
use ed25519_dalek::VerifyingKey;

/// What a receipt must name: the item as the verifier knows it, from the manifest it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedItem<'a> {
    /// Item id.
    pub clip_id: &'a str,
    /// Device id.
    pub device_id: &'a str,
    /// Device chain position.
    pub seq: u64,
    /// SHA-256 hex of the device-signed manifest bytes (for a release-profile package: of the
    /// original, which the derived manifest names).
    pub manifest_sha256: &'a str,
    /// The media the manifest names (length and both digests are compared; the MIME type is not
    /// in a receipt), or `None` for an observation.
    pub media: Option<&'a Media>,
}

impl<'a> ExpectedItem<'a> {
    /// What the receipt of a device-signed `manifest` must name; `manifest_sha256` is the SHA-256
    /// hex of its exact bytes.
    pub fn of_manifest(manifest: &'a Manifest, manifest_sha256: &'a str) -> ExpectedItem<'a> {
        ExpectedItem { clip_id: &manifest.clip_id, device_id: &manifest.device_id, seq: manifest.seq, manifest_sha256, media: manifest.media.as_ref() }
    }

    /// Step 3: the receipt names this item, this manifest and this media (or none).
    pub fn check(&self, receipt: &Receipt) -> Result<()> {
        fn differs(field: &str, found: impl std::fmt::Debug, expected: impl std::fmt::Debug) -> Result<()> {
            Err(Error::Integrity(format!("the receipt names {field} {found:?}, expected {expected:?}")))
        }
        if receipt.clip_id != self.clip_id {
            return differs("clip_id", &receipt.clip_id, self.clip_id);
        }
        if receipt.device_id != self.device_id {
            return differs("device_id", &receipt.device_id, self.device_id);
        }
        if receipt.seq != self.seq {
            return differs("seq", receipt.seq, self.seq);
        }
        if receipt.manifest_sha256 != self.manifest_sha256 {
            return differs("manifest SHA-256", &receipt.manifest_sha256, self.manifest_sha256);
        }
        match (&receipt.media, self.media) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(Error::Integrity("the receipt names media, the item has none".into())),
            (None, Some(_)) => Err(Error::Integrity("the receipt names no media, the item has media".into())),
            (Some(r), Some(m)) if r.bytes != m.bytes => differs("a media length of", r.bytes, m.bytes),
            (Some(r), Some(m)) if r.sha256 != m.sha256 => differs("media SHA-256", &r.sha256, &m.sha256),
            (Some(r), Some(m)) if r.blake3 != m.blake3 => differs("media BLAKE3", &r.blake3, &m.blake3),
            (Some(_), Some(_)) => Ok(()),
        }
    }
}

/// Verifies receipts of one server and its log; see the module documentation for the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptVerifier {
    server_key: VerifyingKey,
    server_key_id: String,
    log_origin: String,
}

impl ReceiptVerifier {
    /// A verifier for receipts signed by `server_key`, whose log checkpoints carry the origin
    /// (and key name) `log_origin` (`GET /v1/time`'s `log_origin`; a package index's
    /// `log_origin`).
    pub fn new(server_key: VerifyingKey, log_origin: &str) -> ReceiptVerifier {
        ReceiptVerifier { server_key_id: device_id_for(&server_key), server_key, log_origin: log_origin.to_string() }
    }

    /// Steps 1–5: a genuine receipt of this server's log for the `expected` item. Returns it.
    pub fn verify(&self, body: &[u8], sig: &[u8], expected: &ExpectedItem<'_>) -> Result<Receipt> {
        let receipt = self.open(body, sig)?;
        expected.check(&receipt)?;
        self.check_log(&receipt)?;
        Ok(receipt)
    }

    /// Steps 1, 2, 4 and 5, for a caller that does not know the item (a log auditor; a test of
    /// the server): a genuine receipt of this server's log, whichever item it names.
    pub fn verify_unbound(&self, body: &[u8], sig: &[u8]) -> Result<Receipt> {
        let receipt = self.open(body, sig)?;
        self.check_log(&receipt)?;
        Ok(receipt)
    }

    /// Steps 1–2: the server's signature over `body`, which parses as a receipt naming this
    /// server's key.
    pub fn open(&self, body: &[u8], sig: &[u8]) -> Result<Receipt> {
        crate::identity::verify(&self.server_key, body, sig)
            .map_err(|e| Error::Integrity(format!("the receipt is not signed by the server key {} ({})", self.server_key_id, reason(&e))))?;
        let receipt: Receipt = serde_json::from_slice(body).map_err(|e| Error::Integrity(format!("the receipt does not parse as {}: {e}", types::RECEIPT)))?;
        if receipt.doc_type != types::RECEIPT {
            return Err(Error::Integrity(format!("the document is of type {:?}, not {}", receipt.doc_type, types::RECEIPT)));
        }
        if receipt.server_key_id != self.server_key_id {
            return Err(Error::Integrity(format!("the receipt names server key {:?}, expected {:?}", receipt.server_key_id, self.server_key_id)));
        }
        Ok(receipt)
    }

    /// Steps 4–5: the receipt's own checkpoint and inclusion proof. Returns the checkpoint (for
    /// a consistency check against a newer one).
    pub fn check_log(&self, receipt: &Receipt) -> Result<Checkpoint> {
        let cp = self.checkpoint(&receipt.log.checkpoint).map_err(|e| Error::Integrity(format!("the receipt's checkpoint: {}", reason(&e))))?;
        if cp.size != receipt.log.tree_size {
            return Err(Error::Integrity(format!("the receipt's checkpoint is of tree size {}, the receipt says {}", cp.size, receipt.log.tree_size)));
        }
        let proof = proof_from_hex(&receipt.log.inclusion).map_err(|e| Error::Integrity(format!("the receipt's inclusion proof: {}", reason(&e))))?;
        verify_inclusion(receipt.log.index, receipt.log.tree_size, &leaf_hash(&receipt.leaf_bytes()), &proof, &cp.root).map_err(|e| {
            Error::Integrity(format!("the receipt's leaf {} is not proven in its tree of {}: {}", receipt.log.index, receipt.log.tree_size, reason(&e)))
        })?;
        Ok(cp)
    }

    /// A checkpoint note of this server's log: signed by the server key under the key name
    /// `log_origin`, and naming that origin.
    pub fn checkpoint(&self, note: &str) -> Result<Checkpoint> {
        let cp = verify_checkpoint(note, &self.log_origin, &self.server_key)?;
        if cp.origin != self.log_origin {
            return Err(Error::Integrity(format!("the checkpoint is of log {:?}, expected {:?}", cp.origin, self.log_origin)));
        }
        Ok(cp)
    }

    /// The server key.
    pub fn server_key(&self) -> &VerifyingKey {
        &self.server_key
    }

    /// The log origin (and checkpoint key name).
    pub fn log_origin(&self) -> &str {
        &self.log_origin
    }
}

/// The message of an integrity or input error without its kind's prefix, to be put in context.
fn reason(e: &Error) -> String {
    match e {
        Error::Integrity(s) | Error::InvalidInput(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::identity::DeviceKey;
    use crate::protocol::{ReceiptLog, ReceiptMedia};
    use crate::tlog::{inclusion_proof, proof_to_hex, root_of, sign_checkpoint};

    const ORIGIN: &str = "fieldcap.intake/test";

    /// A log of three items (an observation, two videos) and their receipts, all signed by one
    /// server key; the receipts under test are re-signed by [`Log::sign`] after a change.
    struct Log {
        server: DeviceKey,
        receipts: Vec<Receipt>,
        media: Media,
    }

    impl Log {
        fn new() -> Log {
            let server = DeviceKey::generate();
            let media = Media { mime: "video/mp4".into(), bytes: 300_000, sha256: "ab".repeat(32), blake3: "cd".repeat(32) };
            let mut receipts: Vec<Receipt> = (0..3u64)
                .map(|i| Receipt {
                    doc_type: types::RECEIPT.into(),
                    clip_id: format!("01970a6e-0000-7000-8000-00000000000{i}"),
                    device_id: "00112233445566778899aabbccddeeff".into(),
                    seq: i + 1,
                    manifest_sha256: format!("{i}").repeat(64),
                    media: (i > 0).then(|| ReceiptMedia { bytes: media.bytes, sha256: media.sha256.clone(), blake3: media.blake3.clone() }),
                    received_at: format!("2025-06-07T18:0{i}:00.000Z"),
                    log: ReceiptLog { index: i, tree_size: 0, checkpoint: String::new(), inclusion: vec![] },
                    server_key_id: server.device_id().to_string(),
                })
                .collect();
            let leaves: Vec<_> = receipts.iter().map(|r| leaf_hash(&r.leaf_bytes())).collect();
            let note = sign_checkpoint(&Checkpoint { origin: ORIGIN.into(), size: 3, root: root_of(&leaves) }, ORIGIN, &server);
            for (i, r) in receipts.iter_mut().enumerate() {
                r.log = ReceiptLog { index: i as u64, tree_size: 3, checkpoint: note.clone(), inclusion: proof_to_hex(&inclusion_proof(&leaves, i as u64).unwrap()) };
            }
            Log { server, receipts, media }
        }

        fn verifier(&self) -> ReceiptVerifier {
            ReceiptVerifier::new(self.server.verifying_key(), ORIGIN)
        }

        /// The video at leaf 1.
        fn video(&self) -> Receipt {
            self.receipts[1].clone()
        }

        fn expected<'a>(&'a self, r: &'a Receipt) -> ExpectedItem<'a> {
            ExpectedItem { clip_id: &r.clip_id, device_id: &r.device_id, seq: r.seq, manifest_sha256: &r.manifest_sha256, media: r.media.as_ref().map(|_| &self.media) }
        }

        fn sign(&self, r: &Receipt) -> (Vec<u8>, Vec<u8>) {
            let body = crate::canonical::to_vec_of(r).unwrap();
            let sig = self.server.sign(&body).to_vec();
            (body, sig)
        }
    }

    fn err(r: Result<Receipt>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn good_receipts_pass() {
        let log = Log::new();
        let v = log.verifier();
        for r in &log.receipts {
            let (body, sig) = log.sign(r);
            assert_eq!(&v.verify(&body, &sig, &log.expected(r)).unwrap(), r);
            assert_eq!(&v.verify_unbound(&body, &sig).unwrap(), r);
            assert_eq!(v.check_log(r).unwrap().size, 3);
        }
    }

    #[test]
    fn the_verifier_names_its_key_and_log() {
        let log = Log::new();
        let v = log.verifier();
        assert_eq!(v.server_key(), &log.server.verifying_key());
        assert_eq!(v.log_origin(), ORIGIN);
    }

    #[test]
    fn a_forged_or_altered_signature_fails() {
        let log = Log::new();
        let r = log.video();
        let (body, sig) = log.sign(&r);
        let forger = DeviceKey::generate();
        let e = err(log.verifier().verify(&body, &forger.sign(&body), &log.expected(&r)));
        assert!(e.contains("not signed by the server key"), "{e}");
        let mut altered = body.clone();
        let at = altered.len() / 2;
        altered[at] ^= 1;
        assert!(err(log.verifier().verify(&altered, &sig, &log.expected(&r))).contains("not signed by the server key"));
        assert!(err(log.verifier().verify(&body, &sig[..63], &log.expected(&r))).contains("64"));
        // Verified with another server's key.
        let other = ReceiptVerifier::new(forger.verifying_key(), ORIGIN);
        assert!(err(other.verify(&body, &sig, &log.expected(&r))).contains("not signed by the server key"));
    }

    #[test]
    fn each_field_that_differs_from_the_item_is_named() {
        let log = Log::new();
        let r = log.video();
        let (body, sig) = log.sign(&r);
        let v = log.verifier();
        let base = log.expected(&r);
        let other_sha = "ef".repeat(32);
        let media = |f: &dyn Fn(&mut Media)| {
            let mut m = log.media.clone();
            f(&mut m);
            m
        };
        let (longer, other_sha256, other_blake3) = (media(&|m| m.bytes += 1), media(&|m| m.sha256 = other_sha.clone()), media(&|m| m.blake3 = other_sha.clone()));
        let cases: Vec<(ExpectedItem<'_>, &str)> = vec![
            (ExpectedItem { clip_id: "01970a6e-0000-7000-8000-000000000009", ..base }, "clip_id"),
            (ExpectedItem { device_id: "ffeeddccbbaa99887766554433221100", ..base }, "device_id"),
            (ExpectedItem { seq: 3, ..base }, "seq"),
            (ExpectedItem { manifest_sha256: &other_sha, ..base }, "manifest SHA-256"),
            (ExpectedItem { media: None, ..base }, "the item has none"),
            (ExpectedItem { media: Some(&longer), ..base }, "media length"),
            (ExpectedItem { media: Some(&other_sha256), ..base }, "media SHA-256"),
            (ExpectedItem { media: Some(&other_blake3), ..base }, "media BLAKE3"),
        ];
        for (expected, named) in cases {
            let e = err(v.verify(&body, &sig, &expected));
            assert!(e.contains(named), "{named}: {e}");
        }
        // An observation's receipt when the item has media.
        let obs = &log.receipts[0];
        let (body, sig) = log.sign(obs);
        let e = err(v.verify(&body, &sig, &ExpectedItem { media: Some(&log.media), ..log.expected(obs) }));
        assert!(e.contains("names no media"), "{e}");
    }

    #[test]
    fn a_receipt_of_another_type_or_server_key_fails() {
        let log = Log::new();
        let v = log.verifier();
        let mut r = log.video();
        r.doc_type = "fieldcap.commitment/1".into();
        let (body, sig) = log.sign(&r);
        assert!(err(v.verify(&body, &sig, &log.expected(&r))).contains("not fieldcap.receipt/1"));
        let mut r = log.video();
        r.server_key_id = "ffeeddccbbaa99887766554433221100".into();
        let (body, sig) = log.sign(&r);
        assert!(err(v.verify(&body, &sig, &log.expected(&r))).contains("server key \"ffeeddccbbaa99887766554433221100\""));
        let e = err(v.open(b"{\"type\":\"fieldcap.receipt/1\"}", &log.server.sign(b"{\"type\":\"fieldcap.receipt/1\"}")));
        assert!(e.contains("does not parse"), "{e}");
    }

    #[test]
    fn a_bad_inclusion_proof_fails() {
        let log = Log::new();
        let v = log.verifier();
        // A proof node changed.
        let mut r = log.video();
        r.log.inclusion[0] = "00".repeat(32);
        let (body, sig) = log.sign(&r);
        let e = err(v.verify(&body, &sig, &log.expected(&r)));
        assert!(e.contains("leaf 1 is not proven in its tree of 3"), "{e}");
        // Another leaf's proof.
        let mut r = log.video();
        r.log.inclusion = log.receipts[2].log.inclusion.clone();
        let (body, sig) = log.sign(&r);
        assert!(err(v.verify(&body, &sig, &log.expected(&r))).contains("not proven"));
        // The right proof for another index.
        let mut r = log.video();
        r.log.index = 0;
        let (body, sig) = log.sign(&r);
        assert!(err(v.verify(&body, &sig, &log.expected(&r))).contains("not proven"));
        // A field changed after logging (the leaf is rebuilt from the receipt's fields).
        let mut r = log.video();
        r.received_at = "2025-06-07T19:00:00.000Z".into();
        let (body, sig) = log.sign(&r);
        assert!(err(v.verify(&body, &sig, &log.expected(&r))).contains("not proven"));
        // A proof node that is not 32 bytes of hex.
        let mut r = log.video();
        r.log.inclusion[0] = "xyz".into();
        let (body, sig) = log.sign(&r);
        let e = err(v.verify(&body, &sig, &log.expected(&r)));
        assert!(e.contains("inclusion proof") && e.contains("not hex"), "{e}");
        // One node too few.
        let mut r = log.video();
        r.log.inclusion.pop();
        let (body, sig) = log.sign(&r);
        assert!(err(v.verify(&body, &sig, &log.expected(&r))).contains("too short"));
    }

    #[test]
    fn a_bad_checkpoint_fails() {
        let log = Log::new();
        let v = log.verifier();
        let root = v.check_log(&log.video()).unwrap().root;
        let resigned = |size: u64, origin: &str, name: &str, key: &DeviceKey| {
            let mut r = log.video();
            r.log.checkpoint = sign_checkpoint(&Checkpoint { origin: origin.into(), size, root }, name, key);
            log.sign(&r)
        };
        let other = DeviceKey::generate();
        for ((body, sig), named) in [
            (resigned(3, ORIGIN, ORIGIN, &other), "the receipt's checkpoint: checkpoint carries no signature by the expected key"),
            (resigned(3, ORIGIN, "another.name/x", &log.server), "the receipt's checkpoint: checkpoint carries no signature by the expected key"),
            (resigned(3, "another.log/x", ORIGIN, &log.server), "the receipt's checkpoint: the checkpoint is of log \"another.log/x\""),
            (resigned(4, ORIGIN, ORIGIN, &log.server), "checkpoint is of tree size 4, the receipt says 3"),
        ] {
            let r: Receipt = serde_json::from_slice(&body).unwrap();
            let e = err(v.verify(&body, &sig, &log.expected(&r)));
            assert!(e.contains(named), "{named}: {e}");
        }
    }

    #[test]
    fn the_expected_item_of_a_manifest_names_its_fields() {
        let log = Log::new();
        let r = log.video();
        let m: Manifest = serde_json::from_value(serde_json::json!({
            "type": "fieldcap.manifest/1", "clip_id": r.clip_id, "device_id": r.device_id, "seq": 2, "prev": "0".repeat(64), "kind": "video",
            "media": {"mime": "video/mp4", "bytes": log.media.bytes, "sha256": log.media.sha256, "blake3": log.media.blake3},
            "capture": {"started_at": "2025-06-07T18:00:00.000Z", "ended_at": "2025-06-07T18:01:00.000Z", "clock": {"source": "device", "uptime_ms": 1, "measured_at": null}},
            "track": [], "operator": {"role": "monitor"}, "tags": []
        }))
        .unwrap();
        let (body, sig) = log.sign(&r);
        log.verifier().verify(&body, &sig, &ExpectedItem::of_manifest(&m, &r.manifest_sha256)).unwrap();
    }
}
