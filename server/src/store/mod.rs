//! Storage behind traits: [`RecordStore`] for records, [`BlobStore`] for media originals and
//! partial uploads.
//!
//! Every server module — endpoints, tus, receipts, custody, incidents, retention and disposal,
//! package export, [`crate::records::Records`] — reaches stored data only through these traits,
//! so a PostgreSQL record store or an `object_store` blob store (S3, GCS, Azure) is a new file in
//! this folder implementing them, plus a constructor beside [`Stores::open_embedded`], the one
//! place where backends are chosen. The embedded defaults are [`SqliteRecordStore`] (one WAL
//! database, `records.sqlite`, with its schema and migrations in [`sqlite::schema`]; all row SQL
//! of the server is in [`sqlite`]) and [`LocalBlobStore`] (a content-addressed directory,
//! `blobs/sha256/<2 hex>/<64 hex>`, each original fsynced, renamed into place and made
//! read-only, never modified; partial uploads in `uploads/`; [`blobs`]). Each store maps its own
//! errors to [`crate::Error::Storage`] (or I/O) at this boundary.
//!
//! Operations that must be atomic are single trait methods (one transaction each), because other
//! processes (`fieldcap token`, `fieldcap dispose`, package export) write the same records while
//! a server runs: enrolment consumes the token and stores the device together; completing an
//! item stores its log leaf, checkpoint, receipt and upload state together; a custody event
//! takes the next chain position inside the same transaction that writes it; a disposal checks
//! holds and referrals again, appends its log leaf with a checkpoint and records itself together.
//! Where such a method needs something only the caller can make (a signature over the next
//! chain position, a device certificate for the token's role, a checkpoint over the new tree),
//! it takes a closure ([`CustodySigner`], [`DeviceBuilder`], [`CheckpointSigner`]) and calls it
//! inside the transaction.
//!
//! ```
//! use fieldcap_server::store::{RecordStore, SqliteRecordStore};
//! let dir = tempfile::tempdir().unwrap();
//! let s = SqliteRecordStore::open(&dir.path().join("records.sqlite")).unwrap();
//! s.insert_token("ab", "monitor", "2025-06-07T18:04:05.000Z", i64::MAX).unwrap();
//! assert!(s.device("00000000000000000000000000000000").unwrap().is_none());
//! ```

pub mod backup;
pub mod blobs;
pub mod migrate;
pub mod postgres;
pub mod s3;
pub mod sqlite;

pub use blobs::LocalBlobStore;
pub use self::postgres::PostgresRecordStore;
pub use s3::{S3Access, S3BlobStore};
pub use sqlite::SqliteRecordStore;

use crate::error::{Error, Result};
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::hashing::{hash_reader, Digests};
use fieldcap_evidence::tlog::Hash;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// For an item first submitted sealed (`POST /v1/manifests/sealed`): its key wrap and the
    /// length of its media's age file. `None` for an item first submitted in plaintext.
    pub sealed: Option<SealedInfo>,
}

/// What the server keeps of a sealed item's encryption (no secret: the item key is only stored
/// wrapped to the escrow key, and unwrapped again when needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedInfo {
    /// The item key wrapped to an escrow recipient, exactly as the device sent it (an age file).
    pub key_wrap: Vec<u8>,
    /// Length of the media's age file (the tus upload's length), for an item with media.
    pub media_age_bytes: Option<u64>,
}

/// A deployment-wide upload lock ([`RecordStore::try_lock_upload`]), released when dropped.
pub struct SharedUploadLock {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl SharedUploadLock {
    /// A lock that holds nothing beyond the process (a store only one process opens).
    pub fn none() -> SharedUploadLock {
        SharedUploadLock { release: None }
    }

    /// A lock released by calling `release` (which must not block: it may run on an async
    /// runtime's thread).
    pub fn releasing_with(release: Box<dyn FnOnce() + Send>) -> SharedUploadLock {
        SharedUploadLock { release: Some(release) }
    }
}

impl Drop for SharedUploadLock {
    fn drop(&mut self) {
        if let Some(f) = self.release.take() {
            f();
        }
    }
}

impl std::fmt::Debug for SharedUploadLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedUploadLock").field("shared", &self.release.is_some()).finish()
    }
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

/// What retention needs to know about one item besides its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionFacts {
    /// Legal holds placed and not released.
    pub active_holds: u64,
    /// Full packages the item was referred in (a referred item is never disposed).
    pub referrals: u64,
    /// When the item was disposed, if it was.
    pub disposed_at: Option<String>,
}

/// A disposal whose record and log leaf are stored but whose custody event is not (a crash in
/// between); `crate::retention` finishes it on its next run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDisposal {
    /// Item disposed.
    pub clip_id: String,
    /// Index of its disposal leaf in the log.
    pub log_index: u64,
}

/// Result of [`RecordStore::record_disposal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisposalOutcome {
    /// The disposal and its log leaf are on record.
    Recorded {
        /// Index of the disposal leaf.
        log_index: u64,
    },
    /// A legal hold was placed meanwhile; nothing was recorded.
    Held,
    /// The item was referred meanwhile; nothing was recorded.
    Referred,
}

/// A council-office staff account of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffRecord {
    /// Account id (UUIDv7 string), primary key.
    pub staff_id: String,
    /// The login name: unique (case-sensitive).
    pub name: String,
    /// `clerk`, `custodian`, `supervisor` or `auditor` (the store does not validate it).
    pub role: String,
    /// Argon2id PHC string; `None` until the account is set up.
    pub password_hash: Option<String>,
    /// SHA-256 hex of the one-time set-up token; `None` once used.
    pub setup_token_sha256: Option<String>,
    /// When the set-up token expires, Unix ms.
    pub setup_expires_at_ms: Option<i64>,
    /// When created (RFC 3339).
    pub created_at: String,
    /// When disabled (RFC 3339), if it is.
    pub disabled_at: Option<String>,
}

/// A console login session (the cookie value is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 hex of the session cookie's value, primary key.
    pub session_sha256: String,
    /// The staff account logged in.
    pub staff_id: String,
    /// The session's CSRF token (random, base64url).
    pub csrf_token: String,
    /// When created, Unix ms.
    pub created_at_ms: i64,
    /// Absolute end, Unix ms.
    pub expires_at_ms: i64,
    /// Last request seen, Unix ms (for the idle timeout).
    pub last_seen_ms: i64,
}

/// A California Public Records Act request handled in the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsRequestRecord {
    /// Request id (UUIDv7), primary key.
    pub request_id: String,
    /// Who asked.
    pub requester: String,
    /// What was asked for.
    pub description: String,
    /// When received (RFC 3339).
    pub received_at: String,
    /// Staff name of who logged it.
    pub created_by: String,
    /// When logged (RFC 3339).
    pub created_at: String,
    /// The items picked (kept as a JSON array of strings).
    pub clip_ids: Vec<String>,
    /// `open`, `built` or `approved`.
    pub state: String,
    /// The release package built for it.
    pub package_id: Option<String>,
    /// SHA-256 hex of that package's ZIP (an approval binds it).
    pub package_sha256: Option<String>,
    /// Staff name of who built the package.
    pub built_by: Option<String>,
    /// A supervisor's written override, if any.
    pub sensitive_reason: Option<String>,
    /// Staff name of who approved the release.
    pub approved_by: Option<String>,
    /// When approved (RFC 3339).
    pub approved_at: Option<String>,
}

/// One stored live-capture fragment (`fieldcap.fragment/1`): the device's record and signature
/// exactly as sent, the server's signed acknowledgement, and what listings need without parsing.
/// The piece's bytes are in the clip's partial upload ([`BlobStore::open_partial`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentRow {
    /// The recording's item id.
    pub clip_id: String,
    /// Fragment index (0: the initialization segment).
    pub idx: u64,
    /// Device id.
    pub device_id: String,
    /// Exact bytes of the fragment record as the device signed them.
    pub record: Vec<u8>,
    /// Device signature over `record`.
    pub sig: Vec<u8>,
    /// SHA-256 hex of `record`.
    pub record_sha256: String,
    /// First byte of the piece in the recording.
    pub offset: u64,
    /// Length of the piece.
    pub bytes: u64,
    /// Length of the recording through this piece.
    pub total_bytes: u64,
    /// When the device sealed the piece (its record's `captured_at`).
    pub captured_at: String,
    /// The last `mfhd` sequence number of the piece (none for the initialization segment or a
    /// trailing `mfra`).
    pub mfhd_last: Option<u32>,
    /// Exact bytes of the server's signed acknowledgement (`fieldcap.fragment-ack/1`).
    pub ack: Vec<u8>,
    /// Server signature over `ack`.
    pub ack_sig: Vec<u8>,
    /// When the server stored it.
    pub received_at: String,
}

/// The fragments held for one recording, for listings ([`RecordStore::fragment_heads`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentHead {
    /// The recording's item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Fragments held (the initialization segment included).
    pub count: u64,
    /// Bytes of the recording held.
    pub total_bytes: u64,
    /// Capture time of the newest fragment.
    pub last_captured_at: String,
    /// When the newest fragment was stored.
    pub last_received_at: String,
}

/// Builds a signed custody event body for a chain position: `(seq, prev hash) -> (body, sig)`.
pub type CustodySigner<'a> = &'a dyn Fn(u64, Option<&str>) -> (Vec<u8>, Vec<u8>);

/// Builds a signed device record once the token's role is known.
pub type DeviceBuilder<'a> = &'a dyn Fn(&str) -> Result<DeviceRecord>;

/// Signs the log's checkpoint after a leaf is appended outside the server process: given every
/// leaf hash in log order (the new one last) and the newest checkpoint note on record (whose
/// origin line the new note keeps), returns the signed note for the new size.
pub type CheckpointSigner<'a> = &'a dyn Fn(&[Hash], Option<&str>) -> Result<String>;

/// Records: tokens, devices, nonces, items, uploads, live-capture fragments, the log, custody,
/// retention, and the console's staff accounts, sessions, records requests and settings.
pub trait RecordStore: Send + Sync {
    // Enrolment tokens, devices and request nonces.

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

    // Items (manifests, commitments, receipts) and their tus uploads.

    /// An item by clip id.
    fn item(&self, clip_id: &str) -> Result<Option<ItemRecord>>;
    /// An item by device and seq.
    fn item_by_seq(&self, device_id: &str, seq: u64) -> Result<Option<ItemRecord>>;
    /// Every item of a device (one query), in no particular order.
    fn items_of_device(&self, device_id: &str) -> Result<Vec<ItemRecord>>;
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
    /// Inserts or replaces the upload of an item; a `Conflict` error if the item's upload is
    /// complete (a complete upload is never replaced).
    fn put_upload(&self, upload: &UploadRecord) -> Result<()>;
    /// Sets the fsynced offset of an upload, unless it is complete (then nothing changes).
    fn set_upload_offset(&self, clip_id: &str, offset: u64) -> Result<()>;
    /// Takes the deployment-wide lock of one clip's upload, held until the answer is dropped;
    /// `None` if another server process holds it now. Every replica of a scaled deployment
    /// writes the same partial upload in the shared blob store: without this lock a request cut
    /// on one replica (still writing what it had received) and the client's retry on another
    /// would write and record the same upload at once. A store only one process opens (the
    /// embedded SQLite store) answers a guard that holds nothing: the process's own lock
    /// ([`crate::state::AppState::lock_upload`]) is enough there.
    fn try_lock_upload(&self, _clip_id: &str) -> Result<Option<SharedUploadLock>> {
        Ok(Some(SharedUploadLock::none()))
    }
    /// Sets the state of an upload (and its offset), unless it is complete: a complete upload
    /// never changes state. Returns whether the upload changed.
    fn set_upload_state(&self, clip_id: &str, state: &str, offset: u64) -> Result<bool>;
    /// Counts a refused upload and why.
    fn note_refusal(&self, clip_id: &str, reason: &str) -> Result<()>;

    // Completing items, and the transparency log.

    /// Every leaf hash, in log order.
    fn leaf_hashes(&self) -> Result<Vec<Hash>>;
    /// The leaf hashes from index `from` on, in log order (catching a cache up with leaves
    /// other replicas or processes appended).
    fn leaf_hashes_since(&self, from: u64) -> Result<Vec<Hash>> {
        Ok(self.leaf_hashes()?.into_iter().skip(from as usize).collect())
    }
    /// Stores a completed item: leaf, checkpoint, receipt, upload state, in one transaction
    /// that holds the log's write lock (several server replicas may append at once). The leaf
    /// must go at the end of the log: if the log does not have exactly `c.log_index` leaves
    /// then, nothing is stored and the answer is [`Error::LogMoved`] (the caller catches up and
    /// builds the completion again).
    fn complete_item(&self, c: &Completion) -> Result<()>;
    /// Stores a checkpoint (no-op if one of that size exists).
    fn put_checkpoint(&self, tree_size: u64, note: &str) -> Result<()>;
    /// The newest checkpoint.
    fn latest_checkpoint(&self) -> Result<Option<(u64, String)>>;
    /// Replaces the note of the checkpoint at `tree_size` by `note`, which must be the stored
    /// note with signature lines appended (witness cosignatures): the signed text and the
    /// signatures already there never change. `Ok(false)` if there is no such checkpoint or
    /// `note` does not extend it.
    fn add_checkpoint_signatures(&self, tree_size: u64, note: &str) -> Result<bool>;
    /// Once the witnesses have cosigned a completed item's checkpoint: stores the cosigned note
    /// (an extension, as [`Self::add_checkpoint_signatures`]) and, in the same transaction,
    /// replaces the item's receipt by one carrying it — only if the stored receipt is still
    /// `old_receipt` (the one [`Self::complete_item`] stored, never yet given out). `Ok(false)`
    /// when either does not hold; nothing is changed then.
    fn cosign_receipt(&self, clip_id: &str, old_receipt: &[u8], tree_size: u64, note: &str, receipt: &[u8], receipt_sig: &[u8]) -> Result<bool>;
    /// Of the checkpoints of at least `min_size` leaves, the one with the most signature lines
    /// (the server's and its witnesses'), the newest among equals.
    fn best_checkpoint(&self, min_size: u64) -> Result<Option<(u64, String)>>;

    // Server custody events, and the custody logs devices upload.

    /// Appends a custody event; `sign` builds it for the next (seq, prev).
    fn append_custody(&self, clip_id: Option<&str>, event: &str, at: &str, sign: CustodySigner<'_>) -> Result<CustodyEvent>;
    /// Custody events, all or those of one item, in chain order.
    fn custody(&self, clip_id: Option<&str>) -> Result<Vec<CustodyEvent>>;
    /// Every distinct (clip id, event name) pair of the server custody chain whose event is one
    /// of `events` — the start-up check for missing events reads these two columns, not every
    /// signed body.
    fn custody_clip_events(&self, events: &[&str]) -> Result<std::collections::HashSet<(String, String)>>;
    /// The first server custody event (seq 1), if any: which key began the records.
    fn first_custody(&self) -> Result<Option<CustodyEvent>> {
        Ok(self.custody(None)?.into_iter().next())
    }
    /// The newest event of a device's uploaded custody log as (seq, body SHA-256).
    fn device_custody_head(&self, device_id: &str) -> Result<Option<(u64, String)>>;
    /// One event of a device's uploaded custody log.
    fn device_custody_event(&self, device_id: &str, seq: u64) -> Result<Option<CustodyEvent>>;
    /// Appends verified, consecutive device custody events in one transaction, if the device's
    /// head is still `expect_head` (seq, hash); `Ok(false)` if another request moved it.
    fn append_device_custody(&self, device_id: &str, expect_head: Option<(u64, &str)>, events: &[CustodyEvent], received_at: &str) -> Result<bool>;
    /// A device's uploaded custody log, in seq order.
    fn device_custody(&self, device_id: &str) -> Result<Vec<CustodyEvent>>;

    // Retention, legal hold, referral and disposal (see `crate::retention`).

    /// The configured retention periods: category (kind, tag or `default`) → days.
    fn retention_policy(&self) -> Result<BTreeMap<String, i64>>;
    /// Sets (or replaces) the retention period of a category.
    fn set_retention_policy(&self, category: &str, days: i64, at: &str) -> Result<()>;
    /// Places a legal hold on an item.
    fn add_hold(&self, clip_id: &str, reason: &str, at: &str) -> Result<()>;
    /// Releases every active hold of an item; returns how many were released.
    fn release_holds(&self, clip_id: &str, reason: &str, at: &str) -> Result<u64>;
    /// Records that items were referred in a full package (once per item and package), in one
    /// transaction.
    fn add_referrals(&self, clip_ids: &[String], package_id: &str, recipient: &str, at: &str) -> Result<()>;
    /// Holds, referrals and disposal of one item.
    fn retention_facts(&self, clip_id: &str) -> Result<RetentionFacts>;
    /// Records the disposal of an item in one transaction, if it is still neither held nor
    /// referred (checked again inside that transaction): appends `leaf` to the log under the
    /// name `leaf_name` with a checkpoint made by `sign` — unless a leaf of that name is on record
    /// already, from a run interrupted before — and stores the disposal with its custody event
    /// still pending ([`RecordStore::pending_disposals`]).
    fn record_disposal(&self, clip_id: &str, leaf_name: &str, leaf: &[u8], disposed_at: &str, sign: CheckpointSigner<'_>) -> Result<DisposalOutcome>;
    /// Disposals whose custody event is not recorded yet, in log order.
    fn pending_disposals(&self) -> Result<Vec<PendingDisposal>>;
    /// Completes a disposal with the seq of its `disposed` custody event.
    fn set_disposal_custody_seq(&self, clip_id: &str, custody_seq: u64) -> Result<()>;
    /// True if an item other than `clip_id` that is not disposed names the same stored original
    /// (identical bytes are stored once), so the blob must stay.
    fn blob_needed_by_another_item(&self, blob_sha256: &str, clip_id: &str) -> Result<bool>;

    // Console: staff, sessions, records requests, settings.

    /// Stores a new staff account; `Ok(false)` if its name or id exists (or, vanishingly
    /// unlikely, its set-up token's hash).
    fn insert_staff(&self, s: &StaffRecord) -> Result<bool>;
    /// A staff account by id.
    fn staff_by_id(&self, staff_id: &str) -> Result<Option<StaffRecord>>;
    /// A staff account by login name (exact, case-sensitive).
    fn staff_by_name(&self, name: &str) -> Result<Option<StaffRecord>>;
    /// The staff account whose unused set-up token hashes to `token_sha256` (whether or not it
    /// has expired or the account is disabled: the caller says why it is refused).
    fn staff_by_setup_token(&self, token_sha256: &str) -> Result<Option<StaffRecord>>;
    /// Every staff account, by name (byte order).
    fn staff_list(&self) -> Result<Vec<StaffRecord>>;
    /// Sets the password of an account and clears its set-up token (and expiry) in one
    /// statement, only if the stored token is still `token_sha256`, has not expired at `now_ms`
    /// (it works while `now_ms < setup_expires_at_ms`, like a session; a token without an
    /// expiry never works) and the account is not disabled.
    /// `Ok(false)` otherwise: a token works once.
    fn complete_staff_setup(&self, staff_id: &str, token_sha256: &str, password_hash: &str, now_ms: i64) -> Result<bool>;
    /// Disables an account (`Some(when)`, RFC 3339) or enables it again (`None`); `Ok(false)` if
    /// there is no such account. Disabling deletes every session of the account in the same
    /// transaction.
    fn set_staff_disabled(&self, staff_id: &str, disabled_at: Option<&str>) -> Result<bool>;
    /// Starts a password reset: gives the account a new one-time set-up token (its SHA-256),
    /// valid until `expires_at_ms`, removes its password and deletes its sessions, in one
    /// transaction; `Ok(false)` if there is no such account or it is disabled.
    fn reset_staff_setup(&self, staff_id: &str, token_sha256: &str, expires_at_ms: i64) -> Result<bool>;
    /// Stores a new session, only for an account that exists and is not disabled (checked in
    /// the same statement, so a session cannot outlive a disabling that ran at the same time):
    /// a `Conflict` error otherwise, and for a session hash that exists.
    fn insert_session(&self, s: &SessionRecord) -> Result<()>;
    /// A session by the SHA-256 of its cookie value.
    fn session(&self, session_sha256: &str) -> Result<Option<SessionRecord>>;
    /// Sets a session's last-seen time (nothing if there is no such session).
    fn touch_session(&self, session_sha256: &str, last_seen_ms: i64) -> Result<()>;
    /// Deletes a session (logout); nothing if there is none.
    fn delete_session(&self, session_sha256: &str) -> Result<()>;
    /// Deletes every session whose `expires_at_ms <= now_ms`; returns how many.
    fn delete_sessions_before(&self, now_ms: i64) -> Result<u64>;
    /// Stores a new records request; `Ok(false)` if its id exists.
    fn insert_records_request(&self, r: &RecordsRequestRecord) -> Result<bool>;
    /// A records request by id.
    fn records_request(&self, request_id: &str) -> Result<Option<RecordsRequestRecord>>;
    /// Every records request, newest first (by `received_at`, then id, both descending).
    fn records_requests(&self) -> Result<Vec<RecordsRequestRecord>>;
    /// Replaces every field of the stored request `r.request_id` but its id by `r`'s, only if
    /// its stored state is still `expect_state` (one statement: of two updates from the same
    /// state to another, exactly one wins). `Ok(false)` otherwise (another request moved it, or
    /// there is no such request).
    fn update_records_request(&self, r: &RecordsRequestRecord, expect_state: &str) -> Result<bool>;
    /// A console setting (the console's URL is kept under `console_url`).
    fn setting(&self, key: &str) -> Result<Option<String>>;
    /// Sets (or replaces) a console setting.
    fn set_setting(&self, key: &str, value: &str) -> Result<()>;

    // Live capture: fragments of recordings still being filmed (or cut short).

    /// Stores a fragment; `Ok(false)` if one with that (clip, index) exists (nothing changes).
    fn insert_fragment(&self, f: &FragmentRow) -> Result<bool>;
    /// The fragments of a recording, in index order.
    fn fragments(&self, clip_id: &str) -> Result<Vec<FragmentRow>>;
    /// One fragment of a recording.
    fn fragment(&self, clip_id: &str, idx: u64) -> Result<Option<FragmentRow>>;
    /// The fragment of a recording with the highest index.
    fn last_fragment(&self, clip_id: &str) -> Result<Option<FragmentRow>>;
    /// Per recording with fragments: device, count, bytes held, newest capture and storage
    /// times; by clip id.
    fn fragment_heads(&self) -> Result<Vec<FragmentHead>>;

    // The server key of a scaled deployment run without a data directory.

    /// The server key's secret kept in the records, for a scaled deployment whose replicas run
    /// without a data directory (`fieldcap serve --records … --blobs …`): the stored secret;
    /// if there is none and `generate` is given, stores the secret it makes — the first replica
    /// to do so wins, every other one gets that one — and returns the stored secret. A store
    /// that keeps no key (the embedded one: its key is a file in the data directory) answers
    /// with an error.
    fn server_key_secret(&self, generate: Option<&dyn Fn() -> Vec<u8>>) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let _ = generate;
        Err(Error::BadRequest("this record store keeps no server key: give the data directory (--data DIR) that holds it".into()))
    }
}

/// Media originals, content-addressed by SHA-256 and never modified, and the partial uploads
/// (one per item, named by clip id) that become them.
///
/// An upload is received into its partial ([`BlobStore::open_partial`]), read back whole for
/// verification ([`BlobStore::read_partial`]) and, if it matches the signed manifest, stored as
/// the original ([`BlobStore::store_partial`]); otherwise discarded.
pub trait BlobStore: Send + Sync {
    /// Opens the partial upload of an item for appending at `offset`, creating it empty if there
    /// is none. Bytes past `offset` (written but never confirmed durable before a crash) are
    /// dropped first.
    fn open_partial(&self, clip_id: &str, offset: u64) -> Result<Box<dyn PartialWriter>>;
    /// Reads the partial upload of an item from its first byte; `None` if there is none.
    fn read_partial(&self, clip_id: &str) -> Result<Option<Box<dyn Read + Send>>>;
    /// Discards the partial upload of an item (terminated, expired, refused or restarted). No
    /// partial is not an error.
    fn discard_partial(&self, clip_id: &str) -> Result<()>;
    /// Moves the partial upload of an item aside, kept for the record but never as evidence (the
    /// upload of a revoked device): it is no longer the item's partial, is never stored as an
    /// original, and is never deleted by the server. Returns a name for it (for custody), or
    /// `None` if there was no partial.
    fn set_aside_partial(&self, clip_id: &str) -> Result<Option<String>>;
    /// Stores the complete, verified partial upload of an item as the original named `sha256`,
    /// durably, and removes the partial. If that original is stored already (identical bytes)
    /// the stored one is kept. Never modifies a stored original.
    fn store_partial(&self, clip_id: &str, sha256: &str) -> Result<()>;
    /// True if an original is stored.
    fn contains(&self, sha256: &str) -> Result<bool>;
    /// Opens a stored original for reading.
    fn open(&self, sha256: &str) -> Result<Box<dyn Read + Send>>;
    /// Opens a stored original for reading from byte `start` on (an HTTP range request). The
    /// default reads through the first `start` bytes; stores that can seek do.
    fn open_at(&self, sha256: &str, start: u64) -> Result<Box<dyn Read + Send>> {
        let mut r = self.open(sha256)?;
        std::io::copy(&mut (&mut r).take(start), &mut std::io::sink()).map_err(|e| Error::io("reading up to a range's start", e))?;
        Ok(r)
    }
    /// Copies a stored original into a new file `dst` (which must not exist), hashing the bytes
    /// as they are written, and fsyncs it; returns the digests of what was written. On error no
    /// `dst` is left.
    fn copy_to(&self, sha256: &str, dst: &Path) -> Result<Digests> {
        let mut input = self.open(sha256)?;
        let mut out = std::fs::OpenOptions::new().write(true).create_new(true).open(dst).map_err(|e| Error::io("creating a copy of an original", e))?;
        let copied = hash_reader(TeeReader { inner: &mut input, copy: &mut out }, &mut |_| {}).and_then(|d| out.sync_all().map(|_| d));
        copied.map_err(|e| {
            let _ = std::fs::remove_file(dst);
            Error::io("copying an original", e)
        })
    }
    /// A local file path of an original, when the store keeps originals on the local disk.
    fn local_path(&self, sha256: &str) -> Option<PathBuf>;
    /// Deletes a stored original whose disposal is on record (log leaf and custody event):
    /// retention is the only caller, and nothing else ever deletes an original. An original that
    /// is already gone is not an error (a disposal finished again after a crash). A store with a
    /// write-once lock refuses while the original's lock holds (a `Conflict` naming the lock).
    fn remove_disposed(&self, sha256: &str) -> Result<()>;

    // Write-once locks (S3 Object Lock). The local store has no WORM lock; its originals are
    // read-only files: these do nothing there.

    /// Locks a stored original against deletion and overwrite until `until` (RFC 3339), in the
    /// store's strictest mode (S3: COMPLIANCE, which not even an administrator can lift). Only
    /// ever extends: a retain-until date already set later than `until` is left as it is. The
    /// local store has no WORM lock; its originals are read-only files: this does nothing.
    fn set_retention(&self, sha256: &str, until: &str) -> Result<()> {
        let _ = (sha256, until);
        Ok(())
    }
    /// Places (`on`) or lifts a legal hold on a stored original: while it is on, the original
    /// cannot be deleted whatever its retention. The local store has no WORM lock; its originals
    /// are read-only files: this does nothing.
    fn set_legal_hold(&self, sha256: &str, on: bool) -> Result<()> {
        let _ = (sha256, on);
        Ok(())
    }
    /// The lock of a stored original as the store reports it; `None` for a store without locks
    /// (the local store has no WORM lock; its originals are read-only files) or when no such
    /// original is stored.
    fn lock_state(&self, sha256: &str) -> Result<Option<ObjectLockState>> {
        let _ = sha256;
        Ok(None)
    }
}

/// The write-once lock of a stored original, as the blob store reports it
/// ([`BlobStore::lock_state`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectLockState {
    /// Retention mode (`COMPLIANCE` or `GOVERNANCE`), if a retention is set.
    pub mode: Option<String>,
    /// Retained until (RFC 3339), if a retention is set.
    pub retain_until: Option<String>,
    /// True while a legal hold is on.
    pub legal_hold: bool,
}

impl ObjectLockState {
    /// Why the original cannot be deleted at `now`, or `None` if the lock allows it.
    pub fn refusal_at(&self, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
        if self.legal_hold {
            return Some("a legal hold is on the stored original in the object storage".into());
        }
        let until = self.retain_until.as_deref()?;
        match chrono::DateTime::parse_from_rfc3339(until) {
            Ok(t) if t.with_timezone(&chrono::Utc) <= now => None,
            _ => Some(format!("the stored original is locked in the object storage until {until}")),
        }
    }
}

/// Appends to a partial upload (see [`BlobStore::open_partial`]).
pub trait PartialWriter: Send {
    /// Appends bytes.
    fn write_all(&mut self, bytes: &[u8]) -> Result<()>;
    /// Makes everything appended so far durable. The offset on record advances only after this.
    fn sync(&mut self) -> Result<()>;
    /// Drops everything past `len` and makes that durable (a body that ran past the upload's
    /// length is taken back to where it started).
    fn truncate(&mut self, len: u64) -> Result<()>;
}

/// Writes every byte read through it to `copy` as well.
struct TeeReader<'a, R: Read + ?Sized, W: Write> {
    inner: &'a mut R,
    copy: &'a mut W,
}

impl<R: Read + ?Sized, W: Write> Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// File name of the embedded record database inside a data directory.
pub const RECORDS_FILE: &str = "records.sqlite";
/// Folder of the embedded blob store's originals inside a data directory.
pub const BLOBS_DIR: &str = "blobs";
/// Folder of the embedded blob store's partial uploads inside a data directory.
pub const UPLOADS_DIR: &str = "uploads";

/// The two stores a server works on. This is where the backends are chosen: the embedded
/// default opens a data directory ([`Stores::open_embedded`]); another deployment builds one
/// from its own record and blob stores.
#[derive(Clone)]
pub struct Stores {
    /// Records.
    pub records: Arc<dyn RecordStore>,
    /// Originals and partial uploads.
    pub blobs: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

impl Stores {
    /// The embedded stores of a data directory (created if needed): records in
    /// [`RECORDS_FILE`], originals in [`BLOBS_DIR`], partial uploads in [`UPLOADS_DIR`].
    pub fn open_embedded(data_dir: &Path) -> Result<Stores> {
        Deployment::from(data_dir).open_stores()
    }
}

/// A store's address as the operator gives it (`postgres://user:password@host/db`,
/// `s3://bucket?endpoint=…`). It may carry a password, so its `Debug` form shows only the
/// scheme, and nothing in the server ever prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// Wraps an address.
    pub fn new(url: impl Into<String>) -> StoreUrl {
        StoreUrl(url.into())
    }

    /// The address itself (for the store's constructor only).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The scheme (`postgres`, `s3`, …), lowercase; empty if there is none.
    pub fn scheme(&self) -> String {
        self.0.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default()
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({}://…)", self.scheme())
    }
}

/// Where a server's key, records and originals are: its data directory (which always holds the
/// server key, `server.key`, shared by every replica of a deployment) and, for a scaled
/// deployment, the record database and the object storage in place of the embedded
/// `records.sqlite` and `blobs/` of the data directory.
///
/// Every server tool takes one: `fieldcap serve`, `token`, `devices`, `revoke`, `incidents`,
/// `package`, `hold`, `release`, `dispose`, `retention` (`--data DIR [--records URL] [--blobs
/// URL]`). A bare path converts into the embedded deployment of that directory.
///
/// ```
/// use fieldcap_server::store::{Deployment, StoreUrl};
/// let d = Deployment::from(std::path::Path::new("/srv/fieldcap"));
/// assert!(d.records.is_none() && d.blobs.is_none());
/// let scaled = Deployment { records: Some(StoreUrl::new("postgres://fc:secret@db/fc")), ..d };
/// assert!(!format!("{scaled:?}").contains("secret"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The data directory: the server key, and the embedded stores unless replaced below.
    /// `None` only for a scaled deployment (both stores below given): the server key is then
    /// kept in the record database ([`RecordStore::server_key_secret`]).
    pub data_dir: Option<PathBuf>,
    /// Records elsewhere (`postgres://…`); `None`: `records.sqlite` in the data directory.
    pub records: Option<StoreUrl>,
    /// Originals elsewhere (`s3://BUCKET?endpoint=URL`); `None`: `blobs/` in the data directory.
    pub blobs: Option<StoreUrl>,
}

impl From<&Path> for Deployment {
    fn from(data_dir: &Path) -> Deployment {
        Deployment { data_dir: Some(data_dir.to_path_buf()), records: None, blobs: None }
    }
}

impl From<&PathBuf> for Deployment {
    fn from(data_dir: &PathBuf) -> Deployment {
        Deployment::from(data_dir.as_path())
    }
}

impl From<PathBuf> for Deployment {
    fn from(data_dir: PathBuf) -> Deployment {
        Deployment { data_dir: Some(data_dir), records: None, blobs: None }
    }
}

impl From<&Deployment> for Deployment {
    fn from(d: &Deployment) -> Deployment {
        d.clone()
    }
}

impl Deployment {
    /// True when records and originals are both in the data directory.
    pub fn is_embedded(&self) -> bool {
        self.records.is_none() && self.blobs.is_none()
    }

    /// The data directory, which the embedded stores need.
    fn dir(&self, what: &str) -> Result<&Path> {
        self.data_dir.as_deref().ok_or_else(|| Error::BadRequest(format!("{what} need a data directory (--data DIR)")))
    }

    /// Opens (creating where needed) the record store.
    pub fn open_records(&self) -> Result<Arc<dyn RecordStore>> {
        match &self.records {
            None => Ok(Arc::new(open_embedded_records(self.dir("records without --records")?)?)),
            Some(url) => open_records_at(url),
        }
    }

    /// Opens (creating where needed) both stores.
    pub fn open_stores(&self) -> Result<Stores> {
        let records = self.open_records()?;
        let blobs: Arc<dyn BlobStore> = match &self.blobs {
            None => {
                let dir = self.dir("originals without --blobs")?;
                Arc::new(LocalBlobStore::open(&dir.join(BLOBS_DIR), &dir.join(UPLOADS_DIR))?)
            }
            Some(url) => open_blobs_at(url)?,
        };
        Ok(Stores { records, blobs })
    }

    /// Opens the blob store alone.
    pub fn open_blob_store(&self) -> Result<Arc<dyn BlobStore>> {
        match &self.blobs {
            None => {
                let dir = self.dir("originals without --blobs")?;
                Ok(Arc::new(LocalBlobStore::open(&dir.join(BLOBS_DIR), &dir.join(UPLOADS_DIR))?))
            }
            Some(url) => open_blobs_at(url),
        }
    }

    /// True if a server has run on this deployment (its records exist). For an external record
    /// store this connects to it.
    pub fn has_records(&self) -> Result<bool> {
        match &self.records {
            None => Ok(self.dir("records without --records")?.join(RECORDS_FILE).exists()),
            Some(_) => Ok(self.open_records()?.latest_checkpoint()?.is_some()),
        }
    }

    /// The server key: the data directory's key file (created if `create` and there is none),
    /// or, without a data directory, the key kept in the record database (made by the first
    /// replica that starts). Returns the key and whether it was created now.
    pub fn server_key(&self, records: &dyn RecordStore, create: bool) -> Result<(fieldcap_evidence::identity::DeviceKey, bool)> {
        use fieldcap_evidence::identity::DeviceKey;
        match &self.data_dir {
            Some(dir) if create => crate::keys::load_or_create(dir),
            Some(dir) => Ok((crate::keys::load(dir)?, false)),
            None => {
                // Whether the stored key is the one made here (then it was created now).
                let made = std::cell::Cell::new(None::<zeroize::Zeroizing<Vec<u8>>>);
                let generate = || {
                    let secret = DeviceKey::generate().secret().to_vec();
                    made.set(Some(zeroize::Zeroizing::new(secret.clone())));
                    secret
                };
                let stored = records
                    .server_key_secret(if create { Some(&generate) } else { None })?
                    .ok_or_else(|| Error::NotFound("the record database holds no server key yet (start `fieldcap serve` on it first)".into()))?;
                let created = made.take().is_some_and(|m| m[..] == stored[..]);
                Ok((DeviceKey::from_secret(&stored)?, created))
            }
        }
    }
}

/// The record store at an address (`postgres://` or `postgresql://`).
fn open_records_at(url: &StoreUrl) -> Result<Arc<dyn RecordStore>> {
    match url.scheme().as_str() {
        "postgres" | "postgresql" => Ok(Arc::new(PostgresRecordStore::connect(url.expose())?)),
        "" => Err(Error::BadRequest("--records is not a store address (expected postgres://USER@HOST:PORT/DB)".into())),
        other => Err(Error::BadRequest(format!("--records: unknown store '{other}://' (expected postgres://)"))),
    }
}

/// The blob store at an address (`s3://`).
fn open_blobs_at(url: &StoreUrl) -> Result<Arc<dyn BlobStore>> {
    match url.scheme().as_str() {
        "s3" => Ok(Arc::new(S3BlobStore::open(url.expose())?)),
        "" => Err(Error::BadRequest("--blobs is not a store address (expected s3://BUCKET?endpoint=URL)".into())),
        other => Err(Error::BadRequest(format!("--blobs: unknown store '{other}://' (expected s3://)"))),
    }
}

/// The embedded record store of a data directory alone, created if needed (issuing tokens,
/// revoking devices and listing need no blob store).
pub fn open_embedded_records(data_dir: &Path) -> Result<SqliteRecordStore> {
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io("creating the data directory", e))?;
    SqliteRecordStore::open(&data_dir.join(RECORDS_FILE))
}

/// The JSON text a records request's `clip_ids` are kept as (an array of strings).
pub(crate) fn encode_clip_ids(clip_ids: &[String]) -> Result<String> {
    serde_json::to_string(clip_ids).map_err(|e| Error::Internal(format!("encoding a records request's items: {e}")))
}

/// A records request's `clip_ids` from their stored JSON text; anything else is a damaged record.
pub(crate) fn decode_clip_ids(request_id: &str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|_| Error::Internal(format!("the stored items of records request {request_id} are not a JSON array of strings")))
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
