//! The release profile (records requests, public release).
//!
//! A released package never holds the device-signed originals. For each item it holds a **new**
//! document, `fieldcap.derived-manifest/1`
//! ([`fieldcap_core::package_verify::DerivedManifest`]), signed by the server key, that
//!
//! * names the original's SHA-256 (`original_manifest_sha256`, which the server's receipt also
//!   names) and the SHA-256 of the device's signature bytes;
//! * snaps every track fix to a 0.001° grid ([`fieldcap_core::package_verify::coarsen`]: about
//!   111 m north–south and 93 m east–west at 33.7° N), raises accuracy to at least 100 m and
//!   drops altitude, heading and speed;
//! * keeps only the operator's role (organisation and call sign removed), and drops the operator
//!   note and incident hint;
//! * keeps times, clock provenance, media digests, tags, segment and observation fields.
//!
//! Device certificates are likewise replaced by `fieldcap.derived-device/1` documents without the
//! organisation. Items tagged `minor_present` or `victim_present` are left out unless the export
//! names a reason (`--include-sensitive --reason`), which goes into the custody event.
//! Originals and their records on the server are never changed. The media files themselves are
//! copied unchanged; container metadata inside them (e.g. a GPS atom in an MP4) is not edited.
//!
//! ```
//! use fieldcap_server::package::release::is_sensitive;
//! assert!(is_sensitive(&["minor_present".to_string()]));
//! assert!(!is_sensitive(&["arrest".to_string()]));
//! ```

pub use fieldcap_core::package_verify::{coarsen, DerivedDevice, DerivedManifest, RELEASE_GRID_DEG, RELEASE_MIN_ACCURACY_M};

/// Tags that keep an item out of a release unless a reason is recorded.
pub const SENSITIVE_TAGS: &[&str] = &["minor_present", "victim_present"];

/// True if any tag is sensitive.
pub fn is_sensitive(tags: &[String]) -> bool {
    tags.iter().any(|t| SENSITIVE_TAGS.contains(&t.as_str()))
}
