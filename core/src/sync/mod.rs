//! Device → council-server sync: enrolment, hash-first manifests, resumable tus uploads and
//! verified receipts.
//!
//! One pass ([`Store::sync_once`]) does, in order and within a time budget:
//!
//! 1. `GET /v1/time`: measures the clock offset (device minus server, with the round-trip time),
//!    records it in the `server` table (sealing copies it into later manifests) and in custody
//!    (`clock_offset_measured`); checks the server key against the one pinned at enrolment (a
//!    different key raises an alarm and stops the pass).
//! 2. **Hash first**: every `sealed` item's manifest, oldest first, goes to `POST /v1/manifests`;
//!    the signed commitment is verified (server key, clip id, device, seq, manifest digest) and
//!    kept (`manifest_committed`).
//! 3. Media, oldest first, over tus 1.0. A missing file, or one whose length differs from the
//!    signed manifest's, is flagged before anything is sent. `HEAD` gives the server's offset;
//!    `PATCH` chunks follow (sizes below) and `upload_offset` is stored after each acknowledged
//!    chunk; a `409` means "HEAD again and continue". The file is verified over exactly the
//!    bytes sent, while they are sent: each chunk goes to a BLAKE3 worker
//!    ([`crate::hashing::StreamingDigests`], BLAKE3-only mode) as it is PATCHed, and on a
//!    resume the bytes already on the server are read back from the file and hashed ahead of
//!    it ([`SyncPhase::Verifying`]). **The final chunk is held back** until the length and
//!    BLAKE3 of the whole equal the signed manifest's. On a difference the item is flagged
//!    (`integrity` `mismatch`, `needs_attention`, custody `flagged` with `when:
//!    before_final_chunk`), the partial upload is terminated on the server (tus `DELETE`; if
//!    that fails it is noted, and the server expires it), and the final chunk is never sent —
//!    so the server never holds the whole of a changed file. The device takes BLAKE3 alone:
//!    either signed digest catches a changed file, BLAKE3 costs a fraction of SHA-256's CPU
//!    (battery, on a phone), and the server re-hashes both (length, SHA-256, BLAKE3) on
//!    completion, so nothing altered can be receipted either way. When the server already holds
//!    every byte, nothing is hashed: its receipt rests on its own verification.
//! 4. Receipts: taken from the last `PATCH` (or the commitment answer) or fetched with
//!    `GET /v1/receipts/{clip_id}`, then verified in full: server signature, clip/device/seq/
//!    manifest and media digests equal to ours, inclusion proof against the receipt's
//!    checkpoint, the checkpoint's signature, and consistency between the newest checkpoint the
//!    device holds and the new one. An inconsistent log raises an alarm; it is never ignored.
//! 5. The device's own custody log: events the server has not acknowledged go verbatim to
//!    `POST /v1/custody` (see `custody_upload.rs`), so evidence packages carry the device side
//!    of the chain of custody next to the server's.
//!
//! Transient failures (network, 5xx, 408, 429) are retried with exponential backoff and jitter,
//! honouring `Retry-After`, while the budget lasts; a permanent refusal (another 4xx) puts the
//! item in `needs_attention` with the problem's title in `last_error` — items are never dropped.
//! A signed request the server refuses as stale (problem type
//! [`stale-request`](fieldcap_evidence::problem::STALE_REQUEST): its timestamp is outside the
//! server's window, so the device's clock correction is out of date) measures the clock again
//! and is sent once more, whichever attempt met it; stale again, the pass stops as on a
//! transient failure and the item stays queued (a request's time is never a reason to set an
//! item aside). Problems are told apart by their `type`, never by their text.
//! A pass stops at its budget or when its [`CancelToken`] is cancelled, between requests, with
//! every acknowledged byte recorded; the next pass resumes from the server's offset. Two passes
//! never run at once on one store (a lock file, `sync.lock`): the second one waits for the
//! first, or returns at once with `busy` when [`SyncOptions::wait_for_lock`] is false.
//!
//! ## Chunk sizes and memory
//! The first `PATCH` carries [`SyncOptions::chunk_size`] bytes (4 MiB). A full chunk
//! acknowledged at its first attempt within 0.5 s doubles the next (at the throughput just
//! measured, the doubled chunk takes at most 1 s), up to [`SyncOptions::max_chunk_size`]
//! (16 MiB); a `PATCH` that needed a retry (no answer, 5xx, 408, 429) or met a `409`, or a chunk
//! that took over 4 s, halves the next (never below 1 MiB, or the starting size if smaller). A
//! cap at or below the starting size fixes every chunk. The size is learned over the pass.
//!
//! Memory stays bounded by the cap, whatever the file's size: the send loop keeps two chunk
//! buffers and reuses them (one being read and sent, one the BLAKE3 worker may still hold: it has
//! no queue), and each attempt of a `PATCH` gets its own copy of the chunk (the transport takes
//! the body). So at most 3 × `max_chunk_size` of chunk memory is alive (48 MiB at the default
//! 16 MiB; 12 MiB with chunks fixed at 4 MiB), and one more chunk, briefly, after a `409`
//! sends back bytes already hashed; while a resume reads back the server's prefix, up to ten
//! 1 MiB pieces more. A cut re-sends at most the chunk in flight: the high-water mark of each
//! chunk is on record before any of its bytes leave, so re-sent bytes are counted
//! ([`SyncSummary::bytes_resent`]) and bounded by one chunk, at most `max_chunk_size`.
//!
//! The network is behind [`Transport`], so a phone shell can supply its platform HTTP stack;
//! `ReqwestTransport` is the built-in one (rustls with the `ring` provider and bundled web
//! roots; plain `http://` only to loopback), behind the default-on cargo feature
//! `reqwest-transport`.
//!
//! ## Where the code is
//! | file | what it does |
//! |---|---|
//! | `mod.rs` | the public types and [`Store::sync_once`]: the lock, the clock, the pass |
//! | `transport.rs` | [`Transport`], [`HttpRequest`], [`HttpResponse`], [`url_allowed`] |
//! | `reqwest_transport.rs` | the built-in transport (feature `reqwest-transport`) |
//! | `pass.rs` | one pass's state; requests with retries, backoff, signing; the order of steps |
//! | `clock.rs` | `GET /v1/time` and the recorded clock offset |
//! | `enroll.rs` | enrolment and what it stores |
//! | `live.rs` | live capture: each sealed piece of a recording being filmed, as soon as it is sealed; [`live::LiveUploader`] |
//! | `manifests.rs` | hash first: `POST /v1/manifests` and the commitment check |
//! | `upload/` | the media of one item: `resume.rs` (HEAD, renewal, re-hash of the server's prefix), `send.rs` (the PATCH loop), `chunk_size.rs` (adaptive chunk sizes), `final_check.rs` (the held-back final chunk) |
//! | `receipts.rs` | receipts, inclusion and consistency proofs, purge |
//! | `custody_upload.rs` | the device's custody log to the server |
//! | `witnesses.rs` | the witnesses the device requires: cosignatures on the server's checkpoints |
//! | `rows.rs` | every row of SQL sync runs |
//!
//! ```no_run
//! use std::sync::Arc;
//! use fieldcap_core::{Store, identity::FileKeyProtector};
//! use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions};
//! let store = Store::open("/tmp/fieldcap-home".as_ref(), Arc::new(FileKeyProtector))?;
//! let net = ReqwestTransport::new()?;
//! store.enroll(&net, "https://intake.example.org", "one-time-token")?;
//! let summary = store.sync_once(&net, &SyncOptions::default(), &CancelToken::new(), &mut |p| {
//!     eprintln!("{:?} {}/{}", p.phase, p.item_bytes_done, p.item_bytes_total);
//! })?;
//! println!("{} receipt(s) verified, {} item(s) left", summary.receipts_verified, summary.remaining);
//! # Ok::<(), fieldcap_core::Error>(())
//! ```

mod clock;
mod custody_upload;
mod enroll;
pub mod live;
mod manifests;
mod pass;
mod receipts;
mod sealed;
#[cfg(feature = "reqwest-transport")]
mod reqwest_transport;
use crate::store::db::sync as rows;
mod transport;
mod upload;
mod witnesses;

pub use enroll::Enrollment;
#[cfg(feature = "reqwest-transport")]
pub use reqwest_transport::ReqwestTransport;
pub use transport::{url_allowed, HttpRequest, HttpResponse, Transport, TransportError};

use crate::error::{Error, IoContext, Result};
use crate::store::Store;
use pass::{Pass, Server, Stop};
use upload::ChunkSizer;
use serde::{Deserialize, Serialize};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ───────────────────────────── options, progress, summary ─────────────────────────────

/// A flag that stops a running pass at the next safe point.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    /// Asks the pass to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Settings of one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOptions {
    /// Time budget of the pass (it stops between requests once exceeded; a request in flight
    /// is given at most what is left).
    pub budget: Duration,
    /// Bytes of the first tus `PATCH` (default 4 MiB). Later chunks adapt to the link, up to
    /// [`max_chunk_size`](SyncOptions::max_chunk_size); a cap at or below this fixes every chunk
    /// at this size.
    pub chunk_size: usize,
    /// Largest tus `PATCH` (default 16 MiB). Chunks double while they are acknowledged quickly
    /// (a full chunk within 0.5 s) and halve after a failure; see the module documentation for
    /// the rule and the memory it bounds.
    #[serde(default = "default_max_chunk_size")]
    pub max_chunk_size: usize,
    /// Remove the local media copy after a verified receipt (default off). The manifest, its
    /// signature and the receipt stay.
    pub purge_after_receipt: bool,
    /// Retries of one request after a transient failure (default 8).
    pub max_retries: u32,
    /// First backoff delay (doubled each retry, with jitter; default 250 ms).
    pub backoff_base: Duration,
    /// Longest backoff delay (default 15 s).
    pub backoff_max: Duration,
    /// Longest time for one request (default 120 s; never more than the budget left).
    pub request_timeout: Duration,
    /// Wait for another pass on this store to finish (default true); false returns `busy`.
    pub wait_for_lock: bool,
    /// Only put manifests on record (hash first), no media (e.g. on a metered connection).
    pub manifests_only: bool,
    /// Only send the sealed pieces of recordings still being filmed (live capture): no manifest,
    /// media or custody, and no clock measurement while the last one is under 10 minutes old.
    /// The live uploader ([`live::LiveUploader`]) runs these passes.
    #[serde(default)]
    pub live_only: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            budget: Duration::from_secs(600),
            chunk_size: 4 << 20,
            max_chunk_size: default_max_chunk_size(),
            purge_after_receipt: false,
            max_retries: 8,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            wait_for_lock: true,
            manifests_only: false,
            live_only: false,
        }
    }
}

fn default_max_chunk_size() -> usize {
    16 << 20
}

/// What a pass is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    /// Waiting for another pass on the same store.
    Waiting,
    /// Measuring the clock offset.
    Clock,
    /// Sending manifests.
    Manifests,
    /// Hashing the part of a media file already on the server, when an upload resumes: it is
    /// read back from the file on a thread of its own while the first chunk of the rest is
    /// read; that chunk leaves once the part is hashed (the BLAKE3 worker hashes the file in
    /// order and holds at most one chunk), and the rest is hashed as it is sent.
    Verifying,
    /// Uploading media.
    Uploading,
    /// Fetching and verifying a receipt.
    Receipt,
    /// Finished.
    Done,
}

/// Progress report, called often (after each chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncProgress {
    /// Phase.
    pub phase: SyncPhase,
    /// Current item, if any.
    pub clip_id: Option<String>,
    /// Bytes of the current item on the server.
    pub item_bytes_done: u64,
    /// Size of the current item's media.
    pub item_bytes_total: u64,
    /// Items finished (receipted or set aside) in this pass.
    pub items_done: usize,
    /// Items this pass started with.
    pub items_total: usize,
    /// Media bytes acknowledged by the server in this pass.
    pub bytes_uploaded: u64,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSummary {
    /// Manifests newly committed by the server.
    pub manifests_committed: usize,
    /// Uploads completed.
    pub uploads_completed: usize,
    /// Media bytes acknowledged by the server.
    pub bytes_uploaded: u64,
    /// Bytes sent again because an earlier attempt was cut (at most one chunk per cut).
    pub bytes_resent: u64,
    /// Receipts received and verified.
    pub receipts_verified: usize,
    /// Items that need a person's attention (all of them, not only new ones).
    pub needs_attention: usize,
    /// Items still to sync after this pass.
    pub remaining: usize,
    /// Alarms raised in this pass.
    pub alarms: usize,
    /// Local media copies removed after a verified receipt.
    pub purged: usize,
    /// Custody events of this device sent and acknowledged by the server in this pass (after a
    /// server restore, events it already held are counted again).
    pub custody_events_uploaded: u64,
    /// Live-capture pieces acknowledged by the server in this pass.
    #[serde(default)]
    pub fragments_acknowledged: u64,
    /// The pass was cancelled.
    pub cancelled: bool,
    /// The pass stopped at its time budget.
    pub budget_exhausted: bool,
    /// Another pass held the store and `wait_for_lock` was false (nothing was done).
    pub busy: bool,
    /// Measured clock offset (device minus server), ms.
    pub clock_offset_ms: Option<i64>,
    /// Round-trip time of the clock measurement, ms.
    pub rtt_ms: Option<i64>,
    /// The last transient error, if the pass stopped on one (server unreachable, …).
    pub last_error: Option<String>,
}

// ───────────────────────────── the pass ─────────────────────────────

impl Store {
    /// One sync pass; see the [module documentation](self).
    ///
    /// Returns an error only when the pass cannot start or the store fails (not enrolled,
    /// server unreachable for the clock measurement, a different server key); problems with
    /// single items are recorded on those items and counted in the summary.
    pub fn sync_once(
        &self,
        t: &dyn Transport,
        opts: &SyncOptions,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(&SyncProgress),
    ) -> Result<SyncSummary> {
        let started = Instant::now();
        let deadline = started + opts.budget;
        if opts.chunk_size == 0 {
            return Err(Error::InvalidInput("chunk size must be at least one byte".into()));
        }
        let _unlock = match self.take_sync_lock(opts, cancel, deadline, progress)? {
            LockAttempt::Taken(lock) => lock,
            LockAttempt::Busy(summary) => return Ok(summary),
        };
        let (url, pem) = {
            let conn = self.conn();
            (rows::server_get(&conn, "server_url")?, rows::server_get(&conn, "server_key_pem")?)
        };
        let (Some(url), Some(pem)) = (url, pem) else {
            return Err(Error::NotEnrolled);
        };
        let url = String::from_utf8_lossy(&url).into_owned();
        let key = crate::identity::parse_public_pem(&String::from_utf8_lossy(&pem))?;
        let key_id = crate::identity::device_id_for(&key);
        let origin = rows::server_get(&self.conn(), "log_origin")?.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        // A live-only pass (the live uploader, every few seconds) reuses a recent measurement.
        let recent = if opts.live_only { self.recent_clock_offset(Duration::from_secs(600))? } else { None };
        let (offset, rtt) = match recent {
            Some(offset) => (offset, None),
            None => {
                progress(&SyncProgress::between_items(SyncPhase::Clock, 0, 0, 0));
                // The clock measurement is retried like any request (transient failures, backoff).
                let mut attempt = 0u32;
                let (tr, offset, rtt) = loop {
                    let timeout = opts.request_timeout.min(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(500)));
                    match clock::get_time(self, t, &url, timeout) {
                        Ok(v) => break v,
                        Err(e) => {
                            let wait = pass::backoff(opts, attempt);
                            if attempt >= opts.max_retries || cancel.is_cancelled() || Instant::now() + wait >= deadline {
                                return Err(e);
                            }
                            attempt += 1;
                            std::thread::sleep(wait);
                        }
                    }
                };
                if tr.server_key_id != key_id || crate::identity::parse_public_pem(&tr.server_key_pem)?.as_bytes() != key.as_bytes() {
                    self.raise_alarm("server_key_changed", "the server presented a key different from the one pinned at enrolment")?;
                    return Err(Error::Integrity("the server key differs from the one pinned at enrolment; nothing was sent".into()));
                }
                self.record_clock(offset, rtt)?;
                (offset, Some(rtt))
            }
        };
        let items_total = if opts.live_only { 0 } else { rows::count_queued(&self.conn())? };
        let mut pass = Pass {
            store: self,
            t,
            opts,
            cancel,
            deadline,
            server: Server { url, origin, key, key_id },
            offset_ms: offset,
            summary: SyncSummary { clock_offset_ms: Some(offset), rtt_ms: rtt, ..Default::default() },
            chunks: ChunkSizer::new(opts.chunk_size, opts.max_chunk_size),
            progress,
            items_done: 0,
            items_total,
        };
        let outcome = pass.run();
        let mut summary = std::mem::take(&mut pass.summary);
        match outcome {
            Ok(()) => {}
            Err(Stop::Budget) => summary.budget_exhausted = true,
            Err(Stop::Cancelled) => summary.cancelled = true,
            Err(Stop::Transient(e)) => summary.last_error = Some(e),
            Err(Stop::Fatal(e)) => return Err(e),
        }
        summary.remaining = rows::count_queued(&self.conn())?;
        summary.needs_attention = rows::count_needs_attention(&self.conn())?;
        (pass.progress)(&SyncProgress::between_items(SyncPhase::Done, pass.items_done, pass.items_total, summary.bytes_uploaded));
        Ok(summary)
    }

    /// Takes the store's sync lock (`sync.lock`): one pass per store at a time. Waits for
    /// another pass while `opts.wait_for_lock`, the budget and `cancel` allow; otherwise the
    /// summary of a pass that found the store busy.
    fn take_sync_lock(
        &self,
        opts: &SyncOptions,
        cancel: &CancelToken,
        deadline: Instant,
        progress: &mut dyn FnMut(&SyncProgress),
    ) -> Result<LockAttempt> {
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.home().join("sync.lock"))
            .ctx(|| "opening the sync lock".into())?;
        let mut announced = false;
        loop {
            match lock_file.try_lock() {
                Ok(()) => return Ok(LockAttempt::Taken(SyncLock(lock_file))),
                Err(fs::TryLockError::WouldBlock) => {
                    let busy = SyncSummary { busy: true, ..Default::default() };
                    if !opts.wait_for_lock {
                        return Ok(LockAttempt::Busy(busy));
                    }
                    if cancel.is_cancelled() {
                        return Ok(LockAttempt::Busy(SyncSummary { cancelled: true, ..busy }));
                    }
                    if Instant::now() >= deadline {
                        return Ok(LockAttempt::Busy(SyncSummary { budget_exhausted: true, ..busy }));
                    }
                    if !announced {
                        announced = true;
                        progress(&SyncProgress::between_items(SyncPhase::Waiting, 0, 0, 0));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io("taking the sync lock", e)),
            }
        }
    }
}

impl SyncProgress {
    /// A report with no current item.
    fn between_items(phase: SyncPhase, items_done: usize, items_total: usize, bytes_uploaded: u64) -> SyncProgress {
        SyncProgress { phase, clip_id: None, item_bytes_done: 0, item_bytes_total: 0, items_done, items_total, bytes_uploaded }
    }
}

/// What [`Store::take_sync_lock`] got.
enum LockAttempt {
    /// The lock, held until dropped.
    Taken(SyncLock),
    /// Another pass holds the store: the summary to return.
    Busy(SyncSummary),
}

/// Holds the sync lock; unlocks it when dropped.
struct SyncLock(fs::File);

impl Drop for SyncLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
