//! Unit tests of `fieldcap.manifest/1` (evidence/src/manifest.rs, docs/FORMATS.md §3): the
//! strict reader, every field's bounds (at and just past each limit), the canonical form, and
//! signatures over the kept bytes. Unknown fields are tested in `manifest_strict.rs`.

#![allow(clippy::unwrap_used)]

use fieldcap_evidence::canonical;
use fieldcap_evidence::identity::{self, DeviceKey};
use fieldcap_evidence::manifest::*;
use fieldcap_evidence::track::TrackPoint;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const CLIP: &str = "01890a5d-ac96-774b-bcce-b302099a8057";
const T0: &str = "2025-06-07T18:04:05.123Z";
const T1: &str = "2025-06-07T18:09:05.456Z";

fn point(t: &str) -> TrackPoint {
    TrackPoint { t: t.into(), lat: 33.7361, lon: -118.2923, accuracy_m: 4.0, altitude_m: Some(12.5), heading_deg: Some(90.0), speed_mps: Some(1.5), provider: "gps".into() }
}

/// A valid video manifest with every optional field present.
fn video() -> Manifest {
    Manifest {
        kind_type: MANIFEST_TYPE.into(),
        clip_id: CLIP.into(),
        device_id: "0123456789abcdef0123456789abcdef".into(),
        seq: 2,
        prev: Some("ab".repeat(32)),
        kind: ItemKind::Video,
        media: Some(Media { mime: "video/mp4".into(), bytes: 1234, sha256: "0f".repeat(32), blake3: "e1".repeat(32) }),
        capture: Capture {
            started_at: T0.into(),
            ended_at: T1.into(),
            clock: Clock { source: "gnss".into(), uptime_ms: 987_654, offset_ms: Some(-1500), measured_at: Some("2025-06-07T17:00:00.000Z".into()) },
        },
        track: vec![point(T0), point("2025-06-07T18:05:00.000Z"), point("2025-06-07T18:05:00.000Z")],
        operator: Operator { role: Role::Monitor, org: Some("Harbor Area Peace Patrol".into()), callsign: Some("HP-7".into()) },
        tags: vec!["arrest".into(), "use_of_force".into()],
        segment: Some(Segment { recording_id: "8d3e5a2c-1b4f-4c6d-9e8f-0a1b2c3d4e5f".into(), index: 0, is_final: true }),
        fragments: None,
        incident_hint: Some("Pier 3".into()),
        note: Some("caf\u{e9} \"quoted\"\nsecond line".into()),
        observation: None,
        app: Some(App { name: "Fieldcap".into(), version: "0.1.0".into(), platform: "linux".into() }),
    }
}

/// A valid observation (seq 1, no media, only the required fields).
fn observation() -> Manifest {
    Manifest {
        seq: 1,
        prev: None,
        kind: ItemKind::Observation,
        media: None,
        track: vec![],
        operator: Operator { role: Role::Police, org: None, callsign: None },
        tags: vec![],
        segment: None,
        fragments: None,
        incident_hint: None,
        note: None,
        app: None,
        observation: Some(Observation { text: "Two unmarked vans".into(), ..Default::default() }),
        capture: Capture { started_at: T0.into(), ended_at: T0.into(), clock: Clock { source: "system".into(), uptime_ms: 0, offset_ms: None, measured_at: None } },
        ..video()
    }
}

/// Serialises canonically and reads back strictly.
fn roundtrip(m: &Manifest) -> fieldcap_evidence::error::Result<Manifest> {
    Manifest::parse(&m.to_canonical_bytes().unwrap())
}

/// Asserts `m` is refused by both `validate` and `parse`, with an error naming `needle`.
#[track_caller]
fn refused(m: &Manifest, needle: &str) {
    let v = m.validate().expect_err("validate accepted it").to_string();
    assert!(v.contains(needle), "validate error {v:?} does not name {needle:?}");
    let p = roundtrip(m).expect_err("parse accepted it").to_string();
    assert!(p.contains(needle), "parse error {p:?} does not name {needle:?}");
}

#[track_caller]
fn accepted(m: &Manifest) {
    m.validate().unwrap();
    assert_eq!(&roundtrip(m).unwrap(), m);
}

fn with(f: impl FnOnce(&mut Manifest)) -> Manifest {
    let mut m = video();
    f(&mut m);
    m
}

fn value_of(m: &Manifest) -> Value {
    serde_json::from_slice(&m.to_canonical_bytes().unwrap()).unwrap()
}

#[test]
fn valid_manifests_round_trip_to_the_same_bytes() {
    for m in [video(), observation()] {
        let bytes = m.to_canonical_bytes().unwrap();
        assert!(canonical::is_canonical(&bytes));
        let back = Manifest::parse(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.to_canonical_bytes().unwrap(), bytes, "re-serialisation equals the canonical bytes");
    }
    // The serialised names are the ones FORMATS §3 lists.
    let v = value_of(&video());
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["type", "clip_id", "device_id", "seq", "prev", "kind", "media", "capture", "track", "operator", "tags", "segment", "incident_hint", "note", "app"] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(v["type"], "fieldcap.manifest/1");
    assert_eq!(v["kind"], "video");
    assert_eq!(v["operator"]["role"], "monitor");
    assert_eq!(v["segment"]["final"], true);
    assert_eq!(v["capture"]["clock"]["offset_ms"], -1500);
    // Absent optionals are omitted, but prev is written as null for seq 1.
    let o = value_of(&observation());
    assert_eq!(o["prev"], Value::Null);
    for k in ["media", "segment", "incident_hint", "note", "app"] {
        assert!(o.get(k).is_none(), "{k} written though absent");
    }
    assert!(o["capture"]["clock"].get("offset_ms").is_none() && o["capture"]["clock"].get("measured_at").is_none());
    assert!(o["observation"].get("badge_numbers").is_none(), "empty lists omitted");
    assert_eq!(std::str::from_utf8(&observation().to_canonical_bytes().unwrap()).unwrap().matches("\"type\"").count(), 1);
}

#[test]
fn non_canonical_bytes_are_refused() {
    let bytes = video().to_canonical_bytes().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    // Pretty-printed, with a trailing newline, with a space after a colon.
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
    let mut newline = bytes.clone();
    newline.push(b'\n');
    let spaced = text.replacen("\"seq\":2", "\"seq\": 2", 1);
    // Keys out of order: "type" moved to the front.
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    let mut reordered = String::from("{\"type\":\"fieldcap.manifest/1\"");
    for (k, x) in v.as_object().unwrap() {
        if k != "type" {
            reordered.push_str(&format!(",{}:{}", serde_json::to_string(k).unwrap(), serde_json::to_string(x).unwrap()));
        }
    }
    reordered.push('}');
    // Escapes that are not the minimal ones.
    let escaped_e = text.replacen("caf\u{e9}", "caf\\u00e9", 1);
    let escaped_slash = text.replacen("video/mp4", "video\\/mp4", 1);
    let exp_int = text.replacen("\"bytes\":1234", "\"bytes\":1.234e3", 1);
    for (what, b) in [
        ("pretty", pretty),
        ("newline", newline),
        ("space", spaced.into_bytes()),
        ("order", reordered.into_bytes()),
        ("\\u00e9", escaped_e.into_bytes()),
        ("\\/", escaped_slash.into_bytes()),
        ("exponent", exp_int.into_bytes()),
    ] {
        assert_ne!(b, bytes, "{what}: the variant must differ");
        assert!(Manifest::parse(&b).is_err(), "{what} accepted");
    }
    // Sanity: the untouched bytes pass.
    Manifest::parse(&bytes).unwrap();
}

#[test]
fn malformed_json_and_wrong_shapes_are_refused() {
    let v = value_of(&video());
    let mut cases: Vec<(&str, Value)> = Vec::new();
    // (A missing `prev` reads as null: serde's rule for an Option; refused below by the chain rule.)
    let mut x = v.clone();
    x.as_object_mut().unwrap().remove("prev");
    assert!(Manifest::parse(&canonical::to_vec(&x)).unwrap_err().to_string().contains("prev must be null for seq 1"));
    for k in ["type", "clip_id", "device_id", "seq", "kind", "capture", "track", "operator", "tags"] {
        let mut x = v.clone();
        x.as_object_mut().unwrap().remove(k);
        cases.push((k, x));
    }
    let mut x = v.clone();
    x["seq"] = json!(-1);
    cases.push(("negative seq", x));
    let mut x = v.clone();
    x["seq"] = json!("2");
    cases.push(("string seq", x));
    let mut x = v.clone();
    x["kind"] = json!("Video");
    cases.push(("kind case", x));
    let mut x = v.clone();
    x["kind"] = json!("document");
    cases.push(("unknown kind", x));
    let mut x = v.clone();
    x["operator"]["role"] = json!("admin");
    cases.push(("unknown role", x));
    let mut x = v.clone();
    x["media"]["bytes"] = json!(-5);
    cases.push(("negative bytes", x));
    let mut x = v.clone();
    x["media"]["bytes"] = json!(1.5);
    cases.push(("fractional bytes", x));
    let mut x = v.clone();
    x["segment"]["index"] = json!(4_294_967_296u64);
    cases.push(("segment index over u32", x));
    let mut x = v.clone();
    x["capture"]["clock"]["uptime_ms"] = json!(-1);
    cases.push(("negative uptime", x));
    let mut x = v.clone();
    x["tags"] = json!("arrest");
    cases.push(("tags not a list", x));
    for (what, x) in cases {
        let e = Manifest::parse(&canonical::to_vec(&x)).expect_err(what).to_string();
        assert!(e.contains("does not match fieldcap.manifest/1"), "{what}: {e}");
    }
    for junk in [&b""[..], b"null", b"[]", b"{", b"\xff\xfe", b"{\"type\":\"fieldcap.manifest/1\"}"] {
        assert!(Manifest::parse(junk).is_err(), "{junk:?}");
    }
}

#[test]
fn the_size_limit_is_4_mib() {
    // A valid manifest padded (with an incident hint and a long observation text, both free
    // text) to just over 4 MiB is refused for its size before anything else.
    let mut m = observation();
    m.observation = Some(Observation { text: "x".repeat(4 * 1024 * 1024), ..Default::default() });
    let b = m.to_canonical_bytes().unwrap();
    assert!(b.len() > 4 * 1024 * 1024);
    let e = Manifest::parse(&b).unwrap_err().to_string();
    assert!(e.contains("larger than 4 MiB"), "{e}");
    // Exactly 4 MiB is read.
    let over = b.len() - 4 * 1024 * 1024;
    m.observation = Some(Observation { text: "x".repeat(4 * 1024 * 1024 - over), ..Default::default() });
    let b = m.to_canonical_bytes().unwrap();
    assert_eq!(b.len(), 4 * 1024 * 1024);
    assert_eq!(Manifest::parse(&b).unwrap(), m);
}

#[test]
fn type_clip_id_and_device_id() {
    refused(&with(|m| m.kind_type = "fieldcap.manifest/2".into()), "type");
    refused(&with(|m| m.kind_type = String::new()), "type");
    for bad in [
        "01890a5d-ac96-474b-bcce-b302099a8057",   // v4
        "01890a5d-ac96-174b-bcce-b302099a8057",   // v1
        "01890A5D-AC96-774B-BCCE-B302099A8057",   // uppercase
        "01890a5dac96774bbccеb302099a8057",        // simple form (and a Cyrillic e)
        "01890a5dac96774bbcceb302099a8057",       // simple form
        "{01890a5d-ac96-774b-bcce-b302099a8057}", // braced
        "urn:uuid:01890a5d-ac96-774b-bcce-b302099a8057",
        "",
        "not a uuid",
    ] {
        refused(&with(|m| m.clip_id = bad.into()), "clip_id");
    }
    accepted(&with(|m| m.clip_id = "019a0000-0000-7000-8000-000000000000".into()));
    for bad in ["0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0", "0123456789ABCDEF0123456789abcdef", "0123456789abcdeg0123456789abcdef", "", " 123456789abcdef0123456789abcdef"] {
        refused(&with(|m| m.device_id = bad.into()), "device_id");
    }
    accepted(&with(|m| m.device_id = "f".repeat(32)));
}

#[test]
fn seq_and_prev_form_the_chain() {
    refused(&with(|m| m.seq = 0), "seq starts at 1");
    refused(&with(|m| {
        m.seq = 0;
        m.prev = None;
    }), "seq starts at 1");
    accepted(&with(|m| {
        m.seq = 1;
        m.prev = None;
    }));
    refused(&with(|m| m.seq = 1), "prev must be null for seq 1");
    refused(&with(|m| m.prev = None), "prev must be null for seq 1");
    for bad in ["ab".repeat(31), "ab".repeat(33), "AB".repeat(32), format!("{}g", "a".repeat(63)), String::new()] {
        refused(&with(|m| m.prev = Some(bad.clone())), "prev");
    }
    // seq is bounded at 2^53 - 1 (exact in every JSON reader; issue 12 finding 3).
    accepted(&with(|m| m.seq = fieldcap_evidence::manifest::MAX_SEQ));
    refused(&with(|m| m.seq = fieldcap_evidence::manifest::MAX_SEQ + 1), "seq");
    refused(&with(|m| m.seq = u64::MAX), "seq");
    accepted(&with(|m| m.prev = Some("0".repeat(64))));
}

#[test]
fn media_presence_digests_and_mime() {
    refused(&with(|m| m.media = None), "media must be present");
    for kind in [ItemKind::Audio, ItemKind::Photo] {
        accepted(&with(|m| m.kind = kind));
        refused(&with(|m| {
            m.kind = kind;
            m.media = None;
        }), "media must be present");
    }
    let mut o = observation();
    o.media = video().media;
    refused(&o, "absent for observation");
    for bad in ["0f".repeat(31), "0F".repeat(32), format!("{}x", "0".repeat(63)), "0f".repeat(33)] {
        refused(&with(|m| m.media.as_mut().unwrap().sha256 = bad.clone()), "media digests");
        refused(&with(|m| m.media.as_mut().unwrap().blake3 = bad.clone()), "media digests");
    }
    refused(&with(|m| m.media.as_mut().unwrap().mime = String::new()), "mime");
    refused(&with(|m| m.media.as_mut().unwrap().mime = "a".repeat(101)), "mime");
    accepted(&with(|m| m.media.as_mut().unwrap().mime = "a".repeat(100)));
    accepted(&with(|m| m.media.as_mut().unwrap().mime = "a".into()));
    accepted(&with(|m| m.media.as_mut().unwrap().bytes = 0));
    accepted(&with(|m| m.media.as_mut().unwrap().bytes = u64::MAX));
}

#[test]
fn observation_fields() {
    let mut o = observation();
    o.observation = None;
    refused(&o, "observation fields");
    let mut o = observation();
    o.observation = Some(Observation {
        text: String::new(),
        agency: Some("ICE".into()),
        badge_numbers: vec!["1234".into(), "5678".into()],
        vehicle_plates: vec!["7ABC123".into()],
        people_detained: Some(u32::MAX),
        children_present: Some(false),
        extra: BTreeMap::from([("weather".to_string(), "rain".to_string()), ("b".to_string(), String::new())]),
    });
    accepted(&o);
    let v = value_of(&o);
    assert_eq!(v["observation"]["extra"], json!({"b": "", "weather": "rain"}));
    // A video may carry observation fields too (a witness note on a recording).
    accepted(&with(|m| m.observation = observation().observation));
}

#[test]
fn capture_times_and_clock() {
    accepted(&with(|m| m.capture.ended_at = T0.into()));
    refused(&with(|m| m.capture.ended_at = "2025-06-07T18:04:05.122Z".into()), "ended_at is before");
    for bad in ["2025-06-07T18:04:05Z", "2025-06-07T18:04:05.1234Z", "2025-06-07T18:04:05.123+00:00", "2025-06-07T20:04:05.123+02:00", "2025-06-07 18:04:05.123Z", "2025-06-07T18:04:05.123z", "2025-13-07T18:04:05.123Z", "", " 2025-06-07T18:04:05.123Z"] {
        refused(&with(|m| m.capture.started_at = bad.into()), "capture.started_at");
        refused(&with(|m| m.capture.ended_at = bad.into()), "capture.ended_at");
        refused(&with(|m| m.capture.clock.measured_at = Some(bad.into())), "capture.clock.measured_at");
    }
    for source in ["system", "gnss", "network"] {
        accepted(&with(|m| m.capture.clock.source = source.into()));
    }
    for bad in ["", "GNSS", "gps", "ntp", "system "] {
        refused(&with(|m| m.capture.clock.source = bad.into()), "clock.source");
    }
    accepted(&with(|m| {
        m.capture.clock.offset_ms = Some(i64::MIN);
        m.capture.clock.uptime_ms = u64::MAX;
    }));
    accepted(&with(|m| m.capture.clock.offset_ms = Some(i64::MAX)));
}

#[test]
fn track_bounds_at_and_past_each_limit() {
    type Set = fn(&mut TrackPoint, f64);
    let cases: [(&str, Set, &[f64], &[f64]); 6] = [
        ("latitude", |p, x| p.lat = x, &[-90.0, 90.0, 0.0], &[-90.000001, 90.000001, f64::NAN, f64::INFINITY]),
        ("longitude", |p, x| p.lon = x, &[-180.0, 180.0], &[-180.000001, 180.000001, f64::NEG_INFINITY]),
        ("accuracy", |p, x| p.accuracy_m = x, &[0.0, 1e6], &[-0.001, f64::INFINITY, f64::NAN]),
        ("altitude", |p, x| p.altitude_m = Some(x), &[-1000.0, 20000.0], &[-1000.001, 20000.001, f64::NAN]),
        ("heading", |p, x| p.heading_deg = Some(x), &[0.0, 359.999], &[360.0, -0.001, f64::NAN]),
        ("speed", |p, x| p.speed_mps = Some(x), &[0.0, 400.0], &[400.001, -0.001, f64::INFINITY]),
    ];
    for (what, set, ok, bad) in cases {
        for &x in ok {
            accepted(&with(|m| set(&mut m.track[1], x)));
        }
        for &x in bad {
            let m = with(|m| set(&mut m.track[1], x));
            let e = m.validate().unwrap_err().to_string();
            assert!(e.contains("track point 2") && e.contains(what), "{what} {x}: {e}");
            if x.is_finite() {
                // Non-finite numbers cannot even be written as JSON.
                assert!(roundtrip(&m).unwrap_err().to_string().contains(what), "{what} {x}");
            }
        }
    }
    accepted(&with(|m| {
        let p = &mut m.track[0];
        p.altitude_m = None;
        p.heading_deg = None;
        p.speed_mps = None;
    }));
    accepted(&with(|m| m.track[0].provider = "p".repeat(32)));
    refused(&with(|m| m.track[0].provider = "p".repeat(33)), "provider");
    refused(&with(|m| m.track[0].provider = String::new()), "provider");
    // Times never decrease (equal is fine), and must already be canonical.
    refused(&with(|m| m.track[2].t = "2025-06-07T18:04:59.999Z".into()), "time goes backwards");
    refused(&with(|m| m.track[1].t = "2025-06-07T18:05:00Z".into()), "track times are not in canonical form");
    refused(&with(|m| m.track[1].t = "2025-06-07T20:05:00.000+02:00".into()), "track times are not in canonical form");
    refused(&with(|m| m.track[1].t = "yesterday".into()), "track point 2");
    accepted(&with(|m| m.track.clear()));
    // A canonical float survives the round trip exactly.
    let m = with(|m| m.track[0].lat = 33.7361491234567);
    assert_eq!(roundtrip(&m).unwrap().track[0].lat, 33.7361491234567);
}

#[test]
fn tags_are_known_sorted_and_unique() {
    let all: Vec<String> = {
        let mut t: Vec<String> = KNOWN_TAGS.iter().map(|s| s.to_string()).collect();
        t.sort();
        t
    };
    accepted(&with(|m| m.tags = all.clone()));
    accepted(&with(|m| m.tags.clear()));
    refused(&with(|m| m.tags = vec!["use_of_force".into(), "arrest".into()]), "sorted and unique");
    refused(&with(|m| m.tags = vec!["arrest".into(), "arrest".into()]), "sorted and unique");
    for bad in ["Arrest", "riot", "", " arrest"] {
        refused(&with(|m| m.tags = vec![bad.into()]), "unknown tag");
    }
    assert_eq!(normalise_tags(&["medical".into(), "arrest".into(), "medical".into()]).unwrap(), vec!["arrest".to_string(), "medical".to_string()]);
    assert!(normalise_tags(&["nope".into()]).unwrap_err().to_string().contains("known: minor_present"));
}

#[test]
fn segment_operator_app_and_free_text() {
    accepted(&with(|m| m.segment.as_mut().unwrap().recording_id = "01890a5d-ac96-774b-bcce-b302099a8057".into()));
    for bad in ["", "recording-1", "01890a5d-ac96-774b-bcce-b302099a805"] {
        refused(&with(|m| m.segment.as_mut().unwrap().recording_id = bad.into()), "segment.recording_id");
    }
    accepted(&with(|m| {
        let s = m.segment.as_mut().unwrap();
        s.index = u32::MAX;
        s.is_final = false;
    }));
    accepted(&with(|m| m.operator = Operator { role: Role::Police, org: Some("Port Police".into()), callsign: None }));
    for (field, set) in [("note", (|m: &mut Manifest, s: String| m.note = Some(s)) as fn(&mut Manifest, String)), ("incident_hint", |m, s| m.incident_hint = Some(s))] {
        accepted(&with(|m| set(m, "n".repeat(64 * 1024))));
        // The limit is in bytes: 32768 two-byte characters are exactly 64 KiB.
        accepted(&with(|m| set(m, "\u{e9}".repeat(32 * 1024))));
        let m = with(|m| set(m, "n".repeat(64 * 1024 + 1)));
        let e = m.validate().unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("longer than 64 KiB"), "{e}");
        assert!(roundtrip(&m).is_err());
        refused(&with(|m| set(m, format!("{}\u{e9}", "n".repeat(64 * 1024 - 1)))), "64 KiB");
    }
}

#[test]
fn role_and_kind_names() {
    assert_eq!(Role::parse("monitor").unwrap(), Role::Monitor);
    assert_eq!(Role::parse("police").unwrap(), Role::Police);
    for bad in ["Monitor", "", "admin", "police "] {
        assert!(Role::parse(bad).unwrap_err().to_string().contains("role must be monitor or police"), "{bad}");
    }
    assert_eq!((Role::Monitor.as_str(), Role::Police.as_str()), ("monitor", "police"));
    for (k, s) in [(ItemKind::Video, "video"), (ItemKind::Audio, "audio"), (ItemKind::Photo, "photo"), (ItemKind::Observation, "observation")] {
        assert_eq!(k.as_str(), s);
        assert_eq!(serde_json::to_value(k).unwrap(), json!(s));
    }
}

#[test]
fn extensions_and_mime_types_map_both_ways() {
    let table = [
        ("mp4", "video/mp4", ItemKind::Video),
        ("mov", "video/quicktime", ItemKind::Video),
        ("3gp", "video/3gpp", ItemKind::Video),
        ("webm", "video/webm", ItemKind::Video),
        ("mkv", "video/x-matroska", ItemKind::Video),
        ("m4a", "audio/mp4", ItemKind::Audio),
        ("aac", "audio/aac", ItemKind::Audio),
        ("wav", "audio/wav", ItemKind::Audio),
        ("mp3", "audio/mpeg", ItemKind::Audio),
        ("ogg", "audio/ogg", ItemKind::Audio),
        ("amr", "audio/amr", ItemKind::Audio),
        ("jpg", "image/jpeg", ItemKind::Photo),
        ("png", "image/png", ItemKind::Photo),
        ("heic", "image/heic", ItemKind::Photo),
        ("webp", "image/webp", ItemKind::Photo),
    ];
    for (ext, mime, kind) in table {
        assert_eq!(mime_for_extension(ext), Some((mime, kind)), "{ext}");
        assert_eq!(mime_for_extension(&ext.to_uppercase()), Some((mime, kind)), "{ext} upper case");
        assert_eq!(extension_for_mime(mime), ext, "{mime}");
    }
    for (ext, mime) in [("m4v", "video/mp4"), ("jpeg", "image/jpeg"), ("opus", "audio/ogg")] {
        assert_eq!(mime_for_extension(ext).unwrap().0, mime);
    }
    for bad in ["", "txt", "exe", "mp4 ", ".mp4", "jpgx"] {
        assert_eq!(mime_for_extension(bad), None, "{bad}");
    }
    assert_eq!(extension_for_mime("application/octet-stream"), "bin");
    assert_eq!(extension_for_mime("VIDEO/MP4"), "bin");
}

#[test]
fn signatures_cover_the_exact_bytes() {
    let key = DeviceKey::generate();
    let other = DeviceKey::generate();
    let mut m = video();
    m.device_id = key.device_id().to_string();
    let bytes = m.to_canonical_bytes().unwrap();
    let sig = key.sign(&bytes);
    identity::verify(&key.verifying_key(), &bytes, &sig).unwrap();
    assert_eq!(identity::device_id_for(&key.verifying_key()), Manifest::parse(&bytes).unwrap().device_id);
    // Another key, or another key's signature.
    assert!(identity::verify(&other.verifying_key(), &bytes, &sig).is_err());
    assert!(identity::verify(&key.verifying_key(), &bytes, &other.sign(&bytes)).is_err());
    assert_ne!(identity::device_id_for(&other.verifying_key()), m.device_id);
    // Any field changed (and re-serialised canonically, so still a valid manifest): the
    // signature no longer holds.
    let tampered: Vec<Manifest> = vec![
        with(|x| x.seq = 3),
        with(|x| x.media.as_mut().unwrap().bytes = 1235),
        with(|x| x.media.as_mut().unwrap().sha256 = "1f".repeat(32)),
        with(|x| x.capture.ended_at = "2025-06-07T18:09:05.457Z".into()),
        with(|x| x.track[0].lat = 33.7362),
        with(|x| x.tags = vec!["arrest".into()]),
        with(|x| x.note = None),
        with(|x| x.operator.role = Role::Police),
    ];
    for mut t in tampered {
        t.device_id = m.device_id.clone();
        let tb = t.to_canonical_bytes().unwrap();
        assert_ne!(tb, bytes);
        Manifest::parse(&tb).unwrap();
        assert!(identity::verify(&key.verifying_key(), &tb, &sig).is_err());
    }
    // A flipped bit anywhere in the bytes, and a truncated or altered signature.
    for i in (0..bytes.len()).step_by(97) {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        assert!(identity::verify(&key.verifying_key(), &b, &sig).is_err(), "byte {i}");
    }
    assert!(identity::verify(&key.verifying_key(), &bytes, &sig[..63]).is_err());
    let mut s2 = sig;
    s2[10] ^= 0x80;
    assert!(identity::verify(&key.verifying_key(), &bytes, &s2).is_err());
}

/// A manifest has one spelling: bytes that parse to a manifest whose own canonical bytes differ
/// (an explicit `null` for an absent optional field) are refused, so what was signed is what was
/// checked.
#[test]
fn other_spellings_of_the_same_manifest_are_refused() {
    let m = with(|m| {
        m.note = None;
        m.incident_hint = None;
        m.segment = None;
    });
    let mut tried = 0;
    for key in ["note", "incident_hint", "segment"] {
        let mut v = value_of(&m);
        v.as_object_mut().unwrap().insert(key.to_string(), Value::Null);
        let other = fieldcap_evidence::canonical::to_vec(&v);
        assert!(fieldcap_evidence::canonical::is_canonical(&other));
        // serde alone reads the null as "absent": the same manifest, other bytes.
        assert_eq!(&serde_json::from_slice::<Manifest>(&other).unwrap(), &m);
        let err = Manifest::parse(&other).expect_err("an explicit null was accepted").to_string();
        assert!(err.contains("one canonical spelling"), "{err}");
        tried += 1;
    }
    assert_eq!(tried, 3);
    assert_eq!(Manifest::parse(&m.to_canonical_bytes().unwrap()).unwrap(), m);
}
