//! A package re-signed completely with another server key (the test kit's forger: new
//! `server.pub.pem`, certificates, receipts, rebuilt log, checkpoints, server custody, derived
//! documents, index, sums). Before the cross-checks each of these forgeries passed
//! `verify_package`; now the devices' own custody events — which the forger cannot sign — give
//! each one away, naming the device, the event and both values. The export's own custody
//! record names an item removed from a genuine package.
#![allow(clippy::unwrap_used)]

use fieldcap_core::custody::CustodyEvent;
use fieldcap_package::package::{verify_package, PackageIndex};
use fieldcap_package::VerifyReport;
use fieldcap_server::package::Profile;
use fieldcap_testkit::files::copy_dir;
use fieldcap_testkit::forger::{forge_package, ForgeOptions, ForgedKey};
use fieldcap_testkit::package::{recompute_sums, Fixture};
use fieldcap_testkit::tools::Cli;
use std::fs;
use std::path::{Path, PathBuf};

const DEVICE_CHECK: &str = "device custody agrees with the package";
const EXPORT_CHECK: &str = "exported items match the index";

fn index(dir: &Path) -> PackageIndex {
    serde_json::from_slice(&fs::read(dir.join("package.json")).unwrap()).unwrap()
}

fn forge(fx: &Fixture, src: &Path, name: &str, opts: ForgeOptions) -> (PathBuf, ForgedKey) {
    let dst = fx.work.path().join(name);
    let key = forge_package(src, &dst, &opts).unwrap();
    (dst, key)
}

/// The failed checks of a package that must fail, all of them device cross-checks; their
/// details joined.
fn device_failures(r: &VerifyReport) -> String {
    assert!(!r.all_ok(), "the forgery verified");
    let bad: Vec<_> = r.checks.iter().filter(|c| !c.ok).collect();
    assert!(bad.iter().all(|c| c.name == DEVICE_CHECK && c.file.starts_with("custody.jsonl (device ")), "only the device cross-checks fail: {bad:#?}");
    bad.iter().map(|c| c.detail.as_str()).collect::<Vec<_>>().join("\n")
}

fn passes(dir: &Path) -> VerifyReport {
    let r = verify_package(dir);
    assert!(r.all_ok(), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    r
}

#[test]
fn a_full_package_signed_again_with_another_server_key_fails_on_the_devices_own_custody() {
    let fx = Fixture::new();
    let full = fx.package("full", Profile::Full, None).path;
    let genuine_key = index(&full).server_key_id;

    // The genuine package: every device's events agree with its receipts and key.
    let r = passes(&full);
    let lines: Vec<_> = r.checks.iter().filter(|c| c.name == DEVICE_CHECK).collect();
    assert_eq!(lines.len(), fx.devices.len());
    for l in &lines {
        assert!(l.detail.contains(&format!("name this server key {genuine_key}")) && l.detail.contains("receipt(s) of packaged items match"), "{}", l.detail);
        assert!(!l.detail.contains(" 0 receipt(s)"), "{}", l.detail);
    }
    assert!(r.checks.iter().any(|c| c.name == EXPORT_CHECK && c.ok));

    // Re-signed, nothing else changed: each device names the real key at enrolment.
    let (forged, key) = forge(&fx, &full, "forged", ForgeOptions::default());
    let why = device_failures(&verify_package(&forged));
    for d in &fx.devices {
        let id = d.store.device_id();
        let line = why.lines().find(|l| l.starts_with(&format!("device {id}:"))).unwrap_or_else(|| panic!("device {id} not named: {why}"));
        assert!(line.contains(&format!("server key {genuine_key} (event 4 'enrolled'")), "{line}");
        assert!(line.contains(&format!("but this package is signed by server key {}", key.key_id)), "{line}");
        assert!(line.contains("'receipted' of clip") && line.contains("the device recorded receipt_sha256"), "{line}");
    }

    // A clip dropped (and the log rebuilt without it): the device's commitment of that clip
    // still names the real server, and every remaining receipt differs from what it recorded.
    let dropped = &fx.clips[2];
    let (forged, _) = forge(&fx, &full, "forged-drop", ForgeOptions { drop_clips: vec![dropped.clone()], ..Default::default() });
    assert!(!index(&forged).items.iter().any(|i| &i.clip_id == dropped));
    let why = device_failures(&verify_package(&forged));
    assert!(why.contains(&format!("'manifest_committed' of clip {dropped}")), "{why}");
    assert!(why.contains(&format!("'receipted' of clip {}: the device recorded receipt_sha256", fx.clips[0])), "{why}");

    // A receipt moved an hour earlier: the device recorded the real time.
    let moved = &fx.clips[0];
    let real = index(&full).items.iter().find(|i| &i.clip_id == moved).unwrap().received_at.clone();
    let (forged, _) = forge(&fx, &full, "forged-time", ForgeOptions { shift_received_at: vec![(moved.clone(), chrono::Duration::hours(-1))], ..Default::default() });
    let fake = index(&forged).items.iter().find(|i| &i.clip_id == moved).unwrap().received_at.clone();
    assert_ne!(real, fake);
    let says = format!("'receipted' of clip {moved}: the device recorded received_at {real}, clips/{moved}/receipt.json has received_at {fake}");
    let why = device_failures(&verify_package(&forged));
    assert!(why.contains(&says), "{why}");
    // The same through `fieldcap verify`: exit 1, the FAIL line naming the device's record.
    let out = Cli::built().command().arg("verify").arg(&forged).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with("FAIL  device custody agrees with the package") && l.contains(&says)), "{text}");
    assert_eq!(Cli::built().command().arg("verify").arg(&full).output().unwrap().status.code(), Some(0));

    // What no cross-check sees through: a forger who also leaves out all device custody (and the
    // server's record of its upload). The report says so on its own line; only a pinned server
    // key catches this one.
    let (forged, _) = forge(&fx, &full, "forged-stripped", ForgeOptions { drop_device_custody: true, ..Default::default() });
    let r = passes(&forged);
    let note = r.checks.iter().find(|c| c.name == "device custody cross-check").unwrap();
    assert!(note.detail.starts_with("not possible: this package holds no device custody events"), "{}", note.detail);
    assert!(!r.checks.iter().any(|c| c.name == DEVICE_CHECK));
}

#[test]
fn a_release_signed_again_with_another_server_key_fails_on_the_device_events_it_carries() {
    let fx = Fixture::new();
    let rel = fx.package("release", Profile::Release, None).path;
    let genuine_key = index(&rel).server_key_id;
    let r = passes(&rel);
    assert_eq!(r.checks.iter().filter(|c| c.name == DEVICE_CHECK && c.ok).count(), fx.devices.len());

    let (forged, key) = forge(&fx, &rel, "forged-release", ForgeOptions::default());
    let why = device_failures(&verify_package(&forged));
    assert!(why.contains(&format!("server key {genuine_key} (event 4 'enrolled'")) && why.contains(&key.key_id), "{why}");
    assert_eq!(why.lines().count(), fx.devices.len(), "{why}");

    // The police video dropped, and with it the police device: the monitor's events remain.
    // (Signed with the same forged key as the first: one forger, two packages.)
    let secret = Some(*key.key.secret());
    let (forged, again) = forge(&fx, &rel, "forged-release-drop", ForgeOptions { drop_clips: vec![fx.clips[3].clone()], key_secret: secret, ..Default::default() });
    assert_eq!(again.key_id, key.key_id);
    assert_eq!(index(&forged).devices.len(), 1);
    let why = device_failures(&verify_package(&forged));
    assert!(why.starts_with(&format!("device {}:", fx.devices[0].store.device_id())), "{why}");
}

/// Removes an item from a genuine package as someone without the server key would: its files,
/// its index entry and file-list entries (the index signature no longer verifies), optionally
/// the server's custody events of it, and both sums files recomputed.
fn remove_item(src: &Path, dst: &Path, clip: &str, custody_too: bool) {
    copy_dir(src, dst);
    fs::remove_dir_all(dst.join(format!("clips/{clip}"))).unwrap();
    fs::remove_file(dst.join(format!("log/inclusion/{clip}.json"))).unwrap();
    let mut idx = index(dst);
    idx.items.retain(|i| i.clip_id != clip);
    idx.files.retain(|f| !f.path.contains(clip));
    if custody_too {
        let text = fs::read_to_string(dst.join("custody.jsonl")).unwrap();
        let kept: String = text
            .lines()
            .filter(|l| {
                let e = CustodyEvent::from_jsonl(l).unwrap();
                !(l.contains("\"actor\":\"server:") && e.clip_id.as_deref() == Some(clip))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(dst.join("custody.jsonl"), &kept).unwrap();
        let d = fieldcap_core::hashing::Digests::of_bytes(kept.as_bytes());
        let f = idx.files.iter_mut().find(|f| f.path == "custody.jsonl").unwrap();
        (f.bytes, f.sha256, f.blake3) = (d.bytes, d.sha256_hex(), d.blake3_hex());
    }
    fs::write(dst.join("package.json"), fieldcap_core::canonical::to_vec_of(&idx).unwrap()).unwrap();
    recompute_sums(dst);
}

#[test]
fn an_item_removed_from_a_package_is_named_from_the_export_record() {
    let fx = Fixture::new();
    let full = fx.package("full", Profile::Full, None).path;
    let clip = &fx.clips[2];

    // Files and index entry removed: the server's per-item `exported` event of this package names it.
    let d = fx.work.path().join("removed");
    remove_item(&full, &d, clip, false);
    let r = verify_package(&d);
    assert!(r.checks.iter().any(|c| !c.ok && c.name == "index signature"));
    let c = r.checks.iter().find(|c| c.name == EXPORT_CHECK).unwrap();
    assert!(!c.ok && c.file == "package.json", "{c:#?}");
    assert!(c.detail.starts_with(&format!("item {clip} is missing: the server recorded exporting it in this package")), "{}", c.detail);

    // Its server custody events removed too (their seq numbers then just skip): the export
    // event's items_sha256 still names it, with the clip id the devices' events give.
    let d = fx.work.path().join("removed-with-custody");
    remove_item(&full, &d, clip, true);
    let r = verify_package(&d);
    let c = r.checks.iter().find(|c| c.name == EXPORT_CHECK).unwrap();
    assert!(!c.ok, "{c:#?}");
    assert!(c.detail.starts_with(&format!("item {clip} is missing: the export event")) && c.detail.contains("lists 4 items"), "{}", c.detail);
}

/// With the city's real key pinned (`--server-key`, as a recipient gets it out of band), every
/// forgery fails on the key itself — the one a cross-check cannot see (all device custody
/// stripped) included — and the genuine package passes. The same through `fieldcap verify` and
/// through the stock-tool `VERIFY.txt` given the real fingerprint.
#[test]
fn a_pinned_server_key_refuses_every_forgery_and_passes_the_genuine_package() {
    use fieldcap_evidence::identity::key_fingerprint;
    use fieldcap_package::package::{verify_package_with, TrustAnchors};
    use fieldcap_package::ServerKeyPin;
    const PIN: &str = "server key is the pinned key";
    let fx = Fixture::new();
    let full = fx.package("full", Profile::Full, None).path;
    let real = fx.server.fingerprint();
    let pinned = |dir: &Path| verify_package_with(dir, &TrustAnchors { server_key: Some(ServerKeyPin::Fingerprint(real.clone())), ..Default::default() });

    let r = pinned(&full);
    assert!(r.all_ok(), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    assert!(r.checks.iter().any(|c| c.name == PIN && c.ok));
    assert_eq!(r.server_key.as_ref().map(|s| s.pinned), Some(true));

    let forgeries = [
        ("pin-forged", ForgeOptions::default()),
        ("pin-forged-drop", ForgeOptions { drop_clips: vec![fx.clips[1].clone()], ..Default::default() }),
        ("pin-forged-time", ForgeOptions { shift_received_at: vec![(fx.clips[0].clone(), chrono::Duration::hours(-1))], ..Default::default() }),
        ("pin-forged-stripped", ForgeOptions { drop_device_custody: true, ..Default::default() }),
    ];
    for (name, opts) in forgeries {
        let (forged, key) = forge(&fx, &full, name, opts);
        let forged_fp = key_fingerprint(&key.key.verifying_key());
        let r = pinned(&forged);
        assert!(!r.all_ok(), "{name}: the forgery verified against the pinned key");
        let c = r.checks.iter().find(|c| c.name == PIN).unwrap_or_else(|| panic!("{name}: no pin check"));
        assert!(!c.ok, "{name}: {c:?}");
        assert!(c.detail.contains(&forged_fp) && c.detail.contains(&real), "{name}: the pin check names both keys: {}", c.detail);
        assert_eq!(r.server_key.as_ref().map(|s| s.pinned), Some(false), "{name}");
    }

    // The stripped forgery, which passes unpinned, through the command line and the stock tools.
    let stripped = fx.work.path().join("pin-forged-stripped");
    let out = Cli::built().command().arg("verify").arg(&stripped).arg("--server-key").arg(&real).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.lines().any(|l| l.starts_with(&format!("FAIL  {PIN}"))), "{text}");
    let out = Cli::built().command().arg("verify").arg(&full).arg("--server-key").arg(&real).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    if fieldcap_testkit::tools::stock_tools("VERIFY.txt of a forged package", &["openssl", "sha256sum", "b3sum"]) {
        let (passed, text) = fieldcap_testkit::tools::stock_verify(&stripped, &real);
        assert!(!passed, "VERIFY.txt passed a forgery given the real fingerprint:\n{text}");
        let (passed, text) = fieldcap_testkit::tools::stock_verify(&full, &real);
        assert!(passed, "{text}");
    }
}
