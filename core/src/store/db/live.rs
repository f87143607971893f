//! Rows of live recordings (`live_recordings`) and their sealed pieces (`live_fragments`).

use super::collect;
use crate::error::Result;
use crate::evidence::fragment::FragmentRecord;
use crate::live::{FragmentRow, LiveStatus};
use rusqlite::{params, Connection, OptionalExtension};

/// A live recording as stored.
pub(crate) struct RecordingRow {
    pub request: String,
    pub mime: String,
    pub media_ext: String,
    pub started_at: String,
    pub state: String,
    pub sealed_bytes: u64,
    pub last_sequence: Option<i64>,
}

pub(crate) fn insert_recording(conn: &Connection, clip_id: &str, request: &str, mime: &str, ext: &str, started_at: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO live_recordings (clip_id, request, mime, media_ext, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![clip_id, request, mime, ext, started_at],
    )?;
    Ok(())
}

pub(crate) fn recording(conn: &Connection, clip_id: &str) -> Result<Option<RecordingRow>> {
    Ok(conn
        .query_row(
            "SELECT request, mime, media_ext, started_at, state, sealed_bytes, last_sequence FROM live_recordings WHERE clip_id = ?1",
            params![clip_id],
            |r| {
                Ok(RecordingRow {
                    request: r.get(0)?,
                    mime: r.get(1)?,
                    media_ext: r.get(2)?,
                    started_at: r.get(3)?,
                    state: r.get(4)?,
                    sealed_bytes: r.get::<_, i64>(5)? as u64,
                    last_sequence: r.get(6)?,
                })
            },
        )
        .optional()?)
}

pub(crate) fn set_state(conn: &Connection, clip_id: &str, state: &str) -> Result<()> {
    conn.execute("UPDATE live_recordings SET state = ?2 WHERE clip_id = ?1", params![clip_id, state])?;
    Ok(())
}

/// Stores a sealed piece and moves the recording's head, in one transaction. Fails (nothing
/// stored) if the index is taken or does not follow the head.
pub(crate) fn insert_fragment(conn: &mut Connection, rec: &FragmentRecord, body: &[u8], sig: &[u8], record_sha256: &str, last_sequence: Option<u32>, now_ms: i64) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO live_fragments (clip_id, idx, record, sig, record_sha256, offset, bytes, captured_at, sealed_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![rec.clip_id, rec.index as i64, body, sig, record_sha256, rec.offset as i64, rec.bytes as i64, rec.captured_at, now_ms],
    )?;
    let n = tx.execute(
        "UPDATE live_recordings SET fragments = fragments + 1, sealed_bytes = ?2, last_sequence = ?3, head_sha256 = ?4 WHERE clip_id = ?1 AND state = 'recording' AND fragments = ?5 AND sealed_bytes = ?6",
        params![rec.clip_id, rec.total_bytes as i64, last_sequence.map(i64::from), record_sha256, rec.index as i64, rec.offset as i64],
    )?;
    if n != 1 {
        return Err(crate::error::Error::Integrity(format!("piece {} does not follow the recording's head on record", rec.index)));
    }
    tx.commit()?;
    Ok(())
}

fn fragment_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FragmentRow> {
    Ok(FragmentRow {
        clip_id: r.get(0)?,
        index: r.get::<_, i64>(1)? as u64,
        record: r.get(2)?,
        sig: r.get(3)?,
        record_sha256: r.get(4)?,
        offset: r.get::<_, i64>(5)? as u64,
        bytes: r.get::<_, i64>(6)? as u64,
        sealed_at_ms: r.get(7)?,
        ack: r.get(8)?,
        ack_sig: r.get(9)?,
        acked_at_ms: r.get(10)?,
    })
}

const FRAGMENT_COLS: &str = "clip_id, idx, record, sig, record_sha256, offset, bytes, sealed_at_ms, ack, ack_sig, acked_at_ms";

pub(crate) fn fragments(conn: &Connection, clip_id: &str) -> Result<Vec<FragmentRow>> {
    let mut st = conn.prepare(&format!("SELECT {FRAGMENT_COLS} FROM live_fragments WHERE clip_id = ?1 ORDER BY idx"))?;
    let rows = st.query_map(params![clip_id], fragment_row)?;
    collect(rows)
}

pub(crate) fn fragment(conn: &Connection, clip_id: &str, index: u64) -> Result<Option<FragmentRow>> {
    Ok(conn.query_row(&format!("SELECT {FRAGMENT_COLS} FROM live_fragments WHERE clip_id = ?1 AND idx = ?2"), params![clip_id, index as i64], fragment_row).optional()?)
}

/// Pieces not yet acknowledged, of recordings still being recorded (a finished recording's
/// remainder goes by tus with its item), oldest recording first, in index order.
pub(crate) fn unacked(conn: &Connection, limit: usize) -> Result<Vec<FragmentRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {} FROM live_fragments f JOIN live_recordings l ON l.clip_id = f.clip_id \
         WHERE f.acked_at_ms IS NULL AND l.state = 'recording' ORDER BY f.clip_id, f.idx LIMIT ?1",
        FRAGMENT_COLS.split(", ").map(|c| format!("f.{c}")).collect::<Vec<_>>().join(", ")
    ))?;
    let rows = st.query_map(params![limit as i64], fragment_row)?;
    collect(rows)
}

pub(crate) fn set_ack(conn: &Connection, clip_id: &str, index: u64, ack: &[u8], ack_sig: &[u8], now_ms: i64) -> Result<()> {
    conn.execute(
        "UPDATE live_fragments SET ack = ?3, ack_sig = ?4, acked_at_ms = ?5 WHERE clip_id = ?1 AND idx = ?2 AND acked_at_ms IS NULL",
        params![clip_id, index as i64, ack, ack_sig, now_ms],
    )?;
    Ok(())
}

pub(crate) fn statuses(conn: &Connection) -> Result<Vec<LiveStatus>> {
    let mut st = conn.prepare(
        "SELECT l.clip_id, l.state, l.fragments, l.sealed_bytes, (SELECT COUNT(*) FROM live_fragments f WHERE f.clip_id = l.clip_id AND f.acked_at_ms IS NOT NULL) \
         FROM live_recordings l ORDER BY l.clip_id DESC",
    )?;
    let rows = st.query_map([], |r| {
        Ok(LiveStatus {
            clip_id: r.get(0)?,
            state: r.get(1)?,
            fragments: r.get::<_, i64>(2)? as u64,
            sealed_bytes: r.get::<_, i64>(3)? as u64,
            acknowledged: r.get::<_, i64>(4)? as u64,
        })
    })?;
    collect(rows)
}
