//! `POST /v1/custody` over real HTTP on 127.0.0.1: a device's custody log is stored verbatim,
//! re-sending is harmless, and gaps, broken links, foreign or forged events and rewrites are
//! refused without storing anything.
#![allow(clippy::unwrap_used)]

use fieldcap_evidence::custody::{body, CustodyEvent};
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_server::records::Records;
use fieldcap_testkit::api::*;
use fieldcap_testkit::server::TestServer;
use serde_json::json;

/// A device custody log of `n` events, signed by `key` (or by `signer` if given).
fn log(key: &DeviceKey, n: u64) -> Vec<CustodyEvent> {
    let actor = format!("device:{}", key.device_id());
    let mut out: Vec<CustodyEvent> = Vec::new();
    for seq in 1..=n {
        let prev = out.last().map(|e| e.hash());
        let clip = (seq % 2 == 0).then(|| format!("0190a4c2-0000-7000-8000-{seq:012}"));
        let b = body(&actor, seq, "2025-06-07T18:00:00.000Z", if clip.is_some() { "sealed" } else { "clock_offset_measured" }, clip.as_deref(), json!({"n": seq}), prev.as_deref());
        let sig = key.sign(&b).to_vec();
        out.push(CustodyEvent::from_body(b, sig).unwrap());
    }
    out
}

fn submit(srv: &TestServer, key: &DeviceKey, events: &[CustodyEvent]) -> reqwest::blocking::Response {
    let lines: Vec<serde_json::Value> = events.iter().map(|e| serde_json::from_str(&e.to_jsonl()).unwrap()).collect();
    let body = serde_json::to_vec(&json!({ "events": lines })).unwrap();
    srv.signed(key, "POST", "/v1/custody", &body)
}

fn stored(srv: &TestServer, key: &DeviceKey) -> Vec<CustodyEvent> {
    Records::open(srv.data()).unwrap().device_custody(key.device_id()).unwrap()
}

#[test]
fn a_device_custody_log_is_stored_verbatim_and_resending_is_harmless() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let events = log(&dev, 7);
    let r = submit(&srv, &dev, &events[..4]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["stored_through"], 4);
    // The answer was "lost": the same events again plus new ones.
    let r = submit(&srv, &dev, &events[2..]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["stored_through"], 7);
    let got = stored(&srv, &dev);
    assert_eq!(got, events, "bytes and signatures exactly as the device made them");
    fieldcap_evidence::custody::verify_chain(&got, &dev.verifying_key()).unwrap();
    // Only old events: nothing new, same answer.
    let r = submit(&srv, &dev, &events[..2]);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["stored_through"], 7);
    // Each accepted batch is a server custody event.
    let server_events = Records::open(srv.data()).unwrap().custody(None).unwrap();
    let received: Vec<_> = server_events.iter().filter(|e| e.event == "device_custody_received").collect();
    assert_eq!(received.len(), 2);
}

#[test]
fn gaps_broken_links_foreign_forged_and_rewritten_events_are_refused() {
    let srv = TestServer::start();
    let dev = DeviceKey::generate();
    let other = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    srv.enroll(&other, "police");
    let events = log(&dev, 6);
    assert_eq!(submit(&srv, &dev, &events[..3]).status(), 200);

    // A gap: 5 without 4.
    problem(submit(&srv, &dev, &events[4..]), 409, "conflict");
    // A broken link: event 4 whose prev names something else.
    let actor = format!("device:{}", dev.device_id());
    let b = body(&actor, 4, "2025-06-07T18:00:00.000Z", "sealed", None, json!({}), Some(&"0".repeat(64)));
    let sig = dev.sign(&b).to_vec();
    problem(submit(&srv, &dev, &[CustodyEvent::from_body(b, sig).unwrap()]), 409, "conflict");
    // Another device's events sent by this device.
    problem(submit(&srv, &dev, &log(&other, 1)), 400, "malformed-request");
    // Signed by another key.
    let mut forged = events[3].clone();
    forged.sig = other.sign(&forged.body).to_vec();
    problem(submit(&srv, &dev, &[forged]), 422, "bad-signature");
    // A different event 2 (a rewrite of history).
    let b = body(&actor, 2, "2025-06-07T18:00:00.000Z", "sealed", None, json!({"rewritten": true}), Some(&events[0].hash()));
    let sig = dev.sign(&b).to_vec();
    problem(submit(&srv, &dev, &[CustodyEvent::from_body(b, sig).unwrap()]), 409, "conflict");
    // Not JSON; unsigned request.
    problem(srv.signed(&dev, "POST", "/v1/custody", b"{not json"), 400, "malformed-request");
    let unsigned = srv.send_with("POST", "/v1/custody", b"{\"events\":[]}", &[]);
    assert_eq!(unsigned.status(), 401);

    // Nothing of the refused batches was stored; the rewrite was recorded.
    assert_eq!(stored(&srv, &dev), events[..3].to_vec());
    let server_events = Records::open(srv.data()).unwrap().custody(None).unwrap();
    assert!(server_events.iter().any(|e| e.event == "device_custody_conflict"));
    // The honest continuation is still accepted.
    assert_eq!(submit(&srv, &dev, &events[3..]).status(), 200);
    assert_eq!(stored(&srv, &dev), events);
    srv.still_serving();
}
