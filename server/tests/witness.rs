//! Witnessed checkpoints on loopback: two witnesses (C2SP tlog-witness) cosign every checkpoint
//! of an intake server; a forked log (another tree at the same size, under the same key) is
//! refused; an unreachable witness does not block intake and catches up later; and the witness
//! answers each malformed or wrong `add-checkpoint` with the status the spec names.
#![allow(clippy::unwrap_used)]

use fieldcap_evidence::cosignature::{check_cosignatures, AddCheckpoint, VerifierKey, TLOG_SIZE_CONTENT_TYPE};
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::protocol::Receipt;
use fieldcap_evidence::tlog::{leaf_hash, parse_note, sign_checkpoint, Checkpoint, Hash};
use fieldcap_server::log::LogTree;
use fieldcap_testkit::api::*;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::witness::TestWitness;
use std::time::{Duration, Instant};

/// Commits observation `seq` of `dev` (after `prev`) and returns its verified receipt and the
/// manifest bytes.
fn observe(srv: &TestServer, dev: &DeviceKey, seq: u64, prev: Option<&[u8]>) -> (Receipt, Vec<u8>) {
    let m = manifest(dev, seq, prev, None, "2025-06-07T18:00:00.000Z", vec![(33.7406, -118.2760)]);
    let c = commit(srv, dev, &m);
    let r = fieldcap_server::receipts::verify_receipt(c.receipt.as_ref().unwrap(), &srv.server_key(), &srv.time().log_origin).unwrap();
    (r, m.bytes)
}

/// A server with two witnesses on loopback, their keys, and an enrolled device.
fn server_with_two_witnesses() -> (TestServer, Vec<TestWitness>, Vec<VerifierKey>, DeviceKey) {
    let mut ws: Vec<TestWitness> = Vec::new();
    let srv = TestServer::start_with_witnesses(|log| {
        ws.push(TestWitness::start("witness.da.example/w1", std::slice::from_ref(log)));
        ws.push(TestWitness::start("witness.civil.example/w2", std::slice::from_ref(log)));
        ws.iter().map(|w| w.endpoint()).collect()
    });
    let keys = ws.iter().map(|w| w.vkey().clone()).collect();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    (srv, ws, keys, dev)
}

#[test]
fn two_witnesses_cosign_each_checkpoint_and_refuse_a_forked_log() {
    let (srv, ws, keys, dev) = server_with_two_witnesses();
    let mut prev: Option<Vec<u8>> = None;
    let mut receipts = Vec::new();
    for seq in 1..=3 {
        let (r, bytes) = observe(&srv, &dev, seq, prev.as_deref());
        // The receipt's own checkpoint carries both cosignatures, and still verifies as the
        // server's checkpoint (ReceiptVerifier above).
        let c = check_cosignatures(&r.log.checkpoint, &keys).unwrap();
        assert_eq!(c.valid.len(), 2, "receipt {seq}: {c:?}");
        c.require(2).unwrap();
        receipts.push(r);
        prev = Some(bytes);
    }
    // The newest checkpoint the server publishes carries them too.
    let note = srv.client.get(format!("{}/v1/log/checkpoint", srv.url())).send().unwrap().text().unwrap();
    assert_eq!(check_cosignatures(&note, &keys).unwrap().valid.len(), 2);
    let origin = srv.time().log_origin;
    let genuine = Checkpoint::parse_body(&parse_note(&note).unwrap().text).unwrap();
    assert_eq!(genuine.size, 3);
    for w in &ws {
        assert_eq!(fieldcap_server::witness::held(&w.data(), &origin).unwrap(), Some((3, genuine.root)));
    }

    // A fork: the same server key over another history (a copy of the key, a new log in which
    // another device's observations take the same positions).
    let fork_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fork_dir.path().join("data")).unwrap();
    for f in ["server.key", "server.pub.pem"] {
        std::fs::copy(srv.data().join(f), fork_dir.path().join("data").join(f)).unwrap();
    }
    let endpoints: Vec<_> = ws.iter().map(|w| w.endpoint()).collect();
    let fork = TestServer::start_in_with_witnesses(fork_dir, |log| {
        assert_eq!(log.name, origin, "the fork speaks for the same log");
        endpoints
    });
    let other = DeviceKey::generate();
    fork.enroll(&other, "monitor");
    let mut prev: Option<Vec<u8>> = None;
    let mut fork_root = None;
    for seq in 1..=3 {
        let (r, bytes) = observe(&fork, &other, seq, prev.as_deref());
        let c = check_cosignatures(&r.log.checkpoint, &keys).unwrap();
        assert!(c.valid.is_empty(), "the witnesses cosigned a forked checkpoint of size {seq}: {c:?}");
        assert_eq!(c.missing.len(), 2);
        assert!(c.require(1).is_err());
        fork_root = Some(Checkpoint::parse_body(&parse_note(&r.log.checkpoint).unwrap().text).unwrap().root);
        prev = Some(bytes);
    }
    assert_ne!(fork_root.unwrap(), genuine.root, "the fork is another tree of the same size");
    for w in &ws {
        // The fork's checkpoint of size 3 reaches each witness (at once, or from the fork's
        // retry once the witness told it the size it holds), which refuses it (409: another tree
        // of the size it holds) and keeps it as evidence; it still holds the genuine tree.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let refused = fieldcap_server::witness::refusals(&w.data()).unwrap();
            if refused.iter().any(|(o, status, reason)| o == &origin && *status == 409 && reason.contains("fork")) {
                break;
            }
            assert!(Instant::now() < deadline, "the fork never reached the witness: {refused:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(fieldcap_server::witness::held(&w.data(), &origin).unwrap(), Some((3, genuine.root)));
    }
    let note = fork.client.get(format!("{}/v1/log/checkpoint", fork.url())).send().unwrap().text().unwrap();
    assert!(check_cosignatures(&note, &keys).unwrap().valid.is_empty(), "{note}");
    // The genuine server goes on, cosigned.
    let (r, _) = observe(&srv, &dev, 4, Some(&receipts_manifest_bytes(&srv, &receipts)));
    assert_eq!(check_cosignatures(&r.log.checkpoint, &keys).unwrap().valid.len(), 2);
}

/// The manifest bytes of `dev`'s newest item on the server (the chain's `prev`).
fn receipts_manifest_bytes(srv: &TestServer, receipts: &[Receipt]) -> Vec<u8> {
    let last = receipts.last().unwrap();
    let r = fieldcap_server::records::Records::open(srv.data()).unwrap();
    r.item(&last.clip_id).unwrap().unwrap().manifest
}

#[test]
fn an_unreachable_witness_blocks_no_intake_and_cosigns_once_back() {
    let (srv, mut ws, keys, dev) = server_with_two_witnesses();
    let (_, b1) = observe(&srv, &dev, 1, None);
    ws[1].stop();
    // Intake goes on: receipts with w1's cosignature alone.
    let (r2, b2) = observe(&srv, &dev, 2, Some(&b1));
    let (r3, _) = observe(&srv, &dev, 3, Some(&b2));
    for r in [&r2, &r3] {
        let c = check_cosignatures(&r.log.checkpoint, &keys).unwrap();
        assert_eq!(c.valid.len(), 1, "{c:?}");
        assert_eq!(c.missing, vec!["witness.civil.example/w2".to_string()]);
    }
    // Back on the same address: the server's catch-up submits the newest checkpoint (with the
    // consistency proof from size 1, the size w2 holds) and stores the cosignature.
    ws[1].restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    let note = loop {
        let note = srv.client.get(format!("{}/v1/log/checkpoint", srv.url())).send().unwrap().text().unwrap();
        if check_cosignatures(&note, &keys).unwrap().valid.len() == 2 {
            break note;
        }
        assert!(Instant::now() < deadline, "w2 never cosigned the newest checkpoint: {note}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(Checkpoint::parse_body(&parse_note(&note).unwrap().text).unwrap().size, 3);
    // The stored note kept the server's signature and w1's line, byte for byte.
    assert!(note.starts_with(&r3.log.checkpoint), "{note}");
    assert_eq!(fieldcap_server::witness::held(&ws[1].data(), &srv.time().log_origin).unwrap().unwrap().0, 3);
}

/// A log of `n` leaves signed by `key` under `origin`: (tree, checkpoint, note).
fn log_of(key: &DeviceKey, origin: &str, leaves: &[Hash]) -> (LogTree, Checkpoint, String) {
    let tree = LogTree::from_leaves(leaves);
    let cp = Checkpoint { origin: origin.into(), size: leaves.len() as u64, root: tree.root(leaves.len() as u64).unwrap() };
    let note = sign_checkpoint(&cp, origin, key);
    (tree, cp, note)
}

#[test]
fn the_witness_answers_add_checkpoint_as_the_spec_says() {
    const ORIGIN: &str = "example.org/log";
    let key = DeviceKey::generate();
    let vk = VerifierKey::log(ORIGIN, key.verifying_key()).unwrap();
    let w = TestWitness::start("witness.example/w", &[vk]);
    let client = fieldcap_testkit::witness::ReqwestWitnessTransport::new();
    let post = |body: String| {
        use fieldcap_server::witnessing::WitnessTransport as _;
        let r = client.post(&format!("{}/add-checkpoint", w.url()), body.into_bytes(), Duration::from_secs(30)).unwrap();
        (r.status, r.content_type, String::from_utf8(r.body).unwrap())
    };
    let leaves: Vec<Hash> = (0..8u8).map(|i| leaf_hash(&[i])).collect();
    let (t5, cp5, n5) = log_of(&key, ORIGIN, &leaves[..5]);
    let (t8, cp8, n8) = log_of(&key, ORIGIN, &leaves);
    let _ = t5;

    // Malformed: 400.
    assert_eq!(post("old 1\n".into()).0, 400);
    assert_eq!(post(format!("old 01\n\n{n5}")).0, 400);
    // Unknown origin: 404; no valid signature of the log's key: 403.
    let stranger = DeviceKey::generate();
    let (_, _, other_origin) = log_of(&stranger, "other.example/log", &leaves[..5]);
    assert_eq!(post(format!("old 0\n\n{other_origin}")).0, 404);
    let (_, _, wrong_key) = log_of(&stranger, ORIGIN, &leaves[..5]);
    assert_eq!(post(format!("old 0\n\n{wrong_key}")).0, 403);
    // old above the checkpoint size: 400.
    assert_eq!(post(format!("old 6\n\n{n5}")).0, 400);
    // A proof from 0 must be empty: 422. Then the first checkpoint is cosigned.
    assert_eq!(post(AddCheckpoint { old_size: 0, proof: vec![leaves[0]], checkpoint: n5.clone() }.to_body()).0, 422);
    let (status, _, lines) = post(AddCheckpoint { old_size: 0, proof: vec![], checkpoint: n5.clone() }.to_body());
    assert_eq!(status, 200, "{lines}");
    let cosigned = fieldcap_evidence::cosignature::append_signatures(&n5, &lines).unwrap();
    assert_eq!(check_cosignatures(&cosigned, std::slice::from_ref(w.vkey())).unwrap().valid.len(), 1);
    // A stale old size: 409 with the size held, as text/x.tlog.size.
    let (status, ct, body) = post(AddCheckpoint { old_size: 0, proof: vec![], checkpoint: n8.clone() }.to_body());
    assert_eq!((status, ct.as_deref(), body.as_str()), (409, Some(TLOG_SIZE_CONTENT_TYPE), "5\n"));
    // A wrong consistency proof: 422; the right one: 200.
    let good = t8.consistency(5, 8).unwrap();
    let mut bad = good.clone();
    bad[0] = leaf_hash(b"x");
    assert_eq!(post(AddCheckpoint { old_size: 5, proof: bad, checkpoint: n8.clone() }.to_body()).0, 422);
    assert_eq!(post(AddCheckpoint { old_size: 5, proof: good, checkpoint: n8.clone() }.to_body()).0, 200);
    assert_eq!(fieldcap_server::witness::held(&w.data(), ORIGIN).unwrap(), Some((8, cp8.root)));
    // The same size again: cosigned again with the same root, 409 with another (a fork).
    assert_eq!(post(AddCheckpoint { old_size: 8, proof: vec![], checkpoint: n8.clone() }.to_body()).0, 200);
    let mut forked = leaves.clone();
    forked[6] = leaf_hash(b"changed");
    let (_, _, nf) = log_of(&key, ORIGIN, &forked);
    let (status, ct, body) = post(AddCheckpoint { old_size: 8, proof: vec![], checkpoint: nf }.to_body());
    assert_eq!((status, ct.as_deref(), body.as_str()), (409, Some(TLOG_SIZE_CONTENT_TYPE), "8\n"));
    // An older, smaller checkpoint with the right old size is a 400 (old above its size).
    assert_eq!(post(AddCheckpoint { old_size: 8, proof: vec![], checkpoint: n5 }.to_body()).0, 400);
    assert_eq!(cp5.size, 5);
    // Kept as evidence: the 422 with a bad proof from 5 and the fork at 8 (not the stale 409).
    let refused: Vec<u16> = fieldcap_server::witness::refusals(&w.data()).unwrap().into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(refused, vec![422, 409]);
}

/// The witnesses are asked only once the checkpoint they are asked about is stored: asked before,
/// a store failure (disk full) or a crash between the question and the commit would leave them a
/// cosigned tree the log no longer has, and they would refuse every later checkpoint as a fork.
/// A witness on loopback (hand-written, cosigning whatever it is sent) looks at the server's
/// store when each request arrives. Failed before the fix: the request for size N came while
/// the store held size N − 1.
#[test]
fn witnesses_are_asked_only_about_checkpoints_already_stored() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex, OnceLock};
    let data_dir: Arc<OnceLock<std::path::PathBuf>> = Arc::new(OnceLock::new());
    let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (dir, log) = (data_dir.clone(), seen.clone());
    let wkey = DeviceKey::generate();
    let witness = VerifierKey::witness("witness.fake.example/w", wkey.verifying_key()).unwrap();
    let cosigner = fieldcap_evidence::cosignature::Cosigner::new("witness.fake.example/w", wkey).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut b = [0u8; 8192];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let n = s.read(&mut b).unwrap_or(0);
                if n == 0 {
                    break 0;
                }
                buf.extend_from_slice(&b[..n]);
            };
            if head_end == 0 {
                continue;
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            while buf.len() < head_end + len {
                let n = s.read(&mut b).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&b[..n]);
            }
            let Ok(req) = AddCheckpoint::parse(&buf[head_end..]) else { continue };
            let note = parse_note(&req.checkpoint).unwrap();
            if let Some(d) = dir.get() {
                let submitted = Checkpoint::parse_body(&note.text).unwrap().size;
                let stored = fieldcap_server::records::Records::open(d).unwrap().latest_checkpoint().unwrap().map_or(0, |(n, _)| n);
                log.lock().unwrap().push((submitted, stored));
            }
            let line = cosigner.cosign(&note.text, 1_764_547_200).unwrap();
            let _ = s.write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{line}", line.len()).as_bytes());
        }
    });
    let srv = TestServer::start_with_witnesses(|_| vec![fieldcap_server::witnessing::WitnessEndpoint { url, vkey: witness }]);
    data_dir.set(srv.data()).unwrap();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let (r, _) = observe(&srv, &dev, 1, None);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|(submitted, _)| *submitted == r.log.tree_size), "the witness was not asked about the receipt's checkpoint: {seen:?}");
    assert!(r.log.checkpoint.contains("witness.fake.example/w"), "the receipt carries the cosignature");
    for (submitted, stored) in seen {
        assert!(stored >= submitted, "the witness was asked about tree size {submitted} while the store held {stored}");
    }
}
