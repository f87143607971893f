//! Completing an upload: the received bytes re-hashed (length, SHA-256, BLAKE3) against the
//! signed manifest; a mismatch refused and recorded in custody, a match stored as the original
//! and receipted ([`crate::receipts::complete`]). Also run at start-up for uploads whose last
//! byte was fsynced before a crash ([`recover`]).

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{ItemRecord, MediaInfo, UploadRecord};

/// Discards a partial upload whose bytes are no longer wanted (expired, terminated, refused or
/// restarted upload). A failure is logged, not returned: the upload's offset on record goes back
/// to 0 regardless, and the next write truncates the partial there. The bytes of a live
/// recording's fragments held (the start of its upload, see [`restart_offset`]) are kept: the
/// partial is cut back to them instead.
pub(crate) fn discard_unwanted_partial(state: &AppState, clip_id: &str) {
    if let Ok(n) = restart_offset(state, clip_id) {
        if n > 0 {
            if let Err(e) = state.blobs.open_partial(clip_id, n).and_then(|mut w| w.sync()) {
                tracing::warn!(error = %e, "a partial upload could not be cut back to its fragments");
            }
            return;
        }
    }
    if let Err(e) = state.blobs.discard_partial(clip_id) {
        tracing::warn!(error = %e, "a partial upload could not be removed");
    }
}

/// Where an item's upload starts again: 0, or the bytes of the live recording's fragments held
/// when they are a prefix of its manifest's recording ([`crate::endpoints::live::prefill`]).
pub(crate) fn restart_offset(state: &AppState, clip_id: &str) -> Result<u64> {
    let Some(item) = state.records.item(clip_id)? else { return Ok(0) };
    if item.state != "committed" {
        return Ok(0);
    }
    Ok(crate::endpoints::live::prefill(state, &item)?.unwrap_or(0))
}

/// True if the item's device is revoked (or no longer on record).
pub(crate) fn device_revoked(state: &AppState, item: &ItemRecord) -> Result<bool> {
    Ok(state.records.device(&item.device_id)?.is_none_or(|d| d.revoked_at.is_some()))
}

/// Ends the open upload of a revoked device's item (the caller holds the upload's lock): the
/// bytes received so far are set aside — kept for the record, never stored as an original — the
/// upload becomes `terminated`, and custody records `terminated` with reason `device_revoked`.
/// An upload that is not open is left as it is.
pub(crate) fn terminate_for_revocation(state: &AppState, clip_id: &str) -> Result<()> {
    let Some(up) = state.records.upload_for_clip(clip_id)? else { return Ok(()) };
    if up.state != "open" {
        return Ok(());
    }
    let kept_as = state.blobs.set_aside_partial(clip_id)?;
    if state.records.set_upload_state(clip_id, "terminated", 0)? {
        state.custody(
            "terminated",
            Some(clip_id),
            serde_json::json!({ "reason": "device_revoked", "kept_bytes": up.offset, "kept_as": kept_as }),
        )?;
    }
    Ok(())
}

/// Verifies a fully received upload against the signed manifest and completes the item.
///
/// Also used at start-up for uploads whose last byte was fsynced but not finished (a crash
/// between), and for zero-length media at commit time.
pub(crate) fn finalize(state: &AppState, item: &ItemRecord, up: &UploadRecord) -> Result<()> {
    let md = item.media.as_ref().ok_or_else(|| Error::Internal("finalising an item without media".into()))?;
    // Finished once only: an item received meanwhile (or an upload complete) is left as it is.
    let now = state.records.item(&item.clip_id)?.ok_or_else(|| Error::Internal("finalising an item that is not on record".into()))?;
    let up_now = state.records.upload_for_clip(&item.clip_id)?;
    if now.state != "committed" || up_now.as_ref().is_some_and(|u| u.state == "complete") {
        return Err(Error::Conflict(format!("this item's media was already received; its receipt is at /v1/receipts/{}", item.clip_id)));
    }
    // A device revoked while its upload was under way gets no receipt: the upload ends here.
    if device_revoked(state, item)? {
        terminate_for_revocation(state, &item.clip_id)?;
        return Err(Error::DeviceRevoked);
    }
    let received = match state.blobs.read_partial(&item.clip_id)? {
        Some(r) => r,
        None if up.length == 0 => {
            // Empty media: the received file is an empty partial, made now.
            state.blobs.open_partial(&item.clip_id, 0)?.sync()?;
            state.blobs.read_partial(&item.clip_id)?.ok_or_else(|| Error::Internal("an empty partial upload vanished".into()))?
        }
        None if state.blobs.contains(&md.sha256)? => {
            // Crashed after the move into the blob store: the blob is the received file.
            return finish_stored(state, item, md);
        }
        None => {
            state.records.set_upload_state(&item.clip_id, "open", 0)?;
            return Err(Error::Internal("the received bytes are missing; the upload was reset".into()));
        }
    };
    let sealed_wrap = item.sealed.as_ref().filter(|s| s.media_age_bytes.is_some()).map(|s| s.key_wrap.as_slice());
    let d = match sealed_wrap {
        None => fieldcap_evidence::hashing::hash_reader(received, &mut |_| {}).map_err(|e| read_error("hashing the received file", e))?,
        Some(wrap) => match decrypt_to_plain_partial(state, &item.clip_id, wrap, received)? {
            Ok(d) => d,
            Err(why) => {
                // Tampered or truncated ciphertext: age's AEAD refuses it; nothing of it is kept.
                let _ = state.blobs.discard_partial(&plain_partial_id(&item.clip_id));
                let reason = format!("received media does not decrypt with the item key: {why}");
                discard_unwanted_partial(state, &item.clip_id);
                state.records.set_upload_state(&item.clip_id, "open", 0)?;
                state.records.note_refusal(&item.clip_id, &reason)?;
                state.custody("refused", Some(&item.clip_id), serde_json::json!({ "reason": reason, "sealed": true }))?;
                return Err(Error::DigestMismatch(format!("{reason}; the bytes were discarded and the upload reset (send HEAD for its offset)")));
            }
        },
    };
    let mut why = Vec::new();
    if d.bytes != md.bytes {
        why.push(format!("length {} instead of {}", d.bytes, md.bytes));
    }
    if d.sha256_hex() != md.sha256 {
        why.push("SHA-256 differs".to_string());
    }
    if d.blake3_hex() != md.blake3 {
        why.push("BLAKE3 differs".to_string());
    }
    if !why.is_empty() {
        let reason = format!("received media does not match the signed manifest: {}", why.join(", "));
        if restart_offset(state, &item.clip_id)? > 0 {
            // The upload started at a live recording's fragments held: they are not the start
            // of this manifest's file after all. Set aside for the record; the upload starts at 0.
            let kept_as = state.blobs.set_aside_partial(&item.clip_id)?;
            state.live_cache()?.forget(&item.clip_id);
            state.custody("live_chain_mismatch", Some(&item.clip_id), serde_json::json!({ "reason": "the whole file begun with the fragments held does not match the manifest", "kept_as": kept_as }))?;
        }
        if sealed_wrap.is_some() {
            let _ = state.blobs.discard_partial(&plain_partial_id(&item.clip_id));
        }
        discard_unwanted_partial(state, &item.clip_id);
        state.records.set_upload_state(&item.clip_id, "open", restart_offset(state, &item.clip_id)?)?;
        state.records.note_refusal(&item.clip_id, &reason)?;
        let mut detail = serde_json::json!({
            "reason": reason,
            "received": { "bytes": d.bytes, "sha256": d.sha256_hex(), "blake3": d.blake3_hex() },
        });
        if sealed_wrap.is_some() {
            detail["sealed"] = serde_json::json!(true);
        }
        state.custody("refused", Some(&item.clip_id), detail)?;
        return Err(Error::DigestMismatch(format!("{reason}; the bytes were discarded and the upload reset (send HEAD for its offset)")));
    }
    let mut detail = serde_json::json!({ "bytes": d.bytes, "sha256": d.sha256_hex(), "blake3": d.blake3_hex() });
    if sealed_wrap.is_some() {
        detail["sealed"] = serde_json::json!(true);
    }
    state.custody("verified", Some(&item.clip_id), detail)?;
    if sealed_wrap.is_some() {
        // The original stored is the plaintext; the ciphertext goes as a partial upload does.
        state.blobs.store_partial(&plain_partial_id(&item.clip_id), &md.sha256)?;
        discard_unwanted_partial(state, &item.clip_id);
    } else {
        state.blobs.store_partial(&item.clip_id, &md.sha256)?;
    }
    finish_stored(state, item, md)
}

/// An error reading the received bytes: a blob store that stopped answering mid-read (the S3
/// store's reader carries its `StorageUnavailable` inside the I/O error) stays a 503 with
/// Retry-After, anything else is an I/O error.
fn read_error(context: &str, e: std::io::Error) -> Error {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::StorageUnavailable(m)) => Error::StorageUnavailable(m.clone()),
        _ => Error::io(context, e),
    }
}

fn finish_stored(state: &AppState, item: &ItemRecord, md: &MediaInfo) -> Result<()> {
    // Locked (a blob store with write-once locks) before the receipt is issued: a receipted
    // original is always under its retention lock. A failure leaves the item unreceipted; the
    // client's retry finds the original stored and comes back here.
    crate::retention::lock_new_original(state.records.as_ref(), state.blobs.as_ref(), item, &md.sha256)?;
    let media = fieldcap_evidence::protocol::ReceiptMedia { bytes: md.bytes, sha256: md.sha256.clone(), blake3: md.blake3.clone() };
    crate::receipts::complete(state, item, Some(media), Some(md.sha256.clone()))?;
    let idx = state.records.item(&item.clip_id)?.and_then(|i| i.log_index);
    let mut detail = serde_json::json!({ "blob_sha256": md.sha256, "log_index": idx });
    if item.sealed.is_some() {
        detail["sealed"] = serde_json::json!(true);
    }
    state.custody("stored", Some(&item.clip_id), detail)?;
    Ok(())
}

/// The id of the partial upload a sealed item's plaintext is written to while its ciphertext is
/// decrypted (a UUID derived from the clip id, so every blob store takes it as a partial's name).
pub(crate) fn plain_partial_id(clip_id: &str) -> String {
    let h = fieldcap_evidence::hashing::Digests::of_bytes(format!("fieldcap.sealed-plaintext/{clip_id}").as_bytes()).sha256;
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

/// Reads through `inner`, appending every byte read to a partial upload.
struct IntoPartial<R: std::io::Read> {
    inner: R,
    out: Box<dyn crate::store::PartialWriter>,
}

impl<R: std::io::Read> std::io::Read for IntoPartial<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n]).map_err(std::io::Error::other)?;
        Ok(n)
    }
}

/// Decrypts a sealed item's received ciphertext (streaming) with its item key, unwrapped again
/// from the stored key wrap (no item secret is kept at rest), writing the plaintext to the
/// partial [`plain_partial_id`] while hashing it. `Ok(Err(why))` if the ciphertext does not
/// decrypt (tampered, truncated, or for another key): a refusal, not a server fault.
fn decrypt_to_plain_partial(state: &AppState, clip_id: &str, wrap: &[u8], received: Box<dyn std::io::Read + Send>) -> Result<std::result::Result<fieldcap_evidence::hashing::Digests, String>> {
    let key = state.escrow()?.unwrap(wrap)?;
    let reader = match key.media_reader(received) {
        Ok(r) => r,
        Err(fieldcap_evidence::Error::Io { source, .. }) if source.kind() != std::io::ErrorKind::InvalidData && source.kind() != std::io::ErrorKind::UnexpectedEof => {
            return Err(read_error("reading the received file", source));
        }
        Err(_) => return Ok(Err("its age header does not open with the item key".into())),
    };
    let out = state.blobs.open_partial(&plain_partial_id(clip_id), 0)?;
    let mut tee = IntoPartial { inner: reader, out };
    match fieldcap_evidence::hashing::hash_reader(&mut tee, &mut |_| {}) {
        Ok(d) => {
            tee.out.sync()?;
            Ok(Ok(d))
        }
        // age's STREAM reports a chunk that fails authentication (or a truncated file) as
        // invalid data; anything else is the store's (or the disk's) fault.
        Err(e) if e.get_ref().is_none_or(|i| i.downcast_ref::<Error>().is_none())
            && matches!(e.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
        {
            Ok(Err(e.to_string()))
        }
        Err(e) => Err(read_error("decrypting the received file", e)),
    }
}

/// Finishes uploads whose bytes were all fsynced but whose completion did not happen (crash).
pub(crate) fn recover(state: &AppState) -> Result<()> {
    for item in state.records.items()? {
        if item.state != "committed" || item.media.is_none() {
            continue;
        }
        if let Some(up) = state.records.upload_for_clip(&item.clip_id)? {
            if up.state == "open" && device_revoked(state, &item)? {
                terminate_for_revocation(state, &item.clip_id)?;
                continue;
            }
            if up.state == "open" && up.offset == up.length && up.length > 0 {
                if let Err(e) = finalize(state, &item, &up) {
                    tracing::warn!(problem = %e.problem().problem_type, "an interrupted upload could not be completed at start-up");
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_stops_answering_mid_read_stays_storage_unavailable() {
        let e = read_error("hashing", std::io::Error::other(Error::StorageUnavailable("the object storage does not answer".into())));
        assert_eq!(e.problem().status, 503);
        let e = read_error("hashing", std::io::Error::from_raw_os_error(5));
        assert_eq!(e.problem().status, 500);
    }
}
