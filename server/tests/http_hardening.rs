//! Issue 12, the intake server's HTTP layer under attack: every check here speaks raw HTTP/1.1
//! over a `TcpStream` on 127.0.0.1, as an attacker would, with bounded counts and generous
//! liveness bounds (never a performance assertion).
//!
//! * finding 1: a body is not read before the signed headers name a plausible device request;
//!   per-endpoint sizes are refused from `Content-Length`; slow bodies time out; the bytes of
//!   bodies held at once are budgeted (503 + `Retry-After` beyond it);
//! * finding 2: an unfinished request head is cut; connections are capped;
//! * finding 6: timestamps far from the clock (i64 extremes) are stale, not an overflow;
//! * finding 9: what the HTTP parser refuses (garbage, long URI, many headers, bad
//!   `Content-Length`) is answered in problem+json;
//! * finding 10a: unknown, revoked and badly signed look the same until the signature holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::protocol;
use fieldcap_server::{ServerConfig, ServerHandle};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Liveness bound for anything the server should do "soon" (never a performance figure).
const LIVENESS: Duration = Duration::from_secs(20);

struct Srv {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    handle: Option<ServerHandle>,
}

impl Srv {
    fn start(tune: impl FnOnce(&mut ServerConfig)) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut cfg = ServerConfig::new(data.clone(), "127.0.0.1:0".parse().unwrap());
        tune(&mut cfg);
        let handle = ServerHandle::start(cfg).unwrap();
        Srv { _dir: dir, data, handle: Some(handle) }
    }

    fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().addr()
    }

    /// Enrols a new device key over HTTP.
    fn enrol(&self) -> DeviceKey {
        let key = DeviceKey::generate();
        let token = fieldcap_server::issue_token(&self.data, "monitor").unwrap();
        let body = serde_json::to_vec(&serde_json::json!({ "token": token, "public_key_pem": key.public_pem() })).unwrap();
        let r = request(self.addr(), "POST", "/v1/enroll", &[("content-type", "application/json".into())], &body);
        assert!(r.status == 200 || r.status == 201, "enrolment: {} {}", r.status, r.body_text());
        key
    }
}

/// A parsed HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a problem+json answer of `status` and problem `name`.
    fn problem(&self, status: u16, name: &str) -> serde_json::Value {
        assert_eq!(self.status, status, "{}\n{}", self.head, self.body_text());
        let ct = self.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/problem+json"), "not problem+json: {}\n{}", self.head, self.body_text());
        let p: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("problem body {e}: {}", self.body_text()));
        assert_eq!(p["type"], format!("{}{name}", fieldcap_evidence::problem::BASE), "{p}");
        assert_eq!(p["status"], status, "{p}");
        p
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(LIVENESS)).unwrap();
    s.set_write_timeout(Some(LIVENESS)).unwrap();
    s
}

/// Reads one answer (head, then `Content-Length` bytes of body) from a stream.
fn read_answer(s: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut b).unwrap_or_else(|e| panic!("no answer ({e}); got {:?}", String::from_utf8_lossy(&buf)));
        assert!(n > 0, "connection closed without an answer; got {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad status line: {head}"));
    let mut a = Answer { status, head, body: buf[head_end..].to_vec() };
    let len: usize = a.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while a.body.len() < len {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "body cut short: {a:?}");
        a.body.extend_from_slice(&b[..n]);
    }
    a.body.truncate(len);
    a
}

/// Sends raw bytes on a new connection and reads one answer.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Answer {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    read_answer(&mut s)
}

fn head_bytes(method: &str, path: &str, headers: &[(&str, String)], content_length: Option<usize>) -> Vec<u8> {
    let mut h = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(n) = content_length {
        h.push_str(&format!("content-length: {n}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// A whole request on a new connection.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    let mut bytes = head_bytes(method, path, headers, Some(body.len()));
    bytes.extend_from_slice(body);
    raw(addr, &bytes)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Signed headers (plus the JSON content type) for a request of `key` at time `ts`.
fn signed(key: &DeviceKey, method: &str, path: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut h = protocol::sign_request(key, method, path, ts, body);
    h.push(("content-type", "application/json".into()));
    h
}

/// A submission body that is well-formed JSON of about `n` bytes (not a valid manifest).
fn filler_submission(n: usize) -> Vec<u8> {
    let pad = "A".repeat(n.saturating_sub(40));
    serde_json::to_vec(&serde_json::json!({ "manifest": pad, "sig": "AAAA" })).unwrap()
}

// ---------------------------------------------------------------- finding 6

#[test]
fn timestamps_at_the_ends_of_i64_are_stale_not_an_overflow() {
    let srv = Srv::start(|_| {});
    let dev = srv.enrol();
    let body = filler_submission(100);
    let now = now_ms();
    for ts in [now.wrapping_sub(i64::MIN), now - (1i64 << 62) - (1i64 << 62), i64::MIN, i64::MIN + 1, i64::MAX, -1, 0] {
        let a = request(srv.addr(), "POST", "/v1/manifests", &signed(&dev, "POST", "/v1/manifests", ts, &body), &body);
        a.problem(401, "stale-request");
    }
    // A fresh one still gets past the clock check (to the manifest check).
    let a = request(srv.addr(), "POST", "/v1/manifests", &signed(&dev, "POST", "/v1/manifests", now_ms(), &body), &body);
    assert_ne!(a.status, 401, "{a:?}");
}

// ---------------------------------------------------------------- finding 10a

#[test]
fn unknown_revoked_and_badly_signed_devices_get_the_same_answer_until_the_signature_holds() {
    let srv = Srv::start(|_| {});
    let known = srv.enrol();
    let revoked = srv.enrol();
    assert!(fieldcap_server::revoke_device(&srv.data, revoked.device_id(), "test").unwrap());
    let stranger = DeviceKey::generate();
    let body = filler_submission(100);
    let probe = |key: &DeviceKey, forge: bool| {
        let mut h = signed(key, "POST", "/v1/manifests", now_ms(), &body);
        if forge {
            // Signed by another key under the device's name.
            let other = signed(&DeviceKey::generate(), "POST", "/v1/manifests", now_ms(), &body);
            h[3].1 = other[3].1.clone();
        }
        let a = request(srv.addr(), "POST", "/v1/manifests", &h, &body);
        (a.status, a.header("content-type"), a.body_text())
    };
    let unknown = probe(&stranger, false);
    let revoked_forged = probe(&revoked, true);
    let known_forged = probe(&known, true);
    assert_eq!(unknown.0, 401, "{unknown:?}");
    assert_eq!(unknown, revoked_forged, "an unknown device and a revoked one with a forged signature must look the same");
    assert_eq!(unknown, known_forged, "an unknown device and a known one with a forged signature must look the same");
    // A device id that is not even one looks the same too (headers of the right shape).
    let mut h = signed(&stranger, "POST", "/v1/manifests", now_ms(), &body);
    h[0].1 = "f".repeat(32);
    let a = request(srv.addr(), "POST", "/v1/manifests", &h, &body);
    assert_eq!((a.status, a.header("content-type"), a.body_text()), unknown);

    // Once the signature holds, a revoked device is told so (its client stops and says why).
    let a = request(srv.addr(), "POST", "/v1/manifests", &signed(&revoked, "POST", "/v1/manifests", now_ms(), &body), &body);
    a.problem(403, "device-revoked");
    let path = "/v1/receipts/00000000-0000-7000-8000-000000000000";
    let a = request(srv.addr(), "GET", path, &signed(&revoked, "GET", path, now_ms(), b""), b"");
    a.problem(403, "device-revoked");
}

// ---------------------------------------------------------------- finding 1

#[test]
fn a_body_is_not_read_before_the_signed_headers_are_plausible() {
    let srv = Srv::start(|_| {});
    let dev = srv.enrol();
    // Announce a big body, send none of it: the refusal comes from the headers alone.
    for (what, headers) in [
        ("no signature headers", vec![("content-type", "application/json".to_string())]),
        ("stale timestamp", signed(&dev, "POST", "/v1/manifests", now_ms() - 3_600_000, b"x")),
        ("malformed signature", {
            let mut h = signed(&dev, "POST", "/v1/manifests", now_ms(), b"x");
            h[3].1 = "%%%".into();
            h
        }),
    ] {
        for path in ["/v1/manifests", "/v1/custody"] {
            let mut s = connect(srv.addr());
            s.write_all(&head_bytes("POST", path, &headers, Some(1_000_000))).unwrap();
            let name = if what == "stale timestamp" { "stale-request" } else { "unauthenticated" };
            read_answer(&mut s).problem(401, name);
        }
    }
    // A body larger than the endpoint takes is refused from its Content-Length, unread.
    for (path, limit) in [
        ("/v1/manifests", fieldcap_server::MAX_SUBMISSION_BODY),
        ("/v1/custody", fieldcap_server::MAX_CUSTODY_BODY),
        ("/v1/enroll", fieldcap_server::MAX_JSON_BODY),
    ] {
        let mut s = connect(srv.addr());
        let h = signed(&dev, "POST", path, now_ms(), b"x");
        s.write_all(&head_bytes("POST", path, &h, Some(limit + 1))).unwrap();
        read_answer(&mut s).problem(413, "too-large");
    }
}

// ---------------------------------------------------------------- finding 9

#[test]
fn what_the_http_parser_refuses_is_answered_in_problem_json() {
    let srv = Srv::start(|_| {});
    let addr = srv.addr();
    // Garbage request lines and heads.
    for (what, bytes) in [
        ("garbage request line", b"\x01\x02 hello there\r\n\r\n".to_vec()),
        ("no version", b"GET /v1/time\r\n\r\n".to_vec()),
        ("bad method", b"G(T /v1/time HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
        ("bad header line", b"GET /v1/time HTTP/1.1\r\nhost x\r\n\r\n".to_vec()),
        ("duplicate Content-Length", b"POST /v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec()),
        ("absurd Content-Length", b"POST /v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999999999999999999\r\n\r\n".to_vec()),
        ("negative Content-Length", b"POST /v1/enroll HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n".to_vec()),
    ] {
        let a = raw(addr, &bytes);
        assert!((400..500).contains(&a.status), "{what}: {a:?}");
        a.problem(400, "malformed-request");
    }
    // A URI longer than the server takes (both under and over what the HTTP parser can hold).
    for n in [fieldcap_server::MAX_URI_BYTES + 1, 70_000] {
        let a = raw(addr, &head_bytes("GET", &format!("/v1/time?{}", "a".repeat(n)), &[], None));
        a.problem(414, "uri-too-long");
    }
    // Too many headers, and a head larger than the parser's buffer.
    let many: Vec<(&str, String)> = (0..150).map(|_| ("x-many", "1".to_string())).collect();
    raw(addr, &head_bytes("GET", "/v1/time", &many, None)).problem(431, "headers-too-large");
    // Over the server's total (64 KiB) but within the parser's buffer: refused by the server.
    let big: Vec<(&str, String)> = (0..9).map(|_| ("x-big", "b".repeat(8000))).collect();
    raw(addr, &head_bytes("GET", "/v1/time", &big, None)).problem(431, "headers-too-large");
    // Over the parser's buffer: refused by the parser.
    let huge: Vec<(&str, String)> = (0..20).map(|_| ("x-huge", "h".repeat(8000))).collect();
    raw(addr, &head_bytes("GET", "/v1/time", &huge, None)).problem(431, "headers-too-large");
    // The server still answers.
    assert_eq!(request(addr, "GET", "/v1/time", &[], b"").status, 200);
}

/// Expects the server to close the connection (EOF or reset) within [`LIVENESS`]; anything it
/// sends first is returned.
fn closed_by_server(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server did not close the connection ({e}); got {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

// ---------------------------------------------------------------- finding 1 (rate, budget)

#[test]
fn a_body_slower_than_the_minimum_rate_is_cut_with_408_for_known_and_unknown_devices() {
    let srv = Srv::start(|c| {
        c.body_grace = Duration::from_millis(300);
        c.body_min_rate = 1000;
    });
    let dev = srv.enrol();
    let stranger = DeviceKey::generate();
    for key in [&dev, &stranger] {
        for path in ["/v1/manifests", "/v1/custody"] {
            let body = filler_submission(50_000);
            let mut s = connect(srv.addr());
            s.write_all(&head_bytes("POST", path, &signed(key, "POST", path, now_ms(), &body), Some(body.len()))).unwrap();
            s.write_all(&body[..1000]).unwrap();
            // … and nothing more.
            read_answer(&mut s).problem(408, "request-timeout");
            closed_by_server(&mut s);
        }
    }
    // Enrolment bodies too (no key needed to send one).
    let mut s = connect(srv.addr());
    s.write_all(&head_bytes("POST", "/v1/enroll", &[("content-type", "application/json".into())], Some(10_000))).unwrap();
    s.write_all(b"{\"token\": \"").unwrap();
    read_answer(&mut s).problem(408, "request-timeout");
}

#[test]
fn bodies_held_at_once_are_budgeted_and_over_budget_is_503_with_retry_after() {
    let srv = Srv::start(|c| {
        c.max_buffered_body_bytes = 100_000;
        c.body_grace = Duration::from_secs(120);
    });
    let dev = srv.enrol();
    let path = "/v1/manifests";
    // A holds 80 kB of the 100 kB budget: it announces them and stalls.
    let body_a = filler_submission(80_000);
    let hold_a = || {
        let mut a = connect(srv.addr());
        a.write_all(&head_bytes("POST", path, &signed(&dev, "POST", path, now_ms(), &body_a), Some(body_a.len()))).unwrap();
        a.write_all(&body_a[..100]).unwrap();
        a
    };
    let mut a = hold_a();
    // B does not fit while A is held: 503. (B sends its whole body: until A's share is
    // reserved — A's request may still be on its way in — B fits and is read and answered.
    // On a loaded machine A's head can reach the server while a B is being read; A is then the
    // one refused, and holds nothing: it is sent again.)
    let body_b = filler_submission(30_000);
    let deadline = Instant::now() + LIVENESS;
    loop {
        a.set_nonblocking(true).unwrap();
        let a_answered = a.peek(&mut [0u8; 16]).is_ok();
        a.set_nonblocking(false).unwrap();
        if a_answered {
            a = hold_a();
        }
        let ans = request(srv.addr(), "POST", path, &signed(&dev, "POST", path, now_ms(), &body_b), &body_b);
        if ans.status == 503 {
            ans.problem(503, "overloaded");
            let wait: u64 = ans.header("retry-after").expect("Retry-After").parse().expect("seconds");
            assert!(wait >= 1, "{ans:?}");
            break;
        }
        assert!(Instant::now() < deadline, "never refused while the budget was held: {ans:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A small one still fits, and is read and checked (a filler body is no manifest).
    let small = filler_submission(10_000);
    let ans = request(srv.addr(), "POST", path, &signed(&dev, "POST", path, now_ms(), &small), &small);
    assert_ne!(ans.status, 503, "{ans:?}");
    assert!(ans.header("content-type").unwrap_or_default().starts_with("application/problem+json"), "{ans:?}");
    // A body larger than the whole budget can never fit: 413, not an endless 503.
    let over = filler_submission(150_000);
    let mut o = connect(srv.addr());
    o.write_all(&head_bytes("POST", path, &signed(&dev, "POST", path, now_ms(), &over), Some(over.len()))).unwrap();
    read_answer(&mut o).problem(413, "too-large");
    // A gives up: its share comes back and B fits.
    drop(a);
    let deadline = Instant::now() + LIVENESS;
    loop {
        let ans = request(srv.addr(), "POST", path, &signed(&dev, "POST", path, now_ms(), &body_b), &body_b);
        if ans.status != 503 {
            assert!(ans.header("content-type").unwrap_or_default().starts_with("application/problem+json"), "{ans:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the budget was never given back: {ans:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- finding 2

#[test]
fn an_unfinished_head_and_an_idle_keep_alive_connection_are_closed() {
    let srv = Srv::start(|c| c.header_read_timeout = Duration::from_millis(300));
    // Slowloris: a head that never ends.
    let mut s = connect(srv.addr());
    s.write_all(b"GET /v1/time HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ").unwrap();
    closed_by_server(&mut s);
    // A connection that says nothing at all.
    let mut s = connect(srv.addr());
    closed_by_server(&mut s);
    // A keep-alive connection after its answer.
    let mut s = connect(srv.addr());
    s.write_all(&head_bytes("GET", "/v1/time", &[], None)).unwrap();
    assert_eq!(read_answer(&mut s).status, 200);
    closed_by_server(&mut s);
}

/// A tus request refused before its body is read (here: an unknown upload) is answered with
/// `Connection: close`, because the server closes that connection after the answer: a client
/// that pooled it would lose its next request to the close (reqwest's `IncompleteMessage`, seen
/// as a flaky revocation test). A refusal of a request without a body keeps the connection.
#[test]
fn a_tus_refusal_before_the_body_is_read_closes_the_connection_and_says_so() {
    let srv = Srv::start(|_| {});
    let tus = |ct: &str| vec![("tus-resumable", "1.0.0".to_string()), ("upload-offset", "0".to_string()), ("content-type", ct.to_string())];
    let mut s = connect(srv.addr());
    s.write_all(&head_bytes("PATCH", "/v1/uploads/unknown-upload", &tus("application/offset+octet-stream"), Some(100_000))).unwrap();
    s.write_all(&[0u8; 1000]).unwrap();
    let a = read_answer(&mut s);
    assert!(a.status >= 400, "{a:?}");
    assert_eq!(a.header("connection").as_deref(), Some("close"), "{a:?}");
    closed_by_server(&mut s);
    // No body: the refusal keeps the connection open for the next request.
    let mut s = connect(srv.addr());
    s.write_all(&head_bytes("HEAD", "/v1/uploads/unknown-upload", &[("tus-resumable", "1.0.0".to_string())], None)).unwrap();
    let mut b = [0u8; 4096];
    let n = s.read(&mut b).unwrap();
    let head = String::from_utf8_lossy(&b[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 4") && !head.contains("connection: close"), "{head}");
    s.write_all(&head_bytes("GET", "/v1/time", &[], None)).unwrap();
    assert_eq!(read_answer(&mut s).status, 200);
}

#[test]
fn open_connections_are_capped_and_the_next_is_served_when_one_closes() {
    let srv = Srv::start(|c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(120);
    });
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(srv.addr());
            s.write_all(b"GET /v1/time HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let mut c = connect(srv.addr());
    c.write_all(&head_bytes("GET", "/v1/time", &[], None)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut b = [0u8; 64];
    match c.read(&mut b) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("a third connection was served while two were open: {other:?}"),
    }
    held.pop();
    c.set_read_timeout(Some(LIVENESS)).unwrap();
    assert_eq!(read_answer(&mut c).status, 200);
}

#[test]
fn a_slow_upload_that_keeps_moving_is_not_cut_and_a_stalled_one_keeps_its_bytes() {
    use fieldcap_testkit::api::manifest;
    // JSON bodies would be cut within a second at this rate; uploads only by their idle gap.
    let srv = Srv::start(|c| {
        c.body_grace = Duration::from_millis(100);
        c.body_min_rate = 1_000_000;
        c.upload_idle_timeout = Duration::from_secs(3);
    });
    let dev = srv.enrol();
    let data = fieldcap_testkit::bytes::seeded(4000, 7);
    let m = manifest(&dev, 1, None, Some(&data), "2025-06-07T18:00:00.000Z", vec![]);
    let sub = serde_json::to_vec(&serde_json::json!({ "manifest": protocol::b64(&m.bytes), "sig": protocol::b64(&m.sig) })).unwrap();
    let a = request(srv.addr(), "POST", "/v1/manifests", &signed(&dev, "POST", "/v1/manifests", now_ms(), &sub), &sub);
    assert_eq!(a.status, 201, "{a:?}");
    let url = serde_json::from_slice::<serde_json::Value>(&a.body).unwrap()["upload_url"].as_str().unwrap().to_string();
    let tus = |offset: usize| {
        vec![
            ("tus-resumable", "1.0.0".to_string()),
            ("upload-offset", offset.to_string()),
            ("content-type", "application/offset+octet-stream".to_string()),
        ]
    };
    // 2000 bytes in 8 pieces, one every 0.5 s: four times the JSON grace, under the idle gap.
    let mut s = connect(srv.addr());
    s.write_all(&head_bytes("PATCH", &url, &tus(0), Some(2000))).unwrap();
    for piece in data[..2000].chunks(250) {
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(piece).unwrap();
    }
    let a = read_answer(&mut s);
    assert_eq!(a.status, 204, "{a:?}");
    assert_eq!(a.header("upload-offset").as_deref(), Some("2000"));
    // A PATCH that stops: 408 after the idle gap, the bytes it sent kept.
    let mut s = connect(srv.addr());
    s.write_all(&head_bytes("PATCH", &url, &tus(2000), Some(2000))).unwrap();
    s.write_all(&data[2000..2500]).unwrap();
    read_answer(&mut s).problem(408, "request-timeout");
    let h = raw(srv.addr(), &head_bytes("HEAD", &url, &[("tus-resumable", "1.0.0".to_string())], None));
    assert_eq!(h.header("upload-offset").as_deref(), Some("2500"), "{h:?}");
}

#[test]
fn shutdown_still_ends_promptly_with_stalled_connections_open() {
    let mut srv = Srv::start(|c| c.header_read_timeout = Duration::from_secs(120));
    let _stalled: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = connect(srv.addr());
            s.write_all(b"GET /v1/time HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    assert_eq!(request(srv.addr(), "GET", "/v1/time", &[], b"").status, 200);
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = srv.handle.take().unwrap();
    std::thread::spawn(move || {
        handle.shutdown();
        let _ = tx.send(());
    });
    rx.recv_timeout(LIVENESS).expect("shutdown finished");
}
