//! The strict manifest reader refuses fields the format does not define (issue 12 #8), at the
//! top level and inside every nested object, and names the field; manifests as the device core
//! writes them still parse.
#![allow(clippy::unwrap_used)]

use fieldcap_evidence::manifest::{App, Capture, Clock, ItemKind, Manifest, Media, Observation, Operator, Role, Segment, MANIFEST_TYPE};
use fieldcap_evidence::track::TrackPoint;
use serde_json::{json, Value};

fn full_manifest() -> Manifest {
    Manifest {
        kind_type: MANIFEST_TYPE.into(),
        clip_id: "0190a0b2-1c2d-7e3f-8a4b-5c6d7e8f9a0b".into(),
        device_id: "0123456789abcdef0123456789abcdef".into(),
        seq: 2,
        prev: Some("ab".repeat(32)),
        kind: ItemKind::Video,
        media: Some(Media { mime: "video/mp4".into(), bytes: 10, sha256: "cd".repeat(32), blake3: "ef".repeat(32) }),
        capture: Capture {
            started_at: "2025-06-07T18:04:05.123Z".into(),
            ended_at: "2025-06-07T18:05:05.123Z".into(),
            clock: Clock { source: "system".into(), uptime_ms: 1000, offset_ms: Some(-20), measured_at: Some("2025-06-07T18:00:00.000Z".into()) },
        },
        track: vec![TrackPoint {
            t: "2025-06-07T18:04:05.123Z".into(),
            lat: 33.7361,
            lon: -118.2922,
            accuracy_m: 5.0,
            altitude_m: Some(12.0),
            heading_deg: Some(90.0),
            speed_mps: Some(1.5),
            provider: "gps".into(),
        }],
        operator: Operator { role: Role::Monitor, org: Some("Harbor Area Peace Patrol".into()), callsign: Some("HP-7".into()) },
        tags: vec!["arrest".into()],
        segment: Some(Segment { recording_id: "0190a0b2-1c2d-7e3f-8a4b-5c6d7e8f9a0c".into(), index: 0, is_final: true }),
        fragments: None,
        incident_hint: Some("pier 9".into()),
        note: Some("a note".into()),
        observation: None,
        app: Some(App { name: "fieldcap".into(), version: "1.0".into(), platform: "linux".into() }),
    }
}

fn canonical(v: &Value) -> Vec<u8> {
    fieldcap_evidence::canonical::to_vec(v)
}

#[test]
fn manifests_the_core_writes_still_parse() {
    let m = full_manifest();
    let bytes = m.to_canonical_bytes().unwrap();
    assert_eq!(Manifest::parse(&bytes).unwrap(), m);
    let mut obs = full_manifest();
    obs.kind = ItemKind::Observation;
    obs.media = None;
    obs.observation = Some(Observation {
        text: "two unmarked vans".into(),
        agency: Some("ICE".into()),
        badge_numbers: vec!["12".into()],
        extra: [("colour".to_string(), "grey".to_string())].into_iter().collect(),
        ..Default::default()
    });
    let bytes = obs.to_canonical_bytes().unwrap();
    assert_eq!(Manifest::parse(&bytes).unwrap(), obs);
}

#[test]
fn unknown_fields_are_refused_at_every_level_and_named() {
    let base = serde_json::to_value(full_manifest()).unwrap();
    type Place = fn(&mut Value) -> &mut Value;
    let places: [(&str, Place); 8] = [
        ("top level", |v| v),
        ("media", |v| &mut v["media"]),
        ("capture", |v| &mut v["capture"]),
        ("capture.clock", |v| &mut v["capture"]["clock"]),
        ("track point", |v| &mut v["track"][0]),
        ("operator", |v| &mut v["operator"]),
        ("segment", |v| &mut v["segment"]),
        ("app", |v| &mut v["app"]),
    ];
    for (where_, at) in places {
        let mut v = base.clone();
        at(&mut v).as_object_mut().unwrap().insert("receipt".into(), json!({"type": "fieldcap.receipt/1"}));
        let e = Manifest::parse(&canonical(&v)).expect_err(where_);
        assert!(e.to_string().contains("unknown field `receipt`"), "{where_}: {e}");
    }
    // A large unknown field (the 3 MB case of the issue, smaller here) is refused the same way.
    let mut v = base.clone();
    v["zz_padding"] = json!("x".repeat(300_000));
    let e = Manifest::parse(&canonical(&v)).unwrap_err();
    assert!(e.to_string().contains("zz_padding"), "{e}");
    // And inside an observation.
    let mut v = base;
    v["kind"] = json!("observation");
    v.as_object_mut().unwrap().remove("media");
    v["observation"] = json!({"text": "vans", "signed_by_server": true});
    let e = Manifest::parse(&canonical(&v)).unwrap_err();
    assert!(e.to_string().contains("signed_by_server"), "{e}");
}
