//! Fixtures of the package tests: a real council server on 127.0.0.1, real device stores that
//! enrol and sync with the real sync client, and packages exported from the server's records.

#![allow(dead_code)]

use fieldcap_core::identity::FileKeyProtector;
use fieldcap_core::manifest::{Observation, Role};
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::store::Profile as DeviceProfile;
use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions};
use fieldcap_core::track::TrackPoint;
use fieldcap_core::Store;
use fieldcap_server::package::{export, PackageOutcome, PackageRequest, Profile, Selection};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Exact coordinates used by the fixtures (six decimals, so a coarsened value never contains them).
pub const TRACK_A: &[(f64, f64)] = &[(33.736149, -118.292271), (33.736412, -118.291873), (33.736705, -118.291502)];
/// Second device's walk.
pub const TRACK_B: &[(f64, f64)] = &[(33.737051, -118.290917), (33.737322, -118.290488)];
/// Observation place.
pub const OBS_PLACE: (f64, f64) = (33.736833, -118.291166);
/// Operator identity of the monitor.
pub const MONITOR_ORG: &str = "Harbor Area Peace Patrol";
/// Call sign of the police handset.
pub const POLICE_CALLSIGN: &str = "PP-12X";
/// Organisation of the police handset.
pub const POLICE_ORG: &str = "Port of Los Angeles Police";

/// A server with two synced devices and four items (one tagged minor_present).
pub struct Fixture {
    pub server: fieldcap_server::ServerHandle,
    pub data: tempfile::TempDir,
    pub homes: Vec<tempfile::TempDir>,
    pub stores: Vec<Store>,
    pub clips: Vec<String>,
    pub sensitive_clip: String,
    pub work: tempfile::TempDir,
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
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

fn track(pts: &[(f64, f64)], start: chrono::DateTime<chrono::Utc>) -> Vec<TrackPoint> {
    pts.iter()
        .enumerate()
        .map(|(i, (lat, lon))| TrackPoint {
            t: fieldcap_core::time::format(start + chrono::Duration::seconds(10 * i as i64)),
            lat: *lat,
            lon: *lon,
            accuracy_m: 4.5,
            altitude_m: Some(12.25),
            heading_deg: Some(45.5),
            speed_mps: Some(1.25),
            provider: "gps".into(),
        })
        .collect()
}

fn opts() -> SyncOptions {
    SyncOptions {
        budget: Duration::from_secs(60),
        chunk_size: 256 << 10,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(300),
        request_timeout: Duration::from_secs(10),
        max_retries: 12,
        ..Default::default()
    }
}

fn sync(store: &Store) {
    let t = ReqwestTransport::new().expect("transport");
    for _ in 0..5 {
        store.sync_once(&t, &opts(), &CancelToken::new(), &mut |_| {}).expect("sync");
        if store.list_items().expect("items").iter().all(|i| i.receipted_at.is_some()) {
            return;
        }
    }
    panic!("items still without receipts after 5 passes");
}

impl Fixture {
    /// Builds the fixture: enrol (which measures the clock), capture, sync.
    pub fn new() -> Fixture {
        let data = tempfile::tempdir().expect("tempdir");
        let server = fieldcap_server::ServerHandle::start(fieldcap_server::ServerConfig {
            data_dir: data.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            worker_threads: 2,
            ..Default::default()
        })
        .expect("server");
        let url = server.url();
        let start = chrono::Utc::now() - chrono::Duration::minutes(30);
        let mut homes = Vec::new();
        let mut stores = Vec::new();
        let mut clips = Vec::new();
        let mut sensitive_clip = String::new();
        for (n, (role, org, callsign)) in [("monitor", MONITOR_ORG, None), ("police", POLICE_ORG, Some(POLICE_CALLSIGN))].into_iter().enumerate() {
            let home = tempfile::tempdir().expect("tempdir");
            let mut store = Store::open(home.path(), Arc::new(FileKeyProtector)).expect("store");
            store
                .set_profile(DeviceProfile { role: Role::parse(role).expect("role"), org: Some(org.into()), callsign: callsign.map(String::from) })
                .expect("profile");
            let token = fieldcap_server::issue_token(data.path(), role).expect("token");
            let t = ReqwestTransport::new().expect("transport");
            store.enroll(&t, &url, &token).expect("enroll");
            // A first pass measures the clock offset that later manifests carry.
            store.sync_once(&t, &opts(), &CancelToken::new(), &mut |_| {}).expect("first sync");
            let s0 = start + chrono::Duration::minutes(3 * n as i64);
            let src = home.path().join("in.mp4");
            std::fs::write(&src, bytes(300_000 + 1000 * n, 7 + n as u64)).expect("media");
            let req = CaptureRequest {
                started_at: Some(s0),
                ended_at: Some(s0 + chrono::Duration::seconds(90)),
                track: track(if n == 0 { TRACK_A } else { TRACK_B }, s0),
                tags: vec!["arrest".into()],
                note: Some(format!("note by {org}")),
                ..Default::default()
            };
            clips.push(store.seal_file(&src, req, &mut |_, _| {}).expect("seal").clip_id);
            if n == 0 {
                let obs = ObservationRequest {
                    at: Some(s0 + chrono::Duration::minutes(2)),
                    place: Some(TrackPoint {
                        t: fieldcap_core::time::format(s0 + chrono::Duration::minutes(2)),
                        lat: OBS_PLACE.0,
                        lon: OBS_PLACE.1,
                        accuracy_m: 10.0,
                        altitude_m: None,
                        heading_deg: None,
                        speed_mps: None,
                        provider: "manual".into(),
                    }),
                    observation: Observation { text: "<script>alert('x')</script> Two children & a \"guardian\" detained".into(), children_present: Some(true), ..Default::default() },
                    tags: vec!["minor_present".into()],
                    ..Default::default()
                };
                let id = store.observe(obs).expect("observe").clip_id;
                sensitive_clip = id.clone();
                clips.push(id);
                let src = home.path().join("p.jpg");
                std::fs::write(&src, bytes(50_000, 99)).expect("photo");
                let req = CaptureRequest {
                    started_at: Some(s0 + chrono::Duration::minutes(4)),
                    ended_at: Some(s0 + chrono::Duration::minutes(4)),
                    track: track(&TRACK_A[2..], s0 + chrono::Duration::minutes(4)),
                    ..Default::default()
                };
                clips.push(store.seal_file(&src, req, &mut |_, _| {}).expect("seal photo").clip_id);
            }
            sync(&store);
            homes.push(home);
            stores.push(store);
        }
        Fixture { server, data, homes, stores, clips, sensitive_clip, work: tempfile::tempdir().expect("tempdir") }
    }

    /// Exports a package of every item into `work/<name>`.
    pub fn package(&self, name: &str, profile: Profile, sensitive_reason: Option<&str>) -> PackageOutcome {
        export(
            self.data.path(),
            &PackageRequest {
                selection: Selection::Clips(self.clips.clone()),
                out: self.work.path().join(name),
                recipient: "Los Angeles County District Attorney".into(),
                purpose: "Case 25-0001 <test>".into(),
                profile,
                sensitive_reason: sensitive_reason.map(String::from),
                zip: false,
                exported_by: "records custodian".into(),
            },
        )
        .expect("export")
    }
}

/// The `fieldcap` binary, built once per test run.
pub fn fieldcap_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo).args(["build", "-p", "fieldcap", "--bin", "fieldcap"]).current_dir(&root).status().expect("cargo build");
        assert!(status.success(), "building fieldcap failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join("fieldcap");
        assert!(bin.exists(), "no binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Runs VERIFY.txt with `sh` inside the package, as written; true if it exits 0.
pub fn stock_verify(dir: &Path) -> (bool, String) {
    let mut path = std::env::var("PATH").unwrap_or_default();
    if let Some(h) = std::env::var_os("HOME") {
        path = format!("{}/.cargo/bin:{path}", Path::new(&h).display());
    }
    let out = std::process::Command::new("sh").arg("VERIFY.txt").current_dir(dir).env("PATH", path).output().expect("sh");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// True when a stock tool is on PATH (or in ~/.cargo/bin).
pub fn have(tool: &str) -> bool {
    let home_bin = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin").join(tool));
    home_bin.is_some_and(|p| p.exists())
        || std::process::Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Copies a folder recursively.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy");
        }
    }
}

/// Rewrites SHA256SUMS and B3SUMS to match the files as they are now (as a dishonest exporter
/// would after changing a file).
pub fn recompute_sums(dir: &Path) {
    let files: Vec<String> = fieldcap_package::clip::list_files(dir).unwrap().into_iter().filter(|f| f != "SHA256SUMS" && f != "B3SUMS").collect();
    let d = fieldcap_package::package::hash_files(dir, &files);
    let (mut s, mut b) = (String::new(), String::new());
    for f in &files {
        s.push_str(&format!("{}  {f}\n", d[f].sha256_hex()));
        b.push_str(&format!("{}  {f}\n", d[f].blake3_hex()));
    }
    std::fs::write(dir.join("SHA256SUMS"), s).unwrap();
    std::fs::write(dir.join("B3SUMS"), b).unwrap();
}
