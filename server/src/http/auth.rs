//! Device request authentication: every device call after enrolment is signed by the device key
//! over [`protocol::request_signing_string`] (method, path and query, timestamp, nonce, body
//! digest), within [`protocol::MAX_SKEW_MS`] of the server clock, with a nonce never used before.

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::DeviceRecord;
use axum::http::{HeaderMap, Method, Uri};
use fieldcap_evidence::identity::parse_public_pem;
use fieldcap_evidence::protocol;

/// True for 32 lowercase hex digits (a device id).
fn is_device_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Result<&'a str> {
    h.get(name)
        .ok_or_else(|| Error::Unauthenticated(format!("missing {name} header")))?
        .to_str()
        .map_err(|_| Error::Unauthenticated(format!("{name} is not text")))
}

/// Checks a device-signed request: device enrolled and not revoked, timestamp within
/// [`protocol::MAX_SKEW_MS`], signature over [`protocol::request_signing_string`], nonce unused.
/// Returns the device.
pub(crate) fn authenticate(state: &AppState, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<DeviceRecord> {
    let device_id = header_str(headers, protocol::H_DEVICE)?;
    if !is_device_id(device_id) {
        return Err(Error::Unauthenticated("fieldcap-device is not a device id".into()));
    }
    let ts: i64 = header_str(headers, protocol::H_TIMESTAMP)?
        .parse()
        .map_err(|_| Error::Unauthenticated("fieldcap-timestamp is not a number".into()))?;
    let nonce = header_str(headers, protocol::H_NONCE)?;
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Unauthenticated("fieldcap-nonce must be 32 hex digits".into()));
    }
    let sig = protocol::unb64(header_str(headers, protocol::H_SIGNATURE)?, "fieldcap-signature")
        .map_err(|_| Error::Unauthenticated("fieldcap-signature is not base64".into()))?;
    let now = now_ms();
    if (now - ts).abs() > protocol::MAX_SKEW_MS {
        return Err(Error::StaleRequest(format!(
            "the request time is {} ms from the server clock (allowed {}); measure the offset with GET /v1/time",
            now - ts,
            protocol::MAX_SKEW_MS
        )));
    }
    let device = state.records.device(device_id)?.ok_or(Error::UnknownDevice)?;
    if device.revoked_at.is_some() {
        return Err(Error::DeviceRevoked);
    }
    let key = parse_public_pem(&device.public_key_pem)?;
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let msg = protocol::request_signing_string(method.as_str(), pq, ts, nonce, body);
    fieldcap_evidence::identity::verify(&key, &msg, &sig).map_err(|_| Error::Unauthenticated("the request signature does not verify".into()))?;
    // Nonces are remembered for twice the allowed skew: an older request is refused as stale.
    if !state.records.use_nonce(device_id, &nonce.to_ascii_lowercase(), ts, now - 2 * protocol::MAX_SKEW_MS)? {
        return Err(Error::ReplayedRequest);
    }
    Ok(device)
}
