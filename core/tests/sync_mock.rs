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
            ("GET", "/v1/time") => Ok(resp(
                200,
                serde_json::to_vec(&TimeResponse {
                    server_time: fieldcap_core::time::now(),
                    server_time_ms: chrono::Utc::now().timestamp_millis() - 1500,
                    server_key_pem: self.key.public_pem(),
                    server_key_id,
                    log_origin: ORIGIN.into(),
                })
                .expect("json"),
            )),
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
                assert!((ts - (chrono::Utc::now().timestamp_millis() - 1500)).abs() < 1000, "corrected timestamp");
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
                let off: u64 = req.headers.iter().find(|h| h.0 == "Upload-Offset").expect("offset").1.parse().expect("n");
                if off != have {
                    return Ok(resp(409, br#"{"type":"https://fieldcap.org/problems/offset-mismatch","title":"offset mismatch","status":409}"#.to_vec()));
                }
                st.uploads.get_mut(&clip).expect("upload").extend_from_slice(&req.body);
                let now = have + req.body.len() as u64;
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

fn opts(chunk: usize) -> SyncOptions {
    SyncOptions { chunk_size: chunk, backoff_base: Duration::from_millis(1), backoff_max: Duration::from_millis(5), budget: Duration::from_secs(30), ..Default::default() }
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
