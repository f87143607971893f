//! The intake server over real HTTP on 127.0.0.1: round trips, idempotency, conflicts, restarts.
#![allow(clippy::unwrap_used)]

use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::tlog::{from_hex, proof_from_hex, verify_checkpoint, verify_consistency};
use fieldcap_evidence::protocol::{DeviceCertificate, ProofResponse, Receipt, SignedDoc};
use fieldcap_server::records::Records;
use fieldcap_testkit::api::*;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::files::files_under;
use fieldcap_testkit::server::TestServer;
use std::io::Write;

#[test]
fn manifest_tus_receipt_round_trip() {
    let srv = TestServer::start();
    let t = srv.time();
    assert!(t.server_key_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let skey = srv.server_key();
    let dev = DeviceKey::generate();
    let cert_doc = srv.enroll(&dev, "police");
    let (cert, _, _): (DeviceCertificate, _, _) = cert_doc.open(&skey).unwrap();
    assert_eq!(cert.device_id, dev.device_id());
    assert_eq!(cert.role, "police");

    // An observation first: its receipt comes with the commitment.
    let obs = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![(33.7406, -118.2760)]);
    let c0 = commit(&srv, &dev, &obs);
    assert!(c0.upload_url.is_none());
    let r0 = fieldcap_server::receipts::verify_receipt(c0.receipt.as_ref().unwrap(), &skey, &t.log_origin).unwrap();
    assert_eq!(r0.log.index, 0);
    assert!(r0.media.is_none());

    // A video: commitment + upload URL, then tus HEAD/PATCH in two chunks.
    let data = seeded(300_000, 7);
    let vid = manifest(&dev, 2, Some(&obs.bytes), Some(&data), "2025-06-07T18:02:00.000Z", vec![(33.7407, -118.2761)]);
    let c1 = commit(&srv, &dev, &vid);
    let (commitment, _, _): (fieldcap_evidence::protocol::Commitment, _, _) = c1.commitment.open(&skey).unwrap();
    assert_eq!(commitment.manifest_sha256, fieldcap_evidence::hashing::sha256_hex(&vid.bytes));
    let url = c1.upload_url.clone().unwrap();
    assert!(url.starts_with("/v1/uploads/") && url.len() == "/v1/uploads/".len() + 64);
    assert!(c1.upload_expires.is_some());
    let head = srv.tus("HEAD", &url).send().unwrap();
    assert_eq!(head.headers()["upload-length"], "300000");
    assert_eq!(head.headers()["upload-offset"], "0");
    assert!(head.headers().contains_key("upload-expires"));
    assert_eq!(head.headers()["tus-resumable"], "1.0.0");

    // Before the media: no receipt yet.
    problem(srv.signed(&dev, "GET", &format!("/v1/receipts/{}", vid.manifest.clip_id), b""), 404, "no-receipt-yet");

    let r = srv.patch(&url, 0, &data[..100_000]);
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], "100000");
    assert_eq!(srv.head_offset(&url), 100_000);
    let r = srv.patch(&url, 100_000, &data[100_000..]);
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], "300000");
    assert_eq!(r.headers()["fieldcap-receipt"].to_str().unwrap(), format!("/v1/receipts/{}", vid.manifest.clip_id));

    let rr = srv.signed(&dev, "GET", &format!("/v1/receipts/{}", vid.manifest.clip_id), b"");
    assert_eq!(rr.status(), 200);
    let doc: SignedDoc = rr.json().unwrap();
    let receipt: Receipt = fieldcap_server::receipts::verify_receipt(&doc, &skey, &t.log_origin).unwrap();
    let dg = fieldcap_evidence::hashing::Digests::of_bytes(&data);
    let m = receipt.media.clone().unwrap();
    assert_eq!((m.bytes, m.sha256.as_str(), m.blake3.as_str()), (dg.bytes, dg.sha256_hex().as_str(), dg.blake3_hex().as_str()));
    assert_eq!(receipt.log.index, 1);
    assert_eq!(receipt.seq, 2);

    // The checkpoint endpoint and a consistency proof from the observation's checkpoint.
    let note = srv.client.get(format!("{}/v1/log/checkpoint", srv.url())).send().unwrap().text().unwrap();
    let cp = verify_checkpoint(&note, &t.log_origin, &skey).unwrap();
    assert_eq!(cp.size, 2);
    let old = verify_checkpoint(&r0.log.checkpoint, &t.log_origin, &skey).unwrap();
    let p: ProofResponse = srv.client.get(format!("{}/v1/log/consistency?from=1&to=2", srv.url())).send().unwrap().json().unwrap();
    verify_consistency(1, 2, &old.root, &cp.root, &proof_from_hex(&p.proof).unwrap()).unwrap();
    let p: ProofResponse = srv.client.get(format!("{}/v1/log/inclusion?index=0&tree_size=2", srv.url())).send().unwrap().json().unwrap();
    fieldcap_evidence::tlog::verify_inclusion(0, 2, &fieldcap_evidence::tlog::leaf_hash(&r0.leaf_bytes()), &proof_from_hex(&p.proof).unwrap(), &cp.root)
        .unwrap();
    problem(srv.client.get(format!("{}/v1/log/consistency?from=2&to=9", srv.url())).send().unwrap(), 400, "malformed-request");
    problem(srv.client.get(format!("{}/v1/log/inclusion?index=x", srv.url())).send().unwrap(), 400, "malformed-request");

    // Idempotent: the same manifest again gets the same commitment and now the receipt.
    let again = srv.submit(&dev, &vid.bytes, &vid.sig);
    assert_eq!(again.status(), 200);
    let again: fieldcap_evidence::protocol::CommitmentResponse = again.json().unwrap();
    assert_eq!(again.commitment, c1.commitment);
    assert_eq!(again.receipt.unwrap(), doc);
    assert!(again.upload_url.is_none());
    // After completion, HEAD says complete; a late PATCH at the end is harmless.
    assert_eq!(srv.head_offset(&url), 300_000);
    assert_eq!(srv.patch(&url, 300_000, b"").status(), 204);
    problem(srv.tus("DELETE", &url).send().unwrap(), 409, "conflict");

    // Records: the original stored unchanged and read-only; custody chain verifies.
    let recs = Records::open(srv.data()).unwrap();
    let item = recs.item(&vid.manifest.clip_id).unwrap().unwrap();
    assert_eq!(item.manifest, vid.bytes);
    assert_eq!(item.manifest_sig, vid.sig);
    let blob = recs.blob_path(&item).unwrap();
    assert_eq!(std::fs::read(&blob).unwrap(), data);
    assert!(std::fs::metadata(&blob).unwrap().permissions().readonly());
    let events = recs.custody(None).unwrap();
    fieldcap_evidence::custody::verify_chain(&events, &skey).unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    for n in ["key_created", "enrolled", "received", "verified", "stored"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert_eq!(recs.device(dev.device_id()).unwrap().unwrap().cert, cert_doc.decode().unwrap().0);
    assert_eq!(recs.inclusion_proof(0, 2).unwrap(), p.proof);
    assert_eq!(fieldcap_server::incidents(srv.data()).unwrap().len(), 1);
    // No partial files left.
    assert!(files_under(&srv.data().join("uploads")).is_empty());
}

#[test]
fn enrolment_tokens_are_one_time_and_idempotent_for_the_same_device() {
    let srv = TestServer::start();
    let a = DeviceKey::generate();
    let b = DeviceKey::generate();
    let token = fieldcap_server::issue_token(srv.data(), "monitor").unwrap();
    let r = srv.enroll_with(&a, &token);
    assert_eq!(r.status(), 201);
    let first: SignedDoc = r.json().unwrap();
    // The same device repeating (lost answer) gets the same certificate.
    let r = srv.enroll_with(&a, &token);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<SignedDoc>().unwrap(), first);
    // Another device cannot reuse it.
    problem(srv.enroll_with(&b, &token), 403, "invalid-token");
    problem(srv.enroll_with(&b, "not-a-token"), 403, "invalid-token");
    assert!(fieldcap_server::issue_token(srv.data(), "sheriff").is_err());
    srv.still_serving();
}

#[test]
fn conflicts_and_seq_gaps() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let a = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]);
    commit(&srv, &dev, &a);
    // Same clip_id, different manifest.
    let mut m2 = a.manifest.clone();
    m2.note = Some("edited".into());
    let bytes = m2.to_canonical_bytes().unwrap();
    let sig = dev.sign(&bytes);
    problem(srv.submit(&dev, &bytes, &sig), 409, "conflict");
    // Same seq, another clip.
    let b = manifest(&dev, 1, None, None, "2025-06-07T18:05:00.000Z", vec![]);
    problem(srv.submit(&dev, &b.bytes, &b.sig), 409, "conflict");
    // seq 4 arrives before 2 and 3: accepted, gap recorded.
    let d = manifest(&dev, 4, Some(b"whatever came before"), None, "2025-06-07T18:10:00.000Z", vec![]);
    commit(&srv, &dev, &d);
    // seq 2 with a prev that is not seq 1's manifest: refused.
    let bad = manifest(&dev, 2, Some(b"not the first manifest"), None, "2025-06-07T18:06:00.000Z", vec![]);
    problem(srv.submit(&dev, &bad.bytes, &bad.sig), 409, "conflict");
    let good = manifest(&dev, 2, Some(&a.bytes), None, "2025-06-07T18:06:00.000Z", vec![]);
    commit(&srv, &dev, &good);
    let recs = Records::open(srv.data()).unwrap();
    let events = recs.custody(None).unwrap();
    let count = |n: &str| events.iter().filter(|e| e.event == n).count();
    assert_eq!(count("conflict"), 3);
    assert_eq!(count("seq_gap"), 1);
    // The first manifest is kept as it was.
    assert_eq!(recs.item(&a.manifest.clip_id).unwrap().unwrap().manifest, a.bytes);
    fieldcap_evidence::custody::verify_chain(&events, &srv.server_key()).unwrap();
}

#[test]
fn generic_tus_creation_at_the_upload_url_and_termination() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(50_000, 3);
    let vid = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]);
    let c = commit(&srv, &dev, &vid);
    let url = c.upload_url.unwrap();

    let o = srv.client.request(reqwest::Method::OPTIONS, format!("{}{}", srv.url(), url)).send().unwrap();
    assert_eq!(o.status(), 204);
    assert_eq!(o.headers()["tus-version"], "1.0.0");
    assert_eq!(o.headers()["tus-extension"], "creation,creation-with-upload,termination,expiration");
    assert!(o.headers().contains_key("tus-max-size"));

    // Some bytes, then terminate: a new URL comes with the next POST /v1/manifests.
    assert_eq!(srv.patch(&url, 0, &data[..1000]).status(), 204);
    assert_eq!(srv.tus("DELETE", &url).send().unwrap().status(), 204);
    assert_eq!(srv.tus("HEAD", &url).send().unwrap().status(), 410);
    problem(srv.patch(&url, 1000, b"x"), 410, "upload-gone");
    let c2 = commit(&srv, &dev, &vid);
    let url2 = c2.upload_url.unwrap();
    assert_ne!(url, url2);

    // A generic client: POST to the upload URL (creation-with-upload), then PATCH the rest.
    problem(
        srv.tus("POST", &url2).header("upload-length", "49999").send().unwrap(),
        400,
        "upload-length",
    );
    let r = srv
        .tus("POST", &url2)
        .header("upload-length", "50000")
        .header("upload-metadata", "filename Y2xpcC5tcDQ=")
        .header("content-type", "application/offset+octet-stream")
        .body(data[..20_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"].to_str().unwrap(), url2);
    assert_eq!(r.headers()["upload-offset"], "20000");
    assert_eq!(srv.patch(&url2, 20_000, &data[20_000..]).status(), 204);
    let rr = srv.signed(&dev, "GET", &format!("/v1/receipts/{}", vid.manifest.clip_id), b"");
    assert_eq!(rr.status(), 200);

    // POST /v1/uploads with the capability in Upload-Metadata also works as an endpoint.
    let data3 = seeded(10, 9);
    let v3 = manifest(&dev, 2, Some(&vid.bytes), Some(&data3), "2025-06-07T18:04:00.000Z", vec![]);
    let url3 = commit(&srv, &dev, &v3).upload_url.unwrap();
    let cap = url3.rsplit('/').next().unwrap();
    let meta = format!("fieldcap-upload {}", fieldcap_evidence::protocol::b64(cap.as_bytes()));
    let r = srv.tus("POST", "/v1/uploads").header("upload-length", "10").header("upload-metadata", meta).send().unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["location"].to_str().unwrap(), url3);
    assert_eq!(srv.patch(&url3, 0, &data3).status(), 204);
    assert_eq!(srv.signed(&dev, "GET", &format!("/v1/receipts/{}", v3.manifest.clip_id), b"").status(), 200);
}

#[test]
fn creation_on_a_finished_upload_is_refused_naming_the_items_receipt() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(5_000, 4);
    let vid = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]);
    let url = commit(&srv, &dev, &vid).upload_url.unwrap();
    assert_eq!(srv.patch(&url, 0, &data).status(), 204);
    // A generic tus client that lost the answer and starts over gets a 409 telling it where
    // the receipt of this very item is.
    let p = problem(srv.tus("POST", &url).header("upload-length", "5000").send().unwrap(), 409, "conflict");
    let detail = p.detail.unwrap();
    let receipt_path = format!("/v1/receipts/{}", vid.manifest.clip_id);
    assert!(detail.contains(&receipt_path), "{detail}");
    assert!(!detail.contains('{'), "{detail}");
    assert_eq!(srv.signed(&dev, "GET", &receipt_path, b"").status(), 200);
}

#[test]
fn server_restart_mid_upload_resumes_at_the_fsynced_offset() {
    let mut srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(3 * 1024 * 1024 + 17, 5);
    let vid = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]);
    let url = commit(&srv, &dev, &vid).upload_url.unwrap();

    // A PATCH announcing the whole file that is cut after 1.5 MiB (connection closed).
    let sent = 1536 * 1024;
    {
        let mut s = std::net::TcpStream::connect(srv.addr()).unwrap();
        let head = format!(
            "PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
            data.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&data[..sent]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    // The server kept (and fsynced) what arrived.
    let mut offset = 0;
    for _ in 0..50 {
        offset = srv.head_offset(&url);
        if offset == sent as u64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(offset, sent as u64);

    // Unsynced garbage past the offset (as a crash mid-write would leave) is dropped on resume.
    let part = srv.data().join("uploads").join(format!("{}.part", vid.manifest.clip_id));
    std::fs::OpenOptions::new().append(true).open(&part).unwrap().write_all(b"GARBAGE").unwrap();

    srv.restart();
    assert_eq!(srv.head_offset(&url), sent as u64);
    assert_eq!(srv.patch(&url, sent as u64, &data[sent..]).status(), 204);
    let rr = srv.signed(&dev, "GET", &format!("/v1/receipts/{}", vid.manifest.clip_id), b"");
    assert_eq!(rr.status(), 200);
    let recs = Records::open(srv.data()).unwrap();
    let item = recs.item(&vid.manifest.clip_id).unwrap().unwrap();
    assert_eq!(std::fs::read(recs.blob_path(&item).unwrap()).unwrap(), data);
    // The log survived the restart: the checkpoint still verifies and has the leaf.
    let t = srv.time();
    let note = srv.client.get(format!("{}/v1/log/checkpoint", srv.url())).send().unwrap().text().unwrap();
    assert_eq!(verify_checkpoint(&note, &t.log_origin, &srv.server_key()).unwrap().size, 1);
}

#[test]
fn several_devices_concurrently_all_receipted_once() {
    let srv = TestServer::start();
    let srv = std::sync::Arc::new(srv);
    let mut threads = Vec::new();
    for d in 0..4u8 {
        let srv = srv.clone();
        threads.push(std::thread::spawn(move || {
            let dev = DeviceKey::generate();
            srv.enroll(&dev, "monitor");
            let mut prev: Option<Vec<u8>> = None;
            for i in 0..5u8 {
                let data = seeded(20_000 + i as usize * 1000, (d * 10 + i) as u64);
                let start = format!("2025-06-07T18:{:02}:00.000Z", i * 5);
                let b = manifest(&dev, i as u64 + 1, prev.as_deref(), Some(&data), &start, vec![(33.74, -118.27)]);
                let c = commit(&srv, &dev, &b);
                let url = c.upload_url.unwrap();
                assert_eq!(srv.patch(&url, 0, &data).status(), 204);
                prev = Some(b.bytes);
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let recs = Records::open(srv.data()).unwrap();
    let items = recs.items().unwrap();
    assert_eq!(items.len(), 20);
    assert!(items.iter().all(|i| i.state == "received"));
    let mut idx: Vec<u64> = items.iter().map(|i| i.log_index.unwrap()).collect();
    idx.sort();
    assert_eq!(idx, (0..20).collect::<Vec<_>>());
    let (size, note) = recs.latest_checkpoint().unwrap().unwrap();
    assert_eq!(size, 20);
    let cp = verify_checkpoint(&note, &recs.default_log_origin(), &srv.server_key()).unwrap();
    for i in &items {
        let r: Receipt = serde_json::from_slice(i.receipt.as_ref().unwrap()).unwrap();
        let old = verify_checkpoint(&r.log.checkpoint, &recs.default_log_origin(), &srv.server_key()).unwrap();
        let proof = recs.consistency_proof(old.size, 20).unwrap();
        verify_consistency(old.size, 20, &old.root, &cp.root, &proof_from_hex(&proof).unwrap()).unwrap();
    }
    let _ = from_hex(&"00".repeat(32), "x").unwrap();
    let inc = fieldcap_server::incidents(srv.data()).unwrap();
    assert_eq!(inc.len(), 1, "same place, overlapping half-hours");
    assert_eq!(inc[0].clip_ids.len(), 20);
}

#[test]
fn custody_events_lost_to_a_crash_are_recorded_late_at_start() {
    let mut srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(70_000, 9);
    let vid = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]);
    let url = commit(&srv, &dev, &vid).upload_url.unwrap();
    assert_eq!(srv.patch(&url, 0, &data).status(), 204);
    let clip = vid.manifest.clip_id.clone();
    // Simulate a crash after the item was stored but before its `stored` event was written:
    // drop the last event of the chain (the chain stays valid, the event is just missing).
    let db = srv.data().join("records.sqlite");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let (seq, event): (i64, String) = c.query_row("SELECT seq, event FROM custody ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!(event, "stored");
        c.execute("DELETE FROM custody WHERE seq = ?1", [seq]).unwrap();
    }
    srv.restart();
    let c = rusqlite::Connection::open(&db).unwrap();
    let bodies: Vec<Vec<u8>> = c
        .prepare("SELECT body FROM custody WHERE clip_id = ?1 AND event = 'stored'")
        .unwrap()
        .query_map([&clip], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "exactly one stored event after the restart");
    let v: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(v["detail"]["recorded_late"], true);
    let records = fieldcap_server::records::Records::open(srv.data()).unwrap();
    fieldcap_evidence::custody::verify_chain(&records.custody(None).unwrap(), &srv.server_key()).unwrap();
    // A second restart adds nothing.
    srv.restart();
    let n: i64 = c.query_row("SELECT COUNT(*) FROM custody WHERE clip_id = ?1 AND event = 'stored'", [&clip], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

/// A PATCH that delivers every byte of the upload but is cut before its chunked body ends (a
/// phone killed after sending the last byte) must not leave the upload whole but unfinished
/// until the next server start: the item is stored and receipted at once.
#[test]
fn an_upload_whose_last_byte_arrived_on_a_cut_request_is_finished_without_a_restart() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(70_000, 9);
    let vid = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]);
    let url = commit(&srv, &dev, &vid).upload_url.unwrap();
    {
        let mut s = std::net::TcpStream::connect(srv.addr()).unwrap();
        let head = format!("PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(format!("{:x}\r\n", data.len()).as_bytes()).unwrap();
        s.write_all(&data).unwrap();
        s.write_all(b"\r\n").unwrap(); // ... but never the final zero-length chunk
        s.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    } // the connection is cut here
    let receipt = format!("/v1/receipts/{}", vid.manifest.clip_id);
    let mut got = 0;
    for _ in 0..40 {
        got = srv.signed(&dev, "GET", &receipt, b"").status().as_u16();
        if got == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(got, 200, "no receipt for an upload whose every byte arrived");
    assert_eq!(srv.head_offset(&url), data.len() as u64);
}

/// A PATCH cut mid-body (the phone killed, or out of coverage) keeps the bytes that arrived: the
/// handler runs to its end though hyper drops the connection, records the new offset, and only
/// then lets the next request for the upload in.
#[test]
fn a_patch_cut_mid_body_keeps_and_records_the_bytes_that_arrived() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(300_000, 11);
    let vid = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:03:00.000Z", vec![]);
    let url = commit(&srv, &dev, &vid).upload_url.unwrap();
    let sent = 120_000;
    {
        let mut s = std::net::TcpStream::connect(srv.addr()).unwrap();
        let head = format!(
            "PATCH {url} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
            data.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&data[..sent]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
    } // the connection is cut here, 180 000 bytes short
    let mut offset = 0;
    for _ in 0..40 {
        offset = srv.head_offset(&url);
        if offset == sent as u64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(offset, sent as u64, "the bytes received before the cut were not kept");
    // The upload resumes there and completes.
    let r = srv
        .client
        .patch(format!("{}{url}", srv.url()))
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", sent.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(data[sent..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let receipt = format!("/v1/receipts/{}", vid.manifest.clip_id);
    assert_eq!(srv.signed(&dev, "GET", &receipt, b"").status().as_u16(), 200);
}

#[test]
fn health_readiness_and_metrics_answer_and_count_refusals_by_name() {
    let srv = TestServer::start();
    let get = |path: &str| {
        let r = srv.client.get(format!("{}{path}", srv.url())).send().unwrap();
        let status = r.status().as_u16();
        let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, ctype, r.text().unwrap())
    };
    assert_eq!(get("/healthz").0, 200);
    let (status, _, body) = get("/readyz");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    // Two refusals of one kind (an unknown receipt), then what the metrics say.
    for _ in 0..2 {
        assert_eq!(get("/v1/receipts/0190b0f4-0000-7000-8000-000000000000").0, 401);
    }
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let obs = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![(33.7406, -118.2760)]);
    commit(&srv, &dev, &obs);
    let (status, ctype, text) = get("/metrics");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(text.contains("fieldcap_refusals_total{problem=\"unauthenticated\"} 2"), "{text}");
    assert!(text.contains("fieldcap_log_size 1"), "{text}");
    assert!(text.contains("fieldcap_uploads_in_progress 0"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}
