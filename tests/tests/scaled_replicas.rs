//! Two `fieldcap serve` replicas on one PostgreSQL database and one S3 bucket (issue 9): any
//! replica answers any request. Devices enrol through one and sync through the other; an upload
//! begun on replica A, SIGKILLed halfway, is finished through replica B; 20 devices syncing
//! through both at once (their connections switched between the replicas while they run) leave
//! one consistent log (every inclusion and consistency proof checks) and exactly one object
//! per original.
//!
//! Runs only with a test PostgreSQL and S3 server (`scripts/test.sh` starts both and requires
//! them); skipped with a line otherwise.

#![allow(clippy::unwrap_used)]

use fieldcap_core::sync::CancelToken;
use fieldcap_evidence::tlog::{proof_from_hex, verify_consistency, verify_inclusion};
use fieldcap_testkit::device::*;
use fieldcap_testkit::proxy::Proxy;
use fieldcap_testkit::scaled::ScaledStores;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Two replicas on `stores`, B with A's server key (as a deployment gives every replica).
fn replicas(cli: &Cli, stores: &Arc<ScaledStores>) -> (TestServer, TestServer) {
    let a = TestServer::serve_scaled(cli, stores.clone(), None);
    let b = TestServer::serve_scaled(cli, stores.clone(), Some(&a.data()));
    (a, b)
}

#[test]
fn enrol_through_one_replica_and_sync_through_the_other() {
    let Some(stores) = ScaledStores::start() else { return };
    let stores = Arc::new(stores);
    let cli = Cli::built();
    let (a, b) = replicas(&cli, &stores);
    assert_eq!(a.time().server_key_pem, b.time().server_key_pem, "one server key");
    let lb = Proxy::passthrough(a.addr());
    let d = Device::with_role("monitor");
    d.seal_video(300_000, 1);
    d.observe("first note");
    d.enroll_via(&lb.url(), &a);
    lb.set_upstream(b.addr());
    sync_until_receipted(&d.store, &fast_opts(64 * 1024));
    assert!(states(&d.store).iter().all(|(_, s)| s == "receipted"));
    assert_eq!(checkpoint_size(&d.store), 2);
}

#[test]
fn an_upload_begun_on_a_killed_replica_is_finished_through_the_other() {
    let Some(stores) = ScaledStores::start() else { return };
    let stores = Arc::new(stores);
    let cli = Cli::built();
    let (mut a, b) = replicas(&cli, &stores);
    let lb = Proxy::passthrough(a.addr());
    let d = Device::with_role("police");
    let total = 12 * 1024 * 1024 + 5;
    let item = d.seal_video(total, 99);
    d.enroll_via(&lb.url(), &a);
    let opts = fieldcap_core::sync::SyncOptions { budget: Duration::from_secs(8), ..fast_opts(512 * 1024) };
    // SIGKILL replica A once about half the clip is acknowledged; the "load balancer" then
    // sends everything to B.
    let killed = AtomicBool::new(false);
    let _ = d.store.sync_once(&net(), &opts, &CancelToken::new(), &mut |p| {
        if p.item_bytes_done >= total as u64 / 2 && !killed.swap(true, Ordering::SeqCst) {
            a.stop();
            lb.set_upstream(b.addr());
        }
    });
    assert!(killed.load(Ordering::SeqCst), "replica A was killed mid-upload");
    let before = lb.up_bytes.load(Ordering::SeqCst);
    sync_until_receipted(&d.store, &fast_opts(512 * 1024));
    let resent = lb.up_bytes.load(Ordering::SeqCst) - before;
    assert!(resent < total as u64 / 2 + 2 * 512 * 1024 + 65_536, "B resumed where A stopped (sent {resent} more bytes)");
    let clip = item.clip_id.clone();
    let st = states(&d.store);
    assert!(st.iter().any(|(c, s)| *c == clip && s == "receipted"), "{st:?}");
    // The original in the bucket is exactly the sealed clip.
    let sha = item.media.as_ref().unwrap().sha256.clone();
    let objects = stores.s3.original_digests();
    assert_eq!(objects.get(&sha).copied(), Some(total as u64), "the original is stored whole under its digest");
}

#[test]
fn twenty_devices_through_both_replicas_leave_one_consistent_log_and_one_object_per_original() {
    let Some(stores) = ScaledStores::start() else { return };
    let stores = Arc::new(stores);
    let cli = Cli::built();
    let (a, b) = replicas(&cli, &stores);
    let (lb1, lb2) = (Proxy::passthrough(a.addr()), Proxy::passthrough(b.addr()));
    let devices: Vec<Device> = (0..20).map(|_| Device::with_role("monitor")).collect();
    let mut originals = std::collections::BTreeMap::new();
    for (i, d) in devices.iter().enumerate() {
        let it = d.seal_video(100_000 + i * 7_000, 1000 + i as u64);
        let m = it.media.unwrap();
        originals.insert(m.sha256, m.bytes);
        d.observe(&format!("note {i}"));
        let (url, srv) = if i % 2 == 0 { (lb1.url(), &a) } else { (lb2.url(), &b) };
        d.enroll_via(&url, srv);
    }
    // Both proxies flip between the replicas every 50 ms while the devices sync.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (stop, a1, a2) = (stop.clone(), a.addr(), b.addr());
        let (u1, u2) = (lb1.upstream_handle(), lb2.upstream_handle());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (x, y) = if n.is_multiple_of(2) { (a1, a2) } else { (a2, a1) };
                *u1.lock().unwrap() = x;
                *u2.lock().unwrap() = y;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::scope(|s| {
        for d in &devices {
            s.spawn(|| {
                sync_until_done(&d.store, &fast_opts(32 * 1024), 20, Duration::from_secs(240));
            });
        }
    });
    stop.store(true, Ordering::SeqCst);
    flipper.join().unwrap();
    // Every item receipted; the log: 40 leaves, no gaps, every receipt's leaf included in the
    // newest checkpoint, every receipt's checkpoint consistent with it.
    let recs = fieldcap_server::records::Records::open(stores.deployment(&a.data())).unwrap();
    let (size, note) = recs.latest_checkpoint().unwrap().unwrap();
    assert_eq!(size, 40, "one leaf per item, no more");
    let skey = a.server_key();
    let origin = a.time().log_origin;
    let newest = fieldcap_evidence::tlog::verify_checkpoint(&note, &origin, &skey).unwrap();
    let mut indexes = std::collections::BTreeSet::new();
    for d in &devices {
        for it in d.store.list_items().unwrap() {
            // Says why when it is not (seen once under heavy load in a rehearsal: needs_attention).
            assert_eq!(it.state, "receipted", "{}: {:?}", it.clip_id, it.last_error);
            let rec = recs.item(&it.clip_id).unwrap().unwrap();
            let receipt = fieldcap_server::receipts::verify_receipt(
                &fieldcap_evidence::protocol::SignedDoc::new(rec.receipt.as_ref().unwrap(), rec.receipt_sig.as_ref().unwrap()),
                &skey,
                &origin,
            )
            .unwrap();
            assert!(indexes.insert(receipt.log.index), "leaf {} given twice", receipt.log.index);
            let proof = proof_from_hex(&recs.inclusion_proof(receipt.log.index, size).unwrap()).unwrap();
            let leaf = fieldcap_evidence::tlog::leaf_hash(&receipt.leaf_bytes());
            verify_inclusion(receipt.log.index, size, &leaf, &proof, &newest.root).unwrap();
            let old = fieldcap_evidence::tlog::verify_checkpoint(&receipt.log.checkpoint, &origin, &skey).unwrap();
            let cons = proof_from_hex(&recs.consistency_proof(old.size, size).unwrap()).unwrap();
            verify_consistency(old.size, size, &old.root, &newest.root, &cons).unwrap();
        }
    }
    assert_eq!(indexes.len(), 40);
    // Exactly one object per original, holding its bytes' length.
    let objects = stores.s3.original_digests();
    assert_eq!(objects, originals, "one object per original, nothing else under originals/");
}
