//! Writes the package verifier's committed fixtures, `package/tests/fixtures/` (read by
//! `package/tests/verify_fixture.rs`, which runs in seconds without a server, so the verifier
//! can be mutation-tested). Ignored: run it on purpose when the package format changes:
//!
//! ```text
//! cargo test -p fieldcap-tests --test package_fixture_gen -- --ignored
//! ```
//!
//! A council server on 127.0.0.1, a monitor's phone (a small phone movie with location
//! metadata, a photo with EXIF GPS, a WebM the scrubber does not parse, an observation tagged
//! `minor_present`) and a police handset (one video) enrol, capture and sync; then a full and a
//! release package of every item are exported. The server's and the devices' keys are saved
//! next to them (`keys.json`, throwaway test keys) so the verifier's tests can re-sign what a
//! dishonest exporter would.

#![allow(clippy::unwrap_used)]

use fieldcap_core::manifest::Observation;
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::track::TrackPoint;
use fieldcap_evidence::identity::{DeviceKey, FileKeyProtector};
use fieldcap_server::package::{export, Profile};
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::{sync_until_receipted, Device};
use fieldcap_testkit::files::copy_dir;
use fieldcap_testkit::media::{jpeg_scan, phone_movie, phone_photo};
use fieldcap_testkit::package::{request, sync_opts, MONITOR_ORG, POLICE_CALLSIGN, POLICE_ORG};
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::track::fix;
use std::path::Path;

fn secret_hex(k: &DeviceKey) -> String {
    hex::encode(&k.secret()[..])
}

#[test]
#[ignore = "writes package/tests/fixtures; run on purpose"]
fn write_package_fixtures() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("package/tests/fixtures");
    let server = TestServer::start();
    let start = chrono::Utc::now() - chrono::Duration::minutes(30);
    let at = |m: i64| start + chrono::Duration::minutes(m);
    let track = |t, lat, lon| vec![TrackPoint { altitude_m: Some(12.25), heading_deg: Some(45.5), speed_mps: Some(1.25), ..fix(t, lat, lon) }];
    let req = |m: i64, tags: &[&str]| CaptureRequest {
        started_at: Some(at(m)),
        ended_at: Some(at(m) + chrono::Duration::seconds(30)),
        track: track(at(m), 33.740_612, -118.276_015),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        note: Some("note".into()),
        ..Default::default()
    };

    let monitor = Device::with_profile("monitor", Some(MONITOR_ORG), None);
    let police = Device::with_profile("police", Some(POLICE_ORG), Some(POLICE_CALLSIGN));
    let mut clips = Vec::new();
    for d in [&monitor, &police] {
        d.enroll(&server);
        d.pass(&sync_opts());
    }
    clips.push(monitor.seal_bytes("clip.mp4", &phone_movie(&seeded(3000, 1), true, false), req(0, &["arrest"])).clip_id);
    let obs = ObservationRequest {
        at: Some(at(1)),
        place: Some(TrackPoint { accuracy_m: 10.0, provider: "manual".into(), ..fix(at(1), 33.736833, -118.291166) }),
        observation: Observation { text: "Two children & a guardian detained".into(), children_present: Some(true), ..Default::default() },
        tags: vec!["minor_present".into()],
        ..Default::default()
    };
    clips.push(monitor.store.observe(obs).unwrap().clip_id);
    clips.push(monitor.seal_bytes("photo.jpg", &phone_photo(false, &jpeg_scan(2000, 2)), req(2, &[])).clip_id);
    clips.push(monitor.seal_bytes("clip.webm", &[&[0x1A, 0x45, 0xDF, 0xA3][..], b"webm", &seeded(1000, 3)].concat(), req(3, &[])).clip_id);
    clips.push(police.seal_bytes("in.mp4", &seeded(1500, 4), req(4, &["arrest", "use_of_force"])).clip_id);
    for d in [&monitor, &police] {
        sync_until_receipted(&d.store, &sync_opts());
    }

    let work = tempfile::tempdir().unwrap();
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    std::fs::create_dir_all(&out).unwrap();
    for (name, profile) in [("full", Profile::Full), ("release", Profile::Release)] {
        let p = export(server.data(), &request(&clips, work.path().join(name), profile)).unwrap().path;
        copy_dir(&p, &out.join(name));
    }
    let key = |home: &Path| DeviceKey::load_or_create(&home.join("keys"), &FileKeyProtector).unwrap().0;
    let keys = serde_json::json!({
        "comment": "Throwaway keys of the generated fixture (tests/tests/package_fixture_gen.rs); never used outside tests.",
        "server": secret_hex(&fieldcap_server::keys::load(&server.data()).unwrap()),
        "devices": {
            device_id_of(&monitor): secret_hex(&key(monitor.home.path())),
            device_id_of(&police): secret_hex(&key(police.home.path())),
        },
        "clips": clips,
    });
    std::fs::write(out.join("keys.json"), serde_json::to_vec_pretty(&keys).unwrap()).unwrap();
}

fn device_id_of(d: &Device) -> String {
    DeviceKey::load_or_create(&d.home.path().join("keys"), &FileKeyProtector).unwrap().0.device_id().to_string()
}
