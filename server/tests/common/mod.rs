//! Helpers for the server tests: a real server on 127.0.0.1 (port 0) over a temporary data
//! directory, a device key, signed requests, manifests, and a raw HTTP client for requests that
//! ordinary clients refuse to send (path tricks, cut bodies).
#![allow(dead_code, clippy::unwrap_used)]

use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::manifest::{Capture, Clock, ItemKind, Manifest, Media, Observation, Operator, Role};
use fieldcap_evidence::protocol::{self, CommitmentResponse, EnrollRequest, ManifestSubmission, Problem, SignedDoc, TimeResponse};
use fieldcap_evidence::track::TrackPoint;
use fieldcap_server::{ServerConfig, ServerHandle};
use reqwest::blocking::{Client, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

pub struct Srv {
    pub dir: tempfile::TempDir,
    pub handle: Option<ServerHandle>,
    pub client: Client,
    pub url: String,
}

impl Srv {
    pub fn start() -> Srv {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let handle = ServerHandle::start(ServerConfig::new(data, "127.0.0.1:0".parse().unwrap())).unwrap();
        let url = handle.url();
        let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Srv { dir, handle: Some(handle), client, url }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().addr()
    }

    /// Stops the server and starts a new one on the same data directory (new port).
    pub fn restart(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
        let h = ServerHandle::start(ServerConfig::new(self.data(), "127.0.0.1:0".parse().unwrap())).unwrap();
        self.url = h.url();
        self.handle = Some(h);
    }

    pub fn time(&self) -> TimeResponse {
        let r = self.client.get(format!("{}/v1/time", self.url)).send().unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    }

    pub fn server_key(&self) -> ed25519_dalek::VerifyingKey {
        fieldcap_evidence::identity::parse_public_pem(&self.time().server_key_pem).unwrap()
    }

    pub fn enroll(&self, key: &DeviceKey, role: &str) -> SignedDoc {
        let token = fieldcap_server::issue_token(&self.data(), role).unwrap();
        let r = self.enroll_with(key, &token);
        assert_eq!(r.status(), 201, "{:?}", r.text());
        r.json().unwrap()
    }

    pub fn enroll_with(&self, key: &DeviceKey, token: &str) -> Response {
        let req = EnrollRequest { token: token.into(), public_key_pem: key.public_pem(), org: Some("Harbor Area Peace Patrol".into()) };
        self.client.post(format!("{}/v1/enroll", self.url)).json(&req).send().unwrap()
    }

    /// A device-signed request.
    pub fn signed(&self, key: &DeviceKey, method: &str, path: &str, body: &[u8]) -> Response {
        let ts = chrono::Utc::now().timestamp_millis();
        self.signed_at(key, method, path, body, ts)
    }

    pub fn signed_at(&self, key: &DeviceKey, method: &str, path: &str, body: &[u8], ts: i64) -> Response {
        let headers = protocol::sign_request(key, method, path, ts, body);
        self.send_with(method, path, body, &headers)
    }

    pub fn send_with(&self, method: &str, path: &str, body: &[u8], headers: &[(&str, String)]) -> Response {
        let mut rb = self.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{}", self.url, path));
        for (k, v) in headers {
            rb = rb.header(*k, v);
        }
        if !body.is_empty() {
            rb = rb.header("content-type", "application/json").body(body.to_vec());
        }
        rb.send().unwrap()
    }

    pub fn submit(&self, key: &DeviceKey, manifest: &[u8], sig: &[u8]) -> Response {
        let body = serde_json::to_vec(&ManifestSubmission { manifest: protocol::b64(manifest), sig: protocol::b64(sig) }).unwrap();
        self.signed(key, "POST", "/v1/manifests", &body)
    }

    pub fn tus(&self, method: &str, path: &str) -> reqwest::blocking::RequestBuilder {
        self.client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{}", self.url, path))
            .header("tus-resumable", "1.0.0")
    }

    pub fn patch(&self, upload_url: &str, offset: u64, data: &[u8]) -> Response {
        self.tus("PATCH", upload_url)
            .header("upload-offset", offset.to_string())
            .header("content-type", "application/offset+octet-stream")
            .body(data.to_vec())
            .send()
            .unwrap()
    }

    pub fn head_offset(&self, upload_url: &str) -> u64 {
        let r = self.tus("HEAD", upload_url).send().unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
    }

    pub fn still_serving(&self) {
        let r = self.client.get(format!("{}/v1/time", self.url)).send().unwrap();
        assert_eq!(r.status(), 200, "server stopped serving");
    }
}

/// Asserts a problem+json answer with `status` and problem name; returns it.
pub fn problem(r: Response, status: u16, name: &str) -> Problem {
    let st = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = r.text().unwrap();
    assert_eq!(st, status, "body: {text}");
    assert!(ct.starts_with("application/problem+json"), "content-type {ct}: {text}");
    let p: Problem = serde_json::from_str(&text).unwrap();
    assert_eq!(p.status, status);
    assert_eq!(p.problem_type, format!("https://fieldcap.org/problems/{name}"), "{text}");
    p
}

pub struct Built {
    pub bytes: Vec<u8>,
    pub sig: Vec<u8>,
    pub manifest: Manifest,
}

/// A signed manifest: media if `media` is given, else an observation.
pub fn manifest(key: &DeviceKey, seq: u64, prev: Option<&[u8]>, media: Option<&[u8]>, start: &str, track: Vec<(f64, f64)>) -> Built {
    let kind = if media.is_some() { ItemKind::Video } else { ItemKind::Observation };
    let t = fieldcap_evidence::time::parse(start, "start").unwrap();
    let end = fieldcap_evidence::time::format(t + chrono::Duration::seconds(60));
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
            ended_at: end,
            clock: Clock { source: "system".into(), uptime_ms: 1000, offset_ms: None, measured_at: None },
        },
        track: track
            .into_iter()
            .map(|(lat, lon)| TrackPoint {
                t: fieldcap_evidence::time::format(t),
                lat,
                lon,
                accuracy_m: 5.0,
                altitude_m: None,
                heading_deg: None,
                speed_mps: None,
                provider: "gps".into(),
            })
            .collect(),
        operator: Operator { role: Role::Monitor, org: None, callsign: None },
        tags: vec![],
        segment: None,
        incident_hint: None,
        note: None,
        observation: media.is_none().then(|| Observation { text: "two unmarked vans".into(), ..Default::default() }),
        app: None,
    };
    let bytes = m.to_canonical_bytes().unwrap();
    let sig = key.sign(&bytes).to_vec();
    Built { bytes, sig, manifest: m }
}

pub fn commit(srv: &Srv, key: &DeviceKey, b: &Built) -> CommitmentResponse {
    let r = srv.submit(key, &b.bytes, &b.sig);
    assert!(r.status() == 201 || r.status() == 200, "{:?}", r.text());
    r.json().unwrap()
}

pub fn media(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Sends raw bytes, reads until the server closes (or `timeout`); returns (status, text).
pub fn raw(addr: SocketAddr, req: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Every file under `dir`, relative.
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
