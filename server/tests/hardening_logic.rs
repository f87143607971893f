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
