//! Helpers shared by the fuzz targets in `fuzz_targets/` and the seed maker in
//! `make_corpus.py` (which writes the same record format):
//!
//! * [`files`]: a folder of files as one byte string (so a fuzz input can be a whole package
//!   folder, and a real package a seed);
//! * [`media`]: structure-aware media for the scrubber: ISO-BMFF box trees and JPEG segment
//!   lists generated with `arbitrary`, serialised with honest lengths (or deliberately wrong
//!   ones), remembering which bytes are media payload that the scrubber must never touch;
//! * [`scrub`]: the scrubber's promises checked on one input.

#![allow(missing_docs)]

pub mod files {
    //! Files as `[u8 name length][name][u32 LE data length][data]` records, one after another.
    //! A truncated record ends the list.

    use std::path::{Component, Path};

    /// Most files written from one input.
    pub const MAX_FILES: usize = 96;

    pub fn decode(mut data: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while out.len() < MAX_FILES {
            let Some((&n, rest)) = data.split_first() else { break };
            if rest.len() < n as usize {
                break;
            }
            let (name, rest) = rest.split_at(n as usize);
            if rest.len() < 4 {
                break;
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let rest = &rest[4..];
            let len = len.min(rest.len());
            let (body, rest) = rest.split_at(len);
            out.push((String::from_utf8_lossy(name).into_owned(), body.to_vec()));
            data = rest;
        }
        out
    }

    pub fn encode(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (name, body) in files {
            v.push(name.len() as u8);
            v.extend_from_slice(name.as_bytes());
            v.extend_from_slice(&(body.len() as u32).to_le_bytes());
            v.extend_from_slice(body);
        }
        v
    }

    /// Writes the files under `dir`; names that would leave `dir` (absolute, `..`) or clash with
    /// a folder already written are skipped.
    pub fn write(dir: &Path, files: &[(String, Vec<u8>)]) {
        for (name, body) in files {
            let rel = Path::new(name);
            if name.is_empty() || name.contains('\0') || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                continue;
            }
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                if std::fs::create_dir_all(parent).is_err() {
                    continue;
                }
            }
            let _ = std::fs::write(&path, body);
        }
    }

    /// Reads every file under `dir` (sorted names relative to it).
    pub fn read(dir: &Path) -> Vec<(String, Vec<u8>)> {
        fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
            let Ok(rd) = std::fs::read_dir(d) else { return };
            let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(root, &p, out);
                } else if let (Ok(rel), Ok(body)) = (p.strip_prefix(root), std::fs::read(&p)) {
                    out.push((rel.to_string_lossy().into_owned(), body));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out
    }

    /// A scratch folder for one input: in /dev/shm when there is one (fast), else the temp dir.
    pub fn scratch() -> tempfile::TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            if let Ok(d) = tempfile::Builder::new().prefix("fieldcap-fuzz-").tempdir_in(shm) {
                return d;
            }
        }
        tempfile::Builder::new().prefix("fieldcap-fuzz-").tempdir().expect("a temporary folder")
    }
}

pub mod media {
    //! Generated media. Every ISO-BMFF box and JPEG segment is written with its real length
    //! unless the generator chose a [`SizeLie`]; the byte ranges of media payload reached only
    //! through honest structure are recorded, because the scrubber promises never to change
    //! picture and sound bytes.

    use arbitrary::Arbitrary;

    /// Box types the walker treats specially, and a few it must pass over.
    #[derive(Arbitrary, Debug, Clone, Copy)]
    pub enum Four {
        Ftyp, Moov, Trak, Mdia, Minf, Stbl, Stco, Co64, Stsz, Udta, Meta, Ilst, Keys, Hdlr, Uuid,
        Mdat, Free, Skip, Moof, Traf, Mvhd, Tkhd, Mdhd, Data, Mean, Name, Xyz, Mak, Aut, Too,
        Loci, Xmp, Cmov, Iloc, Xml, Wide, Styp, Edts, Dinf, Key1, Key2, Key3, Raw([u8; 4]),
    }

    impl Four {
        pub fn bytes(self) -> [u8; 4] {
            use Four::*;
            *match self {
                Ftyp => b"ftyp", Moov => b"moov", Trak => b"trak", Mdia => b"mdia", Minf => b"minf",
                Stbl => b"stbl", Stco => b"stco", Co64 => b"co64", Stsz => b"stsz", Udta => b"udta",
                Meta => b"meta", Ilst => b"ilst", Keys => b"keys", Hdlr => b"hdlr", Uuid => b"uuid",
                Mdat => b"mdat", Free => b"free", Skip => b"skip", Moof => b"moof", Traf => b"traf",
                Mvhd => b"mvhd", Tkhd => b"tkhd", Mdhd => b"mdhd", Data => b"data", Mean => b"mean",
                Name => b"name", Xyz => b"\xA9xyz", Mak => b"\xA9mak", Aut => b"\xA9aut", Too => b"\xA9too",
                Loci => b"loci", Xmp => b"XMP_", Cmov => b"cmov", Iloc => b"iloc", Xml => b"xml ",
                Wide => b"wide", Styp => b"styp", Edts => b"edts", Dinf => b"dinf",
                Key1 => b"\0\0\0\x01", Key2 => b"\0\0\0\x02", Key3 => b"\0\0\0\x03",
                Raw(b) => return b,
            }
        }
    }

    /// A size field that does not tell the truth.
    #[derive(Arbitrary, Debug, Clone, Copy)]
    pub enum SizeLie {
        /// 0: "to the end of the container".
        ToEnd,
        /// The real size plus this (wrapping).
        Off(i16),
        /// A 64-bit size of this value.
        Large(u64),
        /// Exactly this 32-bit size.
        Exact(u32),
    }

    #[derive(Arbitrary, Debug, Clone, Copy)]
    pub enum Handler { Vide, Soun, Tmcd, Meta, Mdta, Mdir, Text, Raw([u8; 4]) }

    impl Handler {
        fn bytes(self) -> [u8; 4] {
            *match self {
                Handler::Vide => b"vide", Handler::Soun => b"soun", Handler::Tmcd => b"tmcd",
                Handler::Meta => b"meta", Handler::Mdta => b"mdta", Handler::Mdir => b"mdir",
                Handler::Text => b"text", Handler::Raw(b) => return b,
            }
        }
    }

    #[derive(Arbitrary, Debug, Clone, Copy)]
    pub enum KeyName { Location, Make, Author, Model, AndroidModel, Software, Other(u8) }

    impl KeyName {
        fn text(self) -> String {
            match self {
                KeyName::Location => "com.apple.quicktime.location.ISO6709".into(),
                KeyName::Make => "com.apple.quicktime.make".into(),
                KeyName::Author => "com.apple.quicktime.author".into(),
                KeyName::Model => "com.apple.quicktime.model".into(),
                KeyName::AndroidModel => "com.android.model".into(),
                KeyName::Software => "com.apple.quicktime.software".into(),
                KeyName::Other(n) => format!("org.example.{n}"),
            }
        }
    }

    /// One ISO-BMFF box.
    #[derive(Arbitrary, Debug, Clone)]
    pub enum BoxNode {
        /// A box of children (moov, trak, udta, meta as a plain box …).
        Container { typ: Four, children: Vec<BoxNode>, lie: Option<SizeLie> },
        /// A full box (version, flags) of children (MP4 `meta`).
        FullContainer { typ: Four, children: Vec<BoxNode> },
        /// A handler box.
        Hdlr(Handler),
        /// A QuickTime `keys` box.
        Keys(Vec<KeyName>),
        /// A `data` atom: type word and value.
        Data { kind: u8, value: Vec<u8> },
        /// A QuickTime text record item (`©xyz` …): length, language, text.
        QtText { typ: Four, text: Vec<u8> },
        /// A leaf with an arbitrary payload.
        Leaf { typ: Four, payload: Vec<u8>, lie: Option<SizeLie> },
        /// A track: tkhd, mdia with mdhd/hdlr/minf, then extra boxes.
        Track { handler: Handler, extra: Vec<BoxNode> },
        /// Media data: never to be changed when reached honestly at the top level.
        Mdat { payload: Vec<u8>, large: bool },
        /// A `uuid` box with a 16-byte user type.
        Uuid { xmp: bool, payload: Vec<u8> },
    }

    /// A whole movie: boxes at the top level.
    #[derive(Arbitrary, Debug, Clone)]
    pub struct Movie {
        pub brand: Option<[u8; 4]>,
        pub boxes: Vec<BoxNode>,
    }

    /// Serialised bytes and the media payload ranges `(start, end)` that must come out unchanged.
    #[derive(Debug, Default)]
    pub struct Built {
        pub bytes: Vec<u8>,
        pub protected: Vec<(usize, usize)>,
        /// A size lie was written: bytes after it are no longer parsed as written (a size 0
        /// box swallows its later siblings), so nothing after it is protected.
        pub lied: bool,
    }

    const XMP_UUID: [u8; 16] = [0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC];

    fn header(out: &mut Vec<u8>, typ: [u8; 4], payload_len: usize, lie: Option<SizeLie>) {
        let real = payload_len + 8;
        match lie {
            None => {
                out.extend_from_slice(&(real as u32).to_be_bytes());
                out.extend_from_slice(&typ);
            }
            Some(SizeLie::ToEnd) => {
                out.extend_from_slice(&0u32.to_be_bytes());
                out.extend_from_slice(&typ);
            }
            Some(SizeLie::Off(d)) => {
                out.extend_from_slice(&((real as u32).wrapping_add(d as i32 as u32)).to_be_bytes());
                out.extend_from_slice(&typ);
            }
            Some(SizeLie::Large(l)) => {
                out.extend_from_slice(&1u32.to_be_bytes());
                out.extend_from_slice(&typ);
                out.extend_from_slice(&l.to_be_bytes());
            }
            Some(SizeLie::Exact(s)) => {
                out.extend_from_slice(&s.to_be_bytes());
                out.extend_from_slice(&typ);
            }
        }
    }

    fn boxed(out: &mut Built, typ: [u8; 4], lie: Option<SizeLie>, body: impl FnOnce(&mut Built)) {
        let mut inner = Built { lied: out.lied, ..Built::default() };
        body(&mut inner);
        header(&mut out.bytes, typ, inner.bytes.len(), lie);
        let base = out.bytes.len();
        out.bytes.extend_from_slice(&inner.bytes);
        // Payload inside a box whose size lies is not protected (its meaning changed).
        if lie.is_none() && !out.lied {
            out.protected.extend(inner.protected.iter().map(|(a, b)| (a + base, b + base)));
        }
        out.lied |= inner.lied || lie.is_some();
    }

    /// Serialises one box; `top` is true at the file's top level (where `mdat` is media).
    pub fn write_box(out: &mut Built, b: &BoxNode, top: bool) {
        match b {
            BoxNode::Container { typ, children, lie } => boxed(out, typ.bytes(), *lie, |o| {
                for c in children {
                    write_box(o, c, false);
                }
            }),
            BoxNode::FullContainer { typ, children } => boxed(out, typ.bytes(), None, |o| {
                o.bytes.extend_from_slice(&[0; 4]);
                for c in children {
                    write_box(o, c, false);
                }
            }),
            BoxNode::Hdlr(h) => boxed(out, *b"hdlr", None, |o| {
                o.bytes.extend_from_slice(&[0; 8]);
                o.bytes.extend_from_slice(&h.bytes());
                o.bytes.extend_from_slice(&[0; 12]);
                o.bytes.extend_from_slice(b"Handler\0");
            }),
            BoxNode::Keys(names) => boxed(out, *b"keys", None, |o| {
                o.bytes.extend_from_slice(&[0; 4]);
                o.bytes.extend_from_slice(&(names.len() as u32).to_be_bytes());
                for n in names {
                    let t = n.text();
                    o.bytes.extend_from_slice(&((t.len() + 8) as u32).to_be_bytes());
                    o.bytes.extend_from_slice(b"mdta");
                    o.bytes.extend_from_slice(t.as_bytes());
                }
            }),
            BoxNode::Data { kind, value } => boxed(out, *b"data", None, |o| {
                o.bytes.extend_from_slice(&(*kind as u32).to_be_bytes());
                o.bytes.extend_from_slice(&[0; 4]);
                o.bytes.extend_from_slice(value);
            }),
            BoxNode::QtText { typ, text } => boxed(out, typ.bytes(), None, |o| {
                o.bytes.extend_from_slice(&(text.len() as u16).to_be_bytes());
                o.bytes.extend_from_slice(&0x15c7u16.to_be_bytes());
                o.bytes.extend_from_slice(text);
            }),
            BoxNode::Leaf { typ, payload, lie } => boxed(out, typ.bytes(), *lie, |o| o.bytes.extend_from_slice(payload)),
            BoxNode::Track { handler, extra } => boxed(out, *b"trak", None, |o| {
                boxed(o, *b"tkhd", None, |t| t.bytes.extend_from_slice(&[0; 84]));
                boxed(o, *b"mdia", None, |m| {
                    boxed(m, *b"mdhd", None, |t| t.bytes.extend_from_slice(&[0; 24]));
                    write_box(m, &BoxNode::Hdlr(*handler), false);
                    boxed(m, *b"minf", None, |t| t.bytes.extend_from_slice(&[0; 16]));
                });
                for c in extra {
                    write_box(o, c, false);
                }
            }),
            BoxNode::Mdat { payload, large } => {
                let lie = if *large { Some(SizeLie::Large(payload.len() as u64 + 16)) } else { None };
                header(&mut out.bytes, *b"mdat", payload.len(), lie);
                let start = out.bytes.len();
                out.bytes.extend_from_slice(payload);
                if top && !out.lied {
                    out.protected.push((start, out.bytes.len()));
                }
            }
            BoxNode::Uuid { xmp, payload } => boxed(out, *b"uuid", None, |o| {
                o.bytes.extend_from_slice(if *xmp { &XMP_UUID } else { &[7; 16] });
                o.bytes.extend_from_slice(payload);
            }),
        }
    }

    impl Movie {
        pub fn build(&self) -> Built {
            let mut out = Built::default();
            if let Some(brand) = self.brand {
                boxed(&mut out, *b"ftyp", None, |o| {
                    o.bytes.extend_from_slice(&brand);
                    o.bytes.extend_from_slice(&[0, 0, 2, 0]);
                    o.bytes.extend_from_slice(b"isommp41");
                });
            }
            for b in &self.boxes {
                write_box(&mut out, b, true);
            }
            out
        }
    }

    // --- JPEG -------------------------------------------------------------------------------

    /// An EXIF TIFF entry.
    #[derive(Arbitrary, Debug, Clone)]
    pub struct Entry {
        pub tag: Tag,
        pub typ: u8,
        pub count: u16,
        pub value: Vec<u8>,
    }

    #[derive(Arbitrary, Debug, Clone, Copy)]
    pub enum Tag { Make, Artist, ExifPtr, GpsPtr, InteropPtr, MakerNote, UserComment, Serial, GpsLat, GpsLon, Thumb, ThumbLen, Raw(u16) }

    impl Tag {
        fn code(self) -> u16 {
            match self {
                Tag::Make => 0x010F, Tag::Artist => 0x013B, Tag::ExifPtr => 0x8769, Tag::GpsPtr => 0x8825,
                Tag::InteropPtr => 0xA005, Tag::MakerNote => 0x927C, Tag::UserComment => 0x9286,
                Tag::Serial => 0xA431, Tag::GpsLat => 0x0002, Tag::GpsLon => 0x0004,
                Tag::Thumb => 0x0201, Tag::ThumbLen => 0x0202, Tag::Raw(c) => c,
            }
        }
    }

    /// An EXIF block: byte order and IFDs; pointer tags are patched to point at the IFD whose
    /// index their value's first byte names (so the walker follows real links and loops).
    #[derive(Arbitrary, Debug, Clone)]
    pub struct Exif {
        pub little: bool,
        pub ifds: Vec<Vec<Entry>>,
        pub next_links: Vec<u8>,
    }

    impl Exif {
        pub fn build(&self) -> Vec<u8> {
            let mut t = fieldcap_testkit::media::Tiff::new(self.little);
            let mut starts = Vec::new();
            let mut pointer_fields: Vec<(usize, u8)> = Vec::new();
            let mut next_fields = Vec::new();
            for entries in self.ifds.iter().take(8) {
                let e: Vec<(u16, u16, u32, Vec<u8>)> = entries
                    .iter()
                    .take(24)
                    .map(|e| {
                        let typ = (e.typ % 13) as u16;
                        (e.tag.code(), typ, e.count as u32, e.value.iter().copied().take(64).collect())
                    })
                    .collect();
                let (start, fields) = t.ifd(&e);
                for (i, en) in entries.iter().take(24).enumerate() {
                    if matches!(en.tag, Tag::ExifPtr | Tag::GpsPtr | Tag::InteropPtr | Tag::Thumb) {
                        pointer_fields.push((fields[i], en.value.first().copied().unwrap_or(0)));
                    }
                }
                // The next-IFD link is the 4 bytes after the last entry.
                next_fields.push(start as usize + 2 + 12 * e.len());
                starts.push(start);
            }
            if starts.is_empty() {
                return [&b"Exif\0\0"[..], &t.buf].concat();
            }
            for (at, which) in pointer_fields {
                let target = starts[which as usize % starts.len()];
                t.patch32(at, target);
            }
            for (i, at) in next_fields.into_iter().enumerate() {
                if let Some(&l) = self.next_links.get(i) {
                    if l != 0 {
                        t.patch32(at, starts[l as usize % starts.len()]);
                    }
                }
            }
            [&b"Exif\0\0"[..], &t.buf].concat()
        }
    }

    /// A JPEG segment.
    #[derive(Arbitrary, Debug, Clone)]
    pub enum Segment {
        Jfif,
        Exif(Exif),
        Xmp(Vec<u8>),
        Iptc(Vec<u8>),
        Icc(Vec<u8>),
        Adobe,
        App { n: u8, payload: Vec<u8> },
        Com(Vec<u8>),
        Dqt,
        Sof,
        Dht,
        /// A scan header then entropy-coded data (0xFF bytes stuffed), protected.
        Scan(Vec<u8>),
        /// A restart marker between scans.
        Rst(u8),
        /// Any marker with a payload, length possibly lying.
        Raw { code: u8, payload: Vec<u8>, len_delta: Option<i8> },
    }

    /// A photo: segments after SOI, then EOI, then a trailer (nothing, zero padding, another
    /// photo, or a motion-photo movie).
    #[derive(Arbitrary, Debug, Clone)]
    pub struct Photo {
        pub segments: Vec<Segment>,
        pub eoi: bool,
        pub trailer: Trailer,
    }

    #[derive(Arbitrary, Debug, Clone)]
    pub enum Trailer { None, Zeros(u8), Photo(Vec<Segment>), Movie(Movie), Bytes(Vec<u8>) }

    fn segment(out: &mut Built, code: u8, payload: &[u8], len_delta: Option<i8>) {
        let payload = &payload[..payload.len().min(65_533)];
        let len = (payload.len() as u16 + 2).wrapping_add(len_delta.unwrap_or(0) as i16 as u16);
        out.bytes.extend_from_slice(&[0xFF, code]);
        out.bytes.extend_from_slice(&len.to_be_bytes());
        out.bytes.extend_from_slice(payload);
    }

    fn segments(out: &mut Built, segs: &[Segment], protect: bool) -> bool {
        // Once a length lies, later bytes are no longer reached as written.
        let mut honest = protect;
        for s in segs {
            match s {
                Segment::Jfif => segment(out, 0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0", None),
                Segment::Exif(e) => segment(out, 0xE1, &e.build(), None),
                Segment::Xmp(x) => segment(out, 0xE1, &[&b"http://ns.adobe.com/xap/1.0/\0"[..], x].concat(), None),
                Segment::Iptc(x) => segment(out, 0xED, &[&b"Photoshop 3.0\08BIM"[..], x].concat(), None),
                Segment::Icc(x) => segment(out, 0xE2, &[&b"ICC_PROFILE\0\x01\x01"[..], x].concat(), None),
                Segment::Adobe => segment(out, 0xEE, b"Adobe\0\x64\0\0\0\0\x01", None),
                Segment::App { n, payload } => segment(out, 0xE0 | (n & 15), payload, None),
                Segment::Com(c) => segment(out, 0xFE, c, None),
                Segment::Dqt => segment(out, 0xDB, &[0u8; 65], None),
                Segment::Sof => segment(out, 0xC0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0], None),
                Segment::Dht => segment(out, 0xC4, &[0u8; 20], None),
                Segment::Scan(data) => {
                    segment(out, 0xDA, &[1, 1, 0, 0, 63, 0], None);
                    let start = out.bytes.len();
                    for &b in data {
                        out.bytes.push(b);
                        if b == 0xFF {
                            out.bytes.push(0);
                        }
                    }
                    if honest {
                        out.protected.push((start, out.bytes.len()));
                    }
                }
                Segment::Rst(n) => out.bytes.extend_from_slice(&[0xFF, 0xD0 | (n & 7)]),
                Segment::Raw { code, payload, len_delta } => {
                    segment(out, *code, payload, *len_delta);
                    honest &= len_delta.is_none() && !matches!(code, 0xD8 | 0xD9 | 0xDA | 0x00 | 0xFF | 0xD0..=0xD7 | 0x01);
                }
            }
        }
        honest
    }

    impl Photo {
        pub fn build(&self) -> Built {
            let mut out = Built::default();
            out.bytes.extend_from_slice(&[0xFF, 0xD8]);
            let honest = segments(&mut out, &self.segments, true);
            if self.eoi {
                out.bytes.extend_from_slice(&[0xFF, 0xD9]);
            }
            match &self.trailer {
                Trailer::None => {}
                Trailer::Zeros(n) => out.bytes.extend(std::iter::repeat_n(0u8, *n as usize)),
                Trailer::Photo(segs) => {
                    out.bytes.extend_from_slice(&[0xFF, 0xD8]);
                    segments(&mut out, segs, honest);
                    out.bytes.extend_from_slice(&[0xFF, 0xD9]);
                }
                Trailer::Movie(m) => {
                    let b = m.build();
                    let base = out.bytes.len();
                    out.bytes.extend_from_slice(&b.bytes);
                    if honest && !b.lied {
                        out.protected.extend(b.protected.iter().map(|(a, c)| (a + base, c + base)));
                    }
                }
                Trailer::Bytes(b) => out.bytes.extend_from_slice(b),
            }
            out
        }
    }
}

pub mod scrub {
    //! The scrubber's promises, checked on one input (module docs of `fieldcap_media`): it never
    //! panics; a planned copy has the same length and differs only inside the planned ranges
    //! (with the planned fill); the copy parses again and scrubbing it again changes nothing;
    //! media payload ranges are never inside a planned range; `scrub_copy` writes exactly the
    //! planned bytes.

    use fieldcap_media::{plan, Plan};
    use std::io::Cursor;

    /// Applies a plan in memory.
    pub fn apply(data: &[u8], p: &Plan) -> Vec<u8> {
        let mut out = data.to_vec();
        for b in &p.blanks {
            let (s, e) = (b.offset as usize, (b.offset + b.len) as usize);
            assert!(s <= e && e <= data.len(), "blank {}..{} outside a file of {} bytes ({})", s, e, data.len(), b.what);
            out[s..e].fill(b.fill.byte());
        }
        out
    }

    /// Checks the promises for `data` as `mime`; `protected` are media payload ranges.
    pub fn check(data: &[u8], mime: &str, protected: &[(usize, usize)]) {
        let Ok(p) = plan(Cursor::new(data), data.len() as u64, mime) else { return };
        assert_eq!(p.len, data.len() as u64);
        for w in p.blanks.windows(2) {
            assert!(w[0].offset <= w[1].offset, "blanks not sorted");
        }
        for b in &p.blanks {
            for &(s, e) in protected {
                let (bs, be) = (b.offset as usize, (b.offset + b.len) as usize);
                assert!(be <= s || bs >= e || bs == be, "{} ({}..{}) overlaps media payload {}..{}", b.what, bs, be, s, e);
            }
        }
        let once = apply(data, &p);
        // Blanks never cover a box header, a JPEG marker or EXIF structure (EXIF whose values
        // overlap its IFDs is refused: issue 12 findings, docs/BENCHMARKS.md), so the copy parses
        // again and its second scrub plans the same ranges.
        let again = match plan(Cursor::new(&once), once.len() as u64, mime) {
            Ok(p2) => p2,
            Err(e) => panic!("the scrubbed copy no longer parses: {e}"),
        };
        let twice = apply(&once, &again);
        assert!(once == twice, "scrubbing twice changed the copy");
    }

    /// Runs the real `scrub_copy` on `data` (in a scratch folder) and compares its output with
    /// the plan applied in memory.
    pub fn check_copy(data: &[u8], mime: &str) {
        let dir = crate::files::scratch();
        let (src, dst) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::write(&src, data).expect("writing the input");
        let planned = plan(Cursor::new(data), data.len() as u64, mime);
        match (fieldcap_media::scrub_copy(&src, &dst, mime), planned) {
            (Ok(report), Ok(p)) => {
                let written = std::fs::read(&dst).expect("reading the copy");
                assert_eq!(written, apply(data, &p), "scrub_copy wrote other bytes than planned");
                assert_eq!(report.blanked, p.blanks);
                assert_eq!(report.output.bytes, data.len() as u64);
            }
            (Err(_), Err(_)) => assert!(!dst.exists(), "a refused copy was left behind"),
            (a, b) => panic!("scrub_copy and plan disagree: {:?} vs {:?}", a.map(|r| r.blanked.len()), b.map(|p| p.blanks.len())),
        }
    }
}
