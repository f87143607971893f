//! The release scrubber (`fieldcap_media`) over arbitrary bytes as MP4 or JPEG: never panics,
//! a planned copy differs only inside its ranges, scrubbing the copy again changes nothing, and
//! (for one input in 16) the real `scrub_copy` writes exactly the planned bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let mime = match which % 4 {
        0 => "image/jpeg",
        1 => "video/mp4",
        2 => "video/quicktime",
        _ => "audio/mp4",
    };
    fieldcap_fuzz::scrub::check(rest, mime, &[]);
    if which >> 4 == 0 {
        fieldcap_fuzz::scrub::check_copy(rest, mime);
    }
});
