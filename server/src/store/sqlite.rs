//! The embedded record store: one SQLite database in WAL mode (`records.sqlite`), schema and
//! migrations in [`schema`]. All row SQL of the server lives here.

pub mod schema;

use super::{
    CheckpointSigner, Completion, CustodySigner, DeviceBuilder, DeviceRecord, DisposalOutcome, EnrollOutcome, FragmentHead, FragmentRow, ItemRecord, MediaInfo, PendingDisposal, SealedInfo,
    RecordStore, RecordsRequestRecord, RetentionFacts, SessionRecord, StaffRecord, UploadRecord,
};
use crate::error::{Error, Result};
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::tlog::Hash;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

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
     receipt, receipt_sig, received_at, log_index, refusals, last_refusal, key_wrap, media_age_bytes";

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
        sealed: r
            .get::<_, Option<Vec<u8>>>(24)?
            .map(|key_wrap| -> rusqlite::Result<SealedInfo> { Ok(SealedInfo { key_wrap, media_age_bytes: r.get::<_, Option<i64>>(25)?.map(|v| v as u64) }) })
            .transpose()?,
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

const FRAGMENT_COLS: &str = "clip_id, idx, device_id, record, sig, record_sha256, piece_offset, bytes, total_bytes, captured_at, mfhd_last, ack, ack_sig, received_at";

fn fragment_from_row(r: &Row<'_>) -> rusqlite::Result<FragmentRow> {
    Ok(FragmentRow {
        clip_id: r.get(0)?,
        idx: r.get::<_, i64>(1)? as u64,
        device_id: r.get(2)?,
        record: r.get(3)?,
        sig: r.get(4)?,
        record_sha256: r.get(5)?,
        offset: r.get::<_, i64>(6)? as u64,
        bytes: r.get::<_, i64>(7)? as u64,
        total_bytes: r.get::<_, i64>(8)? as u64,
        captured_at: r.get(9)?,
        mfhd_last: r.get::<_, Option<i64>>(10)?.map(|v| v as u32),
        ack: r.get(11)?,
        ack_sig: r.get(12)?,
        received_at: r.get(13)?,
    })
}

const STAFF_COLS: &str = "staff_id, name, role, password_hash, setup_token_sha256, setup_expires_at_ms, created_at, disabled_at";

fn staff_from_row(r: &Row<'_>) -> rusqlite::Result<StaffRecord> {
    Ok(StaffRecord {
        staff_id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        password_hash: r.get(3)?,
        setup_token_sha256: r.get(4)?,
        setup_expires_at_ms: r.get(5)?,
        created_at: r.get(6)?,
        disabled_at: r.get(7)?,
    })
}

const SESSION_COLS: &str = "session_sha256, staff_id, csrf_token, created_at_ms, expires_at_ms, last_seen_ms";

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        session_sha256: r.get(0)?,
        staff_id: r.get(1)?,
        csrf_token: r.get(2)?,
        created_at_ms: r.get(3)?,
        expires_at_ms: r.get(4)?,
        last_seen_ms: r.get(5)?,
    })
}

const REQUEST_COLS: &str = "request_id, requester, description, received_at, created_by, created_at, clip_ids, state, package_id, \
     package_sha256, built_by, sensitive_reason, approved_by, approved_at";

/// A records request row; `clip_ids` is still its JSON text ([`super::decode_clip_ids`]).
fn request_from_row(r: &Row<'_>) -> rusqlite::Result<(RecordsRequestRecord, String)> {
    Ok((
        RecordsRequestRecord {
            request_id: r.get(0)?,
            requester: r.get(1)?,
            description: r.get(2)?,
            received_at: r.get(3)?,
            created_by: r.get(4)?,
            created_at: r.get(5)?,
            clip_ids: Vec::new(),
            state: r.get(7)?,
            package_id: r.get(8)?,
            package_sha256: r.get(9)?,
            built_by: r.get(10)?,
            sensitive_reason: r.get(11)?,
            approved_by: r.get(12)?,
            approved_at: r.get(13)?,
        },
        r.get(6)?,
    ))
}

fn request_with_clips((mut r, clips): (RecordsRequestRecord, String)) -> Result<RecordsRequestRecord> {
    r.clip_ids = super::decode_clip_ids(&r.request_id, &clips)?;
    Ok(r)
}

/// SQLite errors leave the store as [`Error::Storage`].
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Storage(Box::new(e))
    }
}

/// `execute` and `query_row` through the connection's cache of prepared statements: the same
/// few dozen statements run for every request, and preparing (parsing) one cost more server CPU
/// than running it (docs/BENCHMARKS.md, fleet throughput).
trait Cached {
    fn exec_c<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize>;
    fn row_c<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(&self, sql: &str, p: P, f: F) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec_c<P: rusqlite::Params>(&self, sql: &str, p: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(p)
    }

    fn row_c<T, P: rusqlite::Params, F: FnOnce(&Row<'_>) -> rusqlite::Result<T>>(&self, sql: &str, p: P, f: F) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(p, f)
    }
}

/// Room in the cache of prepared statements for every distinct statement this store runs.
const STATEMENT_CACHE: usize = 128;

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteRecordStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteRecordStore> {
        let conn = schema::open(path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteRecordStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Internal("record store lock poisoned".into()))
    }

    fn insert_upload(conn: &Connection, u: &UploadRecord) -> rusqlite::Result<usize> {
        conn.exec_c(
            "INSERT OR REPLACE INTO uploads (clip_id, capability, length, upload_offset, created_at, expires_at_ms, state) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![u.clip_id, u.capability, u.length as i64, u.offset as i64, u.created_at, u.expires_at_ms, u.state],
        )
    }
}

impl RecordStore for SqliteRecordStore {
    fn insert_token(&self, token_sha256: &str, role: &str, created_at: &str, expires_at_ms: i64) -> Result<()> {
        self.conn()?.exec_c(
            "INSERT INTO tokens (token_sha256, role, created_at, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![token_sha256, role, created_at, expires_at_ms],
        )?;
        Ok(())
    }

    fn enroll(&self, token_sha256: &str, device_id: &str, now_ms: i64, at: &str, build: DeviceBuilder<'_>) -> Result<EnrollOutcome> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let tok: Option<(String, i64, Option<String>)> = tx
            .row_c(
                "SELECT role, expires_at_ms, used_by FROM tokens WHERE token_sha256 = ?1",
                [token_sha256],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((role, expires, used_by)) = tok else { return Ok(EnrollOutcome::InvalidToken) };
        let existing = tx
            .row_c(&format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = ?1"), [device_id], device_from_row)
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
            tx.exec_c("UPDATE tokens SET used_at = ?2, used_by = ?3 WHERE token_sha256 = ?1", params![token_sha256, at, device_id])?;
            tx.commit()?;
            return Ok(EnrollOutcome::Existing(d));
        }
        let d = build(&role)?;
        tx.exec_c(
            &format!("INSERT INTO devices ({DEVICE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"),
            params![d.device_id, d.public_key_pem, d.role, d.org, d.enrolled_at, d.cert, d.cert_sig],
        )?;
        tx.exec_c("UPDATE tokens SET used_at = ?2, used_by = ?3 WHERE token_sha256 = ?1", params![token_sha256, at, device_id])?;
        tx.commit()?;
        Ok(EnrollOutcome::Enrolled(d))
    }

    fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>> {
        Ok(self
            .conn()?
            .row_c(&format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = ?1"), [device_id], device_from_row)
            .optional()?)
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY enrolled_at, device_id"))?;
        let rows = st.query_map([], device_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn revoke_device(&self, device_id: &str, at: &str) -> Result<bool> {
        let n = self.conn()?.exec_c(
            "UPDATE devices SET revoked_at = ?2 WHERE device_id = ?1 AND revoked_at IS NULL",
            params![device_id, at],
        )?;
        Ok(n > 0)
    }

    fn use_nonce(&self, device_id: &str, nonce: &str, ts_ms: i64, prune_before_ms: i64) -> Result<bool> {
        let conn = self.conn()?;
        conn.exec_c("DELETE FROM nonces WHERE ts_ms < ?1", [prune_before_ms])?;
        match conn.exec_c("INSERT INTO nonces (device_id, nonce, ts_ms) VALUES (?1, ?2, ?3)", params![device_id, nonce, ts_ms]) {
            Ok(_) => Ok(true),
            Err(e) if is_constraint(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn item(&self, clip_id: &str) -> Result<Option<ItemRecord>> {
        Ok(self
            .conn()?
            .row_c(&format!("SELECT {ITEM_COLS} FROM items WHERE clip_id = ?1"), [clip_id], item_from_row)
            .optional()?)
    }

    fn item_by_seq(&self, device_id: &str, seq: u64) -> Result<Option<ItemRecord>> {
        Ok(self
            .conn()?
            .row_c(
                &format!("SELECT {ITEM_COLS} FROM items WHERE device_id = ?1 AND seq = ?2"),
                params![device_id, seq as i64],
                item_from_row,
            )
            .optional()?)
    }

    fn items_of_device(&self, device_id: &str) -> Result<Vec<ItemRecord>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&format!("SELECT {ITEM_COLS} FROM items WHERE device_id = ?1"))?;
        let rows = st.query_map([device_id], item_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn max_seq(&self, device_id: &str) -> Result<Option<u64>> {
        let v: Option<i64> = self.conn()?.row_c("SELECT MAX(seq) FROM items WHERE device_id = ?1", [device_id], |r| r.get(0))?;
        Ok(v.map(|v| v as u64))
    }

    fn items(&self) -> Result<Vec<ItemRecord>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&format!("SELECT {ITEM_COLS} FROM items ORDER BY rowid"))?;
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
        let r = tx.exec_c(
            &format!("INSERT INTO items ({ITEM_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, NULL, NULL, NULL, NULL, NULL, 0, NULL, ?18, ?19)"),
            params![
                i.clip_id, i.device_id, i.seq as i64, i.kind, i.manifest, i.manifest_sig, i.manifest_sha256, mime, bytes, sha, b3,
                i.started_at, i.ended_at, i.commitment, i.commitment_sig, i.committed_at, i.state,
                i.sealed.as_ref().map(|x| x.key_wrap.clone()), i.sealed.as_ref().and_then(|x| x.media_age_bytes).map(|v| v as i64)
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
            .row_c(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE capability = ?1"), [capability], upload_from_row)
            .optional()?)
    }

    fn upload_for_clip(&self, clip_id: &str) -> Result<Option<UploadRecord>> {
        Ok(self
            .conn()?
            .row_c(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE clip_id = ?1"), [clip_id], upload_from_row)
            .optional()?)
    }

    fn put_upload(&self, upload: &UploadRecord) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let complete: Option<String> =
            tx.row_c("SELECT state FROM uploads WHERE clip_id = ?1 AND state = 'complete'", [&upload.clip_id], |r| r.get(0)).optional()?;
        if complete.is_some() {
            return Err(Error::Conflict("the upload of this item is complete and is never replaced".into()));
        }
        Self::insert_upload(&tx, upload)?;
        tx.commit()?;
        Ok(())
    }

    fn set_upload_offset(&self, clip_id: &str, offset: u64) -> Result<()> {
        // A complete upload never changes (its offset is its length).
        self.conn()?.exec_c("UPDATE uploads SET upload_offset = ?2 WHERE clip_id = ?1 AND state != 'complete'", params![clip_id, offset as i64])?;
        Ok(())
    }

    fn set_upload_state(&self, clip_id: &str, state: &str, offset: u64) -> Result<bool> {
        // A complete upload never goes back to open (or to anything else).
        let n = self.conn()?.exec_c(
            "UPDATE uploads SET state = ?2, upload_offset = ?3 WHERE clip_id = ?1 AND state != 'complete'",
            params![clip_id, state, offset as i64],
        )?;
        Ok(n == 1)
    }

    fn note_refusal(&self, clip_id: &str, reason: &str) -> Result<()> {
        self.conn()?.exec_c(
            "UPDATE items SET refusals = refusals + 1, last_refusal = ?2 WHERE clip_id = ?1",
            params![clip_id, reason],
        )?;
        Ok(())
    }

    fn leaf_hashes(&self) -> Result<Vec<Hash>> {
        leaf_hashes_of(&*self.conn()?)
    }

    fn leaf_hashes_since(&self, from: u64) -> Result<Vec<Hash>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached("SELECT idx, leaf_hash FROM log_leaves WHERE idx >= ?1 ORDER BY idx")?;
        let mut rows = st.query([from as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let idx: i64 = r.get(0)?;
            if idx as u64 != from + out.len() as u64 {
                return Err(Error::Internal(format!("log leaf {} is missing", from + out.len() as u64)));
            }
            let h: Vec<u8> = r.get(1)?;
            out.push(h.as_slice().try_into().map_err(|_| Error::Internal(format!("log leaf {idx} has a damaged hash")))?);
        }
        Ok(out)
    }

    fn complete_item(&self, c: &Completion) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // The write lock is held: the leaf goes at the end of the log or not at all.
        // (Leaves are numbered without gaps, so the size is the highest index plus one.)
        let size: i64 = tx.row_c("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves", [], |r| r.get(0))?;
        if size as u64 != c.log_index {
            return Err(Error::LogMoved);
        }
        tx.exec_c(
            "INSERT INTO log_leaves (idx, clip_id, leaf, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
            params![c.log_index as i64, c.clip_id, c.leaf, c.leaf_hash.to_vec()],
        )?;
        tx.exec_c("INSERT OR IGNORE INTO checkpoints (tree_size, note) VALUES (?1, ?2)", params![c.tree_size as i64, c.checkpoint])?;
        let n = tx.exec_c(
            "UPDATE items SET state = 'received', blob_sha256 = ?2, receipt = ?3, receipt_sig = ?4, received_at = ?5, log_index = ?6 \
             WHERE clip_id = ?1 AND state = 'committed'",
            params![c.clip_id, c.blob_sha256, c.receipt, c.receipt_sig, c.received_at, c.log_index as i64],
        )?;
        if n != 1 {
            return Err(Error::Internal("completing an item that is not waiting for completion".into()));
        }
        tx.exec_c("UPDATE uploads SET state = 'complete', upload_offset = length WHERE clip_id = ?1", [&c.clip_id])?;
        tx.commit()?;
        Ok(())
    }

    fn put_checkpoint(&self, tree_size: u64, note: &str) -> Result<()> {
        self.conn()?
            .exec_c("INSERT OR IGNORE INTO checkpoints (tree_size, note) VALUES (?1, ?2)", params![tree_size as i64, note])?;
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        Ok(self
            .conn()?
            .row_c("SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })
            .optional()?)
    }

    fn add_checkpoint_signatures(&self, tree_size: u64, note: &str) -> Result<bool> {
        // Only an extension of the stored note: its text and signatures stay byte for byte.
        let n = self.conn()?.exec_c(
            "UPDATE checkpoints SET note = ?2 WHERE tree_size = ?1 AND length(?2) > length(note) AND substr(?2, 1, length(note)) = note",
            params![tree_size as i64, note],
        )?;
        Ok(n == 1)
    }

    fn cosign_receipt(&self, clip_id: &str, old_receipt: &[u8], tree_size: u64, note: &str, receipt: &[u8], receipt_sig: &[u8]) -> Result<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let cp = tx.exec_c(
            "UPDATE checkpoints SET note = ?2 WHERE tree_size = ?1 AND length(?2) > length(note) AND substr(?2, 1, length(note)) = note",
            params![tree_size as i64, note],
        )?;
        let it = tx.exec_c(
            "UPDATE items SET receipt = ?3, receipt_sig = ?4 WHERE clip_id = ?1 AND receipt = ?2",
            params![clip_id, old_receipt, receipt, receipt_sig],
        )?;
        if cp != 1 || it != 1 {
            return Ok(false); // dropped: rolled back
        }
        tx.commit()?;
        Ok(true)
    }

    fn best_checkpoint(&self, min_size: u64) -> Result<Option<(u64, String)>> {
        // Signature lines are counted by their em dashes (one per line; none in a checkpoint body).
        Ok(self
            .conn()?
            .row_c(
                "SELECT tree_size, note FROM checkpoints WHERE tree_size >= ?1 \
                 ORDER BY length(note) - length(replace(note, '\u{2014}', '')) DESC, tree_size DESC LIMIT 1",
                [min_size as i64],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    fn append_custody(&self, clip_id: Option<&str>, event: &str, at: &str, sign: CustodySigner<'_>) -> Result<CustodyEvent> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, String)> = tx
            .row_c("SELECT seq, hash FROM custody ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev) = match last {
            Some((s, h)) => (s as u64 + 1, Some(h)),
            None => (1, None),
        };
        let (body, sig) = sign(seq, prev.as_deref());
        let ev = CustodyEvent::from_body(body, sig)?;
        tx.exec_c(
            "INSERT INTO custody (seq, clip_id, event, at, body, hash, sig) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![seq as i64, clip_id, event, at, ev.body, ev.hash(), ev.sig],
        )?;
        tx.commit()?;
        Ok(ev)
    }

    fn first_custody(&self) -> Result<Option<CustodyEvent>> {
        let conn = self.conn()?;
        let row: Option<(Vec<u8>, Vec<u8>)> = conn
            .prepare_cached("SELECT body, sig FROM custody ORDER BY seq LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(b, s)| Ok(CustodyEvent::from_body(b, s)?)).transpose()
    }

    fn custody_clip_events(&self, events: &[&str]) -> Result<std::collections::HashSet<(String, String)>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached("SELECT DISTINCT clip_id, event FROM custody WHERE clip_id IS NOT NULL AND event = ?1")?;
        let mut out = std::collections::HashSet::new();
        for e in events {
            let mut rows = st.query([e])?;
            while let Some(r) = rows.next()? {
                out.insert((r.get(0)?, r.get(1)?));
            }
        }
        Ok(out)
    }

    fn custody(&self, clip_id: Option<&str>) -> Result<Vec<CustodyEvent>> {
        let conn = self.conn()?;
        let mut out = Vec::new();
        let mut st = match clip_id {
            Some(_) => conn.prepare_cached("SELECT body, sig FROM custody WHERE clip_id = ?1 ORDER BY seq")?,
            None => conn.prepare_cached("SELECT body, sig FROM custody ORDER BY seq")?,
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
            .row_c(
                "SELECT seq, hash FROM device_custody WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1",
                [device_id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    fn device_custody_event(&self, device_id: &str, seq: u64) -> Result<Option<CustodyEvent>> {
        let conn = self.conn()?;
        let row: Option<(Vec<u8>, Vec<u8>)> = conn
            .row_c("SELECT body, sig FROM device_custody WHERE device_id = ?1 AND seq = ?2", params![device_id, seq as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(b, s)| CustodyEvent::from_body(b, s).map_err(Into::into)).transpose()
    }

    fn append_device_custody(&self, device_id: &str, expect_head: Option<(u64, &str)>, events: &[CustodyEvent], received_at: &str) -> Result<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let head: Option<(i64, String)> = tx
            .row_c("SELECT seq, hash FROM device_custody WHERE device_id = ?1 ORDER BY seq DESC LIMIT 1", [device_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if head.as_ref().map(|(s, h)| (*s as u64, h.as_str())) != expect_head {
            return Ok(false);
        }
        for e in events {
            tx.exec_c(
                "INSERT INTO device_custody (device_id, seq, clip_id, event, at, body, hash, sig, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![device_id, e.seq as i64, e.clip_id, e.event, e.at, e.body, e.hash(), e.sig, received_at],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn device_custody(&self, device_id: &str) -> Result<Vec<CustodyEvent>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached("SELECT body, sig FROM device_custody WHERE device_id = ?1 ORDER BY seq")?;
        let mut rows = st.query([device_id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(CustodyEvent::from_body(r.get(0)?, r.get(1)?)?);
        }
        Ok(out)
    }

    fn retention_policy(&self) -> Result<BTreeMap<String, i64>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached("SELECT category, days FROM retention_policy ORDER BY category")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?.collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
        Ok(rows)
    }

    fn set_retention_policy(&self, category: &str, days: i64, at: &str) -> Result<()> {
        self.conn()?.exec_c(
            "INSERT INTO retention_policy (category, days, set_at) VALUES (?1, ?2, ?3) ON CONFLICT(category) DO UPDATE SET days = ?2, set_at = ?3",
            params![category, days, at],
        )?;
        Ok(())
    }

    fn add_hold(&self, clip_id: &str, reason: &str, at: &str) -> Result<()> {
        self.conn()?.exec_c("INSERT INTO holds (clip_id, reason, held_at) VALUES (?1, ?2, ?3)", params![clip_id, reason, at])?;
        Ok(())
    }

    fn release_holds(&self, clip_id: &str, reason: &str, at: &str) -> Result<u64> {
        let n = self.conn()?.exec_c(
            "UPDATE holds SET released_at = ?2, release_reason = ?3 WHERE clip_id = ?1 AND released_at IS NULL",
            params![clip_id, at, reason],
        )?;
        Ok(n as u64)
    }

    fn add_referrals(&self, clip_ids: &[String], package_id: &str, recipient: &str, at: &str) -> Result<()> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        for id in clip_ids {
            tx.exec_c(
                "INSERT OR IGNORE INTO referrals (clip_id, package_id, recipient, at) VALUES (?1, ?2, ?3, ?4)",
                params![id, package_id, recipient, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn retention_facts(&self, clip_id: &str) -> Result<RetentionFacts> {
        let conn = self.conn()?;
        let (active_holds, referrals) = hold_and_referral_counts(&conn, clip_id)?;
        let disposed_at: Option<String> =
            conn.row_c("SELECT disposed_at FROM disposals WHERE clip_id = ?1", [clip_id], |r| r.get(0)).optional()?;
        Ok(RetentionFacts { active_holds, referrals, disposed_at })
    }

    fn record_disposal(&self, clip_id: &str, leaf_name: &str, leaf: &[u8], disposed_at: &str, sign: CheckpointSigner<'_>) -> Result<DisposalOutcome> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Checked again under the write lock: a hold or export made meanwhile wins.
        let (holds, referrals) = hold_and_referral_counts(&tx, clip_id)?;
        if holds > 0 {
            return Ok(DisposalOutcome::Held);
        }
        if referrals > 0 {
            return Ok(DisposalOutcome::Referred);
        }
        let existing: Option<i64> = tx.row_c("SELECT idx FROM log_leaves WHERE clip_id = ?1", [leaf_name], |r| r.get(0)).optional()?;
        let log_index = match existing {
            Some(i) => i as u64,
            None => append_leaf(&tx, leaf_name, leaf, sign)?,
        };
        // The disposal row is written in the same transaction as the leaf; custody follows.
        tx.exec_c(
            "INSERT INTO disposals (clip_id, disposed_at, log_index, custody_seq) VALUES (?1, ?2, ?3, 0)",
            params![clip_id, disposed_at, log_index as i64],
        )?;
        tx.commit()?;
        Ok(DisposalOutcome::Recorded { log_index })
    }

    fn pending_disposals(&self) -> Result<Vec<PendingDisposal>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached("SELECT clip_id, log_index FROM disposals WHERE custody_seq = 0 ORDER BY log_index")?;
        let rows = st
            .query_map([], |r| Ok(PendingDisposal { clip_id: r.get(0)?, log_index: r.get::<_, i64>(1)? as u64 }))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn set_disposal_custody_seq(&self, clip_id: &str, custody_seq: u64) -> Result<()> {
        self.conn()?.exec_c("UPDATE disposals SET custody_seq = ?2 WHERE clip_id = ?1", params![clip_id, custody_seq as i64])?;
        Ok(())
    }

    fn blob_needed_by_another_item(&self, blob_sha256: &str, clip_id: &str) -> Result<bool> {
        let n: i64 = self.conn()?.row_c(
            "SELECT COUNT(*) FROM items WHERE blob_sha256 = ?1 AND clip_id != ?2 AND clip_id NOT IN (SELECT clip_id FROM disposals)",
            params![blob_sha256, clip_id],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    fn insert_staff(&self, s: &StaffRecord) -> Result<bool> {
        let r = self.conn()?.exec_c(
            &format!("INSERT INTO staff ({STAFF_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![s.staff_id, s.name, s.role, s.password_hash, s.setup_token_sha256, s.setup_expires_at_ms, s.created_at, s.disabled_at],
        );
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_constraint(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn staff_by_id(&self, staff_id: &str) -> Result<Option<StaffRecord>> {
        Ok(self.conn()?.row_c(&format!("SELECT {STAFF_COLS} FROM staff WHERE staff_id = ?1"), [staff_id], staff_from_row).optional()?)
    }

    fn staff_by_name(&self, name: &str) -> Result<Option<StaffRecord>> {
        Ok(self.conn()?.row_c(&format!("SELECT {STAFF_COLS} FROM staff WHERE name = ?1"), [name], staff_from_row).optional()?)
    }

    fn staff_by_setup_token(&self, token_sha256: &str) -> Result<Option<StaffRecord>> {
        Ok(self
            .conn()?
            .row_c(&format!("SELECT {STAFF_COLS} FROM staff WHERE setup_token_sha256 = ?1"), [token_sha256], staff_from_row)
            .optional()?)
    }

    fn staff_list(&self) -> Result<Vec<StaffRecord>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&format!("SELECT {STAFF_COLS} FROM staff ORDER BY name"))?;
        let rows = st.query_map([], staff_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn complete_staff_setup(&self, staff_id: &str, token_sha256: &str, password_hash: &str, now_ms: i64) -> Result<bool> {
        let n = self.conn()?.exec_c(
            "UPDATE staff SET password_hash = ?3, setup_token_sha256 = NULL, setup_expires_at_ms = NULL \
             WHERE staff_id = ?1 AND setup_token_sha256 = ?2 AND setup_expires_at_ms > ?4 AND disabled_at IS NULL",
            params![staff_id, token_sha256, password_hash, now_ms],
        )?;
        Ok(n == 1)
    }

    fn set_staff_disabled(&self, staff_id: &str, disabled_at: Option<&str>) -> Result<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.exec_c("UPDATE staff SET disabled_at = ?2 WHERE staff_id = ?1", params![staff_id, disabled_at])?;
        if n == 0 {
            return Ok(false);
        }
        if disabled_at.is_some() {
            tx.exec_c("DELETE FROM sessions WHERE staff_id = ?1", [staff_id])?;
        }
        tx.commit()?;
        Ok(true)
    }

    fn reset_staff_setup(&self, staff_id: &str, token_sha256: &str, expires_at_ms: i64) -> Result<bool> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.exec_c(
            "UPDATE staff SET password_hash = NULL, setup_token_sha256 = ?2, setup_expires_at_ms = ?3 WHERE staff_id = ?1 AND disabled_at IS NULL",
            params![staff_id, token_sha256, expires_at_ms],
        )?;
        if n == 0 {
            return Ok(false);
        }
        tx.exec_c("DELETE FROM sessions WHERE staff_id = ?1", [staff_id])?;
        tx.commit()?;
        Ok(true)
    }

    fn insert_session(&self, s: &SessionRecord) -> Result<()> {
        // One statement: SQLite's one write lock orders it with a disabling.
        let r = self.conn()?.exec_c(
            &format!(
                "INSERT INTO sessions ({SESSION_COLS}) SELECT ?1, staff_id, ?3, ?4, ?5, ?6 FROM staff \
                 WHERE staff_id = ?2 AND disabled_at IS NULL"
            ),
            params![s.session_sha256, s.staff_id, s.csrf_token, s.created_at_ms, s.expires_at_ms, s.last_seen_ms],
        );
        match r {
            Ok(1) => Ok(()),
            Ok(_) => Err(Error::Conflict("no session for a staff account that is unknown or disabled".into())),
            Err(e) if is_constraint(&e) => Err(Error::Conflict("that session exists already".into())),
            Err(e) => Err(e.into()),
        }
    }

    fn session(&self, session_sha256: &str) -> Result<Option<SessionRecord>> {
        Ok(self
            .conn()?
            .row_c(&format!("SELECT {SESSION_COLS} FROM sessions WHERE session_sha256 = ?1"), [session_sha256], session_from_row)
            .optional()?)
    }

    fn touch_session(&self, session_sha256: &str, last_seen_ms: i64) -> Result<()> {
        self.conn()?.exec_c("UPDATE sessions SET last_seen_ms = ?2 WHERE session_sha256 = ?1", params![session_sha256, last_seen_ms])?;
        Ok(())
    }

    fn delete_session(&self, session_sha256: &str) -> Result<()> {
        self.conn()?.exec_c("DELETE FROM sessions WHERE session_sha256 = ?1", [session_sha256])?;
        Ok(())
    }

    fn delete_sessions_before(&self, now_ms: i64) -> Result<u64> {
        Ok(self.conn()?.exec_c("DELETE FROM sessions WHERE expires_at_ms <= ?1", [now_ms])? as u64)
    }

    fn insert_records_request(&self, r: &RecordsRequestRecord) -> Result<bool> {
        let clips = super::encode_clip_ids(&r.clip_ids)?;
        let res = self.conn()?.exec_c(
            &format!("INSERT INTO records_requests ({REQUEST_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            params![
                r.request_id,
                r.requester,
                r.description,
                r.received_at,
                r.created_by,
                r.created_at,
                clips,
                r.state,
                r.package_id,
                r.package_sha256,
                r.built_by,
                r.sensitive_reason,
                r.approved_by,
                r.approved_at
            ],
        );
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_constraint(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn records_request(&self, request_id: &str) -> Result<Option<RecordsRequestRecord>> {
        let row = self
            .conn()?
            .row_c(&format!("SELECT {REQUEST_COLS} FROM records_requests WHERE request_id = ?1"), [request_id], request_from_row)
            .optional()?;
        row.map(request_with_clips).transpose()
    }

    fn records_requests(&self) -> Result<Vec<RecordsRequestRecord>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&format!("SELECT {REQUEST_COLS} FROM records_requests ORDER BY received_at DESC, request_id DESC"))?;
        let rows = st.query_map([], request_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(request_with_clips).collect()
    }

    fn update_records_request(&self, r: &RecordsRequestRecord, expect_state: &str) -> Result<bool> {
        let clips = super::encode_clip_ids(&r.clip_ids)?;
        let n = self.conn()?.exec_c(
            "UPDATE records_requests SET requester = ?2, description = ?3, received_at = ?4, created_by = ?5, created_at = ?6, \
             clip_ids = ?7, state = ?8, package_id = ?9, package_sha256 = ?10, built_by = ?11, sensitive_reason = ?12, \
             approved_by = ?13, approved_at = ?14 WHERE request_id = ?1 AND state = ?15",
            params![
                r.request_id,
                r.requester,
                r.description,
                r.received_at,
                r.created_by,
                r.created_at,
                clips,
                r.state,
                r.package_id,
                r.package_sha256,
                r.built_by,
                r.sensitive_reason,
                r.approved_by,
                r.approved_at,
                expect_state
            ],
        )?;
        Ok(n == 1)
    }

    fn insert_fragment(&self, f: &FragmentRow) -> Result<bool> {
        let r = self.conn()?.exec_c(
            &format!("INSERT INTO fragments ({FRAGMENT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            params![
                f.clip_id,
                f.idx as i64,
                f.device_id,
                f.record,
                f.sig,
                f.record_sha256,
                f.offset as i64,
                f.bytes as i64,
                f.total_bytes as i64,
                f.captured_at,
                f.mfhd_last.map(i64::from),
                f.ack,
                f.ack_sig,
                f.received_at
            ],
        );
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_constraint(&e) && self.fragment(&f.clip_id, f.idx)?.is_some() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn fragments(&self, clip_id: &str) -> Result<Vec<FragmentRow>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(&format!("SELECT {FRAGMENT_COLS} FROM fragments WHERE clip_id = ?1 ORDER BY idx"))?;
        let rows = st.query_map([clip_id], fragment_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn fragment(&self, clip_id: &str, idx: u64) -> Result<Option<FragmentRow>> {
        Ok(self
            .conn()?
            .row_c(&format!("SELECT {FRAGMENT_COLS} FROM fragments WHERE clip_id = ?1 AND idx = ?2"), params![clip_id, idx as i64], fragment_from_row)
            .optional()?)
    }

    fn last_fragment(&self, clip_id: &str) -> Result<Option<FragmentRow>> {
        Ok(self
            .conn()?
            .row_c(&format!("SELECT {FRAGMENT_COLS} FROM fragments WHERE clip_id = ?1 ORDER BY idx DESC LIMIT 1"), [clip_id], fragment_from_row)
            .optional()?)
    }

    fn fragment_heads(&self) -> Result<Vec<FragmentHead>> {
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT clip_id, device_id, COUNT(*), MAX(total_bytes), MAX(captured_at), MAX(received_at) FROM fragments \
             GROUP BY clip_id, device_id ORDER BY clip_id, device_id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(FragmentHead {
                    clip_id: r.get(0)?,
                    device_id: r.get(1)?,
                    count: r.get::<_, i64>(2)? as u64,
                    total_bytes: r.get::<_, i64>(3)? as u64,
                    last_captured_at: r.get(4)?,
                    last_received_at: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn()?.row_c("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn()?.exec_c(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

/// (active legal holds, referrals) of an item.
fn hold_and_referral_counts(conn: &Connection, clip_id: &str) -> Result<(u64, u64)> {
    let holds: i64 = conn.row_c("SELECT COUNT(*) FROM holds WHERE clip_id = ?1 AND released_at IS NULL", [clip_id], |r| r.get(0))?;
    let referrals: i64 = conn.row_c("SELECT COUNT(*) FROM referrals WHERE clip_id = ?1", [clip_id], |r| r.get(0))?;
    Ok((holds as u64, referrals as u64))
}

/// Appends a leaf to the log inside `tx`, with the checkpoint `sign` makes for the new size.
/// Used by processes other than the server (retention); a running server catches up on its next
/// log access. Returns the leaf's index.
fn append_leaf(tx: &rusqlite::Transaction<'_>, leaf_name: &str, leaf: &[u8], sign: CheckpointSigner<'_>) -> Result<u64> {
    let mut hashes = leaf_hashes_of(tx)?;
    let latest_note: Option<String> =
        tx.row_c("SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", [], |r| r.get(0)).optional()?;
    let h = fieldcap_evidence::tlog::leaf_hash(leaf);
    hashes.push(h);
    let index = hashes.len() as u64 - 1;
    let note = sign(&hashes, latest_note.as_deref())?;
    tx.exec_c(
        "INSERT INTO log_leaves (idx, clip_id, leaf, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
        params![index as i64, leaf_name, leaf, h.to_vec()],
    )?;
    tx.exec_c("INSERT OR IGNORE INTO checkpoints (tree_size, note) VALUES (?1, ?2)", params![index as i64 + 1, note])?;
    Ok(index)
}

/// Every leaf hash in log order; a gap or a malformed hash is a damaged log.
fn leaf_hashes_of(conn: &Connection) -> Result<Vec<Hash>> {
    let mut st = conn.prepare_cached("SELECT idx, leaf_hash FROM log_leaves ORDER BY idx")?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod witness_tests {
    use super::*;

    #[test]
    fn cosignatures_only_extend_a_stored_checkpoint_and_the_best_covered_one_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteRecordStore::open(&dir.path().join("records.sqlite")).unwrap();
        let note = |size: u64, lines: usize| {
            let mut n = format!("o\n{size}\nAAAA\n\n\u{2014} o AAAAAAA=\n");
            for i in 0..lines {
                n.push_str(&format!("\u{2014} w{i} BBBBBBB=\n"));
            }
            n
        };
        for size in 1..=4 {
            s.put_checkpoint(size, &note(size, 0)).unwrap();
        }
        // An extension is stored; anything else (another text, a changed or dropped line, the
        // same note again, a size not on record) is not.
        assert!(s.add_checkpoint_signatures(2, &note(2, 2)).unwrap());
        assert!(!s.add_checkpoint_signatures(2, &note(2, 2)).unwrap());
        assert!(!s.add_checkpoint_signatures(2, &note(2, 1)).unwrap());
        assert!(!s.add_checkpoint_signatures(3, &note(3, 1).replace("\n3\n", "\n7\n")).unwrap());
        assert!(!s.add_checkpoint_signatures(3, &format!("{}\u{2014} w9 CCCCCCC=\n", note(3, 0).replace("AAAAAAA=", "AAAAAAB="))).unwrap());
        assert!(!s.add_checkpoint_signatures(9, &note(9, 1)).unwrap());
        assert!(s.add_checkpoint_signatures(4, &note(4, 1)).unwrap());
        assert_eq!(s.latest_checkpoint().unwrap().unwrap().1, note(4, 1));
        // The best covering checkpoint: most signature lines, the newest among equals.
        assert_eq!(s.best_checkpoint(1).unwrap().unwrap().0, 2);
        assert_eq!(s.best_checkpoint(3).unwrap().unwrap().0, 4);
        assert!(s.add_checkpoint_signatures(4, &note(4, 2)).unwrap());
        assert_eq!(s.best_checkpoint(1).unwrap().unwrap().0, 4);
        assert!(s.best_checkpoint(5).unwrap().is_none());
    }
}
