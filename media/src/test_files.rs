//! Small media files built byte by byte for the scrubber's tests — MP4/QuickTime/3GP movies and
//! JPEG/EXIF images with known location and identity metadata — and the checks every scrubbing
//! test makes of a copy (same length, only the planned ranges changed, each to its fill).

#![allow(clippy::unwrap_used)]

use crate::copy::merge;
use crate::{plan, scrub_copy, Plan, ScrubError};
use fieldcap_evidence::hashing::Digests;
use std::io;

// The box, TIFF and JPEG-segment primitives are the workspace's one copy, in the test kit; the
// movies and photos below are this crate's own fixtures (their exact bytes are what these tests
// reason about).
pub(crate) use fieldcap_testkit::media::{
    bx, data_box as data, exif, full_box as full, hdlr, jpeg_segment as segment, keys, large_box as large, qt_text, trak, Tiff, GPS_LAT as LAT,
    GPS_LON as LON,
};

// --- ISO-BMFF ---------------------------------------------------------------------------------

pub(crate) fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}
pub(crate) fn mdat_payload() -> Vec<u8> {
    (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

const ISO: &str = "+33.7406-118.2760+012.000/";

/// An Android-style MP4 (ftyp, mdat, moov with udta/©xyz and an MP4 meta/ilst) or, with
/// `quicktime`, an iPhone-style movie (moov/meta with keys and ilst, plain meta).
pub(crate) fn movie(quicktime: bool, large_mdat: bool) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isommp41");
    let mdat = if large_mdat { large(b"mdat", &mdat_payload()) } else { bx(b"mdat", &mdat_payload()) };
    let udta = bx(
        b"udta",
        &cat(&[
            qt_text(b"\xA9xyz", "+33.7406-118.2760/"),
            qt_text(b"\xA9mak", "Google"),
            qt_text(b"\xA9aut", "Jane Doe"),
            bx(b"meta", &cat(&[vec![0; 4], hdlr(b"mdir"), bx(b"ilst", &cat(&[bx(b"\xA9xyz", &data(ISO)), bx(b"\xA9too", &data("Lavf60"))]))])),
            vec![0, 0, 0, 0],
        ]),
    );
    let meta = if quicktime {
        // QuickTime: a plain meta box (no version/flags).
        bx(
            b"meta",
            &cat(&[
                hdlr(b"mdta"),
                keys(&["com.apple.quicktime.location.ISO6709", "com.apple.quicktime.make", "com.apple.quicktime.author"]),
                bx(b"ilst", &cat(&[bx(&1u32.to_be_bytes(), &data(ISO)), bx(&2u32.to_be_bytes(), &data("Apple")), bx(&3u32.to_be_bytes(), &data("Jane Doe"))])),
            ]),
        )
    } else {
        Vec::new()
    };
    let moov = bx(b"moov", &cat(&[full(b"mvhd", &[0u8; 96]), trak(b"vide", &bx(b"udta", &qt_text(b"\xA9xyz", "+33.7406-118.2760/"))), trak(b"soun", &[]), udta, meta]));
    cat(&[ftyp, mdat, moov])
}

// --- checks of a scrubbed copy ----------------------------------------------------------------

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub(crate) fn scrub_bytes(input: &[u8], mime: &str) -> (Plan, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::write(&s, input).unwrap();
    let rep = scrub_copy(&s, &d, mime).unwrap();
    let out = std::fs::read(&d).unwrap();
    assert_eq!(rep.source, Digests::of_bytes(input));
    assert_eq!(rep.output, Digests::of_bytes(&out));
    (Plan { format: rep.format, len: input.len() as u64, blanks: rep.blanked }, out)
}

/// Same length; every byte outside the blanked ranges identical; every byte inside them
/// the fill.
pub(crate) fn assert_only_blanked(input: &[u8], out: &[u8], plan: &Plan) {
    assert_eq!(input.len(), out.len());
    let mut inside = vec![None; input.len()];
    for (s, e, f) in merge(&plan.blanks) {
        for x in &mut inside[s as usize..e as usize] {
            *x = Some(f);
        }
    }
    for (i, (a, b)) in input.iter().zip(out).enumerate() {
        match inside[i] {
            None => assert_eq!(a, b, "byte {i} outside the blanked ranges changed"),
            Some(f) => assert_eq!(*b, f, "byte {i} inside a blanked range"),
        }
    }
}

pub(crate) fn mdat_range(file: &[u8]) -> std::ops::Range<usize> {
    let p = file.windows(4).position(|w| w == b"mdat").unwrap();
    let payload = mdat_payload();
    let start = (p..file.len()).find(|&i| file[i..].starts_with(&payload[..64])).unwrap();
    start..start + payload.len()
}

pub(crate) fn plan_of(f: &[u8], mime: &str) -> Result<Plan, ScrubError> {
    plan(io::Cursor::new(f), f.len() as u64, mime)
}

// --- JPEG / EXIF -------------------------------------------------------------------------------





pub(crate) fn scan_data() -> Vec<u8> {
    // Entropy-coded bytes with stuffed 0xFF 0x00 and restart markers, as a real scan has.
    let mut v: Vec<u8> = (0..3000u32).map(|i| (i.wrapping_mul(40_503) >> 5) as u8).map(|b| if b == 0xFF { 0xFE } else { b }).collect();
    v.splice(100..100, [0xFF, 0x00]);
    v.splice(1000..1000, [0xFF, 0xD0]);
    v.splice(2000..2000, [0xFF, 0xFF, 0xD1]);
    v
}

pub(crate) fn jpeg(little: bool) -> Vec<u8> {
    cat(&[
        vec![0xFF, 0xD8],
        segment(0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0"),
        segment(0xE1, &exif(little)),
        segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPSLatitude 33,44.436N Jane Doe</x:xmpmeta>"),
        segment(0xED, b"Photoshop 3.0\08BIM\x04\x04 By-line: Jane Doe"),
        segment(0xFE, b"taken at 33.7406 -118.2760"),
        segment(0xDB, &[0u8; 65]),
        segment(0xC0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]),
        segment(0xC4, &[0u8; 20]),
        segment(0xDA, &[1, 1, 0, 0, 63, 0]),
        scan_data(),
        vec![0xFF, 0xD9],
    ])
}
