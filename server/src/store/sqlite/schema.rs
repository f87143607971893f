//! Schema of the server's record database (SQLite, WAL) and its migrations.
//!
//! `PRAGMA user_version` holds the schema version; each migration runs in one transaction, so a
//! crash mid-upgrade leaves the previous version. A database newer than this build is refused.
//! The server process and the `fieldcap token` command open the same file concurrently; WAL and a
//! busy timeout make that safe.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let conn = fieldcap_server::store::sqlite::schema::open(&dir.path().join("records.sqlite")).unwrap();
//! let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
//! assert_eq!(v, fieldcap_server::store::sqlite::schema::VERSION);
//! ```

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::path::Path;

/// Current schema version.
pub const VERSION: i64 = 6;

const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE tokens (
    token_sha256  TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at       TEXT,
    used_by       TEXT
);
CREATE TABLE devices (
    device_id      TEXT PRIMARY KEY,
    public_key_pem TEXT NOT NULL,
    role           TEXT NOT NULL,
    org            TEXT,
    enrolled_at    TEXT NOT NULL,
    cert           BLOB NOT NULL,
    cert_sig       BLOB NOT NULL,
    revoked_at     TEXT
);
CREATE TABLE nonces (
    device_id TEXT NOT NULL,
    nonce     TEXT NOT NULL,
    ts_ms     INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX nonces_ts ON nonces(ts_ms);
CREATE TABLE items (
    clip_id         TEXT PRIMARY KEY,
    device_id       TEXT NOT NULL REFERENCES devices(device_id),
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    manifest        BLOB NOT NULL,
    manifest_sig    BLOB NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    media_mime      TEXT,
    media_bytes     INTEGER,
    media_sha256    TEXT,
    media_blake3    TEXT,
    started_at      TEXT NOT NULL,
    ended_at        TEXT NOT NULL,
    commitment      BLOB NOT NULL,
    commitment_sig  BLOB NOT NULL,
    committed_at    TEXT NOT NULL,
    state           TEXT NOT NULL,
    blob_sha256     TEXT,
    receipt         BLOB,
    receipt_sig     BLOB,
    received_at     TEXT,
    log_index       INTEGER,
    refusals        INTEGER NOT NULL DEFAULT 0,
    last_refusal    TEXT,
    UNIQUE (device_id, seq)
);
CREATE TABLE uploads (
    clip_id       TEXT PRIMARY KEY REFERENCES items(clip_id),
    capability    TEXT NOT NULL UNIQUE,
    length        INTEGER NOT NULL,
    upload_offset INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    state         TEXT NOT NULL
);
CREATE TABLE log_leaves (
    idx       INTEGER PRIMARY KEY,
    clip_id   TEXT NOT NULL UNIQUE,
    leaf      BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE TABLE checkpoints (
    tree_size INTEGER PRIMARY KEY,
    note      TEXT NOT NULL
);
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
"#;

/// Version 2 (evidence packages, retention and legal hold; see `crate::retention`). Frozen:
/// never edit a released migration; add a new one at the end of [`MIGRATIONS`].
const V2: &str = r#"
CREATE TABLE retention_policy (
    category TEXT PRIMARY KEY,
    days     INTEGER NOT NULL,
    set_at   TEXT NOT NULL
);
CREATE TABLE holds (
    id             INTEGER PRIMARY KEY,
    clip_id        TEXT NOT NULL,
    reason         TEXT NOT NULL,
    held_at        TEXT NOT NULL,
    released_at    TEXT,
    release_reason TEXT
);
CREATE INDEX holds_clip ON holds(clip_id);
CREATE TABLE referrals (
    clip_id    TEXT NOT NULL,
    package_id TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (clip_id, package_id)
);
CREATE TABLE disposals (
    clip_id     TEXT PRIMARY KEY,
    disposed_at TEXT NOT NULL,
    log_index   INTEGER NOT NULL,
    custody_seq INTEGER NOT NULL
);
"#;

/// Version 3: devices' own custody logs, uploaded by their sync passes (`POST /v1/custody`) and
/// kept verbatim (body bytes and signature as the device made them). Frozen.
const V3: &str = r#"
CREATE TABLE device_custody (
    device_id   TEXT NOT NULL REFERENCES devices(device_id),
    seq         INTEGER NOT NULL,
    clip_id     TEXT,
    event       TEXT NOT NULL,
    at          TEXT NOT NULL,
    body        BLOB NOT NULL,
    hash        TEXT NOT NULL,
    sig         BLOB NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX device_custody_clip ON device_custody(clip_id);
"#;

/// Version 4: the console's staff accounts, their login sessions (the SHA-256 of the cookie,
/// never the cookie), records requests (`clip_ids` a JSON array of strings) and settings. Frozen.
const V4: &str = r#"
CREATE TABLE staff (
    staff_id            TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    role                TEXT NOT NULL,
    password_hash       TEXT,
    setup_token_sha256  TEXT UNIQUE,
    setup_expires_at_ms INTEGER,
    created_at          TEXT NOT NULL,
    disabled_at         TEXT
);
CREATE TABLE sessions (
    session_sha256 TEXT PRIMARY KEY,
    staff_id       TEXT NOT NULL REFERENCES staff(staff_id),
    csrf_token     TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL
);
CREATE INDEX sessions_staff ON sessions(staff_id);
CREATE INDEX sessions_expires ON sessions(expires_at_ms);
CREATE TABLE records_requests (
    request_id       TEXT PRIMARY KEY,
    requester        TEXT NOT NULL,
    description      TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    clip_ids         TEXT NOT NULL,
    state            TEXT NOT NULL,
    package_id       TEXT,
    package_sha256   TEXT,
    built_by         TEXT,
    sensitive_reason TEXT,
    approved_by      TEXT,
    approved_at      TEXT
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// Version 5: live-capture fragments (`fieldcap.fragment/1`): each record and signature as the
/// device sent it, the server's signed acknowledgement, and the piece's place in the recording
/// (the bytes are in the clip's partial upload). Frozen.
const V5: &str = r#"
CREATE TABLE fragments (
    clip_id       TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices(device_id),
    record        BLOB NOT NULL,
    sig           BLOB NOT NULL,
    record_sha256 TEXT NOT NULL,
    piece_offset  INTEGER NOT NULL,
    bytes         INTEGER NOT NULL,
    total_bytes   INTEGER NOT NULL,
    captured_at   TEXT NOT NULL,
    mfhd_last     INTEGER,
    ack           BLOB NOT NULL,
    ack_sig       BLOB NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (clip_id, idx)
);
"#;

/// Version 6: sealed (encrypted) items (`POST /v1/manifests/sealed`): the item key wrapped to
/// the escrow key, as the device sent it, and the length of the media's age file (the length of
/// its tus upload). Both NULL for an item submitted in plaintext. Frozen.
const V6: &str = r#"
ALTER TABLE items ADD COLUMN key_wrap BLOB;
ALTER TABLE items ADD COLUMN media_age_bytes INTEGER;
"#;

/// Migrations in order; index i upgrades version i to i+1.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6];

/// Opens (creating if needed) the record database, sets WAL, FULL sync and a busy timeout, and
/// migrates it to [`VERSION`].
pub fn open(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Brings a connection's schema to [`VERSION`].
pub fn migrate(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if v > VERSION {
            return Err(Error::Internal(format!("the record database has schema {v}, newer than this server ({VERSION})")));
        }
        if v == VERSION {
            tx.commit()?;
            return Ok(());
        }
        let sql = MIGRATIONS
            .get(v as usize)
            .ok_or_else(|| Error::Internal(format!("no migration from schema {v}")))?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", v + 1)?;
        tx.commit()?;
    }
}
