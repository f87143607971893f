//! Moving an embedded server (one data directory) to a scaled deployment's stores:
//! `fieldcap move-stores --data DIR --records postgres://… --blobs s3://…`.
//!
//! 1. The records: every table of `DIR/records.sqlite` copied into the PostgreSQL database, each
//!    table in one transaction and compared row for row with its source
//!    ([`PostgresRecordStore::import_sqlite`]).
//! 2. The originals: every original an item names (not disposed) copied from `DIR/blobs` into the
//!    bucket through the blob store's own checked path (create-only, digest checked), then read
//!    back from the bucket and hashed: checked digest by digest, copied or found there already.
//! 3. The locks: each original locked until its item's retention end (counted from when it was
//!    received), with a legal hold where the item is held.
//!
//! The server must be stopped during the move. Interrupted at any point, the move is resumed by
//! running the same command again: tables and originals already copied are checked, not copied
//! twice. The server key stays in `DIR` (give it to every replica); the data directory is left
//! unchanged.

use super::postgres::import::TableImport;
use super::{BlobStore, Deployment, LocalBlobStore, PostgresRecordStore, RecordStore, BLOBS_DIR, RECORDS_FILE, UPLOADS_DIR};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// What a move did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoveReport {
    /// Each table: rows, and whether this run copied it.
    pub tables: Vec<TableImport>,
    /// Originals the records name (each checked in the target).
    pub originals: u64,
    /// Of those, copied by this run.
    pub originals_copied: u64,
    /// Bytes copied by this run.
    pub bytes_copied: u64,
    /// Originals locked (retention not ended yet).
    pub locked: u64,
}

/// A partial-upload name for copying the original `sha256` (a UUID made of its first bytes, so
/// an interrupted copy is found and discarded by the next run).
fn copy_name(sha256: &str) -> Result<String> {
    let b = hex::decode(&sha256[..32]).map_err(|_| Error::Internal("a blob name is not hex".into()))?;
    let bytes: [u8; 16] = b.try_into().map_err(|_| Error::Internal("a blob name is too short".into()))?;
    Ok(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
}

/// SHA-256 (hex) and length of what `r` yields (an original, a backup's file).
pub(crate) fn digest_of(mut r: impl Read) -> Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(|e| Error::io("reading bytes to hash", e))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

/// Copies one original into `to` through its checked path (the partial upload and
/// `store_partial`, as an upload is stored).
fn copy_original(from: &LocalBlobStore, to: &dyn BlobStore, sha256: &str) -> Result<u64> {
    let name = copy_name(sha256)?;
    to.discard_partial(&name)?;
    let mut r = from.open(sha256)?;
    let mut w = to.open_partial(&name, 0)?;
    let mut buf = vec![0u8; 8 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(|e| Error::io("reading bytes to hash", e))?;
        if k == 0 {
            break;
        }
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
    w.sync()?;
    drop(w);
    to.store_partial(&name, sha256)?;
    Ok(n)
}

/// Moves the embedded stores of `data_dir` into `to`'s record database and (if given) bucket.
/// `progress` gets one line per step.
pub fn move_embedded(data_dir: &Path, to: &Deployment, progress: &mut dyn FnMut(String)) -> Result<MoveReport> {
    let sqlite = data_dir.join(RECORDS_FILE);
    if !sqlite.exists() {
        return Err(Error::NotFound("no embedded server records in that directory (records.sqlite)".into()));
    }
    let key = crate::keys::load(data_dir)?;
    let key_id = fieldcap_evidence::identity::device_id_for(&key.verifying_key());
    let url = to.records.as_ref().ok_or_else(|| Error::BadRequest("name the record database to move into (--records postgres://…)".into()))?;
    if !matches!(url.scheme().as_str(), "postgres" | "postgresql") {
        return Err(Error::BadRequest("--records: the records move into PostgreSQL (postgres://…)".into()));
    }
    let pg = PostgresRecordStore::connect(url.expose())?;
    let tables = pg.import_sqlite(&sqlite, &mut |t| {
        progress(format!("records: {} — {} row(s){}", t.table, t.rows, if t.copied_now { ", copied" } else { ", already there, checked" }))
    })?;
    let mut report = MoveReport { tables, ..MoveReport::default() };
    crate::state::check_records_key(&pg, &key_id)?;
    let Some(blobs_url) = &to.blobs else {
        progress("originals: staying in the data directory (no --blobs)".into());
        return Ok(report);
    };
    let target = Deployment { data_dir: None, records: None, blobs: Some(blobs_url.clone()) }.open_blob_store()?;
    let local = LocalBlobStore::open(&data_dir.join(BLOBS_DIR), &data_dir.join(UPLOADS_DIR))?;
    let mut seen = std::collections::BTreeSet::new();
    let now = chrono::Utc::now();
    for item in pg.items()? {
        let Some(sha) = item.blob_sha256.clone() else { continue };
        if pg.retention_facts(&item.clip_id)?.disposed_at.is_some() || !seen.insert(sha.clone()) {
            continue;
        }
        report.originals += 1;
        if !target.contains(&sha)? {
            if !local.contains(&sha)? {
                return Err(Error::NotFound(format!("the original {sha} of item {} is neither in the data directory nor in the bucket", item.clip_id)));
            }
            report.bytes_copied += copy_original(&local, target.as_ref(), &sha)?;
            report.originals_copied += 1;
        }
        // Read back from the bucket: the bytes there are the original's, whoever wrote them.
        let (got, len) = digest_of(target.open(&sha)?)?;
        if got != sha || item.media.as_ref().is_some_and(|m| m.bytes != len) {
            return Err(Error::Core(fieldcap_evidence::Error::Integrity(format!("the bucket's copy of original {sha} does not hash to its name"))));
        }
        if lock_moved_original(&pg, target.as_ref(), &item, &sha, now)? {
            report.locked += 1;
        }
        progress(format!("originals: {} checked ({} copied)", report.originals, report.originals_copied));
    }
    Ok(report)
}

/// Locks a moved original until its item's retention end, counted from when it was received
/// (nothing to lock when that has passed), with a legal hold if the item is held.
fn lock_moved_original(records: &dyn RecordStore, blobs: &dyn BlobStore, item: &super::ItemRecord, sha: &str, now: chrono::DateTime<chrono::Utc>) -> Result<bool> {
    let until = crate::retention::retention_end(records, item, now)?;
    let locked = until > now;
    if locked {
        blobs.set_retention(sha, &fieldcap_evidence::time::format(until))?;
    }
    if records.retention_facts(&item.clip_id)?.active_holds > 0 {
        blobs.set_legal_hold(sha, true)?;
    }
    Ok(locked)
}
