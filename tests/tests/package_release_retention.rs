//! Release profile (no exact coordinates or operator identity anywhere; sensitive items only with
//! a recorded reason; originals untouched) and retention / legal hold (held or referred items are
//! never disposed; each disposal a custody event and a log leaf; the running server keeps
//! working with the leaves another process appended).
#![allow(clippy::unwrap_used)]

use fieldcap_package::package::{verify_package, PackageIndex};
use fieldcap_server::package::{PackageRequest, Profile};
use fieldcap_server::records::Records;
use fieldcap_testkit::package::*;
use fieldcap_testkit::tools::{stock_tools, stock_verify, Cli};
use std::fs;

fn forbidden() -> Vec<String> {
    let mut v: Vec<String> = TRACK_A.iter().chain(TRACK_B).chain([&OBS_PLACE]).flat_map(|(a, b)| [format!("{a}"), format!("{b}")]).collect();
    v.extend([MONITOR_ORG.into(), POLICE_ORG.into(), POLICE_CALLSIGN.into(), "note by".into(), "12.25".into()]);
    v
}

#[test]
fn release_profile_hides_exact_places_identity_and_sensitive_items() {
    let fx = Fixture::new();
    let r = Records::open(fx.deployment()).unwrap();
    let before: Vec<Vec<u8>> = r.items().unwrap().into_iter().map(|i| i.manifest).collect();

    let full = fx.package("full", Profile::Full, None).path;
    let full_text: String = fieldcap_package::clip::list_files(&full).unwrap().iter().map(|f| String::from_utf8_lossy(&fs::read(full.join(f)).unwrap()).to_string()).collect();
    assert!(full_text.contains(MONITOR_ORG) && full_text.contains("33.736149"), "the full package holds the originals");

    for (name, reason) in [("rel", None), ("rel-sensitive", Some("Court order 25-77 allows release"))] {
        let out = fx.package(name, Profile::Release, reason);
        let idx: PackageIndex = serde_json::from_slice(&fs::read(out.path.join("package.json")).unwrap()).unwrap();
        let report = verify_package(&out.path);
        assert!(report.all_ok(), "{:#?}", report.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
        if stock_tools("the VERIFY.txt run of a release package", &["openssl", "sha256sum", "b3sum"]) {
            let (ok, text) = stock_verify(&out.path, &fx.server.fingerprint());
            assert!(ok, "{text}");
        }
        let has_sensitive = idx.items.iter().any(|i| i.clip_id == fx.sensitive_clip);
        match reason {
            None => {
                assert!(!has_sensitive);
                assert_eq!(idx.omitted.get("sensitive"), Some(&1));
            }
            Some(why) => {
                assert!(has_sensitive);
                let custody = fs::read_to_string(out.path.join("custody.jsonl")).unwrap();
                assert!(custody.contains(why), "the reason is in custody");
            }
        }
        assert!(idx.items.iter().all(|i| i.derived));
        let txt = fs::read_to_string(out.path.join("VERIFY.txt")).unwrap();
        assert!(txt.contains("RELEASE PROFILE") && txt.contains("derived"));
        for f in fieldcap_package::clip::list_files(&out.path).unwrap() {
            let b = fs::read(out.path.join(&f)).unwrap();
            let s = String::from_utf8_lossy(&b);
            for bad in forbidden() {
                assert!(!s.contains(&bad), "{name}/{f} contains '{bad}'");
            }
        }
        // Coordinates in derived manifests are on the 0.001° grid.
        for it in &idx.items {
            let d = fieldcap_package::package::DerivedManifest::parse(&fs::read(out.path.join(format!("clips/{}/manifest.json", it.clip_id))).unwrap()).unwrap();
            for p in &d.track {
                assert!(((p.lat * 1000.0).round() - p.lat * 1000.0).abs() < 1e-6 && p.accuracy_m >= 100.0 && p.altitude_m.is_none());
            }
            assert!(d.operator.org.is_none() && d.operator.callsign.is_none());
        }
    }
    // Originals and their records never changed.
    let after: Vec<Vec<u8>> = r.items().unwrap().into_iter().map(|i| i.manifest).collect();
    assert_eq!(before, after);
}

#[test]
fn held_or_referred_items_are_never_disposed_and_disposal_is_logged() {
    let fx = Fixture::new();
    let data = &fx.deployment();
    let r = Records::open(data).unwrap();
    // clips: monitor video, observation, photo; police video.
    let (held, referred) = (fx.clips[0].clone(), fx.clips[3].clone());
    let others: Vec<String> = fx.clips.iter().filter(|c| **c != held && **c != referred).cloned().collect();
    fieldcap_server::retention::hold(data, &held, "litigation hold 25-1").unwrap();
    // A full export refers the item (to a prosecutor).
    fieldcap_server::package::export(
        data,
        &PackageRequest {
            recipient: "U.S. Attorney's Office".into(),
            purpose: "referral".into(),
            zip: true,
            exported_by: "custodian".into(),
            ..request(std::slice::from_ref(&referred), fx.work.path().join("referral"), Profile::Full)
        },
    )
    .unwrap();
    let zip = fx.work.path().join("referral.zip");
    assert!(zip.is_file());
    // A recipient can verify the archive as received, without unzipping it first.
    let out = Cli::built().command().arg("verify").arg(&zip).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "verify zip: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("VERIFIED"));
    // One flipped byte inside the archive (in a stored entry's data) is caught.
    let damaged = fx.work.path().join("damaged.zip");
    let mut bytes = std::fs::read(&zip).unwrap();
    let media_at = bytes.windows(6).position(|w| w == b"media.").expect("a media entry") + 4096;
    bytes[media_at] ^= 0x01;
    std::fs::write(&damaged, &bytes).unwrap();
    let out = Cli::built().command().arg("verify").arg(&damaged).output().unwrap();
    assert_ne!(out.status.code(), Some(0), "a damaged archive must not verify");
    fieldcap_server::retention::set_policy(data, "default", 0).unwrap();
    let size0 = r.log_size().unwrap();
    if data.blobs.is_some() {
        // Write-once storage (S3 Object Lock, COMPLIANCE): each original was locked until the
        // retention end in force when it was stored (730 days), and a shorter policy cannot
        // shorten a lock. So only the observation (no original) goes; the photo stays, kept
        // with the lock named, and nothing is recorded for it.
        let done = fieldcap_server::retention::dispose(data, chrono::Utc::now(), false).unwrap();
        let no_media: Vec<String> = others.iter().filter(|c| r.item(c).unwrap().unwrap().blob_sha256.is_none()).cloned().collect();
        assert_eq!(done.disposed, no_media, "{done:?}");
        let locked: Vec<&(String, String)> = done.kept.iter().filter(|(c, _)| others.contains(c) && !no_media.contains(c)).collect();
        assert!(!locked.is_empty() && locked.iter().all(|(_, why)| why.contains("lock")), "{done:?}");
        assert_eq!(r.log_size().unwrap(), size0 + no_media.len() as u64, "a leaf for each disposal, none for a kept item");
        for (c, _) in locked {
            let sha = r.item(c).unwrap().unwrap().blob_sha256.unwrap();
            assert!(r.blobs().contains(&sha).unwrap(), "the locked original stays");
        }
        return;
    }

    let dry = fieldcap_server::retention::dispose(data, chrono::Utc::now(), true).unwrap();
    assert_eq!(dry.disposed.len(), others.len());
    assert_eq!(r.log_size().unwrap(), size0, "a dry run changes nothing");

    let blobs: Vec<_> = others.iter().filter_map(|c| r.item(c).unwrap().and_then(|i| r.blob_path(&i))).collect();
    let done = fieldcap_server::retention::dispose(data, chrono::Utc::now(), false).unwrap();
    let mut got = done.disposed.clone();
    got.sort();
    let mut want = others.clone();
    want.sort();
    assert_eq!(got, want);
    assert!(done.kept.contains(&(held.clone(), "held".into())) && done.kept.contains(&(referred.clone(), "referred".into())));
    assert!(blobs.iter().all(|b| !b.exists()), "disposed originals removed");
    assert!(r.item(&held).unwrap().and_then(|i| r.blob_path(&i)).is_some());
    assert!(r.item(&referred).unwrap().and_then(|i| r.blob_path(&i)).is_some());
    // One leaf and one custody event per disposal, the log still a valid signed tree.
    assert_eq!(r.log_size().unwrap(), size0 + others.len() as u64);
    let ev: Vec<_> = r.custody(None).unwrap().into_iter().filter(|e| e.event == "disposed").collect();
    assert_eq!(ev.len(), others.len());
    fieldcap_core::custody::verify_chain(&r.custody(None).unwrap(), &r.server_key().verifying_key()).unwrap();
    let (size, note) = r.latest_checkpoint().unwrap().unwrap();
    assert_eq!(size, size0 + others.len() as u64);
    let cp = fieldcap_core::tlog::verify_checkpoint(&note, &r.default_log_origin(), &r.server_key().verifying_key()).unwrap();
    assert_eq!(cp.root, fieldcap_core::tlog::root_of(&r.store().leaf_hashes().unwrap()));

    // A crash after a disposal's leaf was logged but before its custody event: the next run
    // records the event (marked recorded_late) instead of leaving the trail without it. (Made
    // by editing the embedded records file; the record stores share this code path, and the
    // contract tests check `pending_disposals` on PostgreSQL too.)
    if data.records.is_none() {
        let last = r.custody(None).unwrap().pop().unwrap();
        assert_eq!(last.event, "disposed");
        let clip = last.clip_id.clone().unwrap();
        let c = rusqlite::Connection::open(fx.data().join("records.sqlite")).unwrap();
        c.execute("DELETE FROM custody WHERE seq = ?1", [last.seq as i64]).unwrap();
        c.execute("UPDATE disposals SET custody_seq = 0 WHERE clip_id = ?1", [&clip]).unwrap();
        fieldcap_server::retention::dispose(data, chrono::Utc::now(), false).unwrap();
        let events: Vec<_> = r.custody(Some(&clip)).unwrap().into_iter().filter(|e| e.event == "disposed").collect();
        assert_eq!(events.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&events[0].body).unwrap();
        assert_eq!(v["detail"]["recorded_late"], true);
        let seq: i64 = c.query_row("SELECT custody_seq FROM disposals WHERE clip_id = ?1", [&clip], |r| r.get(0)).unwrap();
        assert_eq!(seq as u64, events[0].seq);
        fieldcap_core::custody::verify_chain(&r.custody(None).unwrap(), &r.server_key().verifying_key()).unwrap();
        assert_eq!(r.log_size().unwrap(), size0 + others.len() as u64, "no second leaf for the same disposal");
    }

    // Again and again: held and referred stay.
    for _ in 0..3 {
        let again = fieldcap_server::retention::dispose(data, chrono::Utc::now() + chrono::Duration::days(100_000), false).unwrap();
        assert!(again.disposed.is_empty());
    }
    // A disposed item cannot be exported.
    let err = fieldcap_server::package::export(
        data,
        &PackageRequest { recipient: "x".into(), purpose: "y".into(), exported_by: "custodian".into(), ..request(&others, fx.work.path().join("after"), Profile::Full) },
    );
    assert!(err.is_err_and(|e| e.to_string().contains("disposed")));
    assert!(!fx.work.path().join("after").exists());

    // The running server picks up the leaves another process appended: a new item still syncs.
    let src = fx.devices[0].home.path().join("late.mp4");
    fs::write(&src, vec![5u8; 10_000]).unwrap();
    let late = fx.devices[0].store.seal_file(&src, Default::default(), &mut |_, _| {}).unwrap().clip_id;
    let t = fieldcap_core::sync::ReqwestTransport::new().unwrap();
    fx.devices[0].store.sync_once(&t, &Default::default(), &fieldcap_core::sync::CancelToken::new(), &mut |_| {}).unwrap();
    let it = r.item(&late).unwrap().unwrap();
    assert_eq!(it.state, "received");
    assert_eq!(it.log_index, Some(size0 + others.len() as u64));

    // Releasing the hold makes the held item disposable; the referred one never is.
    fieldcap_server::retention::release(data, &held, "case closed").unwrap();
    let last = fieldcap_server::retention::dispose(data, chrono::Utc::now(), false).unwrap();
    assert!(last.disposed.contains(&held) && !last.disposed.contains(&referred));
}
