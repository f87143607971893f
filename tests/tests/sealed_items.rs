//! Sealed (encrypted) items on the server (issue 14): `GET /v1/escrow-key` signed by the server
//! key, `POST /v1/manifests/sealed`, the media's age ciphertext over tus (resumed), decrypted and
//! checked on the last byte, the plaintext stored as the original; tampered ciphertext refused and
//! the upload reset; wraps to another key refused; rotation keeps old wraps opening; the escrow
//! key file 0600 and its secret in no log line.

#![allow(clippy::unwrap_used)]

use fieldcap_evidence::escrow::{ItemKey, Recipient, VaultIdentity};
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::protocol::{self, CommitmentResponse, EscrowKeyStatement, Receipt, SealedManifestSubmission, SignedDoc};
use fieldcap_server::records::Records;
use fieldcap_testkit::api::*;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::files::files_under;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

/// `GET /v1/escrow-key`, its signature checked with the server key; the recipient.
fn escrow_recipient(url: &str, client: &reqwest::blocking::Client, server_key_pem: &str, key_id: &str) -> Recipient {
    let r = client.get(format!("{url}{}", protocol::ESCROW_KEY_PATH)).send().unwrap();
    assert_eq!(r.status(), 200);
    let doc: SignedDoc = r.json().unwrap();
    let (body, sig) = doc.decode().unwrap();
    fieldcap_evidence::identity::verify_with_pem(server_key_pem, &body, &sig).unwrap();
    let st: EscrowKeyStatement = serde_json::from_slice(&body).unwrap();
    assert_eq!(st.doc_type, protocol::types::ESCROW_KEY);
    assert_eq!(st.server_key_id, key_id);
    assert!(st.since.ends_with('Z'));
    // Canonical JSON: the exact bytes are the canonical form of the statement.
    assert_eq!(fieldcap_evidence::canonical::to_vec_of(&st).unwrap(), body);
    Recipient::parse(&st.recipient).unwrap()
}

fn escrow_of(srv: &TestServer) -> Recipient {
    let t = srv.time();
    escrow_recipient(&srv.url(), &srv.client, &t.server_key_pem, &t.server_key_id)
}

/// An item sealed encrypted: the signed plaintext manifest, its item key, the media's age file
/// and the submission body.
struct Sealed {
    m: SignedManifest,
    media_age: Vec<u8>,
    sub: SealedManifestSubmission,
}

fn media_age(key: &ItemKey, data: &[u8]) -> Vec<u8> {
    let mut w = key.media_writer(Vec::new()).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn seal(m: SignedManifest, data: Option<&[u8]>, escrow: &Recipient) -> Sealed {
    let key = ItemKey::generate();
    let media_age = data.map(|d| media_age(&key, d)).unwrap_or_default();
    let sub = SealedManifestSubmission {
        manifest_age: protocol::b64(&key.encrypt(&m.bytes).unwrap()),
        sig: protocol::b64(&m.sig),
        key_wrap: protocol::b64(&key.wrap_to(escrow).unwrap()),
        media_age_bytes: data.map(|_| media_age.len() as u64),
    };
    Sealed { m, media_age, sub }
}

fn submit_sealed(srv: &TestServer, dev: &DeviceKey, sub: &SealedManifestSubmission) -> reqwest::blocking::Response {
    srv.signed(dev, "POST", protocol::SEALED_MANIFESTS_PATH, &serde_json::to_vec(sub).unwrap())
}

fn commit_sealed(srv: &TestServer, dev: &DeviceKey, s: &Sealed) -> CommitmentResponse {
    let r = submit_sealed(srv, dev, &s.sub);
    assert!(r.status() == 201 || r.status() == 200, "{:?}", r.text());
    r.json().unwrap()
}

fn receipt_of(srv: &TestServer, dev: &DeviceKey, clip_id: &str) -> Receipt {
    let rr = srv.signed(dev, "GET", &format!("/v1/receipts/{clip_id}"), b"");
    assert_eq!(rr.status(), 200);
    let doc: SignedDoc = rr.json().unwrap();
    fieldcap_server::receipts::verify_receipt(&doc, &srv.server_key(), &srv.time().log_origin).unwrap()
}

/// The stored original named `sha256`, from the server's blob store (folder or bucket).
fn original(srv: &TestServer, sha256: &str) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut srv.deployment().open_blob_store().unwrap().open(sha256).unwrap(), &mut out).unwrap();
    out
}

/// True if neither the clip's ciphertext partial nor the plaintext partial the server decrypts
/// into (named by a UUID derived from the clip id) is left.
fn no_partials(srv: &TestServer, clip_id: &str) -> bool {
    let h = fieldcap_evidence::hashing::Digests::of_bytes(format!("fieldcap.sealed-plaintext/{clip_id}").as_bytes()).sha256;
    let plain = uuid::Uuid::from_bytes(h[..16].try_into().unwrap()).hyphenated().to_string();
    !srv.has_partial(clip_id) && !srv.has_partial(&plain)
}

/// Uploads `bytes` whole in one PATCH from offset 0; returns the answer.
fn upload_all(srv: &TestServer, url: &str, bytes: &[u8]) -> reqwest::blocking::Response {
    srv.patch(url, 0, bytes)
}

#[test]
fn a_sealed_item_uploads_in_resumed_patches_and_its_plaintext_is_the_original_that_verifies_in_a_package() {
    // On the scaled stores (PostgreSQL + S3) too when FIELDCAP_TEST_SCALED is set.
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let escrow = escrow_of(&srv);

    // A sealed observation first: receipted at once.
    let obs = seal(manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![(33.74, -118.27)]), None, &escrow);
    let c0 = commit_sealed(&srv, &dev, &obs);
    assert!(c0.receipt.is_some() && c0.upload_url.is_none());

    let data = seeded(300_000, 41);
    let s = seal(manifest(&dev, 2, Some(&obs.m.bytes), Some(&data), "2025-06-07T18:02:00.000Z", vec![(33.7401, -118.2701)]), Some(&data), &escrow);
    let r = submit_sealed(&srv, &dev, &s.sub);
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let c: CommitmentResponse = r.json().unwrap();
    let url = c.upload_url.clone().unwrap();
    let n = s.media_age.len();
    let head = srv.tus("HEAD", &url).send().unwrap();
    assert_eq!(head.headers()["upload-length"].to_str().unwrap(), n.to_string());
    assert_eq!(srv.patch(&url, 0, &s.media_age[..100_000]).status(), 204);
    // A resume: HEAD for the offset, then the rest in two more PATCHes.
    let at = srv.head_offset(&url);
    assert_eq!(at, 100_000);
    assert_eq!(srv.patch(&url, at, &s.media_age[100_000..200_000]).status(), 204);
    let at = srv.head_offset(&url);
    let last = srv.patch(&url, at, &s.media_age[at as usize..]);
    assert_eq!(last.status(), 204);
    assert_eq!(last.headers()["fieldcap-receipt"].to_str().unwrap(), format!("/v1/receipts/{}", s.m.manifest.clip_id));

    // The receipt names the plaintext's digests; the stored original is the plaintext, unchanged.
    let receipt = receipt_of(&srv, &dev, &s.m.manifest.clip_id);
    let dg = fieldcap_evidence::hashing::Digests::of_bytes(&data);
    let md = receipt.media.clone().unwrap();
    assert_eq!((md.bytes, md.sha256.as_str(), md.blake3.as_str()), (dg.bytes, dg.sha256_hex().as_str(), dg.blake3_hex().as_str()));
    let recs = Records::open(srv.deployment()).unwrap();
    let item = recs.item(&s.m.manifest.clip_id).unwrap().unwrap();
    assert_eq!(item.manifest, s.m.bytes);
    assert_eq!(original(&srv, &dg.sha256_hex()), data);
    let sealed = item.sealed.clone().unwrap();
    assert_eq!(sealed.key_wrap, protocol::unb64(&s.sub.key_wrap, "key_wrap").unwrap());
    assert_eq!(sealed.media_age_bytes, Some(n as u64));
    // No partial (ciphertext or plaintext) is left behind.
    assert!(no_partials(&srv, &s.m.manifest.clip_id));
    // Custody says the upload was sealed; the chain verifies.
    let events = recs.custody(Some(&s.m.manifest.clip_id)).unwrap();
    fieldcap_evidence::custody::verify_chain(&recs.custody(None).unwrap(), &srv.server_key()).unwrap();
    for name in ["received", "verified", "stored"] {
        let e = events.iter().find(|e| e.event == name).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["detail"]["sealed"], serde_json::json!(true), "{v}");
    }

    // The same sealed submission again: the same commitment, now with the receipt.
    let again = commit_sealed(&srv, &dev, &s);
    assert_eq!(again.commitment, c.commitment);
    assert!(again.receipt.is_some());
    // The same manifest in plaintext: the same commitment; the item stays as first submitted.
    let plain = commit(&srv, &dev, &s.m);
    assert_eq!(plain.commitment, c.commitment);
    assert!(recs.item(&s.m.manifest.clip_id).unwrap().unwrap().sealed.is_some());

    // A package of both verifies.
    let work = tempfile::tempdir().unwrap();
    let clips = vec![obs.m.manifest.clip_id.clone(), s.m.manifest.clip_id.clone()];
    let pkg = fieldcap_server::package::export(srv.deployment(), &fieldcap_testkit::package::request(&clips, work.path().join("pkg"), fieldcap_server::package::Profile::Full)).unwrap();
    let report = fieldcap_package::package::verify_package(&pkg.path);
    assert!(report.all_ok(), "{:?}", report.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
}

#[test]
fn a_plaintext_clip_submitted_again_sealed_keeps_its_plaintext_upload() {
    let srv = TestServer::start_embedded();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let escrow = escrow_of(&srv);
    let data = seeded(70_000, 5);
    let s = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &escrow);
    let c = commit(&srv, &dev, &s.m);
    let c2 = commit_sealed(&srv, &dev, &s);
    assert_eq!(c2.commitment, c.commitment);
    assert_eq!(c2.upload_url, c.upload_url);
    let url = c.upload_url.unwrap();
    let head = srv.tus("HEAD", &url).send().unwrap();
    assert_eq!(head.headers()["upload-length"].to_str().unwrap(), "70000");
    assert_eq!(upload_all(&srv, &url, &data).status(), 204);
    assert!(Records::open(srv.data()).unwrap().item(&s.m.manifest.clip_id).unwrap().unwrap().sealed.is_none());
}

#[test]
fn a_flipped_ciphertext_byte_is_refused_nothing_stored_and_a_correct_upload_then_succeeds() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let escrow = escrow_of(&srv);
    let data = seeded(200_000, 9);
    let s = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &escrow);
    let c = commit_sealed(&srv, &dev, &s);
    let url = c.upload_url.unwrap();
    let mut bad = s.media_age.clone();
    let i = bad.len() - 1000;
    bad[i] ^= 0x01;
    let p = problem(upload_all(&srv, &url, &bad), 422, "digest-mismatch");
    assert!(p.detail.unwrap_or_default().contains("does not decrypt"));
    // Nothing stored, no partial kept, the upload reset to 0, the refusal in custody.
    assert!(!srv.stored_digests().contains(&fieldcap_evidence::hashing::Digests::of_bytes(&data).sha256_hex()));
    assert!(no_partials(&srv, &s.m.manifest.clip_id));
    assert_eq!(srv.head_offset(&url), 0);
    let recs = Records::open(srv.deployment()).unwrap();
    let item = recs.item(&s.m.manifest.clip_id).unwrap().unwrap();
    assert_eq!((item.state.as_str(), item.refusals), ("committed", 1));
    assert!(recs.custody(Some(&s.m.manifest.clip_id)).unwrap().iter().any(|e| e.event == "refused"));
    // A truncated-and-padded file (right length, last chunk cut) is refused the same way.
    let mut cut = s.media_age.clone();
    let l = cut.len();
    for b in &mut cut[l - 20..] {
        *b = 0;
    }
    problem(upload_all(&srv, &url, &cut), 422, "digest-mismatch");
    // The correct bytes then go through.
    let r = upload_all(&srv, &url, &s.media_age);
    assert_eq!(r.status(), 204);
    let receipt = receipt_of(&srv, &dev, &s.m.manifest.clip_id);
    assert_eq!(receipt.media.unwrap().sha256, fieldcap_evidence::hashing::Digests::of_bytes(&data).sha256_hex());
    assert_eq!(original(&srv, &fieldcap_evidence::hashing::Digests::of_bytes(&data).sha256_hex()), data);
    assert!(no_partials(&srv, &s.m.manifest.clip_id));
}

#[test]
fn wraps_to_another_key_and_bad_sealed_submissions_are_refused() {
    let srv = TestServer::start_embedded();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let escrow = escrow_of(&srv);
    let data = seeded(10_000, 2);
    // Wrapped to another escrow key: sealed-item-undecryptable, nothing on record.
    let other = VaultIdentity::generate();
    let s = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &other.recipient());
    problem(submit_sealed(&srv, &dev, &s.sub), 422, "sealed-item-undecryptable");
    assert!(Records::open(srv.data()).unwrap().item(&s.m.manifest.clip_id).unwrap().is_none());
    // The right wrap, but the manifest encrypted to another item key.
    let mut s2 = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &escrow);
    s2.sub.manifest_age = protocol::b64(&ItemKey::generate().encrypt(&s2.m.bytes).unwrap());
    problem(submit_sealed(&srv, &dev, &s2.sub), 422, "sealed-item-undecryptable");
    // Garbage for a wrap.
    let mut s3 = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &escrow);
    s3.sub.key_wrap = protocol::b64(b"not an age file");
    problem(submit_sealed(&srv, &dev, &s3.sub), 422, "sealed-item-undecryptable");
    // Media without media_age_bytes, and media_age_bytes without media: invalid-manifest.
    let mut s4 = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &escrow);
    s4.sub.media_age_bytes = None;
    problem(submit_sealed(&srv, &dev, &s4.sub), 422, "invalid-manifest");
    let mut s5 = seal(manifest(&dev, 1, None, None, "2025-06-07T18:02:00.000Z", vec![]), None, &escrow);
    s5.sub.media_age_bytes = Some(1000);
    problem(submit_sealed(&srv, &dev, &s5.sub), 422, "invalid-manifest");
    // An unknown field in the submission: refused, strictly parsed.
    let mut v = serde_json::to_value(&s4.sub).unwrap();
    v["extra"] = serde_json::json!(1);
    let r = srv.signed(&dev, "POST", protocol::SEALED_MANIFESTS_PATH, &serde_json::to_vec(&v).unwrap());
    assert_eq!(r.status(), 400, "{:?}", r.text());
    // A signature that does not cover the plaintext manifest.
    let mut s6 = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &escrow);
    s6.sub.sig = protocol::b64(&dev.sign(b"something else"));
    let r = submit_sealed(&srv, &dev, &s6.sub);
    assert_eq!(r.status(), 422, "{:?}", r.text());
}

#[test]
fn upload_length_must_be_the_age_files_length() {
    let srv = TestServer::start_embedded();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let escrow = escrow_of(&srv);
    let data = seeded(50_000, 3);
    let s = seal(manifest(&dev, 1, None, Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), &escrow);
    let url = commit_sealed(&srv, &dev, &s).upload_url.unwrap();
    // tus creation with the plaintext's length: refused.
    let r = srv.tus("POST", &url).header("upload-length", data.len().to_string()).send().unwrap();
    problem(r, 400, "upload-length");
    // With the age file's length: created, and creation-with-upload completes it.
    let r = srv
        .tus("POST", &url)
        .header("upload-length", s.media_age.len().to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(s.media_age.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().contains_key("fieldcap-receipt"));
    // A body past the age file's length is refused too (PATCH on a fresh item).
    let s2 = seal(manifest(&dev, 2, Some(&s.m.bytes), Some(&data), "2025-06-07T18:04:00.000Z", vec![]), Some(&data), &escrow);
    let url2 = commit_sealed(&srv, &dev, &s2).upload_url.unwrap();
    let mut long = s2.media_age.clone();
    long.push(0);
    assert_eq!(upload_all(&srv, &url2, &long).status(), 400);
}

#[test]
fn rotation_keeps_old_wraps_opening_and_no_secret_reaches_the_log() {
    let cli = Cli::built();
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let log_path = work.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let log2 = log.try_clone().unwrap();
    let mut child = cli
        .command()
        .env("FIELDCAP_LOG", "debug")
        .args(["serve", "--data"])
        .arg(&data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(log2)
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    let (out_tx, out_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        let _ = out_tx.send(rest);
    });
    let url = format!("http://{}", first.trim().strip_prefix("listening on http://").unwrap());
    let client = fieldcap_testkit::server::http_client();
    let t: protocol::TimeResponse = client.get(format!("{url}/v1/time")).send().unwrap().json().unwrap();
    let old = escrow_recipient(&url, &client, &t.server_key_pem, &t.server_key_id);

    // The key file is 0600 in a 0700 folder; `escrow show` prints the recipient the server states.
    let escrow_dir = data_dir.join("escrow");
    assert_eq!(std::fs::metadata(escrow_dir.join("current.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&escrow_dir).unwrap().permissions().mode() & 0o777, 0o700);
    let shown = cli.run(&["escrow", "show", "--data", data_dir.to_str().unwrap()]);
    assert!(shown.status.success());
    assert_eq!(String::from_utf8(shown.stdout).unwrap().trim(), old.to_string());
    let old_secret = std::fs::read_to_string(escrow_dir.join("current.key")).unwrap();

    // Rotation while the server runs: a new recipient, signed; the old key retired, kept.
    let rot = cli.run(&["escrow", "rotate", "--data", data_dir.to_str().unwrap()]);
    assert!(rot.status.success(), "{}", String::from_utf8_lossy(&rot.stderr));
    let rot_out = String::from_utf8(rot.stdout).unwrap();
    assert!(!rot_out.contains("AGE-SECRET-KEY"));
    let new = escrow_recipient(&url, &client, &t.server_key_pem, &t.server_key_id);
    assert_ne!(new, old);
    assert_eq!(rot_out.lines().last().unwrap().trim(), new.to_string());
    let retired = files_under(&escrow_dir.join("retired"));
    assert_eq!(retired.len(), 1);
    assert_eq!(std::fs::read_to_string(escrow_dir.join("retired").join(&retired[0])).unwrap(), old_secret);
    let new_secret = std::fs::read_to_string(escrow_dir.join("current.key")).unwrap();

    // Items wrapped to the old recipient and to the new one both go through.
    let token = cli.token(&data_dir, "monitor");
    let dev = DeviceKey::generate();
    let body = serde_json::to_vec(&protocol::EnrollRequest { token, public_key_pem: dev.public_pem(), org: None }).unwrap();
    assert!(client.post(format!("{url}/v1/enroll")).header("content-type", "application/json").body(body).send().unwrap().status().is_success());
    let signed = |method: &str, path: &str, body: &[u8]| {
        let ts = chrono::Utc::now().timestamp_millis();
        let mut rb = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{url}{path}")).body(body.to_vec());
        for (k, v) in protocol::sign_request(&dev, method, path, ts, body) {
            rb = rb.header(k, v);
        }
        rb.header("content-type", "application/json").send().unwrap()
    };
    let mut prev: Option<Vec<u8>> = None;
    for (seq, to) in [(1u64, &old), (2, &new)] {
        let data = seeded(80_000, seq);
        let s = seal(manifest(&dev, seq, prev.as_deref(), Some(&data), "2025-06-07T18:02:00.000Z", vec![]), Some(&data), to);
        let r = signed("POST", protocol::SEALED_MANIFESTS_PATH, &serde_json::to_vec(&s.sub).unwrap());
        assert_eq!(r.status(), 201, "{:?}", r.text());
        let c: CommitmentResponse = r.json().unwrap();
        let r = client
            .patch(format!("{url}{}", c.upload_url.unwrap()))
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("content-type", "application/offset+octet-stream")
            .body(s.media_age.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 204);
        assert!(r.headers().contains_key("fieldcap-receipt"));
        prev = Some(s.m.bytes.clone());
    }
    let _ = child.kill();
    let _ = child.wait();
    let stdout = out_rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or_default();
    let log_text = std::fs::read_to_string(&log_path).unwrap() + &stdout;
    // The log was captured (the server logs the recipient, public, when it creates the key)…
    assert!(log_text.contains(&old.to_string()), "no server log captured");
    // … and holds no secret.
    for secret in [&old_secret, &new_secret] {
        let line = secret.lines().find(|l| l.starts_with("AGE-SECRET-KEY-1")).unwrap();
        assert!(!log_text.contains(line), "an escrow secret appears in the server's output");
        // Nor in its lowercase form (Bech32 is case-insensitive).
        assert!(!log_text.to_lowercase().contains(&line.to_lowercase()));
    }
    assert!(!log_text.contains("AGE-SECRET-KEY"));
}

#[test]
fn the_escrow_keys_are_backed_up_and_restored_like_the_server_key() {
    let srv = TestServer::start_embedded();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let old = escrow_of(&srv);
    let obs = seal(manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]), None, &old);
    assert!(commit_sealed(&srv, &dev, &obs).receipt.is_some());
    let new = fieldcap_server::escrow::rotate(&srv.data()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    fieldcap_server::store::backup::backup(&fieldcap_server::store::Deployment::from(srv.data()), &backup, &mut |_| {}).unwrap();
    // In the backup, listed in SHA256SUMS, as secret as server.key.
    let key = backup.join("escrow").join("current.key");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(files_under(&backup.join("escrow").join("retired")).len(), 1);
    let sums = std::fs::read_to_string(backup.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("escrow/current.key") && sums.contains("escrow/retired/"), "{sums}");
    // Restored: the same current and retired keys; the sealed item's wrap still opens.
    let restored = work.path().join("restored");
    fieldcap_server::store::backup::restore(&backup, &fieldcap_server::store::Deployment::from(restored.clone()), &mut |_| {}).unwrap();
    let keys = fieldcap_server::escrow::load(&restored).unwrap();
    assert_eq!(keys.current.recipient(), new);
    assert_eq!(fieldcap_server::escrow::show(&restored).unwrap(), new);
    let wrap = protocol::unb64(&obs.sub.key_wrap, "key_wrap").unwrap();
    assert!(ItemKey::unwrap_with(&wrap, &keys.identities()).is_ok());
    assert_eq!(std::fs::read(restored.join("escrow").join("current.key")).unwrap(), std::fs::read(srv.data().join("escrow").join("current.key")).unwrap());
    assert_eq!(std::fs::metadata(restored.join("escrow")).unwrap().permissions().mode() & 0o777, 0o700);
}
