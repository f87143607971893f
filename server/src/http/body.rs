//! Request bodies (read whole, up to a limit) and JSON answers.

use crate::error::{Error, Result};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Reads a whole body up to `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Error::TooLarge(format!("the body is larger than {limit} bytes or was cut off")))
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
