//! The witness protocol's untrusted inputs (`evidence::cosignature`): the body of a C2SP
//! tlog-witness `add-checkpoint` request (what a witness reads from any log), a signed-note
//! verifier key (`--witness`/`--log` flags, a device's witness list), a witness's `409` size
//! answer and `200` cosignature answer (what the intake server reads from a witness), and the
//! cosignature lines on a checkpoint (what verifiers and devices read). Strict parsing: what
//! parses serialises back to the same bytes.
#![no_main]
use fieldcap_evidence::cosignature::{check_cosignatures, cosignature_lines_of, parse_tlog_size, AddCheckpoint, VerifierKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = AddCheckpoint::parse(data) {
        assert_eq!(req.to_body().as_bytes(), data, "an add-checkpoint body does not re-serialise to itself");
        assert!(req.proof.len() <= 63);
    }
    if let Ok(n) = parse_tlog_size(data) {
        assert_eq!(format!("{n}\n").as_bytes(), data);
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(vk) = VerifierKey::parse(text) {
        assert_eq!(VerifierKey::parse(&vk.to_string()).ok(), Some(vk.clone()), "a verifier key does not re-parse from its own form");
    }
    // A fixed witness (Ed25519 seed 32 x 0x09) over notes and answers: the seed corpus holds a
    // checkpoint it cosigned, so the verifying path is reached too.
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let Ok(witness) = VerifierKey::witness("fuzz.example/witness", key) else { return };
    if let Ok(check) = check_cosignatures(text, std::slice::from_ref(&witness)) {
        assert_eq!(check.valid.len() + check.missing.len() + check.forged.len(), 1);
    }
    if let Some((body, answer)) = text.split_once("\n\n") {
        let _ = cosignature_lines_of(answer, &format!("{body}\n"), &witness);
    }
});
