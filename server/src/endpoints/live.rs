//! `PUT /v1/live/{clip_id}/{index}`: live capture. A device sends each piece of a recording it
//! is still filming (index 0: the fMP4 initialization segment; then one media fragment each; at
//! most one trailing `mfra`) with its signed `fieldcap.fragment/1` record in
//! [`protocol::H_FRAGMENT_RECORD`] / [`protocol::H_FRAGMENT_SIGNATURE`]. The server checks the
//! record (form, device signature, device, path), the piece (length and digests as the record
//! says, box structure with [`fmp4`]), the chain (the record follows the one stored before it)
//! and the running totals of the whole recording; only then are the bytes appended to the clip's
//! partial upload (the same partial its tus upload uses) and fsynced, and then the record stored
//! with the server's signed [`FragmentAck`]. Nothing of a refused piece is kept.
//!
//! Answers: 201 (stored now) or 200 (the same record was stored before: the same ack again);
//! 422 `invalid-fragment`; 409 `fragment-out-of-order` with [`protocol::H_NEXT_FRAGMENT`];
//! 409 `conflict` for a clip that is whole already or another device's.
//!
//! The running SHA-256 and BLAKE3 of the bytes held are kept in a small bounded cache
//! ([`LiveCache`]); a miss (restart, another replica, eviction) re-hashes the held prefix once.
//! Pieces of one clip are serialised by the clip's upload lock (the one tus writes under).

use crate::error::{Error, Result};
use crate::http::auth::{signed_body, verify};
use crate::http::body::json_response;
use crate::http::{blocking, AppStateRef};
use crate::state::AppState;
use crate::store::{DeviceRecord, FragmentRow};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use fieldcap_evidence::fmp4;
use fieldcap_evidence::fragment::{FragmentAck, FragmentRecord, FRAGMENT_ACK_TYPE, MAX_FRAGMENT_BYTES};
use fieldcap_evidence::protocol::{self, FragmentAnswer, SignedDoc};
use sha2::Digest as _;
use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

/// Recordings whose running digests are kept (a miss costs one re-read of the held prefix).
const CACHE_CLIPS: usize = 256;
/// How long a piece waits for the clip's lock (another piece or a tus write of the clip).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What the server knows of a recording it holds fragments of, continued piece by piece.
#[derive(Clone)]
pub(crate) struct LiveEntry {
    /// The index expected next.
    next: u64,
    /// Bytes held (`0..total`).
    total: u64,
    sha: sha2::Sha256,
    b3: blake3::Hasher,
    /// The initialization segment's tracks.
    init: fmp4::InitInfo,
    /// The last `mfhd` sequence number held.
    last_mfhd: Option<u32>,
    /// The recording ended with its trailing `mfra`: nothing may follow.
    ended: bool,
}

/// Running digests of recordings being received, by clip id, bounded to [`CACHE_CLIPS`].
#[derive(Default)]
pub(crate) struct LiveCache {
    map: HashMap<String, LiveEntry>,
}

impl LiveCache {
    fn get(&self, clip_id: &str) -> Option<LiveEntry> {
        self.map.get(clip_id).cloned()
    }

    fn put(&mut self, clip_id: &str, e: LiveEntry) {
        if self.map.len() >= CACHE_CLIPS && !self.map.contains_key(clip_id) {
            if let Some(k) = self.map.keys().next().cloned() {
                self.map.remove(&k);
            }
        }
        self.map.insert(clip_id.to_string(), e);
    }

    /// Drops what is known of a recording (its bytes were set aside).
    pub(crate) fn forget(&mut self, clip_id: &str) {
        self.map.remove(clip_id);
    }
}

fn invalid(m: impl Into<String>) -> Error {
    Error::InvalidFragment(m.into())
}

fn header_b64(h: &HeaderMap, name: &str) -> Result<Vec<u8>> {
    let v = h.get(name).ok_or_else(|| invalid(format!("the {name} header is missing")))?;
    let s = v.to_str().map_err(|_| invalid(format!("{name} is not text")))?;
    protocol::unb64(s, name).map_err(|_| invalid(format!("{name} is not base64")))
}

/// `PUT /v1/live/{clip_id}/{index}` (device-signed).
pub(crate) async fn put_fragment(
    State(state): AppStateRef,
    Path((clip_id, index)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some("application/octet-stream") {
        // Answered at once; the body is read and dropped behind the answer (never kept).
        let e = Error::UnsupportedMediaType("a fragment's body must be application/octet-stream".into());
        return Err(crate::http::body::linger(&state, body, MAX_FRAGMENT_BYTES as usize, e));
    }
    let (claim, bytes, _hold) = signed_body(&state, &headers, body, MAX_FRAGMENT_BYTES as usize).await?;
    let st = state.clone();
    let device = blocking(move || verify(&st, &claim, &method, &uri, &bytes).map(|d| (d, bytes))).await?;
    let (device, bytes) = device;
    let index: u64 = index.parse().map_err(|_| Error::NotFound("no such fragment path".into()))?;
    let _guard = state.lock_upload(&clip_id, LOCK_WAIT).await?;
    let st = state.clone();
    let (created, ack) = blocking(move || store_fragment(&st, &device, &clip_id, index, &headers, &bytes)).await?;
    json_response(if created { StatusCode::CREATED } else { StatusCode::OK }, &FragmentAnswer { ack })
}

/// Checks and stores one piece (the caller holds the clip's lock). Returns whether it was
/// stored now, and the signed ack.
fn store_fragment(state: &AppState, device: &DeviceRecord, clip_id: &str, index: u64, headers: &HeaderMap, bytes: &[u8]) -> Result<(bool, SignedDoc)> {
    let record = header_b64(headers, protocol::H_FRAGMENT_RECORD)?;
    let sig = header_b64(headers, protocol::H_FRAGMENT_SIGNATURE)?;
    let rec = FragmentRecord::parse(&record).map_err(|e| invalid(crate::error::evidence_message(&e)))?;
    fieldcap_evidence::identity::verify_with_pem(&device.public_key_pem, &record, &sig)
        .map_err(|_| invalid("the fragment record's signature does not verify with the device's enrolled key"))?;
    if rec.device_id != device.device_id {
        return Err(invalid("the fragment record names another device than the one that signed the request"));
    }
    if rec.clip_id != clip_id || rec.index != index {
        return Err(invalid(format!("the fragment record is for {} fragment {}, not this path's", rec.clip_id, rec.index)));
    }
    if bytes.len() as u64 != rec.bytes {
        return Err(invalid(format!("the body holds {} bytes but the record names {}", bytes.len(), rec.bytes)));
    }
    let d = fieldcap_evidence::hashing::Digests::of_bytes(bytes);
    if d.sha256_hex() != rec.sha256 || d.blake3_hex() != rec.blake3 {
        return Err(invalid(format!("fragment {index}'s bytes do not match its record's digests")));
    }
    let record_sha256 = fieldcap_evidence::hashing::sha256_hex(&record);

    // The chain held.
    let last = state.records.last_fragment(clip_id)?;
    if let Some(l) = &last {
        if l.device_id != device.device_id {
            return Err(Error::Conflict("this recording is another device's".into()));
        }
    }
    let stored = state.records.fragment(clip_id, index)?;
    if let Some(s) = &stored {
        if s.record_sha256 == record_sha256 {
            return Ok((false, SignedDoc::new(&s.ack, &s.ack_sig)));
        }
    }
    let item = state.records.item(clip_id)?;
    if let Some(i) = &item {
        if i.device_id != device.device_id {
            return Err(Error::Conflict("this clip id is another device's".into()));
        }
        if i.state != "committed" {
            return Err(Error::Conflict(format!("this recording is whole on the server already; its receipt is at /v1/receipts/{clip_id}")));
        }
        if i.sealed.is_some() {
            return Err(Error::Conflict("this clip was submitted sealed: its media is uploaded encrypted with its upload URL, not as live fragments".into()));
        }
    }
    if stored.is_some() {
        let next = last.as_ref().map_or(0, |l| l.idx + 1);
        return Err(Error::FragmentOutOfOrder { next, detail: format!("fragment {index} is held already with another record") });
    }
    let next = last.as_ref().map_or(0, |l| l.idx + 1);
    if index != next {
        return Err(Error::FragmentOutOfOrder { next, detail: format!("fragment {index} does not follow the fragments held") });
    }
    if let Some(l) = &last {
        let prev = FragmentRecord::parse(&l.record).map_err(|_| Error::Internal("a stored fragment record does not parse".into()))?;
        prev.check_successor(&l.record_sha256, &rec)
            .map_err(|e| Error::FragmentOutOfOrder { next, detail: crate::error::evidence_message(&e) })?;
    }

    // A recording whose manifest is on record already: its upload must stand where this piece
    // starts (then the piece moves it on), and the piece must fit the manifest's length.
    let upload = match &item {
        Some(_) => {
            let up = state.records.upload_for_clip(clip_id)?;
            let fits = up.as_ref().is_some_and(|u| u.state == "open" && u.offset == rec.offset && rec.total_bytes <= u.length);
            if !fits {
                return Err(Error::Conflict("this recording's upload has moved on from the fragments held: send the rest with its upload URL".into()));
            }
            up
        }
        None => None,
    };

    // The piece's structure, and the running totals.
    let mut entry = match (&last, state.live_cache()?.get(clip_id)) {
        (None, _) => None,
        (Some(l), Some(e)) if e.next == l.idx + 1 && e.total == l.total_bytes => Some(e),
        (Some(_), _) => Some(rebuild(state, clip_id)?),
    };
    let mfhd_last = match &mut entry {
        None => {
            let info = fmp4::check_init(bytes).map_err(|e| invalid(e.to_string()))?;
            entry = Some(LiveEntry { next: 0, total: 0, sha: sha2::Sha256::new(), b3: blake3::Hasher::new(), init: info, last_mfhd: None, ended: false });
            None
        }
        Some(e) => {
            if e.ended {
                return Err(invalid("the recording ended with its trailing 'mfra': nothing may follow it"));
            }
            let info = fmp4::check_fragment(bytes, &e.init, e.last_mfhd).map_err(|e| invalid(e.to_string()))?;
            if info.is_trailer {
                e.ended = true;
            }
            info.sequence_numbers.last().copied()
        }
    };
    let mut e = entry.ok_or_else(|| Error::Internal("no running digests".into()))?;
    e.sha.update(bytes);
    e.b3.update(bytes);
    let tsha = hex::encode(e.sha.clone().finalize());
    let tb3 = e.b3.finalize().to_hex().to_string();
    if tsha != rec.total_sha256 || tb3 != rec.total_blake3 {
        return Err(invalid(format!("the recording up to fragment {index} does not match the record's running digests (total_sha256, total_blake3)")));
    }

    // Bytes first (fsynced), then the record: a crash between leaves bytes past the last
    // record, which the next piece's open_partial at its offset drops.
    let mut w = state.blobs.open_partial(clip_id, rec.offset)?;
    w.write_all(bytes)?;
    w.sync()?;
    drop(w);
    let received_at = fieldcap_evidence::time::now();
    let ack = FragmentAck {
        kind_type: FRAGMENT_ACK_TYPE.into(),
        clip_id: clip_id.to_string(),
        device_id: device.device_id.clone(),
        index,
        record_sha256: record_sha256.clone(),
        total_bytes: rec.total_bytes,
        received_at: received_at.clone(),
        server_key_id: state.key_id.clone(),
    };
    let (ack_body, ack_sig) = state.sign_doc(&ack)?;
    let row = FragmentRow {
        clip_id: clip_id.to_string(),
        idx: index,
        device_id: device.device_id.clone(),
        record,
        sig,
        record_sha256,
        offset: rec.offset,
        bytes: rec.bytes,
        total_bytes: rec.total_bytes,
        captured_at: rec.captured_at.clone(),
        mfhd_last,
        ack: ack_body.clone(),
        ack_sig: ack_sig.clone(),
        received_at,
    };
    if !state.records.insert_fragment(&row)? {
        // Another replica stored this index meanwhile.
        state.live_cache()?.forget(clip_id);
        return match state.records.fragment(clip_id, index)? {
            Some(s) if s.record_sha256 == row.record_sha256 => Ok((false, SignedDoc::new(&s.ack, &s.ack_sig))),
            _ => Err(Error::FragmentOutOfOrder { next: index + 1, detail: format!("fragment {index} is held already with another record") }),
        };
    }
    e.next = index + 1;
    e.total = rec.total_bytes;
    if mfhd_last.is_some() {
        e.last_mfhd = mfhd_last;
    }
    state.live_cache()?.put(clip_id, e);
    if index == 0 {
        state.custody("live_started", Some(clip_id), serde_json::json!({ "device_id": device.device_id }))?;
    }
    if let (Some(i), Some(mut up)) = (item, upload) {
        state.records.set_upload_offset(clip_id, rec.total_bytes)?;
        up.offset = rec.total_bytes;
        if up.offset == up.length {
            // The last piece of a recording whose manifest came first: finish it as tus would.
            if let Err(e) = crate::tus::finalize(state, &i, &up) {
                tracing::warn!(problem = %e.problem().problem_type, "a live recording completed by its last fragment could not be finished");
            }
        }
    }
    Ok((true, SignedDoc::new(&ack_body, &ack_sig)))
}

/// The running digests of a recording from what is held: the stored records and the first
/// `total_bytes` of the partial (read once).
fn rebuild(state: &AppState, clip_id: &str) -> Result<LiveEntry> {
    let rows = state.records.fragments(clip_id)?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Err(Error::Internal("rebuilding the digests of a recording without fragments".into()));
    };
    let held = state.blobs.read_partial(clip_id)?.ok_or_else(|| Error::Internal("the bytes of the fragments held are missing".into()))?;
    let mut r = held.take(last.total_bytes);
    let mut init = vec![0u8; first.bytes as usize];
    r.read_exact(&mut init).map_err(|e| Error::io("reading the fragments held", e))?;
    let mut sha = sha2::Sha256::new();
    let mut b3 = blake3::Hasher::new();
    sha.update(&init);
    b3.update(&init);
    let mut n = init.len() as u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let k = r.read(&mut buf).map_err(|e| Error::io("reading the fragments held", e))?;
        if k == 0 {
            break;
        }
        sha.update(&buf[..k]);
        b3.update(&buf[..k]);
        n += k as u64;
    }
    if n != last.total_bytes || hex::encode(sha.clone().finalize()) != FragmentRecord::parse(&last.record)?.total_sha256 {
        return Err(Error::Internal("the bytes held do not match the fragment records held".into()));
    }
    let info = fmp4::check_init(&init).map_err(|_| Error::Internal("the initialization segment held does not parse".into()))?;
    let ended = rows.len() > 1 && last.mfhd_last.is_none();
    Ok(LiveEntry {
        next: last.idx + 1,
        total: last.total_bytes,
        sha,
        b3,
        init: info,
        last_mfhd: rows.iter().rev().find_map(|f| f.mfhd_last),
        ended,
    })
}

/// Whether the fragments a server holds of a clip are a prefix of the recording its manifest
/// names: `Ok(None)` without fragments; `Ok(Some(Ok(n)))` when they are (n bytes held, to be
/// taken as the start of the upload); `Ok(Some(Err(why)))` when they are not (the held chain is
/// another device's, longer than the manifest's, its record at `count - 1` is not the manifest's
/// `head`, or it holds more bytes than the media). A chain held shorter than the manifest's is
/// taken as a prefix: the digests of the whole file check the rest at the end.
pub(crate) fn held_prefix(
    state: &AppState,
    clip_id: &str,
    device_id: &str,
    chain: Option<&fieldcap_evidence::manifest::FragmentChain>,
    bytes: u64,
) -> Result<Option<std::result::Result<u64, String>>> {
    let Some(last) = state.records.last_fragment(clip_id)? else { return Ok(None) };
    let Some(chain) = chain else {
        return Ok(Some(Err("the server holds fragments of this clip but its manifest names no fragment chain".into())));
    };
    let why = if last.device_id != device_id {
        Some("the fragments held are another device's".to_string())
    } else if last.total_bytes > bytes {
        Some(format!("the fragments held cover {} bytes, more than the manifest's {bytes}", last.total_bytes))
    } else if last.idx + 1 > chain.count {
        Some(format!("the server holds {} fragments, more than the manifest's chain of {}", last.idx + 1, chain.count))
    } else if last.idx + 1 == chain.count && last.record_sha256 != chain.head {
        Some("the last fragment held is not the head of the manifest's chain".to_string())
    } else {
        None
    };
    Ok(Some(match why {
        Some(w) => Err(w),
        None => Ok(last.total_bytes),
    }))
}

/// The bytes of a committed clip's upload the fragments held already give (see
/// [`held_prefix`]), or `None` when its upload starts at 0.
pub(crate) fn prefill(state: &AppState, item: &crate::store::ItemRecord) -> Result<Option<u64>> {
    let Some(md) = &item.media else { return Ok(None) };
    if item.sealed.is_some() {
        return Ok(None);
    }
    if state.records.last_fragment(&item.clip_id)?.is_none() {
        return Ok(None);
    }
    // Fragments once found not to be this manifest's recording were set aside for good.
    if state.records.custody(Some(&item.clip_id))?.iter().any(|e| e.event == "live_chain_mismatch") {
        return Ok(None);
    }
    let m = fieldcap_evidence::manifest::Manifest::parse(&item.manifest)?;
    Ok(match held_prefix(state, &item.clip_id, &item.device_id, m.fragments.as_ref(), md.bytes)? {
        Some(Ok(n)) => Some(n),
        _ => None,
    })
}

impl AppState {
    /// The running digests of recordings being received.
    pub(crate) fn live_cache(&self) -> Result<std::sync::MutexGuard<'_, LiveCache>> {
        self.live.lock().map_err(|_| Error::Internal("live cache poisoned".into()))
    }
}
