//! The record store of a scaled deployment: PostgreSQL (15 or newer), shared by several
//! stateless server replicas and the command-line tools. Schema and migrations in [`schema`].
//!
//! Same semantics as [`super::SqliteRecordStore`] for every [`RecordStore`] method (the contract
//! tests in `server/tests/record_store_contract.rs` run one set of tests against both). Where
//! SQLite serialises writers with its one write lock, this store takes PostgreSQL advisory
//! locks inside the method's transaction (released at commit or rollback), at READ COMMITTED so
//! every statement after the lock sees what the previous holder committed:
//!
//! | lock | taken by | what it keeps |
//! | --- | --- | --- |
//! | [`LOG_LOCK`] | `complete_item`, `record_disposal` | one append-only log: a leaf goes at index = size or not at all ([`Error::LogMoved`]) |
//! | [`CUSTODY_LOCK`] | `append_custody` | one custody chain: next seq and prev hash read and written together |
//! | ([`DEVICE_CUSTODY_LOCK`], device) | `append_device_custody` | the head compare-and-append of one device's log |
//! | ([`ENROLL_LOCK`], device) | `enroll` | one enrolment per device; the token row is also locked (`FOR UPDATE`) |
//!
//! Nonces are taken with `INSERT … ON CONFLICT DO NOTHING`, duplicates of items refused by the
//! unique constraints, and a complete upload is never replaced (a guarded upsert). The console's
//! records need no advisory lock: a set-up token is used and a records request moved on by one
//! guarded `UPDATE` each (a concurrent one waits for the row and then finds its condition false),
//! and a new session share-locks its staff account's row, so disabling the account (which
//! updates that row and deletes the account's sessions in one transaction) either waits for the
//! session and deletes it or makes the insert find the account disabled.
//!
//! Connections come from an `r2d2` pool of the synchronous `postgres` client, each tested on
//! checkout, so broken ones (a restarted PostgreSQL) are replaced. A database that does not
//! answer (connection refused or lost, SQLSTATE class 08, 57P01–57P03, no connection within
//! [`CHECKOUT_TIMEOUT`], a lock not granted within the `lock_timeout` of [`SESSION_OPTIONS`]:
//! 55P03) is [`Error::StorageUnavailable`] (503 with `Retry-After`); anything else
//! is [`Error::Storage`] with the PostgreSQL error as source. The connection URL holds a password:
//! it is never put in an error, a log line or `Debug` output.
//!
//! Call it from blocking threads only (the server does so through `spawn_blocking`): the
//! synchronous client runs its own small runtime and panics inside an async task. Dropping the
//! store inside a runtime is safe (its connections are closed on a separate thread).
//!
//! ```no_run
//! use fieldcap_server::store::{PostgresRecordStore, RecordStore};
//! let s = PostgresRecordStore::connect("postgres://fieldcap:secret@127.0.0.1:5432/fieldcap")?;
//! assert!(s.device("00000000000000000000000000000000")?.is_none());
//! # Ok::<(), fieldcap_server::Error>(())
//! ```

pub mod import;
pub mod schema;

use super::{
    CheckpointSigner, Completion, CustodySigner, DeviceBuilder, DeviceRecord, DisposalOutcome, EnrollOutcome, FragmentHead, FragmentRow, ItemRecord, MediaInfo, PendingDisposal, SealedInfo, SharedUploadLock,
    RecordStore, RecordsRequestRecord, RetentionFacts, SessionRecord, StaffRecord, UploadRecord,
};
use crate::error::{Error, Result};
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::tlog::Hash;
use postgres::{Client, GenericClient, IsolationLevel, NoTls, Row, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use std::collections::BTreeMap;
use std::time::Duration;

/// Advisory lock key of the transparency log (held by every leaf append).
pub const LOG_LOCK: i64 = 0x4643_0002;
/// Advisory lock key of the server custody chain.
pub const CUSTODY_LOCK: i64 = 0x4643_0003;
/// First key of the per-device advisory lock of device custody logs (the second is a hash of
/// the device id).
pub const DEVICE_CUSTODY_LOCK: i32 = 0x4643_0004;
/// First key of the per-device advisory lock of enrolment.
pub const ENROLL_LOCK: i32 = 0x4643_0005;
/// First key of the per-clip session advisory lock of an upload being written (the second is a
/// hash of the clip id), held on the store's lock connection ([`UploadLocker`]).
pub const UPLOAD_LOCK: i32 = 0x4643_0006;

/// Longest wait for a new connection to PostgreSQL.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for a connection from the pool (all busy, or PostgreSQL down) before a call
/// answers [`Error::StorageUnavailable`].
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections kept at most per store (per server process).
pub const POOL_SIZE: u32 = 16;
/// Settings of every session: the longest wait for a lock (the log's, a row's) before a call
/// answers [`Error::StorageUnavailable`], and how long a session may sit idle inside a
/// transaction before PostgreSQL ends it.
pub const SESSION_OPTIONS: &str = "-c lock_timeout=30s -c idle_in_transaction_session_timeout=60s";

/// The text of [`Error::StorageUnavailable`] for this store.
const UNAVAILABLE: &str = "the record database does not answer";

type Manager = PostgresConnectionManager<NoTls>;
type Pooled = r2d2::PooledConnection<Manager>;

/// The PostgreSQL record store (see the module documentation).
pub struct PostgresRecordStore {
    /// Always `Some` until dropped (taken by `Drop`).
    pool: Option<r2d2::Pool<Manager>>,
    /// The connection that holds this process's upload locks.
    uploads: UploadLocker,
}

impl std::fmt::Debug for PostgresRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL or the pool's configuration (the password).
        f.debug_struct("PostgresRecordStore").finish_non_exhaustive()
    }
}

impl Drop for PostgresRecordStore {
    fn drop(&mut self) {
        // Closing a synchronous client blocks on its runtime, which panics inside an async
        // context (a server's state dropped by its runtime): close them on a thread of their own.
        if let Some(pool) = self.pool.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new().name("fieldcap-pg-close".into()).spawn(move || drop(pool));
            } else {
                drop(pool);
            }
        }
    }
}

/// Holds this process's upload locks ([`RecordStore::try_lock_upload`]) as session advisory
/// locks on one connection of its own, served by a thread of its own: many uploads can be
/// locked at once without taking a pooled connection each, a lock is released by a message
/// (never blocking the async thread that drops it), and a process that dies (or whose
/// connection breaks) releases all of them with its session. The caller serialises one clip's
/// lockers in the process first, so a lock is never taken twice on this session.
struct UploadLocker {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<LockRequest>>,
}

enum LockRequest {
    Try(String, std::sync::mpsc::Sender<Result<bool>>),
    Release(String),
}

impl UploadLocker {
    fn start(config: postgres::Config) -> UploadLocker {
        let (tx, rx) = std::sync::mpsc::channel::<LockRequest>();
        // The thread ends (closing its connection) when the store, and so the sender, is gone.
        let spawned = std::thread::Builder::new().name("fieldcap-pg-upload-locks".into()).spawn(move || {
            let mut client: Option<Client> = None;
            for req in rx {
                match req {
                    LockRequest::Try(clip, reply) => {
                        let r = Self::on_connection(&mut client, &config, |c| {
                            c.query_one("SELECT pg_try_advisory_lock($1, hashtext($2))", &[&UPLOAD_LOCK, &clip]).and_then(|row| row.try_get::<_, bool>(0))
                        });
                        let _ = reply.send(r);
                    }
                    LockRequest::Release(clip) => {
                        let r = Self::on_connection(&mut client, &config, |c| {
                            c.query_one("SELECT pg_advisory_unlock($1, hashtext($2))", &[&UPLOAD_LOCK, &clip]).and_then(|row| row.try_get::<_, bool>(0))
                        });
                        if !matches!(r, Ok(true)) {
                            // A broken connection already released it (with its session).
                            tracing::warn!("an upload lock was not held at its release (its connection broke meanwhile)");
                        }
                    }
                }
            }
        });
        if spawned.is_err() {
            tracing::error!("the upload lock thread could not be started; uploads will answer storage-unavailable");
        }
        UploadLocker { tx: std::sync::Mutex::new(tx) }
    }

    /// Runs `f` on the lock connection, connecting first if there is none; a connection that
    /// failed is dropped (its locks went with it) and the next request connects anew.
    /// A connection found broken on use (ended by PostgreSQL, a restart) is replaced and the
    /// request tried once more on the new one: its locks went with the old session anyway.
    fn on_connection<T>(client: &mut Option<Client>, config: &postgres::Config, f: impl Fn(&mut Client) -> std::result::Result<T, postgres::Error>) -> Result<T> {
        for attempt in 0..2 {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                *client = Some(config.connect(NoTls).map_err(map_err)?);
            }
            let c = client.as_mut().ok_or_else(|| Error::Internal("no lock connection".into()))?;
            match f(c) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let broken = e.is_closed() || c.is_closed() || e.code().is_some_and(|s| s.code().starts_with("08") || s.code().starts_with("57P0"));
                    *client = None;
                    if !broken || attempt == 1 {
                        return Err(map_err(e));
                    }
                }
            }
        }
        Err(Error::StorageUnavailable(UNAVAILABLE.into()))
    }

    fn send(&self, req: LockRequest) -> Result<()> {
        let tx = self.tx.lock().map_err(|_| Error::Internal("upload lock channel poisoned".into()))?;
        tx.send(req).map_err(|_| Error::StorageUnavailable(UNAVAILABLE.into()))
    }

    fn try_lock(&self, clip_id: &str) -> Result<Option<SharedUploadLock>> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.send(LockRequest::Try(clip_id.to_string(), reply))?;
        let got = answer.recv_timeout(CHECKOUT_TIMEOUT).map_err(|_| Error::StorageUnavailable(UNAVAILABLE.into()))??;
        if !got {
            return Ok(None);
        }
        let tx = self.tx.lock().map_err(|_| Error::Internal("upload lock channel poisoned".into()))?.clone();
        let clip = clip_id.to_string();
        Ok(Some(SharedUploadLock::releasing_with(Box::new(move || {
            let _ = tx.send(LockRequest::Release(clip));
        }))))
    }
}

/// A configuration problem, named without the URL.
#[derive(Debug)]
struct ConfigError(&'static str);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Logs connection failures of the pool (the error texts of the `postgres` crate never hold the
/// password).
#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<postgres::Error> for LogErrors {
    fn handle_error(&self, error: postgres::Error) {
        tracing::warn!(error = %error, "record database connection");
    }
}

/// True when a PostgreSQL error means the database does not answer (rather than refusing).
fn is_unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let c = code.code();
        // 55P03 lock_not_available: lock_timeout ran out (the lock's holder is stuck).
        return c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "55P03");
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = cur {
        if s.is::<std::io::Error>() {
            return true;
        }
        cur = s.source();
    }
    false
}

/// Maps a PostgreSQL error to the server's: [`Error::StorageUnavailable`] when the database does
/// not answer, [`Error::Storage`] otherwise.
pub(crate) fn map_err(e: postgres::Error) -> Error {
    if is_unavailable(&e) {
        Error::StorageUnavailable(UNAVAILABLE.into())
    } else if e.code().is_some_and(|c| c.code() == "22021") {
        // character_not_in_repertoire: a NUL character in a text (PostgreSQL's TEXT cannot hold
        // one; SQLite's can). Only a device's own strings can carry one: refuse them.
        Error::BadRequest("a text field holds a NUL character".into())
    } else {
        Error::Storage(Box::new(PgError(e)))
    }
}

/// A PostgreSQL error as the source of [`Error::Storage`]: its text names the SQLSTATE and
/// PostgreSQL's message (the client's own text is only "db error"), but not the message's
/// DETAIL, which may quote row values. The client's error is its source.
#[derive(Debug)]
pub struct PgError(pub postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(f, "PostgreSQL {} {}: {}", db.severity(), db.code().code(), db.message()),
            None => {
                write!(f, "PostgreSQL client: {}", self.0)?;
                let mut cur = std::error::Error::source(&self.0);
                while let Some(s) = cur {
                    write!(f, ": {s}")?;
                    cur = s.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// `?` for PostgreSQL results.
trait Pg<T> {
    fn pg(self) -> Result<T>;
}

impl<T> Pg<T> for std::result::Result<T, postgres::Error> {
    fn pg(self) -> Result<T> {
        self.map_err(map_err)
    }
}

/// True for an integrity constraint violation (SQLSTATE class 23: unique, foreign key, not null).
fn is_constraint(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code().starts_with("23"))
}

fn u(v: i64) -> u64 {
    v as u64
}

const ITEM_COLS: &str = "clip_id, device_id, seq, kind, manifest, manifest_sig, manifest_sha256, media_mime, media_bytes, \
     media_sha256, media_blake3, started_at, ended_at, commitment, commitment_sig, committed_at, state, blob_sha256, \
     receipt, receipt_sig, received_at, log_index, refusals, last_refusal, key_wrap, media_age_bytes";

fn item_from_row(r: &Row) -> Result<ItemRecord> {
    let mime: Option<String> = r.try_get(7).pg()?;
    let bytes: Option<i64> = r.try_get(8).pg()?;
    let sha: Option<String> = r.try_get(9).pg()?;
    let b3: Option<String> = r.try_get(10).pg()?;
    let media = match (mime, bytes, sha, b3) {
        (Some(mime), Some(bytes), Some(sha256), Some(blake3)) => Some(MediaInfo { mime, bytes: u(bytes), sha256, blake3 }),
        _ => None,
    };
    Ok(ItemRecord {
        clip_id: r.try_get(0).pg()?,
        device_id: r.try_get(1).pg()?,
        seq: u(r.try_get(2).pg()?),
        kind: r.try_get(3).pg()?,
        manifest: r.try_get(4).pg()?,
        manifest_sig: r.try_get(5).pg()?,
        manifest_sha256: r.try_get(6).pg()?,
        media,
        started_at: r.try_get(11).pg()?,
        ended_at: r.try_get(12).pg()?,
        commitment: r.try_get(13).pg()?,
        commitment_sig: r.try_get(14).pg()?,
        committed_at: r.try_get(15).pg()?,
        state: r.try_get(16).pg()?,
        blob_sha256: r.try_get(17).pg()?,
        receipt: r.try_get(18).pg()?,
        receipt_sig: r.try_get(19).pg()?,
        received_at: r.try_get(20).pg()?,
        log_index: r.try_get::<_, Option<i64>>(21).pg()?.map(u),
        refusals: u(r.try_get(22).pg()?),
        last_refusal: r.try_get(23).pg()?,
        sealed: match r.try_get::<_, Option<Vec<u8>>>(24).pg()? {
            Some(key_wrap) => Some(SealedInfo { key_wrap, media_age_bytes: r.try_get::<_, Option<i64>>(25).pg()?.map(u) }),
            None => None,
        },
    })
}

const DEVICE_COLS: &str = "device_id, public_key_pem, role, org, enrolled_at, cert, cert_sig, revoked_at";

fn device_from_row(r: &Row) -> Result<DeviceRecord> {
    Ok(DeviceRecord {
        device_id: r.try_get(0).pg()?,
        public_key_pem: r.try_get(1).pg()?,
        role: r.try_get(2).pg()?,
        org: r.try_get(3).pg()?,
        enrolled_at: r.try_get(4).pg()?,
        cert: r.try_get(5).pg()?,
        cert_sig: r.try_get(6).pg()?,
        revoked_at: r.try_get(7).pg()?,
    })
}

const UPLOAD_COLS: &str = "clip_id, capability, length, upload_offset, created_at, expires_at_ms, state";

fn upload_from_row(r: &Row) -> Result<UploadRecord> {
    Ok(UploadRecord {
        clip_id: r.try_get(0).pg()?,
        capability: r.try_get(1).pg()?,
        length: u(r.try_get(2).pg()?),
        offset: u(r.try_get(3).pg()?),
        created_at: r.try_get(4).pg()?,
        expires_at_ms: r.try_get(5).pg()?,
        state: r.try_get(6).pg()?,
    })
}

const FRAGMENT_COLS: &str = "clip_id, idx, device_id, record, sig, record_sha256, piece_offset, bytes, total_bytes, captured_at, mfhd_last, ack, ack_sig, received_at";

fn fragment_from_row(r: &Row) -> Result<FragmentRow> {
    Ok(FragmentRow {
        clip_id: r.try_get(0).pg()?,
        idx: u(r.try_get(1).pg()?),
        device_id: r.try_get(2).pg()?,
        record: r.try_get(3).pg()?,
        sig: r.try_get(4).pg()?,
        record_sha256: r.try_get(5).pg()?,
        offset: u(r.try_get(6).pg()?),
        bytes: u(r.try_get(7).pg()?),
        total_bytes: u(r.try_get(8).pg()?),
        captured_at: r.try_get(9).pg()?,
        mfhd_last: r.try_get::<_, Option<i64>>(10).pg()?.map(|v| v as u32),
        ack: r.try_get(11).pg()?,
        ack_sig: r.try_get(12).pg()?,
        received_at: r.try_get(13).pg()?,
    })
}

const STAFF_COLS: &str = "staff_id, name, role, password_hash, setup_token_sha256, setup_expires_at_ms, created_at, disabled_at";

fn staff_from_row(r: &Row) -> Result<StaffRecord> {
    Ok(StaffRecord {
        staff_id: r.try_get(0).pg()?,
        name: r.try_get(1).pg()?,
        role: r.try_get(2).pg()?,
        password_hash: r.try_get(3).pg()?,
        setup_token_sha256: r.try_get(4).pg()?,
        setup_expires_at_ms: r.try_get(5).pg()?,
        created_at: r.try_get(6).pg()?,
        disabled_at: r.try_get(7).pg()?,
    })
}

const SESSION_COLS: &str = "session_sha256, staff_id, csrf_token, created_at_ms, expires_at_ms, last_seen_ms";

fn session_from_row(r: &Row) -> Result<SessionRecord> {
    Ok(SessionRecord {
        session_sha256: r.try_get(0).pg()?,
        staff_id: r.try_get(1).pg()?,
        csrf_token: r.try_get(2).pg()?,
        created_at_ms: r.try_get(3).pg()?,
        expires_at_ms: r.try_get(4).pg()?,
        last_seen_ms: r.try_get(5).pg()?,
    })
}

const REQUEST_COLS: &str = "request_id, requester, description, received_at, created_by, created_at, clip_ids, state, package_id, \
     package_sha256, built_by, sensitive_reason, approved_by, approved_at";

fn request_from_row(r: &Row) -> Result<RecordsRequestRecord> {
    let request_id: String = r.try_get(0).pg()?;
    let clips: String = r.try_get(6).pg()?;
    Ok(RecordsRequestRecord {
        clip_ids: super::decode_clip_ids(&request_id, &clips)?,
        request_id,
        requester: r.try_get(1).pg()?,
        description: r.try_get(2).pg()?,
        received_at: r.try_get(3).pg()?,
        created_by: r.try_get(4).pg()?,
        created_at: r.try_get(5).pg()?,
        state: r.try_get(7).pg()?,
        package_id: r.try_get(8).pg()?,
        package_sha256: r.try_get(9).pg()?,
        built_by: r.try_get(10).pg()?,
        sensitive_reason: r.try_get(11).pg()?,
        approved_by: r.try_get(12).pg()?,
        approved_at: r.try_get(13).pg()?,
    })
}

fn event_from_row(r: &Row) -> Result<CustodyEvent> {
    Ok(CustodyEvent::from_body(r.try_get(0).pg()?, r.try_get(1).pg()?)?)
}

/// Inserts or replaces the upload of an item (all columns), unless `guard_complete` and the
/// stored one is complete; returns the rows written (0: refused by the guard).
const UPSERT_UPLOAD: &str = "INSERT INTO uploads (clip_id, capability, length, upload_offset, created_at, expires_at_ms, state) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (clip_id) DO UPDATE SET capability = EXCLUDED.capability, \
     length = EXCLUDED.length, upload_offset = EXCLUDED.upload_offset, created_at = EXCLUDED.created_at, \
     expires_at_ms = EXCLUDED.expires_at_ms, state = EXCLUDED.state";

fn upsert_upload(c: &mut impl GenericClient, up: &UploadRecord, guard_complete: bool) -> Result<u64> {
    let sql = if guard_complete { format!("{UPSERT_UPLOAD} WHERE uploads.state <> 'complete'") } else { UPSERT_UPLOAD.to_string() };
    c.execute(
        sql.as_str(),
        &[&up.clip_id, &up.capability, &(up.length as i64), &(up.offset as i64), &up.created_at, &up.expires_at_ms, &up.state],
    )
    .pg()
}

/// The signature-line count of a checkpoint note, in SQL: its em dashes (one per signature line,
/// none in a checkpoint body), counted in bytes so that the database encoding does not matter.
const SIGNATURE_LINES: &str = "(octet_length(note) - octet_length(replace(note, '\u{2014}', '')))";

/// The update that extends a stored checkpoint note by signature lines, only.
const EXTEND_CHECKPOINT: &str =
    "UPDATE checkpoints SET note = $2 WHERE tree_size = $1 AND octet_length($2::text) > octet_length(note) AND starts_with($2::text, note)";

impl PostgresRecordStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`),
    /// brings its schema to [`schema::VERSION`] and keeps a pool of up to [`POOL_SIZE`]
    /// connections. A database that does not answer within [`CONNECT_TIMEOUT`] is
    /// [`Error::StorageUnavailable`]; a refusal (authentication, missing database) is
    /// [`Error::Storage`] naming it. Neither ever contains the URL.
    pub fn connect(url: &str) -> Result<PostgresRecordStore> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|_| Error::Storage(Box::new(ConfigError("the record database URL is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"))))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        // The password may come from the environment, as for libpq, to keep it off command lines.
        if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        // A session that waits too long for a lock (another replica frozen or cut off inside a
        // transaction) gives up and answers StorageUnavailable; a session of ours left idle in
        // a transaction is ended by PostgreSQL, releasing its locks. Options in the URL come
        // after these and win.
        let options = match config.get_options() {
            Some(o) => format!("{SESSION_OPTIONS} {o}"),
            None => SESSION_OPTIONS.to_string(),
        };
        config.options(&options);
        config.tcp_user_timeout(Duration::from_secs(30));
        config.application_name("fieldcap-server");
        // One direct connection first: its error says why (refused, authentication), which a
        // pool's timeout would not; the migrations run on it.
        let mut first = config.connect(NoTls).map_err(map_err)?;
        schema::migrate(&mut first)?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CHECKOUT_TIMEOUT)
            .test_on_check_out(true)
            .error_handler(Box::new(LogErrors))
            .build_unchecked(PostgresConnectionManager::new(config.clone(), NoTls));
        let uploads = UploadLocker::start(config);
        Ok(PostgresRecordStore { pool: Some(pool), uploads })
    }

    fn conn(&self) -> Result<Pooled> {
        let pool = self.pool.as_ref().ok_or_else(|| Error::Internal("record store closed".into()))?;
        pool.get().map_err(|_| Error::StorageUnavailable(UNAVAILABLE.into()))
    }
}

/// Starts a READ COMMITTED transaction (every statement sees what was committed before it, so
/// reads after an advisory lock see the previous holder's writes).
pub(super) fn begin(conn: &mut Client) -> Result<Transaction<'_>> {
    conn.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().pg()
}

impl RecordStore for PostgresRecordStore {
    fn server_key_secret(&self, generate: Option<&dyn Fn() -> Vec<u8>>) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        const KEY: &str = "server_key_secret";
        let mut conn = self.conn()?;
        let read = |conn: &mut Pooled| -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
            let row = conn.query_opt("SELECT value FROM meta WHERE key = $1", &[&KEY]).pg()?;
            row.map(|r| {
                let hexed = zeroize::Zeroizing::new(r.get::<_, String>(0));
                hex::decode(hexed.as_str()).map(zeroize::Zeroizing::new).map_err(|_| Error::Internal("the stored server key is damaged".into()))
            })
            .transpose()
        };
        if let Some(k) = read(&mut conn)? {
            return Ok(Some(k));
        }
        let Some(generate) = generate else { return Ok(None) };
        let secret = zeroize::Zeroizing::new(hex::encode(generate()));
        // The first replica's key stays; a later insert changes nothing.
        conn.execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", &[&KEY, &secret.as_str()]).pg()?;
        read(&mut conn)
    }

    fn insert_token(&self, token_sha256: &str, role: &str, created_at: &str, expires_at_ms: i64) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO tokens (token_sha256, role, created_at, expires_at_ms) VALUES ($1, $2, $3, $4)",
                &[&token_sha256, &role, &created_at, &expires_at_ms],
            )
            .pg()?;
        Ok(())
    }

    fn enroll(&self, token_sha256: &str, device_id: &str, now_ms: i64, at: &str, build: DeviceBuilder<'_>) -> Result<EnrollOutcome> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        // One enrolment of a device at a time (another token for the same device waits and then
        // finds it enrolled), and the token row locked: consumed once.
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&ENROLL_LOCK, &device_id]).pg()?;
        let tok = tx
            .query_opt("SELECT role, expires_at_ms, used_by FROM tokens WHERE token_sha256 = $1 FOR UPDATE", &[&token_sha256])
            .pg()?;
        let Some(tok) = tok else { return Ok(EnrollOutcome::InvalidToken) };
        let (role, expires, used_by): (String, i64, Option<String>) = (tok.try_get(0).pg()?, tok.try_get(1).pg()?, tok.try_get(2).pg()?);
        let existing = tx
            .query_opt(&format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = $1"), &[&device_id])
            .pg()?
            .map(|r| device_from_row(&r))
            .transpose()?;
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
        let consume = "UPDATE tokens SET used_at = $2, used_by = $3 WHERE token_sha256 = $1";
        if let Some(d) = existing {
            if d.revoked_at.is_some() {
                return Ok(EnrollOutcome::Revoked);
            }
            tx.execute(consume, &[&token_sha256, &at, &device_id]).pg()?;
            tx.commit().pg()?;
            return Ok(EnrollOutcome::Existing(d));
        }
        let d = build(&role)?;
        tx.execute(
            &format!("INSERT INTO devices ({DEVICE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"),
            &[&d.device_id, &d.public_key_pem, &d.role, &d.org, &d.enrolled_at, &d.cert, &d.cert_sig],
        )
        .pg()?;
        tx.execute(consume, &[&token_sha256, &at, &device_id]).pg()?;
        tx.commit().pg()?;
        Ok(EnrollOutcome::Enrolled(d))
    }

    fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = $1"), &[&device_id])
            .pg()?
            .map(|r| device_from_row(&r))
            .transpose()
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>> {
        // Byte order, as SQLite's (not the database's locale).
        let rows = self
            .conn()?
            .query(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY enrolled_at COLLATE \"C\", device_id COLLATE \"C\""), &[])
            .pg()?;
        rows.iter().map(device_from_row).collect()
    }

    fn revoke_device(&self, device_id: &str, at: &str) -> Result<bool> {
        let n = self
            .conn()?
            .execute("UPDATE devices SET revoked_at = $2 WHERE device_id = $1 AND revoked_at IS NULL", &[&device_id, &at])
            .pg()?;
        Ok(n > 0)
    }

    fn use_nonce(&self, device_id: &str, nonce: &str, ts_ms: i64, prune_before_ms: i64) -> Result<bool> {
        let mut conn = self.conn()?;
        conn.execute("DELETE FROM nonces WHERE ts_ms < $1", &[&prune_before_ms]).pg()?;
        // Atomic across replicas: of two inserts of one nonce, exactly one writes a row.
        let n = conn
            .execute("INSERT INTO nonces (device_id, nonce, ts_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", &[&device_id, &nonce, &ts_ms])
            .pg()?;
        Ok(n == 1)
    }

    fn item(&self, clip_id: &str) -> Result<Option<ItemRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {ITEM_COLS} FROM items WHERE clip_id = $1"), &[&clip_id])
            .pg()?
            .map(|r| item_from_row(&r))
            .transpose()
    }

    fn item_by_seq(&self, device_id: &str, seq: u64) -> Result<Option<ItemRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {ITEM_COLS} FROM items WHERE device_id = $1 AND seq = $2"), &[&device_id, &(seq as i64)])
            .pg()?
            .map(|r| item_from_row(&r))
            .transpose()
    }

    fn items_of_device(&self, device_id: &str) -> Result<Vec<ItemRecord>> {
        let rows = self.conn()?.query(&format!("SELECT {ITEM_COLS} FROM items WHERE device_id = $1"), &[&device_id]).pg()?;
        rows.iter().map(item_from_row).collect()
    }

    fn max_seq(&self, device_id: &str) -> Result<Option<u64>> {
        let row = self.conn()?.query_one("SELECT MAX(seq) FROM items WHERE device_id = $1", &[&device_id]).pg()?;
        Ok(row.try_get::<_, Option<i64>>(0).pg()?.map(u))
    }

    fn items(&self) -> Result<Vec<ItemRecord>> {
        let rows = self.conn()?.query(&format!("SELECT {ITEM_COLS} FROM items ORDER BY row_order"), &[]).pg()?;
        rows.iter().map(item_from_row).collect()
    }

    fn insert_item(&self, i: &ItemRecord, upload: Option<&UploadRecord>) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        let (mime, bytes, sha, b3) = match &i.media {
            Some(m) => (Some(m.mime.as_str()), Some(m.bytes as i64), Some(m.sha256.as_str()), Some(m.blake3.as_str())),
            None => (None, None, None, None),
        };
        let r = tx.execute(
            &format!(
                "INSERT INTO items ({ITEM_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 NULL, NULL, NULL, NULL, NULL, 0, NULL, $18, $19)"
            ),
            &[
                &i.clip_id, &i.device_id, &(i.seq as i64), &i.kind, &i.manifest, &i.manifest_sig, &i.manifest_sha256, &mime, &bytes, &sha, &b3,
                &i.started_at, &i.ended_at, &i.commitment, &i.commitment_sig, &i.committed_at, &i.state,
                &i.sealed.as_ref().map(|x| x.key_wrap.clone()), &i.sealed.as_ref().and_then(|x| x.media_age_bytes).map(|v| v as i64),
            ],
        );
        match r {
            Ok(_) => {}
            // A duplicate clip id or (device, seq), or an unknown device (as SQLite): rolled back.
            Err(e) if is_constraint(&e) => return Ok(false),
            Err(e) => return Err(map_err(e)),
        }
        if let Some(up) = upload {
            upsert_upload(&mut tx, up, false)?;
        }
        tx.commit().pg()?;
        Ok(true)
    }

    fn upload_by_capability(&self, capability: &str) -> Result<Option<UploadRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE capability = $1"), &[&capability])
            .pg()?
            .map(|r| upload_from_row(&r))
            .transpose()
    }

    fn upload_for_clip(&self, clip_id: &str) -> Result<Option<UploadRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {UPLOAD_COLS} FROM uploads WHERE clip_id = $1"), &[&clip_id])
            .pg()?
            .map(|r| upload_from_row(&r))
            .transpose()
    }

    fn put_upload(&self, upload: &UploadRecord) -> Result<()> {
        // One statement: the check that the stored upload is not complete and the write are
        // atomic (the row is locked by the upsert).
        if upsert_upload(&mut *self.conn()?, upload, true)? == 0 {
            return Err(Error::Conflict("the upload of this item is complete and is never replaced".into()));
        }
        Ok(())
    }

    fn try_lock_upload(&self, clip_id: &str) -> Result<Option<SharedUploadLock>> {
        self.uploads.try_lock(clip_id)
    }

    fn set_upload_offset(&self, clip_id: &str, offset: u64) -> Result<()> {
        // A complete upload never changes (its offset is its length).
        self.conn()?
            .execute("UPDATE uploads SET upload_offset = $2 WHERE clip_id = $1 AND state <> 'complete'", &[&clip_id, &(offset as i64)])
            .pg()?;
        Ok(())
    }

    fn set_upload_state(&self, clip_id: &str, state: &str, offset: u64) -> Result<bool> {
        // A complete upload never goes back to open (or to anything else).
        let n = self
            .conn()?
            .execute(
                "UPDATE uploads SET state = $2, upload_offset = $3 WHERE clip_id = $1 AND state <> 'complete'",
                &[&clip_id, &state, &(offset as i64)],
            )
            .pg()?;
        Ok(n == 1)
    }

    fn note_refusal(&self, clip_id: &str, reason: &str) -> Result<()> {
        self.conn()?
            .execute("UPDATE items SET refusals = refusals + 1, last_refusal = $2 WHERE clip_id = $1", &[&clip_id, &reason])
            .pg()?;
        Ok(())
    }

    fn leaf_hashes(&self) -> Result<Vec<Hash>> {
        leaf_hashes_from(&mut *self.conn()?, 0)
    }

    fn leaf_hashes_since(&self, from: u64) -> Result<Vec<Hash>> {
        leaf_hashes_from(&mut *self.conn()?, from)
    }

    fn complete_item(&self, c: &Completion) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        // The log's lock is held: the leaf goes at the end of the log or not at all. (Leaves are
        // numbered without gaps, so the size is the highest index plus one.)
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]).pg()?;
        let size: i64 = tx.query_one("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves", &[]).pg()?.try_get(0).pg()?;
        if u(size) != c.log_index {
            return Err(Error::LogMoved);
        }
        tx.execute(
            "INSERT INTO log_leaves (idx, clip_id, leaf, leaf_hash) VALUES ($1, $2, $3, $4)",
            &[&(c.log_index as i64), &c.clip_id, &c.leaf, &c.leaf_hash.as_slice()],
        )
        .pg()?;
        tx.execute("INSERT INTO checkpoints (tree_size, note) VALUES ($1, $2) ON CONFLICT (tree_size) DO NOTHING", &[&(c.tree_size as i64), &c.checkpoint])
            .pg()?;
        let n = tx
            .execute(
                "UPDATE items SET state = 'received', blob_sha256 = $2, receipt = $3, receipt_sig = $4, received_at = $5, log_index = $6 \
                 WHERE clip_id = $1 AND state = 'committed'",
                &[&c.clip_id, &c.blob_sha256, &c.receipt, &c.receipt_sig, &c.received_at, &(c.log_index as i64)],
            )
            .pg()?;
        if n != 1 {
            return Err(Error::Internal("completing an item that is not waiting for completion".into()));
        }
        tx.execute("UPDATE uploads SET state = 'complete', upload_offset = length WHERE clip_id = $1", &[&c.clip_id]).pg()?;
        tx.commit().pg()?;
        Ok(())
    }

    fn put_checkpoint(&self, tree_size: u64, note: &str) -> Result<()> {
        self.conn()?
            .execute("INSERT INTO checkpoints (tree_size, note) VALUES ($1, $2) ON CONFLICT (tree_size) DO NOTHING", &[&(tree_size as i64), &note])
            .pg()?;
        Ok(())
    }

    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        let row = self.conn()?.query_opt("SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", &[]).pg()?;
        row.map(|r| Ok((u(r.try_get(0).pg()?), r.try_get(1).pg()?))).transpose()
    }

    fn add_checkpoint_signatures(&self, tree_size: u64, note: &str) -> Result<bool> {
        // Only an extension of the stored note: its text and signatures stay byte for byte.
        let n = self.conn()?.execute(EXTEND_CHECKPOINT, &[&(tree_size as i64), &note]).pg()?;
        Ok(n == 1)
    }

    fn cosign_receipt(&self, clip_id: &str, old_receipt: &[u8], tree_size: u64, note: &str, receipt: &[u8], receipt_sig: &[u8]) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        let cp = tx.execute(EXTEND_CHECKPOINT, &[&(tree_size as i64), &note]).pg()?;
        let it = tx
            .execute(
                "UPDATE items SET receipt = $3, receipt_sig = $4 WHERE clip_id = $1 AND receipt = $2",
                &[&clip_id, &old_receipt, &receipt, &receipt_sig],
            )
            .pg()?;
        if cp != 1 || it != 1 {
            return Ok(false); // dropped: rolled back
        }
        tx.commit().pg()?;
        Ok(true)
    }

    fn best_checkpoint(&self, min_size: u64) -> Result<Option<(u64, String)>> {
        let row = self
            .conn()?
            .query_opt(
                &format!("SELECT tree_size, note FROM checkpoints WHERE tree_size >= $1 ORDER BY {SIGNATURE_LINES} DESC, tree_size DESC LIMIT 1"),
                &[&(min_size as i64)],
            )
            .pg()?;
        row.map(|r| Ok((u(r.try_get(0).pg()?), r.try_get(1).pg()?))).transpose()
    }

    fn append_custody(&self, clip_id: Option<&str>, event: &str, at: &str, sign: CustodySigner<'_>) -> Result<CustodyEvent> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        // The chain's lock is held: the next position and prev hash are read and written together.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CUSTODY_LOCK]).pg()?;
        let last = tx.query_opt("SELECT seq, hash FROM custody ORDER BY seq DESC LIMIT 1", &[]).pg()?;
        let (seq, prev) = match last {
            Some(r) => (u(r.try_get::<_, i64>(0).pg()?) + 1, Some(r.try_get::<_, String>(1).pg()?)),
            None => (1, None),
        };
        let (body, sig) = sign(seq, prev.as_deref());
        let ev = CustodyEvent::from_body(body, sig)?;
        tx.execute(
            "INSERT INTO custody (seq, clip_id, event, at, body, hash, sig) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&(seq as i64), &clip_id, &event, &at, &ev.body, &ev.hash(), &ev.sig],
        )
        .pg()?;
        tx.commit().pg()?;
        Ok(ev)
    }

    fn first_custody(&self) -> Result<Option<CustodyEvent>> {
        let row = self.conn()?.query_opt("SELECT body, sig FROM custody ORDER BY seq LIMIT 1", &[]).pg()?;
        row.as_ref().map(event_from_row).transpose()
    }

    fn custody_clip_events(&self, events: &[&str]) -> Result<std::collections::HashSet<(String, String)>> {
        let names: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        let rows = self
            .conn()?
            .query("SELECT DISTINCT clip_id, event FROM custody WHERE clip_id IS NOT NULL AND event = ANY($1)", &[&names])
            .pg()?;
        rows.iter().map(|r| Ok((r.try_get(0).pg()?, r.try_get(1).pg()?))).collect()
    }

    fn custody(&self, clip_id: Option<&str>) -> Result<Vec<CustodyEvent>> {
        let mut conn = self.conn()?;
        let rows = match clip_id {
            Some(c) => conn.query("SELECT body, sig FROM custody WHERE clip_id = $1 ORDER BY seq", &[&c]).pg()?,
            None => conn.query("SELECT body, sig FROM custody ORDER BY seq", &[]).pg()?,
        };
        rows.iter().map(event_from_row).collect()
    }

    fn device_custody_head(&self, device_id: &str) -> Result<Option<(u64, String)>> {
        let row = self
            .conn()?
            .query_opt("SELECT seq, hash FROM device_custody WHERE device_id = $1 ORDER BY seq DESC LIMIT 1", &[&device_id])
            .pg()?;
        row.map(|r| Ok((u(r.try_get(0).pg()?), r.try_get(1).pg()?))).transpose()
    }

    fn device_custody_event(&self, device_id: &str, seq: u64) -> Result<Option<CustodyEvent>> {
        let row = self
            .conn()?
            .query_opt("SELECT body, sig FROM device_custody WHERE device_id = $1 AND seq = $2", &[&device_id, &(seq as i64)])
            .pg()?;
        row.map(|r| event_from_row(&r)).transpose()
    }

    fn append_device_custody(&self, device_id: &str, expect_head: Option<(u64, &str)>, events: &[CustodyEvent], received_at: &str) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        // The device's lock is held: the head compared is the head appended to.
        tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&DEVICE_CUSTODY_LOCK, &device_id]).pg()?;
        let head = tx
            .query_opt("SELECT seq, hash FROM device_custody WHERE device_id = $1 ORDER BY seq DESC LIMIT 1", &[&device_id])
            .pg()?
            .map(|r| Ok::<_, Error>((u(r.try_get(0).pg()?), r.try_get::<_, String>(1).pg()?)))
            .transpose()?;
        if head.as_ref().map(|(s, h)| (*s, h.as_str())) != expect_head {
            return Ok(false);
        }
        let st = tx
            .prepare("INSERT INTO device_custody (device_id, seq, clip_id, event, at, body, hash, sig, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .pg()?;
        for e in events {
            tx.execute(&st, &[&device_id, &(e.seq as i64), &e.clip_id, &e.event, &e.at, &e.body, &e.hash(), &e.sig, &received_at]).pg()?;
        }
        tx.commit().pg()?;
        Ok(true)
    }

    fn device_custody(&self, device_id: &str) -> Result<Vec<CustodyEvent>> {
        let rows = self.conn()?.query("SELECT body, sig FROM device_custody WHERE device_id = $1 ORDER BY seq", &[&device_id]).pg()?;
        rows.iter().map(event_from_row).collect()
    }

    fn retention_policy(&self) -> Result<BTreeMap<String, i64>> {
        let rows = self.conn()?.query("SELECT category, days FROM retention_policy", &[]).pg()?;
        rows.iter().map(|r| Ok((r.try_get(0).pg()?, r.try_get(1).pg()?))).collect()
    }

    fn set_retention_policy(&self, category: &str, days: i64, at: &str) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO retention_policy (category, days, set_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (category) DO UPDATE SET days = EXCLUDED.days, set_at = EXCLUDED.set_at",
                &[&category, &days, &at],
            )
            .pg()?;
        Ok(())
    }

    fn add_hold(&self, clip_id: &str, reason: &str, at: &str) -> Result<()> {
        self.conn()?.execute("INSERT INTO holds (clip_id, reason, held_at) VALUES ($1, $2, $3)", &[&clip_id, &reason, &at]).pg()?;
        Ok(())
    }

    fn release_holds(&self, clip_id: &str, reason: &str, at: &str) -> Result<u64> {
        self.conn()?
            .execute(
                "UPDATE holds SET released_at = $2, release_reason = $3 WHERE clip_id = $1 AND released_at IS NULL",
                &[&clip_id, &at, &reason],
            )
            .pg()
    }

    fn add_referrals(&self, clip_ids: &[String], package_id: &str, recipient: &str, at: &str) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        let st = tx
            .prepare("INSERT INTO referrals (clip_id, package_id, recipient, at) VALUES ($1, $2, $3, $4) ON CONFLICT (clip_id, package_id) DO NOTHING")
            .pg()?;
        for id in clip_ids {
            tx.execute(&st, &[id, &package_id, &recipient, &at]).pg()?;
        }
        tx.commit().pg()?;
        Ok(())
    }

    fn retention_facts(&self, clip_id: &str) -> Result<RetentionFacts> {
        let mut conn = self.conn()?;
        let (active_holds, referrals) = hold_and_referral_counts(&mut *conn, clip_id)?;
        let disposed_at = conn
            .query_opt("SELECT disposed_at FROM disposals WHERE clip_id = $1", &[&clip_id])
            .pg()?
            .map(|r| r.try_get::<_, String>(0).pg())
            .transpose()?;
        Ok(RetentionFacts { active_holds, referrals, disposed_at })
    }

    fn record_disposal(&self, clip_id: &str, leaf_name: &str, leaf: &[u8], disposed_at: &str, sign: CheckpointSigner<'_>) -> Result<DisposalOutcome> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK]).pg()?;
        // Checked again under the log's lock: a hold or export committed before wins.
        let (holds, referrals) = hold_and_referral_counts(&mut tx, clip_id)?;
        if holds > 0 {
            return Ok(DisposalOutcome::Held);
        }
        if referrals > 0 {
            return Ok(DisposalOutcome::Referred);
        }
        let existing = tx.query_opt("SELECT idx FROM log_leaves WHERE clip_id = $1", &[&leaf_name]).pg()?;
        let log_index = match existing {
            Some(r) => u(r.try_get(0).pg()?),
            None => append_leaf(&mut tx, leaf_name, leaf, sign)?,
        };
        // The disposal row is written in the same transaction as the leaf; custody follows.
        tx.execute(
            "INSERT INTO disposals (clip_id, disposed_at, log_index, custody_seq) VALUES ($1, $2, $3, 0)",
            &[&clip_id, &disposed_at, &(log_index as i64)],
        )
        .pg()?;
        tx.commit().pg()?;
        Ok(DisposalOutcome::Recorded { log_index })
    }

    fn pending_disposals(&self) -> Result<Vec<PendingDisposal>> {
        let rows = self.conn()?.query("SELECT clip_id, log_index FROM disposals WHERE custody_seq = 0 ORDER BY log_index", &[]).pg()?;
        rows.iter().map(|r| Ok(PendingDisposal { clip_id: r.try_get(0).pg()?, log_index: u(r.try_get(1).pg()?) })).collect()
    }

    fn set_disposal_custody_seq(&self, clip_id: &str, custody_seq: u64) -> Result<()> {
        self.conn()?
            .execute("UPDATE disposals SET custody_seq = $2 WHERE clip_id = $1", &[&clip_id, &(custody_seq as i64)])
            .pg()?;
        Ok(())
    }

    fn blob_needed_by_another_item(&self, blob_sha256: &str, clip_id: &str) -> Result<bool> {
        self.conn()?
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM items i WHERE i.blob_sha256 = $1 AND i.clip_id <> $2 \
                 AND NOT EXISTS (SELECT 1 FROM disposals d WHERE d.clip_id = i.clip_id))",
                &[&blob_sha256, &clip_id],
            )
            .pg()?
            .try_get(0)
            .pg()
    }

    fn insert_staff(&self, s: &StaffRecord) -> Result<bool> {
        // A name, id (or set-up token) that exists writes nothing: unique constraints.
        let n = self
            .conn()?
            .execute(
                &format!("INSERT INTO staff ({STAFF_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"),
                &[&s.staff_id, &s.name, &s.role, &s.password_hash, &s.setup_token_sha256, &s.setup_expires_at_ms, &s.created_at, &s.disabled_at],
            )
            .pg()?;
        Ok(n == 1)
    }

    fn staff_by_id(&self, staff_id: &str) -> Result<Option<StaffRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {STAFF_COLS} FROM staff WHERE staff_id = $1"), &[&staff_id])
            .pg()?
            .map(|r| staff_from_row(&r))
            .transpose()
    }

    fn staff_by_name(&self, name: &str) -> Result<Option<StaffRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {STAFF_COLS} FROM staff WHERE name = $1"), &[&name])
            .pg()?
            .map(|r| staff_from_row(&r))
            .transpose()
    }

    fn staff_by_setup_token(&self, token_sha256: &str) -> Result<Option<StaffRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {STAFF_COLS} FROM staff WHERE setup_token_sha256 = $1"), &[&token_sha256])
            .pg()?
            .map(|r| staff_from_row(&r))
            .transpose()
    }

    fn staff_list(&self) -> Result<Vec<StaffRecord>> {
        // Byte order, as SQLite's (not the database's locale).
        let rows = self.conn()?.query(&format!("SELECT {STAFF_COLS} FROM staff ORDER BY name COLLATE \"C\""), &[]).pg()?;
        rows.iter().map(staff_from_row).collect()
    }

    fn complete_staff_setup(&self, staff_id: &str, token_sha256: &str, password_hash: &str, now_ms: i64) -> Result<bool> {
        // One statement: of two uses of a token at once, the second finds it cleared (the row
        // lock makes it wait, then its condition is checked again on the new row).
        let n = self
            .conn()?
            .execute(
                "UPDATE staff SET password_hash = $3, setup_token_sha256 = NULL, setup_expires_at_ms = NULL \
                 WHERE staff_id = $1 AND setup_token_sha256 = $2 AND setup_expires_at_ms > $4 AND disabled_at IS NULL",
                &[&staff_id, &token_sha256, &password_hash, &now_ms],
            )
            .pg()?;
        Ok(n == 1)
    }

    fn set_staff_disabled(&self, staff_id: &str, disabled_at: Option<&str>) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        // The update locks the account's row: a session insert waiting on it (FOR SHARE in
        // `insert_session`) then finds the account disabled; one committed before is deleted
        // below (READ COMMITTED: this statement sees it).
        let n = tx.execute("UPDATE staff SET disabled_at = $2 WHERE staff_id = $1", &[&staff_id, &disabled_at]).pg()?;
        if n == 0 {
            return Ok(false);
        }
        if disabled_at.is_some() {
            tx.execute("DELETE FROM sessions WHERE staff_id = $1", &[&staff_id]).pg()?;
        }
        tx.commit().pg()?;
        Ok(true)
    }

    fn reset_staff_setup(&self, staff_id: &str, token_sha256: &str, expires_at_ms: i64) -> Result<bool> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        // Locks the account's row like a disabling: a login waiting on it then finds no
        // password, and a session committed before is deleted below.
        let n = tx
            .execute(
                "UPDATE staff SET password_hash = NULL, setup_token_sha256 = $2, setup_expires_at_ms = $3 WHERE staff_id = $1 AND disabled_at IS NULL",
                &[&staff_id, &token_sha256, &expires_at_ms],
            )
            .pg()?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute("DELETE FROM sessions WHERE staff_id = $1", &[&staff_id]).pg()?;
        tx.commit().pg()?;
        Ok(true)
    }

    fn insert_session(&self, s: &SessionRecord) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = begin(&mut conn)?;
        // The account's row is share-locked until commit: a disabling waits for this session
        // and deletes it, or ran first and this finds the account disabled.
        let live = tx.query_opt("SELECT 1 FROM staff WHERE staff_id = $1 AND disabled_at IS NULL FOR SHARE", &[&s.staff_id]).pg()?;
        if live.is_none() {
            return Err(Error::Conflict("no session for a staff account that is unknown or disabled".into()));
        }
        let n = tx
            .execute(
                &format!("INSERT INTO sessions ({SESSION_COLS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"),
                &[&s.session_sha256, &s.staff_id, &s.csrf_token, &s.created_at_ms, &s.expires_at_ms, &s.last_seen_ms],
            )
            .pg()?;
        if n != 1 {
            return Err(Error::Conflict("that session exists already".into()));
        }
        tx.commit().pg()?;
        Ok(())
    }

    fn session(&self, session_sha256: &str) -> Result<Option<SessionRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {SESSION_COLS} FROM sessions WHERE session_sha256 = $1"), &[&session_sha256])
            .pg()?
            .map(|r| session_from_row(&r))
            .transpose()
    }

    fn touch_session(&self, session_sha256: &str, last_seen_ms: i64) -> Result<()> {
        self.conn()?.execute("UPDATE sessions SET last_seen_ms = $2 WHERE session_sha256 = $1", &[&session_sha256, &last_seen_ms]).pg()?;
        Ok(())
    }

    fn delete_session(&self, session_sha256: &str) -> Result<()> {
        self.conn()?.execute("DELETE FROM sessions WHERE session_sha256 = $1", &[&session_sha256]).pg()?;
        Ok(())
    }

    fn delete_sessions_before(&self, now_ms: i64) -> Result<u64> {
        self.conn()?.execute("DELETE FROM sessions WHERE expires_at_ms <= $1", &[&now_ms]).pg()
    }

    fn insert_records_request(&self, r: &RecordsRequestRecord) -> Result<bool> {
        let clips = super::encode_clip_ids(&r.clip_ids)?;
        let n = self
            .conn()?
            .execute(
                &format!(
                    "INSERT INTO records_requests ({REQUEST_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                     ON CONFLICT (request_id) DO NOTHING"
                ),
                &[
                    &r.request_id,
                    &r.requester,
                    &r.description,
                    &r.received_at,
                    &r.created_by,
                    &r.created_at,
                    &clips,
                    &r.state,
                    &r.package_id,
                    &r.package_sha256,
                    &r.built_by,
                    &r.sensitive_reason,
                    &r.approved_by,
                    &r.approved_at,
                ],
            )
            .pg()?;
        Ok(n == 1)
    }

    fn records_request(&self, request_id: &str) -> Result<Option<RecordsRequestRecord>> {
        self.conn()?
            .query_opt(&format!("SELECT {REQUEST_COLS} FROM records_requests WHERE request_id = $1"), &[&request_id])
            .pg()?
            .map(|r| request_from_row(&r))
            .transpose()
    }

    fn records_requests(&self) -> Result<Vec<RecordsRequestRecord>> {
        // Byte order, as SQLite's (not the database's locale).
        let rows = self
            .conn()?
            .query(
                &format!("SELECT {REQUEST_COLS} FROM records_requests ORDER BY received_at COLLATE \"C\" DESC, request_id COLLATE \"C\" DESC"),
                &[],
            )
            .pg()?;
        rows.iter().map(request_from_row).collect()
    }

    fn update_records_request(&self, r: &RecordsRequestRecord, expect_state: &str) -> Result<bool> {
        let clips = super::encode_clip_ids(&r.clip_ids)?;
        // One statement: a concurrent update of the same row waits for the row lock, then its
        // state condition is checked again on the row as the first one left it.
        let n = self
            .conn()?
            .execute(
                "UPDATE records_requests SET requester = $2, description = $3, received_at = $4, created_by = $5, created_at = $6, \
                 clip_ids = $7, state = $8, package_id = $9, package_sha256 = $10, built_by = $11, sensitive_reason = $12, \
                 approved_by = $13, approved_at = $14 WHERE request_id = $1 AND state = $15",
                &[
                    &r.request_id,
                    &r.requester,
                    &r.description,
                    &r.received_at,
                    &r.created_by,
                    &r.created_at,
                    &clips,
                    &r.state,
                    &r.package_id,
                    &r.package_sha256,
                    &r.built_by,
                    &r.sensitive_reason,
                    &r.approved_by,
                    &r.approved_at,
                    &expect_state,
                ],
            )
            .pg()?;
        Ok(n == 1)
    }

    fn insert_fragment(&self, f: &FragmentRow) -> Result<bool> {
        // An existing (clip, index) writes nothing: the primary key.
        let n = self
            .conn()?
            .execute(
                &format!("INSERT INTO fragments ({FRAGMENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (clip_id, idx) DO NOTHING"),
                &[
                    &f.clip_id,
                    &(f.idx as i64),
                    &f.device_id,
                    &f.record,
                    &f.sig,
                    &f.record_sha256,
                    &(f.offset as i64),
                    &(f.bytes as i64),
                    &(f.total_bytes as i64),
                    &f.captured_at,
                    &f.mfhd_last.map(i64::from),
                    &f.ack,
                    &f.ack_sig,
                    &f.received_at,
                ],
            )
            .pg()?;
        Ok(n == 1)
    }

    fn fragments(&self, clip_id: &str) -> Result<Vec<FragmentRow>> {
        let rows = self.conn()?.query(&format!("SELECT {FRAGMENT_COLS} FROM fragments WHERE clip_id = $1 ORDER BY idx"), &[&clip_id]).pg()?;
        rows.iter().map(fragment_from_row).collect()
    }

    fn fragment(&self, clip_id: &str, idx: u64) -> Result<Option<FragmentRow>> {
        self.conn()?
            .query_opt(&format!("SELECT {FRAGMENT_COLS} FROM fragments WHERE clip_id = $1 AND idx = $2"), &[&clip_id, &(idx as i64)])
            .pg()?
            .map(|r| fragment_from_row(&r))
            .transpose()
    }

    fn last_fragment(&self, clip_id: &str) -> Result<Option<FragmentRow>> {
        self.conn()?
            .query_opt(&format!("SELECT {FRAGMENT_COLS} FROM fragments WHERE clip_id = $1 ORDER BY idx DESC LIMIT 1"), &[&clip_id])
            .pg()?
            .map(|r| fragment_from_row(&r))
            .transpose()
    }

    fn fragment_heads(&self) -> Result<Vec<FragmentHead>> {
        // Byte order, as SQLite's (not the database's locale).
        let rows = self
            .conn()?
            .query(
                "SELECT clip_id, device_id, COUNT(*)::BIGINT, MAX(total_bytes), MAX(captured_at COLLATE \"C\"), MAX(received_at COLLATE \"C\") FROM fragments \
                 GROUP BY clip_id, device_id ORDER BY clip_id COLLATE \"C\", device_id COLLATE \"C\"",
                &[],
            )
            .pg()?;
        rows.iter()
            .map(|r| {
                Ok(FragmentHead {
                    clip_id: r.try_get(0).pg()?,
                    device_id: r.try_get(1).pg()?,
                    count: u(r.try_get(2).pg()?),
                    total_bytes: u(r.try_get(3).pg()?),
                    last_captured_at: r.try_get(4).pg()?,
                    last_received_at: r.try_get(5).pg()?,
                })
            })
            .collect()
    }

    fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn()?
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .pg()?
            .map(|r| r.try_get(0).pg())
            .transpose()
    }

    fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn()?
            .execute("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", &[&key, &value])
            .pg()?;
        Ok(())
    }
}

/// (active legal holds, referrals) of an item.
fn hold_and_referral_counts(c: &mut impl GenericClient, clip_id: &str) -> Result<(u64, u64)> {
    let r = c
        .query_one(
            "SELECT (SELECT COUNT(*) FROM holds WHERE clip_id = $1 AND released_at IS NULL), (SELECT COUNT(*) FROM referrals WHERE clip_id = $1)",
            &[&clip_id],
        )
        .pg()?;
    Ok((u(r.try_get(0).pg()?), u(r.try_get(1).pg()?)))
}

/// Appends a leaf to the log inside `tx` (which holds [`LOG_LOCK`]), with the checkpoint `sign`
/// makes for the new size. Used by processes other than the server (retention); running servers
/// catch up on their next log access. Returns the leaf's index.
fn append_leaf(tx: &mut Transaction<'_>, leaf_name: &str, leaf: &[u8], sign: CheckpointSigner<'_>) -> Result<u64> {
    let mut hashes = leaf_hashes_from(tx, 0)?;
    let latest_note = tx
        .query_opt("SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", &[])
        .pg()?
        .map(|r| r.try_get::<_, String>(0).pg())
        .transpose()?;
    let h = fieldcap_evidence::tlog::leaf_hash(leaf);
    hashes.push(h);
    let index = hashes.len() as u64 - 1;
    let note = sign(&hashes, latest_note.as_deref())?;
    tx.execute(
        "INSERT INTO log_leaves (idx, clip_id, leaf, leaf_hash) VALUES ($1, $2, $3, $4)",
        &[&(index as i64), &leaf_name, &leaf, &h.as_slice()],
    )
    .pg()?;
    tx.execute("INSERT INTO checkpoints (tree_size, note) VALUES ($1, $2) ON CONFLICT (tree_size) DO NOTHING", &[&(index as i64 + 1), &note])
        .pg()?;
    Ok(index)
}

/// The leaf hashes from index `from` on, in log order (one indexed range scan); a gap or a
/// malformed hash is a damaged log.
fn leaf_hashes_from(c: &mut impl GenericClient, from: u64) -> Result<Vec<Hash>> {
    let rows = c.query("SELECT idx, leaf_hash FROM log_leaves WHERE idx >= $1 ORDER BY idx", &[&(from as i64)]).pg()?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let idx: i64 = r.try_get(0).pg()?;
        if u(idx) != from + out.len() as u64 {
            return Err(Error::Internal(format!("log leaf {} is missing", from + out.len() as u64)));
        }
        let h: &[u8] = r.try_get(1).pg()?;
        out.push(h.try_into().map_err(|_| Error::Internal(format!("log leaf {idx} has a damaged hash")))?);
    }
    Ok(out)
}
