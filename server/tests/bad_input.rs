//! Bad input to the server: each refusal is a problem+json 4xx, the server keeps serving, nothing
//! is half-written and nothing lands outside the data directory.
#![allow(clippy::unwrap_used)]

use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::protocol::{self, ManifestSubmission};
use fieldcap_server::records::Records;
use fieldcap_testkit::api::*;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::files::files_under;
use fieldcap_testkit::server::TestServer;

fn submission(bytes: &[u8], sig: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&ManifestSubmission { manifest: protocol::b64(bytes), sig: protocol::b64(sig) }).unwrap()
}

#[test]
fn manifests_and_signed_requests() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let good = manifest(&dev, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]);

    // Malformed JSON, missing fields, bad base64.
    problem(srv.signed(&dev, "POST", "/v1/manifests", b"{not json"), 400, "malformed-request");
    problem(srv.signed(&dev, "POST", "/v1/manifests", br#"{"manifest":"AA=="}"#), 400, "malformed-request");
    problem(srv.signed(&dev, "POST", "/v1/manifests", br#"{"manifest":"@@@","sig":"AA=="}"#), 400, "malformed-request");
    // Oversized body (refused before parsing) and oversized manifest.
    let huge = vec![b'a'; fieldcap_server::MAX_SUBMISSION_BODY + 10];
    problem(srv.signed(&dev, "POST", "/v1/manifests", &huge), 413, "too-large");
    let big_manifest = vec![b' '; fieldcap_server::MAX_MANIFEST_BYTES + 1];
    problem(srv.signed(&dev, "POST", "/v1/manifests", &submission(&big_manifest, &[0; 64])), 413, "too-large");
    // Not a manifest; non-canonical manifest (whitespace, reordered keys).
    problem(srv.signed(&dev, "POST", "/v1/manifests", &submission(b"{}", &[0; 64])), 422, "invalid-manifest");
    let mut v: serde_json::Value = serde_json::from_slice(&good.bytes).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    let sig = dev.sign(&pretty);
    problem(srv.signed(&dev, "POST", "/v1/manifests", &submission(&pretty, &sig)), 422, "invalid-manifest");
    v["seq"] = serde_json::json!(0);
    let zero = fieldcap_evidence::canonical::to_vec(&v);
    problem(srv.signed(&dev, "POST", "/v1/manifests", &submission(&zero, &dev.sign(&zero))), 422, "invalid-manifest");
    // Forged manifest signatures: another key, a flipped bit, a short signature.
    let other = DeviceKey::generate();
    problem(srv.submit(&dev, &good.bytes, &other.sign(&good.bytes)), 422, "bad-signature");
    let mut flipped = good.sig.clone();
    flipped[10] ^= 1;
    problem(srv.submit(&dev, &good.bytes, &flipped), 422, "bad-signature");
    problem(srv.submit(&dev, &good.bytes, &good.sig[..63]), 422, "bad-signature");
    // A manifest of another device, sent by an enrolled one.
    let foreign = manifest(&other, 1, None, None, "2025-06-07T18:00:00.000Z", vec![]);
    problem(srv.submit(&dev, &foreign.bytes, &foreign.sig), 403, "device-mismatch");
    // Unenrolled device: the same answer as a bad signature (issue 12: nobody learns without a
    // key which device ids are enrolled).
    problem(srv.submit(&other, &foreign.bytes, &foreign.sig), 401, "unauthenticated");
    // Request signed by the wrong key for the named device.
    let body = submission(&good.bytes, &good.sig);
    let mut h = protocol::sign_request(&other, "POST", "/v1/manifests", chrono::Utc::now().timestamp_millis(), &body);
    h[0].1 = dev.device_id().to_string();
    problem(srv.send_with("POST", "/v1/manifests", &body, &h), 401, "unauthenticated");
    // Signature bound to the path and body: same headers, other body.
    let h = protocol::sign_request(&dev, "POST", "/v1/manifests", chrono::Utc::now().timestamp_millis(), &body);
    problem(srv.send_with("POST", "/v1/manifests", b"{}", &h), 401, "unauthenticated");
    // Missing headers.
    problem(srv.send_with("POST", "/v1/manifests", &body, &[]), 401, "unauthenticated");
    // Stale timestamp.
    let old = chrono::Utc::now().timestamp_millis() - protocol::MAX_SKEW_MS - 60_000;
    problem(srv.signed_at(&dev, "POST", "/v1/manifests", &body, old), 401, "stale-request");
    // Replay: the very same signed request twice.
    let h = protocol::sign_request(&dev, "POST", "/v1/manifests", chrono::Utc::now().timestamp_millis(), &body);
    assert_eq!(srv.send_with("POST", "/v1/manifests", &body, &h).status(), 201);
    problem(srv.send_with("POST", "/v1/manifests", &body, &h), 401, "replayed-request");

    // Only the good manifest is on record; the chain of custody still verifies.
    let recs = Records::open(srv.data()).unwrap();
    let items = recs.items().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].manifest, good.bytes);
    fieldcap_evidence::custody::verify_chain(&recs.custody(None).unwrap(), &srv.server_key()).unwrap();

    // Revoked devices can submit nothing.
    assert!(fieldcap_server::revoke_device(srv.data(), dev.device_id(), "phone reported lost").unwrap());
    let next = manifest(&dev, 2, Some(&good.bytes), None, "2025-06-07T18:01:00.000Z", vec![]);
    problem(srv.submit(&dev, &next.bytes, &next.sig), 403, "device-revoked");
    problem(srv.signed(&dev, "GET", &format!("/v1/receipts/{}", good.manifest.clip_id), b""), 403, "device-revoked");
    srv.still_serving();
}

#[test]
fn uploads_refuse_bad_lengths_offsets_types_and_digests() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let data = seeded(10_000, 1);
    let vid = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:00:00.000Z", vec![]);
    let url = commit(&srv, &dev, &vid).upload_url.unwrap();

    // tus protocol errors.
    let r = srv.client.request(reqwest::Method::HEAD, format!("{}{}", srv.url(), url)).send().unwrap();
    assert_eq!(r.status(), 412, "no Tus-Resumable");
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    problem(
        srv.client.patch(format!("{}{}", srv.url(), url)).header("tus-resumable", "0.2.2").body("x").send().unwrap(),
        412,
        "tus-version",
    );
    problem(
        srv.tus("PATCH", &url).header("upload-offset", "0").header("content-type", "application/json").body("x").send().unwrap(),
        415,
        "unsupported-media-type",
    );
    problem(srv.tus("PATCH", &url).header("content-type", "application/offset+octet-stream").body("x").send().unwrap(), 400, "malformed-request");
    problem(srv.patch(&url, 5, b"abc"), 409, "offset-mismatch");
    let r = srv.patch(&url, 0, &vec![0u8; 10_001]);
    problem(r, 400, "upload-length");
    problem(srv.tus("POST", &url).header("upload-length", "10001").send().unwrap(), 400, "upload-length");
    problem(srv.tus("POST", &url).send().unwrap(), 400, "upload-length");
    problem(srv.tus("POST", &url).header("upload-length", "10000").header("upload-defer-length", "1").send().unwrap(), 400, "upload-length");
    assert_eq!(srv.head_offset(&url), 0);

    // Right length, wrong bytes: refused, manifest kept, partial discarded, upload reset.
    let mut wrong = data.clone();
    wrong[9_999] ^= 0xff;
    assert_eq!(srv.patch(&url, 0, &wrong[..4_000]).status(), 204);
    let p = problem(srv.patch(&url, 4_000, &wrong[4_000..]), 422, "digest-mismatch");
    assert!(p.detail.unwrap().contains("SHA-256 differs"));
    assert_eq!(srv.head_offset(&url), 0);
    problem(srv.signed(&dev, "GET", &format!("/v1/receipts/{}", vid.manifest.clip_id), b""), 404, "no-receipt-yet");
    let recs = Records::open(srv.data()).unwrap();
    let item = recs.item(&vid.manifest.clip_id).unwrap().unwrap();
    assert_eq!(item.manifest, vid.bytes);
    assert_eq!(item.state, "committed");
    assert_eq!(item.refusals, 1);
    assert!(recs.custody(Some(&vid.manifest.clip_id)).unwrap().iter().any(|e| e.event == "refused"));
    assert!(files_under(&srv.data().join("uploads")).is_empty());
    assert!(files_under(&srv.data().join("blobs")).is_empty(), "no blob from refused bytes");

    // The right bytes afterwards are accepted.
    assert_eq!(srv.patch(&url, 0, &data).status(), 204);
    assert_eq!(srv.signed(&dev, "GET", &format!("/v1/receipts/{}", vid.manifest.clip_id), b"").status(), 200);
    srv.still_serving();
}

#[test]
fn path_tricks_and_oversized_headers() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let before_parent = files_under(srv.dir());

    for path in [
        "/v1/receipts/..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/receipts/00000000-0000-0000-0000-000000000000",
        "/v1/receipts/0000000000000000000000000000000G",
        "/v1/receipts/01970A6E-0000-7000-8000-000000000000",
    ] {
        problem(srv.signed(&dev, "GET", path, b""), 404, "not-found");
    }
    for cap in ["..%2F..%2Fserver.key", &"0".repeat(64), &"A".repeat(64), "x"] {
        let r = srv.tus("PATCH", &format!("/v1/uploads/{cap}")).header("upload-offset", "0").header("content-type", "application/offset+octet-stream").body("abc").send().unwrap();
        problem(r, 404, "not-found");
    }
    // Raw requests with dot segments that ordinary clients normalise away.
    for target in ["/v1/uploads/../../../../tmp/x", "/v1/../v1/receipts/../../server.key", "/../../etc/passwd", "//v1/time/..//..//"] {
        let req = format!(
            "PATCH {target} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        );
        let (status, text) = raw(srv.addr(), req.as_bytes());
        assert!((400..500).contains(&status), "{target}: {text}");
        assert!(text.to_ascii_lowercase().contains("application/problem+json"), "{target}: {text}");
    }
    // Unknown routes and methods are problems too.
    problem(srv.client.get(format!("{}/nothing", srv.url())).send().unwrap(), 404, "not-found");
    problem(srv.client.delete(format!("{}/v1/time", srv.url())).send().unwrap(), 405, "method-not-allowed");
    // Oversized header and URI.
    let r = srv.client.get(format!("{}/v1/time", srv.url())).header("x-junk", "a".repeat(fieldcap_server::MAX_HEADER_BYTES + 1)).send().unwrap();
    problem(r, 431, "headers-too-large");
    let r = srv.client.get(format!("{}/v1/time?{}", srv.url(), "a".repeat(fieldcap_server::MAX_URI_BYTES))).send().unwrap();
    problem(r, 414, "uri-too-long");
    // Oversized enrolment body.
    let r = srv.client.post(format!("{}/v1/enroll", srv.url())).body(vec![b'{'; fieldcap_server::MAX_JSON_BODY + 1]).send().unwrap();
    problem(r, 413, "too-large");
    problem(srv.client.post(format!("{}/v1/enroll", srv.url())).body("{}").send().unwrap(), 400, "malformed-request");

    srv.still_serving();
    // Nothing new outside the data directory.
    let after: Vec<String> = files_under(srv.dir()).into_iter().filter(|f| !f.starts_with("data/")).collect();
    let before: Vec<String> = before_parent.into_iter().filter(|f| !f.starts_with("data/")).collect();
    assert_eq!(after, before);
    assert!(!std::path::Path::new("/tmp/x").exists() || std::fs::read("/tmp/x").map(|b| b != b"abc").unwrap_or(true));
}
