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
//!    `PATCH` chunks of [`SyncOptions::chunk_size`] follow and `upload_offset` is stored after
//!    each acknowledged chunk; a `409` means "HEAD again and continue". The file is verified
//!    over exactly the bytes sent, while they are sent: each chunk goes to two hash workers
//!    (SHA-256, BLAKE3; [`crate::hashing::StreamingDigests`]) as it is PATCHed, and on a resume
//!    the bytes already on the server are read back from the file and hashed alongside
//!    ([`SyncPhase::Verifying`]). **The final chunk is held back** until the length and both
//!    digests of the whole equal the signed manifest's. On a difference the item is flagged
//!    (`integrity` `mismatch`, `needs_attention`, custody `flagged` with `when:
//!    before_final_chunk`), the partial upload is terminated on the server (tus `DELETE`; if
//!    that fails it is noted, and the server expires it), and the final chunk is never sent —
//!    so the server never holds the whole of a changed file. (It re-verifies on completion
//!    too: nothing altered can be receipted either way.) When the server already holds every
//!    byte, nothing is hashed: its receipt rests on its own verification.
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
//! A pass stops at its budget or when its [`CancelToken`] is cancelled, between requests, with
//! every acknowledged byte recorded; the next pass resumes from the server's offset. Two passes
//! never run at once on one store (a lock file, `sync.lock`): the second one waits for the
//! first, or returns at once with `busy` when [`SyncOptions::wait_for_lock`] is false.
//!
//! The network is behind [`Transport`], so a phone shell can supply its platform HTTP stack;
//! [`ReqwestTransport`] is the built-in one (rustls with the `ring` provider and bundled web
//! roots; plain `http://` only to loopback).
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


mod custody_upload;
use crate::error::{Error, IoContext, Result};
use crate::manifest::Manifest;
use crate::protocol::{self, CommitmentResponse, DeviceCertificate, Problem, Receipt, SignedDoc, TimeResponse};
use crate::store::Store;
use ed25519_dalek::VerifyingKey;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ───────────────────────────── transport ─────────────────────────────

/// One HTTP request, as plain data (so any HTTP stack can carry it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `HEAD`, `PATCH`, …
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header (name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for none).
    pub body: Vec<u8>,
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header (name, value) pairs; names compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request was not sent because policy forbids it (e.g. plain HTTP to a remote host).
    /// Permanent: retrying will not help.
    #[error("request refused: {0}")]
    Refused(String),
    /// The request timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Connecting, sending or receiving failed. Transient.
    #[error("network error: {0}")]
    Network(String),
}

/// Carries [`HttpRequest`]s. Implemented by [`ReqwestTransport`] and by phone shells.
pub trait Transport: Send + Sync {
    /// Sends one request and returns the response (any status), or why there was none.
    fn send(&self, req: HttpRequest) -> std::result::Result<HttpResponse, TransportError>;
}

/// The built-in transport: reqwest (blocking) over rustls with the `ring` provider and the
/// bundled Mozilla roots (`webpki-roots`); no platform verifier. Plain `http://` is refused
/// unless the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::blocking::Client,
}

impl ReqwestTransport {
    /// Builds the client (connections are kept alive and reused).
    pub fn new() -> Result<ReqwestTransport> {
        Self::build(true)
    }

    /// A client that opens a new connection for every request (for networks that silently
    /// drop idle connections, and for fault-injection tests).
    pub fn unpooled() -> Result<ReqwestTransport> {
        Self::build(false)
    }

    fn build(pool: bool) -> Result<ReqwestTransport> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Network(format!("TLS configuration: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .pool_max_idle_per_host(if pool { usize::MAX } else { 0 })
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .timeout(None)
            .user_agent(concat!("fieldcap/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network(format!("building the HTTP client: {e}")))?;
        Ok(ReqwestTransport { client })
    }
}

/// True when `url` may be used: `https://`, or `http://` to a loopback host.
pub fn url_allowed(url: &str) -> std::result::Result<(), TransportError> {
    let u = reqwest::Url::parse(url).map_err(|_| TransportError::Refused("the URL does not parse".into()))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = u.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err(TransportError::Refused("plain http is only allowed to loopback; use https".into()))
            }
        }
        _ => Err(TransportError::Refused("only https (or http to loopback) URLs are allowed".into())),
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, req: HttpRequest) -> std::result::Result<HttpResponse, TransportError> {
        url_allowed(&req.url)?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| TransportError::Refused("bad method".into()))?;
        let mut b = self.client.request(method, &req.url).timeout(req.timeout);
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PATCH" | "PUT") {
            b = b.body(req.body);
        }
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                TransportError::Timeout(short_err(e))
            } else {
                TransportError::Network(short_err(e))
            }
        };
        let mut resp = b.send().map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect();
        let mut body = Vec::new();
        resp.read_to_end(&mut body).map_err(|e| TransportError::Network(format!("reading the response: {}", e.kind())))?;
        Ok(HttpResponse { status, headers, body })
    }
}

/// A reqwest error without the URL (which may carry an upload capability), with its causes.
fn short_err(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

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
    /// Bytes per tus `PATCH` (default 4 MiB).
    pub chunk_size: usize,
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
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            budget: Duration::from_secs(600),
            chunk_size: 4 << 20,
            purge_after_receipt: false,
            max_retries: 8,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            wait_for_lock: true,
            manifests_only: false,
        }
    }
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
    /// Hashing the part of a media file already on the server, when an upload resumes; it runs
    /// alongside the upload of the rest (which is hashed as it is sent), and the final chunk
    /// waits for it.
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

// ───────────────────────────── internals ─────────────────────────────

/// How a request ended, beyond an HTTP response.
enum Stop {
    /// The budget ran out.
    Budget,
    /// The pass was cancelled.
    Cancelled,
    /// Transient failures persisted past the retries.
    Transient(String),
    /// A hard error (store, integrity) to return.
    Fatal(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Fatal(e)
    }
}

impl From<fieldcap_evidence::Error> for Stop {
    fn from(e: fieldcap_evidence::Error) -> Self {
        Stop::Fatal(e.into())
    }
}

type Step<T> = std::result::Result<T, Stop>;

/// The pinned server, from enrolment.
struct Server {
    url: String,
    origin: String,
    key: VerifyingKey,
    key_id: String,
}

struct Pass<'a> {
    store: &'a Store,
    t: &'a dyn Transport,
    opts: &'a SyncOptions,
    cancel: &'a CancelToken,
    deadline: Instant,
    server: Server,
    offset_ms: i64,
    summary: SyncSummary,
    progress: &'a mut dyn FnMut(&SyncProgress),
    items_done: usize,
    items_total: usize,
}

const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The problem title of a 4xx answer, or a short description.
fn problem_title(resp: &HttpResponse) -> String {
    match serde_json::from_slice::<Problem>(&resp.body) {
        Ok(p) => {
            let name = p.problem_type.rsplit('/').next().unwrap_or_default().to_string();
            if name.is_empty() {
                format!("{} ({})", p.title, resp.status)
            } else {
                format!("{} ({}, {name})", p.title, resp.status)
            }
        }
        Err(_) => format!("the server answered HTTP {}", resp.status),
    }
}

fn is_transient_status(s: u16) -> bool {
    s >= 500 || s == 429 || s == 408
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: backoff applies).
fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    resp.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

/// Exponential backoff with jitter: between half and all of `base * 2^attempt`, capped.
fn backoff(opts: &SyncOptions, attempt: u32) -> Duration {
    let base = opts.backoff_base.as_millis() as u64;
    let max = opts.backoff_max.as_millis() as u64;
    let exp = base.saturating_mul(1u64 << attempt.min(20)).min(max).max(1);
    let r = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (exp / 2 + 1);
    Duration::from_millis(exp / 2 + r)
}

/// Joins a server-relative path (or an absolute URL) to the server's base URL.
fn join_url(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_string();
    }
    let base = base.trim_end_matches('/');
    if path.starts_with('/') {
        // Absolute path: relative to the origin.
        match reqwest::Url::parse(base) {
            Ok(u) => format!("{}{}", u.origin().ascii_serialization(), path),
            Err(_) => format!("{base}{path}"),
        }
    } else {
        format!("{base}/{path}")
    }
}

/// The path and query of a URL, as the server sees it (what request signatures cover).
fn path_and_query(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Stores one value of the `server` key/value table.
const SERVER_PUT_SQL: &str = "INSERT INTO server (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

/// Records the server-acknowledged offset of an upload (and that it has started).
const SET_OFFSET_SQL: &str = "UPDATE items SET upload_offset = ?2, state = CASE WHEN state = 'manifest_sent' THEN 'uploading' ELSE state END WHERE clip_id = ?1";

fn server_get(store: &Store, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(store.conn().query_row("SELECT value FROM server WHERE key = ?1", params![key], |r| r.get(0)).optional()?)
}

fn server_put(store: &Store, key: &str, value: &[u8]) -> Result<()> {
    store
        .conn()
        .execute(SERVER_PUT_SQL, params![key, value])?;
    Ok(())
}

fn server_del(store: &Store, key: &str) -> Result<()> {
    store.conn().execute("DELETE FROM server WHERE key = ?1", params![key])?;
    Ok(())
}

fn get_time(t: &dyn Transport, base: &str, timeout: Duration) -> Result<(TimeResponse, i64, i64)> {
    let t0 = now_ms();
    let started = Instant::now();
    let resp = t
        .send(HttpRequest { method: "GET".into(), url: join_url(base, "/v1/time"), headers: vec![], body: vec![], timeout })
        .map_err(|e| Error::Network(format!("GET /v1/time: {e}")))?;
    let rtt = started.elapsed().as_millis() as i64;
    if resp.status != 200 {
        return Err(Error::Network(format!("GET /v1/time: {}", problem_title(&resp))));
    }
    let tr: TimeResponse = serde_json::from_slice(&resp.body).map_err(|_| Error::Network("GET /v1/time: the answer does not parse".into()))?;
    // Device minus server, taking the server's clock as read at the middle of the round trip.
    let offset = t0 + rtt / 2 - tr.server_time_ms;
    Ok((tr, offset, rtt))
}

/// Information about the enrolment kept on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrollment {
    /// Server base URL.
    pub server_url: String,
    /// Pinned server key id.
    pub server_key_id: String,
    /// The certificate the server signed.
    pub certificate: DeviceCertificate,
}

impl Store {
    /// Enrols this device with a council server using a one-time token: pins the server key
    /// (from `GET /v1/time`), sends the device public key, verifies the signed certificate the
    /// server returns (server key, device id, public key) and stores both. Re-enrolling with the
    /// same server replaces the certificate; a server with a different key is refused.
    pub fn enroll(&self, t: &dyn Transport, server_url: &str, token: &str) -> Result<DeviceCertificate> {
        let base = server_url.trim_end_matches('/').to_string();
        url_allowed(&base).map_err(|e| Error::InvalidInput(format!("server URL: {e}")))?;
        let (tr, offset, rtt) = get_time(t, &base, Duration::from_secs(30))?;
        let key = crate::identity::parse_public_pem(&tr.server_key_pem)?;
        let key_id = crate::identity::device_id_for(&key);
        if key_id != tr.server_key_id {
            return Err(Error::Integrity("the server's key id does not match its key".into()));
        }
        if let Some(pinned) = server_get(self, "server_key_id")? {
            if pinned != key_id.as_bytes() {
                return Err(Error::Integrity(
                    "this device is already enrolled with a server that has a different key; refusing to switch".into(),
                ));
            }
        }
        self.record_clock(offset, rtt)?;
        let body = serde_json::to_vec(&protocol::EnrollRequest {
            token: token.trim().to_string(),
            public_key_pem: self.public_pem(),
            org: self.profile().org.clone(),
        })?;
        let resp = t
            .send(HttpRequest {
                method: "POST".into(),
                url: join_url(&base, "/v1/enroll"),
                headers: vec![("Content-Type".into(), "application/json".into())],
                body,
                timeout: Duration::from_secs(30),
            })
            .map_err(|e| Error::Network(format!("POST /v1/enroll: {e}")))?;
        if is_transient_status(resp.status) {
            return Err(Error::Network(format!("enrolment: the server is unavailable ({})", problem_title(&resp))));
        }
        if resp.status != 200 && resp.status != 201 {
            return Err(Error::Refused(format!("enrolment: {}", problem_title(&resp))));
        }
        let doc: SignedDoc = serde_json::from_slice(&resp.body).map_err(|_| Error::Network("the enrolment answer does not parse".into()))?;
        let (cert, _, _): (DeviceCertificate, _, _) = doc.open(&key)?;
        if cert.doc_type != protocol::types::DEVICE_CERT
            || cert.device_id != self.device_id()
            || crate::identity::parse_public_pem(&cert.public_key_pem)?.as_bytes() != self.device_key().verifying_key().as_bytes()
            || cert.server_key_id != key_id
        {
            return Err(Error::Integrity("the device certificate does not name this device and server".into()));
        }
        server_put(self, "server_url", base.as_bytes())?;
        server_put(self, "server_key_pem", tr.server_key_pem.as_bytes())?;
        server_put(self, "server_key_id", key_id.as_bytes())?;
        server_put(self, "log_origin", tr.log_origin.as_bytes())?;
        server_put(self, "device_cert", &serde_json::to_vec(&doc)?)?;
        self.append_custody("enrolled", None, json!({"server_key_id": key_id, "role": cert.role, "enrolled_at": cert.enrolled_at}))?;
        Ok(cert)
    }

    /// The stored enrolment, if any.
    pub fn enrollment(&self) -> Result<Option<Enrollment>> {
        let (Some(url), Some(pem), Some(doc)) = (server_get(self, "server_url")?, server_get(self, "server_key_pem")?, server_get(self, "device_cert")?) else {
            return Ok(None);
        };
        let key = crate::identity::parse_public_pem(&String::from_utf8_lossy(&pem))?;
        let doc: SignedDoc = serde_json::from_slice(&doc)?;
        let (certificate, _, _): (DeviceCertificate, _, _) = doc.open(&key)?;
        Ok(Some(Enrollment { server_url: String::from_utf8_lossy(&url).into_owned(), server_key_id: crate::identity::device_id_for(&key), certificate }))
    }

    /// The device certificate as (exact bytes, signature), if enrolled.
    pub fn device_certificate(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        match server_get(self, "device_cert")? {
            Some(b) => Ok(Some(serde_json::from_slice::<SignedDoc>(&b)?.decode()?)),
            None => Ok(None),
        }
    }

    /// The newest transparency-log checkpoint (signed-note text) this device has verified.
    pub fn newest_checkpoint(&self) -> Result<Option<String>> {
        Ok(server_get(self, "checkpoint")?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    fn record_clock(&self, offset_ms: i64, rtt_ms: i64) -> Result<()> {
        let v = json!({"offset_ms": offset_ms, "measured_at": crate::time::now(), "rtt_ms": rtt_ms});
        server_put(self, "clock_offset", &serde_json::to_vec(&v)?)?;
        self.append_custody("clock_offset_measured", None, json!({"offset_ms": offset_ms, "rtt_ms": rtt_ms}))?;
        Ok(())
    }

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
        // One pass per store at a time.
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.home().join("sync.lock"))
            .ctx(|| "opening the sync lock".into())?;
        let mut announced = false;
        loop {
            match lock_file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {
                    if !opts.wait_for_lock {
                        return Ok(SyncSummary { busy: true, ..Default::default() });
                    }
                    if cancel.is_cancelled() {
                        return Ok(SyncSummary { busy: true, cancelled: true, ..Default::default() });
                    }
                    if Instant::now() >= deadline {
                        return Ok(SyncSummary { busy: true, budget_exhausted: true, ..Default::default() });
                    }
                    if !announced {
                        announced = true;
                        progress(&SyncProgress {
                            phase: SyncPhase::Waiting,
                            clip_id: None,
                            item_bytes_done: 0,
                            item_bytes_total: 0,
                            items_done: 0,
                            items_total: 0,
                            bytes_uploaded: 0,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => return Err(Error::io("taking the sync lock", e)),
            }
        }
        let _unlock = scopeguard(lock_file);

        let (Some(url), Some(pem)) = (server_get(self, "server_url")?, server_get(self, "server_key_pem")?) else {
            return Err(Error::NotEnrolled);
        };
        let url = String::from_utf8_lossy(&url).into_owned();
        let key = crate::identity::parse_public_pem(&String::from_utf8_lossy(&pem))?;
        let key_id = crate::identity::device_id_for(&key);
        let origin = server_get(self, "log_origin")?.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        progress(&SyncProgress {
            phase: SyncPhase::Clock,
            clip_id: None,
            item_bytes_done: 0,
            item_bytes_total: 0,
            items_done: 0,
            items_total: 0,
            bytes_uploaded: 0,
        });
        // The clock measurement is retried like any request (transient failures, backoff).
        let mut attempt = 0u32;
        let (tr, offset, rtt) = loop {
            let timeout = opts.request_timeout.min(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(500)));
            match get_time(t, &url, timeout) {
                Ok(v) => break v,
                Err(e) => {
                    let wait = backoff(opts, attempt);
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
        let items_total = self.count_queued()?;
        let mut pass = Pass {
            store: self,
            t,
            opts,
            cancel,
            deadline,
            server: Server { url, origin, key, key_id },
            offset_ms: offset,
            summary: SyncSummary { clock_offset_ms: Some(offset), rtt_ms: Some(rtt), ..Default::default() },
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
        summary.remaining = self.count_queued()?;
        summary.needs_attention = self.conn().query_row(
            "SELECT COUNT(*) FROM items WHERE state = 'needs_attention' OR integrity != 'ok'",
            [],
            |r| r.get::<_, i64>(0),
        )? as usize;
        (pass.progress)(&SyncProgress {
            phase: SyncPhase::Done,
            clip_id: None,
            item_bytes_done: 0,
            item_bytes_total: 0,
            items_done: pass.items_done,
            items_total: pass.items_total,
            bytes_uploaded: summary.bytes_uploaded,
        });
        Ok(summary)
    }

    fn count_queued(&self) -> Result<usize> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM items WHERE state IN ('sealed','manifest_sent','uploading','uploaded') AND integrity = 'ok'",
            [],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }
}

/// Unlocks the sync lock when dropped.
struct LockGuard(fs::File);
impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
fn scopeguard(f: fs::File) -> LockGuard {
    LockGuard(f)
}

/// One item's row, as sync needs it.
struct Row {
    clip_id: String,
    seq: u64,
    state: String,
    _integrity: String,
    manifest: Vec<u8>,
    signature: Vec<u8>,
    manifest_sha256: String,
    media_ext: Option<String>,
    upload_url: Option<String>,
    upload_offset: u64,
}

impl Pass<'_> {
    fn run(&mut self) -> Step<()> {
        // 1. Hash first: every pending manifest, oldest first.
        for row in self.rows("state = 'sealed'")? {
            self.check_stop()?;
            self.report(SyncPhase::Manifests, Some(&row.clip_id), 0, 0);
            self.send_manifest(&row)?;
        }
        if self.opts.manifests_only {
            return self.upload_custody();
        }
        // 2. Media and receipts, oldest first.
        for row in self.rows("state IN ('manifest_sent','uploading','uploaded') AND integrity = 'ok'")? {
            self.check_stop()?;
            match self.item(&row) {
                Ok(()) => {}
                Err(Stop::Fatal(e)) => return Err(Stop::Fatal(e)),
                Err(other) => return Err(other),
            }
            self.items_done += 1;
        }
        // 3. The device's own custody log, so packages carry the device side too.
        self.upload_custody()
    }

    fn rows(&self, filter: &str) -> Step<Vec<Row>> {
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT clip_id, seq, state, integrity, manifest, signature, manifest_sha256, media_ext, upload_url, upload_offset
                 FROM items WHERE {filter} ORDER BY seq"
            ))
            .map_err(Error::from)?;
        let v = stmt
            .query_map([], |r| {
                Ok(Row {
                    clip_id: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    state: r.get(2)?,
                    _integrity: r.get(3)?,
                    manifest: r.get(4)?,
                    signature: r.get(5)?,
                    manifest_sha256: r.get(6)?,
                    media_ext: r.get(7)?,
                    upload_url: r.get(8)?,
                    upload_offset: r.get::<_, i64>(9)? as u64,
                })
            })
            .map_err(Error::from)?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::from)?;
        Ok(v)
    }

    fn reload(&self, clip_id: &str) -> Step<Row> {
        let mut v = self.rows(&format!("clip_id = '{}'", clip_id.replace('\'', "")))?;
        v.pop().ok_or_else(|| Stop::Fatal(Error::NotFound(format!("item {clip_id}"))))
    }

    fn report(&mut self, phase: SyncPhase, clip_id: Option<&str>, done: u64, total: u64) {
        let p = SyncProgress {
            phase,
            clip_id: clip_id.map(String::from),
            item_bytes_done: done,
            item_bytes_total: total,
            items_done: self.items_done,
            items_total: self.items_total,
            bytes_uploaded: self.summary.bytes_uploaded,
        };
        (self.progress)(&p);
    }

    fn check_stop(&self) -> Step<()> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(Stop::Budget);
        }
        Ok(())
    }

    /// Sleeps for `d`, waking early on cancel; fails if the sleep would pass the deadline.
    fn sleep(&self, d: Duration) -> Step<()> {
        let until = Instant::now() + d;
        if until >= self.deadline {
            return Err(Stop::Budget);
        }
        while Instant::now() < until {
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.opts, attempt)
    }

    /// Sends a request built by `build` (called again for each attempt, so signatures and nonces
    /// are fresh), retrying transient failures. Returns any non-transient response.
    fn send(&mut self, what: &str, build: &dyn Fn(&Pass<'_>) -> HttpRequest) -> Step<HttpResponse> {
        let mut attempt = 0u32;
        loop {
            self.check_stop()?;
            let mut req = build(self);
            let left = self.deadline.saturating_duration_since(Instant::now());
            req.timeout = req.timeout.min(self.opts.request_timeout).min(left.max(Duration::from_millis(1)));
            let (err, wait) = match self.t.send(req) {
                Ok(resp) if resp.status == 401 && attempt == 0 && self.is_skew(&resp) => {
                    // Our clock correction is stale: measure again and retry at once.
                    let (_, offset, rtt) = get_time(self.t, &self.server.url, Duration::from_secs(10)).map_err(|e| Stop::Transient(e.to_string()))?;
                    self.offset_ms = offset;
                    self.store.record_clock(offset, rtt)?;
                    (format!("{what}: {}", problem_title(&resp)), Duration::ZERO)
                }
                Ok(resp) if is_transient_status(resp.status) => (format!("{what}: {}", problem_title(&resp)), retry_after(&resp).unwrap_or_else(|| self.backoff(attempt))),
                Ok(resp) => return Ok(resp),
                Err(TransportError::Refused(e)) => return Err(Stop::Fatal(Error::Network(format!("{what}: {e}")))),
                Err(e) => (format!("{what}: {e}"), self.backoff(attempt)),
            };
            tracing::debug!("transient failure, retrying: {err}");
            if attempt >= self.opts.max_retries {
                return Err(Stop::Transient(err));
            }
            attempt += 1;
            self.sleep(wait)?;
        }
    }

    fn is_skew(&self, resp: &HttpResponse) -> bool {
        serde_json::from_slice::<Problem>(&resp.body)
            .map(|p| p.problem_type.ends_with("/stale-request") || p.problem_type.contains("skew") || p.problem_type.contains("clock"))
            .unwrap_or(false)
    }

    /// A signed device request.
    fn signed(&self, method: &str, url: &str, body: Vec<u8>, content_type: Option<&str>) -> HttpRequest {
        let ts = now_ms() - self.offset_ms;
        let mut headers: Vec<(String, String)> = protocol::sign_request(self.store.device_key(), method, &path_and_query(url), ts, &body)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        if let Some(ct) = content_type {
            headers.push(("Content-Type".into(), ct.into()));
        }
        HttpRequest { method: method.into(), url: url.into(), headers, body, timeout: self.opts.request_timeout }
    }

    /// Records a permanent refusal: the item waits for a person, with the reason shown.
    fn needs_attention(&mut self, row: &Row, reason: &str) -> Step<()> {
        self.store
            .conn()
            .execute(
                "UPDATE items SET state = 'needs_attention', last_error = ?2, attempts = attempts + 1 WHERE clip_id = ?1",
                params![row.clip_id, reason],
            )
            .map_err(Error::from)?;
        self.store.append_custody("sync_refused", Some(&row.clip_id), json!({"reason": reason}))?;
        Ok(())
    }

    fn note_transient(&self, clip_id: &str, err: &str) {
        let next = crate::time::format(chrono::Utc::now() + chrono::Duration::seconds(30));
        let _ = self.store.conn().execute(
            "UPDATE items SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE clip_id = ?1",
            params![clip_id, err, next],
        );
    }

    fn with_transient_note<T>(&self, clip_id: &str, r: Step<T>) -> Step<T> {
        if let Err(Stop::Transient(e)) = &r {
            self.note_transient(clip_id, e);
        }
        r
    }

    // ── manifests ──

    fn send_manifest(&mut self, row: &Row) -> Step<()> {
        let r = self.send_manifest_inner(row);
        self.with_transient_note(&row.clip_id, r)
    }

    fn post_manifest(&mut self, row: &Row) -> Step<Option<CommitmentResponse>> {
        let body = serde_json::to_vec(&protocol::ManifestSubmission { manifest: protocol::b64(&row.manifest), sig: protocol::b64(&row.signature) })
            .map_err(Error::from)?;
        let url = join_url(&self.server.url, "/v1/manifests");
        let resp = self.send("POST /v1/manifests", &|p: &Pass<'_>| p.signed("POST", &url, body.clone(), Some("application/json")))?;
        if resp.status != 200 && resp.status != 201 {
            self.needs_attention(row, &format!("manifest refused: {}", problem_title(&resp)))?;
            return Ok(None);
        }
        let cr: CommitmentResponse = match serde_json::from_slice(&resp.body) {
            Ok(c) => c,
            Err(_) => return Err(Stop::Transient("POST /v1/manifests: the answer does not parse".into())),
        };
        // Verify the commitment before relying on it.
        let check: Result<protocol::Commitment> = (|| {
            let (c, _, _): (protocol::Commitment, _, _) = cr.commitment.open(&self.server.key)?;
            if c.doc_type != protocol::types::COMMITMENT
                || c.clip_id != row.clip_id
                || c.device_id != self.store.device_id()
                || c.seq != row.seq
                || c.manifest_sha256 != row.manifest_sha256
                || c.server_key_id != self.server.key_id
            {
                return Err(Error::Integrity("the commitment does not match the manifest sent".into()));
            }
            Ok(c)
        })();
        if let Err(e) = check {
            self.store.raise_alarm("bad_commitment", &format!("item {}: {e}", row.clip_id))?;
            self.summary.alarms += 1;
            self.needs_attention(row, "the server's commitment did not verify")?;
            return Ok(None);
        }
        Ok(Some(cr))
    }

    fn send_manifest_inner(&mut self, row: &Row) -> Step<()> {
        let Some(cr) = self.post_manifest(row)? else { return Ok(()) };
        let commitment = serde_json::to_vec(&cr.commitment).map_err(Error::from)?;
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction().map_err(Error::from)?;
            tx.execute(
                "UPDATE items SET state = 'manifest_sent', commitment = ?2, upload_url = ?3, upload_offset = 0, last_error = NULL WHERE clip_id = ?1 AND state = 'sealed'",
                params![row.clip_id, commitment, cr.upload_url],
            )
            .map_err(Error::from)?;
            crate::store::append_custody_tx(
                &tx,
                self.store.device_key(),
                "manifest_committed",
                Some(&row.clip_id),
                json!({"manifest_sha256": row.manifest_sha256, "server_key_id": self.server.key_id}),
            )?;
            tx.commit().map_err(Error::from)?;
        }
        self.summary.manifests_committed += 1;
        if let Some(r) = &cr.receipt {
            let row = self.reload(&row.clip_id)?;
            self.accept_receipt(&row, r)?;
        } else if cr.upload_url.is_none() {
            // Observations, or media the server already holds: only the receipt is missing.
            self.set_state(&row.clip_id, "uploaded")?;
        }
        Ok(())
    }

    fn set_state(&self, clip_id: &str, state: &str) -> Step<()> {
        self.store.conn().execute("UPDATE items SET state = ?2 WHERE clip_id = ?1", params![clip_id, state]).map_err(Error::from)?;
        Ok(())
    }

    // ── media ──

    fn item(&mut self, row: &Row) -> Step<()> {
        let r = self.item_inner(row);
        self.with_transient_note(&row.clip_id, r)
    }

    fn item_inner(&mut self, row: &Row) -> Step<()> {
        let manifest = Manifest::parse(&row.manifest)?;
        if row.state != "uploaded" {
            if let Some(media) = &manifest.media {
                let path = match &row.media_ext {
                    Some(ext) => self.store.item_dir(&row.clip_id).join(format!("media.{ext}")),
                    None => return Err(Stop::Fatal(Error::Corrupt("an item with media has no file extension".into()))),
                };
                // The file must be there, at its signed length, before any byte leaves; its
                // digests are taken over the bytes as they are sent (see `upload`).
                let earlier_partial = row.upload_url.as_deref().filter(|_| row.upload_offset > 0).map(|u| join_url(&self.server.url, u));
                let file = match fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.flag_media(row, "missing", "before_upload", earlier_partial.as_deref())?;
                        return Ok(());
                    }
                    Err(e) => return Err(Stop::Fatal(Error::io("opening the media file before upload", e))),
                };
                let len = file.metadata().map_err(|e| Error::io("reading the media file before upload", e))?.len();
                if len != media.bytes {
                    self.flag_media(row, "mismatch", "before_upload", earlier_partial.as_deref())?;
                    return Ok(());
                }
                if !self.upload(row, file, &path, media)? {
                    return Ok(());
                }
            } else {
                self.set_state(&row.clip_id, "uploaded")?;
            }
        }
        self.fetch_receipt(&row.clip_id)
    }

    /// Flags an item whose media file is missing or no longer matches its signed manifest:
    /// `integrity`, `needs_attention`, `last_error`, and a custody `flagged` event naming
    /// `when` it was found. With `partial` (the upload URL of bytes already on the server), the
    /// partial upload is terminated first (tus `DELETE`), so no partial copy of a changed file
    /// lingers; a termination that fails is noted in `last_error` and in the custody event
    /// (`upload_terminated: false`), not fatal: the server expires incomplete uploads, and it
    /// re-verifies on completion anyway.
    fn flag_media(&mut self, row: &Row, integrity: &str, when: &str, partial: Option<&str>) -> Step<()> {
        let detail = if integrity == "missing" { "the media file is missing" } else { "the media file no longer matches its signed manifest" };
        let mut details = json!({"integrity": integrity, "when": when});
        let mut last_error = detail.to_string();
        let mut terminated = false;
        if let Some(url) = partial {
            match self.terminate_upload(url) {
                Ok(()) => terminated = true,
                Err(why) => {
                    tracing::warn!("item {}: the partial upload could not be terminated: {why}", row.clip_id);
                    last_error.push_str(&format!("; the partial upload on the server could not be discarded ({why}); it expires there"));
                }
            }
            details["upload_terminated"] = json!(terminated);
        }
        let _ = server_del(self.store, &format!("upload_hw/{}", row.clip_id));
        let mut conn = self.store.conn();
        let tx = conn.transaction().map_err(Error::from)?;
        tx.execute(
            "UPDATE items SET integrity = ?2, integrity_detail = ?3, state = 'needs_attention', last_error = ?4,
                    upload_offset = CASE WHEN ?5 THEN 0 ELSE upload_offset END WHERE clip_id = ?1",
            params![row.clip_id, integrity, detail, last_error, terminated],
        )
        .map_err(Error::from)?;
        crate::store::append_custody_tx(&tx, self.store.device_key(), "flagged", Some(&row.clip_id), details)?;
        tx.commit().map_err(Error::from)?;
        Ok(())
    }

    /// tus termination of an unfinished upload. An upload already gone (404, 410) counts as
    /// terminated; anything else is returned as the reason it was not.
    fn terminate_upload(&mut self, url: &str) -> std::result::Result<(), String> {
        let r = self.send("DELETE upload", &|p: &Pass<'_>| HttpRequest {
            method: "DELETE".into(),
            url: url.into(),
            headers: vec![(TUS.0.into(), TUS.1.into())],
            body: vec![],
            timeout: p.opts.request_timeout,
        });
        match r {
            Ok(resp) if matches!(resp.status, 200 | 204 | 404 | 410) => Ok(()),
            Ok(resp) => Err(problem_title(&resp)),
            Err(Stop::Transient(e)) => Err(e),
            Err(Stop::Cancelled) => Err("the pass was cancelled".into()),
            Err(Stop::Budget) => Err("the pass ran out of time".into()),
            Err(Stop::Fatal(e)) => Err(e.to_string()),
        }
    }

    /// Uploads the media from the server's offset. Returns true when the server has it all.
    ///
    /// The digests are taken over exactly the bytes of the upload while it runs: the bytes
    /// already on the server are read back from the file by the hasher's own thread, each chunk
    /// is handed to the hash workers as it is sent, and the final chunk is held back until the
    /// length, SHA-256 and BLAKE3 of the whole equal the signed manifest's. A difference flags
    /// the item and terminates the partial upload; the final chunk is never sent.
    fn upload(&mut self, row0: &Row, mut file: fs::File, path: &std::path::Path, media: &crate::manifest::Media) -> Step<bool> {
        let total = media.bytes;
        let mut row = self.reload(&row0.clip_id)?;
        let mut renewed = false;
        // Where the server is.
        let mut offset = loop {
            let Some(u) = row.upload_url.clone() else {
                if let Some(done) = self.renew_or_stop(&mut row, &mut renewed, "the server gave no upload URL for media it does not hold")? {
                    return Ok(done);
                }
                continue;
            };
            let url = join_url(&self.server.url, &u);
            match self.head_or_attention(&row, &url)? {
                HeadResult::Offset(o) => break o,
                HeadResult::Attention => return Ok(false),
                HeadResult::Gone => {
                    // Expired or finished: does the server already have it all?
                    if self.try_receipt(&row.clip_id)? {
                        return Ok(false);
                    }
                    if let Some(done) = self.renew_or_stop(&mut row, &mut renewed, "the upload URL is gone and the server has no receipt")? {
                        return Ok(done);
                    }
                }
            }
        };
        let url = join_url(&self.server.url, row.upload_url.as_deref().unwrap_or_default());
        if offset > total {
            self.needs_attention(&row, "the server reports more bytes than the file has")?;
            return Ok(false);
        }
        if offset < row.upload_offset {
            // The server kept less than it acknowledged: those bytes go again.
            self.summary.bytes_resent += row.upload_offset - offset;
        }
        let hw_key = format!("upload_hw/{}", row.clip_id);
        let mut high_water: u64 = server_get(self.store, &hw_key)?
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
            .max(row.upload_offset);
        self.set_offset(&row.clip_id, offset)?;
        // The digests of what this upload consists of: [0, offset) read back from the file on
        // the hasher's thread, then every chunk as it is sent. Nothing to hash (nor to send)
        // when the server already holds it all: its receipt comes from its own verification.
        let mut hasher: Option<crate::hashing::StreamingDigests> = None;
        let mut hashed_to = offset;
        if offset < total {
            let started = if offset > 0 {
                let prefix = match fs::File::open(path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.flag_media(&row, "missing", "before_upload", Some(&url))?;
                        return Ok(false);
                    }
                    Err(e) => return Err(Stop::Fatal(Error::io("opening the media file", e))),
                };
                self.report(SyncPhase::Verifying, Some(&row.clip_id), offset, total);
                crate::hashing::StreamingDigests::with_prefix(prefix, offset)
            } else {
                crate::hashing::StreamingDigests::new()
            };
            hasher = Some(started.map_err(|e| Error::io("starting the hash workers", e))?);
        }
        let mut bufs = ChunkBufs::default();
        let mut last_receipt: Option<SignedDoc> = None;
        let mut conflicts = 0;
        self.report(SyncPhase::Uploading, Some(&row.clip_id), offset, total);
        // `high_water` is durable and may run one chunk ahead (recorded with the previous
        // offset); `sent_to` is how far this pass really sent, written back on a clean stop so
        // a cancelled pass does not count the unsent next chunk as re-sent later.
        let mut sent_to = high_water;
        while offset < total {
            if let Err(stop) = self.check_stop() {
                if high_water > sent_to {
                    server_put(self.store, &hw_key, sent_to.max(offset).to_string().as_bytes())?;
                }
                return Err(stop);
            }
            let len = ((total - offset) as usize).min(self.opts.chunk_size);
            let end = offset + len as u64;
            if let Some(h) = hasher.as_mut() {
                // The server is ahead of what was hashed (it took bytes this pass did not send):
                // read those back, so the stream hashed stays the whole file in order.
                while hashed_to < offset {
                    let n = (offset - hashed_to).min(self.opts.chunk_size as u64) as usize;
                    let mut gap = bufs.take(n);
                    if !read_media(&mut file, hashed_to, &mut gap)? {
                        self.flag_media(&row, "mismatch", "before_final_chunk", Some(&url))?;
                        return Ok(false);
                    }
                    h.update(bufs.share(gap)).map_err(|e| Error::io("hashing the media file", e))?;
                    hashed_to += n as u64;
                }
            }
            let mut buf = bufs.take(len);
            if !read_media(&mut file, offset, &mut buf)? {
                // Shorter than its signed length: changed since the check above.
                self.flag_media(&row, "mismatch", "before_final_chunk", Some(&url))?;
                return Ok(false);
            }
            let buf = bufs.share(buf);
            if let Some(h) = hasher.as_mut() {
                // Hash each byte once: after a 409 the server may ask for bytes again.
                if end > hashed_to {
                    let part = if hashed_to == offset { buf.clone() } else { Arc::new(buf[(hashed_to - offset) as usize..].to_vec()) };
                    h.update(part).map_err(|e| Error::io("hashing the media file", e))?;
                    hashed_to = end;
                }
            }
            if end == total {
                if let Some(h) = hasher.take() {
                    // Hold back the final chunk until the whole matches the signed manifest.
                    let same = match h.finish() {
                        Ok(d) => d.bytes == media.bytes && d.sha256_hex() == media.sha256 && d.blake3_hex() == media.blake3,
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
                        Err(e) => return Err(Stop::Fatal(Error::io("reading the media file back", e))),
                    };
                    if !same {
                        self.flag_media(&row, "mismatch", "before_final_chunk", Some(&url))?;
                        return Ok(false);
                    }
                }
            }
            if offset < sent_to {
                self.summary.bytes_resent += sent_to.min(end) - offset;
            }
            if end > high_water {
                high_water = end;
                server_put(self.store, &hw_key, high_water.to_string().as_bytes())?;
            }
            sent_to = sent_to.max(end);
            let off_s = offset.to_string();
            let b2 = buf.clone();
            let u2 = url.clone();
            let resp = self.send("PATCH upload", &move |p: &Pass<'_>| HttpRequest {
                method: "PATCH".into(),
                url: u2.clone(),
                headers: vec![
                    (TUS.0.into(), TUS.1.into()),
                    ("Upload-Offset".into(), off_s.clone()),
                    ("Content-Type".into(), "application/offset+octet-stream".into()),
                ],
                body: b2.to_vec(),
                timeout: p.opts.request_timeout,
            })?;
            match resp.status {
                200 | 201 | 204 => {
                    let new = resp.header("upload-offset").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(end);
                    if new < offset || new > total {
                        return Err(Stop::Transient("PATCH upload: implausible Upload-Offset".into()));
                    }
                    self.summary.bytes_uploaded += new - offset;
                    offset = new;
                    // One durable commit per chunk: the new offset, and the high-water mark of
                    // the next chunk (which must be on record before any of its bytes leave).
                    let next_end = (offset + self.opts.chunk_size as u64).min(total);
                    if offset < total && next_end > high_water {
                        high_water = next_end;
                        self.set_offset_and_high_water(&row.clip_id, offset, &hw_key, high_water)?;
                    } else {
                        self.set_offset(&row.clip_id, offset)?;
                    }
                    if !resp.body.is_empty() {
                        if let Ok(doc) = serde_json::from_slice::<SignedDoc>(&resp.body) {
                            last_receipt = Some(doc);
                        } else if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
                            if let Some(doc) = v.get("receipt").and_then(|r| serde_json::from_value::<SignedDoc>(r.clone()).ok()) {
                                last_receipt = Some(doc);
                            }
                        }
                    }
                    self.report(SyncPhase::Uploading, Some(&row.clip_id), offset, total);
                }
                409 => {
                    // Offset mismatch: ask the server where it is and continue from there.
                    conflicts += 1;
                    if conflicts > 5 {
                        return Err(Stop::Transient("PATCH upload: repeated offset conflicts".into()));
                    }
                    match self.head_or_attention(&row, &url)? {
                        HeadResult::Offset(o) if o <= total => offset = o,
                        HeadResult::Offset(_) => {
                            self.needs_attention(&row, "the server reports more bytes than the file has")?;
                            return Ok(false);
                        }
                        HeadResult::Gone => {
                            let _ = self.try_receipt(&row.clip_id)?;
                            return Ok(false);
                        }
                        HeadResult::Attention => return Ok(false),
                    }
                }
                404 | 410 => {
                    // The upload resource went away (expired, or completed and removed).
                    if self.try_receipt(&row.clip_id)? {
                        return Ok(false);
                    }
                    return Err(Stop::Transient("PATCH upload: the upload URL is gone; it will be renewed".into()));
                }
                _ => {
                    self.needs_attention(&row, &format!("upload refused: {}", problem_title(&resp)))?;
                    return Ok(false);
                }
            }
        }
        let _ = server_del(self.store, &hw_key);
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction().map_err(Error::from)?;
            tx.execute("UPDATE items SET state = 'uploaded', upload_offset = ?2, last_error = NULL WHERE clip_id = ?1", params![row.clip_id, total as i64])
                .map_err(Error::from)?;
            crate::store::append_custody_tx(&tx, self.store.device_key(), "uploaded", Some(&row.clip_id), json!({"bytes": total}))?;
            tx.commit().map_err(Error::from)?;
        }
        self.summary.uploads_completed += 1;
        if let Some(doc) = last_receipt {
            let row = self.reload(&row.clip_id)?;
            if self.accept_receipt(&row, &doc).is_ok() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn head_or_attention(&mut self, row: &Row, url: &str) -> Step<HeadResult> {
        let resp = self.send("HEAD upload", &|p: &Pass<'_>| HttpRequest {
            method: "HEAD".into(),
            url: url.into(),
            headers: vec![(TUS.0.into(), TUS.1.into())],
            body: vec![],
            timeout: p.opts.request_timeout,
        })?;
        match resp.status {
            200 | 204 => match resp.header("upload-offset").and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(o) => Ok(HeadResult::Offset(o)),
                None => Err(Stop::Transient("HEAD upload: no Upload-Offset".into())),
            },
            404 | 410 => Ok(HeadResult::Gone),
            _ => {
                self.needs_attention(row, &format!("upload refused: {}", problem_title(&resp)))?;
                Ok(HeadResult::Attention)
            }
        }
    }

    /// Posts the manifest again (idempotent at the server) for a fresh upload URL.
    /// Asks the server for a fresh upload URL, at most once per upload (a second need puts the
    /// item in needs_attention with `why`). `Some(done)` ends the upload with that result
    /// (`true` when the server already holds all the media); `None` means try the new URL.
    fn renew_or_stop(&mut self, row: &mut Row, renewed: &mut bool, why: &str) -> Step<Option<bool>> {
        if *renewed {
            self.needs_attention(row, why)?;
            return Ok(Some(false));
        }
        *renewed = true;
        if !self.renew_upload_url(row)? {
            return Ok(Some(false));
        }
        *row = self.reload(&row.clip_id)?;
        Ok(match row.state.as_str() {
            "uploaded" => Some(true),
            "receipted" => Some(false),
            _ => None,
        })
    }

    fn renew_upload_url(&mut self, row: &Row) -> Step<bool> {
        let Some(cr) = self.post_manifest(row)? else { return Ok(false) };
        self.store
            .conn()
            .execute("UPDATE items SET upload_url = ?2, upload_offset = 0 WHERE clip_id = ?1", params![row.clip_id, cr.upload_url])
            .map_err(Error::from)?;
        if let Some(r) = &cr.receipt {
            let row = self.reload(&row.clip_id)?;
            self.accept_receipt(&row, r)?;
            return Ok(true);
        }
        if cr.upload_url.is_none() {
            self.set_state(&row.clip_id, "uploaded")?;
        }
        Ok(true)
    }

    /// [`Self::set_offset`] and the upload's high-water mark in one transaction.
    fn set_offset_and_high_water(&self, clip_id: &str, offset: u64, hw_key: &str, high_water: u64) -> Step<()> {
        let mut conn = self.store.conn();
        let tx = conn.transaction().map_err(Error::from)?;
        tx.execute(SET_OFFSET_SQL, params![clip_id, offset as i64]).map_err(Error::from)?;
        tx.execute(SERVER_PUT_SQL, params![hw_key, high_water.to_string().as_bytes()]).map_err(Error::from)?;
        tx.commit().map_err(Error::from)?;
        Ok(())
    }

    fn set_offset(&self, clip_id: &str, offset: u64) -> Step<()> {
        self.store
            .conn()
            .execute(
                SET_OFFSET_SQL,
                params![clip_id, offset as i64],
            )
            .map_err(Error::from)?;
        Ok(())
    }

    // ── receipts ──

    /// GET the receipt; true if one was found (and handled).
    fn try_receipt(&mut self, clip_id: &str) -> Step<bool> {
        let url = join_url(&self.server.url, &format!("/v1/receipts/{clip_id}"));
        let resp = self.send("GET receipt", &|p: &Pass<'_>| p.signed("GET", &url, vec![], None))?;
        if resp.status != 200 {
            return Ok(false);
        }
        let doc: SignedDoc = serde_json::from_slice(&resp.body).map_err(|_| Stop::Transient("GET receipt: the answer does not parse".into()))?;
        let row = self.reload(clip_id)?;
        self.accept_receipt(&row, &doc)?;
        Ok(true)
    }

    fn fetch_receipt(&mut self, clip_id: &str) -> Step<()> {
        let row = self.reload(clip_id)?;
        if row.state != "uploaded" {
            return Ok(());
        }
        self.report(SyncPhase::Receipt, Some(clip_id), 0, 0);
        // The server may still be finishing (re-hashing, logging): a few short waits.
        for attempt in 0..6u32 {
            if self.try_receipt(clip_id)? {
                return Ok(());
            }
            self.sleep(self.backoff(attempt).min(Duration::from_secs(2)))?;
        }
        Err(Stop::Transient("the server has no receipt yet".into()))
    }

    /// Verifies a receipt in full and stores it; a failure is recorded on the item (and as an
    /// alarm when the log is inconsistent).
    fn accept_receipt(&mut self, row: &Row, doc: &SignedDoc) -> Step<()> {
        self.report(SyncPhase::Receipt, Some(&row.clip_id), 0, 0);
        let manifest = Manifest::parse(&row.manifest)?;
        let (receipt, body, sig) = match self.verify_receipt(row, &manifest, doc) {
            Ok(v) => v,
            Err(e) => {
                self.store.raise_alarm("bad_receipt", &format!("item {}: {e}", row.clip_id))?;
                self.summary.alarms += 1;
                self.needs_attention(row, "the server's receipt did not verify")?;
                return Ok(());
            }
        };
        // Consistency of the log with the newest checkpoint held.
        let consistent = match self.check_consistency(&receipt.log.checkpoint, receipt.log.tree_size) {
            Ok(c) => c,
            Err(Stop::Fatal(Error::Integrity(e))) => Err(e),
            Err(other) => return Err(other),
        };
        let received_at = crate::time::now();
        let ok = consistent.is_ok();
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction().map_err(Error::from)?;
            tx.execute(
                "UPDATE items SET state = ?2, receipt = ?3, receipt_sig = ?4, receipted_at = ?5, last_error = ?6, next_attempt_at = NULL WHERE clip_id = ?1",
                params![
                    row.clip_id,
                    if ok { "receipted" } else { "needs_attention" },
                    body,
                    sig,
                    received_at,
                    if ok { None } else { Some("transparency log inconsistent with an earlier checkpoint") }
                ],
            )
            .map_err(Error::from)?;
            crate::store::append_custody_tx(
                &tx,
                self.store.device_key(),
                "receipted",
                Some(&row.clip_id),
                json!({"log_index": receipt.log.index, "tree_size": receipt.log.tree_size, "received_at": receipt.received_at, "receipt_sha256": crate::hashing::sha256_hex(&body)}),
            )?;
            tx.commit().map_err(Error::from)?;
        }
        if let Err(detail) = consistent {
            self.store.raise_alarm("log_inconsistent", &detail)?;
            self.summary.alarms += 1;
            return Ok(());
        }
        let _ = crate::fsutil::write_atomic(&self.store.item_dir(&row.clip_id).join("receipt.json"), &body);
        let _ = crate::fsutil::write_atomic(&self.store.item_dir(&row.clip_id).join("receipt.sig"), &sig);
        self.summary.receipts_verified += 1;
        if self.opts.purge_after_receipt && manifest.media.is_some() {
            self.purge(row)?;
        }
        Ok(())
    }

    fn verify_receipt(&self, row: &Row, m: &Manifest, doc: &SignedDoc) -> Result<(Receipt, Vec<u8>, Vec<u8>)> {
        let (r, body, sig): (Receipt, _, _) = doc.open(&self.server.key)?;
        let bad = |what: &str| Err(Error::Integrity(format!("the receipt's {what} differs from ours")));
        if r.doc_type != protocol::types::RECEIPT {
            return bad("type");
        }
        if r.clip_id != row.clip_id {
            return bad("clip_id");
        }
        if r.device_id != self.store.device_id() {
            return bad("device_id");
        }
        if r.seq != row.seq {
            return bad("seq");
        }
        if r.manifest_sha256 != row.manifest_sha256 {
            return bad("manifest digest");
        }
        if r.server_key_id != self.server.key_id {
            return bad("server key id");
        }
        match (&m.media, &r.media) {
            (None, None) => {}
            (Some(a), Some(b)) if a.bytes == b.bytes && a.sha256 == b.sha256 && a.blake3 == b.blake3 => {}
            _ => return bad("media digests"),
        }
        let cp = open_checkpoint(&r.log.checkpoint, &self.server.key, &self.server.origin)?;
        if cp.size != r.log.tree_size {
            return bad("tree size");
        }
        let proof = decode_proof(&r.log.inclusion)?;
        crate::tlog::verify_inclusion(r.log.index, r.log.tree_size, &crate::tlog::leaf_hash(&r.leaf_bytes()), &proof, &cp.root)?;
        Ok((r, body, sig))
    }

    /// Checks the new checkpoint against the newest held; stores it if newer. `Ok(Err(detail))`
    /// is an inconsistency (the caller raises the alarm).
    fn check_consistency(&mut self, checkpoint: &str, size: u64) -> Step<std::result::Result<(), String>> {
        let new = open_checkpoint(checkpoint, &self.server.key, &self.server.origin)?;
        let Some(held_text) = self.store.newest_checkpoint()? else {
            server_put(self.store, "checkpoint", checkpoint.as_bytes())?;
            return Ok(Ok(()));
        };
        let held = open_checkpoint(&held_text, &self.server.key, &self.server.origin)?;
        let (old, newer, store_new) = if size >= held.size { (&held, &new, size > held.size) } else { (&new, &held, false) };
        if old.size == newer.size {
            return Ok(if old.root == newer.root {
                Ok(())
            } else {
                Err(format!("two checkpoints of size {} have different roots", old.size))
            });
        }
        let url = join_url(&self.server.url, &format!("/v1/log/consistency?from={}&to={}", old.size, newer.size));
        let resp = self.send("GET consistency", &|p: &Pass<'_>| HttpRequest {
            method: "GET".into(),
            url: url.clone(),
            headers: vec![],
            body: vec![],
            timeout: p.opts.request_timeout,
        })?;
        if resp.status != 200 {
            return Err(Stop::Transient(format!("GET consistency: {}", problem_title(&resp))));
        }
        let pr: protocol::ProofResponse = serde_json::from_slice(&resp.body).map_err(|_| Stop::Transient("GET consistency: the answer does not parse".into()))?;
        let proof = decode_proof(&pr.proof)?;
        if crate::tlog::verify_consistency(old.size, newer.size, &old.root, &newer.root, &proof).is_err() {
            return Ok(Err(format!("the log of size {} is not an extension of the checkpoint of size {} held by this device", newer.size, old.size)));
        }
        if store_new {
            server_put(self.store, "checkpoint", checkpoint.as_bytes())?;
        }
        Ok(Ok(()))
    }

    fn purge(&mut self, row: &Row) -> Step<()> {
        let Some(ext) = &row.media_ext else { return Ok(()) };
        let path: PathBuf = self.store.item_dir(&row.clip_id).join(format!("media.{ext}"));
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction().map_err(Error::from)?;
            tx.execute("UPDATE items SET purged_at = ?2 WHERE clip_id = ?1 AND purged_at IS NULL", params![row.clip_id, crate::time::now()])
                .map_err(Error::from)?;
            crate::store::append_custody_tx(&tx, self.store.device_key(), "purged", Some(&row.clip_id), json!({"reason": "verified_receipt"}))?;
            tx.commit().map_err(Error::from)?;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Stop::Fatal(Error::io("removing the purged media", e))),
        }
        self.summary.purged += 1;
        Ok(())
    }
}

/// Fills `buf` from the media file at `at`; false when the file ends before (it is shorter than
/// its signed length, so it changed).
fn read_media(file: &mut fs::File, at: u64, buf: &mut [u8]) -> Step<bool> {
    file.seek(SeekFrom::Start(at)).map_err(|e| Error::io("reading the media file", e))?;
    match file.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Stop::Fatal(Error::io("reading the media file", e))),
    }
}

/// The upload's chunk buffers, reused once the hash workers and the request have let go of
/// them: a fresh multi-MiB buffer per chunk costs the kernel a page fault per 4 KiB, about as
/// much CPU as hashing it.
#[derive(Default)]
struct ChunkBufs(Vec<Arc<Vec<u8>>>);

impl ChunkBufs {
    /// Buffers kept for reuse (the hash queues hold a few chunks each).
    const KEEP: usize = 12;

    /// A buffer of `len` bytes: a free one reused, else a new one.
    fn take(&mut self, len: usize) -> Vec<u8> {
        // Only this thread clones the kept handles, so a count of 1 stays 1.
        let mut v = match self.0.iter().position(|b| Arc::strong_count(b) == 1) {
            Some(i) => Arc::try_unwrap(self.0.swap_remove(i)).unwrap_or_default(),
            None => Vec::new(),
        };
        v.resize(len, 0);
        v
    }

    /// Shares a filled buffer, keeping a handle so that it can be reused.
    fn share(&mut self, v: Vec<u8>) -> Arc<Vec<u8>> {
        let a = Arc::new(v);
        if self.0.len() < Self::KEEP {
            self.0.push(a.clone());
        }
        a
    }
}

enum HeadResult {
    Offset(u64),
    Gone,
    Attention,
}

/// Verifies a checkpoint note signed by the server key (under whichever key name the note uses
/// for that key) and checks its origin.
fn open_checkpoint(note: &str, key: &VerifyingKey, origin: &str) -> Result<crate::tlog::Checkpoint> {
    let parsed = crate::tlog::parse_note(note)?;
    let name = parsed
        .signatures
        .iter()
        .find(|(name, kid, _)| crate::tlog::note_key_id(name, key) == *kid)
        .map(|(name, _, _)| name.clone())
        .ok_or_else(|| Error::Integrity("the checkpoint carries no signature by the server key".into()))?;
    let cp = crate::tlog::verify_checkpoint(note, &name, key)?;
    if !origin.is_empty() && cp.origin != origin {
        return Err(Error::Integrity("the checkpoint names another log".into()));
    }
    Ok(cp)
}

fn decode_proof(nodes: &[String]) -> Result<Vec<[u8; 32]>> {
    nodes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
                .ok_or_else(|| Error::Integrity("a proof node is not 32 bytes of hex".into()))
        })
        .collect()
}
