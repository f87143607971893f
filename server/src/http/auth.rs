//! Device request authentication: every device call after enrolment is signed by the device key
//! over [`protocol::request_signing_string`] (method, path and query, timestamp, nonce, body
//! digest), within [`protocol::MAX_SKEW_MS`] of the server clock, with a nonce never used before.
//!
//! In two steps, so a body is never buffered for a request that cannot be a device's
//! ([`signed_body`]): [`precheck`] reads the signed headers (well-formed, timestamp fresh) and
//! looks the device up, before the body; [`verify`] checks the signature over the body, then
//! revocation and the nonce. Until the signature holds, an unknown device, a revoked one and a
//! bad signature get the very same answer ([`not_verified`]) after the same work (an unknown
//! device's body is read and thrown away, not skipped), so the answers do not tell which device
//! ids are enrolled. A revoked device whose signature holds is told it is revoked.

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::http::blocking;
use crate::http::body::{declared_length, discard_body, linger, read_body, BodyHold};
use crate::state::AppState;
use crate::store::DeviceRecord;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use fieldcap_evidence::identity::parse_public_pem;
use fieldcap_evidence::protocol;
use std::sync::Arc;

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

/// The one refusal for an unknown device, a revoked device's request that does not verify, and
/// a bad signature.
pub(crate) fn not_verified() -> Error {
    Error::Unauthenticated("the request signature does not verify".into())
}

/// Whether `ts` (Unix ms) is more than [`protocol::MAX_SKEW_MS`] from `now`, without overflow
/// for any pair of `i64`.
fn is_stale(now: i64, ts: i64) -> bool {
    now.abs_diff(ts) > protocol::MAX_SKEW_MS.unsigned_abs()
}

/// The signed headers of a request, checked for form and freshness, and the device they name
/// (`None` if unknown).
pub(crate) struct Claim {
    device_id: String,
    ts: i64,
    nonce: String,
    sig: Vec<u8>,
    device: Option<DeviceRecord>,
}

/// Checks what can be checked before the body: the signed headers are well-formed, the
/// timestamp is within [`protocol::MAX_SKEW_MS`] of the server clock; and looks the device up.
pub(crate) fn precheck(state: &AppState, headers: &HeaderMap) -> Result<Claim> {
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
    if is_stale(now, ts) {
        return Err(Error::StaleRequest(format!(
            "the request time is {} ms from the server clock (allowed {}); measure the offset with GET /v1/time",
            now.saturating_sub(ts),
            protocol::MAX_SKEW_MS
        )));
    }
    let device = state.records.device(device_id)?;
    Ok(Claim { device_id: device_id.to_string(), ts, nonce: nonce.to_string(), sig, device })
}

/// Checks the signature over the request with its body, then that the device is not revoked and
/// the nonce unused. Returns the device.
pub(crate) fn verify(state: &AppState, claim: &Claim, method: &Method, uri: &Uri, body: &[u8]) -> Result<DeviceRecord> {
    let device = claim.device.as_ref().ok_or_else(not_verified)?;
    let key = parse_public_pem(&device.public_key_pem)?;
    let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let msg = protocol::request_signing_string(method.as_str(), pq, claim.ts, &claim.nonce, body);
    fieldcap_evidence::identity::verify(&key, &msg, &claim.sig).map_err(|_| not_verified())?;
    if device.revoked_at.is_some() {
        return Err(Error::DeviceRevoked);
    }
    // Nonces are remembered for twice the allowed skew: an older request is refused as stale.
    if !state.records.use_nonce(&claim.device_id, &claim.nonce, claim.ts, now_ms().saturating_sub(2 * protocol::MAX_SKEW_MS))? {
        return Err(Error::ReplayedRequest);
    }
    Ok(device.clone())
}

/// Checks a device-signed request without a body ([`precheck`] then [`verify`]). Returns the
/// device.
pub(crate) fn authenticate(state: &AppState, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<DeviceRecord> {
    let claim = precheck(state, headers)?;
    verify(state, &claim, method, uri, body)
}

/// For a device-signed request with a JSON body of at most `limit` bytes: refuses an
/// over-long `Content-Length`, then runs [`precheck`], and only then reads the body (within the
/// body budget and rate, see [`crate::http::body`]). An unknown device's body is read and
/// dropped, and the request refused as [`not_verified`]. The caller runs [`verify`] over the
/// bytes and keeps the hold while it keeps them. A request refused before its body is read has
/// the body thrown away in the background ([`linger`]).
pub(crate) async fn signed_body(state: &Arc<AppState>, headers: &HeaderMap, body: Body, limit: usize) -> Result<(Claim, Bytes, BodyHold)> {
    if let Err(e) = declared_length(headers, limit) {
        return Err(linger(state, body, limit, e));
    }
    let (st, h) = (state.clone(), headers.clone());
    let claim = match blocking(move || precheck(&st, &h)).await {
        Ok(c) => c,
        Err(e) => return Err(linger(state, body, limit, e)),
    };
    if claim.device.is_none() {
        discard_body(state, headers, body, limit).await?;
        return Err(not_verified());
    }
    let (bytes, hold) = read_body(state, headers, body, limit).await?;
    Ok((claim, bytes, hold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_never_overflows() {
        let now = 1_750_000_000_000i64;
        assert!(!is_stale(now, now));
        assert!(!is_stale(now, now - protocol::MAX_SKEW_MS));
        assert!(!is_stale(now, now + protocol::MAX_SKEW_MS));
        assert!(is_stale(now, now - protocol::MAX_SKEW_MS - 1));
        assert!(is_stale(now, now + protocol::MAX_SKEW_MS + 1));
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, now.wrapping_sub(i64::MIN), now.wrapping_add(i64::MIN), -1, 0] {
            assert!(is_stale(now, ts), "{ts}");
        }
        assert!(is_stale(i64::MIN, i64::MAX) && is_stale(i64::MAX, i64::MIN));
    }
}
