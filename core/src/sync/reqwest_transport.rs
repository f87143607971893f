//! The built-in [`Transport`]: reqwest (blocking) over rustls. Behind the default-on cargo
//! feature `reqwest-transport`, so that a phone build whose shell supplies its own HTTP stack
//! (`--no-default-features`) carries no second TLS stack.

use super::transport::{url_allowed, HttpRequest, HttpResponse, Transport, TransportError};
use crate::error::{Error, Result};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// The built-in transport: reqwest (blocking) over rustls with the `ring` provider and the
/// bundled Mozilla roots (`webpki-roots`); no platform verifier. Plain `http://` is refused
/// unless the host is a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::blocking::Client,
}

impl ReqwestTransport {
    /// Builds the client (connections are kept alive and reused).
    pub fn new() -> Result<ReqwestTransport> {
        Self::build(true)
    }

    /// A client that opens a new connection for every request (for networks that silently
    /// drop idle connections, and for fault-injection tests).
    pub fn unpooled() -> Result<ReqwestTransport> {
        Self::build(false)
    }

    fn build(pool: bool) -> Result<ReqwestTransport> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Network(format!("TLS configuration: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .pool_max_idle_per_host(if pool { usize::MAX } else { 0 })
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .timeout(None)
            .user_agent(concat!("fieldcap/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network(format!("building the HTTP client: {e}")))?;
        Ok(ReqwestTransport { client })
    }
}

impl Transport for ReqwestTransport {
    fn send(&self, req: HttpRequest) -> std::result::Result<HttpResponse, TransportError> {
        url_allowed(&req.url)?;
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| TransportError::Refused("bad method".into()))?;
        let mut b = self.client.request(method, &req.url).timeout(req.timeout);
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        if !req.body.is_empty() || matches!(req.method.as_str(), "POST" | "PATCH" | "PUT") {
            b = b.body(req.body);
        }
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                TransportError::Timeout(short_err(e))
            } else {
                TransportError::Network(short_err(e))
            }
        };
        let mut resp = b.send().map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
            .collect();
        let mut body = Vec::new();
        resp.read_to_end(&mut body).map_err(|e| TransportError::Network(format!("reading the response: {}", e.kind())))?;
        Ok(HttpResponse { status, headers, body })
    }
}

/// A reqwest error without the URL (which may carry an upload capability), with its causes.
fn short_err(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
