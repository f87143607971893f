//! The release profile (records requests, public release).
//!
//! A released package never holds the device-signed originals. For each item it holds a **new**
//! document, `fieldcap.derived-manifest/1`
//! ([`fieldcap_package::package::DerivedManifest`]), signed by the server key, that
//!
//! * names the original's SHA-256 (`original_manifest_sha256`, which the server's receipt also
//!   names) and the SHA-256 of the device's signature bytes;
//! * snaps every track fix to a 0.001° grid ([`fieldcap_package::package::coarsen`]: about
//!   111 m north–south and 93 m east–west at 33.7° N), raises accuracy to at least 100 m and
//!   drops altitude, heading and speed;
//! * keeps only the operator's role (organisation and call sign removed), and drops the operator
//!   note and incident hint;
//! * keeps times, clock provenance, the original's media digests (`media`), tags, segment and
//!   observation fields;
//! * names the media file the package actually holds (`released_media`) or says why there is
//!   none (`media_withheld`), see below.
//!
//! **Media.** A phone writes the exact place (and sometimes the owner's name) into the file
//! itself: `©xyz` or `com.apple.quicktime.location.ISO6709` in an MP4/QuickTime movie, the GPS
//! IFD in a JPEG's EXIF. So the release never copies the original media either: [`release_media`]
//! writes a copy in which that metadata is overwritten with bytes of the same length
//! ([`fieldcap_media`]: nothing moves, audio, video and image data stay
//! byte-for-byte the original's), checks on the way that the bytes read are the original the
//! manifest names, and returns the copy's digests and the list of what was overwritten for
//! `released_media`. Media the scrubber cannot make safe — a format it does not parse (WebM,
//! Matroska, PNG, HEIC, WebP, WAV, MP3, Ogg, AMR, AAC), a movie with a timed-metadata or text
//! track, a file that does not parse — is **withheld**: no media file for that item, and
//! `media_withheld` (in the derived manifest and the index) says why. The pictures themselves
//! are not edited: faces, vehicle plates and voices are released as recorded.
//!
//! Device certificates are likewise replaced by `fieldcap.derived-device/1` documents without the
//! organisation. Items tagged `minor_present` or `victim_present` are left out unless the export
//! names a reason (`--include-sensitive --reason`), which goes into the custody event.
//! Originals and their records on the server are never changed; the full profile (prosecutors)
//! still carries the originals.
//!
//! ```
//! use fieldcap_server::package::release::is_sensitive;
//! assert!(is_sensitive(&["minor_present".to_string()]));
//! assert!(!is_sensitive(&["arrest".to_string()]));
//! ```

pub use fieldcap_package::package::{coarsen, DerivedDevice, DerivedManifest, ReleasedMedia, RELEASE_GRID_DEG, RELEASE_MIN_ACCURACY_M};

use crate::error::{Error, Result};
use fieldcap_evidence::manifest::Media;
use fieldcap_media::{scrub_copy, ScrubError};
use std::path::Path;

/// Tags that keep an item out of a release unless a reason is recorded.
pub const SENSITIVE_TAGS: &[&str] = &["minor_present", "victim_present"];

/// True if any tag is sensitive.
pub fn is_sensitive(tags: &[String]) -> bool {
    tags.iter().any(|t| SENSITIVE_TAGS.contains(&t.as_str()))
}

/// What a release does with an item's media file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleasedFile {
    /// The scrubbed copy was written; this goes into the derived manifest's `released_media`.
    Copy(ReleasedMedia),
    /// No file was written; the reason goes into `media_withheld`.
    Withheld(String),
}

/// Writes the release copy of the original at `original` (the item's media, `media` as the
/// device signed it) to `dst`: metadata naming a place or a person overwritten in place (see the
/// module documentation). Returns [`ReleasedFile::Withheld`] when the media cannot be made safe
/// (nothing is left at `dst`), and an error when reading or writing fails or when the bytes read
/// are not the original the manifest names (a damaged blob is never released, scrubbed or not).
pub fn release_media(clip_id: &str, original: &Path, dst: &Path, media: &Media) -> Result<ReleasedFile> {
    let report = match scrub_copy(original, dst, &media.mime) {
        Ok(r) => r,
        Err(e @ (ScrubError::Unsupported(_) | ScrubError::Malformed(_))) => return Ok(ReleasedFile::Withheld(e.to_string())),
        Err(ScrubError::Io { context, source }) => return Err(Error::Io { context: format!("{context} (release copy of {clip_id})"), source }),
    };
    let s = report.source;
    if s.bytes != media.bytes || s.sha256_hex() != media.sha256 || s.blake3_hex() != media.blake3 {
        let _ = std::fs::remove_file(dst);
        return Err(Error::Internal(format!("the stored original of {clip_id} does not match its manifest; not exported")));
    }
    Ok(ReleasedFile::Copy(ReleasedMedia {
        bytes: report.output.bytes,
        sha256: report.output.sha256_hex(),
        blake3: report.output.blake3_hex(),
        scrubbed: report.descriptions(),
    }))
}
