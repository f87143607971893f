//! Shared helpers of the sync integration tests: an embedded server on 127.0.0.1, device
//! stores in temporary folders, generated media, the built `fieldcap` binary.

#![allow(dead_code)]

pub mod proxy;

use fieldcap_core::identity::FileKeyProtector;
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions, SyncSummary};
use fieldcap_core::track::TrackPoint;
use fieldcap_core::Store;
use sha2::Digest;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// An embedded council server on a temporary data folder.
pub struct TestServer {
    pub handle: fieldcap_server::ServerHandle,
    pub data: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> TestServer {
        let data = tempfile::tempdir().expect("tempdir");
        let handle = start_on(data.path());
        TestServer { handle, data }
    }
    pub fn url(&self) -> String {
        self.handle.url()
    }
    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.addr()
    }
    pub fn token(&self, role: &str) -> String {
        fieldcap_server::issue_token(self.data.path(), role).expect("token")
    }
}

pub fn start_on(data: &Path) -> fieldcap_server::ServerHandle {
    fieldcap_server::ServerHandle::start(fieldcap_server::ServerConfig {
        data_dir: data.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..Default::default()
    })
    .expect("server starts")
}

/// A device store in a temporary folder.
pub struct Device {
    pub store: Store,
    pub home: tempfile::TempDir,
}

pub fn device(role: &str) -> Device {
    let home = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(home.path(), Arc::new(FileKeyProtector)).expect("store");
    store
        .set_profile(fieldcap_core::store::Profile { role: fieldcap_core::manifest::Role::parse(role).expect("role"), org: None, callsign: None })
        .expect("profile");
    Device { store, home }
}

pub fn net() -> ReqwestTransport {
    ReqwestTransport::new().expect("transport")
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn track(lat: f64, lon: f64, t: chrono::DateTime<chrono::Utc>) -> Vec<TrackPoint> {
    (0..3)
        .map(|i| TrackPoint {
            t: fieldcap_core::time::format(t + chrono::Duration::seconds(i * 10)),
            lat: lat + i as f64 * 0.0001,
            lon,
            accuracy_m: 8.0,
            altitude_m: None,
            heading_deg: None,
            speed_mps: None,
            provider: "gps".into(),
        })
        .collect()
}

/// Seals a generated video of `len` bytes.
pub fn seal_video(d: &Device, len: usize, seed: u64) -> fieldcap_core::seal::SealedItem {
    let src = d.home.path().join(format!("in-{seed}.mp4"));
    std::fs::write(&src, bytes(len, seed)).expect("write media");
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let req = CaptureRequest {
        started_at: Some(start),
        ended_at: Some(start + chrono::Duration::seconds(60)),
        track: track(33.7361, -118.2639, start),
        ..Default::default()
    };
    d.store.seal_file(&src, req, &mut |_, _| {}).expect("seal")
}

pub fn seal_observation(d: &Device, text: &str) -> fieldcap_core::seal::SealedItem {
    let req = ObservationRequest {
        observation: fieldcap_core::manifest::Observation { text: text.into(), ..Default::default() },
        ..Default::default()
    };
    d.store.observe(req).expect("observe")
}

/// Options for tests: small chunks of a fixed size (the tests bound re-sent bytes by it),
/// short backoff, short request timeouts.
pub fn fast_opts(chunk: usize) -> SyncOptions {
    SyncOptions {
        budget: Duration::from_secs(60),
        chunk_size: chunk,
        max_chunk_size: chunk,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(300),
        request_timeout: Duration::from_secs(3),
        max_retries: 12,
        ..Default::default()
    }
}

/// Runs passes until nothing is left (at most `max_passes` or `limit`), summing the summaries.
pub fn sync_until_done(store: &Store, opts: &SyncOptions, max_passes: usize, limit: Duration) -> Vec<SyncSummary> {
    sync_until_done_with(&net(), store, opts, max_passes, limit)
}

pub fn sync_until_done_with(t: &dyn fieldcap_core::sync::Transport, store: &Store, opts: &SyncOptions, max_passes: usize, limit: Duration) -> Vec<SyncSummary> {
    let started = Instant::now();
    let mut out = Vec::new();
    for _ in 0..max_passes {
        match store.sync_once(t, opts, &CancelToken::new(), &mut |_| {}) {
            Ok(s) => {
                let done = s.remaining == 0;
                out.push(s);
                if done {
                    break;
                }
            }
            Err(e) => eprintln!("pass failed: {e}"),
        }
        assert!(started.elapsed() < limit, "sync did not finish within {limit:?}: {out:?}");
    }
    out
}

/// SHA-256 hex of every file under `dir` (to find the server's blobs whatever its layout).
pub fn file_digests(dir: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.insert(hex::encode(sha2::Sha256::digest(&b)));
            }
        }
    }
    out
}

/// Items of a store as (clip_id, state, media sha256).
pub fn states(store: &Store) -> Vec<(String, String)> {
    store.list_items().expect("list").into_iter().map(|i| (i.clip_id, i.state)).collect()
}

/// Size of the newest checkpoint a device holds (the log's leaf count it has verified).
pub fn checkpoint_size(store: &Store) -> u64 {
    let note = store.newest_checkpoint().expect("checkpoint").expect("a checkpoint is held");
    note.lines().nth(1).and_then(|l| l.parse().ok()).expect("size line")
}

/// The `fieldcap` binary, built once per test run.
pub fn fieldcap_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "fieldcap", "--bin", "fieldcap"])
            .current_dir(&root)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building fieldcap failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join("fieldcap");
        assert!(bin.exists(), "no binary at {}", bin.display());
        bin
    })
    .clone()
}
