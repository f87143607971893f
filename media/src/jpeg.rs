//! JPEG (ITU T.81) with EXIF (CIPA DC-008) and XMP (ISO 16684-1 / Adobe XMP part 3).
//!
//! Every segment is walked, entropy-coded data scanned for the next marker. In EXIF every value
//! of the GPS IFD is zeroed (inline or at its offset) and the identity and free-text tags of
//! [`exif_deny`] are zeroed in IFD0, IFD1 and the Exif IFD; the EXIF thumbnail is scrubbed the
//! same way (zeroed whole if it is not a readable JPEG). XMP (APP1) and comments (COM) become
//! spaces; APP0 JFIF, APP2 `ICC_PROFILE`/`MPF` and APP14 `Adobe` are kept; every other APPn
//! segment (IPTC, vendor blocks, C2PA/JUMBF) is zeroed. Images appended after the first (MPF
//! secondary images) are scrubbed as JPEGs, an appended motion-photo movie as ISO-BMFF; zero
//! padding is accepted, any other trailing data refused. EXIF whose blanked values or thumbnail
//! overlap its TIFF header or IFDs is refused, so blanking never changes structure.

use crate::isobmff::walk_bmff;
use crate::walk::{clean, too_deep, Ctx, Src, MAX_DEPTH};
use crate::{malformed, Category, Fill, ScrubError, R};
use std::collections::BTreeSet;
use std::io::{Read, Seek};

/// Most IFDs followed in one EXIF block.
const MAX_IFDS: usize = 32;
/// Most images (primary, MPF secondary images) in one JPEG file.
const MAX_IMAGES: usize = 16;
/// APP1 identifier of an XMP packet.
const XMP_NS: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
/// APP1 identifier of an extended-XMP chunk (followed by a 32-byte GUID and two 32-bit words).
const XMP_EXT_NS: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";

/// The file: the primary image, then whatever follows its end-of-image marker.
pub(crate) fn walk_jpeg_file<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx) -> R<()> {
    let len = src.len;
    let mut pos = walk_jpeg(src, ctx, 0, len, "JPEG", 0)?;
    let mut images = 1;
    while pos < len {
        let head = src.bytes(pos, (len - pos).min(8))?;
        if head.starts_with(&[0xFF, 0xD8]) {
            // A secondary image (MPF: HDR gain map, depth map, preview): scrubbed the same way.
            images += 1;
            if images > MAX_IMAGES {
                return malformed("more appended images than any camera writes");
            }
            pos = walk_jpeg(src, ctx, pos, len, &format!("JPEG image {images}"), 1)?;
        } else if head.len() == 8 && &head[4..8] == b"ftyp" {
            // A motion photo: a movie appended to the still. It carries its own location atoms.
            return walk_bmff(src, ctx, pos, len, "appended movie", 1);
        } else if all_zero(src, pos, len)? {
            return Ok(());
        } else {
            return Err(ScrubError::Unsupported(format!("{} bytes of unknown data follow the image at offset {pos}", len - pos)));
        }
    }
    Ok(())
}

fn all_zero<T: Read + Seek>(src: &mut Src<T>, mut pos: u64, end: u64) -> R<bool> {
    while pos < end {
        let w = src.window_at(pos, end)?;
        if w.iter().any(|b| *b != 0) {
            return Ok(false);
        }
        pos += w.len() as u64;
    }
    Ok(true)
}

/// One JPEG image in `[start, end)`; returns the offset after its end-of-image marker.
fn walk_jpeg<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, start: u64, end: u64, path: &str, depth: u32) -> R<u64> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    if end - start < 4 || src.bytes(start, 2)? != [0xFF, 0xD8] {
        return malformed(format!("{path}: no JPEG start-of-image marker"));
    }
    let mut pos = start + 2;
    loop {
        ctx.count()?;
        if pos >= end {
            return malformed(format!("{path}: no end-of-image marker"));
        }
        if src.u8_at(pos)? != 0xFF {
            return malformed(format!("{path}: expected a marker at offset {pos}"));
        }
        // Any number of 0xFF fill bytes may precede the marker code.
        let mut p = pos + 1;
        let code = loop {
            if p >= end {
                return malformed(format!("{path}: truncated marker at offset {pos}"));
            }
            let c = src.u8_at(p)?;
            if c != 0xFF {
                break c;
            }
            p += 1;
        };
        let after = p + 1;
        match code {
            0xD9 => return Ok(after),
            0xD0..=0xD7 | 0x01 => pos = after,
            0x00 | 0xD8 => return malformed(format!("{path}: unexpected marker 0x{code:02X} at offset {p}")),
            _ => {
                if end - after < 2 {
                    return malformed(format!("{path}: truncated segment at offset {pos}"));
                }
                let seg_len = u64::from(src.be16(after)?);
                if seg_len < 2 || seg_len > end - after {
                    return malformed(format!("{path}: segment 0x{code:02X} at offset {pos} has length {seg_len}"));
                }
                let (body, seg_end) = (after + 2, after + seg_len);
                jpeg_segment(src, ctx, code, body, seg_end, path, depth)?;
                pos = if code == 0xDA { scan_entropy(src, seg_end, end, path)? } else { seg_end };
            }
        }
    }
}

/// After a start-of-scan header: the offset of the next marker's 0xFF, skipping entropy-coded
/// data (0xFF 0x00 is a stuffed 0xFF byte, 0xFF 0xD0..0xD7 a restart marker, 0xFF 0xFF fill).
fn scan_entropy<T: Read + Seek>(src: &mut Src<T>, from: u64, end: u64, path: &str) -> R<u64> {
    let mut p = from;
    loop {
        if p >= end {
            return malformed(format!("{path}: the scan data runs to the end without an end-of-image marker"));
        }
        let found = src.window_at(p, end)?.iter().position(|b| *b == 0xFF);
        let Some(i) = found else {
            p += src.window_at(p, end)?.len() as u64;
            continue;
        };
        let mut r = p + i as u64 + 1;
        loop {
            if r >= end {
                return malformed(format!("{path}: the scan data runs to the end without an end-of-image marker"));
            }
            match src.u8_at(r)? {
                0xFF => r += 1,
                0x00 | 0xD0..=0xD7 => {
                    p = r + 1;
                    break;
                }
                _ => return Ok(r - 1),
            }
        }
    }
}

fn jpeg_segment<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, code: u8, body: u64, end: u64, path: &str, depth: u32) -> R<()> {
    let head = src.bytes(body, (end - body).min(40))?;
    let id_len = head.iter().position(|b| *b == 0).unwrap_or(head.len()).min(24);
    let label = format!("{path}/APP{} {}", code.wrapping_sub(0xE0), clean(&head[..id_len]));
    match code {
        0xE0 if head.starts_with(b"JFIF\0") => Ok(()),
        0xE1 if head.starts_with(b"Exif\0") && head.len() >= 6 => scrub_exif(src, ctx, body + 6, end, &format!("{path}/EXIF"), depth),
        0xE1 if head.starts_with(XMP_NS) => ctx.blank(format!("{path}/XMP packet"), Category::Other, body + XMP_NS.len() as u64, end, Fill::Spaces),
        0xE1 if head.starts_with(XMP_EXT_NS) => {
            // Header: namespace, 32-byte GUID, full length, chunk offset; then packet text.
            let text = (body + XMP_EXT_NS.len() as u64 + 40).min(end);
            ctx.blank(format!("{path}/extended XMP"), Category::Other, text, end, Fill::Spaces)
        }
        0xE2 if head.starts_with(b"ICC_PROFILE\0") || head.starts_with(b"MPF\0") => Ok(()),
        0xEE if head.starts_with(b"Adobe") => Ok(()),
        0xE0..=0xEF => ctx.blank(label, Category::Other, body, end, Fill::Zeros),
        0xFE => ctx.blank(format!("{path}/COM comment"), Category::FreeText, body, end, Fill::Spaces),
        // Tables, frame and scan headers, restart interval …: image structure, kept.
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ifd {
    /// IFD0, IFD1 … (the chain of image directories).
    Main(u32),
    Exif,
    Gps,
}

/// EXIF tags blanked outside the GPS IFD (where every value is blanked).
fn exif_deny(tag: u16) -> Option<(&'static str, Category)> {
    Some(match tag {
        0x010E => ("ImageDescription", Category::FreeText),
        0x013B => ("Artist", Category::Identity),
        0x013C => ("HostComputer", Category::Identity),
        0x02BC => ("XMP", Category::Other),
        0x83BB => ("IPTC-NAA", Category::Other),
        0x8298 => ("Copyright", Category::Identity),
        0x8649 => ("Photoshop", Category::Other),
        0x927C => ("MakerNote", Category::Other),
        0x9286 => ("UserComment", Category::FreeText),
        0x9C9B => ("XPTitle", Category::FreeText),
        0x9C9C => ("XPComment", Category::FreeText),
        0x9C9D => ("XPAuthor", Category::Identity),
        0x9C9E => ("XPKeywords", Category::FreeText),
        0x9C9F => ("XPSubject", Category::FreeText),
        0xA430 => ("CameraOwnerName", Category::Identity),
        0xA431 => ("BodySerialNumber", Category::Identity),
        0xA435 => ("LensSerialNumber", Category::Identity),
        0xA436 => ("ImageTitle", Category::FreeText),
        0xA437 => ("Photographer", Category::Identity),
        0xA438 => ("ImageEditor", Category::Identity),
        _ => return None,
    })
}

fn gps_tag_name(tag: u16) -> &'static str {
    const NAMES: [&str; 32] = [
        "GPSVersionID",
        "GPSLatitudeRef",
        "GPSLatitude",
        "GPSLongitudeRef",
        "GPSLongitude",
        "GPSAltitudeRef",
        "GPSAltitude",
        "GPSTimeStamp",
        "GPSSatellites",
        "GPSStatus",
        "GPSMeasureMode",
        "GPSDOP",
        "GPSSpeedRef",
        "GPSSpeed",
        "GPSTrackRef",
        "GPSTrack",
        "GPSImgDirectionRef",
        "GPSImgDirection",
        "GPSMapDatum",
        "GPSDestLatitudeRef",
        "GPSDestLatitude",
        "GPSDestLongitudeRef",
        "GPSDestLongitude",
        "GPSDestBearingRef",
        "GPSDestBearing",
        "GPSDestDistanceRef",
        "GPSDestDistance",
        "GPSProcessingMethod",
        "GPSAreaInformation",
        "GPSDateStamp",
        "GPSDifferential",
        "GPSHPositioningError",
    ];
    NAMES.get(tag as usize).copied().unwrap_or("GPS tag")
}

/// Bytes per value of a TIFF field type; None for a type this module does not know.
fn tiff_type_size(typ: u16) -> Option<u64> {
    Some(match typ {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 => 8,
        _ => return None,
    })
}

/// The TIFF structure of an EXIF APP1 segment, `[start, end)` (at most 64 KiB, read whole).
/// Offsets inside are relative to `start`.
///
/// A block in which a value to be blanked (or the thumbnail) overlaps the TIFF header or any
/// IFD followed (its entry count, entry table or next-IFD pointer) is refused: blanking it would
/// change the structure a reader — and a second scrub — walks, so the copy would no longer parse
/// or would scrub differently. Only an entry's own 4-byte value field may be blanked in place.
fn scrub_exif<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, start: u64, end: u64, path: &str, depth: u32) -> R<()> {
    let t = src.bytes(start, end - start)?;
    let len = t.len() as u64;
    let little = match t.get(0..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return malformed(format!("{path}: no TIFF byte-order mark")),
    };
    let rd16 = |o: u64| -> R<u16> {
        let s = t.get(o as usize..(o as usize).saturating_add(2)).ok_or_else(|| ScrubError::Malformed(format!("{path}: an offset points outside the EXIF block")))?;
        let a = [s[0], s[1]];
        Ok(if little { u16::from_le_bytes(a) } else { u16::from_be_bytes(a) })
    };
    let rd32 = |o: u64| -> R<u32> {
        let s = t.get(o as usize..(o as usize).saturating_add(4)).ok_or_else(|| ScrubError::Malformed(format!("{path}: an offset points outside the EXIF block")))?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if little { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) })
    };
    if rd16(2)? != 42 {
        return malformed(format!("{path}: not a TIFF header"));
    }
    let mut queue: Vec<(u32, Ifd)> = vec![(rd32(4)?, Ifd::Main(0))];
    let mut seen = BTreeSet::new();
    // Structure a reader walks, relative to the TIFF header: the header itself, then every
    // IFD followed, from its entry count to the end of its next-IFD pointer.
    let mut structure: Vec<(u64, u64, String)> = vec![(0, 8, "the TIFF header".into())];
    // Values to blank: (range, tag, the IFD whose entry holds the value inline, if it does).
    let mut values: Vec<(u64, u64, u16, Option<usize>)> = Vec::new();
    let mut thumb: (Option<u32>, Option<u32>) = (None, None);
    while let Some((off, kind)) = queue.pop() {
        // The chain of image directories ends with offset 0; an IFD seen before is a loop.
        if off == 0 || !seen.insert(off) {
            continue;
        }
        if seen.len() > MAX_IFDS {
            return malformed(format!("{path}: more IFDs than any camera writes"));
        }
        let o = u64::from(off);
        let n = u64::from(rd16(o)?);
        let entries_end = o + 2 + 12 * n;
        if entries_end + 4 > len {
            return malformed(format!("{path}: an IFD at offset {o} runs past the EXIF block"));
        }
        let this_ifd = structure.len();
        let name = match kind {
            Ifd::Main(k) => format!("IFD{k}"),
            Ifd::Exif => "the Exif IFD".into(),
            Ifd::Gps => "the GPS IFD".into(),
        };
        structure.push((o, entries_end + 4, format!("{name} at offset {o}: its entry count, entries or next-IFD pointer")));
        for i in 0..n {
            let e = o + 2 + 12 * i;
            let (tag, typ, count) = (rd16(e)?, rd16(e + 2)?, rd32(e + 4)?);
            let field = e + 8;
            // Where the value lives: in the 4-byte field if it fits, else at the offset it holds.
            let value = match tiff_type_size(typ) {
                Some(sz) => {
                    let bytes = u64::from(count) * sz;
                    if bytes <= 4 {
                        Some((field, field + 4, Some(this_ifd)))
                    } else {
                        let vo = u64::from(rd32(field)?);
                        if vo.checked_add(bytes).is_none_or(|ve| ve > len) {
                            return malformed(format!("{path}: tag 0x{tag:04X} points outside the EXIF block"));
                        }
                        Some((vo, vo + bytes, None))
                    }
                }
                None => None,
            };
            match (kind, tag) {
                (Ifd::Gps, _) => {
                    let (a, b, inline) = value.ok_or_else(|| ScrubError::Malformed(format!("{path}: GPS tag 0x{tag:04X} has unknown type {typ}")))?;
                    values.push((a, b, tag, inline));
                    ctx.blank(format!("{path}/GPS IFD 0x{tag:04X} {}", gps_tag_name(tag)), Category::Location, start + a, start + b, Fill::Zeros)?;
                }
                (_, 0x8825) => queue.push((rd32(field)?, Ifd::Gps)),
                (Ifd::Main(_), 0x8769) => queue.push((rd32(field)?, Ifd::Exif)),
                (Ifd::Main(1), 0x0201) => thumb.0 = Some(rd32(field)?),
                (Ifd::Main(1), 0x0202) => thumb.1 = Some(rd32(field)?),
                (_, tag) => {
                    if let Some((name, cat)) = exif_deny(tag) {
                        let (a, b, inline) = value.ok_or_else(|| ScrubError::Malformed(format!("{path}: tag 0x{tag:04X} has unknown type {typ}")))?;
                        values.push((a, b, tag, inline));
                        let ifd = match kind {
                            Ifd::Main(k) => format!("IFD{k}"),
                            _ => "Exif IFD".into(),
                        };
                        ctx.blank(format!("{path}/{ifd} 0x{tag:04X} {name}"), cat, start + a, start + b, Fill::Zeros)?;
                    }
                }
            }
        }
        if let Ifd::Main(k) = kind {
            queue.push((rd32(entries_end)?, Ifd::Main(k + 1)));
        }
    }
    // Blanking must leave every structure byte as it was (see above): the second walk of the
    // copy then follows the same IFDs and entries and plans the same ranges.
    let overlaps = |a: u64, b: u64, s: u64, e: u64| a < e && s < b;
    for &(a, b, tag, inline) in &values {
        for (i, (s, e, what)) in structure.iter().enumerate() {
            // An inline value is its own entry's value field: inside its IFD, but no other.
            if overlaps(a, b, *s, *e) && inline != Some(i) {
                return malformed(format!("{path}: the value of tag 0x{tag:04X} overlaps the IFD structure ({what})"));
            }
        }
    }
    if let (Some(to), Some(tl)) = thumb {
        let (a, b) = (u64::from(to), u64::from(to) + u64::from(tl));
        if b > len {
            return malformed(format!("{path}: the thumbnail runs past the EXIF block"));
        }
        if tl > 0 {
            // The thumbnail's own blanks (or its zeroing) must not touch structure either, and
            // no blanked value may change the thumbnail's segments under it.
            if let Some((_, _, what)) = structure.iter().find(|(s, e, _)| overlaps(a, b, *s, *e)) {
                return malformed(format!("{path}: the thumbnail overlaps the IFD structure ({what})"));
            }
            if let Some(&(_, _, tag, _)) = values.iter().find(|v| overlaps(a, b, v.0, v.1)) {
                return malformed(format!("{path}: the value of tag 0x{tag:04X} overlaps the thumbnail"));
            }
            // The thumbnail is a JPEG with its own segments; one that does not parse is zeroed.
            let mark = ctx.blanks.len();
            match walk_jpeg(src, ctx, start + a, start + b, &format!("{path}/thumbnail"), depth + 1) {
                Ok(_) => {}
                Err(ScrubError::Malformed(_)) => {
                    ctx.blanks.truncate(mark);
                    ctx.blank(format!("{path}/thumbnail (not a readable JPEG)"), Category::Other, start + a, start + b, Fill::Zeros)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::test_files::*;
    use crate::{Format, Plan, ScrubError};
    use proptest::prelude::*;

    #[test]
    fn jpeg_gps_ifd_identity_tags_xmp_and_comments_are_blanked() {
        for little in [true, false] {
            let input = jpeg(little);
            let (plan, out) = scrub_bytes(&input, "image/jpeg");
            assert_eq!(plan.format, Format::Jpeg);
            assert_only_blanked(&input, &out, &plan);
            let t = Tiff { little, buf: Vec::new() };
            for r in [t.rationals(&LAT), t.rationals(&LON)] {
                assert!(find(&input, &r));
                assert!(!find(&out, &r), "GPS rationals still in the copy");
            }
            for gone in ["Jane", "SN123456789", "GPSLatitude", "33.7406", "118.2760", "By-line"] {
                assert!(!find(&out, gone.as_bytes()), "{gone} (little {little})");
            }
            for kept in ["Pixel", "2025:01:01 10:00:00", "JFIF"] {
                assert!(find(&out, kept.as_bytes()), "{kept}");
            }
            let scan = scan_data();
            let at = input.windows(scan.len()).position(|w| w == scan.as_slice()).unwrap();
            assert_eq!(&out[at..at + scan.len()], scan.as_slice(), "scan data identical");
            let whats: Vec<&str> = plan.blanks.iter().map(|b| b.what.as_str()).collect();
            for w in ["JPEG/EXIF/GPS IFD 0x0002 GPSLatitude", "JPEG/EXIF/GPS IFD 0x0004 GPSLongitude", "JPEG/EXIF/IFD0 0x013B Artist", "JPEG/EXIF/Exif IFD 0xA431 BodySerialNumber", "JPEG/EXIF/Exif IFD 0xA430 CameraOwnerName", "JPEG/COM comment", "JPEG/XMP packet"] {
                assert!(whats.contains(&w), "{w} not in {whats:?}");
            }
            let (again, out2) = scrub_bytes(&out, "image/jpeg");
            // Same ranges (an APPn label names the identifier the first pass zeroed, so compare ranges).
            let ranges = |p: &Plan| p.blanks.iter().map(|b| (b.offset, b.len, b.fill)).collect::<Vec<_>>();
            assert_eq!(ranges(&again), ranges(&plan));
            assert_eq!(out, out2);
        }
    }

    #[test]
    fn jpeg_secondary_images_and_trailers() {
        let one = jpeg(true);
        // An MPF secondary image: scrubbed too.
        let two = cat(&[one.clone(), jpeg(false)]);
        let (plan, out) = scrub_bytes(&two, "image/jpeg");
        assert_only_blanked(&two, &out, &plan);
        assert!(plan.blanks.iter().any(|b| b.what.starts_with("JPEG image 2/EXIF/GPS IFD")));
        // Zero padding after the image is fine.
        let padded = cat(&[one.clone(), vec![0u8; 100]]);
        assert!(plan_of(&padded, "image/jpeg").is_ok());
        // A motion photo: the appended movie's location is blanked as well.
        let motion = cat(&[one.clone(), movie(false, false)]);
        let (plan, out) = scrub_bytes(&motion, "image/jpeg");
        assert_only_blanked(&motion, &out, &plan);
        assert!(!find(&out, b"118.2760"));
        assert!(plan.blanks.iter().any(|b| b.what == "appended movie/moov/udta/©xyz"), "{:?}", plan.blanks);
        // Unknown trailing data is refused.
        let trailer = cat(&[one.clone(), b"SEFH some vendor trailer".to_vec()]);
        assert!(matches!(plan_of(&trailer, "image/jpeg"), Err(ScrubError::Unsupported(_))));
    }

    #[test]
    fn exif_thumbnail_is_scrubbed_and_an_unreadable_one_zeroed() {
        // IFD1 with a thumbnail that itself carries a COM segment naming a place.
        let thumb = cat(&[vec![0xFF, 0xD8], segment(0xFE, b"near 33.7406"), segment(0xDA, &[1, 1, 0, 0, 63, 0]), vec![1, 2, 3, 0xFF, 0xD9]]);
        for (thumb, unreadable) in [(thumb.clone(), false), (b"not a jpeg at all 33.7406".to_vec(), true)] {
            let mut t = Tiff { little: false, buf: b"MM\0\x2a\0\0\0\x08".to_vec() };
            let (_, f0) = t.ifd(&[(0x010F, 2, 6, b"Pixel\0".to_vec())]);
            // IFD0's next pointer sits right after its single entry.
            let next_at = f0[0] + 4;
            let (ifd1, f1) = t.ifd(&[(0x0201, 4, 1, vec![0; 4]), (0x0202, 4, 1, vec![0; 4])]);
            t.patch32(next_at, ifd1);
            let at = t.buf.len() as u32;
            t.buf.extend_from_slice(&thumb);
            t.patch32(f1[0], at);
            t.patch32(f1[1], thumb.len() as u32);
            let mut seg = b"Exif\0\0".to_vec();
            seg.extend_from_slice(&t.buf);
            let f = cat(&[vec![0xFF, 0xD8], segment(0xE1, &seg), segment(0xDA, &[1, 1, 0, 0, 63, 0]), scan_data(), vec![0xFF, 0xD9]]);
            let (plan, out) = scrub_bytes(&f, "image/jpeg");
            assert_only_blanked(&f, &out, &plan);
            assert!(!find(&out, b"33.7406"));
            assert_eq!(plan.blanks.iter().any(|b| b.what.contains("not a readable JPEG")), unreadable);
        }
    }

    #[test]
    fn malformed_jpegs_are_refused() {
        let good = jpeg(true);
        let app1 = good.windows(6).position(|w| w == b"Exif\0\0").unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("no SOI", good[2..].to_vec()),
            ("truncated", good[..good.len() - 2].to_vec()),
            ("truncated segment", good[..app1 + 10].to_vec()),
            ("segment length 1", {
                let mut f = good.clone();
                f[app1 - 2..app1].copy_from_slice(&1u16.to_be_bytes());
                f
            }),
            ("segment past the end", cat(&[vec![0xFF, 0xD8], vec![0xFF, 0xE1, 0xFF, 0xFF, b'E']])),
            ("bad TIFF", cat(&[vec![0xFF, 0xD8], segment(0xE1, b"Exif\0\0XX\0\x2a\0\0\0\x08"), vec![0xFF, 0xD9]])),
            ("IFD offset outside", cat(&[vec![0xFF, 0xD8], segment(0xE1, b"Exif\0\0MM\0\x2a\xff\0\0\x08"), vec![0xFF, 0xD9]])),
            ("random", (0..5000u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 7) as u8).collect()),
            ("an MP4", movie(false, false)),
        ];
        for (name, f) in cases {
            let r = plan_of(&f, "image/jpeg");
            assert!(matches!(r, Err(ScrubError::Malformed(_))), "{name}: {r:?}");
        }
        // A GPS value pointing outside the EXIF block.
        let mut f = good.clone();
        let t = Tiff { little: true, buf: Vec::new() };
        let lat = t.rationals(&LAT);
        let at = f.windows(lat.len()).position(|w| w == lat.as_slice()).unwrap();
        let tiff = app1 + 6;
        let rel = (at - tiff) as u32;
        let ptr = f.windows(4).position(|w| w == rel.to_le_bytes()).unwrap();
        f[ptr..ptr + 4].copy_from_slice(&60_000u32.to_le_bytes());
        assert!(matches!(plan_of(&f, "image/jpeg"), Err(ScrubError::Malformed(_))));
    }

    #[test]
    fn an_ifd_loop_terminates() {
        let mut t = Tiff { little: true, buf: b"II\x2a\0\x08\0\0\0".to_vec() };
        let (_, f0) = t.ifd(&[(0x010F, 2, 6, b"Pixel\0".to_vec())]);
        // IFD0's next pointer points back at IFD0.
        t.patch32(f0[0] + 4, 8);
        let mut seg = b"Exif\0\0".to_vec();
        seg.extend_from_slice(&t.buf);
        let f = cat(&[vec![0xFF, 0xD8], segment(0xE1, &seg), vec![0xFF, 0xD9]]);
        assert!(plan_of(&f, "image/jpeg").is_ok());
    }

    /// A JPEG whose only metadata is the EXIF block `tiff`.
    fn with_exif(tiff: &[u8]) -> Vec<u8> {
        let mut seg = b"Exif\0\0".to_vec();
        seg.extend_from_slice(tiff);
        cat(&[vec![0xFF, 0xD8], segment(0xE1, &seg), segment(0xDA, &[1, 1, 0, 0, 63, 0]), scan_data(), vec![0xFF, 0xD9]])
    }

    /// IFD0 (Make, Artist, GPS pointer, next pointer) and a GPS IFD with a latitude; returns
    /// the TIFF, IFD0's value fields, IFD0's offset and entry count, and the GPS IFD's fields.
    fn ifd0_and_gps(little: bool) -> (Tiff, Vec<usize>, Vec<usize>) {
        let mut t = Tiff::new(little);
        let (_, f0) = t.ifd(&[(0x010F, 2, 6, b"Pixel\0".to_vec()), (0x013B, 2, 9, b"Jane Doe\0".to_vec()), (0x8825, 4, 1, vec![0; 4])]);
        let (gps, fg) = t.ifd(&[(1, 2, 2, b"N\0".to_vec()), (2, 5, 3, t.rationals(&LAT))]);
        t.patch32(f0[2], gps);
        (t, f0, fg)
    }

    /// Plans `f`, scrubs it in memory, plans the copy and scrubs it again: the copy must parse
    /// and the second scrub must change nothing (the promises the fuzz harness checks).
    fn settles(f: &[u8], mime: &str) -> Result<(), String> {
        let apply = |d: &[u8], p: &Plan| {
            let mut o = d.to_vec();
            for b in &p.blanks {
                o[b.offset as usize..(b.offset + b.len) as usize].fill(b.fill.byte());
            }
            o
        };
        let Ok(p) = plan_of(f, mime) else { return Ok(()) };
        let once = apply(f, &p);
        let again = plan_of(&once, mime).map_err(|e| format!("the copy no longer parses: {e}"))?;
        if apply(&once, &again) != once {
            return Err("a second scrub changed the copy".into());
        }
        Ok(())
    }

    #[test]
    fn exif_values_overlapping_the_ifd_structure_are_refused() {
        for little in [true, false] {
            // The well-formed block is scrubbed (inline GPS values blanked in their own field).
            let (t, f0, fg) = ifd0_and_gps(little);
            let (plan, out) = scrub_bytes(&with_exif(&t.buf), "image/jpeg");
            assert!(plan.blanks.iter().any(|b| b.what.ends_with("GPSLatitudeRef")), "{:?}", plan.blanks);
            assert!(!find(&out, &t.rationals(&LAT)));
            settles(&with_exif(&t.buf), "image/jpeg").unwrap();
            let mut cases: Vec<(&str, Tiff, &str)> = Vec::new();
            // The GPS latitude (24 bytes) points at IFD0's entries (offset 8).
            let mut c = t.clone();
            c.patch32(fg[1], 8);
            cases.push(("latitude over IFD0", c, "IFD0 at offset 8"));
            // … at the TIFF header.
            let mut c = t.clone();
            c.patch32(fg[1], 0);
            cases.push(("latitude over the header", c, "the TIFF header"));
            // The Artist value (9 bytes) covers IFD0's next-IFD pointer (after 3 entries).
            let mut c = t.clone();
            c.patch32(f0[1], 8 + 2 + 36 - 2);
            cases.push(("artist over the next pointer", c, "IFD0 at offset 8"));
            // The GPS IFD inside the blanked Artist value: blanking zeroes its entries.
            let mut c = t.clone();
            let gps_at = (fg[0] - 8 - 2) as u32;
            c.patch32(f0[1], gps_at - 4);
            cases.push(("GPS IFD inside the artist value", c, "the GPS IFD"));
            // The GPS IFD's latitude points into its own entries.
            let mut c = t.clone();
            c.patch32(fg[1], gps_at + 2);
            cases.push(("latitude over its own IFD", c, "the GPS IFD"));
            for (name, c, names) in cases {
                let f = with_exif(&c.buf);
                match plan_of(&f, "image/jpeg") {
                    Err(ScrubError::Malformed(m)) => assert!(m.contains("overlaps the IFD structure") && m.contains(names), "{name}: {m}"),
                    other => panic!("{name} (little {little}): {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_thumbnail_overlapping_the_ifds_or_a_blanked_value_is_refused() {
        let thumb = cat(&[vec![0xFF, 0xD8], segment(0xFE, b"near 33.7406"), vec![0xFF, 0xD9]]);
        let build = |over: Option<&str>| {
            let mut t = Tiff::new(true);
            let (_, f0) = t.ifd(&[(0x013B, 2, 9, b"Jane Doe\0".to_vec())]);
            let (ifd1, f1) = t.ifd(&[(0x0201, 4, 1, vec![0; 4]), (0x0202, 4, 1, vec![0; 4])]);
            t.patch32(f0[0] + 4, ifd1);
            let at = t.buf.len() as u32;
            t.buf.extend_from_slice(&thumb);
            t.patch32(f1[0], at);
            t.patch32(f1[1], thumb.len() as u32);
            match over {
                Some("ifd") => t.patch32(f1[0], ifd1),
                Some("artist") => t.patch32(f0[0], at + 2),
                _ => {}
            }
            with_exif(&t.buf)
        };
        let (_, out) = scrub_bytes(&build(None), "image/jpeg");
        assert!(!find(&out, b"33.7406"));
        for (over, says) in [("ifd", "the thumbnail overlaps the IFD structure (IFD1"), ("artist", "tag 0x013B overlaps the thumbnail")] {
            match plan_of(&build(Some(over)), "image/jpeg") {
                Err(ScrubError::Malformed(m)) => assert!(m.contains(says), "{over}: {m}"),
                other => panic!("{over}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_fuzz_corpus_scrubs_to_a_copy_that_parses_and_settles() {
        // The scrub target's inputs: the first byte picks the MIME type (fuzz_targets/scrub.rs),
        // among them the two hostile-EXIF findings of issue 12.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/scrub");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let Some((&which, rest)) = data.split_first() else { continue };
            let mime = ["image/jpeg", "video/mp4", "video/quicktime", "audio/mp4"][usize::from(which % 4)];
            if let Err(e) = settles(rest, mime) {
                panic!("{}: {e}", path.display());
            }
            seen += 1;
        }
        assert!(seen >= 8, "corpus at {} holds {seen} files", dir.display());
        for name in ["exif-overlap-not-idempotent", "exif-ifd-inside-blanked-value"] {
            let data = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(data[0] % 4, 0, "{name} is a JPEG input");
            assert!(matches!(plan_of(&data[1..], "image/jpeg"), Err(ScrubError::Malformed(m)) if m.contains("overlaps")), "{name}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn mutated_jpegs_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), little in any::<bool>()) {
            let mut f = jpeg(little);
            for (at, v) in flips {
                let i = at % f.len();
                f[i] = v;
            }
            if let Ok(p) = plan_of(&f, "image/jpeg") {
                prop_assert!(p.blanks.iter().all(|b| b.offset + b.len <= f.len() as u64));
            }
        }
    }
}
