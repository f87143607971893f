//! The connection loop under the router: HTTP/1.1 by hyper with a header-read timeout (which also
//! closes idle keep-alive connections), a cap on open connections, graceful shutdown, and
//! problem+json for what hyper itself refuses.
//!
//! hyper answers a request it cannot parse (garbage request line, bad header, duplicate or
//! absurd `Content-Length`, a head over its buffer, a URI over 64 KiB) on its own, before any
//! handler runs, with a bodiless `400`, `414` or `431`. Every answer the router makes for a status
//! ≥ 400 is problem+json (the `problem_safety_net` middleware sees to it), so a response head of
//! status ≥ 400 without a `Content-Type` and with `Content-Length: 0` can only be hyper's own:
//! [`ProblemIo`] sits between hyper and the socket and writes a problem+json answer in its place.
//! hyper closes the connection after such an answer.

use crate::error::problem;
use crate::http::limits::{HEAD_BUFFER_BYTES, MAX_HEADERS_COUNT};
use axum::http::StatusCode;
use axum::Router;
use fieldcap_evidence::problem as names;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The connection limits of [`serve`] (from [`crate::ServerConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Accepts connections until `stop` turns true, at most `limits.max_connections` open at once
/// (the next is accepted when one closes), then lets open connections finish their request
/// and returns when all are closed (the caller bounds that wait).
pub(crate) async fn serve(listener: TcpListener, app: Router, limits: ConnLimits, mut stop: tokio::sync::watch::Receiver<bool>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HEAD_BUFFER_BYTES)
        .max_headers(MAX_HEADERS_COUNT)
        .keep_alive(true)
        // One buffer per write, so a whole response head reaches `ProblemIo` in one call.
        .writev(false);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.wait_for(|v| *v) => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|v| *v) => break,
        };
        let conn = builder.serve_connection(TokioIo::new(ProblemIo::new(stream)), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A socket that replaces hyper's bodiless error answers with problem+json ones (see the
/// module documentation).
pub(crate) struct ProblemIo<S> {
    inner: S,
    /// A replacement being written: its bytes, how many are written, and how many bytes of
    /// hyper's buffer it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl ProblemIo<TcpStream> {
    fn new(inner: TcpStream) -> Self {
        ProblemIo { inner, pending: None }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// If `buf` starts with a response head of hyper's own making (status ≥ 400, no
/// `Content-Type`, `Content-Length: 0`), the length of that head and the problem+json answer
/// to send instead.
pub(crate) fn replacement_for(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    if !buf.starts_with(b"HTTP/1.") || buf.len() < 12 {
        return None;
    }
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = buf[..end].to_ascii_lowercase();
    let status: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
    if status < 400 || find(&head, b"\r\ncontent-type:").is_some() || find(&head, b"\r\ncontent-length: 0\r\n").is_none() {
        return None;
    }
    let (status, name, title, detail) = match status {
        414 => (StatusCode::URI_TOO_LONG, names::URI_TOO_LONG, "Request URI too long", format!("the request URI is longer than {} bytes", crate::http::limits::MAX_URI_BYTES)),
        431 => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            names::HEADERS_TOO_LARGE,
            "Request headers too large",
            format!("the request head is larger than {HEAD_BUFFER_BYTES} bytes or has more than {MAX_HEADERS_COUNT} headers"),
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            names::MALFORMED_REQUEST,
            "Malformed request",
            "the request line, a header, or the body's framing (Content-Length, Transfer-Encoding) cannot be read".to_string(),
        ),
    };
    let body = serde_json::to_vec(&problem(status, name, title, Some(detail))).ok()?;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\n{}: {name}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        fieldcap_evidence::protocol::H_PROBLEM,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some((end, out))
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            if let Some((stands_for, bytes)) = replacement_for(buf) {
                this.pending = Some((bytes, 0, stands_for));
            }
        }
        if let Some((bytes, written, stands_for)) = &mut this.pending {
            while *written < bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let n = *stands_for;
            this.pending = None;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_error_heads_are_replaced() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (n, out) = replacement_for(hyper_400).expect("replaced");
        assert_eq!(n, hyper_400.len());
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n"), "{text}");
        assert!(text.contains("malformed-request"), "{text}");
        // Like every other problem answer, it names the problem in a header too.
        assert!(text.contains("\r\nfieldcap-problem: malformed-request\r\n"), "{text}");
        let (_, out) = replacement_for(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n").expect("replaced");
        assert!(String::from_utf8_lossy(&out).contains("uri-too-long"));
        let (_, out) = replacement_for(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n").expect("replaced");
        assert!(String::from_utf8_lossy(&out).contains("headers-too-large"));
        // The application's answers pass unchanged.
        assert!(replacement_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement_for(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement_for(b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/problem+json\r\ncontent-length: 90\r\n\r\n{").is_none());
        assert!(replacement_for(b"HTTP/1.1 100 Continue\r\n\r\n").is_none());
        assert!(replacement_for(b"{\"not\": \"a head\"}").is_none());
    }
}
