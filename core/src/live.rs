//! Live capture: a recording sealed fragment by fragment while the camera runs.
//!
//! The shell records one fragmented MP4 without ever stopping the camera (iOS `AVAssetWriter`
//! segment delegate, Android Media3 `FragmentedMp4Muxer`) and hands the core each piece as it is
//! produced: first the initialization segment, then one media fragment (`moof` + `mdat`) every
//! couple of seconds. [`Store::append_live`] seals each piece at once:
//!
//! 1. checks its box structure ([`crate::evidence::fmp4`]): a truncated piece, a piece out of
//!    order or from another recording is refused and nothing is appended;
//! 2. appends it to `live/<clip_id>/media.<ext>` at the end of the last sealed piece (bytes a crash
//!    left past that point are cut first) and fsyncs;
//! 3. continues the running SHA-256 and BLAKE3 of the whole file (kept in memory, never re-read);
//! 4. signs a `fieldcap.fragment/1` record chained to the previous one (index, byte range, the
//!    piece's digests, the whole file's so far, capture time, latest location fix, `prev`) and
//!    stores it in one transaction with the recording's new head.
//!
//! The sync engine sends each sealed piece as soon as it can ([`crate::sync::live`]); the server
//! answers a signed acknowledgement, kept with the record. [`Store::finish_live`] seals the whole
//! file as an ordinary item whose manifest also names the head of its fragment chain, so every
//! existing verifier works on a finished recording.
//!
//! **Crash at any instant.** The file is written before the record; a record is committed only
//! after its bytes are durable. At the next start ([`Store::open`]), recovery re-hashes the sealed
//! prefix (it must match the last record's running digests), seals a whole piece that was written
//! but not yet recorded, sets aside a torn tail (quarantine, never deleted), and finishes the
//! recording as an item tagged `recovered`, with `ended_at` the last piece's capture time.
//!
//! ```no_run
//! use std::sync::Arc;
//! use fieldcap_core::{Store, identity::FileKeyProtector, seal::CaptureRequest};
//! let store = Store::open("/tmp/fieldcap-home".as_ref(), Arc::new(FileKeyProtector))?;
//! let clip = store.begin_live(CaptureRequest::default(), "mp4")?;
//! # let (init, fragments): (Vec<u8>, Vec<Vec<u8>>) = (vec![], vec![]);
//! store.append_live(&clip, &init)?;
//! for f in &fragments {
//!     store.append_live(&clip, f)?;
//! }
//! let item = store.finish_live(&clip)?;
//! # Ok::<(), fieldcap_core::Error>(())
//! ```

use crate::error::{Error, IoContext, Result};
use crate::evidence::fmp4::{self, InitInfo};
use crate::evidence::fragment::{FragmentRecord, FRAGMENT_TYPE};
use crate::hashing::Digests;
use crate::manifest::{self, FragmentChain};
use crate::seal::{CaptureRequest, PendingSeal, SealedItem};
use crate::store::{db::live as rows, Store};
use crate::track::TrackPoint;
use serde::Serialize;
use serde_json::json;
use sha2::Digest as _;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// One piece sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedFragment {
    /// The recording's item id.
    pub clip_id: String,
    /// 0 for the initialization segment, then 1, 2, …
    pub index: u64,
    /// First byte of the piece in the recording.
    pub offset: u64,
    /// Length of the piece.
    pub bytes: u64,
    /// Length of the recording so far.
    pub total_bytes: u64,
    /// SHA-256 hex of the signed record.
    pub record_sha256: String,
}

/// A live recording as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveStatus {
    /// The recording's item id.
    pub clip_id: String,
    /// `recording` or `finished`.
    pub state: String,
    /// Pieces sealed.
    pub fragments: u64,
    /// Bytes sealed.
    pub sealed_bytes: u64,
    /// Pieces the server has acknowledged.
    pub acknowledged: u64,
}

/// One sealed piece as stored: its signed record and, once it came, the server's signed ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRow {
    /// The recording.
    pub clip_id: String,
    /// Index of the piece.
    pub index: u64,
    /// The record's exact bytes.
    pub record: Vec<u8>,
    /// The device's signature over them.
    pub sig: Vec<u8>,
    /// SHA-256 hex of the record.
    pub record_sha256: String,
    /// First byte of the piece.
    pub offset: u64,
    /// Length of the piece.
    pub bytes: u64,
    /// When it was sealed (device clock, Unix ms).
    pub sealed_at_ms: i64,
    /// The server's acknowledgement bytes, if any.
    pub ack: Option<Vec<u8>>,
    /// Its signature.
    pub ack_sig: Option<Vec<u8>>,
    /// When the acknowledgement arrived (device clock, Unix ms).
    pub acked_at_ms: Option<i64>,
}

/// A running recording's state in memory (one process owns it; its `.owner` lock says so).
pub(crate) struct LiveState {
    file: File,
    _owner: File,
    sha: sha2::Sha256,
    b3: blake3::Hasher,
    len: u64,
    next_index: u64,
    last_sequence: Option<u32>,
    init: Option<InitInfo>,
    prev: Option<(FragmentRecord, String)>,
    mime: String,
}

fn live_dir(store: &Store, clip_id: &str) -> PathBuf {
    store.home.join("live").join(clip_id)
}

fn media_path(store: &Store, clip_id: &str, ext: &str) -> PathBuf {
    live_dir(store, clip_id).join(format!("media.{ext}"))
}

fn check_clip_id(clip_id: &str) -> Result<()> {
    match uuid::Uuid::parse_str(clip_id) {
        Ok(u) if u.hyphenated().to_string() == clip_id => Ok(()),
        _ => Err(Error::InvalidInput("a live recording is named by its clip id (a lowercase UUID)".into())),
    }
}

fn piece_error(e: fmp4::Error) -> Error {
    Error::InvalidInput(e.to_string())
}

impl Store {
    /// Starts a live recording (`extension`: `mp4`, `m4a` or `mov`, a fragmented ISO BMFF file).
    /// Returns its clip id, which the finished item keeps.
    pub fn begin_live(&self, req: CaptureRequest, extension: &str) -> Result<String> {
        let req = req.validated()?;
        let (mime, _) = manifest::mime_for_extension(extension)
            .filter(|(m, _)| matches!(*m, "video/mp4" | "audio/mp4" | "video/quicktime"))
            .ok_or_else(|| Error::InvalidInput(format!("live capture records fragmented MP4 (.mp4, .m4a or .mov), not '.{extension}'")))?;
        let ext = manifest::extension_for_mime(mime).to_string();
        let clip_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let dir = live_dir(self, &clip_id);
        fs::create_dir_all(&dir).ctx(|| "creating the live recording folder".into())?;
        let owner = fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".owner")).ctx(|| "creating the recording lock".into())?;
        owner.try_lock().map_err(|_| Error::Busy("the recording is owned by another process".into()))?;
        let file = fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(media_path(self, &clip_id, &ext)).ctx(|| "creating the recording file".into())?;
        crate::fsutil::sync_dir(&dir)?;
        let started = crate::time::format(req.started_at.unwrap_or_else(chrono::Utc::now));
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            rows::insert_recording(&tx, &clip_id, &self.protect_row(&serde_json::to_string(&req)?)?, mime, &ext, &started)?;
            crate::store::append_custody_tx(&tx, &self.key, "live_started", Some(&clip_id), json!({"mime": mime}))?;
            tx.commit()?;
        }
        let state = LiveState {
            file,
            _owner: owner,
            sha: sha2::Sha256::new(),
            b3: blake3::Hasher::new(),
            len: 0,
            next_index: 0,
            last_sequence: None,
            init: None,
            prev: None,
            mime: mime.into(),
        };
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(clip_id.clone(), state);
        Ok(clip_id)
    }

    /// Adds a location fix to a running live recording: the next piece's record carries the
    /// latest fix, and the finished manifest the whole track.
    pub fn add_live_fix(&self, clip_id: &str, mut fix: TrackPoint) -> Result<()> {
        fix.validate("location fix")?;
        let conn = self.conn();
        match rows::recording(&conn, clip_id)? {
            None => return Err(Error::NotFound(format!("live recording {clip_id}"))),
            Some(r) if r.state != "recording" => return Err(Error::InvalidInput("the recording is already finished".into())),
            _ => {}
        }
        let fix = self.protect_row(&serde_json::to_string(&fix)?)?;
        crate::store::db::insert_fix(&conn, clip_id, &fix)?;
        Ok(())
    }

    /// Seals one piece of a running live recording: index 0 must be the initialization segment,
    /// then media fragments in order. On any error nothing is appended or recorded.
    pub fn append_live(&self, clip_id: &str, piece: &[u8]) -> Result<SealedFragment> {
        self.append_live_at(clip_id, piece, chrono::Utc::now())
    }

    fn append_live_at(&self, clip_id: &str, piece: &[u8], at: chrono::DateTime<chrono::Utc>) -> Result<SealedFragment> {
        if piece.is_empty() {
            return Err(Error::InvalidInput("the piece is empty".into()));
        }
        if piece.len() as u64 > crate::evidence::fragment::MAX_FRAGMENT_BYTES {
            return Err(Error::InvalidInput("the piece is larger than 64 MiB; hand fragments over every few seconds".into()));
        }
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let st = live.get_mut(clip_id).ok_or_else(|| Error::NotFound(format!("running live recording {clip_id} (not started here, or finished)")))?;
        let sealed = self.seal_piece(clip_id, st, piece, at)?;
        drop(live);
        self.live_signal.notify();
        Ok(sealed)
    }

    /// Checks, appends, hashes, signs and records one piece (the caller holds the state).
    fn seal_piece(&self, clip_id: &str, st: &mut LiveState, piece: &[u8], at: chrono::DateTime<chrono::Utc>) -> Result<SealedFragment> {
        // 1. Structure, before a byte is written.
        let (init, last_sequence) = match &st.init {
            None => (Some(fmp4::check_init(piece).map_err(piece_error)?), None),
            Some(init) => {
                let f = fmp4::check_fragment(piece, init, st.last_sequence).map_err(piece_error)?;
                (None, f.sequence_numbers.last().copied().or(st.last_sequence))
            }
        };
        // 2. Durable append at the sealed end (a torn write from a failed call is cut first).
        st.file.set_len(st.len).ctx(|| "cutting unsealed bytes off the recording".into())?;
        st.file.seek(SeekFrom::Start(st.len)).ctx(|| "seeking in the recording".into())?;
        st.file.write_all(piece).ctx(|| "appending to the recording".into())?;
        st.file.sync_data().ctx(|| "syncing the recording".into())?;
        // 3. Running digests (on copies: committed only with the record).
        let mut sha = st.sha.clone();
        let mut b3 = st.b3.clone();
        sha.update(piece);
        b3.update(piece);
        let d = Digests::of_bytes(piece);
        let total = st.len + piece.len() as u64;
        let fix = {
            let conn = self.conn();
            crate::store::db::fixes_after(&conn, clip_id, 0)?.last().map(|f| -> Result<TrackPoint> { Ok(serde_json::from_str(&self.open_row(&f.1)?)?) }).transpose()?
        };
        // 4. The record, chained, signed and stored with the new head.
        let rec = FragmentRecord {
            kind_type: FRAGMENT_TYPE.into(),
            clip_id: clip_id.into(),
            device_id: self.device_id().into(),
            mime: st.mime.clone(),
            index: st.next_index,
            offset: st.len,
            bytes: d.bytes,
            sha256: d.sha256_hex(),
            blake3: d.blake3_hex(),
            total_bytes: total,
            total_sha256: hex::encode(sha.clone().finalize()),
            total_blake3: b3.finalize().to_hex().to_string(),
            captured_at: crate::time::format(at),
            fix,
            prev: st.prev.as_ref().map(|p| p.1.clone()),
        };
        rec.validate()?;
        if let Some((p, psha)) = &st.prev {
            p.check_successor(psha, &rec)?;
        }
        let body = rec.to_canonical_bytes()?;
        let sig = self.key.sign(&body);
        let rsha = crate::hashing::sha256_hex(&body);
        // On a sealed store the record (it carries the latest fix) is kept sealed to the vault.
        let stored = self.protect_row(std::str::from_utf8(&body).map_err(|_| Error::Corrupt("a fragment record is not text".into()))?)?;
        rows::insert_fragment(&mut self.conn(), &rec, stored.as_bytes(), &sig, &rsha, last_sequence, self.clock_ms())?;
        st.sha = sha;
        st.b3 = b3;
        st.len = total;
        st.next_index += 1;
        st.last_sequence = last_sequence;
        if init.is_some() {
            st.init = init;
        }
        let sealed = SealedFragment { clip_id: clip_id.into(), index: rec.index, offset: rec.offset, bytes: rec.bytes, total_bytes: total, record_sha256: rsha.clone() };
        st.prev = Some((rec, rsha));
        Ok(sealed)
    }

    /// Ends a live recording: seals the whole file as an item (its manifest names the head of
    /// the fragment chain) and queues it. The pieces already sent need not be sent again.
    pub fn finish_live(&self, clip_id: &str) -> Result<SealedItem> {
        let st = {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            let st = live.get(clip_id).ok_or_else(|| Error::NotFound(format!("running live recording {clip_id}")))?;
            // Refusals that leave the recording running (it can still take pieces or be aborted).
            match &st.prev {
                None => return Err(Error::InvalidInput("the recording has no sealed piece yet; abort it instead".into())),
                Some((last, _)) if last.index == 0 => {
                    return Err(Error::InvalidInput("the recording holds only its initialization segment, no media; abort it instead".into()))
                }
                _ => {}
            }
            live.remove(clip_id).ok_or_else(|| Error::NotFound(format!("running live recording {clip_id}")))?
        };
        // From here a failure (disk, database) leaves the file in live/ with its records: the
        // next start finishes it (recovery), nothing is lost.
        let r = self.finish_live_state(clip_id, st, chrono::Utc::now(), false);
        self.live_signal.notify();
        r
    }

    fn finish_live_state(&self, clip_id: &str, st: LiveState, ended: chrono::DateTime<chrono::Utc>, recovered: bool) -> Result<SealedItem> {
        let Some((last, head)) = st.prev.clone() else {
            return Err(Error::InvalidInput("the recording has no sealed piece yet; abort it instead".into()));
        };
        if st.init.is_some() && last.index == 0 {
            return Err(Error::InvalidInput("the recording holds only its initialization segment, no media; abort it instead".into()));
        }
        let row = rows::recording(&self.conn(), clip_id)?.ok_or_else(|| Error::NotFound(format!("live recording {clip_id}")))?;
        let mut req: CaptureRequest = serde_json::from_str(&self.open_row(&row.request)?)?;
        let fixes = crate::store::db::fixes_after(&self.conn(), clip_id, 0)?;
        req.track = fixes.iter().map(|f| Ok(serde_json::from_str(&self.open_row(&f.1)?)?)).collect::<Result<Vec<TrackPoint>>>()?;
        req.track.sort_by(|a, b| a.t.cmp(&b.t));
        if recovered && !req.tags.iter().any(|t| t == "recovered") {
            req.tags.push("recovered".into());
            req.tags = manifest::normalise_tags(&req.tags)?;
        }
        let digests = Digests { bytes: st.len, sha256: st.sha.clone().finalize().into(), blake3: *st.b3.finalize().as_bytes() };
        let last_at = crate::time::parse(&last.captured_at, "captured_at")?;
        let ended_s = crate::time::format(if recovered { last_at } else { ended.max(last_at) });
        let kind = manifest::mime_for_extension(&row.media_ext).map(|m| m.1).unwrap_or(manifest::ItemKind::Video);
        let pending = PendingSeal {
            clip_id: clip_id.into(),
            kind,
            mime: row.mime.clone(),
            ext: row.media_ext.clone(),
            bytes: digests.bytes,
            sha256: digests.sha256_hex(),
            blake3: digests.blake3_hex(),
            started_at: row.started_at.clone(),
            ended_at: ended_s,
            request: req,
            segment: None,
            fragments: Some(FragmentChain { count: last.index + 1, head }),
            age: None,
        };
        let path = media_path(self, clip_id, &row.media_ext);
        // The store lock before the recording's owner lock goes (with `st`): another process's
        // start-up recovery must not see the recording unowned and finish it as well.
        let _lock = if recovered { None } else { Some(self.lock()?) };
        drop(st);
        let item = self.move_in_and_commit(&path, pending, &digests, &mut |_| {})?;
        rows::set_state(&self.conn(), clip_id, "finished")?;
        // The track is in the item's manifest now; the fixes are not kept twice.
        crate::store::db::delete_fixes(&self.conn(), clip_id)?;
        let dir = live_dir(self, clip_id);
        let _ = fs::remove_file(dir.join(".owner"));
        let _ = fs::remove_dir(&dir);
        Ok(item)
    }

    /// Abandons a running live recording without sealing it as an item. The pieces already
    /// sealed (and sent) stay on record; the file is moved to quarantine, never deleted.
    pub fn abort_live(&self, clip_id: &str) -> Result<()> {
        let st = self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(clip_id);
        let Some(st) = st else {
            return Err(Error::NotFound(format!("running live recording {clip_id}")));
        };
        drop(st);
        let _lock = self.lock()?;
        rows::set_state(&self.conn(), clip_id, "aborted")?;
        let dir = live_dir(self, clip_id);
        let _ = fs::remove_file(dir.join(".owner"));
        crate::store::recovery::quarantine(self, &dir, "aborted-live-recording")?;
        self.append_custody("live_aborted", Some(clip_id), json!({}))?;
        Ok(())
    }

    /// A piece's row with its record as signed (opened from the vault on a sealed store).
    pub(crate) fn open_fragment(&self, mut row: FragmentRow) -> Result<FragmentRow> {
        if row.record.starts_with(b"age:") {
            let text = std::str::from_utf8(&row.record).map_err(|_| Error::Corrupt("a sealed fragment record is not text".into()))?;
            row.record = self.open_row(text)?.into_bytes();
        }
        Ok(row)
    }

    /// Live recordings on this device (newest first).
    pub fn live_recordings(&self) -> Result<Vec<LiveStatus>> {
        rows::statuses(&self.conn())
    }

    /// The signed record of one piece and the server's acknowledgement, if it came:
    /// (record, signature, ack body, ack signature).
    pub fn live_fragment(&self, clip_id: &str, index: u64) -> Result<FragmentRow> {
        let row = rows::fragment(&self.conn(), clip_id, index)?.ok_or_else(|| Error::NotFound(format!("fragment {index} of {clip_id}")))?;
        self.open_fragment(row)
    }
}

/// Recovery of live recordings no process owns (called at [`Store::open`] under the store lock).
pub(crate) fn recover(store: &Store, report: &mut crate::store::OpenReport) -> Result<()> {
    let root = store.home.join("live");
    let entries = match fs::read_dir(&root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing live recordings", e)),
    };
    for entry in entries {
        let entry = entry.ctx(|| "listing live recordings".into())?;
        let dir = entry.path();
        let clip_id = entry.file_name().to_string_lossy().to_string();
        let owner = match fs::OpenOptions::new().write(true).open(dir.join(".owner")) {
            Ok(f) => match f.try_lock() {
                Ok(()) => f,
                Err(_) => continue, // a live process records it
            },
            Err(_) => match fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".owner")) {
                Ok(f) if f.try_lock().is_ok() => f,
                _ => continue,
            },
        };
        if check_clip_id(&clip_id).is_err() {
            report.quarantined.push(crate::store::recovery::quarantine(store, &dir, "unknown-live-recording")?);
            continue;
        }
        let row = rows::recording(&store.conn(), &clip_id)?;
        if row.as_ref().is_some_and(|r| r.state == "recording") && crate::store::db::item_exists(&store.conn(), &clip_id)? {
            // Sealed as an item just before a crash; only the state flip was missing.
            rows::set_state(&store.conn(), &clip_id, "finished")?;
            crate::store::db::delete_fixes(&store.conn(), &clip_id)?;
            drop(owner);
            let _ = fs::remove_file(dir.join(".owner"));
            let _ = fs::remove_dir(&dir);
            continue;
        }
        match row {
            Some(r) if r.state == "recording" => match resume_state(store, &clip_id, &r, owner) {
                Ok((st, tail)) => {
                    let mut st = st;
                    if let Some(tail) = tail {
                        // A whole piece written before the crash but not yet recorded: seal it
                        // now (its capture time is when the file was last written).
                        let mtime = fs::metadata(media_path(store, &clip_id, &r.media_ext)).and_then(|m| m.modified()).map(chrono::DateTime::<chrono::Utc>::from).unwrap_or_else(|_| chrono::Utc::now());
                        store.seal_piece(&clip_id, &mut st, &tail, mtime)?;
                    }
                    if st.prev.as_ref().is_some_and(|p| p.0.index > 0) {
                        let item = store.finish_live_state(&clip_id, st, chrono::Utc::now(), true)?;
                        report.segments_recovered.push(item.clip_id);
                    } else {
                        // Nothing but (at most) the initialization segment: no media to seal.
                        drop(st);
                        rows::set_state(&store.conn(), &clip_id, "aborted")?;
                        report.quarantined.push(crate::store::recovery::quarantine(store, &dir, "live-recording-without-media")?);
                    }
                }
                Err(e) => {
                    tracing::warn!("a live recording could not be resumed: {e}");
                    store.raise_alarm("live_recording_damaged", &format!("live recording {clip_id}: {e}"))?;
                    rows::set_state(&store.conn(), &clip_id, "damaged")?;
                    report.quarantined.push(crate::store::recovery::quarantine(store, &dir, "damaged-live-recording")?);
                }
            },
            Some(_) => {
                // Finished or aborted: whatever is left is not evidence of its own; keep it aside.
                if fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name() != ".owner")).unwrap_or(false) {
                    report.quarantined.push(crate::store::recovery::quarantine(store, &dir, "live-recording-leftovers")?);
                } else {
                    let _ = fs::remove_file(dir.join(".owner"));
                    let _ = fs::remove_dir(&dir);
                }
            }
            None => report.quarantined.push(crate::store::recovery::quarantine(store, &dir, "unknown-live-recording")?),
        }
    }
    Ok(())
}

/// Rebuilds a recording's state from its file and records: re-hashes the sealed prefix (it must
/// match the last record), and returns a whole unrecorded tail piece, if any. A torn tail is set
/// aside in quarantine and cut.
fn resume_state(store: &Store, clip_id: &str, r: &rows::RecordingRow, owner: File) -> Result<(LiveState, Option<Vec<u8>>)> {
    let path = media_path(store, clip_id, &r.media_ext);
    let mut file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).ctx(|| "opening the live recording".into())?;
    let on_disk = file.metadata().ctx(|| "reading the live recording's size".into())?.len();
    let frags = rows::fragments(&store.conn(), clip_id)?.into_iter().map(|f| store.open_fragment(f)).collect::<Result<Vec<_>>>()?;
    let sealed = r.sealed_bytes;
    if on_disk < sealed {
        return Err(Error::Integrity(format!("the recording file holds {on_disk} bytes but {sealed} were sealed")));
    }
    let mut sha = sha2::Sha256::new();
    let mut b3 = blake3::Hasher::new();
    let mut init = None;
    let mut reader = (&mut file).take(sealed);
    let mut buf = vec![0u8; 1 << 20];
    let mut first = Vec::new();
    let init_len = frags.first().map(|f| f.bytes).unwrap_or(0);
    loop {
        let n = reader.read(&mut buf).ctx(|| "reading the live recording".into())?;
        if n == 0 {
            break;
        }
        if (first.len() as u64) < init_len {
            let want = (init_len - first.len() as u64).min(n as u64) as usize;
            first.extend_from_slice(&buf[..want]);
        }
        sha.update(&buf[..n]);
        b3.update(&buf[..n]);
    }
    let last = frags.last().map(|f| FragmentRecord::parse(&f.record)).transpose()?;
    if let Some(l) = &last {
        if hex::encode(sha.clone().finalize()) != l.total_sha256 || b3.finalize().to_hex().to_string() != l.total_blake3 {
            return Err(Error::Integrity("the sealed part of the recording no longer matches its fragment records".into()));
        }
        init = Some(fmp4::check_init(&first).map_err(piece_error)?);
    }
    let mut tail = None;
    if on_disk > sealed {
        let mut rest = Vec::new();
        file.seek(SeekFrom::Start(sealed)).ctx(|| "seeking in the live recording".into())?;
        (&mut file).take(crate::evidence::fragment::MAX_FRAGMENT_BYTES).read_to_end(&mut rest).ctx(|| "reading the recording's tail".into())?;
        let whole = match &init {
            None => fmp4::check_init(&rest).is_ok(),
            Some(i) => fmp4::check_fragment(&rest, i, r.last_sequence.map(|s| s as u32)).is_ok(),
        };
        if whole && on_disk - sealed == rest.len() as u64 {
            tail = Some(rest);
        } else {
            let q = store.home.join("quarantine").join(format!("{clip_id}-torn-tail-{}.bin", chrono::Utc::now().timestamp_millis()));
            crate::fsutil::write_atomic(&q, &rest)?;
            tracing::warn!("a torn piece of {} bytes at the end of a live recording was set aside", rest.len());
        }
        file.set_len(sealed).ctx(|| "cutting the torn tail".into())?;
        file.sync_data().ctx(|| "syncing the live recording".into())?;
    }
    let prev = match (frags.last(), last) {
        (Some(f), Some(l)) => Some((l, f.record_sha256.clone())),
        _ => None,
    };
    let st = LiveState {
        file,
        _owner: owner,
        sha,
        b3,
        len: sealed,
        next_index: frags.len() as u64,
        last_sequence: r.last_sequence.map(|s| s as u32),
        init,
        prev,
        mime: r.mime.clone(),
    };
    Ok((st, tail))
}

/// Wakes the live uploader when a piece is sealed (or a recording ends).
#[derive(Default)]
pub(crate) struct LiveSignal {
    generation: std::sync::Mutex<u64>,
    cv: std::sync::Condvar,
}

impl LiveSignal {
    pub(crate) fn notify(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        self.cv.notify_all();
    }

    /// Waits until the generation passes `seen` or `timeout` elapses; returns the generation.
    pub(crate) fn wait(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        let g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = self.cv.wait_timeout_while(g, timeout, |g| *g == seen).unwrap_or_else(|p| p.into_inner());
        *g
    }
}
