//! Thin entry points for the fuzz targets in `fuzz/` (cargo-fuzz), over the server's parsers of
//! untrusted request bytes that are otherwise private: the signed-request headers and the tus
//! headers. Not part of the server's API (hidden from the docs); each function calls the code
//! the server runs, never a copy of it.

use crate::state::AppState;
use crate::ServerConfig;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use std::path::Path;

/// Builds a header map from raw pairs, skipping names or values that HTTP would not carry (the
/// HTTP layer refuses those before a handler runs).
pub fn header_map(pairs: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            h.append(n, v);
        }
    }
    h
}

/// A server data directory with its state open, to check signed requests against.
pub struct SignedRequests {
    state: AppState,
}

impl SignedRequests {
    /// Opens (creating) the server state in `data_dir`.
    pub fn open(data_dir: &Path) -> crate::Result<SignedRequests> {
        Ok(SignedRequests { state: AppState::open(ServerConfig::new(data_dir.to_path_buf(), ([127, 0, 0, 1], 0).into()))? })
    }

    /// Runs the server's request authentication over `method`, `uri`, `headers` and `body`:
    /// `Ok(device_id)` if the request is accepted, else the error's text. Returns `None` when
    /// the method or URI would not get past the HTTP layer.
    pub fn check(&self, method: &[u8], uri: &[u8], headers: &HeaderMap, body: &[u8]) -> Option<Result<String, String>> {
        let method = Method::from_bytes(method).ok()?;
        let uri = Uri::try_from(uri).ok()?;
        Some(crate::http::auth::authenticate(&self.state, &method, &uri, headers, body).map(|d| d.device_id).map_err(|e| e.to_string()))
    }
}

/// The tus header parsers: `Upload-Offset`/`Upload-Length` (a non-negative integer), the PATCH
/// `Content-Type`, and the `fieldcap-upload` capability in `Upload-Metadata`.
pub mod tus {
    use super::HeaderMap;

    /// The integer header `name` (`upload-offset`, `upload-length`, `content-length`).
    pub fn header_u64(h: &HeaderMap, name: &str) -> Result<Option<u64>, String> {
        crate::endpoints::tus::header_u64(h, name).map_err(|e| e.to_string())
    }

    /// Whether a PATCH body's `Content-Type` is accepted.
    pub fn patch_content_type(h: &HeaderMap) -> Result<(), String> {
        crate::endpoints::tus::check_patch_content_type(h).map_err(|e| e.to_string())
    }

    /// The upload capability named by `Upload-Metadata`.
    pub fn capability_from_metadata(h: &HeaderMap) -> Result<String, String> {
        crate::endpoints::tus::capability_from_metadata(h).map_err(|e| e.to_string())
    }
}
