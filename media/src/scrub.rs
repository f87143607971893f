//! Location and identity metadata removed from a copy of a media file, for public release.
//!
//! A phone writes where and by whom a recording was made into the file itself: an MP4 or
//! QuickTime movie carries an ISO 6709 string such as `+33.7406-118.2760+012.000/` in
//! `moov/udta/©xyz` or under the key `com.apple.quicktime.location.ISO6709` in `moov/meta`, a
//! JPEG carries GPS rationals in the EXIF GPS IFD, and either may name an author, owner or
//! serial number. The release profile of an evidence package must contain no exact place and no
//! operator identity, so it cannot hand out the original file; [`scrub_copy`] writes a copy in
//! which those values are **overwritten in place with bytes of the same length**:
//!
//! * no box, segment or IFD moves and no length or offset changes, so every sample-table
//!   offset stays valid and the audio, video and image data are byte-for-byte the original's —
//!   a recipient can check that the copy differs from the original only inside the ranges the
//!   [`ScrubReport`] lists;
//! * text values become spaces ([`Fill::Spaces`]) and binary values zeros ([`Fill::Zeros`]);
//!   the structure around them (lengths, language codes, data-type words, IFD entries) is kept,
//!   so players and metadata readers still open the file and see empty values.
//!
//! The policy is **keep what is known to be harmless, blank the rest** inside metadata
//! containers, because vendors invent new metadata faster than a deny list grows:
//!
//! * **ISO-BMFF** (`video/mp4`, `video/quicktime`, `video/3gpp`, `audio/mp4`): the walker reads
//!   box headers with seeks (32-bit sizes, 64-bit `largesize`, size 0 = to the end of the
//!   container), never loading `mdat`, and descends into `moov`, `trak`, `mdia`, `moof`,
//!   `traf`, `udta`, `meta` (a full box in MP4, a plain box in QuickTime: told apart by where
//!   its `hdlr` is), `keys` and `ilst`. In `udta` everything except make, model, software,
//!   date and a few structural items (track name, loudness, selection) is blanked — `©xyz`,
//!   3GPP `loci`, `©aut`, `auth`, `cprt`, comments, `XMP_` and vendor boxes. In `meta`/`ilst`
//!   every value is blanked except the keys `com.apple.quicktime.{make,model,software,creationdate}`
//!   and `com.android.{version,capture.fps,manufacturer,model}` (or the `©mak ©mod ©swr ©too ©day`
//!   items of an iTunes-style list). `uuid` boxes (vendor extensions, XMP) and the payload of
//!   `free`/`skip` (free space, where editors leave stale metadata) are blanked wherever the walk
//!   passes. A file with a track that is not audio, video or timecode (a timed-metadata track
//!   such as Apple `mebx` or Android `mett` keeps a location per sample inside `mdat`; subtitle
//!   and hint tracks can carry anything), with a compressed movie header (`cmov`) or with
//!   item-based metadata (`iloc`) is **refused** ([`ScrubError::Unsupported`]): its samples
//!   would have to be parsed and this module does not claim to.
//! * **JPEG** (`image/jpeg`): every segment is walked (entropy-coded data scanned for the next
//!   marker). In EXIF (APP1 `Exif`) every value of the GPS IFD is zeroed (inline or at its
//!   offset), and Artist, Copyright, HostComputer, ImageDescription, the Windows XP* tags,
//!   UserComment, MakerNote, CameraOwnerName, BodySerialNumber, LensSerialNumber, Photographer,
//!   ImageEditor, ImageTitle and embedded XMP/IPTC/Photoshop blocks are zeroed in IFD0, IFD1 and
//!   the Exif IFD; the EXIF thumbnail is scrubbed the same way (zeroed entirely if it is not a
//!   readable JPEG). XMP (APP1) and comments (COM) become spaces; APP0 JFIF, APP2
//!   `ICC_PROFILE`/`MPF` and APP14 `Adobe` are kept; every other APPn segment (IPTC in APP13,
//!   vendor blocks, C2PA/JUMBF) is zeroed. Images appended after the end of the first one (MPF
//!   secondary images) are scrubbed as JPEGs, an appended motion-photo movie as ISO-BMFF;
//!   zero padding is accepted; any other trailing data is refused.
//!
//! Anything else — WebM, Matroska, PNG, HEIC, WebP, WAV, MP3, Ogg, AMR, AAC — is
//! [`ScrubError::Unsupported`], and a file that does not parse ([`ScrubError::Malformed`]: a box
//! larger than its container, a size below its header, a truncated segment, an empty or random
//! file …) is refused too: the caller must then **not** release the media. The parser
//! bounds-checks every length against its container and the file, caps the number of boxes,
//! IFDs and nesting depth, and never panics on hostile input.
//!
//! What this does **not** do: it does not look at the pictures. Faces, vehicle plates, street
//! signs and voices in the audio/video are released as recorded.
//!
//! ```no_run
//! use fieldcap_media::{scrub_copy, ScrubError};
//! match scrub_copy("/srv/blob/abc".as_ref(), "/tmp/pkg/clips/x/media.mp4".as_ref(), "video/mp4") {
//!     Ok(report) => for b in &report.blanked { println!("{}", b.describe()) },
//!     Err(e) if e.withholds() => println!("not released: {e}"),
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok::<(), fieldcap_evidence::Error>(())
//! ```

use fieldcap_evidence::hashing::{Digests, StreamingDigests, CHUNK};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// MIME types parsed as ISO base media files (MP4, QuickTime, 3GP, M4A).
pub const ISO_BMFF_MIMES: &[&str] = &["video/mp4", "video/quicktime", "video/3gpp", "audio/mp4"];
/// MIME type parsed as JPEG.
pub const JPEG_MIME: &str = "image/jpeg";

/// Deepest nesting the walkers follow (real files need about 7: moov/trak/udta/meta/ilst/item/data).
const MAX_DEPTH: u32 = 16;
/// Most boxes or segments read in one file (a fragmented two-hour recording has some 30 000).
const MAX_BOXES: u64 = 1_000_000;
/// Most ranges one file may need blanked; more means a hostile or broken file.
const MAX_BLANKS: usize = 100_000;
/// Most entries in a QuickTime `keys` box.
const MAX_KEYS: u32 = 65_536;
/// Bytes of a key or free-form item name read for matching (longer names never match a kept key).
const MAX_NAME: u64 = 256;
/// Most IFDs followed in one EXIF block.
const MAX_IFDS: usize = 32;
/// Most images (primary, MPF secondary images) in one JPEG file.
const MAX_IMAGES: usize = 16;
/// Most text records blanked one by one in a QuickTime `©` user-data item.
const MAX_TEXT_RECORDS: usize = 64;
/// Read window of the planner: small reads (box headers, markers) are served from it.
const WINDOW: usize = 64 << 10;

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
/// APP1 identifier of an XMP packet.
const XMP_NS: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";
/// APP1 identifier of an extended-XMP chunk (followed by a 32-byte GUID and two 32-bit words).
const XMP_EXT_NS: &[u8] = b"http://ns.adobe.com/xmp/extension/\0";

/// How a blanked range is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// 0x00: binary values (GPS rationals, numbers, opaque vendor data).
    Zeros,
    /// 0x20: text values, so a reader shows an empty-looking string rather than garbage.
    Spaces,
}

impl Fill {
    /// The byte written.
    pub fn byte(self) -> u8 {
        match self {
            Fill::Zeros => 0,
            Fill::Spaces => b' ',
        }
    }
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Fill::Zeros => "zeros",
            Fill::Spaces => "spaces",
        }
    }
}

/// Why a range was blanked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// A place: coordinates, altitude, heading, place names.
    Location,
    /// A person or a device that identifies one: author, owner, copyright holder, serial number.
    Identity,
    /// Text someone typed (title, comment, description, keywords).
    FreeText,
    /// Metadata not on the keep list (vendor blocks, XMP, maker notes …): may hold either.
    Other,
    /// Free space (`free`/`skip`), where editors leave stale copies of metadata.
    Padding,
}

impl Category {
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Location => "location",
            Category::Identity => "identity",
            Category::FreeText => "free text",
            Category::Other => "other metadata",
            Category::Padding => "free space",
        }
    }
}

/// One range of the file that the copy has overwritten. `what` names the box path or tag,
/// never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blank {
    /// Box path (`moov/udta/©xyz`), key or tag name (`EXIF GPS IFD 0x0002 GPSLatitude`).
    pub what: String,
    /// Why.
    pub category: Category,
    /// Offset of the first overwritten byte.
    pub offset: u64,
    /// Number of bytes overwritten.
    pub len: u64,
    /// What they were overwritten with.
    pub fill: Fill,
}

impl Blank {
    /// One line for a report or a derived manifest, e.g.
    /// `moov/udta/©xyz (location): 18 bytes at offset 1234 overwritten with spaces`.
    pub fn describe(&self) -> String {
        format!("{} ({}): {} bytes at offset {} overwritten with {}", self.what, self.category.as_str(), self.len, self.offset, self.fill.as_str())
    }
}

/// The container format recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ISO base media file format (MP4, QuickTime, 3GP, M4A).
    IsoBmff,
    /// JPEG (JFIF / EXIF).
    Jpeg,
}

impl Format {
    /// The format for a MIME type, if supported.
    pub fn for_mime(mime: &str) -> Option<Format> {
        if ISO_BMFF_MIMES.contains(&mime) {
            Some(Format::IsoBmff)
        } else if mime == JPEG_MIME {
            Some(Format::Jpeg)
        } else {
            None
        }
    }
    /// In words.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::IsoBmff => "ISO-BMFF",
            Format::Jpeg => "JPEG",
        }
    }
}

/// True when [`scrub_copy`] can parse media of this MIME type.
pub fn supports(mime: &str) -> bool {
    Format::for_mime(mime).is_some()
}

/// What [`plan`] found: the ranges to overwrite, sorted by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The format parsed.
    pub format: Format,
    /// Length of the file planned.
    pub len: u64,
    /// Ranges to overwrite (they may overlap in a hostile EXIF block).
    pub blanks: Vec<Blank>,
}

/// What [`scrub_copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubReport {
    /// The format parsed.
    pub format: Format,
    /// Every overwritten range, sorted by offset (empty if the file held nothing to blank).
    pub blanked: Vec<Blank>,
    /// Length and digests of the source as read during the copy (compare them with the
    /// original's, so the copy is known to derive from that original).
    pub source: Digests,
    /// Length and digests of the copy as written.
    pub output: Digests,
}

impl ScrubReport {
    /// [`Blank::describe`] of every range.
    pub fn descriptions(&self) -> Vec<String> {
        self.blanked.iter().map(Blank::describe).collect()
    }
}

/// Why a file was not scrubbed.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    /// The format, or something in the file, is not one this module can make safe: the media
    /// must not be released.
    #[error("unsupported media: {0}")]
    Unsupported(String),
    /// The file does not parse as its MIME type says: the media must not be released.
    #[error("malformed media: {0}")]
    Malformed(String),
    /// Reading or writing failed (disk, permissions): an operational error, not a verdict on
    /// the file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ScrubError {
    /// True when the media must be withheld from a release (unsupported or malformed), false
    /// for an I/O failure, which should stop the export instead.
    pub fn withholds(&self) -> bool {
        !matches!(self, ScrubError::Io { .. })
    }
}

impl From<ScrubError> for fieldcap_evidence::Error {
    fn from(e: ScrubError) -> Self {
        match e {
            ScrubError::Io { context, source } => fieldcap_evidence::Error::Io { context, source },
            other => fieldcap_evidence::Error::InvalidInput(other.to_string()),
        }
    }
}

type R<T> = std::result::Result<T, ScrubError>;

fn malformed<T>(msg: impl Into<String>) -> R<T> {
    Err(ScrubError::Malformed(msg.into()))
}

fn io_err(context: &str) -> impl FnOnce(io::Error) -> ScrubError + '_ {
    move |source| ScrubError::Io { context: context.to_string(), source }
}

/// Random access to the file being planned, with a small window so that the many tiny reads
/// (box headers, JPEG markers) do not each cost a system call. Every read is bounds-checked
/// against the file length first: a structure that claims to run past the end is malformed.
struct Src<T> {
    r: T,
    len: u64,
    win_start: u64,
    win: Vec<u8>,
}

impl<T: Read + Seek> Src<T> {
    fn new(r: T, len: u64) -> Self {
        Src { r, len, win_start: 0, win: Vec::new() }
    }

    fn check(&self, off: u64, n: u64) -> R<u64> {
        match off.checked_add(n) {
            Some(end) if end <= self.len => Ok(end),
            _ => malformed(format!("a structure at offset {off} runs past the end of the file")),
        }
    }

    fn fill_window(&mut self, off: u64) -> R<()> {
        let want = (self.len - off).min(WINDOW as u64) as usize;
        self.win.resize(want, 0);
        self.r.seek(SeekFrom::Start(off)).map_err(io_err("seeking in the media file"))?;
        self.r.read_exact(&mut self.win).map_err(io_err("reading the media file"))?;
        self.win_start = off;
        Ok(())
    }

    fn read_at(&mut self, off: u64, buf: &mut [u8]) -> R<()> {
        let end = self.check(off, buf.len() as u64)?;
        if buf.len() > WINDOW {
            self.r.seek(SeekFrom::Start(off)).map_err(io_err("seeking in the media file"))?;
            return self.r.read_exact(buf).map_err(io_err("reading the media file"));
        }
        if off < self.win_start || end > self.win_start + self.win.len() as u64 {
            self.fill_window(off)?;
        }
        let s = (off - self.win_start) as usize;
        buf.copy_from_slice(&self.win[s..s + buf.len()]);
        Ok(())
    }

    /// Up to [`WINDOW`] bytes starting at `off` and ending at or before `end`.
    fn window_at(&mut self, off: u64, end: u64) -> R<&[u8]> {
        let end = end.min(self.len);
        if off >= end {
            return malformed(format!("a structure at offset {off} runs past the end of the file"));
        }
        if off < self.win_start || off >= self.win_start + self.win.len() as u64 {
            self.fill_window(off)?;
        }
        let s = (off - self.win_start) as usize;
        let n = ((end - off) as usize).min(self.win.len() - s);
        Ok(&self.win[s..s + n])
    }

    fn bytes(&mut self, off: u64, n: u64) -> R<Vec<u8>> {
        self.check(off, n)?;
        let mut v = vec![0u8; n as usize];
        self.read_at(off, &mut v)?;
        Ok(v)
    }
    fn u8_at(&mut self, off: u64) -> R<u8> {
        let mut b = [0u8; 1];
        self.read_at(off, &mut b)?;
        Ok(b[0])
    }
    fn be16(&mut self, off: u64) -> R<u16> {
        let mut b = [0u8; 2];
        self.read_at(off, &mut b)?;
        Ok(u16::from_be_bytes(b))
    }
    fn be32(&mut self, off: u64) -> R<u32> {
        let mut b = [0u8; 4];
        self.read_at(off, &mut b)?;
        Ok(u32::from_be_bytes(b))
    }
    fn be64(&mut self, off: u64) -> R<u64> {
        let mut b = [0u8; 8];
        self.read_at(off, &mut b)?;
        Ok(u64::from_be_bytes(b))
    }
    fn fourcc_at(&mut self, off: u64) -> R<[u8; 4]> {
        let mut b = [0u8; 4];
        self.read_at(off, &mut b)?;
        Ok(b)
    }
}

#[derive(Default)]
struct Ctx {
    blanks: Vec<Blank>,
    items: u64,
}

impl Ctx {
    fn blank(&mut self, what: impl Into<String>, category: Category, offset: u64, end: u64, fill: Fill) -> R<()> {
        if end <= offset {
            return Ok(());
        }
        if self.blanks.len() >= MAX_BLANKS {
            return malformed("more metadata items than any camera writes");
        }
        self.blanks.push(Blank { what: what.into(), category, offset, len: end - offset, fill });
        Ok(())
    }
    fn count(&mut self) -> R<()> {
        self.items += 1;
        if self.items > MAX_BOXES {
            return malformed("more boxes or segments than any camera writes");
        }
        Ok(())
    }
}

fn too_deep<T>() -> R<T> {
    malformed("metadata nested deeper than any camera writes")
}

/// Printable form of a name taken from the file (four-character code, key, identifier), for
/// reports: `©` for 0xA9, ASCII letters, digits and a few punctuation marks; anything else
/// (quotes, braces, backslashes, control bytes) becomes `?`, so a hostile name cannot break the
/// JSON or shell text it ends up in.
fn clean(name: &[u8]) -> String {
    name.iter()
        .take(80)
        .map(|&b| match b {
            0xA9 => '©',
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b' ' | b':' | b'/' | b'+' | b'#' | b'@' | b',' | b'(' | b')' => b as char,
            _ => '?',
        })
        .collect()
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

fn unsupported_mime(mime: &str) -> ScrubError {
    ScrubError::Unsupported(format!("{} is not a format the release scrubber can parse (it parses MP4, QuickTime, 3GP, M4A and JPEG)", clean(mime.as_bytes())))
}

/// Plans the scrubbing of `len` bytes read from `reader` as `mime`: which ranges to overwrite.
/// Reads only headers and metadata, never media data, with a small read window.
pub fn plan<T: Read + Seek>(reader: T, len: u64, mime: &str) -> Result<Plan, ScrubError> {
    let format = Format::for_mime(mime).ok_or_else(|| unsupported_mime(mime))?;
    if len == 0 {
        return malformed("the file is empty");
    }
    let mut src = Src::new(reader, len);
    let mut ctx = Ctx::default();
    match format {
        Format::IsoBmff => walk_bmff(&mut src, &mut ctx, 0, len, "", 0)?,
        Format::Jpeg => walk_jpeg_file(&mut src, &mut ctx)?,
    }
    let mut blanks = ctx.blanks;
    blanks.sort_by(|a, b| a.offset.cmp(&b.offset).then(a.len.cmp(&b.len)));
    Ok(Plan { format, len, blanks })
}

/// Writes to `dst` (which must not exist) a copy of `src` in which every location and identity
/// metadata value is overwritten with bytes of the same length (see the module documentation).
///
/// The source is planned first (headers only), then copied once in [`CHUNK`]-sized pieces with
/// the planned ranges overwritten on the way, so the unscrubbed bytes never reach `dst` and
/// memory stays bounded whatever the file's size. SHA-256 and BLAKE3 of both the bytes read and
/// the bytes written are computed in the same pass. `dst` is fsynced; on any error it is
/// removed. A source whose length changes during the copy is an error.
pub fn scrub_copy(src: &Path, dst: &Path, mime: &str) -> Result<ScrubReport, ScrubError> {
    if !supports(mime) {
        return Err(unsupported_mime(mime));
    }
    let mut input = File::open(src).map_err(io_err("opening the media file"))?;
    let len = input.metadata().map_err(io_err("reading the media file's length"))?.len();
    let planned = plan(&mut input, len, mime)?;
    input.seek(SeekFrom::Start(0)).map_err(io_err("seeking in the media file"))?;
    let mut out = OpenOptions::new().write(true).create_new(true).open(dst).map_err(io_err("creating the scrubbed copy"))?;
    match copy_patched(&mut input, len, &mut out, &merge(&planned.blanks)) {
        Ok((source, output)) => Ok(ScrubReport { format: planned.format, blanked: planned.blanks, source, output }),
        Err(e) => {
            drop(out);
            let _ = fs::remove_file(dst);
            Err(e)
        }
    }
}

/// The planned ranges as sorted, non-overlapping `(start, end, byte)`; where two overlap the
/// merged range is zeroed (blank either way).
fn merge(blanks: &[Blank]) -> Vec<(u64, u64, u8)> {
    let mut v: Vec<(u64, u64, u8)> = blanks.iter().map(|b| (b.offset, b.offset.saturating_add(b.len), b.fill.byte())).collect();
    v.sort();
    let mut out: Vec<(u64, u64, u8)> = Vec::with_capacity(v.len());
    for (s, e, f) in v {
        match out.last_mut() {
            Some(last) if s < last.1 => {
                last.1 = last.1.max(e);
                if last.2 != f {
                    last.2 = 0;
                }
            }
            _ => out.push((s, e, f)),
        }
    }
    out
}

fn read_full(r: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn copy_patched(input: &mut File, len: u64, out: &mut File, ranges: &[(u64, u64, u8)]) -> R<(Digests, Digests)> {
    let mut src_d = StreamingDigests::new().map_err(io_err("starting the hash workers"))?;
    let mut out_d = StreamingDigests::new().map_err(io_err("starting the hash workers"))?;
    let (mut pos, mut next) = (0u64, 0usize);
    loop {
        let mut buf = vec![0u8; CHUNK];
        let n = read_full(input, &mut buf).map_err(io_err("reading the media file"))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        let end = pos + n as u64;
        let chunk = Arc::new(buf);
        src_d.update(chunk.clone()).map_err(io_err("hashing the media file"))?;
        // Ranges are sorted and disjoint, so their ends increase too: skip the finished ones.
        while next < ranges.len() && ranges[next].1 <= pos {
            next += 1;
        }
        let mut patched: Option<Vec<u8>> = None;
        let mut i = next;
        while i < ranges.len() && ranges[i].0 < end {
            let (a, b, f) = ranges[i];
            let (s, e) = ((a.max(pos) - pos) as usize, (b.min(end) - pos) as usize);
            patched.get_or_insert_with(|| chunk.to_vec())[s..e].fill(f);
            i += 1;
        }
        let outc = patched.map(Arc::new).unwrap_or(chunk);
        out.write_all(&outc).map_err(io_err("writing the scrubbed copy"))?;
        out_d.update(outc).map_err(io_err("hashing the scrubbed copy"))?;
        pos = end;
    }
    if pos != len {
        return Err(ScrubError::Io { context: "copying the media file".into(), source: io::Error::other("the file changed length while it was being copied") });
    }
    out.sync_all().map_err(io_err("syncing the scrubbed copy"))?;
    let source = src_d.finish().map_err(io_err("hashing the media file"))?;
    let output = out_d.finish().map_err(io_err("hashing the scrubbed copy"))?;
    Ok((source, output))
}

// ---------------------------------------------------------------------------------------------
// ISO base media file format (ISO/IEC 14496-12; QuickTime File Format; 3GPP TS 26.244)

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

fn walk_bmff<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx, start: u64, end: u64, path: &str, depth: u32) -> R<()> {
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

// ---------------------------------------------------------------------------------------------
// JPEG (ITU T.81), EXIF (CIPA DC-008), XMP (ISO 16684-1 / Adobe XMP part 3)

/// The file: the primary image, then whatever follows its end-of-image marker.
fn walk_jpeg_file<T: Read + Seek>(src: &mut Src<T>, ctx: &mut Ctx) -> R<()> {
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
        for i in 0..n {
            let e = o + 2 + 12 * i;
            let (tag, typ, count) = (rd16(e)?, rd16(e + 2)?, rd32(e + 4)?);
            let field = e + 8;
            // Where the value lives: in the 4-byte field if it fits, else at the offset it holds.
            let value = match tiff_type_size(typ) {
                Some(sz) => {
                    let bytes = u64::from(count) * sz;
                    if bytes <= 4 {
                        Some((field, field + 4))
                    } else {
                        let vo = u64::from(rd32(field)?);
                        if vo.checked_add(bytes).is_none_or(|ve| ve > len) {
                            return malformed(format!("{path}: tag 0x{tag:04X} points outside the EXIF block"));
                        }
                        Some((vo, vo + bytes))
                    }
                }
                None => None,
            };
            match (kind, tag) {
                (Ifd::Gps, _) => {
                    let (a, b) = value.ok_or_else(|| ScrubError::Malformed(format!("{path}: GPS tag 0x{tag:04X} has unknown type {typ}")))?;
                    ctx.blank(format!("{path}/GPS IFD 0x{tag:04X} {}", gps_tag_name(tag)), Category::Location, start + a, start + b, Fill::Zeros)?;
                }
                (_, 0x8825) => queue.push((rd32(field)?, Ifd::Gps)),
                (Ifd::Main(_), 0x8769) => queue.push((rd32(field)?, Ifd::Exif)),
                (Ifd::Main(1), 0x0201) => thumb.0 = Some(rd32(field)?),
                (Ifd::Main(1), 0x0202) => thumb.1 = Some(rd32(field)?),
                (_, tag) => {
                    if let Some((name, cat)) = exif_deny(tag) {
                        let (a, b) = value.ok_or_else(|| ScrubError::Malformed(format!("{path}: tag 0x{tag:04X} has unknown type {typ}")))?;
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
    if let (Some(to), Some(tl)) = thumb {
        let (a, b) = (u64::from(to), u64::from(to) + u64::from(tl));
        if b > len {
            return malformed(format!("{path}: the thumbnail runs past the EXIF block"));
        }
        if tl > 0 {
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
    use super::*;
    use proptest::prelude::*;

    pub(super) fn bx(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(payload);
        v
    }
    fn full(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(payload);
        bx(typ, &p)
    }
    fn large(typ: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut v = 1u32.to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(&((payload.len() + 16) as u64).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }
    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }
    fn hdlr(handler: &[u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(handler);
        p.extend_from_slice(&[0u8; 12]);
        p.extend_from_slice(b"Handler\0");
        full(b"hdlr", &p)
    }
    fn qt_text(typ: &[u8; 4], text: &str) -> Vec<u8> {
        let mut p = (text.len() as u16).to_be_bytes().to_vec();
        p.extend_from_slice(&0x15c7u16.to_be_bytes());
        p.extend_from_slice(text.as_bytes());
        bx(typ, &p)
    }
    fn data(text: &str) -> Vec<u8> {
        let mut p = 1u32.to_be_bytes().to_vec();
        p.extend_from_slice(&[0u8; 4]);
        p.extend_from_slice(text.as_bytes());
        bx(b"data", &p)
    }
    fn keys(names: &[&str]) -> Vec<u8> {
        let mut p = (names.len() as u32).to_be_bytes().to_vec();
        for n in names {
            p.extend_from_slice(&((n.len() + 8) as u32).to_be_bytes());
            p.extend_from_slice(b"mdta");
            p.extend_from_slice(n.as_bytes());
        }
        full(b"keys", &p)
    }
    fn trak(handler: &[u8; 4], extra: &[u8]) -> Vec<u8> {
        let mdia = bx(b"mdia", &cat(&[full(b"mdhd", &[0u8; 20]), hdlr(handler), bx(b"minf", &[0u8; 16])]));
        bx(b"trak", &cat(&[full(b"tkhd", &[0u8; 80]), mdia, extra.to_vec()]))
    }
    pub(super) fn mdat_payload() -> Vec<u8> {
        (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
    }

    const ISO: &str = "+33.7406-118.2760+012.000/";

    /// An Android-style MP4 (ftyp, mdat, moov with udta/©xyz and an MP4 meta/ilst) or, with
    /// `quicktime`, an iPhone-style movie (moov/meta with keys and ilst, plain meta).
    pub(super) fn movie(quicktime: bool, large_mdat: bool) -> Vec<u8> {
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

    fn find(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn scrub_bytes(input: &[u8], mime: &str) -> (Plan, Vec<u8>) {
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
    fn assert_only_blanked(input: &[u8], out: &[u8], plan: &Plan) {
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

    fn mdat_range(file: &[u8]) -> std::ops::Range<usize> {
        let p = file.windows(4).position(|w| w == b"mdat").unwrap();
        let payload = mdat_payload();
        let start = (p..file.len()).find(|&i| file[i..].starts_with(&payload[..64])).unwrap();
        start..start + payload.len()
    }

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
    fn unsupported_types_are_refused_without_creating_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("in");
        std::fs::write(&s, movie(false, false)).unwrap();
        for mime in ["video/webm", "video/x-matroska", "image/png", "image/heic", "image/webp", "audio/wav", "audio/mpeg", "audio/ogg", "audio/amr", "audio/aac", "x/y\"}"] {
            let d = dir.path().join("out");
            let e = scrub_copy(&s, &d, mime).unwrap_err();
            assert!(matches!(e, ScrubError::Unsupported(_)) && e.withholds(), "{mime}: {e}");
            assert!(!e.to_string().contains('"') && !e.to_string().contains('}'));
            assert!(!d.exists());
        }
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

    // --- JPEG -----------------------------------------------------------------------------

    struct Tiff {
        little: bool,
        buf: Vec<u8>,
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
        fn ifd(&mut self, entries: &[(u16, u16, u32, Vec<u8>)]) -> (u32, Vec<usize>) {
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
        fn patch32(&mut self, at: usize, v: u32) {
            let b = self.u32(v);
            self.buf[at..at + 4].copy_from_slice(&b);
        }
        fn rationals(&self, v: &[(u32, u32)]) -> Vec<u8> {
            v.iter().flat_map(|(a, b)| [self.u32(*a), self.u32(*b)].concat()).collect()
        }
    }

    const LAT: [(u32, u32); 3] = [(33, 1), (44, 1), (2616, 100)];
    const LON: [(u32, u32); 3] = [(118, 1), (16, 1), (3360, 100)];

    pub(super) fn exif(little: bool) -> Vec<u8> {
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

    fn segment(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0xFF, code];
        v.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    pub(super) fn scan_data() -> Vec<u8> {
        // Entropy-coded bytes with stuffed 0xFF 0x00 and restart markers, as a real scan has.
        let mut v: Vec<u8> = (0..3000u32).map(|i| (i.wrapping_mul(40_503) >> 5) as u8).map(|b| if b == 0xFF { 0xFE } else { b }).collect();
        v.splice(100..100, [0xFF, 0x00]);
        v.splice(1000..1000, [0xFF, 0xD0]);
        v.splice(2000..2000, [0xFF, 0xFF, 0xD1]);
        v
    }

    pub(super) fn jpeg(little: bool) -> Vec<u8> {
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

    fn plan_of(f: &[u8], mime: &str) -> Result<Plan, ScrubError> {
        plan(io::Cursor::new(f), f.len() as u64, mime)
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

    #[test]
    fn the_copy_refuses_an_existing_destination_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (s, d) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::write(&s, movie(false, false)).unwrap();
        std::fs::write(&d, b"keep me").unwrap();
        let e = scrub_copy(&s, &d, "video/mp4").unwrap_err();
        assert!(matches!(e, ScrubError::Io { .. }) && !e.withholds());
        assert_eq!(std::fs::read(&d).unwrap(), b"keep me");
        // A malformed source leaves no copy behind.
        std::fs::write(&s, b"garbage garbage garbage").unwrap();
        let d2 = dir.path().join("out2");
        assert!(matches!(scrub_copy(&s, &d2, "video/mp4"), Err(ScrubError::Malformed(_))));
        assert!(!d2.exists());
    }

    #[test]
    fn a_copy_larger_than_one_chunk_is_patched_across_chunk_boundaries() {
        // A free box spanning the 1 MiB chunk boundary, then a location after it.
        let pad = vec![0x5Au8; CHUNK + 1000];
        let udta = bx(b"udta", &qt_text(b"\xA9xyz", "+33.7406-118.2760/"));
        let moov = bx(b"moov", &cat(&[full(b"mvhd", &[0u8; 96]), trak(b"vide", &[]), udta]));
        let f = cat(&[bx(b"ftyp", b"isom"), bx(b"free", &pad), bx(b"mdat", &mdat_payload()), moov]);
        let (plan, out) = scrub_bytes(&f, "video/mp4");
        assert_only_blanked(&f, &out, &plan);
        assert!(plan.blanks.iter().any(|b| b.category == Category::Padding && b.len == pad.len() as u64));
        assert!(!find(&out, b"118.2760"));
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

        #[test]
        fn random_bytes_never_panic(f in proptest::collection::vec(any::<u8>(), 0..600), jpeg in any::<bool>()) {
            let _ = plan_of(&f, if jpeg { "image/jpeg" } else { "video/mp4" });
        }
    }
}
