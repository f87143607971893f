//! Network: the optional foreign HTTP transport, enrolment, `sync_once` and `cancel`.

use crate::api::Fieldcap;
use crate::error::{FieldcapError, Result};
use crate::listener::{SyncPhase, SyncProgress};
use crate::types::{ts, ItemState};
use fieldcap_core::sync::{self as core_sync, CancelToken, Transport, TransportError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// One HTTP header (repeated names are kept as separate entries).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpHeader {
    /// Name (compare case-insensitively).
    pub name: String,
    /// Value.
    pub value: String,
}

/// An HTTP request the core wants sent.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpRequest {
    /// `GET`, `POST`, `HEAD`, `PATCH`, `DELETE`, …
    pub method: String,
    /// Absolute URL (`https://`, or `http://` to loopback only; the core checks before calling).
    pub url: String,
    /// Request headers.
    pub headers: Vec<HttpHeader>,
    /// Body (empty for none).
    pub body: Vec<u8>,
    /// Give up after this many milliseconds.
    pub timeout_ms: u64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<HttpHeader>,
    /// Body.
    pub body: Vec<u8>,
}

/// A platform HTTP client (OkHttp, URLSession, …) the core sends its requests through.
///
/// Called on the sync thread; blocking is expected. Return every HTTP answer as a response,
/// whatever its status (the core interprets 4xx/5xx, retries and tus offsets). Throw
/// `FieldcapError.Network` only when no answer arrived (no connection, timeout, TLS failure), and
/// `FieldcapError.Cancelled` when the platform cancelled the call (this stops the pass as
/// `cancel()` would). Do not follow redirects.
#[uniffi::export(foreign)]
pub trait HttpTransport: Send + Sync {
    /// Sends one request and returns the response.
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, FieldcapError>;
}

fn headers_in(h: Vec<(String, String)>) -> Vec<HttpHeader> {
    h.into_iter().map(|(name, value)| HttpHeader { name, value }).collect()
}

/// Adapts the foreign transport to the core's [`Transport`].
struct ForeignTransport {
    inner: Arc<dyn HttpTransport>,
    cancel: CancelToken,
}

impl Transport for ForeignTransport {
    fn send(&self, req: core_sync::HttpRequest) -> std::result::Result<core_sync::HttpResponse, TransportError> {
        // The URL policy (https, or http to loopback) stays in the core whatever client carries it.
        core_sync::url_allowed(&req.url)?;
        let r = HttpRequest {
            method: req.method,
            url: req.url,
            headers: headers_in(req.headers),
            body: req.body,
            timeout_ms: u64::try_from(req.timeout.as_millis()).unwrap_or(u64::MAX),
        };
        match self.inner.send(r) {
            Ok(resp) => Ok(core_sync::HttpResponse {
                status: resp.status,
                headers: resp.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                body: resp.body,
            }),
            Err(FieldcapError::Cancelled { detail }) => {
                self.cancel.cancel();
                Err(TransportError::Network(format!("the platform cancelled the request: {detail}")))
            }
            Err(e) => Err(TransportError::Network(e.to_string())),
        }
    }
}

/// Network state kept by `Fieldcap`: the transport and the token of the pass in progress.
pub(crate) struct NetState {
    foreign: Option<Arc<dyn HttpTransport>>,
    builtin: OnceLock<core_sync::ReqwestTransport>,
    current: Mutex<Option<CancelToken>>,
}

impl NetState {
    pub(crate) fn new(foreign: Option<Arc<dyn HttpTransport>>) -> NetState {
        NetState { foreign, builtin: OnceLock::new(), current: Mutex::new(None) }
    }

    /// Runs `f` with the transport to use; `cancel` is the token the foreign transport may trip.
    fn with_transport<T>(&self, cancel: &CancelToken, f: impl FnOnce(&dyn Transport) -> Result<T>) -> Result<T> {
        if let Some(inner) = &self.foreign {
            return f(&ForeignTransport { inner: inner.clone(), cancel: cancel.clone() });
        }
        if self.builtin.get().is_none() {
            let t = core_sync::ReqwestTransport::new()?;
            let _ = self.builtin.set(t);
        }
        let t = self.builtin.get().ok_or_else(|| FieldcapError::internal("HTTP client unavailable"))?;
        f(t)
    }

    /// The transport as a shared handle, for work on a thread of the core's own (the live
    /// uploader): the foreign transport when the shell gave one, else the core's own client.
    /// A request the platform cancels fails that live pass only (the uploader retries later).
    pub(crate) fn shared_transport(&self) -> Result<Arc<dyn Transport>> {
        if let Some(inner) = &self.foreign {
            return Ok(Arc::new(ForeignTransport { inner: inner.clone(), cancel: CancelToken::new() }));
        }
        if self.builtin.get().is_none() {
            let t = core_sync::ReqwestTransport::new()?;
            let _ = self.builtin.set(t);
        }
        let t = self.builtin.get().ok_or_else(|| FieldcapError::internal("HTTP client unavailable"))?;
        Ok(Arc::new(t.clone()))
    }
}

/// This device's enrolment with a council server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EnrollmentInfo {
    /// Server base URL.
    pub server_url: String,
    /// Hex id of the server key pinned at enrolment.
    pub server_key_id: String,
    /// Device id named in the certificate.
    pub device_id: String,
    /// Role the council office granted (`monitor` or `police`).
    pub role: String,
    /// Organisation in the certificate.
    pub org: Option<String>,
    /// When the server enrolled the device.
    pub enrolled_at: SystemTime,
}

/// Phase of a sync pass, for progress display.
impl From<core_sync::SyncPhase> for SyncPhase {
    fn from(p: core_sync::SyncPhase) -> Self {
        match p {
            core_sync::SyncPhase::Waiting => SyncPhase::Waiting,
            core_sync::SyncPhase::Clock => SyncPhase::Clock,
            core_sync::SyncPhase::Manifests => SyncPhase::Manifests,
            core_sync::SyncPhase::Verifying => SyncPhase::Verifying,
            core_sync::SyncPhase::Uploading => SyncPhase::Uploading,
            core_sync::SyncPhase::Receipt => SyncPhase::Receipt,
            core_sync::SyncPhase::Done => SyncPhase::Done,
        }
    }
}

impl From<&core_sync::SyncProgress> for SyncProgress {
    fn from(p: &core_sync::SyncProgress) -> Self {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        SyncProgress {
            phase: p.phase.into(),
            clip_id: p.clip_id.clone(),
            item_bytes_done: p.item_bytes_done,
            item_bytes_total: p.item_bytes_total,
            items_done: n(p.items_done),
            items_total: n(p.items_total),
            bytes_uploaded: p.bytes_uploaded,
        }
    }
}

/// What one `sync_once` pass did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    /// Manifests newly committed by the server (hash first).
    pub manifests_committed: u32,
    /// Media uploads completed.
    pub uploads_completed: u32,
    /// Pieces of live recordings the server acknowledged (signed acknowledgements kept).
    pub fragments_acknowledged: u64,
    /// Media bytes the server acknowledged.
    pub bytes_uploaded: u64,
    /// Bytes sent twice because a connection was cut (at most a chunk per cut).
    pub bytes_resent: u64,
    /// Receipts received and verified.
    pub receipts_verified: u32,
    /// Items that need a person's attention (all of them, not only new ones).
    pub needs_attention: u32,
    /// Items still to sync: schedule another pass when this is not zero.
    pub remaining: u32,
    /// Alarms raised in this pass (see `Fieldcap.alarms()`).
    pub alarms: u32,
    /// Local media copies removed after a verified receipt.
    pub purged: u32,
    /// This device's custody events sent and acknowledged by the server in this pass (the device
    /// side of the chain of custody, which evidence packages carry).
    pub custody_events_uploaded: u64,
    /// The pass stopped because `cancel()` was called (or the platform cancelled a request).
    pub cancelled: bool,
    /// The pass stopped at its time budget.
    pub budget_exhausted: bool,
    /// Another pass was running on this store; nothing was done.
    pub busy: bool,
    /// Measured clock offset, device minus server, in ms.
    pub clock_offset_ms: Option<i64>,
    /// Round-trip time of that measurement, in ms.
    pub rtt_ms: Option<i64>,
    /// The transient error the pass stopped on (server unreachable, …), if any: retry later.
    pub last_error: Option<String>,
}

impl From<core_sync::SyncSummary> for SyncSummary {
    fn from(s: core_sync::SyncSummary) -> Self {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        SyncSummary {
            manifests_committed: n(s.manifests_committed),
            uploads_completed: n(s.uploads_completed),
            fragments_acknowledged: s.fragments_acknowledged,
            bytes_uploaded: s.bytes_uploaded,
            bytes_resent: s.bytes_resent,
            receipts_verified: n(s.receipts_verified),
            needs_attention: n(s.needs_attention),
            remaining: n(s.remaining),
            alarms: n(s.alarms),
            purged: n(s.purged),
            custody_events_uploaded: s.custody_events_uploaded,
            cancelled: s.cancelled,
            budget_exhausted: s.budget_exhausted,
            busy: s.busy,
            clock_offset_ms: s.clock_offset_ms,
            rtt_ms: s.rtt_ms,
            last_error: s.last_error,
        }
    }
}

#[uniffi::export]
impl Fieldcap {
    /// Sets the witnesses whose cosignatures this device requires on the server's transparency
    /// log: C2SP verifier keys (`name+keyid+base64`, signature type 0x04) that the council
    /// publishes and each witness confirms out of band — never taken from the server, which could
    /// name accomplices. `threshold`: how many must have cosigned (`None`: all). An empty list
    /// turns the check off. Each sync pass then checks the cosignatures on receipts and on the
    /// server's newest checkpoint; too few (or a forged one) raise the `log_unwitnessed` alarm
    /// (see `alarms`). Recorded in the device's custody log. A key that does not parse, is not
    /// a witness key, or a threshold of 0 or above the number of keys gives `InvalidInput`.
    pub fn set_witnesses(&self, vkeys: Vec<String>, threshold: Option<u32>) -> Result<()> {
        let keys = vkeys
            .iter()
            .enumerate()
            .map(|(i, v)| fieldcap_core::evidence::cosignature::VerifierKey::parse(v).map_err(|e| FieldcapError::invalid(format!("witness key {}: {e}", i + 1))))
            .collect::<Result<Vec<_>>>()?;
        self.store.set_witnesses(&keys, threshold.map(|t| t as usize)).map_err(FieldcapError::from)
    }

    /// Enrols this device with the council office's server using a one-time token. Pins the
    /// server key; re-enrolling with a server that has another key is refused (`Integrity`).
    /// A refused token gives `Server`; no answer gives `Network`.
    ///
    /// Blocking (network, up to about a minute): call off the main thread.
    pub fn enroll(&self, server_url: String, token: String) -> Result<EnrollmentInfo> {
        let cancel = CancelToken::new();
        self.net.with_transport(&cancel, |t| self.store.enroll(t, &server_url, &token).map_err(FieldcapError::from))?;
        tracing::info!("device enrolled");
        self.enrollment()?.ok_or_else(|| FieldcapError::internal("the enrolment was not stored"))
    }

    /// The stored enrolment, or `None` before `enroll`.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn enrollment(&self) -> Result<Option<EnrollmentInfo>> {
        let Some(e) = self.store.enrollment()? else { return Ok(None) };
        Ok(Some(EnrollmentInfo {
            enrolled_at: ts(&e.certificate.enrolled_at)?,
            server_url: e.server_url,
            server_key_id: e.server_key_id,
            device_id: e.certificate.device_id,
            role: e.certificate.role,
            org: e.certificate.org,
        }))
    }

    /// One sync pass: clock, manifests (hash first), media (resumable), receipts (verified),
    /// stopping after `budget_secs` seconds or when `cancel()` is called — with every
    /// acknowledged byte kept, so the next pass continues. Problems with single items are
    /// recorded on those items (`NeedsAttention`) and counted, not thrown. Throws `NotEnrolled`
    /// before `enroll`, `Network` when the server cannot be reached at all, `Integrity` when the
    /// server key changed.
    ///
    /// Blocking (network, up to `budget_secs`): call off the main thread, e.g. from a WorkManager
    /// worker or a BGProcessingTask.
    pub fn sync_once(&self, budget_secs: u32) -> Result<SyncSummary> {
        if budget_secs == 0 {
            return Err(FieldcapError::invalid("budget_secs must be at least 1"));
        }
        // Not enrolled: the core's `Error::NotEnrolled` maps to `FieldcapError::NotEnrolled`.
        let token = CancelToken::new();
        *self.net.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        let before: HashMap<String, ItemState> =
            self.store.list_items()?.into_iter().map(|i| (i.clip_id, ItemState::parse(&i.state))).collect();
        let opts = core_sync::SyncOptions { budget: Duration::from_secs(u64::from(budget_secs)), ..Default::default() };
        let listeners = &self.listeners;
        let result = self.net.with_transport(&token, |t| {
            self.store
                .sync_once(t, &opts, &token, &mut |p| listeners.progress(p.into()))
                .map_err(FieldcapError::from)
        });
        *self.net.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match &result {
            Ok(s) => tracing::info!(
                "sync pass: {} receipt(s) verified, {} left, cancelled={}, budget exhausted={}",
                s.receipts_verified,
                s.remaining,
                s.cancelled,
                s.budget_exhausted
            ),
            Err(e) => tracing::warn!("sync pass failed: {e}"),
        }
        if let Ok(items) = self.store.list_items() {
            for i in items {
                let now = ItemState::parse(&i.state);
                if before.get(&i.clip_id) != Some(&now) {
                    self.listeners.item_changed(&i.clip_id, now);
                }
            }
        }
        result.map(Into::into)
    }

    /// Stops the sync pass in progress at its next safe point (between requests), from any
    /// thread — e.g. a BGTask expiration handler or WorkManager's `onStopped`. `sync_once` then
    /// returns promptly with `cancelled = true`. Returns false when no pass was running.
    /// Never blocks.
    pub fn cancel(&self) -> bool {
        match self.net.current.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }
}
