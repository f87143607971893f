//! # fieldcap-evidence
//!
//! The evidence formats that a phone, the council's intake server and a court's verifier all
//! share, and nothing else: no SQLite, no HTTP. Everything here is either a byte format that is
//! signed or hashed, or the code that produces and checks those bytes.
//!
//! * [`canonical`] — canonical JSON (keys sorted, no insignificant whitespace): the exact bytes
//!   every signature covers.
//! * [`hashing`] — SHA-256 and BLAKE3 of a file in one read, and streaming digests.
//! * [`identity`] — Ed25519 keys, device ids, SPKI PEM, and the [`identity::KeyProtector`] that
//!   wraps a device secret (platform key store on phones, a 0600 file on desktops).
//! * [`manifest`] — the signed `fieldcap.manifest/1` document, parsed strictly.
//! * [`fragment`] — live recordings: signed, chained fragment records and the server's
//!   acknowledgement.
//! * [`custody`] — hash-chained, signed custody events (device and server).
//! * [`tlog`] — the RFC 6962 transparency log: Merkle tree, inclusion and consistency proofs,
//!   C2SP signed-note checkpoints.
//! * [`protocol`] — the sync protocol's wire types and request signing; [`problem`] — the
//!   names of the problems the server answers (RFC 9457 `type`), which clients branch on.
//! * [`receipt`] — the one receipt verifier (signature, item, checkpoint, inclusion proof).
//! * [`track`] — GPS tracks from GPX and GeoJSON; [`time`] — RFC 3339 timestamps.
//! * [`fsutil`] — durable file writes (temporary file, fsync, rename, directory fsync).
//!
//! ```
//! use fieldcap_evidence::{canonical, hashing::Digests};
//! let bytes = canonical::to_vec(&serde_json::json!({"b": 1, "a": [true, null]}));
//! assert_eq!(bytes, br#"{"a":[true,null],"b":1}"#);
//! let d = Digests::of_bytes(&bytes);
//! assert_eq!(d.bytes, bytes.len() as u64);
//! # Ok::<(), fieldcap_evidence::Error>(())
//! ```

pub mod canonical;
pub mod cosignature;
pub mod custody;
pub mod error;
pub mod escrow;
pub mod fragment;
pub mod fmp4;
pub mod fsutil;
pub mod hashing;
pub mod identity;
pub mod manifest;
pub mod problem;
pub mod protocol;
pub mod receipt;
pub mod time;
pub mod tlog;
pub mod track;

pub use error::{Error, IoContext, Result};
