//! The server's signed-request authentication (`fieldcap-device`, `fieldcap-timestamp`,
//! `fieldcap-nonce`, `fieldcap-signature` headers, method, URI and body) over a real server
//! state in a scratch data folder.
#![no_main]
use arbitrary::Arbitrary;
use fieldcap_server::fuzzing::{header_map, SignedRequests};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
struct Req<'a> {
    method: &'a [u8],
    uri: &'a [u8],
    device: Option<Field<'a, 16>>,
    timestamp: Option<Ts<'a>>,
    nonce: Option<Field<'a, 16>>,
    signature: Option<Field<'a, 64>>,
    extra: Vec<(&'a [u8], &'a [u8])>,
    body: &'a [u8],
}

#[derive(Arbitrary, Debug)]
enum Ts<'a> {
    /// Milliseconds from now.
    Near(i32),
    /// Any number.
    Num(i64),
    /// Any text.
    Text(&'a [u8]),
}

/// A header value: well-formed (hex or base64 of N bytes, so the fuzzer gets past the format
/// checks to the later ones) or any bytes.
#[derive(Arbitrary, Debug)]
enum Field<'a, const N: usize> {
    Hex([u8; N]),
    Base64([u8; N]),
    Raw(&'a [u8]),
}

impl<const N: usize> Field<'_, N> {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Field::Hex(b) => b.iter().map(|x| format!("{x:02x}")).collect::<String>().into_bytes(),
            Field::Base64(b) => fieldcap_evidence::protocol::b64(b).into_bytes(),
            Field::Raw(r) => r.to_vec(),
        }
    }
}

static STATE: OnceLock<(tempfile::TempDir, SignedRequests)> = OnceLock::new();

fuzz_target!(|r: Req| {
    let (_, checker) = STATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a scratch folder");
        let s = SignedRequests::open(dir.path()).expect("server state");
        (dir, s)
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let ts = r.timestamp.map(|t| match t {
        Ts::Near(d) => (now + d as i64).to_string().into_bytes(),
        Ts::Num(n) => n.to_string().into_bytes(),
        Ts::Text(t) => t.to_vec(),
    });
    let (device, nonce, sig) = (r.device.map(|f| f.bytes()), r.nonce.map(|f| f.bytes()), r.signature.map(|f| f.bytes()));
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    if let Some(d) = &device {
        pairs.push((b"fieldcap-device", d));
    }
    if let Some(t) = &ts {
        pairs.push((b"fieldcap-timestamp", t));
    }
    if let Some(n) = &nonce {
        pairs.push((b"fieldcap-nonce", n));
    }
    if let Some(s) = &sig {
        pairs.push((b"fieldcap-signature", s));
    }
    pairs.extend(r.extra.iter().take(16).copied());
    let headers = header_map(&pairs);
    // Nothing forged can be accepted: no device is enrolled in this data folder.
    if let Some(Ok(device)) = checker.check(r.method, r.uri, &headers, r.body) {
        panic!("a request was accepted for device {device}");
    }
});
