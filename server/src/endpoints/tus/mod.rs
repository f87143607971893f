//! tus 1.0 media uploads: core, creation, creation-with-upload, termination, expiration.
//!
//! `POST /v1/manifests` creates the upload resource and answers its URL,
//! `/v1/uploads/<capability>`, where the capability is 32 random bytes in hex, bound to one clip
//! and stored by the server; knowing the URL is the permission to send that clip's bytes (which
//! must still match the signed digests). Any tus 1.0 client can then upload in either way:
//!
//! * **resume an existing upload** (what the Fieldcap device does): `HEAD <url>` for
//!   `Upload-Offset`, then `PATCH <url>` chunks with `Content-Type:
//!   application/offset+octet-stream`;
//! * **creation** (what a generic client such as Python `tuspy` does when given an endpoint):
//!   use the upload URL itself as the creation endpoint. `POST <url>` with `Upload-Length`
//!   (which must equal the manifest's byte count) answers `201` with `Location: <url>` and resets
//!   any partial bytes; a body with `Content-Type: application/offset+octet-stream` is taken as
//!   the first chunk (creation-with-upload). `POST /v1/uploads` also works as a creation
//!   endpoint when `Upload-Metadata` carries `fieldcap-upload <base64 of the capability>`.
//!
//! `OPTIONS` on either path advertises `Tus-Version`, `Tus-Extension`, `Tus-Max-Size`.
//! Every other request must carry `Tus-Resumable: 1.0.0` (else 412). A `PATCH` whose
//! `Upload-Offset` is not the upload's offset gets 409 (send `HEAD` and continue). `DELETE`
//! terminates an unfinished upload (its partial bytes are discarded; a new upload URL comes with
//! the next `POST /v1/manifests`); a completed upload cannot be deleted. Each upload expires
//! (`Upload-Expires`, default 7 days) and then answers 410.
//!
//! Partial bytes go to the item's partial upload in the blob store
//! ([`crate::store::BlobStore::open_partial`]; `<data>/uploads/<clip_id>.part` in the embedded
//! store). The offset on record only advances after
//! an fsync (at the end of each PATCH, every 64 MiB within one, and when a connection breaks
//! mid-body), so a server killed at any instant resumes at the last fsynced offset; unsynced
//! bytes past it are truncated before the next write. When the last byte arrives the file is
//! re-hashed (length, SHA-256, BLAKE3) against the signed manifest: a mismatch is refused (422
//! `digest-mismatch`), recorded in custody, the partial discarded and the upload reset to 0 (the
//! manifest stays on record); a match moves the file into the blob store, appends the log leaf
//! and stores the receipt, fetched with `GET /v1/receipts/{clip_id}` (the final PATCH's response
//! also names it in `Fieldcap-Receipt`).
//!
//! ```text
//! POST /v1/manifests            -> {"upload_url": "/v1/uploads/9f…", …}
//! HEAD  /v1/uploads/9f…         <- Upload-Offset: 0, Upload-Length: 1048576
//! PATCH /v1/uploads/9f…  (Upload-Offset: 0, 1 MiB)  <- 204 Upload-Offset: 1048576
//! ```
//!
//! This file speaks the protocol; `receive.rs` writes a body into the partial upload and
//! `complete.rs` verifies a finished upload, stores it and receipts it.

mod complete;
mod receive;

pub(crate) use complete::{discard_unwanted_partial, finalize, recover, restart_offset};
use complete::{device_revoked, terminate_for_revocation};

use crate::clock::{http_date, now_ms};
use crate::endpoints::manifests::upload_path;
use crate::error::{Error, Result};
use crate::http::{blocking, AppStateRef};
use crate::state::AppState;
use crate::store::{ItemRecord, UploadRecord};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use receive::receive;
use std::sync::Arc;
use std::time::Duration;

/// The tus version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// Extensions supported.
pub const TUS_EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration";
/// Content type of PATCH bodies.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Within one PATCH, the offset on record advances (after an fsync) at least this often.
pub const SYNC_EVERY: u64 = 64 * 1024 * 1024;
/// Body bytes are buffered up to this size before each write.
const WRITE_BUF: usize = 1024 * 1024;
/// How long a request waits for another one writing to the same upload.
const LOCK_WAIT: Duration = Duration::from_secs(5);

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Checks `Tus-Resumable` on every tus request except OPTIONS, and adds it to every answer.
///
/// A refusal of a request that carries a body also says `Connection: close`: the refusal may
/// come before the body is read (unknown upload, revoked device, wrong offset), and then hyper
/// closes the connection after the answer without saying so; a client that finished sending
/// the body would pool the connection and its next request would race the close
/// (`IncompleteMessage`).
pub(crate) async fn tus_headers(req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");
    let finish = |mut r: Response| {
        r.headers_mut().insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
        if has_body && (r.status().is_client_error() || r.status().is_server_error()) {
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    };
    if req.method() != Method::OPTIONS {
        let ok = req.headers().get("tus-resumable").and_then(|v| v.to_str().ok()) == Some(TUS_VERSION);
        if !ok {
            return finish(Error::TusVersion.into_response());
        }
    }
    finish(next.run(req).await)
}

/// `OPTIONS`: capabilities.
pub(crate) async fn options(State(state): AppStateRef) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-extension", HeaderValue::from_static(TUS_EXTENSIONS));
    h.insert("tus-max-size", hv(&state.cfg.max_upload_bytes.to_string()));
    r
}

fn is_capability(s: &str) -> bool {
    crate::store::is_sha256_hex(s)
}

/// Loads an upload and its item; refuses unknown, terminated and expired uploads.
fn load(state: &AppState, capability: &str) -> Result<(UploadRecord, ItemRecord)> {
    if !is_capability(capability) {
        return Err(Error::NotFound("no such upload".into()));
    }
    let up = state.records.upload_by_capability(capability)?.ok_or_else(|| Error::NotFound("no such upload".into()))?;
    let item = state.records.item(&up.clip_id)?.ok_or_else(|| Error::Internal("upload without item".into()))?;
    if device_revoked(state, &item)? && up.state != "complete" {
        return Err(Error::DeviceRevoked);
    }
    match up.state.as_str() {
        "terminated" => return Err(Error::Gone("the upload was terminated; submit the manifest again for a new upload URL".into())),
        "expired" => return Err(Error::Gone("the upload expired; submit the manifest again for a new upload URL".into())),
        "open" if up.expires_at_ms <= now_ms() => {
            discard_unwanted_partial(state, &up.clip_id);
            state.records.set_upload_state(&up.clip_id, "expired", 0)?;
            return Err(Error::Gone("the upload expired; submit the manifest again for a new upload URL".into()));
        }
        _ => {}
    }
    Ok((up, item))
}

/// [`load`] for a request handler: the upload of a revoked device is ended first (under the
/// upload's lock, see [`terminate_for_revocation`]) and refused with `device-revoked`.
async fn load_live(state: &Arc<AppState>, cap: String) -> Result<(UploadRecord, ItemRecord)> {
    let (st, c) = (state.clone(), cap.clone());
    match blocking(move || load(&st, &c)).await {
        Err(Error::DeviceRevoked) => {
            let (st, c) = (state.clone(), cap);
            let up = blocking(move || st.records.upload_by_capability(&c)).await?.ok_or_else(|| Error::NotFound("no such upload".into()))?;
            let _guard = lock(state, &up.clip_id).await?;
            end_revoked_locked(state, up.clip_id).await
        }
        other => other,
    }
}

/// Ends a revoked device's upload (the caller holds its lock) and answers `device-revoked`.
async fn end_revoked_locked(state: &Arc<AppState>, clip_id: String) -> Result<(UploadRecord, ItemRecord)> {
    let st = state.clone();
    blocking(move || terminate_for_revocation(&st, &clip_id)).await?;
    Err(Error::DeviceRevoked)
}

/// [`load`] again under the upload's lock (the caller holds it), ending the upload if the
/// device was revoked meanwhile.
async fn reload_locked(state: &Arc<AppState>, cap: String) -> Result<(UploadRecord, ItemRecord)> {
    let st = state.clone();
    let c = cap.clone();
    match blocking(move || load(&st, &c)).await {
        Err(Error::DeviceRevoked) => {
            let st = state.clone();
            let up = blocking(move || st.records.upload_by_capability(&cap)).await?.ok_or_else(|| Error::NotFound("no such upload".into()))?;
            end_revoked_locked(state, up.clip_id).await
        }
        other => other,
    }
}

fn upload_headers(r: &mut Response, up: &UploadRecord, offset: u64) {
    let h = r.headers_mut();
    h.insert("upload-offset", hv(&offset.to_string()));
    h.insert("upload-length", hv(&up.length.to_string()));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if up.state == "open" {
        h.insert("upload-expires", hv(&http_date(up.expires_at_ms)));
    }
}

/// Finishes an upload that holds every byte but was never finished (its last request was cut
/// after the last byte, or its handler was dropped): under the upload's lock, re-read, and
/// complete it if it is still open at full length. Returns the upload as it now stands.
async fn finish_if_whole(state: &Arc<AppState>, item: &ItemRecord) -> Result<Option<UploadRecord>> {
    let _guard = lock(state, &item.clip_id).await?;
    finish_if_whole_locked(state, item).await
}

/// [`finish_if_whole`] for a caller that already holds the upload's lock (PATCH, POST).
async fn finish_if_whole_locked(state: &Arc<AppState>, item: &ItemRecord) -> Result<Option<UploadRecord>> {
    let (st, clip_id) = (state.clone(), item.clip_id.clone());
    let Some(mut up) = blocking(move || st.records.upload_for_clip(&clip_id)).await? else { return Ok(None) };
    if up.state == "open" && up.length > 0 && up.offset == up.length {
        let (st, i2, u2) = (state.clone(), item.clone(), up.clone());
        blocking(move || finalize(&st, &i2, &u2)).await?;
        up.state = "complete".into();
    }
    Ok(Some(up))
}

/// `HEAD <upload_url>`. An upload found whole but unfinished is finished first, so a client
/// that resumes after a cut learns it is complete (and its receipt exists).
pub(crate) async fn head(State(state): AppStateRef, Path(cap): Path<String>) -> Result<Response> {
    let (mut up, item) = load_live(&state, cap).await?;
    if up.state == "open" && up.length > 0 && up.offset == up.length {
        up = finish_if_whole(&state, &item).await?.unwrap_or(up);
    }
    let mut r = StatusCode::OK.into_response();
    let offset = up.offset;
    upload_headers(&mut r, &up, offset);
    Ok(r)
}

async fn lock(state: &Arc<AppState>, clip_id: &str) -> Result<crate::state::UploadGuard> {
    state.lock_upload(clip_id, LOCK_WAIT).await
}

pub(crate) fn header_u64(h: &HeaderMap, name: &str) -> Result<Option<u64>> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| Error::BadRequest(format!("{name} is not a non-negative integer"))),
    }
}

pub(crate) fn check_patch_content_type(h: &HeaderMap) -> Result<()> {
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some(OFFSET_OCTET_STREAM) {
        return Err(Error::UnsupportedMediaType(format!("upload bodies must be {OFFSET_OCTET_STREAM}")));
    }
    Ok(())
}

/// `PATCH <upload_url>`.
pub(crate) async fn patch(State(state): AppStateRef, Path(cap): Path<String>, headers: HeaderMap, body: Body) -> Result<Response> {
    check_patch_content_type(&headers)?;
    let claimed = header_u64(&headers, "upload-offset")?.ok_or_else(|| Error::BadRequest("Upload-Offset is missing".into()))?;
    let (up, _) = load_live(&state, cap).await?;
    let _guard = lock(&state, &up.clip_id).await?;
    // Re-read under the lock.
    let (up, item) = reload_locked(&state, up.capability.clone()).await?;
    if up.state == "complete" {
        if claimed == up.length {
            let mut r = StatusCode::NO_CONTENT.into_response();
            upload_headers(&mut r, &up, up.length);
            return Ok(r);
        }
        return Err(Error::OffsetMismatch { expected: up.length });
    }
    if claimed != up.offset {
        return Err(Error::OffsetMismatch { expected: up.offset });
    }
    write_and_maybe_finish(state, up, item, &headers, body, StatusCode::NO_CONTENT, None).await
}

/// Receives a body at the upload's offset, then finishes the upload if complete.
async fn write_and_maybe_finish(
    state: Arc<AppState>,
    up: UploadRecord,
    item: ItemRecord,
    headers: &HeaderMap,
    body: Body,
    ok_status: StatusCode,
    location: Option<String>,
) -> Result<Response> {
    if let Some(cl) = header_u64(headers, header::CONTENT_LENGTH.as_str())? {
        if up.offset.saturating_add(cl) > up.length {
            return Err(Error::UploadLength(format!(
                "the body would end at byte {}, past the upload's length {}",
                up.offset.saturating_add(cl),
                up.length
            )));
        }
    }
    let offset = match receive(&state, &up, body).await {
        Ok(offset) => offset,
        Err(e) => {
            // A request cut after its last byte arrived (the client killed before the body's
            // end) still delivered the whole upload: finish it now, not at the next start.
            // (The caller holds the upload's lock.)
            finish_if_whole_locked(&state, &item).await?;
            return Err(e);
        }
    };
    let mut up_now = up.clone();
    up_now.offset = offset;
    let mut receipt_url = None;
    if offset == up.length {
        let st = state.clone();
        let (u2, i2) = (up_now.clone(), item.clone());
        blocking(move || finalize(&st, &i2, &u2)).await?;
        up_now.state = "complete".into();
        receipt_url = Some(format!("/v1/receipts/{}", item.clip_id));
    }
    let mut r = ok_status.into_response();
    upload_headers(&mut r, &up_now, offset);
    if let Some(l) = location {
        r.headers_mut().insert(header::LOCATION, hv(&l));
    }
    if let Some(u) = receipt_url {
        r.headers_mut().insert("fieldcap-receipt", hv(&u));
    }
    Ok(r)
}

fn upload_length(h: &HeaderMap, up: &UploadRecord) -> Result<()> {
    if h.contains_key("upload-defer-length") {
        return Err(Error::UploadLength("Upload-Defer-Length is not supported; the length is the manifest's byte count".into()));
    }
    let len = header_u64(h, "upload-length")?.ok_or_else(|| Error::UploadLength("Upload-Length is missing".into()))?;
    if len != up.length {
        return Err(Error::UploadLength(format!("Upload-Length {len} is not the manifest's byte count {}", up.length)));
    }
    Ok(())
}

/// Creation on a known upload: resets partial bytes, optionally takes a first chunk.
async fn create(state: Arc<AppState>, cap: String, headers: HeaderMap, body: Body) -> Result<Response> {
    let (up, _) = load_live(&state, cap).await?;
    upload_length(&headers, &up)?;
    if up.state == "complete" {
        return Err(Error::Conflict(format!("this item's media was already received; its receipt is at /v1/receipts/{}", up.clip_id)));
    }
    let _guard = lock(&state, &up.clip_id).await?;
    // Re-read under the lock: a PATCH may have finished the upload since the check above, and a
    // finished upload never goes back to open.
    let (up, item) = reload_locked(&state, up.capability.clone()).await?;
    let st = state.clone();
    let (mut up, item) = blocking(move || {
        if up.state == "complete" {
            return Err(Error::Conflict(format!("this item's media was already received; its receipt is at /v1/receipts/{}", up.clip_id)));
        }
        if up.offset != 0 {
            discard_unwanted_partial(&st, &up.clip_id);
            st.records.set_upload_offset(&up.clip_id, 0)?;
        }
        Ok((up, item))
    })
    .await?;
    up.offset = 0;
    let location = upload_path(&up.capability);
    let has_body = headers.get(header::CONTENT_TYPE).is_some();
    if has_body {
        check_patch_content_type(&headers)?;
        return write_and_maybe_finish(state, up, item, &headers, body, StatusCode::CREATED, Some(location)).await;
    }
    if up.length == 0 {
        return write_and_maybe_finish(state, up, item, &headers, Body::empty(), StatusCode::CREATED, Some(location)).await;
    }
    let mut r = StatusCode::CREATED.into_response();
    upload_headers(&mut r, &up, 0);
    r.headers_mut().insert(header::LOCATION, hv(&location));
    Ok(r)
}

/// `POST <upload_url>`: creation (and creation-with-upload) at the capability URL.
pub(crate) async fn post_at(State(state): AppStateRef, Path(cap): Path<String>, headers: HeaderMap, body: Body) -> Result<Response> {
    create(state, cap, headers, body).await
}

/// `POST /v1/uploads`: creation endpoint; `Upload-Metadata` must carry `fieldcap-upload <base64 capability>`.
pub(crate) async fn post_endpoint(State(state): AppStateRef, headers: HeaderMap, body: Body) -> Result<Response> {
    let cap = capability_from_metadata(&headers)?;
    create(state, cap, headers, body).await
}

/// The upload capability carried by `Upload-Metadata` as `fieldcap-upload <base64>`.
pub(crate) fn capability_from_metadata(headers: &HeaderMap) -> Result<String> {
    let meta = headers.get("upload-metadata").and_then(|v| v.to_str().ok()).unwrap_or("");
    meta
        .split(',')
        .filter_map(|pair| {
            let mut it = pair.trim().splitn(2, ' ');
            match (it.next(), it.next()) {
                (Some("fieldcap-upload"), Some(v)) => base64::engine::general_purpose::STANDARD.decode(v.trim()).ok(),
                _ => None,
            }
        })
        .next()
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(|| Error::BadRequest("Upload-Metadata must carry fieldcap-upload with the upload URL's capability".into()))
}

/// `DELETE <upload_url>`: termination of an unfinished upload.
pub(crate) async fn delete(State(state): AppStateRef, Path(cap): Path<String>) -> Result<Response> {
    let (up, _) = load_live(&state, cap).await?;
    if up.state == "complete" {
        return Err(Error::Conflict("a received original is never deleted".into()));
    }
    let _guard = lock(&state, &up.clip_id).await?;
    let (up, _) = reload_locked(&state, up.capability.clone()).await?;
    let st = state.clone();
    blocking(move || {
        if up.state == "complete" {
            return Err(Error::Conflict("a received original is never deleted".into()));
        }
        discard_unwanted_partial(&st, &up.clip_id);
        if !st.records.set_upload_state(&up.clip_id, "terminated", 0)? {
            return Err(Error::Conflict("a received original is never deleted".into()));
        }
        st.custody("terminated", Some(&up.clip_id), serde_json::json!({ "discarded_bytes": up.offset }))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
