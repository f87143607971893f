//! Media files as phones write them, built in memory: ISO-BMFF boxes, an MP4/QuickTime movie
//! that carries its place (`©xyz`, QuickTime location key) and owner, and a JPEG with an EXIF
//! GPS IFD. The release scrubber must blank exactly that metadata and leave the media data
//! byte for byte, so the builders keep the two apart and name the values they hide.

use crate::bytes::seeded;

/// The place a phone writes into a movie's `©xyz` (ISO 6709, as Android writes it).
pub const PLACE_XYZ: &str = "+33.7406-118.2760/";
/// The same place with altitude, as iOS writes it under `com.apple.quicktime.location.ISO6709`.
pub const PLACE_ISO6709: &str = "+33.7406-118.2760+012.000/";
/// The phone owner's name, written into `©aut`, the QuickTime author key, EXIF Artist, XMP and
/// IPTC by-line.
pub const OWNER: &str = "Jane Doe";
/// EXIF GPS latitude of [`PLACE_XYZ`]: 33° 44' 26.16" N, as three rationals.
pub const GPS_LAT: [(u32, u32); 3] = [(33, 1), (44, 1), (2616, 100)];
/// EXIF GPS longitude of [`PLACE_XYZ`]: 118° 16' 33.60" W, as three rationals.
pub const GPS_LON: [(u32, u32); 3] = [(118, 1), (16, 1), (3360, 100)];

// --- ISO-BMFF -------------------------------------------------------------------------------

/// A box: 32-bit size, type, payload.
pub fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(payload);
    v
}

/// A full box: version 0 and flags 0 before the payload.
pub fn full_box(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    bx(typ, &[&[0u8; 4][..], payload].concat())
}

/// A box with a 64-bit size (size field 1, then the large size).
pub fn large_box(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A QuickTime user-data text item (`©xyz`, `©aut` …): one `[u16 length][u16 language][text]`
/// record, as Android writes it.
pub fn qt_text(typ: &[u8; 4], text: &str) -> Vec<u8> {
    bx(typ, &[&(text.len() as u16).to_be_bytes()[..], &0x15c7u16.to_be_bytes()[..], text.as_bytes()].concat())
}

/// An `ilst` value: a `data` atom of type 1 (UTF-8) holding `text`.
pub fn data_box(text: &str) -> Vec<u8> {
    bx(b"data", &[&1u32.to_be_bytes()[..], &[0u8; 4][..], text.as_bytes()].concat())
}

/// A handler box (`hdlr`) naming `handler` (`vide`, `soun`, `mdta`, `mdir` …).
pub fn hdlr(handler: &[u8; 4]) -> Vec<u8> {
    full_box(b"hdlr", &[&[0u8; 4][..], handler, &[0u8; 12][..], b"Handler\0"].concat())
}

/// A QuickTime `keys` box listing `names` (`mdta` namespace); `ilst` item `n` is key `n`.
pub fn keys(names: &[&str]) -> Vec<u8> {
    let mut p = (names.len() as u32).to_be_bytes().to_vec();
    for n in names {
        p.extend_from_slice(&((n.len() + 8) as u32).to_be_bytes());
        p.extend_from_slice(b"mdta");
        p.extend_from_slice(n.as_bytes());
    }
    full_box(b"keys", &p)
}

/// A track of `handler` type with `extra` boxes (e.g. a `udta`) after its media box.
pub fn trak(handler: &[u8; 4], extra: &[u8]) -> Vec<u8> {
    let mdia = bx(b"mdia", &[full_box(b"mdhd", &[0u8; 20]), hdlr(handler), bx(b"minf", &[0u8; 16])].concat());
    bx(b"trak", &[full_box(b"tkhd", &[0u8; 80]), mdia, extra.to_vec()].concat())
}

/// A movie as a phone writes it: `ftyp`, `mdat` holding `mdat` (the "video"; with
/// `large_mdat` a 64-bit box), then `moov` with
/// * a video track whose `udta` holds `©xyz`, and a sound track;
/// * `udta` with `©xyz` ([`PLACE_XYZ`]), `©mak` "Google", `©aut` ([`OWNER`]), and an MP4
///   `meta`/`ilst` with `©xyz` ([`PLACE_ISO6709`]) and `©too` "Lavf60" (Android);
/// * with `quicktime`, a QuickTime `meta` with keys 1 location ([`PLACE_ISO6709`]), 2 make
///   "Apple", 3 author ([`OWNER`]), 4 model "iPhone 15" (iOS).
///
/// The place and the owner are what a release must blank; make, model and tool stay.
pub fn phone_movie(mdat: &[u8], quicktime: bool, large_mdat: bool) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isommp41");
    let mdat = if large_mdat { large_box(b"mdat", mdat) } else { bx(b"mdat", mdat) };
    let ilst = bx(b"ilst", &[bx(b"\xA9xyz", &data_box(PLACE_ISO6709)), bx(b"\xA9too", &data_box("Lavf60"))].concat());
    let udta = bx(
        b"udta",
        &[
            qt_text(b"\xA9xyz", PLACE_XYZ),
            qt_text(b"\xA9mak", "Google"),
            qt_text(b"\xA9aut", OWNER),
            bx(b"meta", &[vec![0; 4], hdlr(b"mdir"), ilst].concat()),
            vec![0, 0, 0, 0],
        ]
        .concat(),
    );
    let meta = if quicktime {
        // QuickTime: a plain meta box (no version and flags).
        let names = ["com.apple.quicktime.location.ISO6709", "com.apple.quicktime.make", "com.apple.quicktime.author", "com.apple.quicktime.model"];
        let values = [PLACE_ISO6709, "Apple", OWNER, "iPhone 15"];
        let items: Vec<u8> = values.iter().enumerate().flat_map(|(i, v)| bx(&(i as u32 + 1).to_be_bytes(), &data_box(v))).collect();
        bx(b"meta", &[hdlr(b"mdta"), keys(&names), bx(b"ilst", &items)].concat())
    } else {
        Vec::new()
    };
    let video = trak(b"vide", &bx(b"udta", &qt_text(b"\xA9xyz", PLACE_XYZ)));
    let moov = bx(b"moov", &[full_box(b"mvhd", &[0u8; 96]), video, trak(b"soun", &[]), udta, meta].concat());
    [ftyp, mdat, moov].concat()
}

// --- JPEG / EXIF ----------------------------------------------------------------------------

/// A TIFF structure (the body of an EXIF block) in either byte order, built IFD by IFD.
#[derive(Debug, Clone)]
pub struct Tiff {
    /// Little-endian (`II`) or big-endian (`MM`).
    pub little: bool,
    /// The bytes so far; offsets are relative to its start.
    pub buf: Vec<u8>,
}

impl Tiff {
    /// A TIFF header (byte order, 42, IFD0 at offset 8).
    pub fn new(little: bool) -> Tiff {
        let mut t = Tiff { little, buf: if little { b"II".to_vec() } else { b"MM".to_vec() } };
        let (m, o) = (t.u16(42), t.u32(8));
        t.buf.extend_from_slice(&m);
        t.buf.extend_from_slice(&o);
        t
    }

    /// `v` in this byte order.
    pub fn u16(&self, v: u16) -> [u8; 2] {
        if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }

    /// `v` in this byte order.
    pub fn u32(&self, v: u32) -> [u8; 4] {
        if self.little {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        }
    }

    /// Appends an IFD with `entries` (tag, type, count, value bytes); values longer than 4
    /// bytes go right after the IFD. Returns the IFD's offset and the offsets of the entries'
    /// 4-byte value fields (to patch pointers with [`Tiff::patch32`]).
    pub fn ifd(&mut self, entries: &[(u16, u16, u32, Vec<u8>)]) -> (u32, Vec<usize>) {
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

    /// Overwrites the 4 bytes at `at` with `v`.
    pub fn patch32(&mut self, at: usize, v: u32) {
        let b = self.u32(v);
        self.buf[at..at + 4].copy_from_slice(&b);
    }

    /// EXIF RATIONALs (numerator, denominator pairs) in this byte order.
    pub fn rationals(&self, v: &[(u32, u32)]) -> Vec<u8> {
        v.iter().flat_map(|(a, b)| [self.u32(*a), self.u32(*b)].concat()).collect()
    }
}

/// An APP1 EXIF payload (`Exif\0\0` and a TIFF) as a phone writes it: IFD0 with Make "Pixel",
/// Artist ([`OWNER`]) and pointers to an Exif IFD (BodySerialNumber "SN123456789",
/// CameraOwnerName "Jane", DateTimeOriginal "2025:01:01 10:00:00") and a GPS IFD (version,
/// N [`GPS_LAT`], W [`GPS_LON`], altitude 12 m).
pub fn exif(little: bool) -> Vec<u8> {
    let mut t = Tiff::new(little);
    let artist = format!("{OWNER}\0");
    let (_, f0) = t.ifd(&[
        (0x010F, 2, 6, b"Pixel\0".to_vec()),
        (0x013B, 2, artist.len() as u32, artist.into_bytes()),
        (0x8769, 4, 1, vec![0; 4]),
        (0x8825, 4, 1, vec![0; 4]),
    ]);
    let (exif_ifd, _) = t.ifd(&[(0xA431, 2, 12, b"SN123456789\0".to_vec()), (0xA430, 2, 5, b"Jane\0".to_vec()), (0x9003, 2, 20, b"2025:01:01 10:00:00\0".to_vec())]);
    let (lat, lon, alt) = (t.rationals(&GPS_LAT), t.rationals(&GPS_LON), t.rationals(&[(12, 1)]));
    let (gps, _) = t.ifd(&[(0, 1, 4, vec![2, 3, 0, 0]), (1, 2, 2, b"N\0".to_vec()), (2, 5, 3, lat), (3, 2, 2, b"W\0".to_vec()), (4, 5, 3, lon), (6, 5, 1, alt)]);
    t.patch32(f0[2], exif_ifd);
    t.patch32(f0[3], gps);
    [&b"Exif\0\0"[..], &t.buf].concat()
}

/// A JPEG marker segment: `FF code`, length, payload.
pub fn jpeg_segment(code: u8, payload: &[u8]) -> Vec<u8> {
    [&[0xFF, code][..], &((payload.len() + 2) as u16).to_be_bytes()[..], payload].concat()
}

/// Entropy-coded scan data as a real scan has it: `len` seeded bytes without `0xFF`, then a
/// stuffed `FF 00` at `len/30`, a restart marker `FF D0` at `len/3` and a padded `FF FF D1` at
/// `2·len/3` (so `len + 7` bytes in all).
pub fn jpeg_scan(len: usize, seed: u64) -> Vec<u8> {
    let mut v: Vec<u8> = seeded(len, seed).into_iter().map(|b| if b == 0xFF { 0xFE } else { b }).collect();
    v.splice(2 * len / 3..2 * len / 3, [0xFF, 0xFF, 0xD1]);
    v.splice(len / 3..len / 3, [0xFF, 0xD0]);
    v.splice(len / 30..len / 30, [0xFF, 0x00]);
    v
}

/// A photo as a phone writes it: SOI, JFIF, [`exif`], an XMP packet and a Photoshop IPTC
/// by-line naming the owner and the place, a comment with the place, quantisation, frame and
/// Huffman tables, the scan header, `scan` (see [`jpeg_scan`]), EOI.
pub fn phone_photo(little: bool, scan: &[u8]) -> Vec<u8> {
    [
        vec![0xFF, 0xD8],
        jpeg_segment(0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0"),
        jpeg_segment(0xE1, &exif(little)),
        jpeg_segment(0xE1, format!("http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>GPSLatitude 33,44.436N {OWNER}</x:xmpmeta>").as_bytes()),
        jpeg_segment(0xED, format!("Photoshop 3.0\08BIM\x04\x04 By-line: {OWNER}").as_bytes()),
        jpeg_segment(0xFE, b"taken at 33.7406 -118.2760"),
        jpeg_segment(0xDB, &[0u8; 65]),
        jpeg_segment(0xC0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]),
        jpeg_segment(0xC4, &[0u8; 20]),
        jpeg_segment(0xDA, &[1, 1, 0, 0, 63, 0]),
        scan.to_vec(),
        vec![0xFF, 0xD9],
    ]
    .concat()
}

// --- fragmented MP4 (live capture) ------------------------------------------------------------

/// Writes a fragmented MP4 made by Debian's `ffmpeg` to `out`: `seconds` of a 320×240 test
/// pattern at 30 fps with a 440 Hz tone (H.264 + AAC), a keyframe and a movie fragment every
/// `gop` frames, as a phone's live recorder produces (`-movflags
/// frag_keyframe+empty_moov+default_base_moof`: init segment, `moof`+`mdat` fragments, `mfra`).
/// Panics if ffmpeg is missing (the test command installs it).
pub fn ffmpeg_fmp4(out: &std::path::Path, seconds: u32, gop: u32) {
    let st = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-preset", "ultrafast", "-g", &gop.to_string(), "-c:a", "aac"])
        .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"])
        .arg(out)
        .status()
        .expect("ffmpeg must be installed (scripts/install_console_test_tools.sh installs Debian's)");
    assert!(st.success(), "ffmpeg failed");
}

/// A fragmented MP4 split the way a recorder hands it over, at top-level boxes (the tests' own
/// split, independent of the core's parser): init = everything before the first `moof`; each
/// `moof` + `mdat` one piece; a trailing `mfra` its own piece.
pub fn fmp4_pieces(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut boxes = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        boxes.push((pos, pos + size, bytes[pos + 4..pos + 8].to_vec()));
        pos += size;
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut init_done = false;
    for (s, e, t) in boxes {
        if !init_done && (t == b"moof" || t == b"mfra") {
            out.push(std::mem::take(&mut cur));
            init_done = true;
        }
        cur.extend_from_slice(&bytes[s..e]);
        if init_done && (t == b"mdat" || t == b"mfra") {
            out.push(std::mem::take(&mut cur));
        }
    }
    assert!(cur.is_empty(), "the file ends inside a piece");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_movie_holds_its_media_and_what_a_release_must_blank() {
        let mdat = seeded(4096, 1);
        for (qt, large) in [(false, false), (true, true)] {
            let m = phone_movie(&mdat, qt, large);
            assert!(find(&m, &mdat) && find(&m, PLACE_XYZ.as_bytes()) && find(&m, OWNER.as_bytes()));
            assert_eq!(find(&m, b"com.apple.quicktime.location.ISO6709"), qt);
        }
        assert_eq!(u32::from_be_bytes(bx(b"free", b"abc")[..4].try_into().unwrap()), 11);
        assert_eq!(large_box(b"mdat", b"abc").len(), 19);
    }

    #[test]
    fn the_photo_holds_its_scan_and_gps_in_either_byte_order() {
        let scan = jpeg_scan(3000, 2);
        assert_eq!(scan.len(), 3007);
        for little in [true, false] {
            let p = phone_photo(little, &scan);
            assert!(p.starts_with(&[0xFF, 0xD8]) && p.ends_with(&[0xFF, 0xD9]));
            assert!(find(&p, &scan) && find(&p, &Tiff::new(little).rationals(&GPS_LAT)));
        }
    }
}
