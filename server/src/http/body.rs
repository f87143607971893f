//! Request bodies and JSON answers.
//!
//! A JSON body is read whole, but only within bounds: its endpoint's size limit (refused from
//! `Content-Length` before a byte is read), a minimum rate ([`crate::ServerConfig::body_grace`],
//! [`crate::ServerConfig::body_min_rate`]), and a server-wide budget of bytes held at once
//! ([`crate::ServerConfig::max_buffered_body_bytes`]), reserved before reading: a request that
//! does not fit is answered 503 `overloaded` at once.
//!
//! A request refused before its body is read gets its answer at once, and its body is then read
//! and thrown away in the background ([`linger`], at the same size and rate limits, nothing
//! kept) rather than cut: closing a socket with unread bytes resets the connection, and the
//! client could lose the answer (for a device, a `stale-request` it must act on).

use crate::error::{Error, Result};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

/// A share of the body budget, held as long as the body's bytes are.
pub(crate) type BodyHold = OwnedSemaphorePermit;

/// The body length a request announces, refused (413) if over `limit`.
pub(crate) fn declared_length(headers: &HeaderMap, limit: usize) -> Result<Option<usize>> {
    let Some(v) = headers.get(header::CONTENT_LENGTH) else { return Ok(None) };
    let n: u64 = v.to_str().ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| Error::BadRequest("Content-Length is not a number".into()))?;
    if n > limit as u64 {
        return Err(Error::TooLarge(format!("the body is larger than {limit} bytes")));
    }
    Ok(Some(n as usize))
}

/// Reserves `n` bytes of the body budget; 503 `overloaded` if they are not free now.
fn reserve(state: &AppState, n: usize) -> Result<BodyHold> {
    let total = state.cfg.max_buffered_body_bytes;
    if n > total {
        return Err(Error::TooLarge(format!("the body is larger than the {total} bytes the server buffers in all")));
    }
    let n = u32::try_from(n.max(1)).map_err(|_| Error::TooLarge("the body is too large".into()))?;
    state.body_budget.clone().try_acquire_many_owned(n).map_err(|_| Error::Overloaded)
}

/// When a body that has delivered `received` bytes since `start` falls behind the minimum rate.
fn due(state: &AppState, start: Instant, received: usize) -> Instant {
    let rate = state.cfg.body_min_rate.max(1) as f64;
    let allowed = Duration::from_secs_f64(((received as f64 + 1.0) / rate).min(86_400.0));
    start + state.cfg.body_grace + allowed
}

/// Reads a body up to `limit` bytes at the minimum rate, handing each chunk to `keep`.
async fn pull(state: &AppState, body: Body, limit: usize, mut keep: impl FnMut(&[u8])) -> Result<()> {
    let start = Instant::now();
    let mut received = 0usize;
    let mut stream = body.into_data_stream();
    loop {
        match tokio::time::timeout_at(due(state, start, received), stream.next()).await {
            Err(_) => {
                return Err(Error::RequestTimeout(format!(
                    "the body arrived slower than {} bytes/s after the first {} s",
                    state.cfg.body_min_rate,
                    state.cfg.body_grace.as_secs_f64()
                )))
            }
            Ok(None) => return Ok(()),
            Ok(Some(Err(_))) => return Err(Error::BadRequest("the body was cut off".into())),
            Ok(Some(Ok(chunk))) => {
                received = received.saturating_add(chunk.len());
                if received > limit {
                    return Err(Error::TooLarge(format!("the body is larger than {limit} bytes")));
                }
                keep(&chunk);
            }
        }
    }
}

/// Reads a whole JSON body of at most `limit` bytes within the body budget and rate (see the
/// module documentation). The hold must be kept as long as the bytes are.
pub(crate) async fn read_body(state: &Arc<AppState>, headers: &HeaderMap, body: Body, limit: usize) -> Result<(Bytes, BodyHold)> {
    let declared = match declared_length(headers, limit) {
        Ok(d) => d,
        Err(e) => return Err(linger(state, body, limit, e)),
    };
    let hold = match reserve(state, declared.unwrap_or(limit)) {
        Ok(h) => h,
        Err(e) => return Err(linger(state, body, limit, e)),
    };
    // Grown as bytes arrive (doubling), never past what was reserved.
    let cap = declared.unwrap_or(limit).min(limit);
    let mut out: Vec<u8> = Vec::with_capacity(cap.min(64 * 1024));
    pull(state, body, cap, |c| {
        let need = out.len() + c.len();
        if need > out.capacity() {
            out.reserve_exact((out.capacity() * 2).clamp(need, cap.max(need)) - out.len());
        }
        out.extend_from_slice(c);
    })
    .await?;
    Ok((Bytes::from(out), hold))
}

/// Reads a body as [`read_body`] would, at the same size and rate limits, keeping nothing (for
/// a request to be refused whatever its body says, answered only after it as any other would be).
pub(crate) async fn discard_body(state: &AppState, headers: &HeaderMap, body: Body, limit: usize) -> Result<()> {
    let declared = declared_length(headers, limit)?;
    pull(state, body, declared.unwrap_or(limit).min(limit), |_| {}).await
}

/// Refuses a request with `e` without reading its body first: the body (up to `limit` bytes, at
/// the minimum rate) is read and dropped in the background while the answer goes out. Returns `e`.
pub(crate) fn linger(state: &Arc<AppState>, body: Body, limit: usize, e: Error) -> Error {
    let state = state.clone();
    tokio::spawn(async move {
        let _ = pull(&state, body, limit, |_| {}).await;
    });
    e
}

/// Parses a JSON request body; `what` names it in the refusal.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(format!("{what} is not valid: {e}")))
}

/// A JSON answer, never cached.
pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Result<Response> {
    let body = serde_json::to_vec(v)?;
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
