//! Small media files built byte by byte for the scrubber's tests — MP4/QuickTime/3GP movies and
//! JPEG/EXIF images with known location and identity metadata — and the checks every scrubbing
//! test makes of a copy (same length, only the planned ranges changed, each to its fill).

#![allow(clippy::unwrap_used)]

use crate::copy::merge;
use crate::{plan, scrub_copy, Plan, ScrubError};
use fieldcap_evidence::hashing::Digests;
use std::io;

// --- ISO-BMFF ---------------------------------------------------------------------------------

pub(crate) fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(payload);
    v
}
pub(crate) fn full(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 4];
    p.extend_from_slice(payload);
    bx(typ, &p)
}
pub(crate) fn large(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
    v.extend_from_slice(payload);
    v
}
pub(crate) fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}
pub(crate) fn hdlr(handler: &[u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 4];
    p.extend_from_slice(handler);
    p.extend_from_slice(&[0u8; 12]);
    p.extend_from_slice(b"Handler\0");
    full(b"hdlr", &p)
}
pub(crate) fn qt_text(typ: &[u8; 4], text: &str) -> Vec<u8> {
    let mut p = (text.len() as u16).to_be_bytes().to_vec();
    p.extend_from_slice(&0x15c7u16.to_be_bytes());
    p.extend_from_slice(text.as_bytes());
    bx(typ, &p)
}
pub(crate) fn data(text: &str) -> Vec<u8> {
    let mut p = 1u32.to_be_bytes().to_vec();
    p.extend_from_slice(&[0u8; 4]);
    p.extend_from_slice(text.as_bytes());
    bx(b"data", &p)
}
pub(crate) fn keys(names: &[&str]) -> Vec<u8> {
    let mut p = (names.len() as u32).to_be_bytes().to_vec();
    for n in names {
        p.extend_from_slice(&((n.len() + 8) as u32).to_be_bytes());
        p.extend_from_slice(b"mdta");
        p.extend_from_slice(n.as_bytes());
    }
    full(b"keys", &p)
}
pub(crate) fn trak(handler: &[u8; 4], extra: &[u8]) -> Vec<u8> {
    let mdia = bx(b"mdia", &cat(&[full(b"mdhd", &[0u8; 20]), hdlr(handler), bx(b"minf", &[0u8; 16])]));
    bx(b"trak", &cat(&[full(b"tkhd", &[0u8; 80]), mdia, extra.to_vec()]))
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

pub(crate) struct Tiff {
    pub(crate) little: bool,
    pub(crate) buf: Vec<u8>,
}
impl Tiff {
    fn u16(&self, v: u16) -> [u8; 2] {
        if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }
    fn u32(&self, v: u32) -> [u8; 4] {
        if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }
    /// Appends an IFD with `entries` (tag, type, count, value bytes); values longer than 4
    /// bytes go after the IFD. Returns the IFD offset and the offsets of the entries'
    /// 4-byte fields (to patch pointers).
    pub(crate) fn ifd(&mut self, entries: &[(u16, u16, u32, Vec<u8>)]) -> (u32, Vec<usize>) {
        let start = self.buf.len();
        let mut data_at = start + 2 + 12 * entries.len() + 4;
        let mut fields = Vec::new();
        let mut tail = Vec::new();
        let cnt = self.u16(entries.len() as u16);
        self.buf.extend_from_slice(&cnt);
        for (tag, typ, count, val) in entries {
            let (a, b, c) = (self.u16(*tag), self.u16(*typ), self.u32(*count));
            self.buf.extend_from_slice(&a);
            self.buf.extend_from_slice(&b);
            self.buf.extend_from_slice(&c);
            fields.push(self.buf.len());
            if val.len() <= 4 {
                let mut v = val.clone();
                v.resize(4, 0);
                self.buf.extend_from_slice(&v);
            } else {
                let o = self.u32(data_at as u32);
                self.buf.extend_from_slice(&o);
                tail.extend_from_slice(val);
                data_at += val.len();
            }
        }
        self.buf.extend_from_slice(&[0u8; 4]);
        self.buf.extend_from_slice(&tail);
        (start as u32, fields)
    }
    pub(crate) fn patch32(&mut self, at: usize, v: u32) {
        let b = self.u32(v);
        self.buf[at..at + 4].copy_from_slice(&b);
    }
    pub(crate) fn rationals(&self, v: &[(u32, u32)]) -> Vec<u8> {
        v.iter().flat_map(|(a, b)| [self.u32(*a), self.u32(*b)].concat()).collect()
    }
}

pub(crate) const LAT: [(u32, u32); 3] = [(33, 1), (44, 1), (2616, 100)];
pub(crate) const LON: [(u32, u32); 3] = [(118, 1), (16, 1), (3360, 100)];

pub(crate) fn exif(little: bool) -> Vec<u8> {
    let mut t = Tiff { little, buf: Vec::new() };
    t.buf.extend_from_slice(if little { b"II" } else { b"MM" });
    let m = t.u16(42);
    t.buf.extend_from_slice(&m);
    let o = t.u32(8);
    t.buf.extend_from_slice(&o);
    let (_, f0) = t.ifd(&[
        (0x010F, 2, 6, b"Pixel\0".to_vec()),
        (0x013B, 2, 9, b"Jane Doe\0".to_vec()),
        (0x8769, 4, 1, vec![0; 4]),
        (0x8825, 4, 1, vec![0; 4]),
    ]);
    let (exif_ifd, _) = t.ifd(&[(0xA431, 2, 12, b"SN123456789\0".to_vec()), (0xA430, 2, 5, b"Jane\0".to_vec()), (0x9003, 2, 20, b"2025:01:01 10:00:00\0".to_vec())]);
    let (lat, lon) = (t.rationals(&LAT), t.rationals(&LON));
    let alt = t.rationals(&[(12, 1)]);
    let (gps, _) = t.ifd(&[(0, 1, 4, vec![2, 3, 0, 0]), (1, 2, 2, b"N\0".to_vec()), (2, 5, 3, lat), (3, 2, 2, b"W\0".to_vec()), (4, 5, 3, lon), (6, 5, 1, alt)]);
    t.patch32(f0[2], exif_ifd);
    t.patch32(f0[3], gps);
    let mut seg = b"Exif\0\0".to_vec();
    seg.extend_from_slice(&t.buf);
    seg
}

pub(crate) fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0xFF, code];
    v.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

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
