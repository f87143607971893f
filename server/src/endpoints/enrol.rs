//! `GET /v1/time` (server time, key and log origin: a device measures its clock offset) and
//! `POST /v1/enroll` (a one-time token and the device's public key in, a signed device
//! certificate out).

use crate::clock::{now_ms, rfc3339_ms};
use crate::error::{Error, Result};
use crate::http::body::{json_response, parse_json, read_body};
use crate::http::limits::MAX_JSON_BODY;
use crate::http::{blocking, AppStateRef};
use crate::state::AppState;
use crate::store::{DeviceRecord, EnrollOutcome};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use fieldcap_evidence::identity::{device_id_for, parse_device_key_pem};
use fieldcap_evidence::protocol::{self, DeviceCertificate, EnrollRequest, SignedDoc, TimeResponse};

/// `GET /v1/time`.
pub(crate) async fn time(State(state): AppStateRef) -> Result<Response> {
    let ms = now_ms();
    json_response(
        StatusCode::OK,
        &TimeResponse {
            server_time: rfc3339_ms(ms),
            server_time_ms: ms,
            server_key_pem: state.key.public_pem(),
            server_key_id: state.key_id.clone(),
            log_origin: state.origin.clone(),
        },
    )
}

/// `POST /v1/enroll`.
pub(crate) async fn enroll(State(state): AppStateRef, headers: HeaderMap, body: Body) -> Result<Response> {
    let (bytes, _hold) = read_body(&state, &headers, body, MAX_JSON_BODY).await?;
    let req: EnrollRequest = parse_json(&bytes, "the enrolment request")?;
    let (status, doc) = blocking(move || enroll_blocking(&state, req)).await?;
    json_response(status, &doc)
}

/// SHA-256 hex of a token (only the hash is stored).
pub(crate) fn token_hash(token: &str) -> String {
    fieldcap_evidence::hashing::sha256_hex(token.as_bytes())
}

fn enroll_blocking(state: &AppState, req: EnrollRequest) -> Result<(StatusCode, SignedDoc)> {
    if req.token.is_empty() || req.token.len() > 128 {
        return Err(Error::InvalidToken);
    }
    if req.org.as_ref().is_some_and(|o| o.len() > 200) {
        return Err(Error::BadRequest("org is longer than 200 bytes".into()));
    }
    if req.public_key_pem.len() > 4096 {
        return Err(Error::BadRequest("the public key is too long".into()));
    }
    // A small-order or non-canonically encoded key is refused here, before the token is used.
    let key = parse_device_key_pem(&req.public_key_pem)?;
    let device_id = device_id_for(&key);
    let pem = fieldcap_evidence::identity::public_key_pem(&key);
    let at = fieldcap_evidence::time::now();
    let build = |role: &str| -> Result<DeviceRecord> {
        let cert = DeviceCertificate {
            doc_type: protocol::types::DEVICE_CERT.into(),
            device_id: device_id.clone(),
            public_key_pem: pem.clone(),
            role: role.to_string(),
            org: req.org.clone(),
            enrolled_at: at.clone(),
            server_key_id: state.key_id.clone(),
        };
        let (body, sig) = state.sign_doc(&cert)?;
        Ok(DeviceRecord {
            device_id: device_id.clone(),
            public_key_pem: pem.clone(),
            role: role.to_string(),
            org: req.org.clone(),
            enrolled_at: at.clone(),
            cert: body,
            cert_sig: sig,
            revoked_at: None,
        })
    };
    match state.records.enroll(&token_hash(&req.token), &device_id, now_ms(), &at, &build)? {
        EnrollOutcome::Enrolled(d) => {
            state.custody("enrolled", None, serde_json::json!({ "device_id": d.device_id, "role": d.role }))?;
            Ok((StatusCode::CREATED, SignedDoc::new(&d.cert, &d.cert_sig)))
        }
        EnrollOutcome::Existing(d) => Ok((StatusCode::OK, SignedDoc::new(&d.cert, &d.cert_sig))),
        EnrollOutcome::InvalidToken => Err(Error::InvalidToken),
        EnrollOutcome::Revoked => Err(Error::DeviceRevoked),
    }
}
