//! Every row the device store reads or writes, one function per statement.
//!
//! The rest of the core never writes SQL: sealing, listing, recovery and sync call these
//! functions on a [`Connection`] (a [`rusqlite::Transaction`] derefs to one, so a caller decides
//! what commits together). Every value is bound as a parameter; no SQL text is ever built from
//! data. Tables and columns are defined by the migrations in [`super::schema`]. The rows the
//! sync pass reads and writes (upload state, receipts, the `server` key/value table) are in
//! [`sync`].

pub(crate) mod live;
pub(crate) mod sync;

use crate::error::{Error, Result};
use crate::items::ItemSummary;
use crate::manifest::Manifest;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;

/// Opens the database file with the store's settings. The first read fails with `NOTADB` /
/// `CORRUPT` on a file that is not a database, which the caller moves aside.
pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))?;
    conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))?;
    // FULL: a committed seal survives a power cut, not just a process crash.
    // secure_delete: a deleted row's bytes (a pending seal's request, a forgotten value) are
    // overwritten, not left in free pages for a forensic tool (FORMATS §6b).
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;")?;
    Ok(conn)
}

/// True when opening failed because the file is not a (readable) SQLite database.
pub(crate) fn is_not_a_database(e: &Error) -> bool {
    matches!(e, Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt))
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>> {
    Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
}

// ---------------------------------------------------------------------------------------------
// custody: the device's own hash-chained, signed log

/// The newest custody event's (seq, hash), if any.
pub(crate) fn custody_head(conn: &Connection) -> Result<Option<(i64, String)>> {
    Ok(conn.query_row("SELECT seq, hash FROM custody ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
}

/// One custody event as it is stored.
pub(crate) struct CustodyRow<'a> {
    pub seq: u64,
    pub clip_id: Option<&'a str>,
    pub event: &'a str,
    pub at: &'a str,
    pub body: &'a [u8],
    pub hash: &'a str,
    pub sig: &'a [u8],
}

/// Appends a custody event row.
pub(crate) fn insert_custody(conn: &Connection, e: &CustodyRow<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO custody (seq, clip_id, event, at, body, hash, sig) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![e.seq as i64, e.clip_id, e.event, e.at, e.body, e.hash, e.sig],
    )?;
    Ok(())
}

/// (body, signature) of every custody event, or of one item's, in order.
pub(crate) fn custody_bodies(conn: &Connection, clip_id: Option<&str>) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut stmt = conn.prepare_cached("SELECT body, sig FROM custody WHERE (?1 IS NULL OR clip_id = ?1) ORDER BY seq")?;
    let rows = stmt.query_map(params![clip_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    collect(rows)
}

// ---------------------------------------------------------------------------------------------
// alarms

/// Records an alarm.
pub(crate) fn insert_alarm(conn: &Connection, at: &str, kind: &str, detail: &str) -> Result<()> {
    conn.execute("INSERT INTO alarms (at, kind, detail) VALUES (?1, ?2, ?3)", params![at, kind, detail])?;
    Ok(())
}

/// Every alarm: (at, kind, detail), oldest first.
pub(crate) fn alarms(conn: &Connection) -> Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare("SELECT at, kind, detail FROM alarms ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    collect(rows)
}

// ---------------------------------------------------------------------------------------------
// items

/// Inserts an item row for a signed manifest (sealing, or restoring from a signed mirror).
pub(crate) fn insert_item(conn: &Connection, m: &Manifest, manifest: &[u8], sig: &[u8], manifest_sha256: &str, media_ext: Option<&str>) -> Result<()> {
    conn.execute(
        "INSERT INTO items (clip_id, seq, kind, manifest, signature, manifest_sha256, media_ext, media_bytes,
            media_sha256, media_blake3, recording_id, segment_index, started_at, sealed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            m.clip_id,
            m.seq as i64,
            m.kind.as_str(),
            manifest,
            sig,
            manifest_sha256,
            media_ext,
            m.media.as_ref().map(|x| x.bytes as i64),
            m.media.as_ref().map(|x| x.sha256.clone()),
            m.media.as_ref().map(|x| x.blake3.clone()),
            m.segment.as_ref().map(|s| s.recording_id.clone()),
            m.segment.as_ref().map(|s| s.index as i64),
            m.capture.started_at,
            crate::time::now(),
        ],
    )?;
    Ok(())
}

/// Sealed-storage facts of a new item ([`insert_item`]).
pub(crate) struct SealedFacts<'a> {
    /// The manifest column's content: the manifest's age file.
    pub manifest_age: &'a [u8],
    /// The media file's (ciphertext) length and BLAKE3, if the item has media.
    pub media_age: Option<(u64, &'a str)>,
}

/// Inserts the row of a sealed item: like [`insert_item`], with the manifest stored encrypted.
pub(crate) fn insert_sealed_item(conn: &Connection, m: &Manifest, sealed: &SealedFacts<'_>, sig: &[u8], manifest_sha256: &str, media_ext: Option<&str>) -> Result<()> {
    insert_item(conn, m, sealed.manifest_age, sig, manifest_sha256, media_ext)?;
    conn.execute(
        "UPDATE items SET sealed = 1, media_age_bytes = ?2, media_age_blake3 = ?3 WHERE clip_id = ?1",
        params![m.clip_id, sealed.media_age.map(|a| a.0 as i64), sealed.media_age.map(|a| a.1)],
    )?;
    Ok(())
}

/// Rebuilds the row of a sealed item from its `sealed.json` (a lost database; the manifest may
/// be unreadable on the phone because the item is locked).
pub(crate) fn restore_sealed_item(conn: &Connection, ix: &crate::vault::SealedIndex, manifest_age: &[u8], sig: &[u8], locked_at: Option<&str>) -> Result<()> {
    conn.execute(
        "INSERT INTO items (clip_id, seq, kind, manifest, signature, manifest_sha256, media_ext, media_bytes,
            media_sha256, media_blake3, recording_id, segment_index, started_at, sealed_at, sealed, media_age_bytes, media_age_blake3, locked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1, ?15, ?16, ?17)",
        params![
            ix.clip_id,
            ix.seq as i64,
            ix.kind,
            manifest_age,
            sig,
            ix.manifest_sha256,
            ix.media.as_ref().map(|x| x.ext.clone()),
            ix.media.as_ref().map(|x| x.bytes as i64),
            ix.media.as_ref().map(|x| x.sha256.clone()),
            ix.media.as_ref().map(|x| x.blake3.clone()),
            ix.segment.as_ref().map(|s| s.0.clone()),
            ix.segment.as_ref().map(|s| s.1 as i64),
            ix.started_at,
            crate::time::now(),
            ix.media.as_ref().map(|x| x.age_bytes as i64),
            ix.media.as_ref().map(|x| x.age_blake3.clone()),
            locked_at,
        ],
    )?;
    Ok(())
}

/// Lock facts of one item.
pub(crate) struct LockState {
    pub clip_id: String,
    pub sealed: bool,
    pub sealed_at: String,
    pub locked_at: Option<String>,
}

fn lock_state_row(r: &Row<'_>) -> rusqlite::Result<LockState> {
    Ok(LockState { clip_id: r.get(0)?, sealed: r.get::<_, i64>(1)? != 0, sealed_at: r.get(2)?, locked_at: r.get(3)? })
}

/// One item's lock facts.
pub(crate) fn lock_state(conn: &Connection, clip_id: &str) -> Result<Option<LockState>> {
    Ok(conn.query_row("SELECT clip_id, sealed, sealed_at, locked_at FROM items WHERE clip_id = ?1", params![clip_id], lock_state_row).optional()?)
}

/// Every item's lock facts, in chain order.
pub(crate) fn lock_states(conn: &Connection) -> Result<Vec<LockState>> {
    let mut stmt = conn.prepare("SELECT clip_id, sealed, sealed_at, locked_at FROM items ORDER BY seq")?;
    let rows = stmt.query_map([], lock_state_row)?;
    collect(rows)
}

/// Ids of the sealed items.
pub(crate) fn sealed_clip_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT clip_id FROM items WHERE sealed = 1 ORDER BY seq")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    collect(rows)
}

/// Marks an item locked (once).
pub(crate) fn set_locked(conn: &Connection, clip_id: &str, at: &str) -> Result<()> {
    conn.execute("UPDATE items SET locked_at = COALESCE(locked_at, ?2) WHERE clip_id = ?1", params![clip_id, at])?;
    Ok(())
}

/// The newest item's (seq, manifest SHA-256): the head of the device chain.
pub(crate) fn chain_head(conn: &Connection) -> Result<Option<(i64, String)>> {
    Ok(conn.query_row("SELECT seq, manifest_sha256 FROM items ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?))).optional()?)
}

const SUMMARY_COLUMNS: &str = "clip_id, seq, kind, state, integrity, started_at, sealed_at, media_bytes, recording_id, segment_index, receipted_at, last_error, sealed, locked_at";

fn summary(r: &Row<'_>) -> rusqlite::Result<ItemSummary> {
    Ok(ItemSummary {
        clip_id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        kind: r.get(2)?,
        state: r.get(3)?,
        integrity: r.get(4)?,
        started_at: r.get(5)?,
        sealed_at: r.get(6)?,
        media_bytes: r.get::<_, Option<i64>>(7)?.map(|b| b as u64),
        recording_id: r.get(8)?,
        segment_index: r.get::<_, Option<i64>>(9)?.map(|i| i as u32),
        receipted_at: r.get(10)?,
        last_error: r.get(11)?,
        sealed: r.get::<_, i64>(12)? != 0,
        locked: r.get::<_, Option<String>>(13)?.is_some(),
    })
}

/// Every item's summary in chain order.
pub(crate) fn item_summaries(conn: &Connection) -> Result<Vec<ItemSummary>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM items ORDER BY seq"))?;
    let rows = stmt.query_map([], summary)?;
    collect(rows)
}

/// The oldest `limit` items that still need syncing (uses the (state, seq) index).
pub(crate) fn queued_summaries(conn: &Connection, limit: usize) -> Result<Vec<ItemSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM items WHERE state IN ('sealed','manifest_sent','uploading','uploaded') AND integrity = 'ok' ORDER BY seq LIMIT ?1"
    ))?;
    let rows = stmt.query_map(params![limit as i64], summary)?;
    collect(rows)
}

/// Everything stored about one item, as read from its row.
pub(crate) struct ItemRow {
    pub summary: ItemSummary,
    pub manifest: Vec<u8>,
    pub signature: Vec<u8>,
    pub media_ext: Option<String>,
    pub receipt: Option<Vec<u8>>,
    pub receipt_sig: Option<Vec<u8>>,
    pub purged_at: Option<String>,
}

/// One item's row, or `None` for an unknown id.
pub(crate) fn item_row(conn: &Connection, clip_id: &str) -> Result<Option<ItemRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {SUMMARY_COLUMNS}, manifest, signature, media_ext, receipt, receipt_sig, purged_at FROM items WHERE clip_id = ?1"),
            params![clip_id],
            |r| {
                Ok(ItemRow {
                    summary: summary(r)?,
                    manifest: r.get(14)?,
                    signature: r.get(15)?,
                    media_ext: r.get(16)?,
                    receipt: r.get(17)?,
                    receipt_sig: r.get(18)?,
                    purged_at: r.get(19)?,
                })
            },
        )
        .optional()?)
}

/// A sealed item's mirror facts: (manifest age file, signature, media ext, sealed index parts).
pub(crate) fn sealed_mirror_row(conn: &Connection, clip_id: &str) -> Result<(Vec<u8>, Vec<u8>, crate::vault::SealedIndex)> {
    Ok(conn.query_row(
        "SELECT manifest, signature, seq, kind, manifest_sha256, started_at, media_ext, media_bytes, media_sha256, media_blake3, media_age_bytes, media_age_blake3, recording_id, segment_index FROM items WHERE clip_id = ?1",
        params![clip_id],
        |r| {
            let media = match (r.get::<_, Option<String>>(6)?, r.get::<_, Option<i64>>(7)?, r.get::<_, Option<String>>(8)?, r.get::<_, Option<String>>(9)?, r.get::<_, Option<i64>>(10)?, r.get::<_, Option<String>>(11)?) {
                (Some(ext), Some(bytes), Some(sha256), Some(blake3), Some(age_bytes), Some(age_blake3)) => {
                    Some(crate::vault::SealedMedia { ext, bytes: bytes as u64, sha256, blake3, age_bytes: age_bytes as u64, age_blake3 })
                }
                _ => None,
            };
            let segment = match (r.get::<_, Option<String>>(12)?, r.get::<_, Option<i64>>(13)?) {
                (Some(rid), Some(i)) => Some((rid, i as u32)),
                _ => None,
            };
            Ok((
                r.get(0)?,
                r.get(1)?,
                crate::vault::SealedIndex {
                    clip_id: clip_id.to_string(),
                    seq: r.get::<_, i64>(2)? as u64,
                    kind: r.get(3)?,
                    manifest_sha256: r.get(4)?,
                    started_at: r.get(5)?,
                    media,
                    segment,
                },
            ))
        },
    )?)
}

/// Every (manifest, signature) in chain order.
pub(crate) fn manifests(conn: &Connection) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut stmt = conn.prepare("SELECT manifest, signature FROM items ORDER BY seq")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    collect(rows)
}

/// One item's (manifest, signature).
pub(crate) fn manifest_of(conn: &Connection, clip_id: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    Ok(conn.query_row("SELECT manifest, signature FROM items WHERE clip_id = ?1", params![clip_id], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// True when an item with this id exists.
pub(crate) fn item_exists(conn: &Connection, clip_id: &str) -> Result<bool> {
    Ok(conn.query_row("SELECT COUNT(*) FROM items WHERE clip_id = ?1", params![clip_id], |r| r.get::<_, i64>(0))? > 0)
}

/// True when an item already holds this chain position.
pub(crate) fn seq_taken(conn: &Connection, seq: u64) -> Result<bool> {
    Ok(conn.query_row("SELECT COUNT(*) FROM items WHERE seq = ?1", params![seq as i64], |r| r.get::<_, i64>(0))? > 0)
}

/// Every item id.
pub(crate) fn clip_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT clip_id FROM items")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    collect(rows)
}

/// What start-up recovery checks of each item's media file.
pub(crate) struct MediaCheckRow {
    pub clip_id: String,
    pub media_ext: Option<String>,
    pub media_bytes: Option<i64>,
    pub integrity: String,
    pub purged_at: Option<String>,
    /// Sealed storage: the media file is `media.<ext>.age`, `media_age_bytes` long.
    pub sealed: bool,
    pub media_age_bytes: Option<i64>,
}

/// Every item's media facts, for the start-up check.
pub(crate) fn media_check_rows(conn: &Connection) -> Result<Vec<MediaCheckRow>> {
    let mut stmt = conn.prepare("SELECT clip_id, media_ext, media_bytes, integrity, purged_at, sealed, media_age_bytes FROM items")?;
    let rows = stmt.query_map([], |r| {
        Ok(MediaCheckRow {
            clip_id: r.get(0)?,
            media_ext: r.get(1)?,
            media_bytes: r.get(2)?,
            integrity: r.get(3)?,
            purged_at: r.get(4)?,
            sealed: r.get::<_, i64>(5)? != 0,
            media_age_bytes: r.get(6)?,
        })
    })?;
    collect(rows)
}

/// Marks an item's media as `missing` or `mismatch`, with a sentence saying why.
pub(crate) fn set_integrity(conn: &Connection, clip_id: &str, integrity: &str, detail: &str) -> Result<()> {
    conn.execute("UPDATE items SET integrity = ?2, integrity_detail = ?3 WHERE clip_id = ?1", params![clip_id, integrity, detail])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// pending_seals: a seal in progress, so that a crash mid-seal is finished or undone at start-up

/// Records a seal about to move a file into the store.
pub(crate) fn insert_pending_seal(conn: &Connection, clip_id: &str, request_json: &str, source_path: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO pending_seals (clip_id, request, source_path, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![clip_id, request_json, source_path, crate::time::now()],
    )?;
    Ok(())
}

/// Forgets a pending seal (committed, undone or quarantined).
pub(crate) fn delete_pending_seal(conn: &Connection, clip_id: &str) -> Result<()> {
    conn.execute("DELETE FROM pending_seals WHERE clip_id = ?1", params![clip_id])?;
    Ok(())
}

/// Every pending seal: (clip_id, request (JSON, or sealed to the vault), source path), oldest
/// first.
pub(crate) fn pending_seals(conn: &Connection) -> Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare("SELECT clip_id, request, source_path FROM pending_seals ORDER BY created_at")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    collect(rows)
}

// ---------------------------------------------------------------------------------------------
// capture_sessions and session_fixes: recordings sealed segment by segment

/// Starts a recording session.
pub(crate) fn insert_session(conn: &Connection, recording_id: &str, request_json: &str, media_ext: &str, started_at: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO capture_sessions (recording_id, request, media_ext, next_index, segment_started_at, started_at) VALUES (?1, ?2, ?3, 0, ?4, ?4)",
        params![recording_id, request_json, media_ext, started_at],
    )?;
    Ok(())
}

/// A session's `finished` flag (0 or 1), or `None` for an unknown recording.
pub(crate) fn session_finished(conn: &Connection, recording_id: &str) -> Result<Option<i64>> {
    Ok(conn.query_row("SELECT finished FROM capture_sessions WHERE recording_id = ?1", params![recording_id], |r| r.get(0)).optional()?)
}

/// Adds a location fix to a running recording.
pub(crate) fn insert_fix(conn: &Connection, recording_id: &str, fix_json: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO session_fixes (recording_id, n, fix) VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM session_fixes WHERE recording_id = ?1), ?2)",
        params![recording_id, fix_json],
    )?;
    Ok(())
}

/// A recording session as stored.
pub(crate) struct SessionRow {
    pub request: String,
    pub media_ext: String,
    pub next_index: i64,
    pub fix_cursor: i64,
    pub segment_started_at: String,
    pub finished: i64,
}

/// One recording session, or `None` for an unknown recording.
pub(crate) fn session(conn: &Connection, recording_id: &str) -> Result<Option<SessionRow>> {
    Ok(conn
        .query_row(
            "SELECT request, media_ext, next_index, fix_cursor, segment_started_at, finished FROM capture_sessions WHERE recording_id = ?1",
            params![recording_id],
            |r| {
                Ok(SessionRow {
                    request: r.get(0)?,
                    media_ext: r.get(1)?,
                    next_index: r.get(2)?,
                    fix_cursor: r.get(3)?,
                    segment_started_at: r.get(4)?,
                    finished: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Fixes of a recording after `cursor`: (n, fix JSON), in order.
pub(crate) fn fixes_after(conn: &Connection, recording_id: &str, cursor: i64) -> Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare("SELECT n, fix FROM session_fixes WHERE recording_id = ?1 AND n > ?2 ORDER BY n")?;
    let rows = stmt.query_map(params![recording_id, cursor], |r| Ok((r.get(0)?, r.get(1)?)))?;
    collect(rows)
}

/// Moves a session past a sealed segment.
pub(crate) fn advance_session(conn: &Connection, recording_id: &str, next_index: i64, fix_cursor: i64, segment_started_at: &str, finished: bool) -> Result<()> {
    conn.execute(
        "UPDATE capture_sessions SET next_index = ?2, fix_cursor = ?3, segment_started_at = ?4, finished = ?5 WHERE recording_id = ?1",
        params![recording_id, next_index, fix_cursor, segment_started_at, finished as i64],
    )?;
    // The fixes up to the cursor are in a sealed item's track now (read only after the cursor):
    // not kept twice (on a sealed store, where SQLite zeroes deleted rows, not kept in the clear
    // or under the vault key once their item may be locked).
    conn.execute("DELETE FROM session_fixes WHERE recording_id = ?1 AND n <= ?2", params![recording_id, fix_cursor])?;
    Ok(())
}

/// Removes a finished live recording's fixes (its manifest's track holds them).
pub(crate) fn delete_fixes(conn: &Connection, recording_id: &str) -> Result<()> {
    conn.execute("DELETE FROM session_fixes WHERE recording_id = ?1", params![recording_id])?;
    Ok(())
}

/// Recovery's version of [`advance_session`]: never moves a session backwards.
pub(crate) fn advance_session_at_least(conn: &Connection, recording_id: &str, next_index: i64, segment_started_at: &str, finished: bool) -> Result<()> {
    conn.execute(
        "UPDATE capture_sessions SET next_index = MAX(next_index, ?2), segment_started_at = ?3, finished = MAX(finished, ?4) WHERE recording_id = ?1",
        params![recording_id, next_index, segment_started_at, finished as i64],
    )?;
    Ok(())
}

/// Marks a running session finished; returns how many rows changed (0: unknown or finished).
pub(crate) fn finish_session(conn: &Connection, recording_id: &str) -> Result<usize> {
    Ok(conn.execute("UPDATE capture_sessions SET finished = 1 WHERE recording_id = ?1 AND finished = 0", params![recording_id])?)
}
