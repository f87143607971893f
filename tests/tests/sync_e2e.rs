//! Device ↔ server over loopback: several devices, dozens of items, all receipted and verified,
//! the server's stored blobs equal to the device digests, each item in the log exactly once;
//! and the same under a fault proxy that drops, stalls, 503s and truncates connections.

#![allow(clippy::unwrap_used)]

use fieldcap_core::sync::{CancelToken, SyncOptions};
use fieldcap_testkit::bytes::XorShift;
use fieldcap_testkit::device::*;
use fieldcap_testkit::proxy::{Fault, Proxy};
use fieldcap_testkit::server::TestServer;
use std::time::Duration;

fn media_digests(d: &Device) -> Vec<String> {
    d.store
        .manifests()
        .expect("manifests")
        .iter()
        .filter_map(|(m, _)| fieldcap_core::manifest::Manifest::parse(m).expect("manifest").media.map(|x| x.sha256))
        .collect()
}

fn assert_all_receipted(d: &Device) {
    for (id, state) in states(&d.store) {
        assert_eq!(state, "receipted", "item {id}");
        let rec = d.store.item(&id).expect("item");
        assert!(rec.receipt.is_some(), "item {id} has its receipt");
    }
    let events: Vec<String> = d.store.custody_events(None).expect("custody").into_iter().map(|e| e.event).collect();
    assert!(events.iter().any(|e| e == "clock_offset_measured"));
    assert!(events.iter().any(|e| e == "manifest_committed"));
    assert!(events.iter().any(|e| e == "receipted"));
    assert!(d.store.alarms().expect("alarms").is_empty(), "no alarm");
}

#[test]
fn several_devices_dozens_of_items_all_receipted() {
    let server = TestServer::start();
    let t = net();
    let mut devices = Vec::new();
    for (k, role) in ["monitor", "police", "monitor"].iter().enumerate() {
        let d = Device::with_role(role);
        // Captured offline, before enrolment.
        for i in 0..8u64 {
            d.seal_video(100_000 + (i as usize * 37_919) % 900_000, k as u64 * 100 + i);
        }
        for i in 0..4 {
            d.observe(&format!("observation {i} of device {k}"));
        }
        d.enroll(&server);
        devices.push(d);
    }
    let opts = fast_opts(256 * 1024);
    std::thread::scope(|s| {
        for d in &devices {
            let opts = opts.clone();
            s.spawn(move || {
                let sums = sync_until_done(&d.store, &opts, 5, Duration::from_secs(120));
                let last = sums.last().expect("a pass");
                assert_eq!(last.remaining, 0);
                assert_eq!(last.needs_attention, 0);
            });
        }
    });
    let stored = server.stored_digests();
    let mut total = 0u64;
    for d in &devices {
        assert_all_receipted(d);
        for sha in media_digests(d) {
            assert!(stored.contains(&sha), "the server holds the exact bytes of {sha}");
        }
        total += d.store.list_items().expect("list").len() as u64;
    }
    // Every item is in the log exactly once: the newest checkpoint counts them all.
    let newest = devices.iter().map(|d| checkpoint_size(&d.store)).max().expect("max");
    assert_eq!(newest, total, "log size equals the number of items");

    // A second pass has nothing to do and changes nothing.
    let s = devices[0].store.sync_once(&t, &opts, &CancelToken::new(), &mut |_| {}).expect("pass");
    assert_eq!((s.manifests_committed, s.bytes_uploaded, s.receipts_verified, s.remaining), (0, 0, 0, 0));
}

#[test]
fn cancel_mid_upload_resumes_from_the_offset_and_purge_keeps_the_receipt() {
    let server = TestServer::start();
    let t = net();
    let d = Device::with_role("police");
    let item = d.seal_video(3 * 1024 * 1024 + 123, 7);
    d.enroll(&server);
    let chunk = 256 * 1024;
    let opts = SyncOptions { purge_after_receipt: true, ..fast_opts(chunk) };
    let cancel = CancelToken::new();
    let s1 = d
        .store
        .sync_once(&t, &opts, &cancel, &mut |p| {
            if p.item_bytes_done >= 1024 * 1024 {
                cancel.cancel();
            }
        })
        .expect("pass 1");
    assert!(s1.cancelled);
    assert_eq!(s1.remaining, 1);
    let state = d.store.item(&item.clip_id).expect("item").summary.state;
    assert_eq!(state, "uploading");
    let s2 = d.store.sync_once(&t, &opts, &CancelToken::new(), &mut |_| {}).expect("pass 2");
    assert_eq!(s2.remaining, 0);
    assert_eq!(s2.receipts_verified, 1);
    assert!(s2.bytes_uploaded < 3 * 1024 * 1024, "resumed, not restarted: {s2:?}");
    assert_eq!(s1.bytes_uploaded + s2.bytes_uploaded, 3 * 1024 * 1024 + 123);
    assert!(s2.bytes_resent <= chunk as u64, "{s1:?} {s2:?}");
    assert_eq!(s2.purged, 1);
    let rec = d.store.item(&item.clip_id).expect("item");
    assert!(rec.media_path.is_none() && rec.receipt.is_some());
    assert!(d.store.custody_events(Some(&item.clip_id)).expect("custody").iter().any(|e| e.event == "purged"));
}

/// The server side of an item whose file changed after sealing: its manifest is on record (hash
/// first) but it was never receipted, no copy of it is stored (neither the signed digests nor
/// the changed bytes), and no partial upload lingers (terminated, recorded in custody).
fn assert_server_never_took_it(server: &TestServer, clip_id: &str, signed_sha: &str, changed_sha: &str, terminated: bool) {
    let recs = fieldcap_server::records::Records::open(server.deployment()).expect("records");
    let it = recs.item(clip_id).expect("item").expect("the manifest is on record");
    assert!(it.receipt.is_none() && it.blob_sha256.is_none(), "never receipted, never stored: {:?}", it.state);
    let stored = server.stored_digests();
    assert!(!stored.contains(signed_sha) && !stored.contains(changed_sha), "no copy of the file on the server");
    assert!(!server.has_partial(clip_id), "no partial upload lingers");
    let events: Vec<String> = recs.custody(Some(clip_id)).expect("custody").into_iter().map(|e| e.event).collect();
    assert_eq!(events.iter().any(|e| e == "terminated"), terminated, "{events:?}");
}

/// The device side: flagged (needs_attention, mismatch or missing) with a custody event naming
/// when it was found; its manifest was committed.
fn assert_flagged(d: &Device, clip_id: &str, integrity: &str, when: &str) -> serde_json::Value {
    let b = d.store.item(clip_id).expect("item").summary;
    assert_eq!((b.state.as_str(), b.integrity.as_str()), ("needs_attention", integrity));
    let events = d.store.custody_events(Some(clip_id)).expect("custody");
    assert!(events.iter().any(|e| e.event == "manifest_committed"));
    assert!(!events.iter().any(|e| e.event == "uploaded" || e.event == "receipted"));
    let flagged: Vec<_> = events.iter().filter(|e| e.event == "flagged").collect();
    assert_eq!(flagged.len(), 1, "flagged once");
    let body: serde_json::Value = serde_json::from_slice(&flagged[0].body).expect("custody body");
    let detail = body["detail"].clone();
    assert_eq!((detail["integrity"].as_str(), detail["when"].as_str()), (Some(integrity), Some(when)), "{detail}");
    detail
}

fn flip_byte(d: &Device, clip_id: &str, at: usize) -> String {
    let path = d.store.item(clip_id).expect("item").media_path.expect("path");
    let mut b = std::fs::read(&path).expect("read");
    b[at] ^= 1;
    std::fs::write(&path, &b).expect("tamper");
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b))
}

#[test]
fn a_changed_file_is_flagged_before_its_final_chunk() {
    let server = TestServer::start();
    let t = net();
    let d = Device::with_role("monitor");
    let good = d.seal_video(200_000, 1);
    let bad = d.seal_video(200_000, 2);
    // Same length, one byte flipped near the start: only the digests can tell.
    let changed_sha = flip_byte(&d, &bad.clip_id, 1000);
    d.enroll(&server);
    let chunk = 64 * 1024; // 3 full chunks and a final one of 3392 bytes
    let s = d.store.sync_once(&t, &fast_opts(chunk), &CancelToken::new(), &mut |_| {}).expect("pass");
    assert_eq!(s.receipts_verified, 1);
    assert_eq!(s.needs_attention, 1);
    assert_eq!(s.remaining, 0);
    assert_eq!(d.store.item(&good.clip_id).expect("good").summary.state, "receipted");
    // Hashed while sent: everything but the held-back final chunk went out.
    assert_eq!(s.bytes_uploaded, 200_000 + 3 * chunk as u64, "{s:?}");
    let detail = assert_flagged(&d, &bad.clip_id, "mismatch", "before_final_chunk");
    assert_eq!(detail["upload_terminated"], true);
    let c = rusqlite::Connection::open(d.home.path().join("fieldcap.db")).expect("db");
    let offset: i64 = c.query_row("SELECT upload_offset FROM items WHERE clip_id = ?1", [&bad.clip_id], |r| r.get(0)).expect("offset");
    assert_eq!(offset, 0, "nothing left on the server");
    assert_server_never_took_it(&server, &bad.clip_id, &bad.media.expect("media").sha256, &changed_sha, true);
    // Later passes leave it alone.
    let s2 = d.store.sync_once(&t, &fast_opts(chunk), &CancelToken::new(), &mut |_| {}).expect("pass 2");
    assert_eq!((s2.bytes_uploaded, s2.needs_attention, s2.remaining), (0, 1, 0));
}

#[test]
fn a_file_changed_after_part_was_uploaded_is_caught_by_the_prefix_hash_on_resume() {
    let server = TestServer::start();
    let t = net();
    let d = Device::with_role("police");
    let total = 1024 * 1024 + 777;
    let item = d.seal_video(total, 11);
    d.enroll(&server);
    let chunk = 64 * 1024;
    let cancel = CancelToken::new();
    let s1 = d
        .store
        .sync_once(&t, &fast_opts(chunk), &cancel, &mut |p| {
            if p.item_bytes_done >= 256 * 1024 {
                cancel.cancel();
            }
        })
        .expect("pass 1");
    assert!(s1.cancelled && s1.bytes_uploaded >= 256 * 1024 && s1.bytes_uploaded < total as u64, "{s1:?}");
    assert_eq!(d.store.item(&item.clip_id).expect("item").summary.state, "uploading");
    // A byte the server already holds changes on the device.
    let changed_sha = flip_byte(&d, &item.clip_id, 1000);
    let mut phases = Vec::new();
    let s2 = d
        .store
        .sync_once(&t, &fast_opts(chunk), &CancelToken::new(), &mut |p| {
            if p.clip_id.is_some() && phases.last() != Some(&p.phase) {
                phases.push(p.phase);
            }
        })
        .expect("pass 2");
    use fieldcap_core::sync::SyncPhase;
    assert_eq!(phases.first(), Some(&SyncPhase::Verifying), "the prefix is hashed on resume: {phases:?}");
    assert!(phases.contains(&SyncPhase::Uploading));
    assert_eq!(s2.needs_attention, 1);
    // The rest went out while the prefix was hashed; the final chunk (777 bytes) never did.
    assert_eq!(s1.bytes_uploaded + s2.bytes_uploaded, (total - 777) as u64, "{s1:?} {s2:?}");
    let detail = assert_flagged(&d, &item.clip_id, "mismatch", "before_final_chunk");
    assert_eq!(detail["upload_terminated"], true);
    assert_server_never_took_it(&server, &item.clip_id, &item.media.expect("media").sha256, &changed_sha, true);
}

#[test]
fn a_truncated_or_missing_file_is_flagged_and_nothing_is_sent() {
    let server = TestServer::start();
    let t = net();
    let d = Device::with_role("monitor");
    let short = d.seal_video(150_000, 21);
    let gone = d.seal_video(150_000, 22);
    let p = d.store.item(&short.clip_id).expect("item").media_path.expect("path");
    let b = std::fs::read(&p).expect("read");
    std::fs::write(&p, &b[..100_000]).expect("truncate");
    let short_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b[..100_000]));
    std::fs::remove_file(d.store.item(&gone.clip_id).expect("item").media_path.expect("path")).expect("remove");
    d.enroll(&server);
    let s = d.store.sync_once(&t, &fast_opts(64 * 1024), &CancelToken::new(), &mut |_| {}).expect("pass");
    assert_eq!((s.bytes_uploaded, s.needs_attention, s.remaining), (0, 2, 0), "{s:?}");
    let detail = assert_flagged(&d, &short.clip_id, "mismatch", "before_upload");
    assert!(detail.get("upload_terminated").is_none(), "nothing was on the server to terminate");
    assert_flagged(&d, &gone.clip_id, "missing", "before_upload");
    assert_server_never_took_it(&server, &short.clip_id, &short.media.expect("media").sha256, &short_sha, false);
    assert_server_never_took_it(&server, &gone.clip_id, &gone.media.expect("media").sha256, "-", false);
}

#[test]
fn faults_every_item_receipted_exactly_once() {
    let server = TestServer::start();
    // Seeded plan: about 40 % of connections get a fault, of every kind.
    let mut rng = XorShift::from_state(0x2545_F491_4F6C_DD1D);
    let plan = Box::new(move |n: u64| {
        let x = rng.next_u64();
        if n < 2 {
            return Fault::Pass; // let enrolment through
        }
        match x % 10 {
            0 => Fault::DropAfter(200 + x % 150_000),
            1 => Fault::Stall(Duration::from_millis(3_500)),
            2 => Fault::ServiceUnavailable,
            3 => Fault::TruncateResponse(10 + x % 300),
            _ => Fault::Pass,
        }
    });
    let proxy = Proxy::start(server.addr(), plan);
    let mut devices = Vec::new();
    for (k, role) in ["monitor", "police"].iter().enumerate() {
        let d = Device::with_role(role);
        for i in 0..6u64 {
            d.seal_video(300_000 + i as usize * 50_000, 1000 + k as u64 * 10 + i);
        }
        d.observe("agents at the corner");
        d.enroll_via(&proxy.url(), &server);
        devices.push(d);
    }
    let opts = SyncOptions { request_timeout: Duration::from_secs(2), ..fast_opts(128 * 1024) };
    let unpooled = fieldcap_core::sync::ReqwestTransport::unpooled().expect("transport");
    for d in &devices {
        let sums = sync_until_done_with(&unpooled, &d.store, &opts, 40, Duration::from_secs(240));
        assert_eq!(sums.last().expect("pass").remaining, 0, "{sums:?}");
    }
    assert!(proxy.faults.load(std::sync::atomic::Ordering::SeqCst) >= 5, "faults were injected");
    let stored = server.stored_digests();
    let mut total = 0;
    for d in &devices {
        assert_all_receipted(d);
        for sha in media_digests(d) {
            assert!(stored.contains(&sha));
        }
        total += d.store.list_items().expect("list").len() as u64;
    }
    // Exactly once: one log leaf per item, whatever was retried.
    let t2 = net();
    let d = &devices[1];
    d.store.sync_once(&t2, &fast_opts(1 << 20), &CancelToken::new(), &mut |_| {}).expect("final pass");
    assert_eq!(devices.iter().map(|d| checkpoint_size(&d.store)).max().expect("max"), total);
}
