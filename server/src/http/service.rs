//! What the intake server and the witness share to run as a service: the listening socket
//! registered with a runtime, the thread it serves on with the switch that stops it, and the
//! wait for SIGINT/SIGTERM.

use crate::error::{Error, Result};
use std::net::SocketAddr;

/// Binds `listen` and registers the socket with `rt`: the listener and its bound address (the
/// real port when the configured port was 0).
pub(crate) fn bind(listen: SocketAddr, rt: &tokio::runtime::Runtime) -> Result<(tokio::net::TcpListener, SocketAddr)> {
    let std_listener = std::net::TcpListener::bind(listen).map_err(|e| Error::io("binding the listen address", e))?;
    std_listener.set_nonblocking(true).map_err(|e| Error::io("configuring the listener", e))?;
    let addr = std_listener.local_addr().map_err(|e| Error::io("reading the listen address", e))?;
    let _g = rt.enter();
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| Error::io("registering the listener", e))?;
    Ok((listener, addr))
}

/// A service's thread and the switch that tells it to stop; stopped (and joined) on drop.
pub(crate) struct ServiceThread {
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServiceThread {
    /// `thread` serves until `shutdown` turns true.
    pub(crate) fn new(shutdown: tokio::sync::watch::Sender<bool>, thread: std::thread::JoinHandle<()>) -> Self {
        ServiceThread { shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// Turns the switch and joins the thread (once; later calls do nothing).
    pub(crate) fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resolves at the first SIGINT or SIGTERM.
pub(crate) async fn termination_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("listening for SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("listening for SIGINT", e))?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}
