//! A lost or seized phone: the council office lists devices and revokes one with
//! `fieldcap devices` / `fieldcap revoke` while the server runs; the phone can then submit
//! nothing, its queued items wait with the reason shown, and what it sent before stays on record.

#![allow(clippy::unwrap_used)]

use fieldcap_testkit::device::*;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::time::Duration;

#[test]
fn a_revoked_device_submits_nothing_more_and_keeps_what_it_sent() {
    let cli = Cli::built();
    let server = TestServer::start();
    let data = server.data().to_str().expect("utf-8 path").to_string();
    let d = Device::with_role("monitor");
    let before = d.seal_video(200_000, 1);
    d.enroll(&server);
    sync_until_done(&d.store, &fast_opts(64 * 1024), 5, Duration::from_secs(60));
    let id = d.store.device_id().to_string();

    // Listed as active.
    let out = cli.run(&["devices", "--data", &data, "--json"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list[0]["device_id"], id.as_str());
    assert!(list[0]["revoked_at"].is_null());

    // Bad input: no reason, unknown device — one clear line, nothing changed.
    let out = cli.run(&["revoke", "--data", &data, &id, "--reason", " "]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));
    let out = cli.run(&["revoke", "--data", &data, &"0".repeat(32), "--reason", "lost"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no enrolled device"));

    let out = cli.run(&["revoke", "--data", &data, &id, "--reason", "phone reported seized"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli.run(&["devices", "--data", &data]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("REVOKED"));
    // Revoking again changes nothing.
    let out = cli.run(&["revoke", "--data", &data, &id, "--reason", "again"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already revoked"));

    // The phone's next item is refused and waits, with the reason shown.
    let after = d.seal_video(100_000, 2);
    let _ = d.store.sync_once(&net(), &fast_opts(64 * 1024), &fieldcap_core::sync::CancelToken::new(), &mut |_| {});
    let item = d.store.item(&after.clip_id).expect("item").summary;
    assert_eq!(item.state, "needs_attention");
    assert!(item.last_error.unwrap_or_default().to_lowercase().contains("revoked"));

    // What it sent before stays on record, and the revocation is a custody event with the reason.
    let recs = fieldcap_server::records::Records::open(server.data()).expect("records");
    assert!(recs.item(&before.clip_id).expect("item").and_then(|i| i.receipt).is_some());
    assert!(recs.item(&after.clip_id).expect("item").is_none());
    let revoked: Vec<_> = recs.custody(None).expect("custody").into_iter().filter(|e| e.event == "revoked").collect();
    assert_eq!(revoked.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&revoked[0].body).expect("body");
    assert_eq!(body["detail"]["reason"], "phone reported seized");
}

#[test]
fn an_upload_begun_before_the_revocation_gets_no_receipt() {
    let cli = Cli::built();
    let server = TestServer::start();
    let data = server.data().to_str().expect("utf-8 path").to_string();
    let d = Device::with_role("monitor");
    let total = 1024 * 1024 + 333;
    let item = d.seal_video(total, 5);
    d.enroll(&server);
    // Part of the media goes out, then the pass is cancelled (the phone loses its signal).
    let cancel = fieldcap_core::sync::CancelToken::new();
    let s1 = d
        .store
        .sync_once(&net(), &fast_opts(64 * 1024), &cancel, &mut |p| {
            if p.item_bytes_done >= 256 * 1024 {
                cancel.cancel();
            }
        })
        .expect("pass 1");
    assert!(s1.cancelled && s1.bytes_uploaded < total as u64, "{s1:?}");
    let id = d.store.device_id().to_string();
    let out = cli.run(&["revoke", "--data", &data, &id, "--reason", "phone reported seized"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The phone resumes: its HEAD is refused (403; a HEAD answer has no body, the problem's
    // name comes in the fieldcap-problem header), and the item waits for attention.
    let _ = d.store.sync_once(&net(), &fast_opts(64 * 1024), &fieldcap_core::sync::CancelToken::new(), &mut |_| {});
    let summary = d.store.item(&item.clip_id).expect("item").summary;
    assert_eq!(summary.state, "needs_attention", "{summary:?}");
    let err = summary.last_error.unwrap_or_default();
    assert!(err.contains("403") && err.contains("device-revoked"), "{err}");

    // The server: manifest on record, no receipt, no log leaf, the upload terminated for the
    // revocation with the bytes received kept aside (not as an original).
    let recs = fieldcap_server::records::Records::open(server.data()).expect("records");
    let rec = recs.item(&item.clip_id).expect("item").expect("manifest on record");
    assert!(rec.receipt.is_none());
    assert_eq!(recs.log_size().expect("log"), 0);
    let term: Vec<_> = recs.custody(Some(&item.clip_id)).expect("custody").into_iter().filter(|e| e.event == "terminated").collect();
    assert_eq!(term.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&term[0].body).expect("body");
    assert_eq!(body["detail"]["reason"], "device_revoked");
    assert!(body["detail"]["kept_bytes"].as_u64().expect("kept_bytes") >= 256 * 1024);
    assert!(server.data().join("uploads").join("revoked").read_dir().expect("set-aside folder").next().is_some());
}
