//! The network, as plain data: [`HttpRequest`] in, [`HttpResponse`] (or a [`TransportError`])
//! out, through any [`Transport`].
//!
//! The sync pass never names an HTTP library: a phone shell carries the requests with its
//! platform stack (OkHttp, URLSession) through the bindings, and the built-in
//! `ReqwestTransport` (feature `reqwest-transport`, on by default) does it on desktops and in
//! tests. Whatever carries them, [`url_allowed`] decides where requests may go: `https://`, or
//! plain `http://` only to a loopback address.

use std::time::Duration;

/// One HTTP request, as plain data (so any HTTP stack can carry it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, `HEAD`, `PATCH`, …
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header (name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for none).
    pub body: Vec<u8>,
    /// Whole-request timeout.
    pub timeout: Duration,
}

/// One HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header (name, value) pairs; names compared case-insensitively.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a request got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request was not sent because policy forbids it (e.g. plain HTTP to a remote host).
    /// Permanent: retrying will not help.
    #[error("request refused: {0}")]
    Refused(String),
    /// The request timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Connecting, sending or receiving failed. Transient.
    #[error("network error: {0}")]
    Network(String),
}

/// Carries [`HttpRequest`]s. Implemented by the built-in `ReqwestTransport` and by phone shells.
pub trait Transport: Send + Sync {
    /// Sends one request and returns the response (any status), or why there was none.
    fn send(&self, req: HttpRequest) -> std::result::Result<HttpResponse, TransportError>;
}

/// True when `url` may be used: `https://`, or `http://` to a loopback host (`127.0.0.0/8`,
/// `::1`, `localhost`).
pub fn url_allowed(url: &str) -> std::result::Result<(), TransportError> {
    let u = url::Url::parse(url).map_err(|_| TransportError::Refused("the URL does not parse".into()))?;
    match u.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(TransportError::Refused("plain http is only allowed to loopback; use https".into()))
            }
        }
        _ => Err(TransportError::Refused("only https (or http to loopback) URLs are allowed".into())),
    }
}

/// Joins a server-relative path (or an absolute URL) to the server's base URL.
pub(super) fn join_url(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_string();
    }
    let base = base.trim_end_matches('/');
    if path.starts_with('/') {
        // Absolute path: relative to the origin.
        match url::Url::parse(base) {
            Ok(u) => format!("{}{}", u.origin().ascii_serialization(), path),
            Err(_) => format!("{base}{path}"),
        }
    } else {
        format!("{base}/{path}")
    }
}

/// The path and query of a URL, as the server sees it (what request signatures cover).
pub(super) fn path_and_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        },
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_against_the_origin_or_the_base() {
        assert_eq!(join_url("https://a.example/intake/", "/v1/time"), "https://a.example/v1/time");
        assert_eq!(join_url("https://a.example/intake", "v1/time"), "https://a.example/intake/v1/time");
        assert_eq!(join_url("https://a.example", "https://b.example/x"), "https://b.example/x");
        assert_eq!(path_and_query("http://127.0.0.1:9/v1/log/consistency?from=1&to=2"), "/v1/log/consistency?from=1&to=2");
        assert_eq!(path_and_query("http://127.0.0.1:9/v1/time"), "/v1/time");
    }
}
