//! Manifest and canonical JSON parsing: `Manifest::parse` (strict: canonical, known fields,
//! every field well-formed) and `canonical::is_canonical`, over arbitrary bytes.
#![no_main]
use fieldcap_evidence::{canonical, manifest::Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Canonical bytes are exactly what re-serialising their value gives.
    if canonical::is_canonical(data) {
        let v: serde_json::Value = serde_json::from_slice(data).expect("canonical bytes are JSON");
        assert_eq!(canonical::to_vec(&v), data, "canonical bytes do not round-trip");
    }
    if let Ok(m) = Manifest::parse(data) {
        // A manifest that parses is canonical, validates and serialises back to the same bytes.
        m.validate().expect("a parsed manifest validates");
        let again = m.to_canonical_bytes().expect("a parsed manifest serialises");
        assert_eq!(again, data, "a parsed manifest does not serialise to its own bytes");
    }
});
