//! Witnesses on loopback for tests: a [`TestWitness`] runs a `fieldcap_server::witness` in this
//! process over a temporary data folder, and [`ReqwestWitnessTransport`] is the HTTP client an
//! in-process intake server reaches its witnesses with.

use fieldcap_evidence::cosignature::VerifierKey;
use fieldcap_server::witness::{WitnessConfig, WitnessHandle};
use fieldcap_server::witnessing::{WitnessEndpoint, WitnessReply, WitnessTransport};
use std::path::PathBuf;
use std::time::Duration;

/// The intake server's witness client for tests (reqwest, blocking).
pub struct ReqwestWitnessTransport(reqwest::blocking::Client);

impl ReqwestWitnessTransport {
    /// A client (no timeout of its own: each request carries one).
    pub fn new() -> ReqwestWitnessTransport {
        let _ = rustls::crypto::ring::default_provider().install_default();
        ReqwestWitnessTransport(reqwest::blocking::Client::builder().build().expect("HTTP client"))
    }
}

impl Default for ReqwestWitnessTransport {
    fn default() -> Self {
        ReqwestWitnessTransport::new()
    }
}

impl WitnessTransport for ReqwestWitnessTransport {
    fn post(&self, url: &str, body: Vec<u8>, timeout: Duration) -> Result<WitnessReply, String> {
        let r = self.0.post(url).timeout(timeout).header("Content-Type", "text/plain").body(body).send().map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(String::from);
        let body = r.bytes().map_err(|e| e.to_string())?.to_vec();
        Ok(WitnessReply { status, content_type, body })
    }
}

/// A witness on 127.0.0.1 (a free port) over a temporary data folder.
pub struct TestWitness {
    dir: tempfile::TempDir,
    name: String,
    logs: Vec<VerifierKey>,
    handle: Option<WitnessHandle>,
    vkey: VerifierKey,
    /// Where it listens (kept while stopped, to restart there).
    addr: std::net::SocketAddr,
}

impl TestWitness {
    /// A witness named `name` watching `logs`.
    pub fn start(name: &str, logs: &[VerifierKey]) -> TestWitness {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = start(&dir.path().join("data"), name, logs);
        let vkey = handle.vkey().clone();
        let addr = handle.addr();
        TestWitness { dir, name: name.into(), logs: logs.to_vec(), handle: Some(handle), vkey, addr }
    }

    /// Its data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Its verifier key (type 0x04).
    pub fn vkey(&self) -> &VerifierKey {
        &self.vkey
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How an intake server is configured with it.
    pub fn endpoint(&self) -> WitnessEndpoint {
        WitnessEndpoint { url: self.url(), vkey: self.vkey.clone() }
    }

    /// Stops it (its port is then closed: an unreachable witness).
    pub fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }

    /// Starts it again on the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        self.handle = Some(start_at(&self.data(), &self.name, &self.logs, self.addr));
    }
}

fn start(data: &std::path::Path, name: &str, logs: &[VerifierKey]) -> WitnessHandle {
    start_at(data, name, logs, "127.0.0.1:0".parse().expect("addr"))
}

fn start_at(data: &std::path::Path, name: &str, logs: &[VerifierKey], listen: std::net::SocketAddr) -> WitnessHandle {
    WitnessHandle::start(WitnessConfig { data_dir: data.to_path_buf(), listen, name: Some(name.into()), logs: logs.to_vec() }).expect("witness starts")
}
