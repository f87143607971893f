//! Structure-aware scrubber fuzzing: ISO-BMFF box trees and JPEG segment lists generated with
//! `arbitrary` (see `fieldcap_fuzz::media`), so the walk reaches moov/trak/udta/meta/keys/ilst,
//! EXIF IFD chains, appended images and motion-photo movies. Besides the promises of the
//! `scrub` target: `mdat` payload and JPEG scan data reached through honest structure are
//! never planned for blanking.
#![no_main]
use arbitrary::Arbitrary;
use fieldcap_fuzz::media::{Movie, Photo};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Movie(Movie, bool),
    Photo(Photo),
}

fuzz_target!(|i: Input| {
    let (built, mime) = match &i {
        Input::Movie(m, qt) => (m.build(), if *qt { "video/quicktime" } else { "video/mp4" }),
        Input::Photo(p) => (p.build(), "image/jpeg"),
    };
    fieldcap_fuzz::scrub::check(&built.bytes, mime, &built.protected);
    if built.bytes.len() % 16 == 0 {
        fieldcap_fuzz::scrub::check_copy(&built.bytes, mime);
    }
});
