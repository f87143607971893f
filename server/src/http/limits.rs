//! Request size limits: bodies per endpoint, and URI and header lengths checked before any handler
//! runs. What is larger than even the HTTP parser holds ([`HEAD_BUFFER_BYTES`],
//! [`MAX_HEADERS_COUNT`], URIs over 64 KiB) is refused by it, in problem+json too
//! (see `http::serve`).

use crate::error::Error;
use axum::body::Body;
use axum::http::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Largest manifest accepted (bytes).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest `POST /v1/manifests` body (base64 of the largest manifest plus signature and JSON).
pub const MAX_SUBMISSION_BODY: usize = MAX_MANIFEST_BYTES / 3 * 4 + 64 * 1024;
/// Largest other JSON body.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// Largest `POST /v1/custody` body.
pub const MAX_CUSTODY_BODY: usize = 2 * 1024 * 1024;
/// Longest accepted request URI.
pub const MAX_URI_BYTES: usize = 4096;
/// Longest accepted single header value.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Largest accepted sum of header names and values.
pub const MAX_HEADERS_TOTAL: usize = 64 * 1024;
/// Most header lines in one request (more is refused by the HTTP parser: 431).
pub const MAX_HEADERS_COUNT: usize = 100;
/// The HTTP parser's read buffer per connection: the largest request head it reads (larger is
/// refused: 431). Above [`MAX_HEADERS_TOTAL`] plus [`MAX_URI_BYTES`], so the limits above are
/// the ones a client meets.
pub const HEAD_BUFFER_BYTES: usize = 128 * 1024;

/// Refuses over-long URIs and headers before any handler runs.
pub(crate) async fn limits(req: Request<Body>, next: Next) -> Response {
    if req.uri().to_string().len() > MAX_URI_BYTES {
        return Error::UriTooLong.into_response();
    }
    let mut total = 0usize;
    for (k, v) in req.headers() {
        if v.len() > MAX_HEADER_BYTES {
            return Error::HeadersTooLarge.into_response();
        }
        total += k.as_str().len() + v.len();
    }
    if total > MAX_HEADERS_TOTAL {
        return Error::HeadersTooLarge.into_response();
    }
    next.run(req).await
}
