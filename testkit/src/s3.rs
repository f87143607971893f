//! A throwaway S3-compatible object storage for tests: the `moto` S3 server from PyPI
//! (`moto_server`, installed by `scripts/start_s3.sh`) on a free port of 127.0.0.1, with a fresh
//! bucket that has Object Lock enabled.
//!
//! `FIELDCAP_TEST_S3_ENDPOINT=http://host:port` uses a running server instead (MinIO, Ceph, a
//! shared moto), with `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_REGION` from the
//! environment if set; such a server cannot be stopped by a test. Without `moto_server` the
//! helper prints a skip line and returns `None`, unless `FIELDCAP_REQUIRE_S3` is set (then it
//! panics, so that CI cannot skip the S3 tests silently).
//!
//! The store gets its credentials explicitly ([`TestS3::access`],
//! `S3BlobStore::open_with_access`), so tests never change the process environment.
//!
//! moto keeps everything in memory: after [`TestS3::restart`] the bucket is created again, empty.

use fieldcap_server::store::{S3Access, S3BlobStore};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static BUCKETS: AtomicU64 = AtomicU64::new(0);

/// How long the server may take to answer after it is started.
const START_WAIT: Duration = Duration::from_secs(60);

/// A test object storage with one fresh Object Lock bucket; the server is killed on drop.
#[derive(Debug)]
pub struct TestS3 {
    child: Option<Child>,
    port: u16,
    endpoint: String,
    bucket: String,
    external: bool,
}

fn moto_available() -> bool {
    Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port on 127.0.0.1")
}

impl TestS3 {
    /// Starts `moto_server` (or uses `FIELDCAP_TEST_S3_ENDPOINT`) and creates a fresh bucket with
    /// Object Lock. `None` (with a skip line) when there is no `moto_server` and S3 is not required.
    pub fn start() -> Option<TestS3> {
        let n = BUCKETS.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let bucket = format!("fieldcap-test-{}-{n}-{nanos}", std::process::id());
        if let Ok(endpoint) = std::env::var("FIELDCAP_TEST_S3_ENDPOINT") {
            let s3 = TestS3 { child: None, port: 0, endpoint: endpoint.trim_end_matches('/').to_string(), bucket, external: true };
            s3.create_bucket();
            return Some(s3);
        }
        if !moto_available() {
            if std::env::var_os("FIELDCAP_REQUIRE_S3").is_some() {
                panic!("FIELDCAP_REQUIRE_S3 is set but moto_server is not installed (run scripts/start_s3.sh)");
            }
            eprintln!("skipping: moto_server is not installed (scripts/start_s3.sh installs it)");
            return None;
        }
        let port = free_port();
        let mut s3 = TestS3 { child: None, port, endpoint: format!("http://127.0.0.1:{port}"), bucket, external: false };
        s3.spawn();
        s3.create_bucket();
        Some(s3)
    }

    fn spawn(&mut self) {
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(t0.elapsed() < START_WAIT, "moto_server did not answer on 127.0.0.1:{} within {START_WAIT:?}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn create_bucket(&self) {
        let t0 = Instant::now();
        loop {
            match S3BlobStore::create_bucket(&self.url(), Some(&Self::access()), true) {
                Ok(()) => return,
                Err(e) => {
                    assert!(t0.elapsed() < START_WAIT, "creating the test bucket: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// The store URL: `s3://BUCKET?endpoint=http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("s3://{}?endpoint={}", self.bucket, self.endpoint)
    }

    /// The same bucket under a key prefix.
    pub fn url_with_prefix(&self, prefix: &str) -> String {
        format!("{}&prefix={prefix}", self.url())
    }

    /// The server's address (`127.0.0.1:PORT`), e.g. for a fault proxy in front of it.
    pub fn addr(&self) -> SocketAddr {
        let hostport = self.endpoint.trim_start_matches("http://").trim_start_matches("https://");
        hostport.parse().unwrap_or_else(|_| panic!("the S3 endpoint is not HOST:PORT: {hostport}"))
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The test credentials (from `AWS_*` when an external endpoint is used, else fixed test
    /// values moto accepts).
    pub fn access() -> S3Access {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        if std::env::var_os("FIELDCAP_TEST_S3_ENDPOINT").is_some() {
            S3Access { access_key_id: var("AWS_ACCESS_KEY_ID", "testing"), secret_access_key: var("AWS_SECRET_ACCESS_KEY", "testing"), region: var("AWS_REGION", "us-east-1") }
        } else {
            S3Access { access_key_id: "testing".into(), secret_access_key: "testing".into(), region: "us-east-1".into() }
        }
    }

    /// A store on the test bucket.
    pub fn store(&self) -> S3BlobStore {
        S3BlobStore::open_with_access(&self.url(), &Self::access()).expect("opening the S3 blob store on the test bucket")
    }

    /// Every original in the bucket as digest → length, read back and hashed (the name must be
    /// the digest of the bytes; a mismatch panics).
    pub fn original_digests(&self) -> std::collections::BTreeMap<String, u64> {
        use fieldcap_server::store::BlobStore as _;
        let store = self.store();
        let mut out = std::collections::BTreeMap::new();
        for (key, len) in store.list_objects().expect("listing the bucket") {
            let Some(sha) = key.strip_prefix("originals/sha256/") else { continue };
            let mut r = store.open(sha).expect("reading an original");
            let mut h = sha2::Sha256::default();
            let n = std::io::copy(&mut r, &mut h).expect("reading an original");
            assert_eq!((hex::encode(sha2::Digest::finalize(h)), n), (sha.to_string(), len), "the object {key} holds other bytes than its name says");
            out.insert(sha.to_string(), len);
        }
        out
    }

    /// SHA-256 of every original and of every partial upload (whole) in the bucket, as
    /// `files::file_digests` gives them for a data folder.
    pub fn object_digests(&self) -> std::collections::HashSet<String> {
        use fieldcap_server::store::BlobStore as _;
        let store = self.store();
        let mut out: std::collections::HashSet<String> = self.original_digests().into_keys().collect();
        let clips: std::collections::BTreeSet<String> = store
            .list_objects()
            .expect("listing the bucket")
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix("partials/").and_then(|r| r.split('/').next()).map(str::to_string))
            .collect();
        for clip in clips {
            if let Some(mut r) = store.read_partial(&clip).expect("reading a partial upload") {
                let mut h = sha2::Sha256::default();
                std::io::copy(&mut r, &mut h).expect("reading a partial upload");
                out.insert(hex::encode(sha2::Digest::finalize(h)));
            }
        }
        out
    }

    /// True when this helper started the server itself (so a test may stop and restart it).
    pub fn can_restart(&self) -> bool {
        !self.external
    }

    /// Kills the server (requests then find nothing listening).
    pub fn stop(&mut self) {
        assert!(!self.external, "an external S3 endpoint cannot be stopped by a test");
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and creates the bucket again (moto forgets
    /// everything when it stops).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.create_bucket();
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
