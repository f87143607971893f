//! One sync pass: its state, the order of its steps, and how it talks to the server.
//!
//! [`Pass::run`] puts every pending manifest on record first (hash first), then moves media and
//! receipts item by item, then the device's custody log. Every request goes through
//! [`Pass::send`], which owns the retry policy: transient failures (no answer, 5xx, 408, 429)
//! are retried with exponential backoff and jitter (honouring `Retry-After`) while the retries
//! and the budget last; the pass stops between requests on cancel or at its deadline. A signed
//! request refused as stale (the server's `stale-request` problem: its timestamp is outside the
//! server's window) measures the clock again and is signed and sent once more. How a step ended,
//! when not normally, is a [`Stop`].

use super::clock::get_time;
use crate::store::db::sync::{self as rows, ItemRow};
use super::upload::ChunkSizer;
use super::transport::{path_and_query, HttpRequest, HttpResponse, Transport, TransportError};
use super::{CancelToken, SyncOptions, SyncPhase, SyncProgress, SyncSummary};
use crate::error::Error;
use crate::protocol::{self, Problem};
use crate::store::Store;
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::problem;
use serde_json::json;
use std::time::{Duration, Instant};

/// How a step ended, when not normally.
pub(super) enum Stop {
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

impl From<rusqlite::Error> for Stop {
    fn from(e: rusqlite::Error) -> Self {
        Stop::Fatal(e.into())
    }
}

impl From<serde_json::Error> for Stop {
    fn from(e: serde_json::Error) -> Self {
        Stop::Fatal(e.into())
    }
}

/// The result of one step of a pass.
pub(super) type Step<T> = std::result::Result<T, Stop>;

/// The pinned server, from enrolment.
pub(super) struct Server {
    /// Base URL.
    pub(super) url: String,
    /// The log origin its checkpoints must name (empty: not recorded at enrolment).
    pub(super) origin: String,
    /// Its Ed25519 key.
    pub(super) key: VerifyingKey,
    /// Its key id.
    pub(super) key_id: String,
}

/// The state of one pass.
pub(super) struct Pass<'a> {
    pub(super) store: &'a Store,
    pub(super) t: &'a dyn Transport,
    pub(super) opts: &'a SyncOptions,
    pub(super) cancel: &'a CancelToken,
    pub(super) deadline: Instant,
    pub(super) server: Server,
    /// Device minus server clock, ms (signed requests are stamped with server time).
    pub(super) offset_ms: i64,
    pub(super) summary: SyncSummary,
    /// The size of the next `PATCH`, learned over the pass.
    pub(super) chunks: ChunkSizer,
    pub(super) progress: &'a mut dyn FnMut(&SyncProgress),
    pub(super) items_done: usize,
    pub(super) items_total: usize,
}

/// The tus protocol version header every tus request carries.
pub(super) const TUS: (&str, &str) = ("Tus-Resumable", "1.0.0");

/// The problem title of a 4xx answer, or a short description.
pub(super) fn problem_title(resp: &HttpResponse) -> String {
    match serde_json::from_slice::<Problem>(&resp.body) {
        Ok(p) => {
            let name = p.problem_type.rsplit('/').next().unwrap_or_default().to_string();
            if name.is_empty() {
                format!("{} ({})", p.title, resp.status)
            } else {
                format!("{} ({}, {name})", p.title, resp.status)
            }
        }
        // A HEAD answer has no body: the problem's name comes in a header.
        Err(_) => match resp.header(protocol::H_PROBLEM) {
            Some(name) => format!("the server answered HTTP {} ({})", resp.status, name.trim()),
            None => format!("the server answered HTTP {}", resp.status),
        },
    }
}

/// The server refused a signed request because its timestamp is outside the server's window
/// (401, problem type [`problem::STALE_REQUEST`]): the device's clock correction is stale.
/// Only the problem's `type` counts, never its human-readable text.
fn is_stale_request(resp: &HttpResponse) -> bool {
    resp.status == 401
        && serde_json::from_slice::<Problem>(&resp.body).is_ok_and(|p| problem::name_of(&p.problem_type) == Some(problem::STALE_REQUEST))
}

pub(super) fn is_transient_status(s: u16) -> bool {
    s >= 500 || s == 429 || s == 408
}

/// `Retry-After` in seconds (the HTTP-date form is ignored: backoff applies).
fn retry_after(resp: &HttpResponse) -> Option<Duration> {
    resp.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}

/// Exponential backoff with jitter: between half and all of `base * 2^attempt`, capped.
pub(super) fn backoff(opts: &SyncOptions, attempt: u32) -> Duration {
    let base = opts.backoff_base.as_millis() as u64;
    let max = opts.backoff_max.as_millis() as u64;
    let exp = base.saturating_mul(1u64 << attempt.min(20)).min(max).max(1);
    let r = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (exp / 2 + 1);
    Duration::from_millis(exp / 2 + r)
}

impl Pass<'_> {
    /// The whole pass: manifests, then media and receipts, then custody.
    pub(super) fn run(&mut self) -> Step<()> {
        // 0. Live capture: the pieces of recordings still being filmed, before anything else.
        if !self.opts.manifests_only {
            self.send_live_fragments()?;
        }
        if self.opts.live_only {
            return Ok(());
        }
        // Sealed storage: the council's escrow key (new items are wrapped to it), and the locks
        // that were waiting for it or whose time has come.
        if self.store.sealed_storage() {
            self.refresh_escrow_key()?;
            self.store.apply_lock_policy()?;
        }
        // 1. Hash first: every pending manifest, oldest first.
        let to_commit = rows::items_to_commit(&self.store.conn())?;
        for row in to_commit {
            self.check_stop()?;
            self.report(SyncPhase::Manifests, Some(&row.clip_id), 0, 0);
            self.send_manifest(&row)?;
        }
        if self.opts.manifests_only {
            self.check_witnessed()?;
            return self.upload_custody();
        }
        // 2. Media and receipts, oldest first.
        let to_upload = rows::items_to_upload(&self.store.conn())?;
        for row in to_upload {
            self.check_stop()?;
            self.item(&row)?;
            self.items_done += 1;
        }
        // The server's newest checkpoint, cosigned by the witnesses this device knows (if any).
        self.check_witnessed()?;
        // 3. The device's own custody log, so packages carry the device side too.
        self.upload_custody()
    }

    /// The item's row as it is now.
    pub(super) fn reload(&self, clip_id: &str) -> Step<ItemRow> {
        let row = rows::item(&self.store.conn(), clip_id)?;
        row.ok_or_else(|| Stop::Fatal(Error::NotFound(format!("item {clip_id}"))))
    }

    pub(super) fn report(&mut self, phase: SyncPhase, clip_id: Option<&str>, done: u64, total: u64) {
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

    pub(super) fn check_stop(&self) -> Step<()> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(Stop::Budget);
        }
        Ok(())
    }

    /// Sleeps for `d`, waking early on cancel; fails if the sleep would pass the deadline.
    pub(super) fn sleep(&self, d: Duration) -> Step<()> {
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

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.opts, attempt)
    }

    /// Sends a request built by `build` (called again for each attempt, so signatures and nonces
    /// are fresh), retrying transient failures. Returns any non-transient response.
    pub(super) fn send(&mut self, what: &str, build: &dyn Fn(&Pass<'_>) -> HttpRequest) -> Step<HttpResponse> {
        self.send_counting(what, build).map(|(resp, _)| resp)
    }

    /// [`Pass::send`], also saying how many attempts failed transiently before the answer.
    pub(super) fn send_counting(&mut self, what: &str, build: &dyn Fn(&Pass<'_>) -> HttpRequest) -> Step<(HttpResponse, u32)> {
        let mut attempt = 0u32;
        let mut failures = 0u32;
        let mut measured_again = false;
        loop {
            self.check_stop()?;
            let mut req = build(self);
            let left = self.deadline.saturating_duration_since(Instant::now());
            req.timeout = req.timeout.min(self.opts.request_timeout).min(left.max(Duration::from_millis(1)));
            let (err, wait) = match self.t.send(req) {
                Ok(resp) if is_stale_request(&resp) && measured_again => {
                    // Stale again right after a fresh measurement: the clocks moved under us.
                    // A request's time is never a reason to set an item aside: the pass stops
                    // (transient) and the item stays queued for the next one.
                    return Err(Stop::Transient(format!("{what}: {}", problem_title(&resp))));
                }
                Ok(resp) if is_stale_request(&resp) => {
                    // Our clock correction is stale (at the first attempt or after a transient
                    // failure, the device clock may have been set meanwhile): measure again and
                    // retry at once, once per request.
                    measured_again = true;
                    let (_, offset, rtt) = get_time(self.store, self.t, &self.server.url, Duration::from_secs(10)).map_err(|e| Stop::Transient(e.to_string()))?;
                    self.offset_ms = offset;
                    self.store.record_clock(offset, rtt)?;
                    (format!("{what}: {}", problem_title(&resp)), Duration::ZERO)
                }
                Ok(resp) if is_transient_status(resp.status) => {
                    failures += 1;
                    (format!("{what}: {}", problem_title(&resp)), retry_after(&resp).unwrap_or_else(|| self.backoff(attempt)))
                }
                Ok(resp) => return Ok((resp, failures)),
                Err(TransportError::Refused(e)) => return Err(Stop::Fatal(Error::Network(format!("{what}: {e}")))),
                Err(e) => {
                    failures += 1;
                    (format!("{what}: {e}"), self.backoff(attempt))
                }
            };
            tracing::debug!("transient failure, retrying: {err}");
            if attempt >= self.opts.max_retries {
                return Err(Stop::Transient(err));
            }
            attempt += 1;
            self.sleep(wait)?;
        }
    }

    /// A signed device request.
    pub(super) fn signed(&self, method: &str, url: &str, body: Vec<u8>, content_type: Option<&str>) -> HttpRequest {
        let ts = self.store.clock_ms() - self.offset_ms;
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
    pub(super) fn needs_attention(&mut self, row: &ItemRow, reason: &str) -> Step<()> {
        rows::set_needs_attention(&self.store.conn(), &row.clip_id, reason)?;
        self.store.append_custody("sync_refused", Some(&row.clip_id), json!({"reason": reason}))?;
        Ok(())
    }

    fn note_transient(&self, clip_id: &str, err: &str) {
        let next = crate::time::format(chrono::Utc::now() + chrono::Duration::seconds(30));
        let _ = rows::note_transient(&self.store.conn(), clip_id, err, &next);
    }

    /// Notes a transient stop on the item (attempts, last error, next attempt) and passes the
    /// result on.
    pub(super) fn with_transient_note<T>(&self, clip_id: &str, r: Step<T>) -> Step<T> {
        if let Err(Stop::Transient(e)) = &r {
            self.note_transient(clip_id, e);
        }
        r
    }

    pub(super) fn set_state(&self, clip_id: &str, state: &str) -> Step<()> {
        rows::set_state(&self.store.conn(), clip_id, state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, problem_type: &str, title: &str) -> HttpResponse {
        let p = Problem { problem_type: problem_type.into(), title: title.into(), status, detail: None };
        HttpResponse { status, headers: vec![], body: serde_json::to_vec(&p).expect("json") }
    }

    #[test]
    fn a_stale_request_is_recognised_by_its_problem_type_only() {
        assert!(is_stale_request(&answer(401, &problem::type_uri(problem::STALE_REQUEST), "Request timestamp outside the allowed window")));
        // Look-alikes: another namespace (a proxy in front of the server), another name whose
        // words mention the clock, the right name with another status, no problem document.
        assert!(!is_stale_request(&answer(401, "https://proxy.example/problems/clock-skew", "clock skew")));
        assert!(!is_stale_request(&answer(401, "https://proxy.example/problems/stale-request", "stale")));
        assert!(!is_stale_request(&answer(401, &problem::type_uri(problem::UNAUTHENTICATED), "check your clock")));
        assert!(!is_stale_request(&answer(403, &problem::type_uri(problem::STALE_REQUEST), "stale")));
        assert!(!is_stale_request(&HttpResponse { status: 401, headers: vec![], body: b"clock skew".to_vec() }));
    }
}
