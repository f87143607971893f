//! The package fixture: a council server with two devices (a monitor and a police handset)
//! that enrolled, captured and synced with the real sync client, and packages exported from
//! the server's records; plus what the package tests do to a package afterwards (recompute its
//! sums as a dishonest exporter would).

use crate::bytes::seeded;
use crate::device::{fast_opts, sync_until_receipted, Device};
use crate::server::TestServer;
use crate::track::{fix, walk};
use fieldcap_core::manifest::Observation;
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::sync::SyncOptions;
use fieldcap_core::track::TrackPoint;
use fieldcap_server::package::{export, PackageOutcome, PackageRequest, Profile, Selection};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The monitor's walk, exact to six decimals (so a coarsened value never contains them).
pub const TRACK_A: &[(f64, f64)] = &[(33.736149, -118.292271), (33.736412, -118.291873), (33.736705, -118.291502)];
/// The police handset's walk.
pub const TRACK_B: &[(f64, f64)] = &[(33.737051, -118.290917), (33.737322, -118.290488)];
/// Where the monitor's observation was made.
pub const OBS_PLACE: (f64, f64) = (33.736833, -118.291166);
/// Organisation of the monitor.
pub const MONITOR_ORG: &str = "Harbor Area Peace Patrol";
/// Call sign of the police handset.
pub const POLICE_CALLSIGN: &str = "PP-12X";
/// Organisation of the police handset.
pub const POLICE_ORG: &str = "Port of Los Angeles Police";

/// Sync options of the fixtures: 256 KiB chunks and a 10 s request timeout.
pub fn sync_opts() -> SyncOptions {
    SyncOptions { request_timeout: Duration::from_secs(10), ..fast_opts(256 << 10) }
}

/// A server with two synced devices and four items (one tagged minor_present).
pub struct Fixture {
    /// The council server.
    pub server: TestServer,
    /// The monitor (video, observation, photo), then the police handset (video).
    pub devices: Vec<Device>,
    /// Monitor video, observation, photo; police video.
    pub clips: Vec<String>,
    /// The observation tagged minor_present.
    pub sensitive_clip: String,
    /// A folder for packages and tampered copies.
    pub work: tempfile::TempDir,
}

impl Fixture {
    /// Builds the fixture: enrol (and a first pass, which measures the clock), capture, sync.
    ///
    /// Each video has a walk (accuracy 4.5 m, altitude 12.25 m, heading and speed), the tag
    /// `arrest` and a note naming the organisation; the observation has an exact place and
    /// witness text with markup in it.
    pub fn new() -> Fixture {
        let server = TestServer::start();
        let start = chrono::Utc::now() - chrono::Duration::minutes(30);
        let precise = |at, pts: &[(f64, f64)]| -> Vec<TrackPoint> {
            walk(at, chrono::Duration::seconds(10), pts)
                .into_iter()
                .map(|p| TrackPoint { accuracy_m: 4.5, altitude_m: Some(12.25), heading_deg: Some(45.5), speed_mps: Some(1.25), ..p })
                .collect()
        };
        let mut devices = Vec::new();
        let mut clips = Vec::new();
        let mut sensitive_clip = String::new();
        for (n, (role, org, callsign)) in [("monitor", MONITOR_ORG, None), ("police", POLICE_ORG, Some(POLICE_CALLSIGN))].into_iter().enumerate() {
            let d = Device::with_profile(role, Some(org), callsign);
            d.enroll(&server);
            // A first pass measures the clock offset that later manifests carry.
            d.pass(&sync_opts());
            let s0 = start + chrono::Duration::minutes(3 * n as i64);
            let req = CaptureRequest {
                started_at: Some(s0),
                ended_at: Some(s0 + chrono::Duration::seconds(90)),
                track: precise(s0, if n == 0 { TRACK_A } else { TRACK_B }),
                tags: vec!["arrest".into()],
                note: Some(format!("note by {org}")),
                ..Default::default()
            };
            clips.push(d.seal_bytes("in.mp4", &seeded(300_000 + 1000 * n, 7 + n as u64), req).clip_id);
            if n == 0 {
                let at = s0 + chrono::Duration::minutes(2);
                let obs = ObservationRequest {
                    at: Some(at),
                    place: Some(TrackPoint { accuracy_m: 10.0, provider: "manual".into(), ..fix(at, OBS_PLACE.0, OBS_PLACE.1) }),
                    observation: Observation { text: "<script>alert('x')</script> Two children & a \"guardian\" detained".into(), children_present: Some(true), ..Default::default() },
                    tags: vec!["minor_present".into()],
                    ..Default::default()
                };
                let id = d.store.observe(obs).expect("observe").clip_id;
                sensitive_clip = id.clone();
                clips.push(id);
                let at = s0 + chrono::Duration::minutes(4);
                let req = CaptureRequest { started_at: Some(at), ended_at: Some(at), track: precise(at, &TRACK_A[2..]), ..Default::default() };
                clips.push(d.seal_bytes("p.jpg", &seeded(50_000, 99), req).clip_id);
            }
            sync_until_receipted(&d.store, &sync_opts());
            devices.push(d);
        }
        Fixture { server, devices, clips, sensitive_clip, work: tempfile::tempdir().expect("tempdir") }
    }

    /// The server's data folder.
    pub fn data(&self) -> PathBuf {
        self.server.data()
    }

    /// Where the fixture server's key, records and originals are.
    pub fn deployment(&self) -> fieldcap_server::store::Deployment {
        self.server.deployment()
    }

    /// Exports a package of every item into `work/<name>`, for the District Attorney.
    pub fn package(&self, name: &str, profile: Profile, sensitive_reason: Option<&str>) -> PackageOutcome {
        let req = PackageRequest { sensitive_reason: sensitive_reason.map(String::from), ..request(&self.clips, self.work.path().join(name), profile) };
        export(self.deployment(), &req).expect("export")
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

/// A package request for `clips` into `out`: to the Los Angeles County District Attorney,
/// purpose "Case 25-0001 <test>", by the records custodian, no sensitive items, no zip.
/// Change fields with struct update syntax.
pub fn request(clips: &[String], out: PathBuf, profile: Profile) -> PackageRequest {
    PackageRequest {
        selection: Selection::Clips(clips.to_vec()),
        out,
        recipient: "Los Angeles County District Attorney".into(),
        purpose: "Case 25-0001 <test>".into(),
        profile,
        sensitive_reason: None,
        zip: false,
        exported_by: "records custodian".into(),
    }
}

/// Rewrites SHA256SUMS and B3SUMS to match the files as they are now (as a dishonest exporter
/// would after changing a file).
pub fn recompute_sums(dir: &Path) {
    let files: Vec<String> = fieldcap_package::clip::list_files(dir).expect("files").into_iter().filter(|f| f != "SHA256SUMS" && f != "B3SUMS").collect();
    let d = fieldcap_package::package::hash_files(dir, &files);
    let (mut s, mut b) = (String::new(), String::new());
    for f in &files {
        s.push_str(&format!("{}  {f}\n", d[f].sha256_hex()));
        b.push_str(&format!("{}  {f}\n", d[f].blake3_hex()));
    }
    std::fs::write(dir.join("SHA256SUMS"), s).expect("write SHA256SUMS");
    std::fs::write(dir.join("B3SUMS"), b).expect("write B3SUMS");
}
