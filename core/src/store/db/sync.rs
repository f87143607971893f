//! Every row of SQL the sync pass runs, as small functions on a [`Connection`].
//!
//! Sync reads and writes two tables: `items` (one row per sealed item: its manifest, signature,
//! upload state, receipt) and the `server` key/value table (the pinned server, the clock offset,
//! the newest checkpoint, upload high-water marks, how much custody the server acknowledged).
//! Like the rest of [`super`], this file is SQL and nothing else: it depends on rusqlite alone,
//! every value is bound as a parameter (no text is ever pasted into a statement), and each
//! function returns rusqlite's own error.
//!
//! Functions that must commit together with a custody event take the open transaction (a
//! [`rusqlite::Transaction`] dereferences to a [`Connection`]).

use rusqlite::{params, Connection, OptionalExtension};

/// States in which an item still has something to sync (and is not set aside).
const QUEUED: &str = "state IN ('sealed','manifest_sent','uploading','uploaded') AND integrity = 'ok'";

/// The columns [`ItemRow`] is read from, in its field order.
const ITEM_COLUMNS: &str = "clip_id, seq, state, manifest, signature, manifest_sha256, media_ext, upload_url, upload_offset, \
    sealed, media_bytes, media_sha256, media_blake3, media_age_bytes, media_age_blake3";

/// One item's row, as sync needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemRow {
    /// The clip id (UUIDv7).
    pub(crate) clip_id: String,
    /// The device sequence number.
    pub(crate) seq: u64,
    /// `sealed`, `manifest_sent`, `uploading`, `uploaded`, `receipted`, `needs_attention`.
    pub(crate) state: String,
    /// The exact signed manifest bytes.
    pub(crate) manifest: Vec<u8>,
    /// The raw Ed25519 signature of the manifest.
    pub(crate) signature: Vec<u8>,
    /// Lowercase hex SHA-256 of the manifest bytes.
    pub(crate) manifest_sha256: String,
    /// The media file's extension, if the item has media.
    pub(crate) media_ext: Option<String>,
    /// The tus upload URL the server gave (relative or absolute).
    pub(crate) upload_url: Option<String>,
    /// Bytes the server acknowledged.
    pub(crate) upload_offset: u64,
    /// Sealed storage: `manifest` is the manifest's age file, and the media file that is
    /// uploaded is `media.<ext>.age`.
    pub(crate) sealed: bool,
    /// The media's signed (plaintext) length and digests, if the item has media.
    pub(crate) media_plain: Option<(u64, String, String)>,
    /// Sealed storage: the media age file's length and BLAKE3.
    pub(crate) media_age: Option<(u64, String)>,
}

fn item_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRow> {
    Ok(ItemRow {
        clip_id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        state: r.get(2)?,
        manifest: r.get(3)?,
        signature: r.get(4)?,
        manifest_sha256: r.get(5)?,
        media_ext: r.get(6)?,
        upload_url: r.get(7)?,
        upload_offset: r.get::<_, i64>(8)? as u64,
        sealed: r.get::<_, i64>(9)? != 0,
        media_plain: match (r.get::<_, Option<i64>>(10)?, r.get::<_, Option<String>>(11)?, r.get::<_, Option<String>>(12)?) {
            (Some(b), Some(sha), Some(b3)) => Some((b as u64, sha, b3)),
            _ => None,
        },
        media_age: match (r.get::<_, Option<i64>>(13)?, r.get::<_, Option<String>>(14)?) {
            (Some(b), Some(b3)) => Some((b as u64, b3)),
            _ => None,
        },
    })
}

fn item_rows(conn: &Connection, filter: &str) -> rusqlite::Result<Vec<ItemRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE {filter} ORDER BY seq"))?;
    let rows = stmt.query_map([], item_row)?;
    rows.collect()
}

/// Items whose manifest is not on record yet (hash first), oldest first.
pub(crate) fn items_to_commit(conn: &Connection) -> rusqlite::Result<Vec<ItemRow>> {
    item_rows(conn, "state = 'sealed'")
}

/// Items whose manifest is on record and whose media or receipt is still to come, oldest first.
pub(crate) fn items_to_upload(conn: &Connection) -> rusqlite::Result<Vec<ItemRow>> {
    item_rows(conn, "state IN ('manifest_sent','uploading','uploaded') AND integrity = 'ok'")
}

/// One item by clip id.
pub(crate) fn item(conn: &Connection, clip_id: &str) -> rusqlite::Result<Option<ItemRow>> {
    conn.query_row(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE clip_id = ?1"), params![clip_id], item_row).optional()
}

/// Items still to sync.
pub(crate) fn count_queued(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row(&format!("SELECT COUNT(*) FROM items WHERE {QUEUED}"), [], |r| r.get::<_, i64>(0)).map(|n| n as usize)
}

/// Items waiting for a person: refused, flagged or with an unusable receipt.
pub(crate) fn count_needs_attention(conn: &Connection) -> rusqlite::Result<usize> {
    conn.query_row("SELECT COUNT(*) FROM items WHERE state = 'needs_attention' OR integrity != 'ok'", [], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
}

/// Sets an item's state.
pub(crate) fn set_state(conn: &Connection, clip_id: &str, state: &str) -> rusqlite::Result<()> {
    conn.execute("UPDATE items SET state = ?2 WHERE clip_id = ?1", params![clip_id, state])?;
    Ok(())
}

/// A permanent refusal: the item waits for a person, with the reason shown.
pub(crate) fn set_needs_attention(conn: &Connection, clip_id: &str, reason: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE items SET state = 'needs_attention', last_error = ?2, attempts = attempts + 1 WHERE clip_id = ?1",
        params![clip_id, reason],
    )?;
    Ok(())
}

/// A transient failure: counted, shown, and the next attempt scheduled at `next_attempt_at`.
pub(crate) fn note_transient(conn: &Connection, clip_id: &str, error: &str, next_attempt_at: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE items SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE clip_id = ?1",
        params![clip_id, error, next_attempt_at],
    )?;
    Ok(())
}

/// The server committed the manifest: keep its commitment and the upload URL (if still sealed).
pub(crate) fn set_manifest_committed(conn: &Connection, clip_id: &str, commitment: &[u8], upload_url: Option<&str>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE items SET state = 'manifest_sent', commitment = ?2, upload_url = ?3, upload_offset = 0, last_error = NULL
         WHERE clip_id = ?1 AND state = 'sealed'",
        params![clip_id, commitment, upload_url],
    )?;
    Ok(())
}

/// A fresh upload URL (the old one expired or vanished); the server starts from zero there.
pub(crate) fn set_upload_url(conn: &Connection, clip_id: &str, upload_url: Option<&str>) -> rusqlite::Result<()> {
    conn.execute("UPDATE items SET upload_url = ?2, upload_offset = 0 WHERE clip_id = ?1", params![clip_id, upload_url])?;
    Ok(())
}

/// Records the server-acknowledged offset of an upload (and that it has started).
pub(crate) fn set_upload_offset(conn: &Connection, clip_id: &str, offset: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE items SET upload_offset = ?2, state = CASE WHEN state = 'manifest_sent' THEN 'uploading' ELSE state END WHERE clip_id = ?1",
        params![clip_id, offset as i64],
    )?;
    Ok(())
}

/// The server holds every byte of the media.
pub(crate) fn set_uploaded(conn: &Connection, clip_id: &str, bytes: u64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE items SET state = 'uploaded', upload_offset = ?2, last_error = NULL WHERE clip_id = ?1",
        params![clip_id, bytes as i64],
    )?;
    Ok(())
}

/// Flags an item whose media is missing or changed: `integrity`, its detail, `needs_attention`,
/// and the offset reset to 0 when the partial upload on the server was terminated.
pub(crate) fn set_flagged(
    conn: &Connection,
    clip_id: &str,
    integrity: &str,
    detail: &str,
    last_error: &str,
    upload_terminated: bool,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE items SET integrity = ?2, integrity_detail = ?3, state = 'needs_attention', last_error = ?4,
                upload_offset = CASE WHEN ?5 THEN 0 ELSE upload_offset END WHERE clip_id = ?1",
        params![clip_id, integrity, detail, last_error, upload_terminated],
    )?;
    Ok(())
}

/// Stores a verified receipt (exact bytes and signature) with the item's resulting state and
/// reason; clears the retry schedule.
pub(crate) fn set_receipt(
    conn: &Connection,
    clip_id: &str,
    state: &str,
    body: &[u8],
    sig: &[u8],
    received_at: &str,
    last_error: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE items SET state = ?2, receipt = ?3, receipt_sig = ?4, receipted_at = ?5, last_error = ?6, next_attempt_at = NULL
         WHERE clip_id = ?1",
        params![clip_id, state, body, sig, received_at, last_error],
    )?;
    Ok(())
}

/// Marks the local media copy purged (once).
pub(crate) fn set_purged(conn: &Connection, clip_id: &str, at: &str) -> rusqlite::Result<()> {
    conn.execute("UPDATE items SET purged_at = ?2 WHERE clip_id = ?1 AND purged_at IS NULL", params![clip_id, at])?;
    Ok(())
}

/// One value of the `server` key/value table.
pub(crate) fn server_get(conn: &Connection, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM server WHERE key = ?1", params![key], |r| r.get(0)).optional()
}

/// Stores one value of the `server` key/value table.
pub(crate) fn server_put(conn: &Connection, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO server (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Removes one value of the `server` key/value table.
pub(crate) fn server_del(conn: &Connection, key: &str) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM server WHERE key = ?1", params![key])?;
    Ok(())
}

/// Up to `limit` custody events after `seq`, in order, as (body, signature).
pub(crate) fn custody_after(conn: &Connection, seq: u64, limit: usize) -> rusqlite::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut stmt = conn.prepare("SELECT body, sig FROM custody WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
    let rows = stmt.query_map(params![seq as i64, limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::FileKeyProtector;
    use crate::seal::ObservationRequest;
    use std::sync::Arc;

    /// A store with one observation sealed; returns its clip id.
    fn store_with_one_item() -> (tempfile::TempDir, crate::Store, String) {
        let d = tempfile::tempdir().expect("tmp");
        let s = crate::Store::open(d.path(), Arc::new(FileKeyProtector)).expect("store");
        let req = ObservationRequest {
            observation: crate::manifest::Observation { text: "x".into(), ..Default::default() },
            ..Default::default()
        };
        let id = s.observe(req).expect("observe").clip_id;
        (d, s, id)
    }

    #[test]
    fn an_item_is_found_by_a_bound_clip_id_whatever_it_contains() {
        let (_d, s, id) = store_with_one_item();
        let conn = s.conn();
        assert_eq!(item(&conn, &id).expect("query").map(|r| r.clip_id), Some(id.clone()));
        // A clip id with a quote is a value, never SQL: pasted into the statement (the old
        // `reload`) it was either an injection or, with quotes stripped, another id.
        let odd = format!("{id}'x");
        conn.execute("UPDATE items SET clip_id = ?1 WHERE clip_id = ?2", params![odd, id]).expect("rename");
        assert_eq!(item(&conn, &odd).expect("query").map(|r| r.clip_id), Some(odd.clone()));
        assert_eq!(item(&conn, &format!("{id}x")).expect("query"), None, "no other id matches");
        assert_eq!(item(&conn, "' OR 1=1 --").expect("query"), None);
    }

    #[test]
    fn queues_and_counts_follow_the_state() {
        let (_d, s, id) = store_with_one_item();
        let conn = s.conn();
        assert_eq!(items_to_commit(&conn).expect("q").len(), 1);
        assert_eq!(count_queued(&conn).expect("n"), 1);
        set_manifest_committed(&conn, &id, b"{}", Some("/v1/uploads/x")).expect("commit");
        assert!(items_to_commit(&conn).expect("q").is_empty());
        let row = items_to_upload(&conn).expect("q").pop().expect("row");
        assert_eq!((row.state.as_str(), row.upload_url.as_deref()), ("manifest_sent", Some("/v1/uploads/x")));
        set_upload_offset(&conn, &id, 7).expect("offset");
        assert_eq!(item(&conn, &id).expect("q").map(|r| (r.state, r.upload_offset)), Some(("uploading".into(), 7)));
        set_flagged(&conn, &id, "mismatch", "changed", "changed", true).expect("flag");
        assert_eq!((count_queued(&conn).expect("n"), count_needs_attention(&conn).expect("n")), (0, 1));
        assert_eq!(item(&conn, &id).expect("q").map(|r| r.upload_offset), Some(0), "terminated: nothing left on the server");
    }

    #[test]
    fn the_server_table_puts_replaces_and_deletes() {
        let (_d, s, _) = store_with_one_item();
        let conn = s.conn();
        assert_eq!(server_get(&conn, "k").expect("get"), None);
        server_put(&conn, "k", b"1").expect("put");
        server_put(&conn, "k", b"2").expect("replace");
        assert_eq!(server_get(&conn, "k").expect("get"), Some(b"2".to_vec()));
        server_del(&conn, "k").expect("del");
        assert_eq!(server_get(&conn, "k").expect("get"), None);
    }
}
