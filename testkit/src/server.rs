//! The one test server: a council intake server on 127.0.0.1 (a free port) over a temporary
//! data folder, run either in this process (`fieldcap_server::ServerHandle`) or as the real
//! `fieldcap serve` process (which a test can SIGKILL). Either can be stopped and restarted
//! on the same data (on a new port). Its raw API client is in [`crate::api`].

use crate::scaled::{scaled_by_default, ScaledStores};
use crate::tools::Cli;
use fieldcap_evidence::cosignature::VerifierKey;
use fieldcap_server::witnessing::{WitnessClient, WitnessEndpoint};
use fieldcap_server::{ServerConfig, ServerHandle};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How long `fieldcap serve` may take to print its address.
const SERVE_START: Duration = Duration::from_secs(30);

enum Backend {
    /// The handle, and the witnesses the server was started with.
    InProcess(Option<ServerHandle>, Vec<WitnessEndpoint>),
    Process(Cli, Option<Child>),
}

/// A running (or stopped) test server.
pub struct TestServer {
    dir: tempfile::TempDir,
    backend: Backend,
    addr: SocketAddr,
    /// The scaled deployment's stores (PostgreSQL + S3) it runs on, if not the embedded ones.
    scaled: Option<Arc<ScaledStores>>,
    /// HTTP client for raw requests (30 s timeout).
    pub client: reqwest::blocking::Client,
}

impl TestServer {
    /// A server in this process (on the scaled stores when `FIELDCAP_TEST_SCALED` is set, see
    /// [`crate::scaled`]).
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let scaled = default_scaled();
        let handle = start_in_process(&dir.path().join("data"), &[], scaled.as_deref());
        let addr = handle.addr();
        TestServer { dir, backend: Backend::InProcess(Some(handle), vec![]), addr, client: client(), scaled }
    }

    /// A server in this process on the embedded stores, whatever `FIELDCAP_TEST_SCALED` says.
    pub fn start_embedded() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = start_in_process(&dir.path().join("data"), &[], None);
        let addr = handle.addr();
        TestServer { dir, backend: Backend::InProcess(Some(handle), vec![]), addr, client: client(), scaled: None }
    }

    /// A server in this process with the staff console on a second listener (127.0.0.1, a free
    /// port), sessions ending after `idle` without a request; on the scaled stores when
    /// `FIELDCAP_TEST_SCALED` is set.
    pub fn start_with_console(idle: Duration) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let scaled = default_scaled();
        let data = dir.path().join("data");
        let mut cfg = ServerConfig::new(data.clone(), "127.0.0.1:0".parse().expect("addr"));
        if let Some(s) = scaled.as_deref() {
            let d = s.deployment(&data);
            (cfg.records, cfg.blobs) = (d.records, d.blobs);
        }
        let mut console = fieldcap_server::console::ConsoleConfig::new("127.0.0.1:0".parse().expect("addr"));
        console.idle_timeout = idle;
        cfg.console = Some(console);
        let handle = ServerHandle::start(cfg).expect("server with console starts");
        let addr = handle.addr();
        TestServer { dir, backend: Backend::InProcess(Some(handle), vec![]), addr, client: client(), scaled }
    }

    /// `http://ADDR` of the console of a server started with [`TestServer::start_with_console`].
    pub fn console_url(&self) -> Option<String> {
        match &self.backend {
            Backend::InProcess(Some(h), _) => h.console_url(),
            _ => None,
        }
    }

    /// `fieldcap serve --records … --blobs …` as a child process on `stores` (a replica of a
    /// scaled deployment); with `key_from`, the data folder gets that folder's server key first
    /// (every replica of a deployment has the same key).
    pub fn serve_scaled(cli: &Cli, stores: Arc<ScaledStores>, key_from: Option<&Path>) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        if let Some(from) = key_from {
            std::fs::create_dir_all(&data).expect("data folder");
            for f in ["server.key", "server.pub.pem"] {
                std::fs::copy(from.join(f), data.join(f)).expect("copy the server key");
            }
        }
        let (child, addr) = spawn_serve(cli, &data, Some(&stores));
        TestServer { dir, backend: Backend::Process(cli.clone(), Some(child)), addr, client: client(), scaled: Some(stores) }
    }

    /// Where this server's key, records and originals are (for `Records::open`, packages,
    /// retention).
    pub fn deployment(&self) -> fieldcap_server::store::Deployment {
        match &self.scaled {
            Some(s) => s.deployment(&self.data()),
            None => fieldcap_server::store::Deployment::from(self.data()),
        }
    }

    /// The scaled stores the server runs on, if any.
    pub fn scaled(&self) -> Option<&Arc<ScaledStores>> {
        self.scaled.as_ref()
    }

    /// True if the item has a partial upload in the server's store.
    pub fn has_partial(&self, clip_id: &str) -> bool {
        use fieldcap_server::store::BlobStore as _;
        match &self.scaled {
            Some(s) => s.s3.store().read_partial(clip_id).expect("reading a partial upload").is_some(),
            None => self.data().join(fieldcap_server::store::UPLOADS_DIR).join(format!("{clip_id}.part")).exists(),
        }
    }

    /// SHA-256 (hex) of every stored original and partial upload of the server: the files of
    /// its data folder, or the objects of its bucket.
    pub fn stored_digests(&self) -> std::collections::HashSet<String> {
        match &self.scaled {
            Some(s) => s.s3.object_digests(),
            None => crate::files::file_digests(&self.data()),
        }
    }

    /// A server in this process with witnesses: `witnesses` gets the log's verifier key (the
    /// server key is made first) and returns the witnesses to configure (each request to one
    /// bounded by 2 s; a failed one is tried again after 1 s).
    pub fn start_with_witnesses(witnesses: impl FnOnce(&VerifierKey) -> Vec<WitnessEndpoint>) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in_with_witnesses(dir, witnesses)
    }

    /// [`TestServer::start_with_witnesses`] over a folder the caller prepared (its `data/` may
    /// hold a server key already, e.g. a copy of another server's to play a forked log).
    pub fn start_in_with_witnesses(dir: tempfile::TempDir, witnesses: impl FnOnce(&VerifierKey) -> Vec<WitnessEndpoint>) -> TestServer {
        let data = dir.path().join("data");
        let vkey = fieldcap_server::log_vkey(&data, None).expect("log vkey");
        let ws = witnesses(&vkey);
        let handle = start_in_process(&data, &ws, None);
        let addr = handle.addr();
        TestServer { dir, backend: Backend::InProcess(Some(handle), ws), addr, client: client(), scaled: None }
    }

    /// `fieldcap serve` as a child process of `cli`'s binary.
    pub fn serve(cli: &Cli) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let scaled = default_scaled();
        let (child, addr) = spawn_serve(cli, &dir.path().join("data"), scaled.as_deref());
        TestServer { dir, backend: Backend::Process(cli.clone(), Some(child)), addr, client: client(), scaled }
    }

    /// The folder holding the data folder; nothing but `data/` may appear in it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's data folder (`--data`).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where it listens (the latest address after a restart).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fingerprint of this server's key, as the council office would publish it and a
    /// recipient pins it (`fieldcap verify --server-key`, `sh VERIFY.txt FINGERPRINT`).
    pub fn fingerprint(&self) -> String {
        server_fingerprint(&self.data())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A one-time enrolment token for `role`, issued as this server's operator would: in
    /// process through the library, for `fieldcap serve` with `fieldcap token`.
    pub fn token(&self, role: &str) -> String {
        match &self.backend {
            Backend::InProcess(..) => fieldcap_server::issue_token(self.deployment(), role).expect("token"),
            Backend::Process(cli, _) => match &self.scaled {
                None => cli.token(&self.data(), role),
                Some(s) => cli.token_with(&self.data(), &s.args(), &s.env(), role),
            },
        }
    }

    /// Stops the server: `fieldcap serve` is killed with SIGKILL (a crash: no clean shutdown);
    /// the in-process server shuts down (in-flight requests finish). Stopping twice is harmless.
    pub fn stop(&mut self) {
        if let Backend::Process(_, Some(c)) = &mut self.backend {
            c.kill().expect("SIGKILL fieldcap serve");
            c.wait().expect("reap fieldcap serve");
        }
        self.halt();
    }

    /// Stops without asserting anything (also from `drop`).
    fn halt(&mut self) {
        match &mut self.backend {
            Backend::InProcess(h, _) => {
                if let Some(h) = h.take() {
                    h.shutdown();
                }
            }
            Backend::Process(_, c) => {
                if let Some(mut c) = c.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }

    /// Stops the server if it runs and starts it again on the same data (on a new port).
    pub fn restart(&mut self) {
        self.stop();
        let data = self.data();
        let scaled = self.scaled.clone();
        match &mut self.backend {
            Backend::InProcess(h, ws) => {
                let handle = start_in_process(&data, ws, scaled.as_deref());
                self.addr = handle.addr();
                *h = Some(handle);
            }
            Backend::Process(cli, c) => {
                let (child, addr) = spawn_serve(cli, &data, scaled.as_deref());
                self.addr = addr;
                *c = Some(child);
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A blocking HTTP client for tests (30 s timeout), with the ring crypto provider installed
/// first: when the workspace is built as a whole, rustls has more than one provider compiled in
/// and picks none by itself ("No provider set").
pub fn http_client() -> reqwest::blocking::Client {
    client()
}

fn client() -> reqwest::blocking::Client {
    // reqwest may be built with rustls but without a crypto provider (see fieldcap-core).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("HTTP client")
}

/// The scaled stores of a new test server when `FIELDCAP_TEST_SCALED` asks for them (a test run
/// in that mode must not fall back to the embedded stores silently).
fn default_scaled() -> Option<Arc<ScaledStores>> {
    if !scaled_by_default() {
        return None;
    }
    Some(Arc::new(ScaledStores::start().expect("FIELDCAP_TEST_SCALED is set: a test PostgreSQL and S3 server are needed")))
}

fn start_in_process(data: &Path, witnesses: &[WitnessEndpoint], scaled: Option<&ScaledStores>) -> ServerHandle {
    let mut cfg = ServerConfig::new(data.to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
    if let Some(s) = scaled {
        let d = s.deployment(data);
        (cfg.records, cfg.blobs) = (d.records, d.blobs);
    }
    if !witnesses.is_empty() {
        cfg.witnesses = witnesses.to_vec();
        cfg.witness_client = Some(WitnessClient(std::sync::Arc::new(crate::witness::ReqwestWitnessTransport::new())));
        cfg.witness_timeout = Duration::from_secs(2);
        cfg.witness_retry = Duration::from_secs(1);
    }
    ServerHandle::start(cfg).expect("server starts")
}

/// Starts `fieldcap serve --data DATA --listen 127.0.0.1:0` and reads its first stdout line,
/// `listening on http://ADDR`, waiting at most [`SERVE_START`]. The rest of its stdout is
/// drained so that the server never writes to a closed pipe.
fn spawn_serve(cli: &Cli, data: &Path, scaled: Option<&ScaledStores>) -> (Child, SocketAddr) {
    let mut cmd = cli.command();
    cmd.args(["serve", "--data"]).arg(data).args(["--listen", "127.0.0.1:0"]);
    if let Some(s) = scaled {
        cmd.args(s.args()).envs(s.env());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fieldcap serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        lines.for_each(drop);
    });
    let line = match rx.recv_timeout(SERVE_START) {
        Ok(l) => l,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fieldcap serve printed no address within {SERVE_START:?}: {e}");
        }
    };
    let addr = line.trim().strip_prefix("listening on http://").and_then(|a| a.parse().ok());
    let Some(addr) = addr else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("fieldcap serve's first line is not `listening on http://ADDR`: {line:?}");
    };
    (child, addr)
}

/// The fingerprint of the server key in the data folder `data`
/// (`fieldcap_evidence::identity::key_fingerprint`).
pub fn server_fingerprint(data: &Path) -> String {
    fieldcap_evidence::identity::key_fingerprint(&fieldcap_server::keys::load(data).expect("server key").verifying_key())
}
