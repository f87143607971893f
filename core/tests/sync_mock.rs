//! `sync_once` against an in-memory protocol server behind the `Transport` trait (no sockets):
//! hash first, chunked tus upload with a cut and resume, 409 handling, transient 503s with
//! Retry-After, permanent refusal → needs_attention, full receipt verification, and a forked
//! log (the server rewrites history) raising an alarm.

#![allow(clippy::unwrap_used)]

use fieldcap_core::identity::DeviceKey;
use fieldcap_core::tlog::{self, Checkpoint, Hash};
use fieldcap_core::protocol::*;
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::sync::*;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::{open_store, Device};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORIGIN: &str = "test.fieldcap/log";

#[derive(Default)]
struct State {
    manifests: HashMap<String, (Vec<u8>, u64, Option<u64>)>, // clip -> (manifest bytes, seq, media bytes)
    uploads: HashMap<String, Vec<u8>>,                         // clip -> bytes so far
    receipts: HashMap<String, SignedDoc>,
    leaves: Vec<Hash>,
    fail_next: u32,          // answer 503 to this many requests
    refuse_manifests: bool,  // answer 422 to manifests
    fork_after: Option<u64>, // rewrite history once the log has this many leaves
    patches: u32,
    skew_ms: i64,            // the server's clock jumps by this much
    times: u32,              // GET /v1/time answered
    stale_answers: u32,      // signed requests refused as stale (outside the 300 s window)
    proxy_401: bool,         // a proxy in front answers manifests 401 with a problem of its own
    consistency_gets: u32,   // GET /v1/log/consistency answered
    patch_sizes: Vec<usize>, // body length of every PATCH, in order
    fail_patch: Vec<u32>,    // answer 503 to these PATCHes (1-based, counting every PATCH)
    cut_patch: Vec<u32>,     // store these PATCHes' bytes, then lose the answer (a cut connection)
}

struct Mock {
    key: DeviceKey,
    st: Mutex<State>,
}

fn resp(status: u16, body: Vec<u8>) -> HttpResponse {
    HttpResponse { status, headers: vec![], body }
}

impl Mock {
    fn new() -> Arc<Mock> {
        Arc::new(Mock { key: DeviceKey::generate(), st: Mutex::new(State::default()) })
    }
    fn sign(&self, v: &serde_json::Value) -> SignedDoc {
        let b = fieldcap_core::canonical::to_vec(v);
        SignedDoc::new(&b, &self.key.sign(&b))
    }
    fn checkpoint(&self, leaves: &[Hash]) -> String {
        tlog::sign_checkpoint(&Checkpoint { origin: ORIGIN.into(), size: leaves.len() as u64, root: tlog::root_of(leaves) }, ORIGIN, &self.key)
    }
    fn complete(&self, st: &mut State, clip: &str) {
        let (m, seq, media) = st.manifests[clip].clone();
        let man = fieldcap_core::manifest::Manifest::parse(&m).expect("manifest");
        let media = media.map(|_| {
            let b = &st.uploads[clip];
            let d = fieldcap_core::hashing::Digests::of_bytes(b);
            ReceiptMedia { bytes: d.bytes, sha256: d.sha256_hex(), blake3: d.blake3_hex() }
        });
        let received_at = fieldcap_core::time::now();
        let msha = fieldcap_core::hashing::sha256_hex(&m);
        let leaf = log_leaf_bytes(clip, &man.device_id, seq, &msha, media.as_ref(), &received_at);
        st.leaves.push(tlog::leaf_hash(&leaf));
        if st.fork_after == Some(st.leaves.len() as u64) {
            // Rewrite history: replace the first leaf.
            st.leaves[0] = tlog::leaf_hash(b"rewritten");
        }
        let index = st.leaves.len() as u64 - 1;
        let proof = tlog::inclusion_proof(&st.leaves, index).expect("proof");
        let r = Receipt {
            doc_type: types::RECEIPT.into(),
            clip_id: clip.into(),
            device_id: man.device_id.clone(),
            seq,
            manifest_sha256: msha,
            media,
            received_at,
            log: ReceiptLog { index, tree_size: index + 1, checkpoint: self.checkpoint(&st.leaves), inclusion: tlog::proof_to_hex(&proof) },
            server_key_id: fieldcap_core::identity::device_id_for(&self.key.verifying_key()),
        };
        let doc = self.sign(&serde_json::to_value(&r).expect("json"));
        st.receipts.insert(clip.into(), doc);
    }
}

impl Transport for Mock {
    fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut st = self.st.lock().expect("lock");
        if st.fail_next > 0 {
            st.fail_next -= 1;
            let mut r = resp(503, br#"{"type":"https://fieldcap.org/problems/unavailable","title":"busy","status":503}"#.to_vec());
            r.headers.push(("Retry-After".into(), "0".into()));
            return Ok(r);
        }
        let path = req.url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_default();
        let server_key_id = fieldcap_core::identity::device_id_for(&self.key.verifying_key());
        match (req.method.as_str(), path.split('?').next().unwrap_or_default()) {
            ("GET", "/v1/time") => Ok(resp(200, {
                st.times += 1;
                serde_json::to_vec(&TimeResponse {
                    server_time: fieldcap_core::time::now(),
                    server_time_ms: chrono::Utc::now().timestamp_millis() - 1500 + st.skew_ms,
                    server_key_pem: self.key.public_pem(),
                    server_key_id,
                    log_origin: ORIGIN.into(),
                })
                .expect("json")
            })),
            ("POST", "/v1/enroll") => {
                let e: EnrollRequest = serde_json::from_slice(&req.body).expect("enroll");
                let vk = fieldcap_core::identity::parse_public_pem(&e.public_key_pem).expect("pem");
                let cert = DeviceCertificate {
                    doc_type: types::DEVICE_CERT.into(),
                    device_id: fieldcap_core::identity::device_id_for(&vk),
                    public_key_pem: e.public_key_pem,
                    role: "monitor".into(),
                    org: None,
                    enrolled_at: fieldcap_core::time::now(),
                    server_key_id,
                };
                Ok(resp(200, serde_json::to_vec(&self.sign(&serde_json::to_value(&cert).expect("json"))).expect("json")))
            }
            ("POST", "/v1/manifests") => {
                // The device signs its requests, with a server-corrected timestamp.
                let ts: i64 = req.headers.iter().find(|h| h.0 == H_TIMESTAMP).expect("signed").1.parse().expect("ts");
                let server_now = chrono::Utc::now().timestamp_millis() - 1500 + st.skew_ms;
                if st.proxy_401 {
                    return Ok(resp(401, br#"{"type":"https://proxy.example/problems/clock-skew","title":"clock skew","status":401}"#.to_vec()));
                }
                if (ts - server_now).abs() > 300_000 {
                    st.stale_answers += 1;
                    return Ok(resp(401, br#"{"type":"https://fieldcap.org/problems/stale-request","title":"Request timestamp outside the allowed window","status":401}"#.to_vec()));
                }
                assert!((ts - server_now).abs() < 1000, "corrected timestamp");
                if st.refuse_manifests {
                    return Ok(resp(422, br#"{"type":"https://fieldcap.org/problems/bad-manifest","title":"manifest schema invalid","status":422}"#.to_vec()));
                }
                let sub: ManifestSubmission = serde_json::from_slice(&req.body).expect("sub");
                let m = unb64(&sub.manifest, "m").expect("b64");
                let man = fieldcap_core::manifest::Manifest::parse(&m).expect("manifest");
                let clip = man.clip_id.clone();
                st.manifests.entry(clip.clone()).or_insert((m.clone(), man.seq, man.media.as_ref().map(|x| x.bytes)));
                let c = Commitment {
                    doc_type: types::COMMITMENT.into(),
                    clip_id: clip.clone(),
                    device_id: man.device_id.clone(),
                    seq: man.seq,
                    manifest_sha256: fieldcap_core::hashing::sha256_hex(&m),
                    committed_at: fieldcap_core::time::now(),
                    server_key_id,
                };
                if man.media.is_none() && !st.receipts.contains_key(&clip) {
                    self.complete(&mut st, &clip);
                }
                let cr = CommitmentResponse {
                    commitment: self.sign(&serde_json::to_value(&c).expect("json")),
                    upload_url: man.media.as_ref().filter(|_| !st.receipts.contains_key(&clip)).map(|_| format!("/v1/uploads/{clip}")),
                    upload_expires: None,
                    receipt: st.receipts.get(&clip).cloned(),
                };
                Ok(resp(201, serde_json::to_vec(&cr).expect("json")))
            }
            (m @ ("HEAD" | "PATCH"), p) if p.starts_with("/v1/uploads/") => {
                let clip = p.trim_start_matches("/v1/uploads/").to_string();
                let Some(total) = st.manifests.get(&clip).and_then(|x| x.2) else { return Ok(resp(404, vec![])) };
                let have = st.uploads.entry(clip.clone()).or_default().len() as u64;
                if m == "HEAD" {
                    return Ok(HttpResponse { status: 200, headers: vec![("Upload-Offset".into(), have.to_string()), ("Upload-Length".into(), total.to_string())], body: vec![] });
                }
                st.patches += 1;
                st.patch_sizes.push(req.body.len());
                if st.fail_patch.contains(&st.patches) {
                    return Ok(resp(503, br#"{"type":"https://fieldcap.org/problems/internal","title":"busy","status":503}"#.to_vec()));
                }
                let off: u64 = req.headers.iter().find(|h| h.0 == "Upload-Offset").expect("offset").1.parse().expect("n");
                if off != have {
                    return Ok(resp(409, br#"{"type":"https://fieldcap.org/problems/offset-mismatch","title":"offset mismatch","status":409}"#.to_vec()));
                }
                st.uploads.get_mut(&clip).expect("upload").extend_from_slice(&req.body);
                let now = have + req.body.len() as u64;
                if st.cut_patch.contains(&st.patches) && now < total {
                    return Err(TransportError::Network("connection reset".into()));
                }
                let mut body = vec![];
                if now == total {
                    self.complete(&mut st, &clip);
                    body = serde_json::to_vec(&st.receipts[&clip]).expect("json");
                }
                Ok(HttpResponse { status: if body.is_empty() { 204 } else { 200 }, headers: vec![("Upload-Offset".into(), now.to_string())], body })
            }
            ("GET", p) if p.starts_with("/v1/receipts/") => match st.receipts.get(p.trim_start_matches("/v1/receipts/")) {
                Some(r) => Ok(resp(200, serde_json::to_vec(r).expect("json"))),
                None => Ok(resp(404, vec![])),
            },
            ("GET", "/v1/log/consistency") => {
                st.consistency_gets += 1;
                let q: HashMap<String, u64> = path
                    .split_once('?')
                    .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0))).collect())
                    .unwrap_or_default();
                let proof = tlog::consistency_proof_from(&st.leaves[..], q["from"], q["to"]).expect("proof");
                Ok(resp(200, serde_json::to_vec(&ProofResponse { proof: tlog::proof_to_hex(&proof) }).expect("json")))
            }
            _ => Ok(resp(404, vec![])),
        }
    }
}

/// Seals `len` seeded bytes as `v{seed}.mp4`; returns the clip id.
fn video(d: &Device, len: usize, seed: u64) -> String {
    d.seal_bytes(&format!("v{seed}.mp4"), &seeded(len, seed), CaptureRequest::default()).clip_id
}

/// Options with every chunk `chunk` bytes (the tests count chunks; adaptive sizes have tests of
/// their own).
fn opts(chunk: usize) -> SyncOptions {
    SyncOptions { chunk_size: chunk, max_chunk_size: chunk, backoff_base: Duration::from_millis(1), backoff_max: Duration::from_millis(5), budget: Duration::from_secs(30), ..Default::default() }
}

#[test]
fn full_pass_with_cut_resume_retries_and_receipts() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let a = video(&d, 100_000, 3);
    let b = video(&d, 5_000, 5);
    s.observe(ObservationRequest { observation: fieldcap_core::manifest::Observation { text: "x".into(), ..Default::default() }, ..Default::default() }).expect("obs");
    assert!(s.sync_once(srv.as_ref(), &opts(1000), &CancelToken::new(), &mut |_| {}).is_err(), "not enrolled");
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    assert!(s.enrollment().expect("e").is_some());
    // Cut after ~30 KB.
    let cancel = CancelToken::new();
    let s1 = s
        .sync_once(srv.as_ref(), &opts(10_000), &cancel, &mut |p| {
            if p.item_bytes_done >= 30_000 {
                cancel.cancel()
            }
        })
        .expect("pass 1");
    assert!(s1.cancelled);
    assert_eq!(s1.manifests_committed, 3);
    assert_eq!(s1.receipts_verified, 1, "the observation's receipt came with its commitment");
    assert_eq!(s.item(&a).expect("a").summary.state, "uploading");
    assert_eq!(s1.clock_offset_ms.map(|o| (o - 1500).abs() < 500), Some(true));
    // Transient 503s with Retry-After: 0, then everything.
    srv.st.lock().expect("l").fail_next = 3;
    let s2 = s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass 2");
    assert_eq!(s2.remaining, 0, "{s2:?}");
    assert_eq!(s2.receipts_verified, 2);
    assert_eq!(s1.bytes_uploaded + s2.bytes_uploaded, 105_000);
    for id in [&a, &b] {
        assert_eq!(s.item(id).expect("item").summary.state, "receipted");
    }
    assert!(s.newest_checkpoint().expect("cp").is_some());
    assert!(s.alarms().expect("alarms").is_empty());
    let events: Vec<String> = s.custody_events(None).expect("c").into_iter().map(|e| e.event).collect();
    for e in ["enrolled", "clock_offset_measured", "manifest_committed", "uploaded", "receipted"] {
        assert!(events.iter().any(|x| x == e), "{e} in custody");
    }
    // Later manifests carry the measured offset.
    let c = video(&d, 10, 7);
    let m = fieldcap_core::manifest::Manifest::parse(&s.item(&c).expect("c").manifest).expect("m");
    assert!(m.capture.clock.offset_ms.is_some());
}

#[test]
fn offset_conflict_is_resolved_with_head() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let a = video(&d, 50_000, 9);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    let cancel = CancelToken::new();
    s.sync_once(srv.as_ref(), &opts(10_000), &cancel, &mut |p| {
        if p.item_bytes_done >= 20_000 {
            cancel.cancel()
        }
    })
    .expect("pass 1");
    // Someone else (another tus client) moved the upload on: our stored offset is stale.
    {
        let mut st = srv.st.lock().expect("l");
        let have = st.uploads[&a].len();
        let data = seeded(50_000, 9);
        st.uploads.get_mut(&a).expect("u").extend_from_slice(&data[have..have + 5_000]);
    }
    let s2 = s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass 2");
    assert_eq!(s2.receipts_verified, 1, "{s2:?}");
    assert_eq!(s.item(&a).expect("a").summary.state, "receipted");
}

#[test]
fn permanent_refusal_needs_attention_with_the_title() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let a = video(&d, 1000, 2);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    srv.st.lock().expect("l").refuse_manifests = true;
    let sum = s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass");
    assert_eq!(sum.needs_attention, 1);
    let it = s.item(&a).expect("a").summary;
    assert_eq!(it.state, "needs_attention");
    assert!(it.last_error.expect("reason").contains("manifest schema invalid"));
}

#[test]
fn a_rewritten_log_raises_an_alarm() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    video(&d, 1000, 2);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass 1");
    srv.st.lock().expect("l").fork_after = Some(3);
    video(&d, 1000, 4);
    video(&d, 1000, 6);
    let sum = s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass 2");
    assert!(sum.alarms >= 1, "{sum:?}");
    assert!(s.alarms().expect("alarms").iter().any(|a| a.1 == "log_inconsistent"));
}

#[test]
fn a_different_server_key_is_an_alarm() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    video(&d, 1000, 2);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    let other = Mock::new();
    assert!(s.sync_once(other.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).is_err());
    assert!(s.alarms().expect("alarms").iter().any(|a| a.1 == "server_key_changed"));
    assert!(s.enroll(other.as_ref(), "http://127.0.0.1:9", "tok").is_err(), "no silent switch");
}

#[test]
fn plain_http_only_to_loopback() {
    assert!(url_allowed("http://127.0.0.1:8080/v1/time").is_ok());
    assert!(url_allowed("http://[::1]:8080/").is_ok());
    assert!(url_allowed("http://localhost/").is_ok());
    assert!(url_allowed("https://intake.example.org/").is_ok());
    assert!(url_allowed("http://intake.example.org/").is_err());
    assert!(url_allowed("http://10.0.0.1/").is_err());
    assert!(url_allowed("ftp://127.0.0.1/").is_err());
}

#[test]
fn concurrent_passes_never_double_upload() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    for i in 0..4 {
        video(&d, 40_000, 11 + i);
    }
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    let s = Arc::new(d.store);
    let sums: Vec<SyncSummary> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (s, srv) = (s.clone(), srv.clone());
                sc.spawn(move || s.sync_once(srv.as_ref(), &opts(4_000), &CancelToken::new(), &mut |_| {}).expect("pass"))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("join")).collect()
    });
    assert_eq!(sums.iter().map(|x| x.bytes_uploaded).sum::<u64>(), 160_000, "{sums:?}");
    assert_eq!(sums.iter().map(|x| x.receipts_verified).sum::<usize>(), 4);
    assert_eq!(srv.st.lock().expect("l").patches, 40, "each chunk sent once");
    // Busy when not waiting.
    let busy = open_store(d.home.path());
    let lock = std::fs::OpenOptions::new().write(true).open(d.home.path().join("sync.lock")).expect("lock");
    lock.lock().expect("hold");
    let o = SyncOptions { wait_for_lock: false, ..opts(4_000) };
    assert!(busy.sync_once(srv.as_ref(), &o, &CancelToken::new(), &mut |_| {}).expect("busy").busy);
}

#[test]
fn a_stale_request_measures_the_clock_again_and_is_sent_once_more() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let a = video(&d, 3_000, 3);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    let measured = |s: &fieldcap_core::Store| s.custody_events(None).expect("c").iter().filter(|e| e.event == "clock_offset_measured").count();
    let before = measured(s);
    // The server's clock jumps ten minutes after the pass measured it: the device's corrected
    // timestamps fall outside the server's window.
    let sum = s
        .sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |p| {
            if p.phase == SyncPhase::Manifests {
                srv.st.lock().expect("l").skew_ms = 600_000;
            }
        })
        .expect("pass");
    let st = srv.st.lock().expect("l");
    assert_eq!((st.stale_answers, st.times), (1, 3), "refused once; measured at enrolment, at the pass's start, and again");
    drop(st);
    assert_eq!((sum.manifests_committed, sum.receipts_verified, sum.remaining), (1, 1, 0), "{sum:?}");
    assert_eq!(measured(s), before + 2, "both measurements of the pass are in custody");
    assert_eq!(s.item(&a).expect("a").summary.state, "receipted");
}

#[test]
fn a_401_that_is_not_ours_does_not_touch_the_clock() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let a = video(&d, 1_000, 3);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    srv.st.lock().expect("l").proxy_401 = true;
    let sum = s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass");
    // A proxy's problem that mentions the clock is not the server's stale-request: no second
    // measurement, no second try; the refusal is shown on the item.
    assert_eq!(srv.st.lock().expect("l").times, 2, "measured at enrolment and at the pass's start only");
    assert_eq!(sum.needs_attention, 1, "{sum:?}");
    assert!(s.item(&a).expect("a").summary.last_error.expect("reason").contains("clock skew"));
}

#[test]
fn a_cancel_while_a_receipt_is_verified_stops_the_pass_there() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    video(&d, 1_000, 2);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass 1");
    assert!(s.newest_checkpoint().expect("cp").is_some(), "a checkpoint is held: the next receipt needs a consistency proof");
    let b = video(&d, 1_000, 4);
    // Cancel as the receipt that came with the final PATCH is being verified.
    let cancel = CancelToken::new();
    let mut after_cancel = Vec::new();
    let sum = s
        .sync_once(srv.as_ref(), &opts(10_000), &cancel, &mut |p| {
            if cancel.is_cancelled() {
                after_cancel.push(p.phase);
            } else if p.phase == SyncPhase::Receipt {
                cancel.cancel();
            }
        })
        .expect("pass 2");
    assert!(sum.cancelled, "{sum:?}");
    assert_eq!(after_cancel, vec![SyncPhase::Done], "nothing more was attempted");
    assert_eq!(srv.st.lock().expect("l").consistency_gets, 0);
    assert_eq!(s.item(&b).expect("b").summary.state, "uploaded", "on the server; the receipt is fetched next time");
    let sum = s.sync_once(srv.as_ref(), &opts(10_000), &CancelToken::new(), &mut |_| {}).expect("pass 3");
    assert_eq!((sum.receipts_verified, sum.remaining, sum.alarms), (1, 0, 0), "{sum:?}");
}

#[test]
fn chunks_double_while_fast_up_to_the_cap_and_halve_after_a_failure() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let len = 250_000;
    let a = video(&d, len, 3);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    // The 6th PATCH is answered 503 once (then retried): the chunk after it is half the size.
    srv.st.lock().expect("l").fail_patch = vec![6];
    let o = SyncOptions { max_chunk_size: 32_000, ..opts(2_000) };
    let sum = s.sync_once(srv.as_ref(), &o, &CancelToken::new(), &mut |_| {}).expect("pass");
    assert_eq!((sum.receipts_verified, sum.bytes_uploaded), (1, len as u64), "{sum:?}");
    let sizes = srv.st.lock().expect("l").patch_sizes.clone();
    // 2k, 4k, 8k, 16k, 32k (cap), then the 503 and its retry of the same 32k chunk, then half.
    assert_eq!(&sizes[..8], &[2_000, 4_000, 8_000, 16_000, 32_000, 32_000, 32_000, 16_000], "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= 32_000), "never above the cap: {sizes:?}");
    assert_eq!(sizes[8], 32_000, "and it grows again: {sizes:?}");
    assert_eq!(s.item(&a).expect("a").summary.state, "receipted");
}

/// Pass 1 stops after ~200 KB; the server then loses its last 50 KB (as one restored from a
/// backup would): pass 2 sends those again and counts them as re-sent, once; nothing else goes
/// twice.
fn lost_bytes_go_again_and_are_counted_once(o: SyncOptions) {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let len = 400_000u64;
    let a = video(&d, len as usize, 5);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    let cancel = CancelToken::new();
    let s1 = s
        .sync_once(srv.as_ref(), &o, &cancel, &mut |p| {
            if p.item_bytes_done >= 200_000 {
                cancel.cancel()
            }
        })
        .expect("pass 1");
    assert!(s1.cancelled);
    {
        let mut st = srv.st.lock().expect("l");
        let have = st.uploads[&a].len();
        st.uploads.get_mut(&a).expect("u").truncate(have - 50_000);
    }
    let s2 = s.sync_once(srv.as_ref(), &o, &CancelToken::new(), &mut |_| {}).expect("pass 2");
    assert_eq!(s2.receipts_verified, 1, "{s2:?}");
    assert_eq!(s1.bytes_uploaded + s2.bytes_uploaded - s2.bytes_resent, len, "{s1:?} {s2:?}");
    assert_eq!(s2.bytes_resent, 50_000, "exactly what the server lost; the cancel itself re-sent nothing");
    let sent: u64 = srv.st.lock().expect("l").patch_sizes.iter().map(|&n| n as u64).sum();
    assert_eq!(sent, len + 50_000);
}

#[test]
fn bytes_a_server_lost_go_again_and_are_counted_once() {
    lost_bytes_go_again_and_are_counted_once(opts(4_000));
}

#[test]
fn with_adaptive_chunks_bytes_a_server_lost_go_again_and_are_counted_once() {
    lost_bytes_go_again_and_are_counted_once(SyncOptions { max_chunk_size: 64_000, ..opts(4_000) });
}

#[test]
fn with_adaptive_chunks_a_cut_connection_costs_at_most_one_chunk() {
    let srv = Mock::new();
    let d = Device::new();
    let s = &d.store;
    let len = 300_000u64;
    video(&d, len as usize, 7);
    s.enroll(srv.as_ref(), "http://127.0.0.1:9", "tok").expect("enroll");
    // The 6th PATCH (a full 64 KB chunk) reaches the server but its answer is lost.
    srv.st.lock().expect("l").cut_patch = vec![6];
    let o = SyncOptions { max_chunk_size: 64_000, ..opts(4_000) };
    let sum = s.sync_once(srv.as_ref(), &o, &CancelToken::new(), &mut |_| {}).expect("pass");
    assert_eq!((sum.receipts_verified, sum.remaining), (1, 0), "{sum:?}");
    let sizes = srv.st.lock().expect("l").patch_sizes.clone();
    assert_eq!(sizes[5], 64_000, "{sizes:?}");
    let sent: u64 = sizes.iter().map(|&n| n as u64).sum();
    assert_eq!(sent, len + 64_000, "the cut chunk went twice (refused the second time: 409), nothing else: {sizes:?}");
}
