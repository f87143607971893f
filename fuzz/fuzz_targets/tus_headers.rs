//! tus header parsing: `Upload-Offset`/`Upload-Length`/`Content-Length` integers, the PATCH
//! `Content-Type`, and the capability in `Upload-Metadata`.
#![no_main]
use arbitrary::Arbitrary;
use fieldcap_server::fuzzing::{header_map, tus};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Headers<'a> {
    offset: Vec<&'a [u8]>,
    length: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
}

fuzz_target!(|h: Headers| {
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
    for o in h.offset.iter().take(4) {
        pairs.push((b"upload-offset", o));
    }
    if let Some(l) = h.length {
        pairs.push((b"upload-length", l));
    }
    if let Some(c) = h.content_type {
        pairs.push((b"content-type", c));
    }
    for m in h.metadata.iter().take(4) {
        pairs.push((b"upload-metadata", m));
    }
    let map = header_map(&pairs);
    for name in ["upload-offset", "upload-length"] {
        if let Ok(Some(n)) = tus::header_u64(&map, name) {
            // Only plain decimal digits are accepted, and the value is theirs.
            let text = map.get(name).and_then(|v| v.to_str().ok()).expect("an accepted header is text");
            assert!(text.bytes().all(|b| b.is_ascii_digit()), "{name} accepted a non-digit: {text:?}");
            assert_eq!(text.trim_start_matches('0').parse::<u64>().unwrap_or(0), n);
        }
    }
    let _ = tus::patch_content_type(&map);
    if let Ok(cap) = tus::capability_from_metadata(&map) {
        assert!(!cap.is_empty() || map.get("upload-metadata").is_some());
    }
});
