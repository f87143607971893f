//! The device ↔ council-server protocol: wire types, signed documents and request signing.
//!
//! This module is the contract both sides compile against; `docs/FORMATS.md` describes the same
//! in prose. Everything signed travels as its exact canonical bytes (base64 in JSON bodies) next
//! to a raw Ed25519 signature, so the receiver keeps what was signed rather than a re-encoding.
//!
//! ## Endpoints (all JSON unless noted; errors are RFC 9457 `application/problem+json`)
//! | method & path | signed by device | purpose |
//! |---|---|---|
//! | `GET /v1/time` | no | [`TimeResponse`]: server time and key |
//! | `POST /v1/enroll` | no (one-time token) | [`EnrollRequest`] → [`SignedDoc`] of a [`DeviceCertificate`] |
//! | `POST /v1/manifests` | yes | [`ManifestSubmission`] → [`CommitmentResponse`] |
//! | tus 1.0 on `upload_url` | no (capability URL) | media bytes |
//! | `GET /v1/receipts/{clip_id}` | yes | [`SignedDoc`] of a [`Receipt`] |
//! | `GET /v1/log/checkpoint` | no | C2SP signed note (text/plain) |
//! | `GET /v1/log/consistency?from=&to=` | no | [`ProofResponse`] |
//! | `GET /v1/log/inclusion?index=&tree_size=` | no | [`ProofResponse`] |
//!
//! ## Request signing
//! A signed request carries four headers: [`H_DEVICE`] (device_id), [`H_TIMESTAMP`] (Unix
//! milliseconds, corrected by the device's measured clock offset), [`H_NONCE`] (32 hex of random
//! bytes) and [`H_SIGNATURE`] (base64 of the raw Ed25519 signature) over [`request_signing_string`].
//! The server refuses timestamps more than [`MAX_SKEW_MS`] from its clock and any nonce it has
//! seen inside that window (replays).

use crate::error::{Error, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Header naming the device.
pub const H_DEVICE: &str = "fieldcap-device";
/// Header with the request time in Unix milliseconds.
pub const H_TIMESTAMP: &str = "fieldcap-timestamp";
/// Header with a one-time random value.
pub const H_NONCE: &str = "fieldcap-nonce";
/// Header with the base64 request signature.
pub const H_SIGNATURE: &str = "fieldcap-signature";
/// Response header on every error answer naming its problem type (the last path segment of
/// the problem's `type`, e.g. `device-revoked`): an answer to `HEAD` has no body to carry the
/// problem document, so a client reads the name here.
pub const H_PROBLEM: &str = "fieldcap-problem";
/// Largest accepted difference between a request's timestamp and the server clock.
pub const MAX_SKEW_MS: i64 = 300_000;

/// Type strings of signed documents.
pub mod types {
    /// Device certificate.
    pub const DEVICE_CERT: &str = "fieldcap.device-cert/1";
    /// Commitment to a manifest (hash first).
    pub const COMMITMENT: &str = "fieldcap.commitment/1";
    /// Receipt for a received item.
    pub const RECEIPT: &str = "fieldcap.receipt/1";
    /// Transparency-log leaf.
    pub const LOG_LEAF: &str = "fieldcap.log-leaf/1";
    /// The council's escrow recipient, signed by the server key (`GET /v1/escrow-key`).
    pub const ESCROW_KEY: &str = "fieldcap.escrow-key/1";
}

/// Path of the signed escrow-key statement.
pub const ESCROW_KEY_PATH: &str = "/v1/escrow-key";
/// Path of a sealed (encrypted) manifest submission.
pub const SEALED_MANIFESTS_PATH: &str = "/v1/manifests/sealed";

/// The string a device signs for a request:
/// `fieldcap-request/1\n{METHOD}\n{path?query}\n{timestamp_ms}\n{nonce}\n{hex sha256(body)}`.
pub fn request_signing_string(method: &str, path_and_query: &str, timestamp_ms: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    format!(
        "fieldcap-request/1\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path_and_query,
        timestamp_ms,
        nonce,
        crate::hashing::sha256_hex(body)
    )
    .into_bytes()
}

/// Signed-request headers for a request, as (name, value) pairs.
pub fn sign_request(key: &crate::identity::DeviceKey, method: &str, path_and_query: &str, timestamp_ms: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut nonce = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let nonce = hex::encode(nonce);
    let sig = key.sign(&request_signing_string(method, path_and_query, timestamp_ms, &nonce, body));
    vec![
        (H_DEVICE, key.device_id().to_string()),
        (H_TIMESTAMP, timestamp_ms.to_string()),
        (H_NONCE, nonce),
        (H_SIGNATURE, b64(&sig)),
    ]
}

/// Standard base64.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64; `what` names the field in the error.
pub fn unb64(s: &str, what: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| Error::InvalidInput(format!("{what} is not valid base64")))
}

/// `GET /v1/time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeResponse {
    /// Server time, RFC 3339 UTC ms.
    pub server_time: String,
    /// Server time, Unix ms.
    pub server_time_ms: i64,
    /// Server public key, SPKI PEM.
    pub server_key_pem: String,
    /// Hex of the first 16 bytes of SHA-256(raw server key), like a device_id.
    pub server_key_id: String,
    /// Origin line of the log's checkpoints.
    pub log_origin: String,
}

/// Live capture (`PUT /v1/live/{clip_id}/{index}`): the fragment record, base64 of its exact
/// canonical bytes.
pub const H_FRAGMENT_RECORD: &str = "fieldcap-fragment-record";
/// Live capture: base64 of the device's raw Ed25519 signature over the fragment record.
pub const H_FRAGMENT_SIGNATURE: &str = "fieldcap-fragment-signature";
/// Live capture, on a 409 `fragment-out-of-order`: the index the server expects next.
pub const H_NEXT_FRAGMENT: &str = "fieldcap-next-fragment";

/// The server path of one live-capture fragment.
pub fn fragment_path(clip_id: &str, index: u64) -> String {
    format!("/v1/live/{clip_id}/{index}")
}

/// The answer to a fragment `PUT`: the server's signed [`crate::fragment::FragmentAck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentAnswer {
    /// The signed acknowledgement.
    pub ack: SignedDoc,
}

/// `POST /v1/enroll` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// One-time token issued by the council office.
    pub token: String,
    /// Device public key, SPKI PEM.
    pub public_key_pem: String,
    /// Organisation the operator gives (the role comes from the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// A signed document on the wire: exact bytes and raw signature, both base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDoc {
    /// Base64 of the exact canonical JSON bytes.
    pub body: String,
    /// Base64 of the raw 64-byte Ed25519 signature over those bytes.
    pub sig: String,
}

impl SignedDoc {
    /// Wraps bytes and signature.
    pub fn new(body: &[u8], sig: &[u8]) -> SignedDoc {
        SignedDoc { body: b64(body), sig: b64(sig) }
    }
    /// Decodes to (bytes, signature).
    pub fn decode(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        Ok((unb64(&self.body, "body")?, unb64(&self.sig, "sig")?))
    }
    /// Decodes, verifies the signature with `key`, and parses the body as `T`.
    pub fn open<T: serde::de::DeserializeOwned>(&self, key: &ed25519_dalek::VerifyingKey) -> Result<(T, Vec<u8>, Vec<u8>)> {
        let (body, sig) = self.decode()?;
        crate::identity::verify(key, &body, &sig)?;
        let t = serde_json::from_slice(&body).map_err(|e| Error::Integrity(format!("signed document does not parse: {e}")))?;
        Ok((t, body, sig))
    }
}

/// Body of a device certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertificate {
    /// [`types::DEVICE_CERT`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Device id.
    pub device_id: String,
    /// Device public key, SPKI PEM.
    pub public_key_pem: String,
    /// `monitor` or `police`.
    pub role: String,
    /// Organisation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// When enrolled.
    pub enrolled_at: String,
    /// Issuing server key id.
    pub server_key_id: String,
}

/// `POST /v1/manifests` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSubmission {
    /// Base64 of the exact manifest bytes.
    pub manifest: String,
    /// Base64 of the device's raw signature over them.
    pub sig: String,
}

/// The council's escrow recipient as the server states it (`GET /v1/escrow-key` answers it as a
/// [`SignedDoc`] signed by the server key the device pinned at enrolment). Devices encrypt every
/// item key to it (FORMATS §6b, §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscrowKeyStatement {
    /// [`types::ESCROW_KEY`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// The current escrow recipient (`age1…`).
    pub recipient: String,
    /// Since when it is current (RFC 3339 UTC ms).
    pub since: String,
    /// The signing server key's id.
    pub server_key_id: String,
}

/// `POST /v1/manifests/sealed` body: an item sealed encrypted on the device (FORMATS §8, "Sealed
/// items"). The server opens `key_wrap` with its escrow key, `manifest_age` with the item key,
/// and then treats the manifest exactly as a `POST /v1/manifests`; the tus upload that follows
/// carries the media's age ciphertext (`media_age_bytes` long), which the server decrypts and
/// re-hashes against the signed manifest before it accepts the last byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedManifestSubmission {
    /// Base64 of the manifest's age file (encrypted to the item key).
    pub manifest_age: String,
    /// Base64 of the device's raw signature over the *plaintext* manifest bytes.
    pub sig: String,
    /// Base64 of the item key wrapped to the escrow recipient (an age file whose plaintext is
    /// the item key's identity line).
    pub key_wrap: String,
    /// Length of the media's age file, for an item with media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_age_bytes: Option<u64>,
}

/// Body of a commitment: the server has the manifest on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// [`types::COMMITMENT`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Device chain position.
    pub seq: u64,
    /// SHA-256 hex of the manifest bytes.
    pub manifest_sha256: String,
    /// When the server committed it.
    pub committed_at: String,
    /// Server key id.
    pub server_key_id: String,
}

/// Answer to `POST /v1/manifests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentResponse {
    /// Signed [`Commitment`].
    pub commitment: SignedDoc,
    /// tus upload URL (path, absolute on the server) for the media; `None` for observations
    /// and for media already received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_url: Option<String>,
    /// When the upload URL expires (RFC 3339), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_expires: Option<String>,
    /// The receipt, when the item is already complete (observations, repeated submissions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<SignedDoc>,
}

/// Media digests in a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptMedia {
    /// Length.
    pub bytes: u64,
    /// SHA-256 hex, recomputed by the server.
    pub sha256: String,
    /// BLAKE3 hex, recomputed by the server.
    pub blake3: String,
}

/// Log position of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptLog {
    /// 0-based leaf index.
    pub index: u64,
    /// Tree size of the checkpoint.
    pub tree_size: u64,
    /// The C2SP signed-note checkpoint text at `tree_size`.
    pub checkpoint: String,
    /// Inclusion proof (hex SHA-256 nodes, RFC 6962 order) from the leaf to the checkpoint root.
    pub inclusion: Vec<String>,
}

/// Body of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// [`types::RECEIPT`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Device chain position.
    pub seq: u64,
    /// SHA-256 hex of the manifest bytes.
    pub manifest_sha256: String,
    /// Media as received (absent for observations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<ReceiptMedia>,
    /// When the server had everything.
    pub received_at: String,
    /// Transparency-log position and proof.
    pub log: ReceiptLog,
    /// Server key id.
    pub server_key_id: String,
}

impl Receipt {
    /// The exact bytes of this receipt's log leaf (what the Merkle leaf hash is taken over).
    pub fn leaf_bytes(&self) -> Vec<u8> {
        log_leaf_bytes(&self.clip_id, &self.device_id, self.seq, &self.manifest_sha256, self.media.as_ref(), &self.received_at)
    }
}

/// Canonical bytes of a log leaf.
pub fn log_leaf_bytes(clip_id: &str, device_id: &str, seq: u64, manifest_sha256: &str, media: Option<&ReceiptMedia>, received_at: &str) -> Vec<u8> {
    crate::canonical::to_vec(&serde_json::json!({
        "type": types::LOG_LEAF,
        "clip_id": clip_id,
        "device_id": device_id,
        "seq": seq,
        "manifest_sha256": manifest_sha256,
        "media": media,
        "received_at": received_at,
    }))
}

/// Answer of the proof endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofResponse {
    /// Hex SHA-256 nodes.
    pub proof: Vec<String>,
}

/// Body of `POST /v1/custody`: a run of the device's own custody events, in seq order, each in
/// the JSON Lines form of FORMATS §5 (`{"event": <body>, "sig": "<hex>"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustodySubmission {
    /// The events, consecutive seq numbers, oldest first.
    pub events: Vec<serde_json::Value>,
}

/// Answer of `POST /v1/custody`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustodyAck {
    /// The highest seq of this device's custody log the server now holds.
    pub stored_through: u64,
}

/// Largest number of events in one `POST /v1/custody`.
pub const MAX_CUSTODY_BATCH: usize = 500;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable URI naming the problem, `https://fieldcap.org/problems/<name>` (a name, not fetched).
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Details for this occurrence (never personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
