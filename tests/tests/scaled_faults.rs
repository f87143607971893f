//! Faults of the scaled deployment's stores mid-sync (issue 9): PostgreSQL stopped and
//! restarted, the object storage unreachable. Requests that need the missing store get a clear,
//! retryable 503 `storage-unavailable` problem (with `Retry-After`) and the replica reports
//! itself not ready; nothing is half-recorded; once the stores are back every item is
//! receipted exactly once (one log leaf each) and every original is stored once.
//!
//! Runs only with a test PostgreSQL and S3 server (`scripts/test.sh` starts both and requires
//! them); skipped with a line otherwise.

#![allow(clippy::unwrap_used)]

use fieldcap_core::sync::CancelToken;
use fieldcap_testkit::api::problem;
use fieldcap_testkit::device::*;
use fieldcap_testkit::proxy::{Fault, Proxy};
use fieldcap_testkit::scaled::ScaledStores;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every item of `d` receipted, each in the log once; the records agree (no item without its
/// leaf, no leaf twice); the bucket holds exactly the originals.
fn all_receipted_once(srv: &TestServer, stores: &ScaledStores, devices: &[&Device]) {
    let recs = fieldcap_server::records::Records::open(srv.deployment()).unwrap();
    let mut n = 0u64;
    let mut originals = std::collections::BTreeMap::new();
    for d in devices {
        for it in d.store.list_items().unwrap() {
            assert_eq!(it.state, "receipted", "{}", it.clip_id);
            let rec = recs.item(&it.clip_id).unwrap().unwrap();
            assert!(rec.state == "received" && rec.receipt.is_some() && rec.log_index.is_some(), "{rec:?}");
            if let Some(m) = rec.media {
                originals.insert(m.sha256, m.bytes);
            }
            n += 1;
        }
    }
    assert_eq!(recs.log_size().unwrap(), n, "one leaf per item");
    let leaves: std::collections::BTreeSet<u64> = recs.items().unwrap().iter().filter_map(|i| i.log_index).collect();
    assert_eq!(leaves.len() as u64, n, "no leaf given twice");
    assert_eq!(stores.s3.original_digests(), originals, "one object per original");
}

#[test]
fn postgres_stopped_mid_sync_is_a_retryable_503_and_every_item_is_receipted_once_it_is_back() {
    let Some(stores) = ScaledStores::start_exclusive() else { return };
    let stores = Arc::new(stores);
    let cli = Cli::built();
    let srv = TestServer::serve_scaled(&cli, stores.clone(), None);
    let d = Device::with_role("monitor");
    for i in 0..4u64 {
        d.seal_video(1_500_000 + i as usize * 1000, 70 + i);
        d.observe(&format!("note {i}"));
    }
    d.enroll(&srv);
    // Stop PostgreSQL once the first media bytes are acknowledged (the sync is mid-upload).
    let stopped = std::sync::Mutex::new(None);
    let opts = fieldcap_core::sync::SyncOptions { budget: Duration::from_secs(20), max_retries: 2, ..fast_opts(256 * 1024) };
    let pass = d.store.sync_once(&net(), &opts, &CancelToken::new(), &mut |p| {
        let mut s = stopped.lock().unwrap();
        if p.item_bytes_done > 0 && s.is_none() {
            *s = Some(stores.pg.stop_postgres());
        }
    });
    let guard = stopped.into_inner().unwrap().expect("PostgreSQL was stopped mid-upload");
    eprintln!("pass during the outage: {pass:?}");
    // While it is down: not ready, and a request that needs the records is a retryable 503.
    let r = srv.client.get(format!("{}/readyz", srv.url())).send().unwrap();
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()), Some("5".into()));
    let p = problem(r, 503, "storage-unavailable");
    assert!(p.detail.unwrap_or_default().contains("does not answer"));
    let r = srv.enroll_with(&fieldcap_evidence::identity::DeviceKey::generate(), "no-such-token");
    problem(r, 503, "storage-unavailable");
    assert!(d.store.list_items().unwrap().iter().any(|i| i.state != "receipted"), "the outage came before the end of the sync");
    assert!(d.store.list_items().unwrap().iter().all(|i| i.state != "needs_attention"), "an outage never sets an item aside");
    guard.start();
    sync_until_done(&d.store, &fast_opts(256 * 1024), 10, Duration::from_secs(180));
    assert_eq!(srv.client.get(format!("{}/readyz", srv.url())).send().unwrap().status().as_u16(), 200);
    all_receipted_once(&srv, &stores, &[&d]);
}

#[test]
fn object_storage_unreachable_mid_sync_is_a_retryable_503_and_every_item_is_receipted_once_it_is_back() {
    let Some(mut stores) = ScaledStores::start() else { return };
    // The replica reaches the bucket through a proxy that can cut it off.
    let down = Arc::new(AtomicBool::new(false));
    let cut = down.clone();
    let proxy = Proxy::start(stores.s3.addr(), Box::new(move |_| if cut.load(Ordering::SeqCst) { Fault::DropAfter(0) } else { Fault::Pass }));
    stores.s3_endpoint = Some(proxy.url());
    let stores = Arc::new(stores);
    let cli = Cli::built();
    let srv = TestServer::serve_scaled(&cli, stores.clone(), None);
    let d = Device::with_role("police");
    for i in 0..3u64 {
        d.seal_video(2_000_000 + i as usize * 1000, 90 + i);
    }
    d.observe("a note");
    d.enroll(&srv);
    // Cut the storage off once media bytes flow.
    let opts = fieldcap_core::sync::SyncOptions { budget: Duration::from_secs(20), max_retries: 2, ..fast_opts(256 * 1024) };
    let _ = d.store.sync_once(&net(), &opts, &CancelToken::new(), &mut |p| {
        if p.item_bytes_done > 0 {
            down.store(true, Ordering::SeqCst);
        }
    });
    assert!(down.load(Ordering::SeqCst), "the storage was cut off mid-upload");
    let r = srv.client.get(format!("{}/readyz", srv.url())).send().unwrap();
    problem(r, 503, "storage-unavailable");
    let items = d.store.list_items().unwrap();
    assert!(items.iter().any(|i| i.state != "receipted"), "the outage came before the end of the sync");
    assert!(items.iter().all(|i| i.state != "needs_attention"), "an outage never sets an item aside");
    down.store(false, Ordering::SeqCst);
    sync_until_done(&d.store, &fast_opts(256 * 1024), 10, Duration::from_secs(180));
    all_receipted_once(&srv, &stores, &[&d]);
}
