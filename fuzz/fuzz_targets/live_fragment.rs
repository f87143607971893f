//! Live capture, what a device sends: `FragmentRecord::parse` (strict: canonical, known fields,
//! every field well-formed) over the first N bytes after a 2-byte big-endian N, and the fMP4
//! structure checks (`fmp4::check_init`, `fmp4::check_fragment`, `fmp4::split_pieces`) over the
//! rest.
#![no_main]
use fieldcap_evidence::{fmp4, fragment::FragmentRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (head, rest) = data.split_at(2);
    let cut = (usize::from(head[0]) << 8 | usize::from(head[1])).min(rest.len());
    let (record, media) = rest.split_at(cut);
    if let Ok(r) = FragmentRecord::parse(record) {
        // A record that parses validates and serialises back to the same bytes.
        r.validate().expect("a parsed record validates");
        assert_eq!(r.to_canonical_bytes().expect("serialises"), record, "a parsed record does not serialise to its own bytes");
    }
    if let Ok(init) = fmp4::check_init(media) {
        assert!(!init.track_ids.is_empty(), "an init segment that passes declares a track");
        assert_eq!(init.track_ids.len(), init.timescales.len());
    }
    // Against a fixed one-track init: never panics, and a fragment that passes names sequence
    // numbers above the last one given.
    let init = fmp4::InitInfo { track_ids: vec![1], timescales: vec![30] };
    if let Ok(f) = fmp4::check_fragment(media, &init, Some(7)) {
        assert!(f.sequence_numbers.iter().all(|&s| s > 7), "a fragment that passes continues the sequence");
        assert!(f.is_trailer || !f.sequence_numbers.is_empty());
    }
    if let Ok(ranges) = fmp4::split_pieces(media) {
        let mut end = 0;
        for r in ranges {
            assert_eq!(r.start, end, "pieces tile the file");
            assert!(r.end > r.start);
            end = r.end;
        }
        assert_eq!(end, media.len());
    }
});
