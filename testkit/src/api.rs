//! A raw client of the intake API for the server's own tests: device-signed requests, tus
//! requests, problem+json assertions, manifests signed by hand (without a device store), and
//! raw TCP for requests that ordinary clients refuse to send (dot segments, cut bodies).

use crate::server::TestServer;
use crate::track::fix;
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::manifest::{Capture, Clock, ItemKind, Manifest, Media, Observation, Operator, Role};
use fieldcap_evidence::protocol::{self, CommitmentResponse, EnrollRequest, ManifestSubmission, Problem, SignedDoc, TimeResponse};
use reqwest::blocking::{RequestBuilder, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

impl TestServer {
    /// `GET /v1/time`, which must answer 200.
    pub fn time(&self) -> TimeResponse {
        let r = self.client.get(format!("{}/v1/time", self.url())).send().expect("GET /v1/time");
        assert_eq!(r.status(), 200);
        r.json().expect("time JSON")
    }

    /// The server's public key, from `/v1/time`.
    pub fn server_key(&self) -> ed25519_dalek::VerifyingKey {
        fieldcap_evidence::identity::parse_public_pem(&self.time().server_key_pem).expect("server key")
    }

    /// Enrols `key` as `role` with a fresh token; must answer 201. Returns the certificate.
    pub fn enroll(&self, key: &DeviceKey, role: &str) -> SignedDoc {
        let r = self.enroll_with(key, &self.token(role));
        assert_eq!(r.status(), 201, "{:?}", r.text());
        r.json().expect("certificate JSON")
    }

    /// `POST /v1/enroll` of `key` with `token` (organisation "Harbor Area Peace Patrol").
    pub fn enroll_with(&self, key: &DeviceKey, token: &str) -> Response {
        let req = EnrollRequest { token: token.into(), public_key_pem: key.public_pem(), org: Some("Harbor Area Peace Patrol".into()) };
        self.client.post(format!("{}/v1/enroll", self.url())).json(&req).send().expect("POST /v1/enroll")
    }

    /// A request signed by `key` now.
    pub fn signed(&self, key: &DeviceKey, method: &str, path: &str, body: &[u8]) -> Response {
        self.signed_at(key, method, path, body, chrono::Utc::now().timestamp_millis())
    }

    /// A request signed by `key` with the timestamp `ts` (ms).
    pub fn signed_at(&self, key: &DeviceKey, method: &str, path: &str, body: &[u8], ts: i64) -> Response {
        let headers = protocol::sign_request(key, method, path, ts, body);
        self.send_with(method, path, body, &headers)
    }

    /// A request with exactly `headers` (and a JSON content type when `body` is not empty).
    pub fn send_with(&self, method: &str, path: &str, body: &[u8], headers: &[(&str, String)]) -> Response {
        let mut rb = self.client.request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), format!("{}{}", self.url(), path));
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        if !body.is_empty() {
            rb = rb.header("content-type", "application/json").body(body.to_vec());
        }
        rb.send().expect("request")
    }

    /// `POST /v1/manifests` of `manifest` and its signature, signed by `key`.
    pub fn submit(&self, key: &DeviceKey, manifest: &[u8], sig: &[u8]) -> Response {
        let body = serde_json::to_vec(&ManifestSubmission { manifest: protocol::b64(manifest), sig: protocol::b64(sig) }).expect("JSON");
        self.signed(key, "POST", "/v1/manifests", &body)
    }

    /// A tus 1.0 request (`Tus-Resumable: 1.0.0`) to `path`, to complete and send.
    pub fn tus(&self, method: &str, path: &str) -> RequestBuilder {
        self.client
            .request(reqwest::Method::from_bytes(method.as_bytes()).expect("method"), format!("{}{}", self.url(), path))
            .header("tus-resumable", "1.0.0")
    }

    /// A tus PATCH of `data` at `offset`.
    pub fn patch(&self, upload_url: &str, offset: u64, data: &[u8]) -> Response {
        self.tus("PATCH", upload_url)
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(data.to_vec())
            .send()
            .expect("PATCH")
    }

    /// The upload's offset from a tus HEAD, which must answer 200.
    pub fn head_offset(&self, upload_url: &str) -> u64 {
        let r = self.tus("HEAD", upload_url).send().expect("HEAD");
        assert_eq!(r.status(), 200);
        r.headers()["upload-offset"].to_str().expect("ASCII").parse().expect("offset")
    }

    /// Asserts that the server still answers `/v1/time`.
    pub fn still_serving(&self) {
        let r = self.client.get(format!("{}/v1/time", self.url())).send().expect("GET /v1/time");
        assert_eq!(r.status(), 200, "server stopped serving");
    }
}

/// Asserts a problem+json answer with `status` and problem type `name`; returns it.
pub fn problem(r: Response, status: u16, name: &str) -> Problem {
    let st = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().expect("ASCII").to_string()).unwrap_or_default();
    let text = r.text().expect("body");
    assert_eq!(st, status, "body: {text}");
    assert!(ct.starts_with("application/problem+json"), "content-type {ct}: {text}");
    let p: Problem = serde_json::from_str(&text).expect("problem JSON");
    assert_eq!(p.status, status);
    assert_eq!(p.problem_type, format!("https://fieldcap.org/problems/{name}"), "{text}");
    p
}

/// A manifest signed by hand: its exact bytes, the signature, and the parsed form.
pub struct SignedManifest {
    /// Canonical manifest bytes.
    pub bytes: Vec<u8>,
    /// Raw Ed25519 signature over `bytes`.
    pub sig: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
}

/// A manifest of `key`'s device, signed: a video of `media` if given, else an observation
/// ("two unmarked vans"); `seq` and the previous manifest's bytes as given, a minute from
/// `start` (RFC 3339), one fix (accuracy 5 m) at `start` per `track` place.
pub fn manifest(key: &DeviceKey, seq: u64, prev: Option<&[u8]>, media: Option<&[u8]>, start: &str, track: Vec<(f64, f64)>) -> SignedManifest {
    let kind = if media.is_some() { ItemKind::Video } else { ItemKind::Observation };
    let t = fieldcap_evidence::time::parse(start, "start").expect("start time");
    let m = Manifest {
        kind_type: fieldcap_evidence::manifest::MANIFEST_TYPE.into(),
        clip_id: uuid::Uuid::now_v7().hyphenated().to_string(),
        device_id: key.device_id().into(),
        seq,
        prev: prev.map(fieldcap_evidence::hashing::sha256_hex),
        kind,
        media: media.map(|d| {
            let dg = fieldcap_evidence::hashing::Digests::of_bytes(d);
            Media { mime: "video/mp4".into(), bytes: dg.bytes, sha256: dg.sha256_hex(), blake3: dg.blake3_hex() }
        }),
        capture: Capture {
            started_at: fieldcap_evidence::time::format(t),
            ended_at: fieldcap_evidence::time::format(t + chrono::Duration::seconds(60)),
            clock: Clock { source: "system".into(), uptime_ms: 1000, offset_ms: None, measured_at: None },
        },
        track: track.into_iter().map(|(lat, lon)| fix(t, lat, lon)).collect(),
        operator: Operator { role: Role::Monitor, org: None, callsign: None },
        tags: vec![],
        segment: None,
        fragments: None,
        incident_hint: None,
        note: None,
        observation: media.is_none().then(|| Observation { text: "two unmarked vans".into(), ..Default::default() }),
        app: None,
    };
    let bytes = m.to_canonical_bytes().expect("canonical manifest");
    let sig = key.sign(&bytes).to_vec();
    SignedManifest { bytes, sig, manifest: m }
}

/// Submits `m` (signed by `key`), which must be accepted (201, or 200 for a repeat); returns
/// the commitment.
pub fn commit(srv: &TestServer, key: &DeviceKey, m: &SignedManifest) -> CommitmentResponse {
    let r = srv.submit(key, &m.bytes, &m.sig);
    assert!(r.status() == 201 || r.status() == 200, "{:?}", r.text());
    r.json().expect("commitment JSON")
}

/// Sends `req` as it is over TCP and reads until the server closes (at most 10 s); returns
/// (status, whole answer as text).
pub fn raw(addr: SocketAddr, req: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(req).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}
