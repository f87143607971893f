//! The custody log: append-only, hash-chained, signed events.
//!
//! Every event is a canonical JSON body (`fieldcap.custody/1`) naming the actor, a per-actor
//! sequence number, the time, the event name, the item it concerns (if any), details, and `prev`:
//! the SHA-256 of the previous event's body. The actor signs the body with Ed25519. Removing,
//! reordering or editing any event breaks the chain or a signature. The device and the server use
//! the same format (actor `device:<device_id>` or `server:<key id>`).
//!
//! Exported as JSON Lines, one event per line: `{"event":<body, verbatim>,"sig":"<hex>"}`. A
//! verifier re-canonicalises `event` (which yields the signed bytes, since the body is canonical
//! and holds no floating-point numbers) and checks the signature and the chain.

use crate::error::{Error, Result};
use crate::hashing::sha256_hex;
use ed25519_dalek::VerifyingKey;
use serde_json::{json, Value};

/// Type string of custody bodies.
pub const CUSTODY_TYPE: &str = "fieldcap.custody/1";

/// One signed custody event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustodyEvent {
    /// Per-actor sequence number, from 1.
    pub seq: u64,
    /// Item concerned, if any.
    pub clip_id: Option<String>,
    /// Event name (`created`, `sealed`, `exported`, …).
    pub event: String,
    /// When.
    pub at: String,
    /// Exact signed body.
    pub body: Vec<u8>,
    /// Ed25519 signature over `body`.
    pub sig: Vec<u8>,
}

/// Builds the canonical body of an event.
pub fn body(actor: &str, seq: u64, at: &str, event: &str, clip_id: Option<&str>, detail: Value, prev: Option<&str>) -> Vec<u8> {
    crate::canonical::to_vec(&json!({
        "type": CUSTODY_TYPE,
        "actor": actor,
        "seq": seq,
        "at": at,
        "event": event,
        "clip_id": clip_id,
        "detail": detail,
        "prev": prev,
    }))
}

impl CustodyEvent {
    /// SHA-256 hex of the body (what the next event's `prev` names).
    pub fn hash(&self) -> String {
        sha256_hex(&self.body)
    }

    /// The JSON Lines form.
    pub fn to_jsonl(&self) -> String {
        format!("{{\"event\":{},\"sig\":\"{}\"}}", String::from_utf8_lossy(&self.body), hex::encode(&self.sig))
    }

    /// Parses one JSON Lines entry back into an event (body bytes re-canonicalised).
    pub fn from_jsonl(line: &str) -> Result<CustodyEvent> {
        let v: Value = serde_json::from_str(line).map_err(|e| Error::InvalidInput(format!("custody line is not JSON: {e}")))?;
        let ev = v.get("event").ok_or_else(|| Error::InvalidInput("custody line has no event".into()))?;
        let sig = v
            .get("sig")
            .and_then(|s| s.as_str())
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| Error::InvalidInput("custody line has no hex sig".into()))?;
        let body = crate::canonical::to_vec(ev);
        Self::from_body(body, sig)
    }

    /// Rebuilds an event from its body and signature.
    pub fn from_body(body: Vec<u8>, sig: Vec<u8>) -> Result<CustodyEvent> {
        let v: Value = serde_json::from_slice(&body)?;
        if v.get("type").and_then(|t| t.as_str()) != Some(CUSTODY_TYPE) {
            return Err(Error::InvalidInput("custody event has the wrong type".into()));
        }
        Ok(CustodyEvent {
            seq: v.get("seq").and_then(|s| s.as_u64()).unwrap_or(0),
            clip_id: v.get("clip_id").and_then(|s| s.as_str()).map(String::from),
            event: v.get("event").and_then(|s| s.as_str()).unwrap_or_default().to_string(),
            at: v.get("at").and_then(|s| s.as_str()).unwrap_or_default().to_string(),
            body,
            sig,
        })
    }

    /// The `prev` field of the body.
    pub fn prev(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("prev").and_then(|p| p.as_str()).map(String::from))
    }
}

/// Checks a complete chain from seq 1: signatures, consecutive seq, `prev` links.
pub fn verify_chain(events: &[CustodyEvent], key: &VerifyingKey) -> Result<()> {
    let mut prev: Option<String> = None;
    for (i, e) in events.iter().enumerate() {
        let n = i as u64 + 1;
        if e.seq != n {
            return Err(Error::Integrity(format!("custody event {n}: found seq {} (an event is missing or out of order)", e.seq)));
        }
        crate::identity::verify(key, &e.body, &e.sig).map_err(|_| Error::Integrity(format!("custody event {n}: bad signature")))?;
        if e.prev() != prev {
            return Err(Error::Integrity(format!("custody event {n}: prev does not match the previous event")));
        }
        prev = Some(e.hash());
    }
    Ok(())
}
