//! Device custody lines (`{"event":…,"sig":"hex"}` JSON Lines) and custody event bodies, as a
//! device uploads them and a package carries them; the chain check over what parsed.
#![no_main]
use fieldcap_evidence::custody::{verify_chain, CustodyEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = CustodyEvent::from_body(data.to_vec(), vec![0; 64]);
        return;
    };
    let mut events = Vec::new();
    for line in text.lines().take(64) {
        if let Ok(ev) = CustodyEvent::from_jsonl(line) {
            // The JSON Lines form of a parsed event parses back to the same event.
            let back = CustodyEvent::from_jsonl(&ev.to_jsonl()).expect("an event's own line parses");
            assert_eq!(back.body, ev.body);
            assert_eq!(back.sig, ev.sig);
            let _ = ev.prev();
            events.push(ev);
        }
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let _ = verify_chain(&events, &key);
});
