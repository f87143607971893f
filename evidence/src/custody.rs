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

/// Checks a custody event's `detail` (§5 of FORMATS.md): an object whose values, at any depth,
/// are integers, strings, booleans, null, arrays or objects — never a floating-point number (a
/// verifier re-serialises the body to get the signed bytes, which floats would not survive).
/// The error names the path of the first float found.
pub fn check_detail(detail: &Value) -> Result<()> {
    fn walk(v: &Value, path: &mut String) -> Result<()> {
        match v {
            Value::Number(n) if !(n.is_i64() || n.is_u64()) => Err(Error::InvalidInput(format!("custody detail field '{path}' is a floating-point number (only integers, strings and booleans are allowed)"))),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(x, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(m) => {
                for (k, x) in m {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    walk(x, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    if !detail.is_object() {
        return Err(Error::InvalidInput("custody detail must be a JSON object".into()));
    }
    walk(detail, &mut String::new())
}

/// Checks a whole custody body as received from another party: [`check_detail`] on its `detail`.
pub fn check_body(body: &[u8]) -> Result<()> {
    let v: Value = serde_json::from_slice(body).map_err(|e| Error::InvalidInput(format!("custody event is not JSON: {e}")))?;
    check_detail(v.get("detail").unwrap_or(&Value::Null))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_in_a_detail_are_refused_and_named() {
        check_detail(&json!({"seq": 3, "when": "before_upload", "ok": true, "n": -4, "x": null, "list": [1, "a"], "o": {"k": 18446744073709551615u64}})).unwrap();
        let e = check_detail(&json!({"offset_ms": 1.5})).unwrap_err();
        assert!(e.to_string().contains("'offset_ms'"), "{e}");
        let e = check_detail(&json!({"a": {"b": [1, 2.0]}})).unwrap_err();
        assert!(e.to_string().contains("'a.b[1]'"), "{e}");
        assert!(check_detail(&json!([1])).is_err(), "a detail is an object");
        let b = body("device:00", 1, "2025-06-07T18:04:05.123Z", "alarm", None, json!({"rtt": 0.25}), None);
        assert!(check_body(&b).is_err());
        let b = body("device:00", 1, "2025-06-07T18:04:05.123Z", "alarm", None, json!({"rtt_ms": 250}), None);
        check_body(&b).unwrap();
    }
}
