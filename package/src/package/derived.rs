//! Release-profile derived documents: what a public release holds in place of the device-signed
//! originals, and how the exporter builds them.
//!
//! A release (records requests, public) must not carry exact places or operator identity, and
//! the originals must stay untouched. So the server writes **new** documents and signs them with
//! its own key, each naming the original's SHA-256 (which the receipt and the log also name):
//!
//! * [`DerivedManifest`] ([`DERIVED_MANIFEST_TYPE`]): the original manifest's facts with the track
//!   snapped to a [`RELEASE_GRID_DEG`] grid ([`coarsen`]), accuracy raised to at least
//!   [`RELEASE_MIN_ACCURACY_M`], altitude, heading, speed, organisation, call sign, note and
//!   incident hint removed; the media file is either a scrubbed copy ([`ReleasedMedia`]) or
//!   withheld, with the reason;
//! * [`DerivedDevice`] ([`DERIVED_DEVICE_TYPE`]): the device certificate without organisation.
//!
//! Each document says in words what was changed ([`Derivation::changes`]). The verifier reads
//! them with [`DerivedManifest::parse`]; docs/FORMATS.md and docs/VERIFY.md (§4) describe them.

use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::manifest::{App, Capture, ItemKind, Manifest, Media, Observation, Operator, Segment};
use fieldcap_evidence::track::TrackPoint;
use serde::{Deserialize, Serialize};

/// Type string of a release-profile derived manifest.
pub const DERIVED_MANIFEST_TYPE: &str = "fieldcap.derived-manifest/1";
/// Type string of a release-profile derived device certificate.
pub const DERIVED_DEVICE_TYPE: &str = "fieldcap.derived-device/1";
/// Release profile location grid: coordinates are snapped to multiples of this many degrees
/// (0.001° is about 111 m north–south and 93 m east–west at Los Angeles' latitude).
pub const RELEASE_GRID_DEG: f64 = 0.001;
/// Release profile: reported accuracy is at least this many metres.
pub const RELEASE_MIN_ACCURACY_M: f64 = 100.0;

/// Provenance of a derived (release-profile) document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivation {
    /// `release`.
    pub profile: String,
    /// What was changed, in words.
    pub changes: Vec<String>,
    /// When derived.
    pub derived_at: String,
    /// The server key that signed the derived document.
    pub server_key_id: String,
}

/// The media file of a release: a copy of the original in which location and identity metadata
/// inside the file were overwritten with bytes of the same length
/// (`fieldcap_media::scrub_copy`); everything else, audio, video and image data included,
/// is byte-for-byte the original's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasedMedia {
    /// Length (equal to the original's).
    pub bytes: u64,
    /// SHA-256 hex of the copy.
    pub sha256: String,
    /// BLAKE3 hex of the copy.
    pub blake3: String,
    /// What was overwritten, one line per range: box path or tag, category, length, offset and
    /// fill (never the value), e.g. `moov/udta/©xyz (location): 18 bytes at offset 1234
    /// overwritten with spaces`. Empty when the file held nothing to remove.
    pub scrubbed: Vec<String>,
}

/// A release-profile derived manifest: the original's facts minus operator identity, with
/// coarsened locations, signed by the server and naming the original's hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedManifest {
    /// [`DERIVED_MANIFEST_TYPE`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Device chain position.
    pub seq: u64,
    /// SHA-256 of the device-signed original manifest.
    pub original_manifest_sha256: String,
    /// SHA-256 of the device's original signature bytes.
    pub original_signature_sha256: String,
    /// Kind.
    pub kind: ItemKind,
    /// The original's media digests, as the device signed them and the receipt names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// The media file in this package: the scrubbed copy of the original. Absent for an item
    /// without media, for media withheld, and in releases made before media was scrubbed (their
    /// media file is the original, unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_media: Option<ReleasedMedia>,
    /// Why the media is not in this release (a format or content that cannot be scrubbed of
    /// location and identity metadata, or a file that does not parse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_withheld: Option<String>,
    /// Capture window and clock (unchanged).
    pub capture: Capture,
    /// Coarsened track (grid [`RELEASE_GRID_DEG`], no altitude, heading or speed).
    pub track: Vec<TrackPoint>,
    /// Operator role only.
    pub operator: Operator,
    /// Tags.
    pub tags: Vec<String>,
    /// Segment position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// Witness log fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
    /// Producing application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    /// How it was derived.
    pub derivation: Derivation,
}

/// Snaps a coordinate to the release grid.
pub fn coarsen(deg: f64) -> f64 {
    let v = (deg / RELEASE_GRID_DEG).round() * RELEASE_GRID_DEG;
    // Shortest decimal form with three decimals (33.736, not 33.736000000000004).
    format!("{v:.3}").parse().unwrap_or(v)
}

impl DerivedManifest {
    /// Derives the release form of an original manifest.
    pub fn from_original(m: &Manifest, original: &[u8], original_sig: &[u8], server_key_id: &str, at: &str) -> DerivedManifest {
        let track = m
            .track
            .iter()
            .map(|p| TrackPoint {
                t: p.t.clone(),
                lat: coarsen(p.lat),
                lon: coarsen(p.lon),
                accuracy_m: p.accuracy_m.max(RELEASE_MIN_ACCURACY_M),
                altitude_m: None,
                heading_deg: None,
                speed_mps: None,
                provider: p.provider.clone(),
            })
            .collect();
        DerivedManifest {
            doc_type: DERIVED_MANIFEST_TYPE.into(),
            clip_id: m.clip_id.clone(),
            device_id: m.device_id.clone(),
            seq: m.seq,
            original_manifest_sha256: fieldcap_evidence::hashing::sha256_hex(original),
            original_signature_sha256: fieldcap_evidence::hashing::sha256_hex(original_sig),
            kind: m.kind,
            media: m.media.clone(),
            released_media: None,
            media_withheld: None,
            capture: m.capture.clone(),
            track,
            operator: Operator { role: m.operator.role, org: None, callsign: None },
            tags: m.tags.clone(),
            segment: m.segment.clone(),
            observation: m.observation.clone(),
            app: m.app.clone(),
            derivation: Derivation {
                profile: "release".into(),
                changes: vec![
                    "track coordinates snapped to a 0.001 degree grid (about 100 m)".into(),
                    "track accuracy raised to at least 100 m; altitude, heading and speed removed".into(),
                    "operator organisation and call sign removed".into(),
                    "operator note and incident hint removed".into(),
                ],
                derived_at: at.into(),
                server_key_id: server_key_id.into(),
            },
        }
    }

    /// Records the scrubbed copy that the package holds instead of the original media.
    pub fn set_released_media(&mut self, released: ReleasedMedia) {
        self.derivation.changes.push(
            "media file: a copy of the original in which location and identity metadata inside the file were overwritten with bytes of \
             the same length (listed in released_media.scrubbed); audio, video and image data unchanged"
                .into(),
        );
        self.released_media = Some(released);
        self.media_withheld = None;
    }

    /// Records that the media is not in the release, and why.
    pub fn set_media_withheld(&mut self, reason: &str) {
        self.derivation.changes.push("media file withheld: it could not be scrubbed of location and identity metadata (media_withheld says why)".into());
        self.released_media = None;
        self.media_withheld = Some(reason.into());
    }

    /// Parses derived-manifest bytes (canonical JSON, right type).
    pub fn parse(bytes: &[u8]) -> Result<DerivedManifest> {
        let d: DerivedManifest = serde_json::from_slice(bytes).map_err(|e| Error::InvalidInput(format!("not a fieldcap.derived-manifest/1: {e}")))?;
        if d.doc_type != DERIVED_MANIFEST_TYPE {
            return Err(Error::InvalidInput("not a fieldcap.derived-manifest/1".into()));
        }
        if !fieldcap_evidence::canonical::is_canonical(bytes) {
            return Err(Error::InvalidInput("derived manifest is not canonical JSON".into()));
        }
        Ok(d)
    }
}

/// A release-profile derived device certificate (no organisation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedDevice {
    /// [`DERIVED_DEVICE_TYPE`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Device id.
    pub device_id: String,
    /// Device public key, SPKI PEM.
    pub public_key_pem: String,
    /// Role.
    pub role: String,
    /// When enrolled.
    pub enrolled_at: String,
    /// SHA-256 of the original certificate bytes.
    pub original_cert_sha256: String,
    /// Server key id.
    pub server_key_id: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn coarsen_snaps_to_the_grid() {
        assert_eq!(coarsen(33.736149), 33.736);
        assert_eq!(coarsen(-118.26391), -118.264);
        assert_eq!(serde_json::to_string(&coarsen(33.7365001)).unwrap(), "33.737");
    }
}
