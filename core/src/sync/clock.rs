//! The device's clock against the server's: `GET /v1/time`, and the offset it gives.
//!
//! Device clocks drift and may be set wrong on purpose. Every pass (and every enrolment) measures
//! the offset (device minus server, taking the server's clock as read at the middle of the
//! round trip) and records it twice: in the `server` table, from where sealing copies it into
//! later manifests (`capture.clock.offset_ms`), and in custody (`clock_offset_measured`), so a
//! court sees which correction applied when. Signed requests carry a server-corrected
//! timestamp; when the server still finds one stale, the pass measures again (see `pass.rs`).

use super::pass::problem_title;
use crate::store::db::sync as rows;
use super::transport::{join_url, HttpRequest, Transport};
use crate::error::{Error, Result};
use crate::protocol::TimeResponse;
use crate::store::Store;
use serde_json::json;
use std::time::{Duration, Instant};

/// `GET /v1/time`: the server's answer, the offset (device minus server, ms, the device clock
/// read from `store`) and the round trip (ms).
pub(super) fn get_time(store: &Store, t: &dyn Transport, base: &str, timeout: Duration) -> Result<(TimeResponse, i64, i64)> {
    let t0 = store.clock_ms();
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

impl Store {
    /// Records a measured clock offset (for later manifests) and the measurement (in custody).
    pub(super) fn record_clock(&self, offset_ms: i64, rtt_ms: i64) -> Result<()> {
        let v = json!({"offset_ms": offset_ms, "measured_at": crate::time::now(), "rtt_ms": rtt_ms});
        rows::server_put(&self.conn(), "clock_offset", &serde_json::to_vec(&v)?)?;
        self.append_custody("clock_offset_measured", None, json!({"offset_ms": offset_ms, "rtt_ms": rtt_ms}))?;
        Ok(())
    }
}
