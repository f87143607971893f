//! JSON endpoints: time, enrolment, manifests (hash first), receipts, log proofs; device request
//! authentication; common limits and the problem+json safety net.

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{DeviceRecord, EnrollOutcome, ItemRecord, MediaInfo, UploadRecord};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fieldcap_evidence::identity::{device_id_for, parse_public_pem};
use fieldcap_evidence::manifest::{ItemKind, Manifest};
use fieldcap_evidence::protocol::{
    self, Commitment, CommitmentResponse, DeviceCertificate, EnrollRequest, ManifestSubmission, ProofResponse, SignedDoc,
    TimeResponse,
};
use std::sync::Arc;

/// Largest manifest accepted (bytes).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest `POST /v1/manifests` body (base64 of the largest manifest plus signature and JSON).
pub const MAX_SUBMISSION_BODY: usize = MAX_MANIFEST_BYTES / 3 * 4 + 64 * 1024;
/// Largest other JSON body.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Longest accepted request URI.
pub const MAX_URI_BYTES: usize = 4096;
/// Longest accepted single header value.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Largest accepted sum of header names and values.
pub const MAX_HEADERS_TOTAL: usize = 64 * 1024;

pub(crate) type AppStateRef = State<Arc<AppState>>;

/// Runs blocking work (SQLite, files, hashing) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| Error::Internal("a worker task failed".into()))?
}

/// Reads a whole body up to `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Error::TooLarge(format!("the body is larger than {limit} bytes or was cut off")))
}

fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Result<Response> {
    let body = serde_json::to_vec(v)?;
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("{what} is not valid: {e}")))
}

/// True for 32 lowercase hex digits (a device id).
pub(crate) fn is_device_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Validates a clip id: a lowercase hyphenated UUID (so it is safe in paths and file names).
pub(crate) fn check_clip_id(s: &str) -> Result<()> {
    match uuid::Uuid::parse_str(s) {
        Ok(u) if u.hyphenated().to_string() == s => Ok(()),
        _ => Err(Error::NotFound("no such item".into())),
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(fieldcap_evidence::time::format)
        .unwrap_or_default()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Result<&'a str> {
    h.get(name)
        .ok_or_else(|| Error::Unauthenticated(format!("missing {name} header")))?
        .to_str()
        .map_err(|_| Error::Unauthenticated(format!("{name} is not text")))
}

/// Checks a device-signed request: device enrolled and not revoked, timestamp within
/// [`protocol::MAX_SKEW_MS`], signature over [`protocol::request_signing_string`], nonce unused.
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
    if !state.records.use_nonce(device_id, &nonce.to_ascii_lowercase(), ts, now - 2 * protocol::MAX_SKEW_MS)? {
        return Err(Error::ReplayedRequest);
    }
    Ok(device)
}

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
pub(crate) async fn enroll(State(state): AppStateRef, body: Body) -> Result<Response> {
    let bytes = read_body(body, MAX_JSON_BODY).await?;
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
    let key = parse_public_pem(&req.public_key_pem)?;
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

/// `POST /v1/manifests` (device-signed).
pub(crate) async fn manifests(State(state): AppStateRef, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Result<Response> {
    let bytes = read_body(body, MAX_SUBMISSION_BODY).await?;
    let (created, resp) = blocking(move || {
        let device = authenticate(&state, &method, &uri, &headers, &bytes)?;
        let sub: ManifestSubmission = parse_json(&bytes, "the manifest submission")?;
        commit_manifest(&state, &device, &sub)
    })
    .await?;
    json_response(if created { StatusCode::CREATED } else { StatusCode::OK }, &resp)
}

fn new_capability() -> String {
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    hex::encode(b)
}

pub(crate) fn new_upload(state: &AppState, clip_id: &str, length: u64) -> UploadRecord {
    UploadRecord {
        clip_id: clip_id.to_string(),
        capability: new_capability(),
        length,
        offset: 0,
        created_at: fieldcap_evidence::time::now(),
        expires_at_ms: now_ms().saturating_add(state.cfg.upload_ttl.as_millis() as i64),
        state: "open".into(),
    }
}

/// Path of an upload URL.
pub(crate) fn upload_path(capability: &str) -> String {
    format!("/v1/uploads/{capability}")
}

fn commit_manifest(state: &AppState, device: &DeviceRecord, sub: &ManifestSubmission) -> Result<(bool, CommitmentResponse)> {
    if sub.manifest.len() > MAX_SUBMISSION_BODY || sub.sig.len() > 200 {
        return Err(Error::TooLarge("manifest or signature too long".into()));
    }
    let bytes = protocol::unb64(&sub.manifest, "manifest").map_err(|_| Error::BadRequest("manifest is not base64".into()))?;
    let sig = protocol::unb64(&sub.sig, "sig").map_err(|_| Error::BadRequest("sig is not base64".into()))?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(Error::TooLarge("the manifest is larger than 4 MiB".into()));
    }
    let m = Manifest::parse(&bytes).map_err(|e| Error::InvalidManifest(strip_prefix(&e.to_string())))?;
    if m.device_id != device.device_id {
        return Err(Error::DeviceMismatch("the manifest's device_id is not the device that signed the request".into()));
    }
    fieldcap_evidence::identity::verify_with_pem(&device.public_key_pem, &bytes, &sig)
        .map_err(|e| Error::BadSignature(strip_prefix(&e.to_string())))?;
    if let Some(md) = &m.media {
        if md.bytes > state.cfg.max_upload_bytes {
            return Err(Error::TooLarge(format!("media of {} bytes exceeds the server's limit of {}", md.bytes, state.cfg.max_upload_bytes)));
        }
    }
    let sha = fieldcap_evidence::hashing::sha256_hex(&bytes);
    let _guard = state.commit_lock.lock().map_err(|_| Error::Internal("commit lock poisoned".into()))?;

    if let Some(existing) = state.records.item(&m.clip_id)? {
        if existing.manifest_sha256 == sha && existing.device_id == device.device_id {
            return Ok((false, answer(state, &existing)?));
        }
        state.custody(
            "conflict",
            Some(&m.clip_id),
            serde_json::json!({ "reason": "a different manifest for a known clip_id", "on_record": existing.manifest_sha256, "offered": sha }),
        )?;
        return Err(Error::Conflict("a different manifest is on record for this clip_id".into()));
    }
    if let Some(other) = state.records.item_by_seq(&device.device_id, m.seq)? {
        state.custody(
            "conflict",
            Some(&m.clip_id),
            serde_json::json!({ "reason": "a different manifest for a known seq", "seq": m.seq, "on_record_clip_id": other.clip_id, "offered": sha }),
        )?;
        return Err(Error::Conflict(format!("seq {} of this device is on record with another clip", m.seq)));
    }
    if m.seq > 1 {
        if let Some(p) = state.records.item_by_seq(&device.device_id, m.seq - 1)? {
            if m.prev.as_deref() != Some(p.manifest_sha256.as_str()) {
                state.custody(
                    "conflict",
                    Some(&m.clip_id),
                    serde_json::json!({ "reason": "prev does not name the manifest on record for seq-1", "seq": m.seq, "offered": sha }),
                )?;
                return Err(Error::Conflict("prev does not match the manifest on record for the previous seq".into()));
            }
        }
    }
    if let Some(n) = state.records.item_by_seq(&device.device_id, m.seq + 1)? {
        let next_prev = Manifest::parse(&n.manifest).ok().and_then(|nm| nm.prev);
        if next_prev.as_deref() != Some(sha.as_str()) {
            state.custody(
                "conflict",
                Some(&m.clip_id),
                serde_json::json!({ "reason": "the manifest on record for seq+1 names another prev", "seq": m.seq, "offered": sha }),
            )?;
            return Err(Error::Conflict("the manifest on record for the next seq names another previous manifest".into()));
        }
    }
    let max = state.records.max_seq(&device.device_id)?.unwrap_or(0);
    if m.seq > max + 1 {
        state.custody("seq_gap", Some(&m.clip_id), serde_json::json!({ "device_id": device.device_id, "expected": max + 1, "got": m.seq }))?;
    }

    let committed_at = fieldcap_evidence::time::now();
    let commitment = Commitment {
        doc_type: protocol::types::COMMITMENT.into(),
        clip_id: m.clip_id.clone(),
        device_id: m.device_id.clone(),
        seq: m.seq,
        manifest_sha256: sha.clone(),
        committed_at: committed_at.clone(),
        server_key_id: state.key_id.clone(),
    };
    let (cbody, csig) = state.sign_doc(&commitment)?;
    let item = ItemRecord {
        clip_id: m.clip_id.clone(),
        device_id: m.device_id.clone(),
        seq: m.seq,
        kind: m.kind.as_str().into(),
        manifest: bytes.clone(),
        manifest_sig: sig,
        manifest_sha256: sha.clone(),
        media: m.media.as_ref().map(|md| MediaInfo { mime: md.mime.clone(), bytes: md.bytes, sha256: md.sha256.clone(), blake3: md.blake3.clone() }),
        started_at: m.capture.started_at.clone(),
        ended_at: m.capture.ended_at.clone(),
        commitment: cbody,
        commitment_sig: csig,
        committed_at,
        state: "committed".into(),
        blob_sha256: None,
        receipt: None,
        receipt_sig: None,
        received_at: None,
        log_index: None,
        refusals: 0,
        last_refusal: None,
    };
    let upload = item.media.as_ref().map(|md| new_upload(state, &item.clip_id, md.bytes));
    if !state.records.insert_item(&item, upload.as_ref())? {
        return Err(Error::Conflict("the clip_id or seq was recorded concurrently".into()));
    }
    state.custody("received", Some(&item.clip_id), serde_json::json!({ "manifest_sha256": sha, "seq": m.seq, "kind": m.kind.as_str() }))?;
    if m.kind == ItemKind::Observation {
        crate::receipts::complete(state, &item, None, None)?;
    } else if let Some(u) = &upload {
        if u.length == 0 {
            // Nothing to upload: verify the empty file now.
            let _ = crate::tus::finalize(state, &item, u);
        }
    }
    let stored = state.records.item(&item.clip_id)?.ok_or_else(|| Error::Internal("item vanished".into()))?;
    Ok((true, answer(state, &stored)?))
}

pub(crate) fn strip_prefix(s: &str) -> String {
    s.trim_start_matches("invalid input: ").trim_start_matches("integrity check failed: ").to_string()
}

/// The commitment response for an item on record (fresh upload URL if the old one expired or
/// was terminated).
fn answer(state: &AppState, item: &ItemRecord) -> Result<CommitmentResponse> {
    let commitment = SignedDoc::new(&item.commitment, &item.commitment_sig);
    if let (Some(r), Some(s)) = (&item.receipt, &item.receipt_sig) {
        return Ok(CommitmentResponse { commitment, upload_url: None, upload_expires: None, receipt: Some(SignedDoc::new(r, s)) });
    }
    let Some(md) = &item.media else {
        return Ok(CommitmentResponse { commitment, upload_url: None, upload_expires: None, receipt: None });
    };
    let mut up = state.records.upload_for_clip(&item.clip_id)?;
    let usable = up.as_ref().is_some_and(|u| u.state == "open" && u.expires_at_ms > now_ms());
    if !usable {
        crate::tus::discard_unwanted_partial(state, &item.clip_id);
        let fresh = new_upload(state, &item.clip_id, md.bytes);
        state.records.put_upload(&fresh)?;
        up = Some(fresh);
    }
    let u = up.ok_or_else(|| Error::Internal("no upload".into()))?;
    Ok(CommitmentResponse {
        commitment,
        upload_url: Some(upload_path(&u.capability)),
        upload_expires: Some(rfc3339_ms(u.expires_at_ms)),
        receipt: None,
    })
}

/// `GET /v1/receipts/{clip_id}` (device-signed; a device sees only its own items).
pub(crate) async fn receipt(State(state): AppStateRef, Path(clip_id): Path<String>, method: Method, uri: Uri, headers: HeaderMap) -> Result<Response> {
    let doc = blocking(move || {
        let device = authenticate(&state, &method, &uri, &headers, b"")?;
        check_clip_id(&clip_id)?;
        let item = state
            .records
            .item(&clip_id)?
            .filter(|i| i.device_id == device.device_id)
            .ok_or_else(|| Error::NotFound("no such item of this device".into()))?;
        match (&item.receipt, &item.receipt_sig) {
            (Some(r), Some(s)) => Ok(SignedDoc::new(r, s)),
            _ => Err(Error::NoReceiptYet("the media has not been received and verified yet".into())),
        }
    })
    .await?;
    json_response(StatusCode::OK, &doc)
}

/// `GET /v1/log/checkpoint`: the newest signed checkpoint (text/plain).
pub(crate) async fn checkpoint(State(state): AppStateRef) -> Result<Response> {
    let note = blocking(move || {
        let size = state.log()?.size();
        state.checkpoint_note(size)
    })
    .await?;
    let mut r = note.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn query_u64(q: &Option<String>, name: &str) -> Result<u64> {
    let q = q.as_deref().unwrap_or("");
    for pair in q.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if k == name {
                return v.parse().map_err(|_| Error::BadRequest(format!("query parameter {name} is not a number")));
            }
        }
    }
    Err(Error::BadRequest(format!("query parameter {name} is missing")))
}

/// `GET /v1/log/consistency?from=&to=`.
pub(crate) async fn consistency(State(state): AppStateRef, RawQuery(q): RawQuery) -> Result<Response> {
    let from = query_u64(&q, "from")?;
    let to = query_u64(&q, "to")?;
    let proof = blocking(move || Ok(state.log()?.consistency(from, to)?)).await?;
    json_response(StatusCode::OK, &ProofResponse { proof: fieldcap_evidence::tlog::proof_to_hex(&proof) })
}

/// `GET /v1/log/inclusion?index=&tree_size=`.
pub(crate) async fn inclusion(State(state): AppStateRef, RawQuery(q): RawQuery) -> Result<Response> {
    let index = query_u64(&q, "index")?;
    let size = query_u64(&q, "tree_size")?;
    let proof = blocking(move || Ok(state.log()?.inclusion(index, size)?)).await?;
    json_response(StatusCode::OK, &ProofResponse { proof: fieldcap_evidence::tlog::proof_to_hex(&proof) })
}

/// Fallback for unknown paths.
pub(crate) async fn not_found() -> Error {
    Error::NotFound("no such resource".into())
}

/// Refuses over-long URIs and headers before any handler runs.
pub(crate) async fn limits(req: Request<Body>, next: Next) -> Response {
    if req.uri().to_string().len() > MAX_URI_BYTES {
        return Error::BadRequest("the request URI is too long".into()).into_response();
    }
    let mut total = 0usize;
    for (k, v) in req.headers() {
        if v.len() > MAX_HEADER_BYTES {
            return Error::HeadersTooLarge.into_response();
        }
        total += k.as_str().len() + v.len();
    }
    if total > MAX_HEADERS_TOTAL {
        return Error::HeadersTooLarge.into_response();
    }
    next.run(req).await
}

/// Turns any error response that is not already problem+json (router 405s, framework
/// rejections) into one.
pub(crate) async fn problem_safety_net(req: Request<Body>, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    if status.as_u16() < 400 {
        return r;
    }
    let is_problem = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if is_problem {
        return r;
    }
    let (name, title) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "Request body too large"),
        s if s.is_server_error() => ("internal", "Internal server error"),
        _ => ("malformed-request", "Malformed request"),
    };
    let mut out = crate::error::problem_response(&crate::error::problem(status, name, title, None));
    for (k, v) in r.headers() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
