//! The evidence manifest (`fieldcap.manifest/1`).
//!
//! A manifest is the signed statement a device makes about one item: what it is, its digests,
//! when and where it was captured, by whom, and where it sits in the device's chain (`seq`,
//! `prev`). It is serialised once, canonically ([`crate::canonical`]), signed over those exact
//! bytes, and the bytes are kept forever. [`Manifest::parse`] is the strict reader every verifier
//! (device, server, `fieldcap verify`) uses: canonical bytes, known type, well-formed ids and
//! digests, valid times and ranges.
//!
//! ```
//! use fieldcap_evidence::manifest::{mime_for_extension, ItemKind};
//! assert_eq!(mime_for_extension("MP4"), Some(("video/mp4", ItemKind::Video)));
//! ```

use crate::error::{Error, Result};
use crate::track::TrackPoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The manifest type string.
pub const MANIFEST_TYPE: &str = "fieldcap.manifest/1";

/// Tags an item may carry. `minor_present` and `victim_present` drive the release profile.
pub const KNOWN_TAGS: &[&str] = &[
    "minor_present",
    "victim_present",
    "injury",
    "use_of_force",
    "arrest",
    "detention",
    "vehicle_stop",
    "property_damage",
    "weapon_displayed",
    "medical",
    "recovered",
];

/// The highest `seq` a manifest may carry: 2^53 − 1, the largest integer every JSON reader
/// (JavaScript's included) holds exactly. A device seals one item per seq, so no device reaches
/// it; the bound keeps a hostile device from naming seq numbers that wrap or overflow.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// The largest manifest accepted (4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A video recording.
    Video,
    /// An audio recording.
    Audio,
    /// A still image.
    Photo,
    /// A witness log entry without media.
    Observation,
}

impl ItemKind {
    /// The lowercase name used in manifests.
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemKind::Video => "video",
            ItemKind::Audio => "audio",
            ItemKind::Photo => "photo",
            ItemKind::Observation => "observation",
        }
    }
}

/// Who operated the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A community monitor on a personal phone.
    Monitor,
    /// A police officer on a department handset.
    Police,
}

impl Role {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Monitor => "monitor",
            Role::Police => "police",
        }
    }
    /// Parses `monitor` or `police`.
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "monitor" => Ok(Role::Monitor),
            "police" => Ok(Role::Police),
            _ => Err(Error::InvalidInput(format!("role must be monitor or police, not '{s}'"))),
        }
    }
}

/// The media file an item seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Media {
    /// MIME type, from the file extension.
    pub mime: String,
    /// Length in bytes.
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the whole file.
    pub sha256: String,
    /// Lowercase hex BLAKE3 of the whole file.
    pub blake3: String,
}

/// The clock the capture times came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    /// `system`, `gnss` or `network`.
    pub source: String,
    /// Milliseconds since boot when the item was sealed (monotonic).
    pub uptime_ms: u64,
    /// Last measured device-minus-server offset, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<i64>,
    /// When that offset was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<String>,
}

/// Capture window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// Start, RFC 3339 UTC ms.
    pub started_at: String,
    /// End, RFC 3339 UTC ms (not before `started_at`).
    pub ended_at: String,
    /// Clock provenance.
    pub clock: Clock,
}

/// Operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    /// Monitor or police.
    pub role: Role,
    /// Organisation, e.g. "Harbor Area Peace Patrol" or "Port Police".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Call sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callsign: Option<String>,
}

/// Position of a segment in a long recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// The recording this segment belongs to (UUID).
    pub recording_id: String,
    /// 0-based index within the recording.
    pub index: u32,
    /// True for the last segment.
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// The head of a live recording's fragment chain (`fieldcap.fragment/1`, see
/// [`crate::fragment`]): the finished recording's manifest names it, so the signed pieces a server
/// received while the camera ran are tied to the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FragmentChain {
    /// Number of fragment records (the initialization segment is record 0).
    pub count: u64,
    /// SHA-256 hex of the last record's bytes.
    pub head: String,
}

/// Structured fields of a witness log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// Free text as the witness wrote it.
    pub text: String,
    /// Agency named (e.g. ICE, CBP, FBI, HSI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<String>,
    /// Badge numbers seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub badge_numbers: Vec<String>,
    /// Vehicle plates seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vehicle_plates: Vec<String>,
    /// Number of people detained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub people_detained: Option<u32>,
    /// Whether children were present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children_present: Option<bool>,
    /// Other fields, name → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// Application that produced the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// `android`, `ios`, `linux`, …
    pub platform: String,
}

/// A `fieldcap.manifest/1` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_TYPE`].
    #[serde(rename = "type")]
    pub kind_type: String,
    /// UUIDv7.
    pub clip_id: String,
    /// Device identifier (32 hex).
    pub device_id: String,
    /// Position in the device chain, from 1.
    pub seq: u64,
    /// SHA-256 hex of the previous manifest's bytes; `None` for seq 1.
    pub prev: Option<String>,
    /// Item kind.
    pub kind: ItemKind,
    /// Media, absent for observations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    /// Capture window and clock.
    pub capture: Capture,
    /// Location fixes.
    pub track: Vec<TrackPoint>,
    /// Operator.
    pub operator: Operator,
    /// Tags from [`KNOWN_TAGS`].
    pub tags: Vec<String>,
    /// Segment position, for long recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// The fragment chain of a live recording (sealed fragment by fragment as it was filmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragments: Option<FragmentChain>,
    /// A hint linking the item to an incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_hint: Option<String>,
    /// Operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Witness log fields, for observations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
    /// Producing application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a tag list: known tags only, no duplicates; returns them sorted.
pub fn normalise_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        if !KNOWN_TAGS.contains(&t.as_str()) {
            return Err(Error::InvalidInput(format!("unknown tag '{t}' (known: {})", KNOWN_TAGS.join(", "))));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out.sort();
    Ok(out)
}

/// MIME type and item kind for a file extension.
pub fn mime_for_extension(ext: &str) -> Option<(&'static str, ItemKind)> {
    Some(match ext.to_ascii_lowercase().as_str() {
        "mp4" | "m4v" => ("video/mp4", ItemKind::Video),
        "mov" => ("video/quicktime", ItemKind::Video),
        "3gp" => ("video/3gpp", ItemKind::Video),
        "webm" => ("video/webm", ItemKind::Video),
        "mkv" => ("video/x-matroska", ItemKind::Video),
        "m4a" => ("audio/mp4", ItemKind::Audio),
        "aac" => ("audio/aac", ItemKind::Audio),
        "wav" => ("audio/wav", ItemKind::Audio),
        "mp3" => ("audio/mpeg", ItemKind::Audio),
        "ogg" | "opus" => ("audio/ogg", ItemKind::Audio),
        "amr" => ("audio/amr", ItemKind::Audio),
        "jpg" | "jpeg" => ("image/jpeg", ItemKind::Photo),
        "png" => ("image/png", ItemKind::Photo),
        "heic" => ("image/heic", ItemKind::Photo),
        "webp" => ("image/webp", ItemKind::Photo),
        _ => return None,
    })
}

/// File extension used in stores and packages for a MIME type.
pub fn extension_for_mime(mime: &str) -> &'static str {
    match mime {
        "video/mp4" => "mp4",
        "video/quicktime" => "mov",
        "video/3gpp" => "3gp",
        "video/webm" => "webm",
        "video/x-matroska" => "mkv",
        "audio/mp4" => "m4a",
        "audio/aac" => "aac",
        "audio/wav" => "wav",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "audio/amr" => "amr",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/heic" => "heic",
        "image/webp" => "webp",
        _ => "bin",
    }
}

impl Manifest {
    /// Canonical bytes (to be signed and kept).
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>> {
        Ok(crate::canonical::to_vec_of(self)?)
    }

    /// Strictly parses manifest bytes: canonical JSON, right type, every field well-formed.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(Error::InvalidInput("manifest is larger than 4 MiB".into()));
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::InvalidInput(format!("manifest does not match fieldcap.manifest/1: {e}")))?;
        m.validate()?;
        // One spelling per manifest: the bytes must be exactly what this manifest serialises
        // to, so what was signed is what was checked (an explicit `null` for an absent field, a
        // missing `prev`, `4` for `4.0` or an empty optional list would otherwise parse to a
        // manifest whose own bytes differ from the signed ones).
        // (Canonical JSON is checked only on that failure path, to name the fault: equal bytes
        // are canonical, so the hot path parses the JSON once.)
        if m.to_canonical_bytes()? != bytes {
            if !crate::canonical::is_canonical(bytes) {
                return Err(Error::InvalidInput("manifest is not canonical JSON (sorted keys, no whitespace)".into()));
            }
            return Err(Error::InvalidInput(
                "manifest is not in its one canonical spelling (an explicit null, a missing or empty optional field, or an integer where a decimal number is expected)".into(),
            ));
        }
        Ok(m)
    }

    /// Checks every field (used before signing and after parsing).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidInput(format!("manifest: {m}")));
        if self.kind_type != MANIFEST_TYPE {
            return bad("type is not fieldcap.manifest/1");
        }
        match uuid::Uuid::parse_str(&self.clip_id) {
            Ok(u) if u.get_version_num() == 7 && u.hyphenated().to_string() == self.clip_id => {}
            _ => return bad("clip_id is not a lowercase hyphenated UUIDv7"),
        }
        if !is_hex(&self.device_id, 32) {
            return bad("device_id is not 32 lowercase hex digits");
        }
        if self.seq == 0 {
            return bad("seq starts at 1");
        }
        if self.seq > MAX_SEQ {
            return bad("seq is larger than 2^53 - 1");
        }
        match (&self.prev, self.seq) {
            (None, 1) => {}
            (Some(p), s) if s > 1 && is_hex(p, 64) => {}
            _ => return bad("prev must be null for seq 1 and a SHA-256 hex otherwise"),
        }
        match (&self.media, self.kind) {
            (None, ItemKind::Observation) => {}
            (Some(m), k) if k != ItemKind::Observation => {
                if !is_hex(&m.sha256, 64) || !is_hex(&m.blake3, 64) {
                    return bad("media digests must be 64 lowercase hex digits");
                }
                if m.mime.is_empty() || m.mime.len() > 100 {
                    return bad("media mime is empty or too long");
                }
            }
            _ => return bad("media must be present for video/audio/photo and absent for observation"),
        }
        if self.kind == ItemKind::Observation && self.observation.is_none() {
            return bad("an observation needs its observation fields");
        }
        let s = crate::time::parse_canonical(&self.capture.started_at, "capture.started_at")?;
        let e = crate::time::parse_canonical(&self.capture.ended_at, "capture.ended_at")?;
        if e < s {
            return bad("capture.ended_at is before capture.started_at");
        }
        if !matches!(self.capture.clock.source.as_str(), "system" | "gnss" | "network") {
            return bad("capture.clock.source must be system, gnss or network");
        }
        if let Some(m) = &self.capture.clock.measured_at {
            crate::time::parse_canonical(m, "capture.clock.measured_at")?;
        }
        let mut track = self.track.clone();
        crate::track::validate_track(&mut track)?;
        if track != self.track {
            return bad("track times are not in canonical form");
        }
        if normalise_tags(&self.tags)? != self.tags {
            return bad("tags must be sorted and unique");
        }
        if let Some(seg) = &self.segment {
            if uuid::Uuid::parse_str(&seg.recording_id).is_err() {
                return bad("segment.recording_id is not a UUID");
            }
        }
        if let Some(f) = &self.fragments {
            if f.count == 0 || f.count > crate::fragment::MAX_FRAGMENTS || !is_hex(&f.head, 64) {
                return bad("fragments needs a count from 1 and a SHA-256 hex head");
            }
            if self.kind == ItemKind::Observation || self.segment.is_some() {
                return bad("only a whole live recording names a fragment chain");
            }
        }
        for (name, v) in [("note", &self.note), ("incident_hint", &self.incident_hint)] {
            if v.as_ref().is_some_and(|s| s.len() > 64 * 1024) {
                return Err(Error::InvalidInput(format!("manifest: {name} is longer than 64 KiB")));
            }
        }
        Ok(())
    }
}
