//! C2SP signed notes and checkpoints (`evidence::tlog`): parse the note, parse the checkpoint
//! body, verify against a fixed key; what parses re-serialises to the same body.
#![no_main]
use fieldcap_evidence::tlog::{parse_note, verify_checkpoint, Checkpoint};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(note) = parse_note(text) {
        let _ = Checkpoint::parse_body(&note.text);
    }
    if let Ok(cp) = Checkpoint::parse_body(text) {
        // The body re-serialises to itself, followed only by the extension lines it ignores.
        assert!(text.starts_with(&cp.body()), "a checkpoint body does not re-serialise to itself");
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    if let Ok(cp) = verify_checkpoint(text, "fuzz.example/log", &key) {
        // Only notes signed by the fixed key verify: the seed corpus holds such notes.
        assert!(text.starts_with(&cp.body()));
    }
});
