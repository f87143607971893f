//! Schema of the device store and its migrations.
//!
//! `PRAGMA user_version` holds the schema version. Each migration runs in one transaction, so a
//! crash mid-upgrade leaves the previous version. A test upgrades a frozen copy of every older
//! schema (`core/tests/fixtures/schema_vN.sql`) and compares the result with a fresh database.
//! A store newer than this build is refused, never "downgraded".

use crate::error::{Error, Result};
use rusqlite::Connection;

/// Version 1: items, custody log, pending seals, capture sessions.
const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE items (
    clip_id          TEXT PRIMARY KEY,
    seq              INTEGER NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    manifest         BLOB NOT NULL,
    signature        BLOB NOT NULL,
    manifest_sha256  TEXT NOT NULL,
    media_ext        TEXT,
    media_bytes      INTEGER,
    media_sha256     TEXT,
    media_blake3     TEXT,
    recording_id     TEXT,
    segment_index    INTEGER,
    started_at       TEXT NOT NULL,
    sealed_at        TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'sealed',
    integrity        TEXT NOT NULL DEFAULT 'ok',
    integrity_detail TEXT
);
CREATE INDEX items_state_seq ON items(state, seq);
CREATE TABLE custody (
    seq     INTEGER PRIMARY KEY,
    clip_id TEXT,
    event   TEXT NOT NULL,
    at      TEXT NOT NULL,
    body    BLOB NOT NULL,
    hash    TEXT NOT NULL,
    sig     BLOB NOT NULL
);
CREATE INDEX custody_clip ON custody(clip_id);
CREATE TABLE pending_seals (
    clip_id     TEXT PRIMARY KEY,
    request     TEXT NOT NULL,
    source_path TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE capture_sessions (
    recording_id TEXT PRIMARY KEY,
    request      TEXT NOT NULL,
    media_ext    TEXT NOT NULL,
    next_index   INTEGER NOT NULL DEFAULT 0,
    fix_cursor   INTEGER NOT NULL DEFAULT 0,
    segment_started_at TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE session_fixes (
    recording_id TEXT NOT NULL,
    n            INTEGER NOT NULL,
    fix          TEXT NOT NULL,
    PRIMARY KEY (recording_id, n)
);
"#;

/// Version 2: sync state per item, server checkpoints, alarms.
const V2: &str = r#"
ALTER TABLE items ADD COLUMN upload_url TEXT;
ALTER TABLE items ADD COLUMN upload_offset INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN commitment BLOB;
ALTER TABLE items ADD COLUMN receipt BLOB;
ALTER TABLE items ADD COLUMN receipt_sig BLOB;
ALTER TABLE items ADD COLUMN receipted_at TEXT;
ALTER TABLE items ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN next_attempt_at TEXT;
ALTER TABLE items ADD COLUMN last_error TEXT;
ALTER TABLE items ADD COLUMN purged_at TEXT;
CREATE TABLE server (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE alarms (
    id     INTEGER PRIMARY KEY,
    at     TEXT NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

/// Version 3: live recordings, sealed fragment by fragment (`fieldcap.fragment/1`), and the
/// server's acknowledgements.
const V3: &str = r#"
CREATE TABLE live_recordings (
    clip_id       TEXT PRIMARY KEY,
    request       TEXT NOT NULL,
    mime          TEXT NOT NULL,
    media_ext     TEXT NOT NULL,
    started_at    TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'recording',
    fragments     INTEGER NOT NULL DEFAULT 0,
    sealed_bytes  INTEGER NOT NULL DEFAULT 0,
    last_sequence INTEGER,
    head_sha256   TEXT
);
CREATE TABLE live_fragments (
    clip_id       TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    record        BLOB NOT NULL,
    sig           BLOB NOT NULL,
    record_sha256 TEXT NOT NULL,
    offset        INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    captured_at   TEXT NOT NULL,
    sealed_at_ms  INTEGER NOT NULL,
    ack           BLOB,
    ack_sig       BLOB,
    acked_at_ms   INTEGER,
    PRIMARY KEY (clip_id, idx)
);
CREATE INDEX live_fragments_unacked ON live_fragments(acked_at_ms, clip_id, idx);
"#;

/// Version 4: sealed storage (FORMATS §6b). For a `sealed` item the `manifest` column holds the
/// manifest's age file (encrypted to the item key) and the media file is `media.<ext>.age`, whose
/// length and BLAKE3 (what is uploaded) are kept here; `locked_at` is set when the item was
/// locked to the council.
const V4: &str = r#"
ALTER TABLE items ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN media_age_bytes INTEGER;
ALTER TABLE items ADD COLUMN media_age_blake3 TEXT;
ALTER TABLE items ADD COLUMN locked_at TEXT;
"#;

/// Migrations in order; index + 1 is the version each produces.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings a connection's schema up to [`CURRENT_VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT_VERSION {
        return Err(Error::NewerSchema { found: version, supported: CURRENT_VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        // Re-check inside the lock: another process may have migrated meanwhile.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > i as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}
