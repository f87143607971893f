//! Records and enums that cross the boundary, with thin `From` conversions from the core's types.
//!
//! Conventions: times are timestamps (`SystemTime` in Rust → `java.time.Instant` in Kotlin,
//! `Date` in Swift, a UTC `datetime` in Python), with millisecond precision (the manifests'
//! precision; finer parts are truncated). Digests are lowercase hex strings. Paths are absolute
//! strings.

use crate::error::{FieldcapError, Result};
use chrono::{DateTime, Utc};
use fieldcap_core::{items, manifest, seal, store, track};
use std::time::SystemTime;

/// Parses a core time string (RFC 3339) into a timestamp.
pub(crate) fn ts(s: &str) -> Result<SystemTime> {
    fieldcap_core::time::parse(s, "stored time")
        .map(SystemTime::from)
        .map_err(|_| FieldcapError::internal("a stored time is not RFC 3339"))
}

/// A timestamp as the core's UTC time.
pub(crate) fn utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// Who operates the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Role {
    /// A community monitor on a personal phone.
    Monitor,
    /// A police officer on a department handset.
    Police,
}

impl From<manifest::Role> for Role {
    fn from(r: manifest::Role) -> Self {
        match r {
            manifest::Role::Monitor => Role::Monitor,
            manifest::Role::Police => Role::Police,
        }
    }
}

impl From<Role> for manifest::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Monitor => manifest::Role::Monitor,
            Role::Police => manifest::Role::Police,
        }
    }
}

/// The app that produces the items (recorded in each capture's manifest).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AppInfo {
    /// App name, e.g. "fieldcap-android".
    pub name: String,
    /// App version.
    pub version: String,
    /// `android`, `ios`, `jvm-test`, …
    pub platform: String,
}

impl From<AppInfo> for manifest::App {
    fn from(a: AppInfo) -> Self {
        manifest::App { name: a.name, version: a.version, platform: a.platform }
    }
}

/// How to open the core.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OpenOptions {
    /// The app's private data directory for the evidence store (created if missing), e.g.
    /// `context.filesDir/fieldcap` on Android, Application Support on iOS.
    pub data_dir: String,
    /// Operator role written into every manifest.
    pub role: Role,
    /// Organisation, if any.
    #[uniffi(default = None)]
    pub org: Option<String>,
    /// Call sign, if any.
    #[uniffi(default = None)]
    pub callsign: Option<String>,
    /// The producing app, recorded in capture manifests.
    #[uniffi(default = None)]
    pub app: Option<AppInfo>,
    /// Seal new items encrypted at rest (FORMATS §6b). Once on for a store it stays on (false
    /// later does not turn it off).
    #[uniffi(default = false)]
    pub sealed_storage: bool,
    /// With sealed storage: lock items to the council this many seconds after sealing (0: at
    /// once, the monitors' setting); `None`: never automatically (police handsets).
    #[uniffi(default = None)]
    pub lock_after_secs: Option<u64>,
}

/// What [`crate::Fieldcap::lock_all`] did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LockSummary {
    /// Items locked now.
    pub locked: u64,
    /// Items locked before.
    pub already_locked: u64,
    /// Items that wait for the council's key (the device is not enrolled or has not synced
    /// since): they lock as soon as it arrives. Tell the user.
    pub waiting_for_escrow: u64,
    /// Items stored before sealed storage was on: they cannot be locked.
    pub not_sealed: u64,
}

impl From<fieldcap_core::vault::LockReport> for LockSummary {
    fn from(r: fieldcap_core::vault::LockReport) -> Self {
        LockSummary {
            locked: r.locked.len() as u64,
            already_locked: r.already_locked as u64,
            waiting_for_escrow: r.waiting_for_escrow.len() as u64,
            not_sealed: r.not_sealed.len() as u64,
        }
    }
}

/// One location fix (from FusedLocationProvider / CoreLocation).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LocationFix {
    /// Time of the fix.
    pub at: SystemTime,
    /// Latitude, WGS 84 degrees.
    pub lat: f64,
    /// Longitude, WGS 84 degrees.
    pub lon: f64,
    /// Horizontal accuracy radius in metres.
    pub accuracy_m: f64,
    /// Altitude in metres, if known.
    #[uniffi(default = None)]
    pub altitude_m: Option<f64>,
    /// Heading in degrees clockwise from true north, 0 ≤ h < 360, if known.
    #[uniffi(default = None)]
    pub heading_deg: Option<f64>,
    /// Ground speed in m/s, if known.
    #[uniffi(default = None)]
    pub speed_mps: Option<f64>,
    /// `gps`, `fused`, `network`, `manual`, …
    pub provider: String,
}

impl From<LocationFix> for track::TrackPoint {
    fn from(f: LocationFix) -> Self {
        track::TrackPoint {
            t: fieldcap_core::time::format(utc(f.at)),
            lat: f.lat,
            lon: f.lon,
            accuracy_m: f.accuracy_m,
            altitude_m: f.altitude_m,
            heading_deg: f.heading_deg,
            speed_mps: f.speed_mps,
            provider: f.provider,
        }
    }
}

/// What to record and how to label it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CaptureOptions {
    /// File extension of what the shell records: `mp4`, `mov`, `m4a`, `wav`, `jpg`, …
    pub extension: String,
    /// Tags (`minor_present`, `victim_present`, `use_of_force`, …).
    #[uniffi(default = [])]
    pub tags: Vec<String>,
    /// Operator's note.
    #[uniffi(default = None)]
    pub note: Option<String>,
    /// Incident hint for the council office.
    #[uniffi(default = None)]
    pub incident_hint: Option<String>,
    /// Clock source: `system` (default), `gnss`, `network`.
    #[uniffi(default = None)]
    pub clock_source: Option<String>,
}

/// A sealed item: its place in the device chain and its digests.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SealedItem {
    /// Item id (UUIDv7).
    pub clip_id: String,
    /// Position in the device chain (1, 2, 3, …).
    pub seq: u64,
    /// Hex SHA-256 of the signed manifest bytes.
    pub manifest_sha256: String,
    /// Media MIME type, if the item has media.
    pub media_mime: Option<String>,
    /// Media size in bytes.
    pub media_bytes: Option<u64>,
    /// Hex SHA-256 of the media.
    pub media_sha256: Option<String>,
    /// Hex BLAKE3 of the media.
    pub media_blake3: Option<String>,
}

impl From<seal::SealedItem> for SealedItem {
    fn from(s: seal::SealedItem) -> Self {
        SealedItem {
            clip_id: s.clip_id,
            seq: s.seq,
            manifest_sha256: s.manifest_sha256,
            media_mime: s.media.as_ref().map(|m| m.mime.clone()),
            media_bytes: s.media.as_ref().map(|m| m.bytes),
            media_sha256: s.media.as_ref().map(|m| m.sha256.clone()),
            media_blake3: s.media.map(|m| m.blake3),
        }
    }
}

/// Result of sealing a segment while the recording goes on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SegmentSealed {
    /// The sealed segment.
    pub item: SealedItem,
    /// Where to record the next segment (absent after the final one).
    pub next_path: Option<String>,
}

/// A witness log entry (no media).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ObservationInput {
    /// Free text as the witness wrote it (required).
    pub text: String,
    /// When it was observed; default now.
    #[uniffi(default = None)]
    pub at: Option<SystemTime>,
    /// Where, if known.
    #[uniffi(default = None)]
    pub place: Option<LocationFix>,
    /// Agency named (ICE, CBP, …).
    #[uniffi(default = None)]
    pub agency: Option<String>,
    /// Badge numbers seen.
    #[uniffi(default = [])]
    pub badge_numbers: Vec<String>,
    /// Vehicle plates seen.
    #[uniffi(default = [])]
    pub vehicle_plates: Vec<String>,
    /// People detained.
    #[uniffi(default = None)]
    pub people_detained: Option<u32>,
    /// Whether children were present.
    #[uniffi(default = None)]
    pub children_present: Option<bool>,
    /// Tags.
    #[uniffi(default = [])]
    pub tags: Vec<String>,
    /// Incident hint.
    #[uniffi(default = None)]
    pub incident_hint: Option<String>,
}

impl From<ObservationInput> for seal::ObservationRequest {
    fn from(o: ObservationInput) -> Self {
        seal::ObservationRequest {
            at: o.at.map(utc),
            place: o.place.map(Into::into),
            observation: manifest::Observation {
                text: o.text,
                agency: o.agency,
                badge_numbers: o.badge_numbers,
                vehicle_plates: o.vehicle_plates,
                people_detained: o.people_detained,
                children_present: o.children_present,
                extra: Default::default(),
            },
            tags: o.tags,
            incident_hint: o.incident_hint,
        }
    }
}

/// What kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ItemKind {
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Photo.
    Photo,
    /// Witness log entry.
    Observation,
}

impl ItemKind {
    fn parse(s: &str) -> Result<ItemKind> {
        Ok(match s {
            "video" => ItemKind::Video,
            "audio" => ItemKind::Audio,
            "photo" => ItemKind::Photo,
            "observation" => ItemKind::Observation,
            _ => return Err(FieldcapError::internal("unknown item kind in the store")),
        })
    }
}

/// Where an item is in the sync queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ItemState {
    /// Sealed on the device, nothing sent yet.
    Sealed,
    /// The server has the manifest (hash first) and committed to it.
    ManifestSent,
    /// Media upload in progress.
    Uploading,
    /// Media sent; waiting for the receipt.
    Uploaded,
    /// The server's signed receipt was verified and stored. Done.
    Receipted,
    /// Sync stopped for this item; see `attention_reason`.
    NeedsAttention,
    /// A state this version of the bindings does not know.
    Unknown,
}

impl ItemState {
    /// Maps the core's state name.
    pub fn parse(s: &str) -> ItemState {
        match s {
            "sealed" => ItemState::Sealed,
            "manifest_sent" => ItemState::ManifestSent,
            "uploading" => ItemState::Uploading,
            "uploaded" => ItemState::Uploaded,
            "receipted" => ItemState::Receipted,
            "needs_attention" => ItemState::NeedsAttention,
            _ => ItemState::Unknown,
        }
    }
}

/// Whether the stored media still matches its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MediaIntegrity {
    /// Present and unchanged (as of the last check).
    Ok,
    /// The media file is missing.
    Missing,
    /// The media file changed.
    Mismatch,
}

/// One row of the queue screen.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ItemInfo {
    /// Item id.
    pub clip_id: String,
    /// Chain position.
    pub seq: u64,
    /// Kind.
    pub kind: ItemKind,
    /// Queue state.
    pub state: ItemState,
    /// Media integrity.
    pub integrity: MediaIntegrity,
    /// Capture start.
    pub started_at: SystemTime,
    /// When it was sealed.
    pub sealed_at: SystemTime,
    /// Media size.
    pub media_bytes: Option<u64>,
    /// Recording id, for segments.
    pub recording_id: Option<String>,
    /// Segment index, for segments.
    pub segment_index: Option<u32>,
    /// When the server's receipt was verified on the device.
    pub receipted_at: Option<SystemTime>,
    /// Why the item needs attention, if it does.
    pub attention_reason: Option<String>,
    /// Stored encrypted at rest.
    pub sealed: bool,
    /// Locked to the council: it cannot be opened on this phone (it still uploads).
    pub locked: bool,
}

impl TryFrom<items::ItemSummary> for ItemInfo {
    type Error = FieldcapError;
    fn try_from(s: items::ItemSummary) -> Result<Self> {
        Ok(ItemInfo {
            kind: ItemKind::parse(&s.kind)?,
            state: ItemState::parse(&s.state),
            integrity: match s.integrity.as_str() {
                "ok" => MediaIntegrity::Ok,
                "missing" => MediaIntegrity::Missing,
                _ => MediaIntegrity::Mismatch,
            },
            started_at: ts(&s.started_at)?,
            sealed_at: ts(&s.sealed_at)?,
            receipted_at: s.receipted_at.as_deref().map(ts).transpose()?,
            clip_id: s.clip_id,
            seq: s.seq,
            media_bytes: s.media_bytes,
            recording_id: s.recording_id,
            segment_index: s.segment_index,
            attention_reason: s.last_error,
            sealed: s.sealed,
            locked: s.locked,
        })
    }
}

/// What recovery found and did when the core was opened (for a notice in the UI).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecoveryReport {
    /// A new device key was generated (first start).
    pub key_created: bool,
    /// Interrupted seals that were completed.
    pub seals_completed: u32,
    /// Orphan recording segments, and live recordings a killed app left unfinished, sealed with
    /// the `recovered` tag (e.g. after a crash mid-recording).
    pub segments_recovered: u32,
    /// Files moved to quarantine (never deleted).
    pub quarantined: u32,
    /// Items flagged because their media is missing or changed.
    pub flagged: u32,
    /// An unreadable database was moved aside and the store rebuilt from signed manifests.
    pub database_rebuilt: bool,
    /// True when any of the above deserves a notice.
    pub eventful: bool,
}

impl From<&store::OpenReport> for RecoveryReport {
    fn from(r: &store::OpenReport) -> Self {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        RecoveryReport {
            key_created: r.key_created,
            seals_completed: n(r.seals_completed.len()),
            segments_recovered: n(r.segments_recovered.len()),
            quarantined: n(r.quarantined.len()),
            flagged: n(r.flagged.len()),
            database_rebuilt: r.database_moved_aside.is_some(),
            eventful: r.is_eventful(),
        }
    }
}

/// The server's signed receipt for an item, as stored (and verified) on the device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ReceiptInfo {
    /// Item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Chain position.
    pub seq: u64,
    /// Hex SHA-256 of the manifest the server received.
    pub manifest_sha256: String,
    /// Media size as received.
    pub media_bytes: Option<u64>,
    /// Hex SHA-256 the server recomputed.
    pub media_sha256: Option<String>,
    /// Hex BLAKE3 the server recomputed.
    pub media_blake3: Option<String>,
    /// When the server had everything.
    pub received_at: SystemTime,
    /// Leaf index in the server's transparency log.
    pub log_index: u64,
    /// Tree size of the checkpoint in the receipt.
    pub tree_size: u64,
    /// Hex id of the server key that signed it.
    pub server_key_id: String,
    /// The exact signed receipt bytes (canonical JSON), as text.
    pub receipt_json: String,
    /// Hex of the raw Ed25519 signature over `receipt_json`.
    pub signature_hex: String,
}

impl ReceiptInfo {
    /// Parses the stored receipt bytes.
    pub(crate) fn from_stored(body: &[u8], sig: &[u8]) -> Result<ReceiptInfo> {
        let r: fieldcap_core::protocol::Receipt =
            serde_json::from_slice(body).map_err(|_| FieldcapError::Integrity { detail: "the stored receipt does not parse".into() })?;
        Ok(ReceiptInfo {
            received_at: ts(&r.received_at)?,
            clip_id: r.clip_id,
            device_id: r.device_id,
            seq: r.seq,
            manifest_sha256: r.manifest_sha256,
            media_bytes: r.media.as_ref().map(|m| m.bytes),
            media_sha256: r.media.as_ref().map(|m| m.sha256.clone()),
            media_blake3: r.media.map(|m| m.blake3),
            log_index: r.log.index,
            tree_size: r.log.tree_size,
            server_key_id: r.server_key_id,
            receipt_json: String::from_utf8_lossy(body).into_owned(),
            signature_hex: hex_encode(sig),
        })
    }
}

pub(crate) fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
