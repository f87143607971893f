//! Device custody in packages: the devices upload their own custody logs when they sync, and a
//! full package carries each log complete from its first event. A dishonest exporter — holding
//! the *server* key, so able to re-sign the index and recompute the sums — can neither leave a
//! device event out nor alter one without `fieldcap verify` naming custody.jsonl.

#![allow(clippy::unwrap_used)]

use fieldcap_core::custody::CustodyEvent;
use fieldcap_package::package::{verify_package, PackageIndex};
use fieldcap_server::package::Profile;
use fieldcap_testkit::files::copy_dir;
use fieldcap_testkit::package::*;
use std::fs;
use std::path::Path;

fn events(dir: &Path) -> Vec<(CustodyEvent, serde_json::Value)> {
    fs::read_to_string(dir.join("custody.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let e = CustodyEvent::from_jsonl(l).unwrap();
            let v = serde_json::from_slice(&e.body).unwrap();
            (e, v)
        })
        .collect()
}

/// Rewrites custody.jsonl as a dishonest exporter would: index entry, index signature (server
/// key) and both sums files made to match.
fn rewrite_custody(fx: &Fixture, dir: &Path, lines: &[String]) {
    let text = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    fs::write(dir.join("custody.jsonl"), &text).unwrap();
    let mut idx: PackageIndex = serde_json::from_slice(&fs::read(dir.join("package.json")).unwrap()).unwrap();
    let d = fieldcap_core::hashing::Digests::of_bytes(text.as_bytes());
    let f = idx.files.iter_mut().find(|f| f.path == "custody.jsonl").unwrap();
    f.bytes = d.bytes;
    f.sha256 = d.sha256_hex();
    f.blake3 = d.blake3_hex();
    let key = fieldcap_server::keys::load(&fx.data()).unwrap();
    let b = fieldcap_core::canonical::to_vec_of(&idx).unwrap();
    fs::write(dir.join("package.json"), &b).unwrap();
    fs::write(dir.join("package.json.sig"), key.sign(&b)).unwrap();
    recompute_sums(dir);
}

fn custody_failure(dir: &Path) -> String {
    let r = verify_package(dir);
    assert!(!r.all_ok(), "verify passed");
    let bad: Vec<_> = r.checks.iter().filter(|c| !c.ok).collect();
    assert!(bad.iter().all(|c| c.file == "custody.jsonl"), "only custody.jsonl is at fault: {bad:#?}");
    bad[0].detail.clone()
}

#[test]
fn full_packages_carry_complete_device_logs_that_an_exporter_cannot_trim_or_alter() {
    let fx = Fixture::new();
    let pkg = fx.package("full", Profile::Full, None).path;
    let r = verify_package(&pkg);
    assert!(r.all_ok(), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    let check = r.checks.iter().find(|c| c.name == "custody events").unwrap();
    assert!(check.detail.contains("device logs complete"), "{}", check.detail);
    assert!(!check.detail.contains("without a device custody event"), "{}", check.detail);

    // Each device's whole log, seq 1.., equal to what the device holds; every item sealed.
    let evs = events(&pkg);
    for store in fx.devices.iter().map(|d| &d.store) {
        let actor = format!("device:{}", store.device_id());
        let mine: Vec<&CustodyEvent> = evs.iter().filter(|(_, v)| v["actor"] == actor.as_str()).map(|(e, _)| e).collect();
        let local = store.custody_events(None).unwrap();
        assert!(!mine.is_empty());
        assert_eq!(mine.len(), local.len(), "the whole log went up with the last sync");
        for (a, b) in mine.iter().zip(&local) {
            assert_eq!(a.body, b.body, "the package holds the device's bytes verbatim");
        }
        assert_eq!(mine[0].seq, 1);
    }
    for clip in &fx.clips {
        assert!(evs.iter().any(|(e, v)| e.event == "sealed" && e.clip_id.as_deref() == Some(clip) && v["actor"].as_str().unwrap().starts_with("device:")), "{clip}");
    }

    let lines: Vec<String> = fs::read_to_string(pkg.join("custody.jsonl")).unwrap().lines().map(String::from).collect();
    let device_line = |pred: &dyn Fn(&CustodyEvent) -> bool| lines.iter().position(|l| l.contains("\"actor\":\"device:") && pred(&CustodyEvent::from_jsonl(l).unwrap())).unwrap();

    // Trim: leave out one device event in the middle of a log (e.g. a `flagged` or `exported`).
    let d = fx.work.path().join("trimmed");
    copy_dir(&pkg, &d);
    let mut trimmed = lines.clone();
    trimmed.remove(device_line(&|e| e.seq == 3));
    rewrite_custody(&fx, &d, &trimmed);
    let why = custody_failure(&d);
    assert!(why.contains("event 3 is missing"), "{why}");

    // Trim the tail: the server's own record of the upload gives it away.
    let d = fx.work.path().join("tail");
    copy_dir(&pkg, &d);
    let dev0 = format!("device:{}", fx.devices[0].store.device_id());
    let last = lines.iter().rposition(|l| l.contains(&format!("\"actor\":\"{dev0}\""))).unwrap();
    let mut tail = lines.clone();
    tail.remove(last);
    rewrite_custody(&fx, &d, &tail);
    let why = custody_failure(&d);
    assert!(why.contains("the server recorded events up to"), "{why}");

    // Alter: change the detail of a device's `sealed` event (the device signature breaks).
    let d = fx.work.path().join("altered");
    copy_dir(&pkg, &d);
    let mut altered = lines.clone();
    let i = device_line(&|e| e.event == "sealed");
    let mut v: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
    v["event"]["detail"]["seq"] = serde_json::json!(99);
    altered[i] = v.to_string();
    rewrite_custody(&fx, &d, &altered);
    let why = custody_failure(&d);
    assert!(why.contains("bad signature"), "{why}");

    // Drop a whole device's log.
    let d = fx.work.path().join("dropped");
    copy_dir(&pkg, &d);
    let kept: Vec<String> = lines.iter().filter(|l| !l.contains(&format!("\"actor\":\"{dev0}\""))).cloned().collect();
    rewrite_custody(&fx, &d, &kept);
    let why = custody_failure(&d);
    assert!(why.contains("uploaded its custody log, but the package holds none"), "{why}");
}

#[test]
fn a_release_carries_only_the_released_items_device_events() {
    let fx = Fixture::new();
    let pkg = fx.package("release", Profile::Release, None).path;
    let r = verify_package(&pkg);
    assert!(r.all_ok(), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    let idx: PackageIndex = serde_json::from_slice(&fs::read(pkg.join("package.json")).unwrap()).unwrap();
    let released: Vec<&str> = idx.items.iter().map(|i| i.clip_id.as_str()).collect();
    assert!(!released.contains(&fx.sensitive_clip.as_str()));
    for (e, v) in events(&pkg) {
        if v["actor"].as_str().unwrap().starts_with("device:") {
            match e.clip_id.as_deref() {
                Some(c) => assert!(released.contains(&c), "a device event of an unreleased item: {}", e.event),
                None => assert!(["created", "enrolled", "clock_offset_measured", "alarm"].contains(&e.event.as_str()), "{}", e.event),
            }
        }
    }
}
