//! problem+json answers (RFC 9457): every error a handler returns becomes its problem document
//! ([`Error::problem`]) with the status and the tus headers it needs, and any other error answer
//! (router 405s, framework rejections, unknown paths) is turned into one, so a client only ever
//! has to read problem documents.

use crate::error::{problem, Error};
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fieldcap_evidence::protocol::Problem;

/// The HTTP response of a problem document.
pub(crate) fn problem_response(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    // The name again as a header: a HEAD answer carries no body (a revoked device's tus HEAD).
    if let Some(name) = fieldcap_evidence::problem::name_of(&p.problem_type) {
        if let Ok(v) = HeaderValue::from_str(name) {
            r.headers_mut().insert(fieldcap_evidence::protocol::H_PROBLEM, v);
        }
    }
    r
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let p = self.problem();
        if p.status >= 500 {
            // The full error stays in the server log; it names operations, never personal data.
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(problem = %p.problem_type, "request refused");
        }
        let mut r = problem_response(&p);
        if let Some(f) = crate::metrics::StorageFailure::of(&self) {
            r.extensions_mut().insert(f);
        }
        if let Error::OffsetMismatch { expected } = self {
            if let Ok(v) = HeaderValue::from_str(&expected.to_string()) {
                r.headers_mut().insert("upload-offset", v);
            }
        }
        if let Error::FragmentOutOfOrder { next, .. } = self {
            r.headers_mut().insert(fieldcap_evidence::protocol::H_NEXT_FRAGMENT, HeaderValue::from(next));
        }
        if let Error::Overloaded = self {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::error::RETRY_AFTER_SECS));
        }
        if let Error::StorageUnavailable(_) | Error::LogMoved = self {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::error::STORAGE_RETRY_AFTER_SECS));
        }
        if p.status == 507 {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::error::DISK_FULL_RETRY_AFTER_SECS));
        }
        if let Error::TusVersion = self {
            r.headers_mut().insert("tus-version", HeaderValue::from_static("1.0.0"));
        }
        r
    }
}

/// Fallback for unknown paths.
pub(crate) async fn not_found() -> Error {
    Error::NotFound("no such resource".into())
}

/// Turns any error response that is not already problem+json (router 405s, framework
/// rejections) into one.
pub(crate) async fn problem_safety_net(req: Request<Body>, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    if status.as_u16() < 400 {
        return r;
    }
    let is_problem = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if is_problem {
        return r;
    }
    let (name, title) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "Request body too large"),
        StatusCode::URI_TOO_LONG => ("uri-too-long", "Request URI too long"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ("headers-too-large", "Request headers too large"),
        s if s.is_server_error() => ("internal", "Internal server error"),
        _ => ("malformed-request", "Malformed request"),
    };
    let mut out = problem_response(&problem(status, name, title, None));
    for (k, v) in r.headers() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
