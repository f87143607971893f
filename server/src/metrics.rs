//! Health, readiness and metrics for a load balancer and Prometheus.
//!
//! * `GET /healthz`: 200 `ok` while the process serves requests (liveness).
//! * `GET /readyz`: 200 `ready` when both stores answer (a record read and a blob lookup); else
//!   503 `storage-unavailable` problem+json, so a load balancer sends requests to another
//!   replica while this one's database or object storage is away.
//! * `GET /metrics`: OpenMetrics text (Prometheus scrapes it): uploads in progress, media bytes
//!   received, refusals by problem name, storage failures by kind, and the log's size.
//!
//! The figures name no device, item or person: labels are problem names and failure kinds only.
//!
//! ```
//! let m = fieldcap_server::metrics::Metrics::default();
//! m.add_received_bytes(5);
//! let text = m.encode(Some(3)).unwrap();
//! assert!(text.contains("fieldcap_received_bytes_total 5"));
//! assert!(text.contains("fieldcap_log_size 3"));
//! ```

use crate::error::{Error, Result};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of a family: one `(name, value)` pair.
type Label = Vec<(String, String)>;

/// The server's counters and gauges (cheap to clone: each is shared).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    uploads_in_progress: Gauge,
    received_bytes: Counter<u64, AtomicU64>,
    refusals: Family<Label, Counter>,
    storage_errors: Family<Label, Counter>,
}

/// Marks a response whose failure was the storage's, with its kind (set by the error's
/// response, counted by [`track`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageFailure(pub &'static str);

impl StorageFailure {
    /// The storage failure kind of an error, if it is one.
    pub(crate) fn of(e: &Error) -> Option<StorageFailure> {
        match e {
            Error::StorageUnavailable(_) => Some(StorageFailure("unavailable")),
            Error::LogMoved => Some(StorageFailure("log_contention")),
            Error::Storage(_) | Error::Io { .. } | Error::Core(_) if e.is_disk_full() => Some(StorageFailure("full")),
            Error::Storage(_) | Error::Io { .. } => Some(StorageFailure("error")),
            _ => None,
        }
    }
}

impl Metrics {
    /// One more upload body being received; the returned guard counts it out when dropped.
    pub fn upload_started(&self) -> UploadInProgress {
        self.uploads_in_progress.inc();
        UploadInProgress(self.uploads_in_progress.clone())
    }

    /// Media bytes received (counted as they arrive, whether or not the upload completes).
    pub fn add_received_bytes(&self, n: u64) {
        self.received_bytes.inc_by(n);
    }

    /// A request refused (or failed) with this problem name.
    pub fn refused(&self, problem: &str) {
        self.refusals.get_or_create(&vec![("problem".to_string(), problem.to_string())]).inc();
    }

    /// A storage failure of this kind (`unavailable`, `full`, `error`, `log_contention`).
    pub fn storage_error(&self, kind: &str) {
        self.storage_errors.get_or_create(&vec![("kind".to_string(), kind.to_string())]).inc();
    }

    /// The OpenMetrics text, with the log's size when known.
    pub fn encode(&self, log_size: Option<u64>) -> Result<String> {
        let mut r = Registry::default();
        r.register("fieldcap_uploads_in_progress", "Media upload bodies being received now", self.uploads_in_progress.clone());
        r.register("fieldcap_received_bytes", "Media bytes received", self.received_bytes.clone());
        r.register("fieldcap_refusals", "Requests refused or failed, by problem name", self.refusals.clone());
        r.register("fieldcap_storage_errors", "Failures of the record or blob store, by kind", self.storage_errors.clone());
        if let Some(n) = log_size {
            let g: Gauge = Gauge::default();
            g.set(i64::try_from(n).unwrap_or(i64::MAX));
            r.register("fieldcap_log_size", "Leaves in the transparency log", g);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).map_err(|_| Error::Internal("encoding the metrics".into()))?;
        Ok(out)
    }
}

/// Counts an upload out of [`Metrics`]' uploads in progress when dropped.
#[derive(Debug)]
pub struct UploadInProgress(Gauge);

impl Drop for UploadInProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts every answer that is a problem (by name) and every storage failure (by kind).
pub(crate) async fn track(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::state::AppState>>,
    req: axum::http::Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let r = next.run(req).await;
    if let Some(name) = r.headers().get(fieldcap_evidence::protocol::H_PROBLEM).and_then(|v| v.to_str().ok()) {
        state.metrics.refused(name);
    }
    if let Some(StorageFailure(kind)) = r.extensions().get::<StorageFailure>() {
        state.metrics.storage_error(kind);
    }
    r
}

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: both stores answer.
pub(crate) async fn readyz(axum::extract::State(state): crate::http::AppStateRef) -> Result<&'static str> {
    crate::http::blocking(move || {
        state.records.latest_checkpoint().map_err(|e| unready("the record store", e))?;
        state.blobs.contains(&"0".repeat(64)).map_err(|e| unready("the blob store", e))?;
        Ok("ready\n")
    })
    .await
}

fn unready(which: &str, e: Error) -> Error {
    tracing::warn!(error = %e, "readiness check: {which} failed");
    match e {
        Error::StorageUnavailable(m) => Error::StorageUnavailable(m),
        _ => Error::StorageUnavailable(format!("{which} does not answer")),
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(axum::extract::State(state): crate::http::AppStateRef) -> Result<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let st = state.clone();
    // The log's size as the records have it (other replicas append too); none if they do not answer.
    let size = crate::http::blocking(move || Ok(st.records.latest_checkpoint().ok().flatten().map(|(s, _)| s))).await?;
    let text = state.metrics.encode(size)?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(r)
}
