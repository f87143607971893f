//! ISO base media file format (ISO/IEC 14496-12; QuickTime File Format; 3GPP TS 26.244): MP4,
//! QuickTime, 3GP and M4A.
//!
//! The walk reads box headers with seeks (32-bit sizes, 64-bit `largesize`, size 0 = to the end
//! of the container) and never loads `mdat`. It descends into `moov`, `trak`, `mdia`, `moof`,
//! `traf`, `udta`, `meta`, `keys` and `ilst` and plans, inside those metadata containers, *keep
//! what is known to be harmless, blank the rest*: in `udta` only make, model, software, date and
//! a few structural items survive ([`UDTA_KEEP`]); in `meta`/`ilst` only the values of the keys in
//! [`KEYS_KEEP`] (or the items in [`ILST_KEEP`]). `uuid` boxes and `free`/`skip` payloads are
//! blanked wherever the walk passes. Text values become spaces, everything else zeros; lengths,
//! type and language words stay, so nothing moves.
//!
//! Refused ([`ScrubError::Unsupported`]): a track that is not audio, video or timecode (its
//! samples may carry a location per frame inside `mdat`), a compressed movie header (`cmov`),
//! item-based metadata (`iloc` …). Anything that does not parse is [`ScrubError::Malformed`].

use crate::walk::{clean, too_deep, Ctx, Src, MAX_DEPTH};
use crate::{malformed, Category, Fill, ScrubError, R};
use std::io::{Read, Seek};

/// Most entries in a QuickTime `keys` box.
const MAX_KEYS: u32 = 65_536;
/// Bytes of a key or free-form item name read for matching (longer names never match a kept key).
const MAX_NAME: u64 = 256;
/// Most text records blanked one by one in a QuickTime `©` user-data item.
const MAX_TEXT_RECORDS: usize = 64;

/// Track handlers whose samples are audio, video or timecode only. Any other track (timed
/// metadata `meta`, subtitles `text`/`sbtl`/`subt`, closed captions `clcp`, hint tracks …) can
/// carry a location per sample inside `mdat` and makes the file unsupported.
const MEDIA_HANDLERS: &[&[u8; 4]] = &[b"vide", b"soun", b"tmcd", b"auxv"];

/// `udta` children kept: make, model, software, date, format, and structural items that name
/// or select tracks or carry loudness (needed for playback, not about place or person).
const UDTA_KEEP: &[&[u8; 4]] = &[b"\xA9mak", b"\xA9mod", b"\xA9swr", b"\xA9too", b"\xA9day", b"\xA9fmt", b"hnti", b"hinf", b"name", b"tsel", b"kind", b"ludt"];
/// iTunes-style `ilst` items (four-character names) kept.
const ILST_KEEP: &[&[u8; 4]] = &[b"\xA9mak", b"\xA9mod", b"\xA9swr", b"\xA9too", b"\xA9day"];
/// QuickTime `mdta` keys whose values are kept.
const KEYS_KEEP: &[&str] = &[
    "com.apple.quicktime.make",
    "com.apple.quicktime.model",
    "com.apple.quicktime.software",
    "com.apple.quicktime.creationdate",
    "com.android.version",
    "com.android.capture.fps",
    "com.android.manufacturer",
    "com.android.model",
];
/// UUID of an XMP packet in a `uuid` box (Adobe XMP specification part 3).
const XMP_UUID: [u8; 16] = [0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC];

#[derive(Debug, Clone, Copy)]
struct BoxHdr {
    typ: [u8; 4],
    /// First byte of the payload (after size, type, largesize).
    body: u64,
    /// One past the last byte.
    end: u64,
}

/// Reads the box header at `pos` inside a container ending at `parent_end`.
fn read_box<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, pos: u64, parent_end: u64) -> R<BoxHdr> {
    ctx.count()?;
    if parent_end - pos < 8 {
        return malformed(format!("truncated box header at offset {pos}"));
    }
    let size = src.be32(pos)?;
    let typ = src.fourcc_at(pos + 4)?;
    let (body, end) = match size {
        // Size 0: the box runs to the end of its container (ISO: of the file, for the last box).
        0 => (pos + 8, parent_end),
        1 => {
            if parent_end - pos < 16 {
                return malformed(format!("truncated 64-bit box header at offset {pos}"));
            }
            let large = src.be64(pos + 8)?;
            if large < 16 {
                return malformed(format!("box '{}' at offset {pos} has a 64-bit size smaller than its header", clean(&typ)));
            }
            (pos + 16, pos.saturating_add(large))
        }
        s if s < 8 => return malformed(format!("box '{}' at offset {pos} has size {s}, smaller than its header", clean(&typ))),
        s => (pos + 8, pos + u64::from(s)),
    };
    if end > parent_end {
        return malformed(format!("box '{}' at offset {pos} is larger than its container or the file", clean(&typ)));
    }
    Ok(BoxHdr { typ, body, end })
}

/// Calls `f` for each box in `[start, end)`.
fn for_each_box<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, start: u64, end: u64, mut f: impl FnMut(&mut Src<T>, &mut Ctx, BoxHdr) -> R<()>) -> R<()> {
    let mut pos = start;
    while pos < end {
        if end - pos < 8 {
            // QuickTime ends some atom lists (udta) with a 32-bit zero; other leftovers are malformed.
            if src.bytes(pos, end - pos)?.iter().all(|b| *b == 0) {
                return Ok(());
            }
            return malformed(format!("{} stray bytes at offset {pos}", end - pos));
        }
        let b = read_box(src, ctx, pos, end)?;
        f(src, ctx, b)?;
        pos = b.end;
    }
    Ok(())
}

fn child_path(path: &str, typ: &[u8]) -> String {
    if path.is_empty() {
        clean(typ)
    } else {
        format!("{path}/{}", clean(typ))
    }
}

/// Boxes handled the same way in every container the walk enters; others are left as they are
/// (media structure such as `mvhd`, `tkhd`, `stbl`, or media data).
fn common_box<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, depth: u32) -> R<()> {
    let p = child_path(path, &b.typ);
    match &b.typ {
        b"udta" => walk_udta(src, ctx, b, &p, depth + 1)?,
        b"meta" => walk_meta(src, ctx, b, &p, depth + 1)?,
        b"free" | b"skip" => ctx.blank(p, Category::Padding, b.body, b.end, Fill::Zeros)?,
        b"uuid" => uuid_box(src, ctx, b, &p)?,
        b"cmov" => return Err(ScrubError::Unsupported(format!("{p}: a compressed movie header cannot be scrubbed in place"))),
        _ => {}
    }
    Ok(())
}

/// A `uuid` box: XMP (text, spaces) or a vendor extension (zeros). The 16-byte UUID is kept.
fn uuid_box<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str) -> R<()> {
    if b.end - b.body < 16 {
        return malformed(format!("{path} at offset {} is shorter than its UUID", b.body));
    }
    let id = src.bytes(b.body, 16)?;
    if id == XMP_UUID {
        ctx.blank(format!("{path} (XMP packet)"), Category::Other, b.body + 16, b.end, Fill::Spaces)
    } else {
        ctx.blank(format!("{path} {}", hex::encode(&id)), Category::Other, b.body + 16, b.end, Fill::Zeros)
    }
}

/// The boxes of `[start, end)`: the whole file, or a movie appended to a JPEG (motion photo).
/// A file without `moov` is not a complete movie.
pub(crate) fn walk_bmff<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, start: u64, end: u64, path: &str, depth: u32) -> R<()> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    let mut moov = false;
    let mut first = true;
    for_each_box(src, ctx, start, end, |src, ctx, b| {
        // Top-level box types are printable four-character codes; anything else is not this format.
        if !b.typ.iter().all(|c| (0x20..=0x7e).contains(c)) {
            return malformed(format!("not an ISO base media file: unprintable box type before offset {}", b.body));
        }
        if first && !matches!(&b.typ, b"ftyp" | b"moov" | b"mdat" | b"free" | b"skip" | b"wide" | b"pnot" | b"uuid" | b"styp") {
            return malformed(format!("not an ISO base media file: it starts with a '{}' box", clean(&b.typ)));
        }
        first = false;
        match &b.typ {
            b"moov" => {
                moov = true;
                walk_moov(src, ctx, b, &child_path(path, b"moov"), depth + 1)
            }
            b"moof" => walk_moof(src, ctx, b, &child_path(path, b"moof"), depth + 1),
            // ftyp, mdat, mfra, sidx, wide … are structure or media data: kept as they are.
            _ => common_box(src, ctx, b, path, depth),
        }
    })?;
    if !moov {
        return malformed("no 'moov' box: not a complete MP4/QuickTime file");
    }
    Ok(())
}

fn walk_moov<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, depth: u32) -> R<()> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    let mut n = 0;
    for_each_box(src, ctx, b.body, b.end, |src, ctx, c| {
        if &c.typ == b"trak" {
            n += 1;
            return walk_trak(src, ctx, c, &format!("{path}/trak[{n}]"), depth + 1);
        }
        common_box(src, ctx, c, path, depth)
    })
}

fn walk_trak<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, depth: u32) -> R<()> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    let mut handler: Option<[u8; 4]> = None;
    for_each_box(src, ctx, b.body, b.end, |src, ctx, c| {
        if &c.typ == b"mdia" {
            let h = mdia_handler(src, ctx, c, &child_path(path, b"mdia"))?;
            handler = handler.or(h);
            return Ok(());
        }
        common_box(src, ctx, c, path, depth)
    })?;
    match handler {
        None => malformed(format!("{path} has no media handler")),
        Some(h) if MEDIA_HANDLERS.contains(&&h) => Ok(()),
        Some(h) => Err(ScrubError::Unsupported(format!(
            "{path} is a '{}' track, not audio or video: its samples (timed metadata, text) may carry a location and are not scrubbed",
            clean(&h)
        ))),
    }
}

/// The handler type of a track (`mdia/hdlr`: version/flags, pre_defined or QuickTime component
/// type, then handler_type). Other `mdia` children are media structure and are not touched.
fn mdia_handler<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str) -> R<Option<[u8; 4]>> {
    let mut handler = None;
    for_each_box(src, ctx, b.body, b.end, |src, _, c| {
        if &c.typ == b"hdlr" && handler.is_none() {
            if c.end - c.body < 12 {
                return malformed(format!("{path}/hdlr is too short"));
            }
            handler = Some(src.fourcc_at(c.body + 8)?);
        }
        Ok(())
    })?;
    Ok(handler)
}

fn walk_moof<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, depth: u32) -> R<()> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    for_each_box(src, ctx, b.body, b.end, |src, ctx, c| {
        if &c.typ == b"traf" {
            let p = child_path(path, b"traf");
            return for_each_box(src, ctx, c.body, c.end, |src, ctx, d| common_box(src, ctx, d, &p, depth + 1));
        }
        common_box(src, ctx, c, path, depth)
    })
}

/// User data: everything is metadata; only [`UDTA_KEEP`] survives.
fn walk_udta<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, depth: u32) -> R<()> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    for_each_box(src, ctx, b.body, b.end, |src, ctx, c| {
        let p = child_path(path, &c.typ);
        match &c.typ {
            b"meta" | b"free" | b"skip" | b"uuid" => common_box(src, ctx, c, path, depth),
            t if UDTA_KEEP.contains(&t) => Ok(()),
            b"XMP_" => ctx.blank(format!("{p} (XMP packet)"), Category::Other, c.body, c.end, Fill::Spaces),
            // 3GPP location box: a full box; zero everything after version and flags (names,
            // role, fixed-point longitude/latitude/altitude, body, notes).
            b"loci" => ctx.blank(p, Category::Location, (c.body + 4).min(c.end), c.end, Fill::Zeros),
            t if t[0] == 0xA9 => blank_qt_text(src, ctx, c, &p, category_of(t)),
            // 3GPP asset boxes (auth, titl, dscp, perf, cprt …) and vendor boxes: zeros, which
            // leave a full box with an empty string.
            t => ctx.blank(p, category_of(t), c.body, c.end, Fill::Zeros),
        }
    })
}

/// A QuickTime user-data text item (`©xyz`, `©aut` …): a list of `[u16 length][u16 language][text]`
/// records (Android writes `©xyz` this way). The text becomes spaces, lengths and languages stay.
/// An item holding `data` boxes instead (iTunes style) has its values blanked like an `ilst` item.
fn blank_qt_text<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, cat: Category) -> R<()> {
    if b.end - b.body >= 16 && &src.fourcc_at(b.body + 4)? == b"data" {
        return blank_item_values(src, ctx, b, path, cat);
    }
    let mut pos = b.body;
    let mut records = 0;
    while b.end - pos >= 4 && records < MAX_TEXT_RECORDS {
        let n = u64::from(src.be16(pos)?);
        let text_end = pos + 4 + n;
        if text_end > b.end {
            break;
        }
        ctx.blank(path, cat, pos + 4, text_end, Fill::Spaces)?;
        pos = text_end;
        records += 1;
    }
    // Whatever does not parse as records (or is beyond the record cap) is zeroed as a whole.
    ctx.blank(path, cat, pos, b.end, Fill::Zeros)
}

/// `meta`: an MP4 `meta` is a full box (version and flags before its children); a QuickTime
/// `meta` is a plain box. Which one this is shows in where its first child, `hdlr`, starts.
fn meta_children_start<T: Read + Seek>(src: &mut Src<T>, b: BoxHdr) -> R<u64> {
    let len = b.end - b.body;
    if len >= 8 && &src.fourcc_at(b.body + 4)? == b"hdlr" {
        return Ok(b.body);
    }
    if len >= 12 && &src.fourcc_at(b.body + 8)? == b"hdlr" {
        return Ok(b.body + 4);
    }
    // No hdlr first: a zero version/flags word means a full box.
    if len >= 4 && src.be32(b.body)? == 0 {
        return Ok(b.body + 4);
    }
    Ok(b.body)
}

fn walk_meta<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, depth: u32) -> R<()> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    let start = meta_children_start(src, b)?;
    // First the key table (QuickTime 'mdta' metadata names its ilst items by 1-based index).
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for_each_box(src, ctx, start, b.end, |src, _, c| {
        if &c.typ == b"keys" {
            keys.extend(read_keys(src, c, &child_path(path, b"keys"))?);
        }
        Ok(())
    })?;
    for_each_box(src, ctx, start, b.end, |src, ctx, c| {
        let p = child_path(path, &c.typ);
        match &c.typ {
            b"hdlr" | b"keys" | b"dinf" | b"pitm" => Ok(()),
            b"ilst" => walk_ilst(src, ctx, c, &p, &keys, depth + 1),
            b"free" | b"skip" | b"uuid" => common_box(src, ctx, c, path, depth),
            b"iloc" | b"iinf" | b"idat" | b"iref" | b"iprp" | b"ipro" => {
                Err(ScrubError::Unsupported(format!("{p}: item-based metadata (which may hold EXIF with GPS) is not scrubbed")))
            }
            b"xml " | b"bxml" => ctx.blank(format!("{p} (XML, e.g. XMP)"), Category::Other, c.body, c.end, Fill::Zeros),
            // ID32 (ID3 tags) and anything else a metadata container holds: zeros.
            t => ctx.blank(p, category_of(t), c.body, c.end, Fill::Zeros),
        }
    })
}

/// Key names of a QuickTime `keys` box (full box: version/flags, entry_count, then
/// `[u32 size][namespace][name]` entries). Names are read up to [`MAX_NAME`] bytes.
fn read_keys<T: Read + Seek>(src: &mut Src<T>, b: BoxHdr, path: &str) -> R<Vec<Vec<u8>>> {
    if b.end - b.body < 8 {
        return malformed(format!("{path} is too short"));
    }
    let count = src.be32(b.body + 4)?;
    if count > MAX_KEYS {
        return malformed(format!("{path} declares {count} keys"));
    }
    let mut pos = b.body + 8;
    let mut out = Vec::with_capacity(count.min(1024) as usize);
    for i in 0..count {
        if b.end - pos < 8 {
            return malformed(format!("{path}: key {} runs past the box", i + 1));
        }
        let size = u64::from(src.be32(pos)?);
        if size < 8 || size > b.end - pos {
            return malformed(format!("{path}: key {} has size {size}", i + 1));
        }
        out.push(src.bytes(pos + 8, (size - 8).min(MAX_NAME))?);
        pos += size;
    }
    Ok(out)
}

fn walk_ilst<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, b: BoxHdr, path: &str, keys: &[Vec<u8>], depth: u32) -> R<()> {
    if depth > MAX_DEPTH {
        return too_deep();
    }
    for_each_box(src, ctx, b.body, b.end, |src, ctx, item| {
        let index = u32::from_be_bytes(item.typ) as usize;
        if !keys.is_empty() && (1..=keys.len()).contains(&index) {
            let name = &keys[index - 1];
            if KEYS_KEEP.iter().any(|k| k.as_bytes() == name.as_slice()) {
                return Ok(());
            }
            return blank_item_values(src, ctx, item, &format!("{path}/[{index}] {}", clean(name)), category_of(name));
        }
        if &item.typ == b"----" {
            // Free-form item: 'mean' and 'name' say what it is; never on the keep list.
            let name = freeform_name(src, ctx, item)?;
            return blank_item_values(src, ctx, item, &format!("{path}/---- {}", clean(&name)), category_of(&name));
        }
        if ILST_KEEP.contains(&&item.typ) {
            return Ok(());
        }
        blank_item_values(src, ctx, item, &child_path(path, &item.typ), category_of(&item.typ))
    })
}

fn freeform_name<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, item: BoxHdr) -> R<Vec<u8>> {
    let mut name = Vec::new();
    let r = for_each_box(src, ctx, item.body, item.end, |src, _, c| {
        if &c.typ == b"name" && c.end - c.body > 4 {
            name = src.bytes(c.body + 4, (c.end - c.body - 4).min(MAX_NAME))?;
        }
        Ok(())
    });
    match r {
        Ok(()) | Err(ScrubError::Malformed(_)) => Ok(name),
        Err(e) => Err(e),
    }
}

/// The values of a metadata item: each `data` box keeps its type and locale words and has its
/// value blanked (UTF-8 text → spaces, anything else → zeros); `mean`/`name` (what the item is)
/// stay; other children are zeroed. An item whose children do not parse is zeroed entirely.
fn blank_item_values<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, item: BoxHdr, path: &str, cat: Category) -> R<()> {
    let mark = ctx.blanks.len();
    let r = for_each_box(src, ctx, item.body, item.end, |src, ctx, c| match &c.typ {
        b"data" if c.end - c.body >= 8 => {
            // Type indicator: one reserved byte, then a 24-bit well-known type (1 = UTF-8).
            let fill = if src.be32(c.body)? & 0x00FF_FFFF == 1 { Fill::Spaces } else { Fill::Zeros };
            ctx.blank(path, cat, c.body + 8, c.end, fill)
        }
        b"mean" | b"name" => Ok(()),
        _ => ctx.blank(path, cat, c.body, c.end, Fill::Zeros),
    });
    match r {
        Ok(()) => Ok(()),
        Err(ScrubError::Malformed(_)) => {
            ctx.blanks.truncate(mark);
            ctx.blank(path, cat, item.body, item.end, Fill::Zeros)
        }
        Err(e) => Err(e),
    }
}

/// Category of a metadata name (four-character code or key), by what it is known or says it holds.
fn category_of(name: &[u8]) -> Category {
    match name {
        b"\xA9xyz" | b"loci" | b"\xA9lnm" => return Category::Location,
        b"\xA9aut" | b"\xA9ART" | b"auth" | b"perf" | b"cprt" | b"\xA9cpy" | b"\xA9prd" | b"\xA9wrt" | b"\xA9dir" | b"\xA9own" | b"\xA9hst" => return Category::Identity,
        b"\xA9cmt" | b"\xA9des" | b"\xA9inf" | b"\xA9nam" | b"titl" | b"dscp" | b"desc" | b"kywd" | b"\xA9key" | b"\xA9lyr" => return Category::FreeText,
        _ => {}
    }
    let n = String::from_utf8_lossy(name).to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if has(&["location", "gps", "iso6709", "latitude", "longitude", "altitude", "direction", "geo", "place"]) {
        Category::Location
    } else if has(&["author", "artist", "owner", "copyright", "creator", "serial", "publisher", "credits", "producer", "director", "performer", "user"]) {
        Category::Identity
    } else if has(&["comment", "description", "information", "keywords", "title", "displayname", "note"]) {
        Category::FreeText
    } else {
        Category::Other
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::XMP_UUID;
    use crate::test_files::*;
    use crate::{plan, Category, Fill, ScrubError};
    use proptest::prelude::*;
    use std::io;

    #[test]
    fn mp4_location_author_and_xyz_are_blanked_media_identical() {
        for (qt, large) in [(false, false), (true, false), (false, true), (true, true)] {
            let input = movie(qt, large);
            let (plan, out) = scrub_bytes(&input, if qt { "video/quicktime" } else { "video/mp4" });
            assert_only_blanked(&input, &out, &plan);
            for gone in ["33.7406", "118.2760", "Jane Doe"] {
                assert!(find(&input, gone.as_bytes()));
                assert!(!find(&out, gone.as_bytes()), "{gone} still in the copy (qt {qt}, large {large})");
            }
            for kept in ["Google", "Lavf60"].iter().chain(if qt { &["Apple"][..] } else { &[][..] }) {
                assert!(find(&out, kept.as_bytes()), "{kept} should be kept");
            }
            let m = mdat_range(&input);
            assert_eq!(input[m.clone()], out[m], "mdat identical");
            let whats: Vec<&str> = plan.blanks.iter().map(|b| b.what.as_str()).collect();
            assert!(whats.contains(&"moov/udta/©xyz"), "{whats:?}");
            assert!(whats.contains(&"moov/trak[1]/udta/©xyz"), "{whats:?}");
            assert!(whats.contains(&"moov/udta/meta/ilst/©xyz"), "{whats:?}");
            if qt {
                assert!(whats.contains(&"moov/meta/ilst/[1] com.apple.quicktime.location.ISO6709"), "{whats:?}");
                assert!(whats.contains(&"moov/meta/ilst/[3] com.apple.quicktime.author"), "{whats:?}");
            }
            assert!(plan.blanks.iter().filter(|b| b.what.ends_with("©xyz")).all(|b| b.category == Category::Location && b.fill == Fill::Spaces));
            // The ©xyz record keeps its length and language words: only the text is blanked.
            let x = plan.blanks.iter().find(|b| b.what == "moov/udta/©xyz").unwrap();
            assert_eq!(x.len, 18);
            assert_eq!(&out[x.offset as usize - 4..x.offset as usize], &[0, 18, 0x15, 0xc7]);
            // Scrubbing the copy again finds the same ranges and changes nothing.
            let (again, out2) = scrub_bytes(&out, if qt { "video/quicktime" } else { "video/mp4" });
            assert_eq!(again.blanks, plan.blanks);
            assert_eq!(out, out2);
            assert!(plan.blanks.iter().all(|b| !b.describe().contains("33.7")));
        }
    }

    #[test]
    fn size_zero_box_runs_to_the_end_of_the_file() {
        let mut f = movie(false, false);
        // moov first, then an mdat with size 0 (to the end of the file), as a streaming writer does.
        let m = mdat_range(&f);
        let mdat_hdr = m.start - 8;
        let mdat = f[mdat_hdr..m.end].to_vec();
        f.drain(mdat_hdr..m.end);
        let mut mdat0 = mdat;
        mdat0[0..4].copy_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(&mdat0);
        let (plan, out) = scrub_bytes(&f, "video/mp4");
        assert_only_blanked(&f, &out, &plan);
        assert!(!find(&out, b"118.2760"));
    }

    #[test]
    fn threegpp_loci_xmp_uuid_free_and_vendor_boxes_are_blanked() {
        let mut loci = vec![0u8; 2];
        loci.extend_from_slice(b"Harbor\0\x00");
        loci.extend_from_slice(&(-7_751_475i32).to_be_bytes());
        loci.extend_from_slice(&(2_211_119i32).to_be_bytes());
        loci.extend_from_slice(&[0u8; 4]);
        loci.extend_from_slice(b"earth\0\0");
        let mut xmp = XMP_UUID.to_vec();
        xmp.extend_from_slice(b"<x:xmpmeta><exif:GPSLatitude>33,44.436N</exif:GPSLatitude></x:xmpmeta>");
        let udta = bx(b"udta", &cat(&[full(b"loci", &loci), bx(b"XMP_", b"<rdf>Jane Doe</rdf>"), bx(b"CAME", b"serial 12345"), bx(b"free", b"+33.7406-118.2760/ stale")]));
        let moov = bx(b"moov", &cat(&[full(b"mvhd", &[0u8; 96]), trak(b"vide", &[]), udta]));
        let f = cat(&[bx(b"ftyp", b"3gp4\0\0\0\x003gp4"), bx(b"uuid", &xmp), moov, bx(b"mdat", &mdat_payload())]);
        let (plan, out) = scrub_bytes(&f, "video/3gpp");
        assert_only_blanked(&f, &out, &plan);
        for gone in ["Harbor", "GPSLatitude", "Jane Doe", "serial 12345", "118.2760"] {
            assert!(!find(&out, gone.as_bytes()), "{gone}");
        }
        assert!(!find(&out, &(-7_751_475i32).to_be_bytes()));
        // The XMP UUID itself stays, so the box is still recognisable.
        assert!(find(&out, &XMP_UUID));
    }

    #[test]
    fn timed_metadata_tracks_and_item_metadata_are_refused() {
        let moov = bx(b"moov", &cat(&[full(b"mvhd", &[0u8; 96]), trak(b"vide", &[]), trak(b"meta", &[])]));
        let f = cat(&[bx(b"ftyp", b"qt  \0\0\0\0qt  "), moov, bx(b"mdat", &mdat_payload())]);
        let e = plan(io::Cursor::new(&f), f.len() as u64, "video/quicktime").unwrap_err();
        assert!(matches!(e, ScrubError::Unsupported(ref m) if m.contains("'meta' track")), "{e}");
        assert!(e.withholds());
        let moov = bx(b"moov", &cat(&[full(b"mvhd", &[0u8; 96]), trak(b"vide", &[]), full(b"meta", &cat(&[hdlr(b"pict"), full(b"iloc", &[0; 8])]))]));
        let f = cat(&[bx(b"ftyp", b"isom\0\0\0\0isom"), moov]);
        let e = plan(io::Cursor::new(&f), f.len() as u64, "video/mp4").unwrap_err();
        assert!(matches!(e, ScrubError::Unsupported(ref m) if m.contains("iloc")), "{e}");
        let f = cat(&[bx(b"ftyp", b"qt  \0\0\0\0qt  "), bx(b"moov", &bx(b"cmov", &[0u8; 32]))]);
        assert!(matches!(plan(io::Cursor::new(&f), f.len() as u64, "video/quicktime"), Err(ScrubError::Unsupported(_))));
    }

    #[test]
    fn malformed_movies_are_refused() {
        let good = movie(true, false);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("truncated in moov", good[..good.len() - 40].to_vec()),
            ("truncated header", good[..4].to_vec()),
            ("size larger than the file", {
                let mut f = good.clone();
                f[0..4].copy_from_slice(&(good.len() as u32 + 1).to_be_bytes());
                f
            }),
            ("size below the header", {
                let mut f = good.clone();
                f[0..4].copy_from_slice(&4u32.to_be_bytes());
                f
            }),
            ("largesize below the header", cat(&[bx(b"ftyp", b"isom"), {
                let mut l = large(b"mdat", &[1, 2, 3]);
                l[8..16].copy_from_slice(&8u64.to_be_bytes());
                l
            }])),
            ("largesize past the end", cat(&[bx(b"ftyp", b"isom"), {
                let mut l = large(b"mdat", &[1, 2, 3]);
                l[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
                l
            }])),
            ("no moov", cat(&[bx(b"ftyp", b"isom"), bx(b"mdat", &[0; 64])])),
            ("random", (0..5000u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 7) as u8).collect()),
            ("a JPEG", jpeg(false)),
        ];
        for (name, f) in cases {
            let r = plan(io::Cursor::new(&f), f.len() as u64, "video/mp4");
            assert!(matches!(r, Err(ScrubError::Malformed(_))), "{name}: {r:?}");
        }
        // Inside a container too: a child larger than its parent.
        let mut f = good.clone();
        let p = f.windows(4).position(|w| w == b"udta").unwrap() - 4;
        let sz = u32::from_be_bytes([f[p], f[p + 1], f[p + 2], f[p + 3]]);
        f[p..p + 4].copy_from_slice(&(sz + 100).to_be_bytes());
        assert!(matches!(plan(io::Cursor::new(&f), f.len() as u64, "video/mp4"), Err(ScrubError::Malformed(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn mutated_movies_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>(), qt in any::<bool>()) {
            let mut f = movie(qt, false);
            for (at, v) in flips {
                let i = at % f.len();
                f[i] = v;
            }
            if cut % 4 == 0 {
                f.truncate(cut % (f.len() + 1));
            }
            if let Ok(p) = plan_of(&f, "video/quicktime") {
                prop_assert!(p.blanks.iter().all(|b| b.offset + b.len <= f.len() as u64));
            }
        }
    }
}
