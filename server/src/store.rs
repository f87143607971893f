//! Storage behind traits: [`RecordStore`] for records, [`BlobStore`] for media originals.
//!
//! Handlers only see the traits, so a PostgreSQL record store or an `object_store` blob store
//! (S3, GCS, Azure) can replace the embedded defaults without touching them. The embedded
//! defaults are [`SqliteRecordStore`] (one WAL database, `records.sqlite`) and
//! [`LocalBlobStore`] (a content-addressed directory: `blobs/sha256/<2 hex>/<64 hex>`, each blob
//! written to a temporary file, fsynced, renamed, made read-only; originals are never modified).
//!
//! Operations that must be atomic are single trait methods (one transaction each): enrolment
//! consumes the token and stores the device together; completing an item stores its log leaf,
//! checkpoint, receipt and upload state together; a custody event takes the next chain position
//! inside the same transaction that writes it, so two processes can append safely.
//!
//! ```
//! use fieldcap_server::store::{RecordStore, SqliteRecordStore};
//! let dir = tempfile::tempdir().unwrap();
//! let s = SqliteRecordStore::open(&dir.path().join("records.sqlite")).unwrap();
//! s.insert_token("ab", "monitor", "2025-06-07T18:04:05.000Z", i64::MAX).unwrap();
//! assert!(s.device("00000000000000000000000000000000").unwrap().is_none());
//! ```

use crate::error::{Error, Result};
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::tlog::Hash;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Device id (32 hex).
    pub device_id: String,
    /// SPKI PEM public key.
    pub public_key_pem: String,
    /// `monitor` or `police` (from the token).
    pub role: String,
    /// Organisation the device gave.
    pub org: Option<String>,
    /// When enrolled (RFC 3339).
    pub enrolled_at: String,
    /// Exact bytes of the signed device certificate.
    pub cert: Vec<u8>,
    /// Server signature over `cert`.
    pub cert_sig: Vec<u8>,
    /// When revoked, if it was.
    pub revoked_at: Option<String>,
}

/// Media digests as declared in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// MIME type.
    pub mime: String,
    /// Length.
    pub bytes: u64,
    /// SHA-256 hex.
    pub sha256: String,
    /// BLAKE3 hex.
    pub blake3: String,
}

/// One item on record: the device's manifest and, once complete, the server's receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    /// Item id (UUIDv7).
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Device chain position.
    pub seq: u64,
    /// `video`, `audio`, `photo` or `observation`.
    pub kind: String,
    /// Exact manifest bytes as the device signed them.
    pub manifest: Vec<u8>,
    /// Device signature over `manifest`.
    pub manifest_sig: Vec<u8>,
    /// SHA-256 hex of `manifest`.
    pub manifest_sha256: String,
    /// Declared media, absent for observations.
    pub media: Option<MediaInfo>,
    /// Capture start.
    pub started_at: String,
    /// Capture end.
    pub ended_at: String,
    /// Exact bytes of the signed commitment.
    pub commitment: Vec<u8>,
    /// Server signature over `commitment`.
    pub commitment_sig: Vec<u8>,
    /// When committed.
    pub committed_at: String,
    /// `committed` (waiting for media) or `received` (receipted).
    pub state: String,
    /// SHA-256 hex naming the stored original in the blob store.
    pub blob_sha256: Option<String>,
    /// Exact bytes of the signed receipt.
    pub receipt: Option<Vec<u8>>,
    /// Server signature over `receipt`.
    pub receipt_sig: Option<Vec<u8>>,
    /// When everything was received.
    pub received_at: Option<String>,
    /// Log leaf index.
    pub log_index: Option<u64>,
    /// Number of refused uploads.
    pub refusals: u64,
    /// Why the last upload was refused.
    pub last_refusal: Option<String>,
}

/// State of a tus upload resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Item the upload is bound to.
    pub clip_id: String,
    /// The capability in the upload URL (64 hex).
    pub capability: String,
    /// Expected length (the manifest's byte count).
    pub length: u64,
    /// Bytes received and fsynced.
    pub offset: u64,
    /// When created.
    pub created_at: String,
    /// Expiry, Unix ms.
    pub expires_at_ms: i64,
    /// `open`, `complete` or `terminated`.
    pub state: String,
}

/// Everything stored when an item becomes complete (one transaction).
#[derive(Debug, Clone)]
pub struct Completion {
    /// Item id.
    pub clip_id: String,
    /// Log leaf index.
    pub log_index: u64,
    /// Exact leaf bytes.
    pub leaf: Vec<u8>,
    /// Leaf hash.
    pub leaf_hash: Hash,
    /// Tree size after the append.
    pub tree_size: u64,
    /// Signed checkpoint note at `tree_size`.
    pub checkpoint: String,
    /// Exact receipt bytes.
    pub receipt: Vec<u8>,
    /// Server signature over `receipt`.
    pub receipt_sig: Vec<u8>,
    /// When received.
    pub received_at: String,
    /// Stored original, if the item has media.
    pub blob_sha256: Option<String>,
}

/// Result of an enrolment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Newly enrolled; the record stored.
    Enrolled(DeviceRecord),
    /// Already enrolled (token reused by the same device, or the device enrolled before).
    Existing(DeviceRecord),
    /// The token is unknown, expired or used by another device.
    InvalidToken,
    /// The device was revoked.
    Revoked,
}

/// Builds a signed custody event body for a chain position: `(seq, prev hash) -> (body, sig)`.
pub type CustodySigner<'a> = &'a dyn Fn(u64, Option<&str>) -> (Vec<u8>, Vec<u8>);

/// Builds a signed device record once the token's role is known.
pub type DeviceBuilder<'a> = &'a dyn Fn(&str) -> Result<DeviceRecord>;

/// Records: tokens, devices, nonces, items, uploads, the log, custody.
pub trait RecordStore: Send + Sync {
    /// Stores a new enrolment token (its SHA-256 only).
    fn insert_token(&self, token_sha256: &str, role: &str, created_at: &str, expires_at_ms: i64) -> Result<()>;
    /// Consumes a token and enrols the device built by `build` for the token's role, atomically.
    fn enroll(&self, token_sha256: &str, device_id: &str, now_ms: i64, at: &str, build: DeviceBuilder<'_>) -> Result<EnrollOutcome>;
    /// A device by id.
    fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>>;
    /// Every device.
    fn devices(&self) -> Result<Vec<DeviceRecord>>;
    /// Marks a device revoked; false if unknown.
    fn revoke_device(&self, device_id: &str, at: &str) -> Result<bool>;
    /// Records a request nonce; false if it was already used. Forgets nonces older than `prune_before_ms`.
    fn use_nonce(&self, device_id: &str, nonce: &str, ts_ms: i64, prune_before_ms: i64) -> Result<bool>;
    /// An item by clip id.
    fn item(&self, clip_id: &str) -> Result<Option<ItemRecord>>;
    /// An item by device and seq.
    fn item_by_seq(&self, device_id: &str, seq: u64) -> Result<Option<ItemRecord>>;
    /// Highest seq on record for a device.
    fn max_seq(&self, device_id: &str) -> Result<Option<u64>>;
    /// Every item, in commit order.
    fn items(&self) -> Result<Vec<ItemRecord>>;
    /// Stores a new item and its upload resource; `Ok(false)` if the clip id or (device, seq) exists.
    fn insert_item(&self, item: &ItemRecord, upload: Option<&UploadRecord>) -> Result<bool>;
    /// An upload by capability.
    fn upload_by_capability(&self, capability: &str) -> Result<Option<UploadRecord>>;
    /// The upload of an item.
    fn upload_for_clip(&self, clip_id: &str) -> Result<Option<UploadRecord>>;
    /// Inserts or replaces the upload of an item.
    fn put_upload(&self, upload: &UploadRecord) -> Result<()>;
    /// Sets the fsynced offset of an upload.
    fn set_upload_offset(&self, clip_id: &str, offset: u64) -> Result<()>;
    /// Sets the state of an upload (and its offset).
    fn set_upload_state(&self, clip_id: &str, state: &str, offset: u64) -> Result<()>;
    /// Counts a refused upload and why.
    fn note_refusal(&self, clip_id: &str, reason: &str) -> Result<()>;
    /// Every leaf hash, in log order.
    fn leaf_hashes(&self) -> Result<Vec<Hash>>;
    /// Stores a completed item: leaf, checkpoint, receipt, upload state.
    fn complete_item(&self, c: &Completion) -> Result<()>;
    /// Stores a checkpoint (no-op if one of that size exists).
    fn put_checkpoint(&self, tree_size: u64, note: &str) -> Result<()>;
    /// The newest checkpoint.
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>>;
    /// Appends a custody event; `sign` builds it for the next (seq, prev).
    fn append_custody(&self, clip_id: Option<&str>, event: &str, at: &str, sign: CustodySigner<'_>) -> Result<CustodyEvent>;
    /// Custody events, all or those of one item, in chain order.
    fn custody(&self, clip_id: Option<&str>) -> Result<Vec<CustodyEvent>>;
    /// The newest event of a device's uploaded custody log as (seq, body SHA-256).
    fn device_custody_head(&self, device_id: &str) -> Result<Option<(u64, String)>>;
    /// One event of a device's uploaded custody log.
    fn device_custody_event(&self, device_id: &str, seq: u64) -> Result<Option<CustodyEvent>>;
    /// Appends verified, consecutive device custody events in one transaction, if the device's
    /// head is still `expect_head` (seq, hash); `Ok(false)` if another request moved it.
    fn append_device_custody(&self, device_id: &str, expect_head: Option<(u64, &str)>, events: &[CustodyEvent], received_at: &str) -> Result<bool>;
    /// A device's uploaded custody log, in seq order.
    fn device_custody(&self, device_id: &str) -> Result<Vec<CustodyEvent>>;
}

/// The embedded record store: one SQLite database in WAL mode.
pub struct SqliteRecordStore {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRecordStore").finish_non_exhaustive()
    }
}

const ITEM_COLS: &str = "clip_id, device_id, seq, kind, manifest, manifest_sig, manifest_sha256, media_mime, media_bytes, \
     media_sha256, media_blake3, started_at, ended_at, commitment, commitment_sig, committed_at, state, blob_sha256, \
     receipt, receipt_sig, received_at, log_index, refusals, last_refusal";

fn item_from_row(r: &Row<'_>) -> rusqlite::Result<ItemRecord> {
    let mime: Option<String> = r.get(7)?;
    let bytes: Option<i64> = r.get(8)?;
    let sha: Option<String> = r.get(9)?;
    let b3: Option<String> = r.get(10)?;
    let media = match (mime, bytes, sha, b3) {
        (Some(mime), Some(bytes), Some(sha256), Some(blake3)) => Some(MediaInfo { mime, bytes: bytes as u64, sha256, blake3 }),
        _ => None,
    };
    Ok(ItemRecord {
        clip_id: r.get(0)?,
        device_id: r.get(1)?,
        seq: r.get::<_, i64>(2)? as u64,
        kind: r.get(3)?,
        manifest: r.get(4)?,
        manifest_sig: r.get(5)?,
        manifest_sha256: r.get(6)?,
        media,
        started_at: r.get(11)?,
        ended_at: r.get(12)?,
        commitment: r.get(13)?,
        commitment_sig: r.get(14)?,
        committed_at: r.get(15)?,
        state: r.get(16)?,
        blob_sha256: r.get(17)?,
        receipt: r.get(18)?,
        receipt_sig: r.get(19)?,
        received_at: r.get(20)?,
        log_index: r.get::<_, Option<i64>>(21)?.map(|v| v as u64),
        refusals: r.get::<_, i64>(22)? as u64,
        last_refusal: r.get(23)?,
    })
}

const DEVICE_COLS: &str = "device_id, public_key_pem, role, org, enrolled_at, cert, cert_sig, revoked_at";

fn device_from_row(r: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_id: r.get(0)?,
        public_key_pem: r.get(1)?,
        role: r.get(2)?,
        org: r.get(3)?,
        enrolled_at: r.get(4)?,
        cert: r.get(5)?,
        cert_sig: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

const UPLOAD_COLS: &str = "clip_id, capability, length, upload_offset, created_at, expires_at_ms, state";

fn upload_from_row(r: &Row<'_>) -> rusqlite::Result<UploadRecord> {
    Ok(UploadRecord {
        clip_id: r.get(0)?,
        capability: r.get(1)?,
        length: r.get::<_, i64>(2)? as u64,
        offset: r.get::<_, i64>(3)? as u64,
        created_at: r.get(4)?,
        expires_at_ms: r.get(5)?,
        state: r.get(6)?,
    })
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteRecordStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteRecordStore> {
        Ok(SqliteRecordStore { conn: Mutex::new(crate::schema::open(path)?) })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Internal("record store lock poisoned".into()))
    }

    fn insert_upload(conn: &Connection, u: &UploadRecord) -> rusqlite::Result<usize> {
        conn.execute(
            "INSERT OR REPLACE INTO uploads (clip_id, capability, length, upload_offset, created_at, expires_at_ms, state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![u.clip_id, u.capability, u.length as i64, u.offset as i64, u.created_at, u.expires_at_ms, u.state],
        )
    }
}

impl RecordStore for SqliteRecordStore {
    fn insert_token(&self, token_sha256: &str, role: &str, created_at: &str, expires_at_ms: i64) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO tokens (token_sha256, role, created_at, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![token_sha256, role, created_at, expires_at_ms],
        )?;
        Ok(())
    }

    fn enroll(&self, token_sha256: &str, device_id: &str, now_ms: i64, at: &str, build: DeviceBuilder<'_>) -> Result<EnrollOutcome> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let tok: Option<(String, i64, Option<String>)> = tx
            .query_row(
                "SELECT role, expires_at_ms, used_by FROM tokens WHERE token_sha256 = ?1",
                [token_sha256],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((role, expires, used_by)) = tok else { return Ok(EnrollOutcome::InvalidToken) };
        let existing = tx
            .query_row(&format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = ?1"), [device_id], device_from_row)
            .optional()?;
        match used_by {
            Some(by) if by == device_id => {
                return Ok(match existing {
                    Some(d) if d.revoked_at.is_some() => EnrollOutcome::Revoked,
                    Some(d) => EnrollOutcome::Existing(d),
                    None => EnrollOutcome::InvalidToken,
                })
            }
            Some(_) => return Ok(EnrollOutcome::InvalidToken),
            None if expires < now_ms => return Ok(EnrollOutcome::InvalidToken),
            None => {}
        }
        if let Some(d) = existing {
            if d.revoked_at.is_some() {
                return Ok(EnrollOutcome::Revoked);
            }
            tx.execute("UPDATE tokens SET used_at = ?2, used_by = ?3 WHERE token_sha256 = ?1", params![token_sha256, at, device_id])?;
            tx.commit()?;
            return Ok(EnrollOutcome::Existing(d));
        }
        let d = build(&role)?;
        tx.execute(
            &format!("INSERT INTO devices ({DEVICE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"),
            params![d.device_id, d.public_key_pem, d.role, d.org, d.enrolled_at, d.cert, d.cert_sig],
        )?;
        tx.execute("UPDATE tokens SET used_at = ?2, used_by = ?3 WHERE token_sha256 = ?1", params![token_sha256, at, device_id])?;
        tx.commit()?;
        Ok(EnrollOutcome::Enrolled(d))
    }

    fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>> {
        Ok(self
            .conn()?
            .query_row(&format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = ?1"), [device_id], device_from_row)
            .optional()?)
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY enrolled_at, device_id"))?;
        let rows = st.query_map([], device_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_device(&self, device_id: &str, at: &str) -> Result<bool> {
        let n = self.conn()?.execute(
            "UPDATE devices SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL",
            params![device_id, at],
        )?;
        Ok(n > 0)
    }

    fn use_nonce(&self, device_id: &str, nonce: &str, ts_ms: i64, prune_before_ms: i64) -> Result<bool> {
        let conn = self.conn()?;
        conn.execute("DELETE FROM nonces WHERE ts_ms < ?1", [prune_before_ms])?;
        match conn.execute("INSERT INTO nonces (device_id, nonce, ts_ms) VALUES (?1, ?2, ?3)", params![device_id, nonce, ts_ms]) {
            Ok(_) => Ok(true),
            Err(e) if is_constraint(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn item(&self, clip_id: &str) -> Result<Option<ItemRecord>> {
        Ok(self
            .conn()?
            .query_row(&format!("SELECT {ITEM_COLS} FROM items WHERE clip_id = ?1"), [clip_id], item_from_row)
            .optional()?)
    }

    fn item_by_seq(&self, device_id: &str, seq: u64) -> Result<Option<ItemRecord>> {
        Ok(self
            .conn()?
            .query_row(
                &format!("SELECT {ITEM_COLS} FROM items WHERE device_id = ?1 AND seq = ?2"),
                params![device_id, seq as i64],
                item_from_row,
            )
            .optional()?)
    }

    fn max_seq(&self, device_id: &str) -> Result<Option<u64>> {
        let v: Option<i64> = self.conn()?.query_row("SELECT MAX(seq) FROM items WHERE device_id = ?1", [device_id], |r| r.get(0))?;
        Ok(v.map(|v| v as u64))
    }

    fn items(&self) -> Result<Vec<ItemRecord>> {
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!("SELECT {ITEM_COLS} FROM items ORDER BY rowid"))?;
        let rows = st.query_map([], item_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn insert_item(&self, i: &ItemRecord, upload: Option<&UploadRecord>) -> Result<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (mime, bytes, sha, b3) = match &i.media {
            Some(m) => (Some(m.mime.clone()), Some(m.bytes as i64), Some(m.sha256.clone()), Some(m.blake3.clone())),
            None => (None, None, None, None),
        };
        let r = tx.execute(
            &format!("INSERT INTO items ({ITEM_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, NULL, NULL, NULL, NULL, NULL, 0, NULL)"),
            params![
                i.clip_id, i.device_id, i.seq as i64, i.kind, i.manifest, i.manifest_sig, i.manifest_sha256, mime, bytes, sha, b3,
                i.started_at, i.ended_at, i.commitment, i.commitment_sig, i.committed_at, i.state
            ],
        );
        match r {
            Ok(_) => {}
            Err(e) if is_constraint(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        if let Some(u) = upload {
            Self::insert_upload(&tx, u)?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn upload_by_capability(&self, capability: &str) -> Result<Option<UploadRecord>> {
        Ok(self
            .conn()?
            .query_row(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE capability = ?1"), [capability], upload_from_row)
            .optional()?)
    }

    fn upload_for_clip(&self, clip_id: &str) -> Result<Option<UploadRecord>> {
        Ok(self
            .conn()?
            .query_row(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE clip_id = ?1"), [clip_id], upload_from_row)
            .optional()?)
    }

    fn put_upload(&self, upload: &UploadRecord) -> Result<()> {
        let conn = self.conn()?;
        Self::insert_upload(&conn, upload)?;
        Ok(())
    }

    fn set_upload_offset(&self, clip_id: &str, offset: u64) -> Result<()> {
        self.conn()?.execute("UPDATE uploads SET upload_offset = ?2 WHERE clip_id = ?1", params![clip_id, offset as i64])?;
        Ok(())
    }

    fn set_upload_state(&self, clip_id: &str, state: &str, offset: u64) -> Result<()> {
        self.conn()?.execute(
            "UPDATE uploads SET state = ?2, upload_offset = ?3 WHERE clip_id = ?1",
            params![clip_id, state, offset as i64],
        )?;
        Ok(())
    }

    fn note_refusal(&self, clip_id: &str, reason: &str) -> Result<()> {
        self.conn()?.execute(
            "UPDATE items SET refusals = refusals + 1, last_refusal = ?2 WHERE clip_id = ?1",
            params![clip_id, reason],
        )?;
        Ok(())
    }

    fn leaf_hashes(&self) -> Result<Vec<Hash>> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT idx, leaf_hash FROM log_leaves ORDER BY idx")?;
        let mut out = Vec::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let idx: i64 = r.get(0)?;
            let h: Vec<u8> = r.get(1)?;
            if idx as usize != out.len() {
                return Err(Error::Internal(format!("log leaf {} is missing", out.len())));
            }
            out.push(h.try_into().map_err(|_| Error::Internal(format!("log leaf {idx} has a bad hash")))?);
        }
        Ok(out)
    }

    fn complete_item(&self, c: &Completion) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO log_leaves (idx, clip_id, leaf, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
            params![c.log_index as i64, c.clip_id, c.leaf, c.leaf_hash.to_vec()],
        )?;
        tx.execute("INSERT OR IGNORE INTO checkpoints (tree_size, note) VALUES (?1, ?2)", params![c.tree_size as i64, c.checkpoint])?;
        let n = tx.execute(
            "UPDATE items SET state = 'received', blob_sha256 = ?2, receipt = ?3, receipt_sig = ?4, received_at = ?5, log_index = ?6 \
             WHERE clip_id = ?1 AND state = 'committed'",
            params![c.clip_id, c.blob_sha256, c.receipt, c.receipt_sig, c.received_at, c.log_index as i64],
        )?;
        if n != 1 {
            return Err(Error::Internal("completing an item that is not waiting for completion".into()));
        }
        tx.execute("UPDATE uploads SET state = 'complete', upload_offset = length WHERE clip_id = ?1", [&c.clip_id])?;
        tx.commit()?;
        Ok(())
    }

    fn put_checkpoint(&self, tree_size: u64, note: &str) -> Result<()> {
        self.conn()?
            .execute("INSERT OR IGNORE INTO checkpoints (tree_size, note) VALUES (?1, ?2)", params![tree_size as i64, note])?;
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        Ok(self
            .conn()?
            .query_row("SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .optional()?)
    }

    fn append_custody(&self, clip_id: Option<&str>, event: &str, at: &str, sign: CustodySigner<'_>) -> Result<CustodyEvent> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, String)> = tx
            .query_row("SELECT seq, hash FROM custody ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev) = match last {
            Some((s, h)) => (s as u64 + 1, Some(h)),
            None => (1, None),
        };
        let (body, sig) = sign(seq, prev.as_deref());
        let ev = CustodyEvent::from_body(body, sig)?;
        tx.execute(
            "INSERT INTO custody (seq, clip_id, event, at, body, hash, sig) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![seq as i64, clip_id, event, at, ev.body, ev.hash(), ev.sig],
        )?;
        tx.commit()?;
        Ok(ev)
    }

    fn custody(&self, clip_id: Option<&str>) -> Result<Vec<CustodyEvent>> {
        let conn = self.conn()?;
        let mut out = Vec::new();
        let mut st = match clip_id {
            Some(_) => conn.prepare("SELECT body, sig FROM custody WHERE clip_id = ?1 ORDER BY seq")?,
            None => conn.prepare("SELECT body, sig FROM custody ORDER BY seq")?,
        };
        let mut rows = match clip_id {
            Some(c) => st.query([c])?,
            None => st.query([])?,
        };
        while let Some(r) = rows.next()? {
            out.push(CustodyEvent::from_body(r.get(0)?, r.get(1)?)?);
        }
        Ok(out)
    }

    fn device_custody_head(&self, device_id: &str) -> Result<Option<(u64, String)>> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT seq, hash FROM device_custody WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1",
                [device_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    fn device_custody_event(&self, device_id: &str, seq: u64) -> Result<Option<CustodyEvent>> {
        let conn = self.conn()?;
        let row: Option<(Vec<u8>, Vec<u8>)> = conn
            .query_row("SELECT body, sig FROM device_custody WHERE device_id = ?1 AND seq = ?2", params![device_id, seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(b, s)| CustodyEvent::from_body(b, s).map_err(Into::into)).transpose()
    }

    fn append_device_custody(&self, device_id: &str, expect_head: Option<(u64, &str)>, events: &[CustodyEvent], received_at: &str) -> Result<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let head: Option<(i64, String)> = tx
            .query_row("SELECT seq, hash FROM device_custody WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1", [device_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if head.as_ref().map(|(s, h)| (*s as u64, h.as_str())) != expect_head {
            return Ok(false);
        }
        for e in events {
            tx.execute(
                "INSERT INTO device_custody (device_id, seq, clip_id, event, at, body, hash, sig, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![device_id, e.seq as i64, e.clip_id, e.event, e.at, e.body, e.hash(), e.sig, received_at],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn device_custody(&self, device_id: &str) -> Result<Vec<CustodyEvent>> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT body, sig FROM device_custody WHERE device_id = ?1 ORDER BY seq")?;
        let mut rows = st.query([device_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(CustodyEvent::from_body(r.get(0)?, r.get(1)?)?);
        }
        Ok(out)
    }
}

/// Media originals, content-addressed by SHA-256.
pub trait BlobStore: Send + Sync {
    /// Takes ownership of the fully written, fsynced file at `src` (same filesystem as the store
    /// for the local implementation) and stores it under `sha256`. If that blob already exists
    /// (identical bytes) the existing one is kept and `src` removed. Never modifies a stored blob.
    fn put_file(&self, src: &Path, sha256: &str) -> Result<()>;
    /// True if a blob is stored.
    fn contains(&self, sha256: &str) -> Result<bool>;
    /// Opens a stored blob for reading.
    fn open(&self, sha256: &str) -> Result<Box<dyn Read + Send>>;
    /// A local file path of the blob, when the store keeps blobs on the local disk.
    fn local_path(&self, sha256: &str) -> Option<PathBuf>;
}

/// Blobs in a local directory: `<root>/sha256/<2 hex>/<64 hex>`, read-only files.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl LocalBlobStore {
    /// A blob store rooted at `root` (created if needed).
    pub fn open(root: &Path) -> Result<LocalBlobStore> {
        std::fs::create_dir_all(root.join("sha256")).map_err(|e| Error::io("creating the blob directory", e))?;
        Ok(LocalBlobStore { root: root.to_path_buf() })
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf> {
        if !is_sha256_hex(sha256) {
            return Err(Error::BadRequest("a blob name must be 64 lowercase hex digits".into()));
        }
        Ok(self.root.join("sha256").join(&sha256[..2]).join(sha256))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing a directory", e))
}

impl BlobStore for LocalBlobStore {
    fn put_file(&self, src: &Path, sha256: &str) -> Result<()> {
        let dst = self.path_of(sha256)?;
        let dir = dst.parent().ok_or_else(|| Error::Internal("blob path has no parent".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating a blob directory", e))?;
        if dst.exists() {
            std::fs::remove_file(src).map_err(|e| Error::io("removing a duplicate upload", e))?;
            return Ok(());
        }
        // The source was fsynced by its writer; make it read-only, then move it into place.
        let f = std::fs::File::open(src).map_err(|e| Error::io("opening the received file", e))?;
        let mut perm = f.metadata().map_err(|e| Error::io("reading the received file's metadata", e))?.permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(src, perm).map_err(|e| Error::io("making the original read-only", e))?;
        f.sync_all().map_err(|e| Error::io("syncing the received file", e))?;
        std::fs::rename(src, &dst).map_err(|e| Error::io("moving the original into the blob store", e))?;
        sync_dir(dir)?;
        if let Some(src_dir) = src.parent() {
            sync_dir(src_dir)?;
        }
        Ok(())
    }

    fn contains(&self, sha256: &str) -> Result<bool> {
        Ok(self.path_of(sha256)?.is_file())
    }

    fn open(&self, sha256: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.path_of(sha256)?;
        let f = std::fs::File::open(p).map_err(|e| Error::io("opening a blob", e))?;
        Ok(Box::new(f))
    }

    fn local_path(&self, sha256: &str) -> Option<PathBuf> {
        self.path_of(sha256).ok()
    }
}
