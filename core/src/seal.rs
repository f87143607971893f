//! Sealing: turning a recorded file (or a witness note) into a signed item in the device chain.
//!
//! `seal_file` reads the file once (SHA-256 and BLAKE3 in parallel), then, under the store lock:
//! records a *pending seal* (so a crash from here on is finished by recovery), moves the file into
//! `items/<clip_id>/` (rename, or a verified copy from another filesystem), and in one transaction
//! assigns `seq`/`prev`, writes and signs the manifest, stores it with a `sealed` custody event and
//! clears the pending seal. If that transaction fails the file is moved back. The source file is
//! therefore either where it was or sealed, at every instant.
//!
//! Recordings from a phone go through [`Store::start_recording`]: the core hands out the path to
//! record into, location fixes are added as they come, and [`Store::seal_segment`] seals each
//! segment while recording continues, so a seized phone still leaves a sealed prefix.

use crate::error::{Error, IoContext, Result};
use crate::hashing::Digests;
use crate::manifest::{self, App, Capture, Clock, ItemKind, Manifest, Media, Observation, Segment};
use crate::store::{append_custody_tx, db, Store};
use crate::escrow::ItemKey;
use crate::track::TrackPoint;
use crate::vault::AgeFacts;
use chrono::{DateTime, Utc};
use rusqlite::TransactionBehavior;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// Metadata supplied with a capture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureRequest {
    /// Start of capture; default: the file's modification time (or now).
    pub started_at: Option<DateTime<Utc>>,
    /// End of capture; default: the file's modification time (or now).
    pub ended_at: Option<DateTime<Utc>>,
    /// Location fixes.
    pub track: Vec<TrackPoint>,
    /// Tags from [`manifest::KNOWN_TAGS`].
    pub tags: Vec<String>,
    /// Operator's note.
    pub note: Option<String>,
    /// Incident hint.
    pub incident_hint: Option<String>,
    /// Clock source: `system` (default), `gnss`, `network`.
    pub clock_source: Option<String>,
    /// Producing app.
    pub app: Option<App>,
}

impl CaptureRequest {
    /// Validates and normalises (tags sorted, track checked, times ordered).
    pub fn validated(mut self) -> Result<CaptureRequest> {
        self.tags = manifest::normalise_tags(&self.tags)?;
        crate::track::validate_track(&mut self.track)?;
        if let (Some(s), Some(e)) = (self.started_at, self.ended_at) {
            if e < s {
                return Err(Error::InvalidInput("ended_at is before started_at".into()));
            }
        }
        if let Some(c) = &self.clock_source {
            if !matches!(c.as_str(), "system" | "gnss" | "network") {
                return Err(Error::InvalidInput("clock source must be system, gnss or network".into()));
            }
        }
        if self.note.as_ref().is_some_and(|n| n.len() > 64 * 1024) {
            return Err(Error::InvalidInput("note is longer than 64 KiB".into()));
        }
        Ok(self)
    }
}

/// A witness log entry to seal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservationRequest {
    /// When it was observed; default now.
    pub at: Option<DateTime<Utc>>,
    /// Where, if known.
    pub place: Option<TrackPoint>,
    /// Structured fields and text.
    pub observation: Observation,
    /// Tags.
    pub tags: Vec<String>,
    /// Incident hint.
    pub incident_hint: Option<String>,
}

/// The result of a seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedItem {
    /// Item id (UUIDv7).
    pub clip_id: String,
    /// Position in the device chain.
    pub seq: u64,
    /// SHA-256 hex of the manifest bytes.
    pub manifest_sha256: String,
    /// Media digests, if any.
    pub media: Option<Media>,
}

/// What a pending seal remembers, so recovery can finish it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingSeal {
    pub clip_id: String,
    pub kind: ItemKind,
    pub mime: String,
    pub ext: String,
    pub bytes: u64,
    pub sha256: String,
    pub blake3: String,
    pub started_at: String,
    pub ended_at: String,
    pub request: CaptureRequest,
    pub segment: Option<Segment>,
    /// The fragment chain's head, for a finished live recording.
    #[serde(default)]
    pub fragments: Option<crate::manifest::FragmentChain>,
    /// Sealed storage: the media file is `media.<ext>.age`, this long, with this BLAKE3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<crate::vault::AgeFacts>,
}

fn media_type_of(path: &Path) -> Result<(&'static str, ItemKind, String)> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let (mime, kind) = manifest::mime_for_extension(&ext).ok_or_else(|| {
        Error::InvalidInput(format!(
            "cannot tell the media type from the extension '.{ext}' (use .mp4, .mov, .m4a, .wav, .jpg, .png, …)"
        ))
    })?;
    Ok((mime, kind, manifest::extension_for_mime(mime).to_string()))
}

fn check_source(path: &Path) -> Result<fs::Metadata> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("the file").to_string();
    let meta = fs::symlink_metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!("file '{name}' does not exist")),
        _ => Error::io(format!("reading '{name}'"), e),
    })?;
    if meta.is_dir() {
        return Err(Error::InvalidInput(format!("'{name}' is a directory, not a media file")));
    }
    if !meta.is_file() {
        return Err(Error::InvalidInput(format!("'{name}' is not a regular file")));
    }
    if meta.len() == 0 {
        return Err(Error::InvalidInput(format!("'{name}' is empty")));
    }
    fs::File::open(path).map_err(|e| Error::io(format!("'{name}' cannot be read"), e))?;
    Ok(meta)
}

impl Store {
    /// Seals an existing media file: hashes it, moves it into the store, signs and queues it.
    ///
    /// All-or-nothing: on any error the file is where it was and nothing is recorded.
    pub fn seal_file(&self, source: &Path, req: CaptureRequest, progress: &mut dyn FnMut(u64, u64)) -> Result<SealedItem> {
        let req = req.validated()?;
        let (mime, kind, ext) = media_type_of(source)?;
        let meta = check_source(source)?;
        let source = fs::canonicalize(source).ctx(|| "resolving the file path".into())?;
        let before = crate::fsutil::fingerprint(&source)?;
        let total = meta.len();
        let clip_id = uuid::Uuid::now_v7().hyphenated().to_string();
        // Sealed storage: one pass reads the file, hashes it and encrypts it into the store.
        let (digests, sealed) = if self.sealed_storage() {
            let key = ItemKey::generate();
            let (d, facts, staged) = self.encrypt_to_staging(&source, &clip_id, &key, &mut |n| progress(n, total))?;
            (d, Some((key, facts, staged)))
        } else {
            (crate::hashing::hash_file(&source, &mut |n| progress(n, total)).ctx(|| "reading the file".into())?, None)
        };
        let after = crate::fsutil::fingerprint(&source)?;
        if before != after || digests.bytes != before.0 {
            if let Some((_, _, staged)) = &sealed {
                let _ = fs::remove_file(staged);
            }
            return Err(Error::SourceChanged("size or modification time differs after reading".into()));
        }
        let mtime: DateTime<Utc> = before.1.into();
        let started = req.started_at.unwrap_or(mtime.min(req.ended_at.unwrap_or(mtime)));
        let ended = req.ended_at.unwrap_or(mtime.max(started));
        if ended < started {
            return Err(Error::InvalidInput("ended_at is before started_at".into()));
        }
        let mut pending = PendingSeal {
            clip_id,
            kind,
            mime: mime.into(),
            ext,
            bytes: digests.bytes,
            sha256: digests.sha256_hex(),
            blake3: digests.blake3_hex(),
            started_at: crate::time::format(started),
            ended_at: crate::time::format(ended),
            request: req,
            segment: None,
            fragments: None,
            age: None,
        };
        let _lock = self.lock()?;
        if crate::fsutil::fingerprint(&source)? != before {
            if let Some((_, _, staged)) = &sealed {
                let _ = fs::remove_file(staged);
            }
            return Err(Error::SourceChanged("the file was modified before it could be moved".into()));
        }
        match sealed {
            Some((key, facts, staged)) => {
                pending.age = Some(facts);
                self.commit_sealed(&source, pending, &key, &staged)
            }
            None => self.move_in_and_commit(&source, pending, &digests, &mut |n| progress(n, total)),
        }
    }

    /// Sealed storage, under the lock, with the media already encrypted to `key` in `staged`:
    /// pending row (its request encrypted to the vault) → key wraps → the ciphertext into the
    /// item folder → commit → the plaintext source removed → pending row cleared. A crash at
    /// any point is finished or undone by recovery; on an error the source is where it was.
    pub(crate) fn commit_sealed(&self, source: &Path, pending: PendingSeal, key: &ItemKey, staged: &Path) -> Result<SealedItem> {
        let clip_id = pending.clip_id.clone();
        let request = self.vault()?.seal_text(&serde_json::to_string(&pending)?)?;
        db::insert_pending_seal(&self.conn(), &clip_id, &request, &source.to_string_lossy())?;
        let dir = self.item_dir(&clip_id);
        let placed = (|| {
            fs::create_dir(&dir).ctx(|| "creating the item folder".into())?;
            self.write_item_wraps(&dir, key)?;
            fs::rename(staged, dir.join(crate::vault::media_age_name(&pending.ext))).ctx(|| "moving the encrypted copy into the item folder".into())?;
            crate::fsutil::sync_dir(&dir)?;
            crate::fsutil::sync_dir(&self.home.join("items"))?;
            self.commit_seal(&pending)
        })();
        let item = match placed {
            Ok(item) => item,
            Err(e) => {
                // Only our encrypted copy and its key wraps: the source is untouched.
                let _ = fs::remove_file(staged);
                let _ = fs::remove_dir_all(&dir);
                let _ = db::delete_pending_seal(&self.conn(), &clip_id);
                return Err(e);
            }
        };
        self.remove_sealed_source(source, &clip_id)?;
        self.lock_at_once(&clip_id);
        Ok(item)
    }

    /// The "lock at once" policy right after a seal. The item is sealed whatever happens here:
    /// a lock that fails is retried by the policy at the next sync pass.
    fn lock_at_once(&self, clip_id: &str) {
        if self.profile.lock_after_secs == Some(0) && self.item_dir(clip_id).join(crate::vault::KEY_ESCROW).exists() {
            if let Err(e) = self.lock_item_locked(clip_id) {
                tracing::warn!("a new item could not be locked at once ({e}); the lock policy retries it");
            }
        }
    }

    /// After a sealed item is committed: the plaintext source goes (the store holds it
    /// encrypted, hashed in the same pass), then the pending row.
    pub(crate) fn remove_sealed_source(&self, source: &Path, clip_id: &str) -> Result<()> {
        match fs::remove_file(source) {
            Ok(()) => {
                if let Some(p) = source.parent() {
                    let _ = crate::fsutil::sync_dir(p);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // A read-only card: the plaintext stays where the user put it, and they are told.
            Err(e) => tracing::warn!("the plaintext source could not be removed after sealing ({})", e.kind()),
        }
        db::delete_pending_seal(&self.conn(), clip_id)?;
        Ok(())
    }

    /// Under the lock: pending row, move into the store, commit; undo the move on failure.
    pub(crate) fn move_in_and_commit(&self, source: &Path, mut pending: PendingSeal, digests: &Digests, progress: &mut dyn FnMut(u64)) -> Result<SealedItem> {
        // On a sealed store a segment and a finished live recording are encrypted now (the
        // platform's recorder wrote them in the clear while filming; a live recording's pieces
        // went to the server in the clear as they were filmed, FORMATS §6b).
        if self.sealed_storage() {
            // Hashed already: encrypt now, and check the bytes encrypted are the bytes hashed.
            let key = ItemKey::generate();
            let (d, facts, staged) = self.encrypt_to_staging(source, &pending.clip_id, &key, progress)?;
            if &d != digests {
                let _ = fs::remove_file(&staged);
                return Err(Error::SourceChanged("the file changed between hashing and sealing".into()));
            }
            pending.age = Some(facts);
            return self.commit_sealed(source, pending, &key, &staged);
        }
        let clip_id = pending.clip_id.clone();
        db::insert_pending_seal(&self.conn(), &clip_id, &serde_json::to_string(&pending)?, &source.to_string_lossy())?;
        let dir = self.item_dir(&clip_id);
        let target = dir.join(format!("media.{}", pending.ext));
        if let Err(e) = self.move_into_store(source, &dir, &target, digests, progress) {
            let _ = fs::remove_dir(&dir);
            db::delete_pending_seal(&self.conn(), &clip_id)?;
            return Err(e);
        }
        match self.commit_seal(&pending) {
            Ok(item) => Ok(item),
            Err(e) => {
                // Put the file back where the user had it; if even that fails, the pending row
                // stays and the next start seals the item.
                if fs::rename(&target, source).is_ok() {
                    let _ = fs::remove_dir(&dir);
                    let _ = db::delete_pending_seal(&self.conn(), &clip_id);
                }
                Err(e)
            }
        }
    }

    fn move_into_store(&self, source: &Path, dir: &Path, target: &Path, digests: &Digests, progress: &mut dyn FnMut(u64)) -> Result<()> {
        fs::create_dir(dir).ctx(|| "creating the item folder".into())?;
        match fs::rename(source, target) {
            Ok(()) => {
                fs::File::open(target).and_then(|f| f.sync_all()).ctx(|| "syncing the sealed file".into())?;
                crate::fsutil::sync_dir(dir)?;
                crate::fsutil::sync_dir(&self.home.join("items"))?;
                if let Some(p) = source.parent() {
                    crate::fsutil::sync_dir(p)?;
                }
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                // Another filesystem: copy, fsync, re-hash, and only then remove the source.
                let staged = self.home.join("staging").join(format!("{}.part", dir.file_name().and_then(|n| n.to_str()).unwrap_or("item")));
                let copied = crate::fsutil::copy_hashed(source, &staged, progress)?;
                if &copied != digests {
                    let _ = fs::remove_file(&staged);
                    return Err(Error::SourceChanged("the copy's digests differ from the first read".into()));
                }
                fs::rename(&staged, target).ctx(|| "moving the copy into the item folder".into())?;
                crate::fsutil::sync_dir(dir)?;
                // The verified copy is what gets sealed. If the source cannot be removed (a
                // read-only card, say) it simply stays where it was: failing here would leave
                // the copy unattributed in the store.
                if let Err(e) = fs::remove_file(source) {
                    tracing::warn!("the source could not be removed after a verified copy ({}); it stays in place", e.kind());
                }
                Ok(())
            }
            Err(e) => Err(Error::io("moving the file into the evidence store", e)),
        }
    }

    /// One transaction: chain position, manifest, signature, item row, custody, pending cleared.
    pub(crate) fn commit_seal(&self, p: &PendingSeal) -> Result<SealedItem> {
        let media = Media { mime: p.mime.clone(), bytes: p.bytes, sha256: p.sha256.clone(), blake3: p.blake3.clone() };
        let mut manifest = self.build_manifest(p.clip_id.clone(), p.kind, Some(media), &p.started_at, &p.ended_at, &p.request, p.segment.clone(), None)?;
        manifest.fragments = p.fragments.clone();
        match &p.age {
            // The pending row is cleared once the plaintext source is gone (`remove_sealed_source`).
            Some(facts) => {
                let key = self.item_key_in(&self.item_dir(&p.clip_id))?;
                self.insert_manifest(manifest, Some(&p.ext), false, Some((&key, Some(facts))))
            }
            None => self.insert_manifest(manifest, Some(&p.ext), true, None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build_manifest(
        &self,
        clip_id: String,
        kind: ItemKind,
        media: Option<Media>,
        started_at: &str,
        ended_at: &str,
        req: &CaptureRequest,
        segment: Option<Segment>,
        observation: Option<Observation>,
    ) -> Result<Manifest> {
        let offset: Option<(i64, String)> = db::sync::server_get(&self.conn(), "clock_offset")?
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| Some((v.get("offset_ms")?.as_i64()?, v.get("measured_at")?.as_str()?.to_string())));
        Ok(Manifest {
            kind_type: manifest::MANIFEST_TYPE.into(),
            clip_id,
            device_id: self.device_id().into(),
            seq: 0,
            prev: None,
            kind,
            media,
            capture: Capture {
                started_at: started_at.into(),
                ended_at: ended_at.into(),
                clock: Clock {
                    source: req.clock_source.clone().unwrap_or_else(|| "system".into()),
                    uptime_ms: crate::time::uptime_ms(),
                    offset_ms: offset.as_ref().map(|o| o.0),
                    measured_at: offset.map(|o| o.1),
                },
            },
            track: req.track.clone(),
            operator: self.profile.operator(),
            tags: req.tags.clone(),
            segment,
            fragments: None,
            incident_hint: req.incident_hint.clone(),
            note: req.note.clone(),
            observation,
            app: req.app.clone().or_else(|| {
                Some(App { name: "fieldcap".into(), version: env!("CARGO_PKG_VERSION").into(), platform: std::env::consts::OS.into() })
            }),
        })
    }

    /// Assigns seq/prev, signs and stores, with the custody event, in one transaction; then writes
    /// the manifest mirror files (recovery rewrites them if a crash comes first).
    fn insert_manifest(&self, mut m: Manifest, ext: Option<&str>, clear_pending: bool, sealed: Option<(&ItemKey, Option<&AgeFacts>)>) -> Result<SealedItem> {
        let (bytes, sig, sha, manifest_age) = {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let head = db::chain_head(&tx)?;
            m.seq = head.as_ref().map(|h| h.0 as u64 + 1).unwrap_or(1);
            m.prev = head.map(|h| h.1);
            m.validate()?;
            let bytes = m.to_canonical_bytes()?;
            let sig = self.key.sign(&bytes).to_vec();
            let sha = crate::hashing::sha256_hex(&bytes);
            let manifest_age = match sealed {
                Some((key, facts)) => {
                    let ct = key.encrypt(&bytes)?;
                    let media_age = facts.map(|f| (f.bytes, f.blake3.as_str()));
                    db::insert_sealed_item(&tx, &m, &db::SealedFacts { manifest_age: &ct, media_age }, &sig, &sha, ext)?;
                    Some(ct)
                }
                None => {
                    db::insert_item(&tx, &m, &bytes, &sig, &sha, ext)?;
                    None
                }
            };
            append_custody_tx(
                &tx,
                &self.key,
                "sealed",
                Some(&m.clip_id),
                json!({"seq": m.seq, "manifest_sha256": sha, "media_sha256": m.media.as_ref().map(|x| x.sha256.clone())}),
            )?;
            if clear_pending {
                db::delete_pending_seal(&tx, &m.clip_id)?;
            }
            tx.commit()?;
            (bytes, sig, sha, manifest_age)
        };
        let mirrored = match (&manifest_age, sealed) {
            (Some(ct), Some((_, facts))) => self.write_sealed_mirror(&m, ct, &sig, &sha, ext, facts),
            _ => self.write_mirror(&m.clip_id, &bytes, &sig),
        };
        if let Err(e) = mirrored {
            tracing::warn!("manifest mirror not written yet ({e}); it will be rewritten at next start");
        }
        Ok(SealedItem { clip_id: m.clip_id.clone(), seq: m.seq, manifest_sha256: sha, media: m.media.clone() })
    }

    /// The mirror files of a sealed item: the manifest's age file, the signature, and the
    /// public facts a lost database is rebuilt from (`sealed.json`).
    pub(crate) fn write_sealed_mirror(&self, m: &Manifest, manifest_age: &[u8], sig: &[u8], sha: &str, ext: Option<&str>, facts: Option<&AgeFacts>) -> Result<()> {
        let dir = self.item_dir(&m.clip_id);
        let index = crate::vault::SealedIndex {
            clip_id: m.clip_id.clone(),
            seq: m.seq,
            kind: m.kind.as_str().into(),
            manifest_sha256: sha.into(),
            started_at: m.capture.started_at.clone(),
            media: match (&m.media, ext, facts) {
                (Some(x), Some(e), Some(f)) => Some(crate::vault::SealedMedia {
                    ext: e.into(),
                    bytes: x.bytes,
                    sha256: x.sha256.clone(),
                    blake3: x.blake3.clone(),
                    age_bytes: f.bytes,
                    age_blake3: f.blake3.clone(),
                }),
                _ => None,
            },
            segment: m.segment.as_ref().map(|s| (s.recording_id.clone(), s.index)),
        };
        crate::fsutil::write_atomic(&dir.join(crate::vault::SEALED_INDEX), &serde_json::to_vec_pretty(&index)?)?;
        crate::fsutil::write_atomic(&dir.join("manifest.sig"), sig)?;
        Ok(crate::fsutil::write_atomic(&dir.join(crate::vault::MANIFEST_AGE), manifest_age)?)
    }

    pub(crate) fn write_mirror(&self, clip_id: &str, manifest: &[u8], sig: &[u8]) -> Result<()> {
        let dir = self.item_dir(clip_id);
        fs::create_dir_all(&dir).ctx(|| "creating the item folder".into())?;
        crate::fsutil::write_atomic(&dir.join("manifest.sig"), sig)?;
        Ok(crate::fsutil::write_atomic(&dir.join("manifest.json"), manifest)?)
    }

    /// Seals a witness log entry (no media).
    pub fn observe(&self, req: ObservationRequest) -> Result<SealedItem> {
        let mut obs = req.observation.clone();
        obs.text = obs.text.trim().to_string();
        if obs.text.is_empty() {
            return Err(Error::InvalidInput("an observation needs text".into()));
        }
        if obs.text.len() > 64 * 1024 {
            return Err(Error::InvalidInput("observation text is longer than 64 KiB".into()));
        }
        let mut track = Vec::new();
        if let Some(mut p) = req.place.clone() {
            p.validate("place")?;
            track.push(p);
        }
        let at = crate::time::format(req.at.unwrap_or_else(Utc::now));
        let capture = CaptureRequest { track, tags: req.tags.clone(), incident_hint: req.incident_hint.clone(), ..Default::default() }.validated()?;
        let clip_id = uuid::Uuid::now_v7().hyphenated().to_string();
        let m = self.build_manifest(clip_id.clone(), ItemKind::Observation, None, &at, &at, &capture, None, Some(obs))?;
        let _lock = self.lock()?;
        if !self.sealed_storage() {
            return self.insert_manifest(m, None, false, None);
        }
        // Key wraps first: a crash before the commit leaves a folder of wraps alone, which
        // recovery quarantines (they open nothing).
        let key = ItemKey::generate();
        let dir = self.item_dir(&clip_id);
        self.write_item_wraps(&dir, &key)?;
        let item = self.insert_manifest(m, None, false, Some((&key, None)))?;
        self.lock_at_once(&clip_id);
        Ok(item)
    }

    /// Starts a recording: returns its id and the path the shell must record segment 0 into.
    pub fn start_recording(&self, req: CaptureRequest, extension: &str) -> Result<(String, PathBuf)> {
        let req = req.validated()?;
        let (mime, _, ext) = media_type_of(Path::new(&format!("x.{extension}")))?;
        let _ = mime;
        let rid = uuid::Uuid::now_v7().hyphenated().to_string();
        let dir = self.home.join("recording").join(&rid);
        fs::create_dir_all(&dir).ctx(|| "creating the recording folder".into())?;
        // Held while this process owns the recording; recovery leaves locked recordings alone.
        let owner = fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(".owner")).ctx(|| "creating the recording lock".into())?;
        owner.try_lock().map_err(|_| Error::Busy("the recording is owned by another process".into()))?;
        let now = crate::time::format(req.started_at.unwrap_or_else(Utc::now));
        db::insert_session(&self.conn(), &rid, &self.protect_row(&serde_json::to_string(&req)?)?, &ext, &now)?;
        self.active_recordings.lock().unwrap_or_else(|p| p.into_inner()).insert(rid.clone(), owner);
        let path = dir.join(format!("0.{ext}"));
        Ok((rid, path))
    }

    /// Adds a location fix to a running recording (kept in the database at once).
    pub fn add_fix(&self, recording_id: &str, mut fix: TrackPoint) -> Result<()> {
        fix.validate("location fix")?;
        let conn = self.conn();
        match db::session_finished(&conn, recording_id)? {
            None => return Err(Error::NotFound(format!("recording {recording_id}"))),
            Some(1) => return Err(Error::InvalidInput("the recording is already finished".into())),
            _ => {}
        }
        let fix = self.protect_row(&serde_json::to_string(&fix)?)?;
        db::insert_fix(&conn, recording_id, &fix)?;
        Ok(())
    }

    /// Seals the current segment of a recording. Returns the sealed item and, unless `is_final`,
    /// the path to record the next segment into.
    pub fn seal_segment(&self, recording_id: &str, is_final: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<(SealedItem, Option<PathBuf>)> {
        let item = self.seal_segment_inner(recording_id, is_final, Utc::now(), false, progress)?;
        if is_final {
            self.active_recordings.lock().unwrap_or_else(|p| p.into_inner()).remove(recording_id);
            let _ = fs::remove_file(self.home.join("recording").join(recording_id).join(".owner"));
            let _ = fs::remove_dir(self.home.join("recording").join(recording_id));
            return Ok((item, None));
        }
        let s = db::session(&self.conn(), recording_id)?.ok_or_else(|| Error::NotFound(format!("recording {recording_id}")))?;
        Ok((item, Some(self.home.join("recording").join(recording_id).join(format!("{}.{}", s.next_index, s.media_ext)))))
    }

    pub(crate) fn seal_segment_inner(&self, recording_id: &str, is_final: bool, ended: DateTime<Utc>, recovered: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<SealedItem> {
        let s = db::session(&self.conn(), recording_id)?.ok_or_else(|| Error::NotFound(format!("recording {recording_id}")))?;
        let db::SessionRow { request, media_ext: ext, next_index: index, fix_cursor: cursor, segment_started_at: seg_start, finished } = s;
        if finished != 0 {
            return Err(Error::InvalidInput("the recording is already finished".into()));
        }
        let mut req: CaptureRequest = serde_json::from_str(&self.open_row(&request)?)?;
        let path = self.home.join("recording").join(recording_id).join(format!("{index}.{ext}"));
        let meta = check_source(&path)?;
        let before = crate::fsutil::fingerprint(&path)?;
        let total = meta.len();
        let digests = crate::hashing::hash_file(&path, &mut |n| progress(n, total)).ctx(|| "reading the segment".into())?;
        if crate::fsutil::fingerprint(&path)? != before || digests.bytes != before.0 {
            return Err(Error::SourceChanged("the segment is still being written".into()));
        }
        let fixes = db::fixes_after(&self.conn(), recording_id, cursor)?;
        let last_fix = fixes.last().map(|f| f.0).unwrap_or(cursor);
        req.track = fixes.iter().map(|f| Ok(serde_json::from_str(&self.open_row(&f.1)?)?)).collect::<Result<Vec<TrackPoint>>>()?;
        req.track.sort_by(|a, b| a.t.cmp(&b.t));
        if recovered && !req.tags.iter().any(|t| t == "recovered") {
            req.tags.push("recovered".into());
            req.tags = manifest::normalise_tags(&req.tags)?;
        }
        let (mime, kind, _) = media_type_of(&path)?;
        let ended_s = crate::time::format(ended.max(crate::time::parse(&seg_start, "segment start")?));
        let pending = PendingSeal {
            clip_id: uuid::Uuid::now_v7().hyphenated().to_string(),
            kind,
            mime: mime.into(),
            ext: ext.clone(),
            bytes: digests.bytes,
            sha256: digests.sha256_hex(),
            blake3: digests.blake3_hex(),
            started_at: seg_start,
            ended_at: ended_s.clone(),
            request: req,
            segment: Some(Segment { recording_id: recording_id.into(), index: index as u32, is_final }),
            fragments: None,
            age: None,
        };
        let _lock = if recovered { None } else { Some(self.lock()?) };
        let item = self.move_in_and_commit(&path, pending, &digests, &mut |n| progress(n, total))?;
        db::advance_session(&self.conn(), recording_id, index + 1, last_fix, &ended_s, is_final)?;
        Ok(item)
    }

    /// Abandons a recording without sealing its current segment. Segments already sealed stay;
    /// the unsealed file (if any) is moved to quarantine, never deleted.
    pub fn abort_recording(&self, recording_id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let n = db::finish_session(&self.conn(), recording_id)?;
        if n == 0 {
            return Err(Error::NotFound(format!("running recording {recording_id}")));
        }
        self.active_recordings.lock().unwrap_or_else(|p| p.into_inner()).remove(recording_id);
        let dir = self.home.join("recording").join(recording_id);
        let _ = fs::remove_file(dir.join(".owner"));
        if fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
            crate::store::recovery::quarantine(self, &dir, "aborted-recording")?;
        } else {
            let _ = fs::remove_dir(&dir);
        }
        self.append_custody("recording_aborted", None, json!({"recording_id": recording_id}))?;
        Ok(())
    }
}
