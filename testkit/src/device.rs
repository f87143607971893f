//! One device: a `fieldcap-core` store in a temporary folder with a file key protector (the
//! desktop stand-in for a phone's key store), sealing generated media, enrolment against the
//! test server, and sync loops with short timeouts.

use crate::bytes::seeded;
use crate::track::walk;
use fieldcap_core::identity::FileKeyProtector;
use fieldcap_core::manifest::{Observation, Role};
use fieldcap_core::seal::{CaptureRequest, ObservationRequest, SealedItem};
use fieldcap_core::store::Profile;
use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions, SyncSummary, Transport};
use fieldcap_core::Store;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where [`Device::seal_video`] places its walk: the Harbor Area, San Pedro.
pub const HARBOR: (f64, f64) = (33.7361, -118.2639);

/// A device store in a temporary folder (removed when the device is dropped).
pub struct Device {
    /// The store.
    pub store: Store,
    /// Its folder (`--home`).
    pub home: tempfile::TempDir,
}

impl Device {
    /// A fresh store with the default profile (none written).
    pub fn new() -> Device {
        let home = tempfile::tempdir().expect("tempdir");
        Device { store: open_store(home.path()), home }
    }

    /// A fresh store whose profile is `role` (`monitor` or `police`), no organisation or call
    /// sign.
    pub fn with_role(role: &str) -> Device {
        Device::with_profile(role, None, None)
    }

    /// A fresh store with the profile `role`, `org` and `callsign`.
    pub fn with_profile(role: &str, org: Option<&str>, callsign: Option<&str>) -> Device {
        let mut d = Device::new();
        let profile = Profile { role: Role::parse(role).expect("role"), org: org.map(String::from), callsign: callsign.map(String::from), ..Default::default() };
        d.store.set_profile(profile).expect("profile");
        d
    }

    /// Writes `bytes` to `name` in the device's folder and seals that file with `req`.
    pub fn seal_bytes(&self, name: &str, bytes: &[u8], req: CaptureRequest) -> SealedItem {
        let src = self.home.path().join(name);
        std::fs::write(&src, bytes).expect("write media");
        self.store.seal_file(&src, req, &mut |_, _| {}).expect("seal")
    }

    /// Seals a generated video of `len` [`seeded`] bytes: a minute long, captured five minutes
    /// ago, with a three-point walk at [`HARBOR`].
    pub fn seal_video(&self, len: usize, seed: u64) -> SealedItem {
        let start = chrono::Utc::now() - chrono::Duration::minutes(5);
        let (lat, lon) = HARBOR;
        let req = CaptureRequest {
            started_at: Some(start),
            ended_at: Some(start + chrono::Duration::seconds(60)),
            track: walk(start, chrono::Duration::seconds(10), &[(lat, lon), (lat + 0.0001, lon), (lat + 0.0002, lon)]),
            ..Default::default()
        };
        self.seal_bytes(&format!("in-{seed}.mp4"), &seeded(len, seed), req)
    }

    /// Seals an observation with `text`.
    pub fn observe(&self, text: &str) -> SealedItem {
        let req = ObservationRequest { observation: Observation { text: text.into(), ..Default::default() }, ..Default::default() };
        self.store.observe(req).expect("observe")
    }

    /// One sync pass with a fresh transport; it must return a summary.
    pub fn pass(&self, opts: &SyncOptions) -> SyncSummary {
        self.store.sync_once(&net(), opts, &CancelToken::new(), &mut |_| {}).expect("sync pass")
    }
}

impl Default for Device {
    fn default() -> Self {
        Device::new()
    }
}

#[cfg(feature = "server")]
impl Device {
    /// Enrols at `server` with a one-time token for the device's role.
    pub fn enroll(&self, server: &crate::server::TestServer) {
        self.enroll_via(&server.url(), server);
    }

    /// Enrols through `url` (e.g. a fault proxy in front of `server`) with a token of `server`.
    pub fn enroll_via(&self, url: &str, server: &crate::server::TestServer) {
        let token = server.token(self.store.profile().role.as_str());
        self.store.enroll(&net(), url, &token).expect("enrol");
    }
}

/// Opens (or creates) the store in `home` with a file key protector.
pub fn open_store(home: &Path) -> Store {
    Store::open(home, Arc::new(FileKeyProtector)).expect("open store")
}

/// The sync transport (pooled connections).
pub fn net() -> ReqwestTransport {
    ReqwestTransport::new().expect("transport")
}

/// Sync options for tests: chunks of `chunk` bytes, short backoff (20–300 ms), 3 s request
/// timeout, 12 retries, a minute's budget.
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

/// Runs passes until nothing is left (at most `max_passes`); a pass that fails is reported and
/// retried. Panics if `limit` runs out first. Returns every pass's summary.
pub fn sync_until_done(store: &Store, opts: &SyncOptions, max_passes: usize, limit: Duration) -> Vec<SyncSummary> {
    sync_until_done_with(&net(), store, opts, max_passes, limit)
}

/// [`sync_until_done`] over the transport `t`.
pub fn sync_until_done_with(t: &dyn Transport, store: &Store, opts: &SyncOptions, max_passes: usize, limit: Duration) -> Vec<SyncSummary> {
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

/// Runs up to five passes, each of which must succeed, until every item holds its receipt;
/// panics if some still lack one.
pub fn sync_until_receipted(store: &Store, opts: &SyncOptions) {
    let t = net();
    for _ in 0..5 {
        store.sync_once(&t, opts, &CancelToken::new(), &mut |_| {}).expect("sync");
        if store.list_items().expect("items").iter().all(|i| i.receipted_at.is_some()) {
            return;
        }
    }
    panic!("items still without receipts after 5 passes");
}

/// Items of a store as (clip_id, state).
pub fn states(store: &Store) -> Vec<(String, String)> {
    store.list_items().expect("list").into_iter().map(|i| (i.clip_id, i.state)).collect()
}

/// Size of the newest checkpoint a device holds (the log's leaf count it has verified).
pub fn checkpoint_size(store: &Store) -> u64 {
    let note = store.newest_checkpoint().expect("checkpoint").expect("a checkpoint is held");
    note.lines().nth(1).and_then(|l| l.parse().ok()).expect("size line")
}

/// Manifests of the store in `home` in chain order, read straight from its SQLite file (without
/// opening the store, so without its start-up recovery).
pub fn manifests_in_db(home: &Path) -> Vec<Vec<u8>> {
    let c = rusqlite::Connection::open(home.join("fieldcap.db")).expect("open db");
    let mut s = c.prepare("SELECT manifest FROM items ORDER BY seq").expect("prepare");
    let v = s.query_map([], |r| r.get::<_, Vec<u8>>(0)).expect("query").collect::<Result<Vec<_>, _>>().expect("rows");
    v
}
