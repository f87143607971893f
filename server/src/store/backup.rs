//! Backups of either kind of deployment, and restores into either kind: `fieldcap backup` and
//! `fieldcap restore`.
//!
//! A backup is a directory in the embedded server's own layout, plus what proves it whole:
//!
//! ```text
//! BACKUP/records.sqlite          every record, one consistent snapshot (SQLite, journal mode DELETE)
//! BACKUP/server.key              the server key (0600: a backup is as secret as the server)
//! BACKUP/server.pub.pem          its public half
//! BACKUP/escrow/…                the escrow keys (current.key, current.recipient, retired/*.key; 0600),
//!                                if the deployment has a data directory (see crate::escrow)
//! BACKUP/blobs/sha256/ab/ab12…   every original an item names (disposed ones excepted)
//! BACKUP/uploads/                empty (partial uploads are not backed up; devices resend)
//! BACKUP/BACKUP.json             format, source, server key id, log size, rows per table, originals
//! BACKUP/SHA256SUMS              a SHA-256 for every file above: `sha256sum -c SHA256SUMS` checks it
//! ```
//!
//! **Backup** ([`backup`]) runs while the server serves. The records are one snapshot: SQLite's
//! `VACUUM INTO` for the embedded store, a read-only repeatable-read transaction copied table by
//! table into the embedded schema for PostgreSQL
//! ([`PostgresRecordStore::export_sqlite`]). The originals that snapshot names are then copied
//! from the blob store (the data directory or the bucket), each hashed as it is written and
//! checked against its name and the item's byte count (originals are never modified, so copying
//! after the snapshot is safe). Everything is written under `.<name>.partial` beside the
//! destination, fsynced, and renamed into place last: an interrupted backup leaves no directory
//! that looks like a backup (the next run replaces the `.partial`).
//!
//! **Restore** ([`restore`]) first checks the backup: every file against `SHA256SUMS`, no file
//! left out of it, `BACKUP.json` against the records (rows per table) and the key. Then:
//! * into an embedded deployment (`--data DIR`, which must not exist or be empty): the files are
//!   copied beside it, fsynced and renamed into place (all or nothing);
//! * into a scaled deployment (`--records postgres://… --blobs s3://…`): the backup is moved
//!   there as an embedded server would be ([`super::migrate::move_embedded`]: table by table,
//!   each compared row for row; originals create-only, read back and hashed, and locked until
//!   their retention end; resumable), and the server key is stored in the record database (or
//!   in `--data DIR` when given).
//!
//! Either way the restored deployment is opened and its records checked against its key. A
//! package exported from it verifies like one from the original (the test restores and
//! verifies).
//!
//! ```no_run
//! use fieldcap_server::store::{backup, Deployment};
//! let from = Deployment::from(std::path::Path::new("/srv/fieldcap"));
//! let made = backup::backup(&from, std::path::Path::new("/backups/2026-11-30"), &mut |line| eprintln!("{line}")).unwrap();
//! let to = Deployment::from(std::path::Path::new("/srv/fieldcap-restored"));
//! backup::restore(&made.path, &to, &mut |line| eprintln!("{line}")).unwrap();
//! ```

use super::postgres::import::TableImport;
use super::{Deployment, PostgresRecordStore, RecordStore, SqliteRecordStore, BLOBS_DIR, RECORDS_FILE, UPLOADS_DIR};
use crate::error::{Error, Result};
use fieldcap_evidence::identity::{device_id_for, DeviceKey};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// The backup's description, `BACKUP.json`.
pub const MANIFEST_FILE: &str = "BACKUP.json";
/// The SHA-256 of every other file, in `sha256sum` format.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// The format `BACKUP.json` names.
pub const FORMAT: &str = "fieldcap.backup/1";

/// `BACKUP.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// When the backup was made (RFC 3339, UTC).
    pub made_at: String,
    /// Where the records came from: `sqlite` (an embedded deployment) or `postgresql`.
    pub records_from: String,
    /// Where the originals came from: `directory` or `s3`.
    pub originals_from: String,
    /// The id of the server key (the hex of the first 16 bytes of SHA-256 over the public key).
    pub server_key_id: String,
    /// Leaves in the transparency log in the snapshot.
    pub log_size: u64,
    /// Rows per table in `records.sqlite`.
    pub tables: Vec<TableRows>,
    /// The originals in `blobs/`, by name.
    pub originals: Vec<BackedUpOriginal>,
}

/// One table's row count in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// Table name.
    pub table: String,
    /// Rows.
    pub rows: u64,
}

/// One original in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedUpOriginal {
    /// Its SHA-256 (hex), which is its name.
    pub sha256: String,
    /// Its length.
    pub bytes: u64,
}

/// What a backup or a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The backup directory (made, or restored from).
    pub path: PathBuf,
    /// The backup's description.
    pub manifest: BackupManifest,
    /// Bytes of originals copied.
    pub bytes: u64,
    /// Restores into a scaled deployment: originals copied into the bucket by this run (the
    /// rest were there already and were checked).
    pub originals_copied: u64,
}

fn integrity(msg: String) -> Error {
    Error::Core(fieldcap_evidence::Error::Integrity(msg))
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    Error::Storage(Box::new(e))
}

/// The blob store's file of an original, relative to a data directory.
fn original_rel(sha256: &str) -> PathBuf {
    Path::new(BLOBS_DIR).join("sha256").join(&sha256[..2]).join(sha256)
}

/// The sibling work directory of `dst` (`.<name>.<what>`).
fn work_dir(dst: &Path, what: &str) -> Result<PathBuf> {
    let name = dst.file_name().and_then(|n| n.to_str()).ok_or_else(|| Error::BadRequest("the directory must have a name".into()))?;
    let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok(parent.join(format!(".{name}.{what}")))
}

/// Renames the finished work directory into place and makes the rename durable.
fn publish(work: &Path, dst: &Path) -> Result<()> {
    fs::rename(work, dst).map_err(|e| Error::io("renaming the finished directory into place", e))?;
    let parent = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fieldcap_evidence::fsutil::sync_dir(parent)?;
    Ok(())
}

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    super::migrate::digest_of(fs::File::open(path).map_err(|e| Error::io("reading a backup file", e))?)
}

/// Every regular file under `root`, as sorted relative paths (`/`-separated).
fn files_under(root: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        for e in fs::read_dir(root.join(&rel)).map_err(|e| Error::io("listing the backup", e))? {
            let e = e.map_err(|e| Error::io("listing the backup", e))?;
            let t = e.file_type().map_err(|e| Error::io("listing the backup", e))?;
            let r = rel.join(e.file_name());
            if t.is_dir() {
                dirs.push(r);
            } else {
                let s = r.to_str().ok_or_else(|| integrity("the backup holds a file whose name is not UTF-8".into()))?;
                out.push(s.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Row counts of the embedded record file at `path`, opened read-only and immutable (nothing
/// is written beside it).
fn table_rows(path: &Path) -> Result<Vec<TableRows>> {
    let uri = format!("file:{}?immutable=1", path.display());
    let c = rusqlite::Connection::open_with_flags(uri, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI).map_err(sqlite_err)?;
    let mut out = Vec::new();
    for table in super::postgres::import::TABLES {
        // A backup made before a table existed has none (its records are an older schema, which
        // a restore migrates); BACKUP.json then does not list it either.
        if !super::postgres::import::sqlite_has_table(&c, table)? {
            continue;
        }
        let rows: i64 = c.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| r.get(0)).map_err(sqlite_err)?;
        out.push(TableRows { table: table.to_string(), rows: rows as u64 });
    }
    Ok(out)
}

/// Makes a backup of the deployment `from` in the new directory `out` (see the module docs).
/// `progress` gets one line per step.
pub fn backup(from: &Deployment, out: &Path, progress: &mut dyn FnMut(String)) -> Result<BackupReport> {
    if out.exists() {
        return Err(Error::Conflict("the backup directory exists already; name a new one".into()));
    }
    let work = work_dir(out, "partial")?;
    if work.exists() {
        // An earlier backup to the same name, interrupted: never a backup, made again.
        fs::remove_dir_all(&work).map_err(|e| Error::io("removing an interrupted backup", e))?;
    }
    fs::create_dir_all(work.join(BLOBS_DIR).join("sha256")).map_err(|e| Error::io("creating the backup directory", e))?;
    fs::create_dir_all(work.join(UPLOADS_DIR)).map_err(|e| Error::io("creating the backup directory", e))?;
    let r = backup_into(from, &work, progress);
    match r {
        Ok(mut report) => {
            publish(&work, out)?;
            report.path = out.to_path_buf();
            Ok(report)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

fn backup_into(from: &Deployment, work: &Path, progress: &mut dyn FnMut(String)) -> Result<BackupReport> {
    let records_copy = work.join(RECORDS_FILE);
    // 1. The records: one snapshot.
    let (records_from, key) = match &from.records {
        Some(url) if matches!(url.scheme().as_str(), "postgres" | "postgresql") => {
            let pg = PostgresRecordStore::connect(url.expose())?;
            pg.export_sqlite(&records_copy, &mut |t: &TableImport| progress(format!("records: {} — {} row(s)", t.table, t.rows)))?;
            let key = match &from.data_dir {
                Some(dir) => crate::keys::load(dir)?,
                None => {
                    let secret = pg
                        .server_key_secret(None)?
                        .ok_or_else(|| Error::NotFound("the record database holds no server key and no --data DIR names one".into()))?;
                    DeviceKey::from_secret(&secret)?
                }
            };
            ("postgresql", key)
        }
        Some(_) => return Err(Error::BadRequest("--records: a backup reads PostgreSQL (postgres://…) or an embedded data directory".into())),
        None => {
            let dir = from.data_dir.as_ref().ok_or_else(|| Error::BadRequest("name the deployment to back up (--data DIR, or --records and --blobs)".into()))?;
            let src = dir.join(RECORDS_FILE);
            if !src.exists() {
                return Err(Error::NotFound("no embedded server records in that directory (records.sqlite)".into()));
            }
            let c = rusqlite::Connection::open_with_flags(&src, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(sqlite_err)?;
            c.busy_timeout(std::time::Duration::from_secs(30)).map_err(sqlite_err)?;
            let dst = records_copy.to_str().ok_or_else(|| Error::BadRequest("the backup path must be UTF-8".into()))?;
            // One transaction's view of the live database, written to a new file.
            c.execute("VACUUM INTO ?1", [dst]).map_err(sqlite_err)?;
            progress("records: one snapshot copied".into());
            ("sqlite", crate::keys::load(dir)?)
        }
    };
    // 2. The key, checked against the records, and the escrow keys beside it (as secret as the
    // server key; without them no sealed item's wrap opens again).
    crate::keys::store(work, &key)?;
    if let Some(dir) = &from.data_dir {
        if crate::escrow::copy_keys(dir, work)? > 0 {
            progress("escrow keys copied".into());
        }
    }
    let key_id = device_id_for(&key.verifying_key());
    let snapshot = SqliteRecordStore::open(&records_copy)?;
    crate::state::check_records_key(&snapshot, &key_id)?;
    // Console login sessions are not backed up (deliberately, as a move leaves them out: see
    // `postgres::import::TABLES`): the embedded snapshot's are deleted from the copy, so a
    // restore of either kind starts with everyone logged out. Only SHA-256s of session
    // cookies were stored, never a cookie.
    snapshot.delete_sessions_before(i64::MAX)?;
    // 3. The originals the snapshot names.
    let blobs = from.open_blob_store()?;
    let mut originals: Vec<BackedUpOriginal> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut bytes = 0u64;
    for item in snapshot.items()? {
        let Some(sha) = item.blob_sha256.clone() else { continue };
        if snapshot.retention_facts(&item.clip_id)?.disposed_at.is_some() || !seen.insert(sha.clone()) {
            continue;
        }
        let dst = work.join(original_rel(&sha));
        let parent = dst.parent().ok_or_else(|| Error::Internal("an original's path has no directory".into()))?;
        fs::create_dir_all(parent).map_err(|e| Error::io("creating the backup directory", e))?;
        let d = blobs.copy_to(&sha, &dst).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("the original of item {} is not in the blob store", item.clip_id)),
            other => other,
        })?;
        if d.sha256_hex() != sha || item.media.as_ref().is_some_and(|m| m.bytes != d.bytes) {
            return Err(integrity(format!("the stored original of item {} does not hash to its name", item.clip_id)));
        }
        bytes += d.bytes;
        originals.push(BackedUpOriginal { sha256: sha, bytes: d.bytes });
        progress(format!("originals: {} copied and checked", originals.len()));
    }
    for dir in fs::read_dir(work.join(BLOBS_DIR).join("sha256")).map_err(|e| Error::io("listing the backup", e))? {
        let dir = dir.map_err(|e| Error::io("listing the backup", e))?;
        fieldcap_evidence::fsutil::sync_dir(&dir.path())?;
    }
    let log_size = snapshot.leaf_hashes()?.len() as u64;
    drop(snapshot);
    {
        // Journal mode DELETE: the copy is one file, and opening it read-only writes nothing.
        let c = rusqlite::Connection::open(&records_copy).map_err(sqlite_err)?;
        c.query_row("PRAGMA journal_mode=DELETE", [], |_| Ok(())).map_err(sqlite_err)?;
    }
    // 4. The description and the sums.
    let manifest = BackupManifest {
        format: FORMAT.into(),
        made_at: fieldcap_evidence::time::format(chrono::Utc::now()),
        records_from: records_from.into(),
        originals_from: if from.blobs.is_some() { "s3" } else { "directory" }.into(),
        server_key_id: key_id,
        log_size,
        tables: table_rows(&records_copy)?,
        originals,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(format!("encoding BACKUP.json: {e}")))?;
    fieldcap_evidence::fsutil::write_atomic(&work.join(MANIFEST_FILE), &json)?;
    let mut sums = String::new();
    for rel in files_under(work)? {
        let (sha, _) = sha256_file(&work.join(&rel))?;
        sums.push_str(&format!("{sha}  {rel}\n"));
    }
    fieldcap_evidence::fsutil::write_atomic(&work.join(SUMS_FILE), sums.as_bytes())?;
    for d in [work.join(BLOBS_DIR).join("sha256"), work.join(BLOBS_DIR), work.to_path_buf()] {
        fieldcap_evidence::fsutil::sync_dir(&d)?;
    }
    progress(format!("backup complete: {} original(s), {bytes} bytes, log size {}", manifest.originals.len(), manifest.log_size));
    Ok(BackupReport { path: work.to_path_buf(), manifest, bytes, originals_copied: 0 })
}

/// Checks a backup without changing it: every file against `SHA256SUMS` and none left out,
/// `BACKUP.json` against the records and the key, every original it lists present. Returns
/// its description.
pub fn verify_backup(dir: &Path) -> Result<BackupManifest> {
    Ok(check_backup(dir)?.0)
}

/// File → SHA-256 (hex), as `SHA256SUMS` lists them.
type Sums = std::collections::BTreeMap<String, String>;

/// [`verify_backup`], also returning the checked sums.
fn check_backup(dir: &Path) -> Result<(BackupManifest, Sums)> {
    let sums = fs::read_to_string(dir.join(SUMS_FILE)).map_err(|_| integrity("the backup has no readable SHA256SUMS".into()))?;
    let mut listed = Sums::new();
    for (n, line) in sums.lines().enumerate() {
        let (sha, rel) = line.split_once("  ").ok_or_else(|| integrity(format!("SHA256SUMS line {} is not `<sha256>  <file>`", n + 1)))?;
        let safe = !rel.is_empty() && !rel.starts_with('/') && rel.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
        if !crate::store::is_sha256_hex(sha) || !safe {
            return Err(integrity(format!("SHA256SUMS line {} is not `<sha256>  <file>`", n + 1)));
        }
        listed.insert(rel.to_string(), sha.to_string());
    }
    let present = files_under(dir)?;
    for rel in &present {
        if rel != SUMS_FILE && !listed.contains_key(rel) {
            return Err(integrity(format!("{rel} is in the backup but not in SHA256SUMS")));
        }
    }
    for (rel, want) in &listed {
        if !present.contains(rel) {
            return Err(integrity(format!("{rel} is listed in SHA256SUMS but missing")));
        }
        let (got, _) = sha256_file(&dir.join(rel))?;
        if &got != want {
            return Err(integrity(format!("{rel} does not match its SHA-256 in SHA256SUMS")));
        }
    }
    let raw = fs::read(dir.join(MANIFEST_FILE)).map_err(|_| integrity("the backup has no BACKUP.json".into()))?;
    let m: BackupManifest = serde_json::from_slice(&raw).map_err(|e| integrity(format!("BACKUP.json is not a backup description: {e}")))?;
    if m.format != FORMAT {
        return Err(integrity(format!("BACKUP.json names format {:?}; this version reads {FORMAT}", m.format)));
    }
    for needed in [RECORDS_FILE, "server.key", "server.pub.pem"] {
        // (Checked before the key is loaded: loading writes a missing public key file.)
        if !listed.contains_key(needed) {
            return Err(integrity(format!("the backup has no {needed}")));
        }
    }
    let key = crate::keys::load(dir)?;
    if device_id_for(&key.verifying_key()) != m.server_key_id {
        return Err(integrity("the backup's server key is not the one BACKUP.json names".into()));
    }
    if table_rows(&dir.join(RECORDS_FILE))? != m.tables {
        return Err(integrity("the backup's records do not hold the rows BACKUP.json counts".into()));
    }
    for o in &m.originals {
        if !crate::store::is_sha256_hex(&o.sha256) || listed.get(&original_rel(&o.sha256).to_string_lossy().to_string()) != Some(&o.sha256) {
            return Err(integrity(format!("the original {} that BACKUP.json lists is not in the backup under its name", o.sha256)));
        }
    }
    Ok((m, listed))
}

/// Restores the backup `from` into the deployment `to` (see the module docs). `progress` gets
/// one line per step.
pub fn restore(from: &Path, to: &Deployment, progress: &mut dyn FnMut(String)) -> Result<BackupReport> {
    let (manifest, sums) = check_backup(from)?;
    progress(format!("backup checked: {} file(s) match SHA256SUMS", sums.len()));
    let key = crate::keys::load(from)?;
    let bytes: u64 = manifest.originals.iter().map(|o| o.bytes).sum();
    match (&to.records, &to.blobs) {
        (None, None) => {
            let dir = to.data_dir.as_ref().ok_or_else(|| Error::BadRequest("name where to restore (--data DIR, or --records and --blobs)".into()))?;
            restore_embedded(from, &sums, dir, &key)?;
            let stores = to.open_stores()?;
            crate::state::check_records_key(stores.records.as_ref(), &manifest.server_key_id)?;
            progress(format!("restored into the data directory: {} original(s), {bytes} bytes", manifest.originals.len()));
            let copied = manifest.originals.len() as u64;
            Ok(BackupReport { path: from.to_path_buf(), manifest, bytes, originals_copied: copied })
        }
        (Some(url), Some(_)) if matches!(url.scheme().as_str(), "postgres" | "postgresql") => {
            let moved = super::migrate::move_embedded(from, to, progress)?;
            let pg = PostgresRecordStore::connect(url.expose())?;
            match &to.data_dir {
                Some(dir) => {
                    crate::keys::store(dir, &key)?;
                    crate::escrow::copy_keys(from, dir)?;
                }
                None => {
                    let secret = key.secret().to_vec();
                    let stored = pg.server_key_secret(Some(&|| secret.clone()))?.ok_or_else(|| Error::Internal("the server key was not stored".into()))?;
                    if stored[..] != key.secret()[..] {
                        return Err(Error::Conflict("the record database holds another server key".into()));
                    }
                }
            }
            crate::state::check_records_key(&pg, &manifest.server_key_id)?;
            progress(format!("restored into the scaled stores: {} original(s) checked, {} copied now", moved.originals, moved.originals_copied));
            Ok(BackupReport { path: from.to_path_buf(), manifest, bytes: moved.bytes_copied, originals_copied: moved.originals_copied })
        }
        _ => Err(Error::BadRequest(
            "restore into an embedded deployment (--data DIR) or a scaled one (--records postgres://… --blobs s3://…, optionally --data DIR for the key)".into(),
        )),
    }
}

/// Copies a checked backup into the new data directory `dir`, all or nothing.
fn restore_embedded(from: &Path, sums: &Sums, dir: &Path, key: &DeviceKey) -> Result<()> {
    if dir.exists() && fs::read_dir(dir).map_err(|e| Error::io("reading the data directory", e))?.next().is_some() {
        return Err(Error::Conflict("the data directory to restore into is not empty".into()));
    }
    let work = work_dir(dir, "restoring")?;
    if work.exists() {
        fs::remove_dir_all(&work).map_err(|e| Error::io("removing an interrupted restore", e))?;
    }
    let r = (|| -> Result<()> {
        fs::create_dir_all(work.join(UPLOADS_DIR)).map_err(|e| Error::io("creating the data directory", e))?;
        crate::keys::store(&work, key)?;
        crate::escrow::copy_keys(from, &work)?;
        for rel in sums.keys() {
            if restored_file(rel) {
                let dst = work.join(rel);
                if let Some(p) = dst.parent() {
                    fs::create_dir_all(p).map_err(|e| Error::io("creating the data directory", e))?;
                }
                fs::copy(from.join(rel), &dst).map_err(|e| Error::io("copying the backup", e))?;
                fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(|e| Error::io("syncing the restored file", e))?;
                if let Some(p) = dst.parent() {
                    fieldcap_evidence::fsutil::sync_dir(p)?;
                }
            }
        }
        // Checked again where it now lies (a copy is trusted no more than the backup), against
        // the sums the backup was checked with: the backup's files are not hashed again.
        for (rel, want) in sums {
            if restored_file(rel) && &sha256_file(&work.join(rel))?.0 != want {
                return Err(integrity(format!("the restored copy of {rel} does not match the backup")));
            }
        }
        fieldcap_evidence::fsutil::sync_dir(&work)?;
        Ok(())
    })();
    if let Err(e) = r {
        let _ = fs::remove_dir_all(&work);
        return Err(e);
    }
    if dir.exists() {
        fs::remove_dir(dir).map_err(|e| Error::io("replacing the empty data directory", e))?;
    }
    publish(&work, dir)
}

/// The backup files an embedded restore copies (the key is written by `keys::store`).
fn restored_file(rel: &str) -> bool {
    rel == RECORDS_FILE || rel.strip_prefix(BLOBS_DIR).is_some_and(|r| r.starts_with('/'))
}
