//! `POST /v1/custody`: devices upload their own custody logs, so evidence packages can carry the
//! device side of the chain of custody (sealed, exported, uploaded, receipted, clock measured …)
//! next to the server's.
//!
//! The server keeps each event exactly as the device signed it. A batch is accepted only if it
//! continues what is on record without a hole: every event is signed by the device's enrolled key
//! and names that device as actor, seq numbers are consecutive from the stored head, and each
//! `prev` is the SHA-256 of the previous body. Events the server already holds may be sent again
//! (a lost answer) and are skipped if byte-identical; a *different* event at a seq on record is a
//! conflict, refused and recorded as a server custody event (`device_custody_conflict`) — the
//! stored log is never rewritten. Each accepted batch is itself a server custody event
//! (`device_custody_received {device_id, from_seq, to_seq}`).

use crate::error::{evidence_message, Error, Result};
use crate::http::auth::{signed_body, verify};
use crate::http::body::{json_response, parse_json};
use crate::http::limits::MAX_CUSTODY_BODY;
use crate::http::{blocking, AppStateRef};
use crate::state::AppState;
use crate::store::DeviceRecord;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::protocol::{CustodyAck, CustodySubmission, MAX_CUSTODY_BATCH};

/// `POST /v1/custody` (device-signed).
pub(crate) async fn post_custody(State(state): AppStateRef, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Result<Response> {
    let (claim, bytes, _hold) = signed_body(&state, &headers, body, MAX_CUSTODY_BODY).await?;
    let ack = blocking(move || {
        let device = verify(&state, &claim, &method, &uri, &bytes)?;
        let sub: CustodySubmission = parse_json(&bytes, "the custody submission")?;
        accept(&state, &device, &sub)
    })
    .await?;
    json_response(StatusCode::OK, &ack)
}

fn accept(state: &AppState, device: &DeviceRecord, sub: &CustodySubmission) -> Result<CustodyAck> {
    if sub.events.len() > MAX_CUSTODY_BATCH {
        return Err(Error::TooLarge(format!("at most {MAX_CUSTODY_BATCH} custody events per request")));
    }
    let key = fieldcap_evidence::identity::parse_public_pem(&device.public_key_pem)?;
    let actor = format!("device:{}", device.device_id);
    let mut events = Vec::with_capacity(sub.events.len());
    for (i, v) in sub.events.iter().enumerate() {
        let e = CustodyEvent::from_jsonl(&v.to_string()).map_err(|e| Error::BadRequest(format!("custody event #{}: {}", i + 1, evidence_message(&e))))?;
        fieldcap_evidence::custody::check_body(&e.body).map_err(|err| Error::BadRequest(format!("custody event #{}: {}", i + 1, evidence_message(&err))))?;
        let body: serde_json::Value = serde_json::from_slice(&e.body)?;
        if body.get("actor").and_then(|a| a.as_str()) != Some(actor.as_str()) {
            return Err(Error::BadRequest(format!("custody event #{}: the actor is not the device that signed the request", i + 1)));
        }
        if e.seq == 0 {
            return Err(Error::BadRequest(format!("custody event #{}: seq must start at 1", i + 1)));
        }
        fieldcap_evidence::identity::verify(&key, &e.body, &e.sig)
            .map_err(|_| Error::BadSignature(format!("custody event seq {}: the signature does not verify with the device's key", e.seq)))?;
        events.push(e);
    }
    // Serialise with manifest commits: one device's log is appended by one request at a time.
    let _guard = state.commit_lock.lock().map_err(|_| Error::Internal("commit lock poisoned".into()))?;
    let head = state.records.device_custody_head(&device.device_id)?;
    let head_seq = head.as_ref().map_or(0, |h| h.0);
    // Re-sent events must equal what is on record.
    let mut fresh = Vec::new();
    for e in events {
        if e.seq <= head_seq {
            let same = state.records.device_custody_event(&device.device_id, e.seq)?.is_some_and(|old| old.body == e.body && old.sig == e.sig);
            if !same {
                state.custody_refusal(&device.device_id, "device_custody_conflict", "device_custody_conflict", None, serde_json::json!({ "device_id": device.device_id, "seq": e.seq as i64 }))?;
                return Err(Error::Conflict(format!("a different custody event {} of this device is on record", e.seq)));
            }
        } else {
            fresh.push(e);
        }
    }
    if fresh.is_empty() {
        return Ok(CustodyAck { stored_through: head_seq });
    }
    // The rest must continue the stored log: consecutive seq, `prev` naming the previous body.
    let mut prev = head.as_ref().map(|h| h.1.clone());
    let mut expect = head_seq + 1;
    for e in &fresh {
        if e.seq != expect {
            return Err(Error::Conflict(format!("custody event {} does not follow {} (events must be sent in order, without gaps)", e.seq, expect - 1)));
        }
        if e.prev() != prev {
            return Err(Error::Conflict(format!("custody event {}: prev does not name the previous event", e.seq)));
        }
        prev = Some(e.hash());
        expect += 1;
    }
    let at = fieldcap_evidence::time::now();
    let expect_head = head.as_ref().map(|(s, h)| (*s, h.as_str()));
    if !state.records.append_device_custody(&device.device_id, expect_head, &fresh, &at)? {
        return Err(Error::Conflict("the device's custody log moved during this request; send again".into()));
    }
    let (from, to) = (fresh[0].seq, expect - 1);
    state.custody("device_custody_received", None, serde_json::json!({ "device_id": device.device_id, "from_seq": from as i64, "to_seq": to as i64 }))?;
    Ok(CustodyAck { stored_through: to })
}
