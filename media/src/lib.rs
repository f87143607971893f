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
//!   zero padding is accepted; any other trailing data is refused. EXIF in which a value to be
//!   blanked, or the thumbnail, overlaps the TIFF header or an IFD's entry count, entries or
//!   next-IFD pointer (only hostile or broken writers do this) is refused
//!   ([`ScrubError::Malformed`], naming the tag): blanking it would change the structure, so the
//!   copy would no longer parse or would scrub differently a second time.
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
//! Where things live: this file holds the public API ([`plan`], [`scrub_copy`], [`supports`] and
//! the report and error types); `isobmff.rs` and `jpeg.rs` walk their formats and plan the ranges
//! to overwrite; `walk.rs` is what both walkers share (the bounds-checked windowed reader, the
//! plan being collected, the limits); `copy.rs` writes the copy in one pass with its digests.
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

mod copy;
mod isobmff;
mod jpeg;
#[cfg(test)]
mod test_files;
mod walk;

use fieldcap_evidence::hashing::Digests;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// MIME types parsed as ISO base media files (MP4, QuickTime, 3GP, M4A).
pub const ISO_BMFF_MIMES: &[&str] = &["video/mp4", "video/quicktime", "video/3gpp", "audio/mp4"];
/// MIME type parsed as JPEG.
pub const JPEG_MIME: &str = "image/jpeg";

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
    /// Ranges to overwrite. Two values of a hostile EXIF block may share bytes, so ranges may
    /// overlap each other; none overlaps the structure a reader walks.
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

/// Result of the planner and the copy.
type R<T> = std::result::Result<T, ScrubError>;

/// A [`ScrubError::Malformed`] with `msg`.
fn malformed<T>(msg: impl Into<String>) -> R<T> {
    Err(ScrubError::Malformed(msg.into()))
}

/// Wraps an I/O error with what was being done.
fn io_err(context: &str) -> impl FnOnce(io::Error) -> ScrubError + '_ {
    move |source| ScrubError::Io { context: context.to_string(), source }
}

fn unsupported_mime(mime: &str) -> ScrubError {
    ScrubError::Unsupported(format!("{} is not a format the release scrubber can parse (it parses MP4, QuickTime, 3GP, M4A and JPEG)", walk::clean(mime.as_bytes())))
}

/// Plans the scrubbing of `len` bytes read from `reader` as `mime`: which ranges to overwrite.
/// Reads only headers and metadata, never media data, with a small read window.
pub fn plan<T: Read + Seek>(reader: T, len: u64, mime: &str) -> Result<Plan, ScrubError> {
    let format = Format::for_mime(mime).ok_or_else(|| unsupported_mime(mime))?;
    if len == 0 {
        return malformed("the file is empty");
    }
    let mut src = walk::Src::new(reader, len);
    let mut ctx = walk::Ctx::default();
    match format {
        Format::IsoBmff => isobmff::walk_bmff(&mut src, &mut ctx, 0, len, "", 0)?,
        Format::Jpeg => jpeg::walk_jpeg_file(&mut src, &mut ctx)?,
    }
    let mut blanks = ctx.blanks;
    blanks.sort_by(|a, b| a.offset.cmp(&b.offset).then(a.len.cmp(&b.len)));
    Ok(Plan { format, len, blanks })
}

/// Writes to `dst` (which must not exist) a copy of `src` in which every location and identity
/// metadata value is overwritten with bytes of the same length (see the module documentation).
///
/// The source is planned first (headers only), then copied once in
/// [`CHUNK`](fieldcap_evidence::hashing::CHUNK)-sized pieces with
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
    match copy::copy_patched(&mut input, len, &mut out, &copy::merge(&planned.blanks)) {
        Ok((source, output)) => Ok(ScrubReport { format: planned.format, blanked: planned.blanks, source, output }),
        Err(e) => {
            drop(out);
            let _ = fs::remove_file(dst);
            Err(e)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_files::*;
    use proptest::prelude::*;

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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn random_bytes_never_panic(f in proptest::collection::vec(any::<u8>(), 0..600), jpeg in any::<bool>()) {
            let _ = plan_of(&f, if jpeg { "image/jpeg" } else { "video/mp4" });
        }
    }
}
