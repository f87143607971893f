//! Device ↔ server over loopback: several devices, dozens of items, all receipted and verified,
//! the server's stored blobs equal to the device digests, each item in the log exactly once;
//! and the same under a fault proxy that drops, stalls, 503s and truncates connections.

mod common;

use common::proxy::{Fault, Proxy};
use common::*;
use fieldcap_core::sync::{CancelToken, SyncOptions};
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
        let d = device(role);
        // Captured offline, before enrolment.
        for i in 0..8u64 {
            seal_video(&d, 100_000 + (i as usize * 37_919) % 900_000, k as u64 * 100 + i);
        }
        for i in 0..4 {
            seal_observation(&d, &format!("observation {i} of device {k}"));
        }
        d.store.enroll(&t, &server.url(), &server.token(role)).expect("enrol");
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
    let stored = file_digests(server.data.path());
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
    let d = device("police");
    let item = seal_video(&d, 3 * 1024 * 1024 + 123, 7);
    d.store.enroll(&t, &server.url(), &server.token("police")).expect("enrol");
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
    assert!(s2.bytes_resent <= chunk as u64);
    assert_eq!(s2.purged, 1);
    let rec = d.store.item(&item.clip_id).expect("item");
    assert!(rec.media_path.is_none() && rec.receipt.is_some());
    assert!(d.store.custody_events(Some(&item.clip_id)).expect("custody").iter().any(|e| e.event == "purged"));
}

#[test]
fn a_changed_file_is_flagged_never_sent() {
    let server = TestServer::start();
    let t = net();
    let d = device("monitor");
    let good = seal_video(&d, 200_000, 1);
    let bad = seal_video(&d, 200_000, 2);
    let path = d.store.item(&bad.clip_id).expect("item").media_path.expect("path");
    let mut b = std::fs::read(&path).expect("read");
    b[1000] ^= 1;
    std::fs::write(&path, b).expect("tamper");
    d.store.enroll(&t, &server.url(), &server.token("monitor")).expect("enrol");
    let s = d.store.sync_once(&t, &fast_opts(64 * 1024), &CancelToken::new(), &mut |_| {}).expect("pass");
    assert_eq!(s.receipts_verified, 1);
    assert_eq!(s.needs_attention, 1);
    assert_eq!(d.store.item(&good.clip_id).expect("good").summary.state, "receipted");
    let b = d.store.item(&bad.clip_id).expect("bad").summary;
    assert_eq!((b.state.as_str(), b.integrity.as_str()), ("needs_attention", "mismatch"));
    // Its manifest is on record (hash first), its changed bytes never were sent.
    assert!(!file_digests(server.data.path()).contains(&bad.media.expect("media").sha256));
    assert!(d.store.custody_events(Some(&bad.clip_id)).expect("custody").iter().any(|e| e.event == "manifest_committed"));
}

#[test]
fn faults_every_item_receipted_exactly_once() {
    let server = TestServer::start();
    let t = net();
    // Seeded plan: about 40 % of connections get a fault, of every kind.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let plan = Box::new(move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
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
        let d = device(role);
        for i in 0..6u64 {
            seal_video(&d, 300_000 + i as usize * 50_000, 1000 + k as u64 * 10 + i);
        }
        seal_observation(&d, "agents at the corner");
        d.store.enroll(&t, &proxy.url(), &server.token(role)).expect("enrol through the proxy");
        devices.push(d);
    }
    let opts = SyncOptions { request_timeout: Duration::from_secs(2), ..fast_opts(128 * 1024) };
    let unpooled = fieldcap_core::sync::ReqwestTransport::unpooled().expect("transport");
    for d in &devices {
        let sums = sync_until_done_with(&unpooled, &d.store, &opts, 40, Duration::from_secs(240));
        assert_eq!(sums.last().expect("pass").remaining, 0, "{sums:?}");
    }
    assert!(proxy.faults.load(std::sync::atomic::Ordering::SeqCst) >= 5, "faults were injected");
    let stored = file_digests(server.data.path());
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
