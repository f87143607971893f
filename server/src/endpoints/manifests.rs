//! `POST /v1/manifests`: hash first. A device puts an item's signed manifest on record before
//! its media moves; the server checks the signature and the device's chain (seq, prev), stores
//! the manifest with a signed commitment and answers the upload URL for the media (or, for an
//! observation, the receipt at once). Sending the same manifest again answers the same record.
//!
//! `POST /v1/manifests/sealed` is the same for an item sealed encrypted on the device: the item
//! key is unwrapped with the escrow keys ([`crate::escrow`]), the manifest decrypted with it, and
//! from there on everything is as above (the signature covers the plaintext manifest). The item
//! then remembers its key wrap and the length of its media's age file, which is the length of
//! its tus upload (the ciphertext; decrypted and checked on the last byte, see
//! `tus::complete`). A clip is sealed or not by its FIRST submission: the same manifest sent
//! again the other way answers the same commitment and upload as before. A live recording whose
//! pieces came in the clear (`PUT /v1/live`) and that the phone sealed when it finished is
//! submitted sealed too: the pieces held stay on record, their bytes are set aside
//! (`live_prefix_set_aside`) and the encrypted file is uploaded whole; no further piece of it is
//! taken. `GET /v1/escrow-key` answers the escrow recipient, signed by the server key.

use crate::clock::{now_ms, rfc3339_ms};
use crate::error::{evidence_message, Error, Result};
use crate::http::auth::{signed_body, verify};
use crate::http::body::{json_response, parse_json};
use crate::http::limits::{MAX_MANIFEST_BYTES, MAX_SUBMISSION_BODY};
use crate::http::{blocking, AppStateRef};
use crate::state::AppState;
use crate::store::{DeviceRecord, ItemRecord, MediaInfo, SealedInfo, UploadRecord};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use fieldcap_evidence::manifest::{ItemKind, Manifest};
use fieldcap_evidence::protocol::{self, Commitment, CommitmentResponse, ManifestSubmission, SealedManifestSubmission, SignedDoc};

/// `POST /v1/manifests` (device-signed).
pub(crate) async fn manifests(State(state): AppStateRef, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Result<Response> {
    let (claim, bytes, _hold) = signed_body(&state, &headers, body, MAX_SUBMISSION_BODY).await?;
    let (created, resp) = blocking(move || {
        let device = verify(&state, &claim, &method, &uri, &bytes)?;
        let sub: ManifestSubmission = parse_json(&bytes, "the manifest submission")?;
        commit_manifest(&state, &device, &sub)
    })
    .await?;
    json_response(if created { StatusCode::CREATED } else { StatusCode::OK }, &resp)
}

/// `POST /v1/manifests/sealed` (device-signed).
pub(crate) async fn sealed_manifests(State(state): AppStateRef, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Result<Response> {
    let (claim, bytes, _hold) = signed_body(&state, &headers, body, MAX_SUBMISSION_BODY).await?;
    let (created, resp) = blocking(move || {
        let device = verify(&state, &claim, &method, &uri, &bytes)?;
        let sub: SealedManifestSubmission = parse_json(&bytes, "the sealed manifest submission")?;
        commit_sealed(&state, &device, &sub)
    })
    .await?;
    json_response(if created { StatusCode::CREATED } else { StatusCode::OK }, &resp)
}

/// `GET /v1/escrow-key` (unsigned): the escrow recipient as a [`SignedDoc`] of a
/// `fieldcap.escrow-key/1` statement, signed by the server key.
pub(crate) async fn escrow_key(State(state): AppStateRef) -> Result<Response> {
    let doc = blocking(move || {
        let escrow = state.escrow.as_ref().ok_or_else(|| Error::NotFound("this server holds no escrow key".into()))?;
        let (body, sig) = escrow.statement(&|d| state.sign_doc(d), &state.key_id)?;
        Ok(SignedDoc::new(&body, &sig))
    })
    .await?;
    json_response(StatusCode::OK, &doc)
}

/// The largest age overhead accepted over the media's length: 16 bytes per 64 KiB chunk plus a
/// header (a few hundred bytes; generously 64 KiB).
fn max_age_overhead(plain: u64) -> u64 {
    16 * (plain / 65536 + 1) + 65536
}

fn commit_sealed(state: &AppState, device: &DeviceRecord, sub: &SealedManifestSubmission) -> Result<(bool, CommitmentResponse)> {
    if sub.manifest_age.len() > MAX_SUBMISSION_BODY || sub.sig.len() > 200 || sub.key_wrap.len() > 2 * fieldcap_evidence::escrow::MAX_KEY_WRAP_BYTES {
        return Err(Error::TooLarge("manifest, signature or key wrap too long".into()));
    }
    let manifest_age = protocol::unb64(&sub.manifest_age, "manifest_age").map_err(|_| Error::BadRequest("manifest_age is not base64".into()))?;
    let sig = protocol::unb64(&sub.sig, "sig").map_err(|_| Error::BadRequest("sig is not base64".into()))?;
    let key_wrap = protocol::unb64(&sub.key_wrap, "key_wrap").map_err(|_| Error::BadRequest("key_wrap is not base64".into()))?;
    if key_wrap.len() > fieldcap_evidence::escrow::MAX_KEY_WRAP_BYTES {
        return Err(Error::TooLarge("the key wrap is too large".into()));
    }
    if manifest_age.len() as u64 > MAX_MANIFEST_BYTES as u64 + max_age_overhead(MAX_MANIFEST_BYTES as u64) {
        return Err(Error::TooLarge("the manifest is larger than 4 MiB".into()));
    }
    let item_key = state.escrow()?.unwrap(&key_wrap)?;
    let bytes = item_key
        .decrypt(&manifest_age, MAX_MANIFEST_BYTES)
        .map_err(|_| Error::SealedUndecryptable("the manifest does not decrypt with the item key (or is larger than 4 MiB)".into()))?;
    commit(state, device, bytes, sig, Some(SealedInfo { key_wrap, media_age_bytes: sub.media_age_bytes }))
}

fn new_capability() -> String {
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    hex::encode(b)
}

fn new_upload(state: &AppState, clip_id: &str, length: u64) -> UploadRecord {
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
    commit(state, device, bytes, sig, None)
}

/// The length of an item's tus upload: its media's length, or for a sealed item the length of
/// the media's age file.
pub(crate) fn upload_length(item: &ItemRecord) -> Option<u64> {
    let md = item.media.as_ref()?;
    Some(item.sealed.as_ref().and_then(|s| s.media_age_bytes).unwrap_or(md.bytes))
}

/// Commits a manifest (plaintext bytes and the device's signature over them), sealed or not.
fn commit(state: &AppState, device: &DeviceRecord, bytes: Vec<u8>, sig: Vec<u8>, sealed: Option<SealedInfo>) -> Result<(bool, CommitmentResponse)> {
    let m = Manifest::parse(&bytes).map_err(|e| Error::InvalidManifest(evidence_message(&e)))?;
    if m.device_id != device.device_id {
        return Err(Error::DeviceMismatch("the manifest's device_id is not the device that signed the request".into()));
    }
    fieldcap_evidence::identity::verify_with_pem(&device.public_key_pem, &bytes, &sig)
        .map_err(|e| Error::BadSignature(evidence_message(&e)))?;
    if let Some(md) = &m.media {
        if md.bytes > state.cfg.max_upload_bytes {
            return Err(Error::TooLarge(format!("media of {} bytes exceeds the server's limit of {}", md.bytes, state.cfg.max_upload_bytes)));
        }
    }
    if let Some(s) = &sealed {
        match (&m.media, s.media_age_bytes) {
            (Some(_), None) => return Err(Error::InvalidManifest("a sealed item with media needs media_age_bytes (the length of the media's age file)".into())),
            (None, Some(_)) => return Err(Error::InvalidManifest("media_age_bytes is given for an item without media".into())),
            (Some(md), Some(n)) if n <= md.bytes || n > md.bytes.saturating_add(max_age_overhead(md.bytes)) => {
                return Err(Error::InvalidManifest(format!("media_age_bytes {n} cannot be the length of an age file of {} bytes", md.bytes)));
            }
            _ => {}
        }
    }
    let sha = fieldcap_evidence::hashing::sha256_hex(&bytes);
    let _guard = state.commit_lock.lock().map_err(|_| Error::Internal("commit lock poisoned".into()))?;

    if let Some(existing) = state.records.item(&m.clip_id)? {
        if existing.manifest_sha256 == sha && existing.device_id == device.device_id {
            return Ok((false, answer(state, &existing)?));
        }
        state.custody_refusal(
            &device.device_id,
            "conflict:clip_id",
            "conflict",
            Some(&m.clip_id),
            serde_json::json!({ "reason": "a different manifest for a known clip_id", "on_record": existing.manifest_sha256, "offered": sha }),
        )?;
        return Err(Error::Conflict("a different manifest is on record for this clip_id".into()));
    }
    if let Some(other) = state.records.item_by_seq(&device.device_id, m.seq)? {
        state.custody_refusal(
            &device.device_id,
            "conflict:seq",
            "conflict",
            Some(&m.clip_id),
            serde_json::json!({ "reason": "a different manifest for a known seq", "seq": m.seq, "on_record_clip_id": other.clip_id, "offered": sha }),
        )?;
        return Err(Error::Conflict(format!("seq {} of this device is on record with another clip", m.seq)));
    }
    if m.seq > 1 {
        if let Some(p) = state.records.item_by_seq(&device.device_id, m.seq - 1)? {
            if m.prev.as_deref() != Some(p.manifest_sha256.as_str()) {
                state.custody_refusal(
                    &device.device_id,
                    "conflict:prev",
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
            state.custody_refusal(
                &device.device_id,
                "conflict:next_prev",
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
        sealed,
    };
    // Live-capture fragments of this clip (endpoints::live) are stored under the clip's upload
    // lock, and the fragments held decide where the upload starts: hold it too (a new item has
    // no tus upload yet, so only a fragment being stored can hold it, for moments).
    let _clip_guard = match state.records.last_fragment(&m.clip_id)? {
        Some(_) => Some(state.lock_upload_blocking(&m.clip_id, std::time::Duration::from_secs(10))?),
        None => None,
    };
    let mut upload = upload_length(&item).map(|n| new_upload(state, &item.clip_id, n));
    // A live recording: the fragments the server holds already are the start of its upload
    // (the phone sends no byte twice), if they are the chain the manifest names; if not, they
    // are set aside, kept for the record, and the upload starts at 0.
    let mut mismatch = None;
    if let (Some(u), Some(md), None) = (upload.as_mut(), item.media.as_ref(), item.sealed.as_ref()) {
        match crate::endpoints::live::held_prefix(state, &item.clip_id, &item.device_id, m.fragments.as_ref(), md.bytes)? {
            Some(Ok(n)) => {
                // Bytes past the last fragment held (a crash between a piece's bytes and its
                // record) are not part of the upload.
                state.blobs.open_partial(&item.clip_id, n)?.sync()?;
                u.offset = n;
            }
            Some(Err(why)) => mismatch = Some(why),
            None => {}
        }
    }
    if !state.records.insert_item(&item, upload.as_ref())? {
        return Err(Error::Conflict("the clip_id or seq was recorded concurrently".into()));
    }
    let mut detail = serde_json::json!({ "manifest_sha256": sha, "seq": m.seq, "kind": m.kind.as_str() });
    if item.sealed.is_some() {
        detail["sealed"] = serde_json::json!(true);
    }
    state.custody("received", Some(&item.clip_id), detail)?;
    if item.sealed.is_some() && item.media.is_some() && state.records.last_fragment(&item.clip_id)?.is_some() {
        // A live recording sealed on the phone when it finished: its fragments held stay on
        // record (with their records and acks), their bytes are set aside, and the encrypted
        // file is uploaded whole, decrypted and checked against the manifest at its last byte.
        let kept_as = state.blobs.set_aside_partial(&item.clip_id)?;
        state.live_cache()?.forget(&item.clip_id);
        state.custody(
            "live_prefix_set_aside",
            Some(&item.clip_id),
            serde_json::json!({ "reason": "the recording was submitted sealed: its encrypted file is uploaded whole", "kept_as": kept_as }),
        )?;
    }
    if let Some(why) = mismatch {
        let kept_as = state.blobs.set_aside_partial(&item.clip_id)?;
        state.live_cache()?.forget(&item.clip_id);
        state.custody("live_chain_mismatch", Some(&item.clip_id), serde_json::json!({ "reason": why, "kept_as": kept_as }))?;
    }
    if m.kind == ItemKind::Observation {
        crate::receipts::complete(state, &item, None, None)?;
    } else if let Some(u) = &upload {
        if u.offset == u.length {
            // Nothing (more) to upload: the empty file, or a live recording whose every byte
            // came in fragments. Verify it now, so the answer carries the receipt.
            let _ = crate::tus::finalize(state, &item, u);
        }
    }
    let stored = state.records.item(&item.clip_id)?.ok_or_else(|| Error::Internal("item vanished".into()))?;
    Ok((true, answer(state, &stored)?))
}

/// The commitment response for an item on record (fresh upload URL if the old one expired or
/// was terminated).
fn answer(state: &AppState, item: &ItemRecord) -> Result<CommitmentResponse> {
    let commitment = SignedDoc::new(&item.commitment, &item.commitment_sig);
    if let (Some(r), Some(s)) = (&item.receipt, &item.receipt_sig) {
        return Ok(CommitmentResponse { commitment, upload_url: None, upload_expires: None, receipt: Some(SignedDoc::new(r, s)) });
    }
    let Some(length) = upload_length(item) else {
        return Ok(CommitmentResponse { commitment, upload_url: None, upload_expires: None, receipt: None });
    };
    let mut up = state.records.upload_for_clip(&item.clip_id)?;
    let usable = up.as_ref().is_some_and(|u| u.state == "open" && u.expires_at_ms > now_ms());
    if !usable {
        // Keeps (cuts back to) a live recording's fragments held, which start the fresh upload.
        crate::tus::discard_unwanted_partial(state, &item.clip_id);
        let mut fresh = new_upload(state, &item.clip_id, length);
        fresh.offset = crate::endpoints::tus::restart_offset(state, &item.clip_id)?;
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
