//! # fieldcap-server
//!
//! The council office's intake server. Phones enrol with a one-time token, put each item's signed
//! manifest on record *before* its media moves (hash first), upload the media over tus 1.0, and
//! get back a signed receipt whose inclusion in an RFC 6962 transparency log they can check, so
//! the city can never later deny having received exactly those bytes.
//!
//! * [`ServerHandle::start`] runs the HTTP API (axum, on its own tokio runtime thread) over a
//!   data directory: `records.sqlite` (SQLite, WAL: tokens, devices, items, uploads, log leaves,
//!   checkpoints, custody), `blobs/` (content-addressed originals, never modified),
//!   `uploads/` (partial tus uploads), `server.key` (0600) and `server.pub.pem`.
//!   Nothing is ever written outside it.
//! * Endpoints follow [`fieldcap_evidence::protocol`]; tus details in [`tus`]; errors are RFC 9457
//!   problem+json ([`error`]).
//! * [`issue_token`], [`revoke_device`] and [`incidents()`] work on the data directory directly,
//!   also while a server runs on it; [`records::Records`] reads everything for packages.
//! * Storage sits behind [`store::RecordStore`] and [`store::BlobStore`]: every module reaches
//!   records and originals only through them, and [`store::Stores`] is where backends are chosen.
//!
//! Module map: [`store`] (the storage traits, the SQLite records with their schema in
//! [`store::sqlite::schema`], the local blob folder); `endpoints` (one file per resource, the
//! route table) with [`tus`] among them; `http` (request authentication, bodies, limits,
//! problem+json, blocking work); [`error`]; [`keys`]; [`log`] (Merkle cache over
//! [`fieldcap_evidence::tlog`]); [`receipts`]; [`custody`]; [`mod@incidents`]; [`records`];
//! [`retention`]; [`package`]; [`witnessing`] (asking the server's witnesses to cosign its
//! checkpoints) and [`witness`] (the witness service `fieldcap witness` runs).
//!
//! ```no_run
//! use fieldcap_server::{issue_token, ServerConfig, ServerHandle};
//! let data = std::path::PathBuf::from("/tmp/fieldcap-server");
//! let server = ServerHandle::start(ServerConfig::new(data.clone(), "127.0.0.1:0".parse().unwrap()))?;
//! println!("listening on {}", server.url());
//! let token = issue_token(&data, "monitor")?; // give it to a device: `fieldcap enroll --token …`
//! server.shutdown();
//! # Ok::<(), fieldcap_server::Error>(())
//! ```

mod clock;
pub mod console;
pub mod custody;
mod endpoints;
pub mod error;
pub mod escrow;
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod incidents;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod package;
pub mod receipts;
pub mod records;
pub mod retention;
mod state;
pub mod store;
pub mod witness;
pub mod witnessing;

pub use endpoints::tus;

pub use error::{Error, Result};
pub use incidents::Incident;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use http::limits::{
    HEAD_BUFFER_BYTES, MAX_CUSTODY_BODY, MAX_HEADERS_COUNT, MAX_HEADERS_TOTAL, MAX_HEADER_BYTES, MAX_JSON_BODY, MAX_MANIFEST_BYTES, MAX_SUBMISSION_BODY,
    MAX_URI_BYTES,
};

/// How long an enrolment token stays valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory (created if needed): the server key, and the embedded stores unless
    /// `records` / `blobs` name others. `None` only for a scaled deployment with both stores
    /// given: the server key is then kept in the record database (see [`store::Deployment`]).
    pub data_dir: Option<PathBuf>,
    /// A record database in place of the data directory's `records.sqlite` (`postgres://…`;
    /// see [`store::Deployment`]). Every replica of a deployment names the same one.
    pub records: Option<store::StoreUrl>,
    /// An object storage bucket in place of the data directory's `blobs/` and `uploads/`
    /// (`s3://BUCKET?endpoint=URL`). Every replica of a deployment names the same one.
    pub blobs: Option<store::StoreUrl>,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Log origin line and checkpoint key name; default `fieldcap.intake/<server_key_id>`.
    pub log_origin: Option<String>,
    /// Lifetime of an upload URL.
    pub upload_ttl: Duration,
    /// Largest media accepted (bytes), advertised as `Tus-Max-Size`.
    pub max_upload_bytes: u64,
    /// Tokio worker threads.
    pub worker_threads: usize,
    /// Most client connections open at once (default 1024). Beyond it new connections wait in
    /// the listen backlog until one closes. Each open connection may hold a request head of up
    /// to [`HEAD_BUFFER_BYTES`].
    pub max_connections: usize,
    /// How long a client may take to send a whole request head (default 15 s), counted from the
    /// first moment the server waits for one — so it is also how long an idle keep-alive
    /// connection stays open. A connection over it is closed.
    pub header_read_timeout: Duration,
    /// JSON bodies (`POST /v1/manifests`, `/v1/custody`, `/v1/enroll`): time given before the
    /// minimum rate applies (default 10 s).
    pub body_grace: Duration,
    /// JSON bodies: slowest average rate accepted once `body_grace` has passed, in bytes per
    /// second (default 16 KiB/s: the largest manifest submission then has ≈ 6 minutes). A body
    /// that falls behind `body_grace + received / body_min_rate` is refused with 408
    /// `request-timeout` and the connection closed.
    pub body_min_rate: u64,
    /// Media upload bodies (tus `PATCH`, creation-with-upload `POST`): longest gap without a
    /// byte (default 60 s). A slow upload that keeps moving is never cut; the bytes received
    /// are kept either way.
    pub upload_idle_timeout: Duration,
    /// Most bytes of JSON request bodies held in memory at once, over all requests (default
    /// 64 MiB). A body is reserved at its `Content-Length` (or at its endpoint's limit when
    /// chunked) before it is read; a request that does not fit gets 503 `overloaded` with
    /// `Retry-After`. Media uploads stream to disk and are not counted.
    pub max_buffered_body_bytes: usize,
    /// Witnesses asked to cosign each new checkpoint (see [`witnessing`]); none by default.
    pub witnesses: Vec<witnessing::WitnessEndpoint>,
    /// How the server reaches its witnesses (required when `witnesses` is not empty: the
    /// server compiles no HTTP client of its own).
    pub witness_client: Option<witnessing::WitnessClient>,
    /// Longest wait for one witness's answer (default 5 s).
    pub witness_timeout: Duration,
    /// How long a witness that failed is left alone, and how often the newest checkpoint is
    /// submitted again to witnesses whose cosignature it lacks (default 30 s).
    pub witness_retry: Duration,
    /// The staff console on a listener of its own ([`console`]); none by default.
    pub console: Option<console::ConsoleConfig>,
}

impl ServerConfig {
    /// Defaults for a data directory and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            data_dir: Some(data_dir),
            records: None,
            blobs: None,
            listen,
            log_origin: None,
            upload_ttl: Duration::from_secs(7 * 24 * 3600),
            max_upload_bytes: 64 * 1024 * 1024 * 1024,
            worker_threads: 4,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(15),
            body_grace: Duration::from_secs(10),
            body_min_rate: 16 * 1024,
            upload_idle_timeout: Duration::from_secs(60),
            max_buffered_body_bytes: 64 * 1024 * 1024,
            witnesses: Vec::new(),
            witness_client: None,
            witness_timeout: Duration::from_secs(5),
            witness_retry: Duration::from_secs(30),
            console: None,
        }
    }
}

impl ServerConfig {
    /// The deployment this configuration serves.
    pub fn deployment(&self) -> store::Deployment {
        store::Deployment { data_dir: self.data_dir.clone(), records: self.records.clone(), blobs: self.blobs.clone() }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::new(PathBuf::from("fieldcap-server-data"), SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// A running server. Dropping it shuts the server down.
pub struct ServerHandle {
    addr: SocketAddr,
    /// The console's address and whether it serves TLS.
    console: Option<(SocketAddr, bool)>,
    service: http::service::ServiceThread,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Opens the data directory (creating the key, database and folders on first start),
    /// finishes uploads interrupted by a crash, binds the address and serves on a new thread
    /// with its own tokio runtime.
    pub fn start(config: ServerConfig) -> Result<ServerHandle> {
        let workers = config.worker_threads.max(1);
        let listen = config.listen;
        let conn_limits = http::serve::ConnLimits { max_connections: config.max_connections, header_read_timeout: config.header_read_timeout };
        let state = Arc::new(state::AppState::open(config)?);
        tus::recover(&state)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("fieldcap-server")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the server runtime", e))?;
        let runtime = rt.handle().clone();
        let (listener, addr) = http::service::bind(listen, &rt)?;
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let console = match state.cfg.console.clone() {
            Some(ccfg) => {
                let (clistener, caddr, tls) = console::tls::bind(&ccfg, &rt)?;
                let secure = tls.is_some();
                let c = console::Console::new(state.clone(), ccfg, secure, format!("http://{addr}"))?;
                let url = format!("{}://{caddr}", if secure { "https" } else { "http" });
                // `fieldcap staff add` prints set-up links on this address.
                state.records.set_setting(console::staff::CONSOLE_URL_SETTING, &url)?;
                runtime.spawn(console::tls::serve(clistener, console::router(Arc::new(c)), tls, rx.clone()));
                Some((caddr, secure))
            }
            None => None,
        };
        if !state.witnessing.is_empty() {
            // Submits the newest checkpoint to witnesses whose cosignature it lacks.
            let st = state.clone();
            let every = state.cfg.witness_retry.max(Duration::from_millis(100));
            let mut stop = rx.clone();
            runtime.spawn(async move {
                loop {
                    let s = st.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        if let Err(e) = witnessing::catch_up(&s) {
                            tracing::warn!(error = %e, "witness catch-up");
                        }
                    })
                    .await;
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {},
                        _ = stop.wait_for(|v| *v) => break,
                    }
                }
            });
        }
        let app = endpoints::router(state);
        let thread = std::thread::Builder::new()
            .name("fieldcap-server".into())
            .spawn(move || {
                rt.block_on(async move {
                    let serve = http::serve::serve(listener, app, conn_limits, rx.clone());
                    let stopped = async move {
                        let _ = rx.wait_for(|v| *v).await;
                        // In-flight requests get a few seconds, then they are cut (an upload
                        // resumes at its last fsynced offset).
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    };
                    tokio::select! {
                        _ = serve => {},
                        _ = stopped => {}
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(|e| Error::io("starting the server thread", e))?;
        Ok(ServerHandle { addr, console, service: http::service::ServiceThread::new(tx, thread), runtime })
    }

    /// The bound address (with the real port when the configured port was 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The console's bound address, when it is served.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console.map(|c| c.0)
    }

    /// `http://ADDR` (or `https://` over TLS) of the console, when it is served.
    pub fn console_url(&self) -> Option<String> {
        self.console.map(|(a, tls)| format!("{}://{a}", if tls { "https" } else { "http" }))
    }

    /// Stops accepting, lets in-flight requests finish (a few seconds at most) and joins.
    pub fn shutdown(mut self) {
        self.service.stop();
    }

    /// Blocks until SIGINT or SIGTERM, then shuts down.
    pub fn wait_for_signal(mut self) -> Result<()> {
        let r = self.runtime.block_on(http::service::termination_signal());
        self.service.stop();
        r
    }
}


/// Issues a one-time enrolment token for `role` (`monitor` or `police`), valid for
/// [`TOKEN_TTL`]. Works while a server runs on the same directory. Only the token's SHA-256 is
/// stored; the token itself is returned once.
pub fn issue_token(at: impl Into<store::Deployment>, role: &str) -> Result<String> {
    fieldcap_evidence::manifest::Role::parse(role)?;
    let records = at.into().open_records()?;
    issue_token_in(records.as_ref(), role)
}

/// [`issue_token`] on a record store already open.
pub(crate) fn issue_token_in(records: &dyn store::RecordStore, role: &str) -> Result<String> {
    fieldcap_evidence::manifest::Role::parse(role)?;
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    let token = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    let expires = clock::now_ms().saturating_add(TOKEN_TTL.as_millis() as i64);
    records.insert_token(&endpoints::enrol::token_hash(&token), role, &fieldcap_evidence::time::now(), expires)?;
    Ok(token)
}

/// Revokes a device (a lost or seized phone): from now on it can submit nothing, while
/// everything it submitted before stays on record unchanged. Records a `revoked` custody event
/// `{device_id, reason}` if the server key exists. Returns false if the device was unknown or
/// already revoked.
pub fn revoke_device(at: impl Into<store::Deployment>, device_id: &str, reason: &str) -> Result<bool> {
    let at: store::Deployment = at.into();
    let records = at.open_records()?;
    let key = at.server_key(records.as_ref(), false).ok().map(|(k, _)| k);
    revoke_device_in(records.as_ref(), key.as_ref(), device_id, reason, serde_json::json!({}))
}

/// [`revoke_device`] on a record store already open, the custody event signed with `key` (none:
/// no event) and `by` (who revoked: the console's staff detail) merged into its detail.
pub(crate) fn revoke_device_in(records: &dyn store::RecordStore, key: Option<&fieldcap_evidence::identity::DeviceKey>, device_id: &str, reason: &str, by: serde_json::Value) -> Result<bool> {
    let done = records.revoke_device(device_id, &fieldcap_evidence::time::now())?;
    if let (true, Some(key)) = (done, key) {
        let id = fieldcap_evidence::identity::device_id_for(&key.verifying_key());
        let mut detail = serde_json::json!({ "device_id": device_id, "reason": reason });
        if let (Some(d), serde_json::Value::Object(b)) = (detail.as_object_mut(), by) {
            d.extend(b);
        }
        custody::append(records, key, &id, "revoked", None, detail)?;
    }
    Ok(done)
}

/// The log's checkpoint verifier key (C2SP signed-note vkey, type 0x01, named by the log
/// origin: `log_origin`, or `fieldcap.intake/<server key id>` by default), as a witness is
/// configured with it. Creates the server key if the data directory has none yet, so witnesses
/// can be set up before the server's first start.
pub fn log_vkey(at: impl Into<store::Deployment>, log_origin: Option<&str>) -> Result<fieldcap_evidence::cosignature::VerifierKey> {
    let at: store::Deployment = at.into();
    let (key, _) = match &at.data_dir {
        Some(dir) => keys::load_or_create(dir)?,
        None => at.server_key(at.open_records()?.as_ref(), true)?,
    };
    let vk = key.verifying_key();
    let origin = log_origin.map(String::from).unwrap_or_else(|| state::default_origin(&fieldcap_evidence::identity::device_id_for(&vk)));
    Ok(fieldcap_evidence::cosignature::VerifierKey::log(&origin, vk)?)
}

/// Every enrolled device of a data directory (revoked ones included, with `revoked_at`).
pub fn devices(at: impl Into<store::Deployment>) -> Result<Vec<store::DeviceRecord>> {
    let records = at.into().open_records()?;
    records.devices()
}

/// Incidents of a data directory (see [`mod@incidents`] for the grouping rule).
pub fn incidents(at: impl Into<store::Deployment>) -> Result<Vec<Incident>> {
    let records = at.into().open_records()?;
    let items: Vec<_> = records.items()?.iter().filter_map(incidents::item_of).collect();
    Ok(incidents::group(&items))
}

/// A live recording the server holds fragments of ([`live_recordings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRecording {
    /// The fragments held: clip, device, count, bytes, newest capture and storage times.
    pub head: store::FragmentHead,
    /// `complete` once the recording's original is received; `partial` until then (the phone
    /// is still filming, or the recording was cut short).
    pub state: &'static str,
}

/// Every live recording of a deployment with fragments held, by clip id: a clip with fragments
/// but no received original is `partial`.
pub fn live_recordings(at: impl Into<store::Deployment>) -> Result<Vec<LiveRecording>> {
    let records = at.into().open_records()?;
    let mut out = Vec::new();
    for head in records.fragment_heads()? {
        let whole = records.item(&head.clip_id)?.is_some_and(|i| i.state == "received");
        out.push(LiveRecording { head, state: if whole { "complete" } else { "partial" } });
    }
    Ok(out)
}
