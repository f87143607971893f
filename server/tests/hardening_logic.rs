//! Hardening (issue 12): the server's logic under a hostile enrolled device or a racing client —
//! weak keys at enrolment, strict manifests, bounded seq, finished uploads that stay finished,
//! revoked devices' open uploads, bounded refusal records, leftover export folders. Each test
//! failed before its fix.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::protocol::{self, EnrollRequest};
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
    assert!(Records::open(&srv.data()).unwrap().devices().unwrap().is_empty(), "no weak key enrolled");
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
    assert!(Records::open(&srv.data()).unwrap().items().unwrap().is_empty(), "nothing stored");
    // The manifest as the format defines it is accepted.
    commit(&srv, &dev, &good);

    // A device custody event whose detail holds a float: refused, nothing stored.
    let (b1, e1) = device_event(&dev, 1, None, "created", serde_json::json!({}));
    let (_, e2) = device_event(&dev, 2, Some(&b1), "clock_offset_measured", serde_json::json!({"offset_ms": 12, "rtt_s": 0.25}));
    let body = serde_json::to_vec(&serde_json::json!({ "events": [e1.clone(), e2] })).unwrap();
    let p = problem(srv.signed(&dev, "POST", "/v1/custody", &body), 400, "malformed-request");
    assert!(p.detail.as_deref().unwrap_or("").contains("'rtt_s'"), "{p:?}");
    assert!(Records::open(&srv.data()).unwrap().device_custody(dev.device_id()).unwrap().is_empty());
    // The same log with integers only is taken.
    let (_, e2) = device_event(&dev, 2, Some(&b1), "clock_offset_measured", serde_json::json!({"offset_ms": 12, "rtt_ms": 250}));
    let body = serde_json::to_vec(&serde_json::json!({ "events": [e1, e2] })).unwrap();
    assert_eq!(srv.signed(&dev, "POST", "/v1/custody", &body).status(), 200);
    srv.still_serving();
}
