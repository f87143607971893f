//! Hardening (issue 12): the server's logic under a hostile enrolled device or a racing client —
//! weak keys at enrolment, strict manifests, bounded seq, finished uploads that stay finished,
//! revoked devices' open uploads, bounded refusal records, leftover export folders. Each test
//! failed before its fix.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::protocol::EnrollRequest;
use fieldcap_server::records::Records;
use fieldcap_testkit::api::*;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::server::TestServer;

/// SPKI PEM of 32 raw public-key bytes (RFC 8410 prefix).
fn pem_of_raw(raw: [u8; 32]) -> String {
    let mut der = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    der.extend_from_slice(&raw);
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", base64::engine::general_purpose::STANDARD.encode(der))
}

fn enroll_pem(srv: &TestServer, pem: &str, token: &str) -> reqwest::blocking::Response {
    let req = EnrollRequest { token: token.into(), public_key_pem: pem.into(), org: None };
    srv.client.post(format!("{}/v1/enroll", srv.url())).json(&req).send().unwrap()
}

#[test]
fn weak_keys_are_refused_at_enrolment_and_the_token_stays_usable() {
    let srv = TestServer::start();
    let token = srv.token("monitor");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut identity_signed = identity;
    identity_signed[31] = 0x80;
    let mut identity_big_y = [0xffu8; 32];
    identity_big_y[0] = 0xee;
    identity_big_y[31] = 0x7f;
    for (what, raw) in [("all-zero key", [0u8; 32]), ("identity point", identity), ("identity, sign bit set", identity_signed), ("identity, y = p + 1", identity_big_y)] {
        let p = problem(enroll_pem(&srv, &pem_of_raw(raw), &token), 400, "bad-key");
        assert!(p.detail.as_deref().unwrap_or("").contains("key"), "{what}: {p:?}");
    }
    assert!(Records::open(srv.data()).unwrap().devices().unwrap().is_empty(), "no weak key enrolled");
    // The token was not used up: a good key enrols with it.
    let good = DeviceKey::generate();
    assert_eq!(srv.enroll_with(&good, &token).status(), 201);
    srv.still_serving();
}

/// A device custody event line (`{"event": body, "sig": hex}`) signed by `key`.
fn device_event(key: &DeviceKey, seq: u64, prev: Option<&[u8]>, event: &str, detail: serde_json::Value) -> (Vec<u8>, serde_json::Value) {
    let actor = format!("device:{}", key.device_id());
    let prev = prev.map(fieldcap_evidence::hashing::sha256_hex);
    let body = fieldcap_evidence::custody::body(&actor, seq, "2025-06-07T18:04:05.123Z", event, None, detail, prev.as_deref());
    let line = serde_json::json!({ "event": serde_json::from_slice::<serde_json::Value>(&body).unwrap(), "sig": hex::encode(key.sign(&body)) });
    (body, line)
}

#[test]
fn unknown_manifest_fields_and_float_custody_details_are_refused_naming_the_field() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let good = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]);
    // A fake receipt object, and a large unknown field, in a correctly signed manifest.
    for (field, value) in [("receipt", serde_json::json!({"type": "fieldcap.receipt/1", "log": {"index": 0}})), ("zz_padding", serde_json::json!("x".repeat(1_000_000)))] {
        let mut v: serde_json::Value = serde_json::from_slice(&good.bytes).unwrap();
        v[field] = value;
        let bytes = fieldcap_evidence::canonical::to_vec(&v);
        let p = problem(srv.submit(&dev, &bytes, &dev.sign(&bytes)), 422, "invalid-manifest");
        assert!(p.detail.as_deref().unwrap_or("").contains(&format!("unknown field `{field}`")), "{p:?}");
    }
    // Inside a nested object too.
    let mut v: serde_json::Value = serde_json::from_slice(&good.bytes).unwrap();
    v["capture"]["clock"]["trusted"] = serde_json::json!(true);
    let bytes = fieldcap_evidence::canonical::to_vec(&v);
    let p = problem(srv.submit(&dev, &bytes, &dev.sign(&bytes)), 422, "invalid-manifest");
    assert!(p.detail.as_deref().unwrap_or("").contains("trusted"), "{p:?}");
    assert!(Records::open(srv.data()).unwrap().items().unwrap().is_empty(), "nothing stored");
    // The manifest as the format defines it is accepted.
    commit(&srv, &dev, &good);

    // A device custody event whose detail holds a float: refused, nothing stored.
    let (b1, e1) = device_event(&dev, 1, None, "created", serde_json::json!({}));
    let (_, e2) = device_event(&dev, 2, Some(&b1), "clock_offset_measured", serde_json::json!({"offset_ms": 12, "rtt_s": 0.25}));
    let body = serde_json::to_vec(&serde_json::json!({ "events": [e1.clone(), e2] })).unwrap();
    let p = problem(srv.signed(&dev, "POST", "/v1/custody", &body), 400, "malformed-request");
    assert!(p.detail.as_deref().unwrap_or("").contains("'rtt_s'"), "{p:?}");
    assert!(Records::open(srv.data()).unwrap().device_custody(dev.device_id()).unwrap().is_empty());
    // The same log with integers only is taken.
    let (_, e2) = device_event(&dev, 2, Some(&b1), "clock_offset_measured", serde_json::json!({"offset_ms": 12, "rtt_ms": 250}));
    let body = serde_json::to_vec(&serde_json::json!({ "events": [e1, e2] })).unwrap();
    assert_eq!(srv.signed(&dev, "POST", "/v1/custody", &body).status(), 200);
    srv.still_serving();
}

fn package_request(selection: fieldcap_server::package::Selection, out: std::path::PathBuf) -> fieldcap_server::package::PackageRequest {
    fieldcap_server::package::PackageRequest {
        selection,
        out,
        recipient: "Los Angeles County District Attorney".into(),
        purpose: "Case 25-1234".into(),
        profile: fieldcap_server::package::Profile::Full,
        sensitive_reason: None,
        zip: false,
        exported_by: "records custodian".into(),
    }
}

#[test]
fn a_huge_seq_is_refused_and_a_far_one_does_not_hang_the_package_of_its_incident() {
    let srv = TestServer::start();
    let honest = DeviceKey::generate();
    let hostile = DeviceKey::generate();
    srv.enroll(&honest, "monitor");
    srv.enroll(&hostile, "monitor");
    let place = vec![(33.7361, -118.2922)];
    let h1 = manifest(&honest, 1, None, None, "2025-06-07T18:00:00.000Z", place.clone());
    commit(&srv, &honest, &h1);
    // seq at or past 2^63 (stored as a negative number before) and 2^64 - 1: refused.
    for seq in [u64::MAX, 1 << 63, fieldcap_evidence::manifest::MAX_SEQ + 1] {
        let m = manifest(&hostile, seq, Some(b"an earlier manifest"), None, "2025-06-07T18:00:00.000Z", place.clone());
        let p = problem(srv.submit(&hostile, &m.bytes, &m.sig), 422, "invalid-manifest");
        assert!(p.detail.as_deref().unwrap_or("").contains("seq"), "{p:?}");
    }
    // The largest allowed seq, copying the honest item's time and place: accepted as a gap, and
    // grouped into the honest item's incident.
    let far = manifest(&hostile, fieldcap_evidence::manifest::MAX_SEQ, Some(b"an earlier manifest"), None, "2025-06-07T18:00:00.000Z", place.clone());
    commit(&srv, &hostile, &far);
    let far2 = manifest(&hostile, 3, Some(b"another"), None, "2025-06-07T18:00:30.000Z", place);
    commit(&srv, &hostile, &far2);
    let recs = Records::open(srv.data()).unwrap();
    let item = recs.item(&far.manifest.clip_id).unwrap().unwrap();
    assert_eq!(item.seq, fieldcap_evidence::manifest::MAX_SEQ);
    let inc = recs.incidents().unwrap().into_iter().find(|i| i.clip_ids.contains(&h1.manifest.clip_id)).unwrap();
    assert_eq!(inc.clip_ids.len(), 3, "the hostile items join the honest item's incident");
    // The package of that incident is written (before: one query per seq from 3 to 2^53 - 1).
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("pkg");
    let done = fieldcap_server::package::export(srv.data(), &package_request(fieldcap_server::package::Selection::Incident(inc.id.clone()), out.clone())).unwrap();
    assert_eq!(done.items, 3);
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("package.json")).unwrap()).unwrap();
    let dev = index["devices"].as_array().unwrap().iter().find(|d| d["device_id"] == hostile.device_id()).unwrap();
    let seqs: Vec<u64> = dev["chain"].as_array().unwrap().iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, fieldcap_evidence::manifest::MAX_SEQ], "the chain names the stored seqs only");
    let names: Vec<String> = std::fs::read_dir(out_dir.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    assert_eq!(names, vec!["pkg".to_string()], "no temporary folder left beside the package");
}

#[test]
fn an_export_removes_the_temporary_folders_of_a_killed_one_and_nothing_else() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let m = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]);
    commit(&srv, &dev, &m);
    let out_dir = tempfile::tempdir().unwrap();
    let p = out_dir.path();
    let hex = "0123456789abcdef0123456789abcdef";
    // A killed export of this version: folder, scratch folder and a lock nobody holds.
    let killed = format!(".pkg-old.tmp-1-{hex}");
    std::fs::create_dir_all(p.join(&killed).join("clips")).unwrap();
    std::fs::write(p.join(&killed).join("clips").join("media.mp4"), seeded(1000, 1)).unwrap();
    std::fs::create_dir(p.join(format!("{killed}.scratch"))).unwrap();
    std::fs::write(p.join(format!("{killed}.lock")), b"").unwrap();
    // A killed export of an earlier version (no lock file), by a process that no longer exists.
    let older = format!(".pkg-older.tmp-999999999-{hex}");
    std::fs::create_dir(p.join(&older)).unwrap();
    // Not ours: kept.
    for keep in ["evidence", ".pkg.tmp-notours", "pkg-old.tmp-1-0123456789abcdef0123456789abcdef"] {
        std::fs::create_dir(p.join(keep)).unwrap();
    }
    fieldcap_server::package::export(srv.data(), &package_request(fieldcap_server::package::Selection::Clips(vec![m.manifest.clip_id.clone()]), p.join("pkg"))).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(p).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    names.sort();
    assert_eq!(names, vec![".pkg.tmp-notours", "evidence", "pkg", "pkg-old.tmp-1-0123456789abcdef0123456789abcdef"]);
}

/// Events of one item's custody after its `stored` event (none may follow but exports).
fn events_after_stored(recs: &Records, clip_id: &str) -> Vec<String> {
    let evs = recs.custody(Some(clip_id)).unwrap();
    match evs.iter().position(|e| e.event == "stored") {
        Some(i) => evs[i + 1..].iter().map(|e| e.event.clone()).collect(),
        None => vec!["(no stored event)".into()],
    }
}

#[test]
fn a_creation_post_racing_the_final_patch_never_reopens_a_finished_upload() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    const LEN: usize = 3 << 20;
    const TRIES: u64 = 30;
    let mut prev: Option<Vec<u8>> = None;
    let mut clips = Vec::new();
    let mut post_won = 0;
    for t in 0..TRIES {
        let data = seeded(LEN, 100 + t);
        let m = manifest(&dev, t + 1, prev.as_deref(), Some(&data), "2025-06-07T18:00:00.000Z", vec![]);
        prev = Some(m.bytes.clone());
        let url = commit(&srv, &dev, &m).upload_url.unwrap();
        let split = 4096;
        assert_eq!(srv.patch(&url, 0, &data[..split]).status(), 204);
        let mut wrong = data.clone();
        wrong[0] ^= 0xff;
        let barrier = std::sync::Barrier::new(2);
        // Connections of their own, never reused (a refused body may close one).
        let fresh = || reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let (patch_status, post_status) = std::thread::scope(|s| {
            let p = s.spawn(|| {
                let client = fresh();
                barrier.wait();
                client
                    .patch(format!("{}{}", srv.url(), url))
                    .header("tus-resumable", "1.0.0")
                    .header("upload-offset", split.to_string())
                    .header("content-type", "application/offset+octet-stream")
                    .body(data[split..].to_vec())
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            });
            let c = s.spawn(|| {
                let client = fresh();
                barrier.wait();
                // Creation-with-upload of a full-length wrong body at the same URL.
                client
                    .post(format!("{}{}", srv.url(), url))
                    .header("tus-resumable", "1.0.0")
                    .header("upload-length", LEN.to_string())
                    .header("content-type", "application/offset+octet-stream")
                    .body(wrong.clone())
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            });
            (p.join().unwrap(), c.join().unwrap())
        });
        assert!(patch_status < 500 && post_status < 500, "try {t}: PATCH {patch_status}, POST {post_status}");
        if patch_status != 204 {
            // The POST went first (reset, wrong bytes refused): the client resumes as tus says.
            post_won += 1;
            let off = srv.head_offset(&url);
            assert_eq!(srv.patch(&url, off, &data[off as usize..]).status(), 204, "try {t}");
        } else {
            assert!(post_status == 409 || post_status == 422, "try {t}: POST after the finish got {post_status}");
        }
        // Finished for good: HEAD says the full length, the receipt is there.
        assert_eq!(srv.head_offset(&url), LEN as u64, "try {t}");
        assert_eq!(srv.signed(&dev, "GET", &format!("/v1/receipts/{}", m.manifest.clip_id), b"").status(), 200, "try {t}");
        // A late creation POST is refused and changes nothing.
        problem(srv.tus("POST", &url).header("upload-length", LEN.to_string()).send().unwrap(), 409, "conflict");
        assert_eq!(srv.head_offset(&url), LEN as u64, "try {t}");
        clips.push(m.manifest.clip_id.clone());
    }
    let recs = Records::open(srv.data()).unwrap();
    assert!(fieldcap_testkit::files::files_under(&srv.data().join("uploads")).is_empty(), "no stray partial upload");
    for c in &clips {
        let item = recs.item(c).unwrap().unwrap();
        assert_eq!(item.state, "received");
        assert_eq!(events_after_stored(&recs, c), Vec::<String>::new(), "custody of {c} goes on after stored");
        let stored = recs.custody(Some(c)).unwrap().iter().filter(|e| e.event == "verified" || e.event == "stored").count();
        assert_eq!(stored, 2, "one verified and one stored event for {c}");
    }
    assert_eq!(recs.log_size().unwrap(), TRIES, "one log leaf per item");
    fieldcap_evidence::custody::verify_chain(&recs.custody(None).unwrap(), &srv.server_key()).unwrap();
    eprintln!("the creation POST went first in {post_won} of {TRIES} tries");
    srv.still_serving();
}

/// A request body fed from a channel: the test decides when each part is sent and when it ends.
struct ChannelBody {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Checks that a revoked device's item got nothing: no receipt, no log leaf, the upload
/// terminated with reason `device_revoked`, the bytes set aside (not an original).
fn assert_ended_by_revocation(srv: &TestServer, recs: &Records, clip_id: &str, url: &str, leaves_before: u64) {
    let item = recs.item(clip_id).unwrap().unwrap();
    assert_eq!(item.state, "committed");
    assert!(item.receipt.is_none(), "no receipt after revocation");
    assert_eq!(recs.log_size().unwrap(), leaves_before, "no log leaf after revocation");
    let evs = recs.custody(Some(clip_id)).unwrap();
    let term: Vec<_> = evs.iter().filter(|e| e.event == "terminated").collect();
    assert_eq!(term.len(), 1, "one terminated event");
    let body: serde_json::Value = serde_json::from_slice(&term[0].body).unwrap();
    assert_eq!(body["detail"]["reason"], "device_revoked");
    assert!(!evs.iter().any(|e| e.event == "verified" || e.event == "stored"));
    // Further tus requests: refused as the device's.
    assert_eq!(srv.tus("HEAD", url).send().unwrap().status(), 403, "HEAD (no body)");
    problem(srv.patch(url, 0, b"x"), 403, "device-revoked");
    problem(srv.tus("POST", url).header("upload-length", "1").send().unwrap(), 403, "device-revoked");
    problem(srv.tus("DELETE", url).send().unwrap(), 403, "device-revoked");
    assert_eq!(recs.custody(Some(clip_id)).unwrap().iter().filter(|e| e.event == "terminated").count(), 1, "terminated once");
    assert!(!srv.data().join("uploads").join(format!("{clip_id}.part")).exists(), "no live partial");
}

#[test]
fn revocation_ends_uploads_already_begun() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let honest = DeviceKey::generate();
    srv.enroll(&honest, "monitor");
    let data = seeded(200_000, 7);
    let a = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:00:00.000Z", vec![]);
    let url_a = commit(&srv, &dev, &a).upload_url.unwrap();
    let b = manifest(&dev, 2, Some(&a.bytes), Some(&data[..150_000]), "2025-06-07T18:02:00.000Z", vec![]);
    let url_b = commit(&srv, &dev, &b).upload_url.unwrap();
    let h = manifest(&honest, 1, None, Some(&data[..1000]), "2025-06-07T18:00:00.000Z", vec![]);
    let url_h = commit(&srv, &honest, &h).upload_url.unwrap();
    assert_eq!(srv.patch(&url_a, 0, &data[..100_000]).status(), 204);
    assert_eq!(srv.patch(&url_h, 0, &data[..500]).status(), 204);

    // b: a PATCH under way when the device is revoked (the body's second half sent after).
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let b_data = data[..150_000].to_vec();
    let in_flight = std::thread::scope(|s| {
        let t = s.spawn(|| {
            let body = reqwest::blocking::Body::new(ChannelBody { rx, buf: Vec::new(), pos: 0 });
            srv.tus("PATCH", &url_b)
                .header("upload-offset", "0")
                .header("content-type", "application/offset+octet-stream")
                .body(body)
                .send()
        });
        tx.send(b_data[..75_000].to_vec()).unwrap();
        assert!(fieldcap_server::revoke_device(srv.data(), dev.device_id(), "phone seized").unwrap());
        tx.send(b_data[75_000..].to_vec()).unwrap();
        drop(tx);
        t.join().unwrap()
    });
    // Refused at the last byte, or — when the revocation was seen as the request arrived —
    // before the body was read (the server may then close the connection while it is sent).
    if let Ok(r) = in_flight {
        problem(r, 403, "device-revoked");
    }

    // a: an upload begun before the revocation, continued after it.
    problem(srv.patch(&url_a, 100_000, &data[100_000..]), 403, "device-revoked");

    let recs = Records::open(srv.data()).unwrap();
    assert_ended_by_revocation(&srv, &recs, &a.manifest.clip_id, &url_a, 0);
    assert_ended_by_revocation(&srv, &recs, &b.manifest.clip_id, &url_b, 0);
    // a's 100 000 bytes received before the revocation are kept aside, byte for byte.
    let aside: Vec<_> = std::fs::read_dir(srv.data().join("uploads").join("revoked")).unwrap().flatten().map(|e| e.path()).collect();
    let a_aside = aside.iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&a.manifest.clip_id)).expect("a's bytes set aside");
    assert_eq!(std::fs::read(a_aside).unwrap(), data[..100_000].to_vec());
    assert!(fieldcap_testkit::files::files_under(&srv.data().join("blobs")).is_empty(), "nothing stored as an original");
    // Another device's upload is not touched.
    assert_eq!(srv.patch(&url_h, 500, &data[500..1000]).status(), 204);
    assert_eq!(srv.signed(&honest, "GET", &format!("/v1/receipts/{}", h.manifest.clip_id), b"").status(), 200);
    fieldcap_evidence::custody::verify_chain(&recs.custody(None).unwrap(), &srv.server_key()).unwrap();
    srv.still_serving();
}

#[test]
fn a_revoked_devices_open_upload_is_ended_at_the_next_start() {
    let mut srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(50_000, 9);
    let m = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:00:00.000Z", vec![]);
    let url = commit(&srv, &dev, &m).upload_url.unwrap();
    assert_eq!(srv.patch(&url, 0, &data[..20_000]).status(), 204);
    srv.stop();
    assert!(fieldcap_server::revoke_device(srv.data(), dev.device_id(), "phone lost").unwrap());
    // The server starts with the revoked device's upload open: it is ended at start-up.
    srv.restart();
    let recs = Records::open(srv.data()).unwrap();
    assert_eq!(recs.custody(Some(&m.manifest.clip_id)).unwrap().iter().filter(|e| e.event == "terminated").count(), 1, "ended at start-up");
    assert_ended_by_revocation(&srv, &recs, &m.manifest.clip_id, &url, 0);
}

#[test]
fn two_hundred_conflicting_submissions_add_a_bounded_number_of_custody_events() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let first = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]);
    commit(&srv, &dev, &first);
    let events_before = Records::open(srv.data()).unwrap().custody(None).unwrap().len();
    let started = std::time::Instant::now();
    for i in 0..100 {
        // The same clip id with another manifest.
        let mut m = first.manifest.clone();
        m.note = Some(format!("rewrite {i}"));
        let bytes = m.to_canonical_bytes().unwrap();
        problem(srv.submit(&dev, &bytes, &dev.sign(&bytes)), 409, "conflict");
        // Another clip at the same seq (a new clip id each time).
        let other = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]);
        problem(srv.submit(&dev, &other.bytes, &other.sig), 409, "conflict");
    }
    let minutes = started.elapsed().as_secs() / 60;
    let recs = Records::open(srv.data()).unwrap();
    let all = recs.custody(None).unwrap();
    let conflicts = all.iter().filter(|e| e.event == "conflict").count() as u64;
    // One per kind of refusal per minute (two kinds here), whatever the number of refusals.
    assert!(conflicts >= 2 && conflicts <= 2 * (1 + minutes), "{conflicts} conflict events for 200 refusals in {minutes} min");
    assert_eq!(all.len() - events_before, conflicts as usize, "nothing else was recorded");
    fieldcap_evidence::custody::verify_chain(&all, &srv.server_key()).unwrap();
    srv.still_serving();
}
