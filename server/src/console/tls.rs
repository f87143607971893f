//! The console's listener: plain HTTP on a loopback address, or TLS (rustls, ring provider,
//! TLS 1.2 and 1.3) with a PEM certificate chain and private key. Each connection is served by
//! hyper with a header-read timeout; the client's address reaches handlers as
//! [`axum::extract::ConnectInfo`] (the login rate limit counts by it).

use crate::error::{Error, Result};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// A TLS acceptor from a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::BadRequest(format!("the console's TLS certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(Error::BadRequest("the console's TLS certificate file holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::BadRequest(format!("the console's TLS key file: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::BadRequest(format!("the console's TLS certificate and key do not go together: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `stop` turns true (TLS when `tls` is given).
pub(crate) async fn serve(listener: TcpListener, app: Router, tls: Option<tokio_rustls::TlsAcceptor>, mut stop: tokio::sync::watch::Receiver<bool>) {
    // The watch guard is dropped inside this future, so the whole loop stays `Send`.
    let mut stopped = Box::pin(async move {
        let _ = stop.wait_for(|v| *v).await.map(|_| ());
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a console connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        let svc = TowerToHyperService::new(app.clone().layer(axum::Extension(axum::extract::ConnectInfo::<SocketAddr>(peer))));
        match &tls {
            None => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    // A handshake that does not finish in time is dropped.
                    let Ok(Ok(tls_stream)) = tokio::time::timeout(Duration::from_secs(15), acceptor.accept(stream)).await else { return };
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(tls_stream), svc)).await;
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Binds the console's address on the runtime; refuses plain HTTP on a non-loopback address.
pub(crate) fn bind(cfg: &super::ConsoleConfig, rt: &tokio::runtime::Runtime) -> Result<(TcpListener, SocketAddr, Option<tokio_rustls::TlsAcceptor>)> {
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(acceptor(cert, key)?),
        None if !cfg.listen.ip().is_loopback() => {
            return Err(Error::BadRequest(format!(
                "the console serves plain HTTP only on a loopback address: give a TLS certificate and key to listen on {}",
                cfg.listen
            )))
        }
        None => None,
    };
    let listener = rt.block_on(TcpListener::bind(cfg.listen)).map_err(|e| Error::io("binding the console's address", e))?;
    let addr = listener.local_addr().map_err(|e| Error::io("reading the console's address", e))?;
    Ok((listener, addr, tls))
}
