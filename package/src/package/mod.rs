//! Evidence packages: the signed index format (`fieldcap.package/1`, this module), release-profile
//! derived documents ([`DerivedManifest`], [`DerivedDevice`]), the stock-tool procedure
//! ([`verify_txt`]) and the independent verifier behind `fieldcap verify` ([`verify_package`]).
//!
//! This crate has no server code, so that a recipient (prosecutor, defence, court expert) can
//! verify a package with it alone. A package is a folder:
//!
//! ```text
//! VERIFY.txt  SHA256SUMS  B3SUMS  package.json  package.json.sig  server.pub.pem  report.html
//! devices/<device_id>.pub.pem  devices/<device_id>.cert.json  devices/<device_id>.cert.sig
//! clips/<clip_id>/media.<ext>  manifest.json  manifest.sig  receipt.json  receipt.sig
//! custody.jsonl  log/checkpoint.txt  log/inclusion/<clip_id>.json
//! ```
//!
//! `package.json` is canonical JSON signed by the server (`package.json.sig`, raw Ed25519); it
//! lists every other file's length, SHA-256 and BLAKE3 (all but `package.json`, its signature and
//! the two sums files), so the server signature covers the whole package.
//!
//! Where things live:
//! * this file: the index and the inclusion-proof file (`log/inclusion/<clip_id>.json`), the
//!   media file name, and [`hash_files`], which the exporter and the verifier both use;
//! * `derived.rs`: the release profile's documents and how they are built from the originals
//!   (coarsened tracks, no operator identity, scrubbed or withheld media);
//! * `verify_txt.rs`: the `VERIFY.txt` shell procedure for stock tools;
//! * `verify/`: [`verify_package`], one file per family of checks (sums, signatures, media,
//!   receipts and the log, device chains, custody).
//!
//! [`verify_package`] hashes every file once (two files at a time, SHA-256 and BLAKE3 of each on
//! separate threads) and then checks, one [`Check`](crate::Check) line each, naming the file
//! concerned: the index signature, both sums files and the signed file list, every device key
//! and certificate, every manifest signature (device key for originals, server key for
//! release-profile derived manifests), media against manifests (in a release: the scrubbed copy
//! against the derived manifest's `released_media`, or no media file where it says
//! `media_withheld`), receipts against manifests and the original media's digests, each
//! receipt's own checkpoint and inclusion proof, inclusion of each receipt's leaf in the package
//! checkpoint plus consistency from the receipt's tree, each device's chain (`seq`/`prev`; a
//! missing seq is reported by number), and the custody events of the server and the devices
//! (signatures, order, `prev` links; a device `sealed` event must name the packaged manifest);
//! then, needing no pinned key, the devices' own custody events against the package's server
//! side (the server key id they enrolled with and committed to, the receipts they recorded) and
//! the export's custody record against the index's item list.
//!
//! ```no_run
//! let report = fieldcap_package::package::verify_package("/media/usb/package".as_ref());
//! for c in &report.checks {
//!     println!("{} {} [{}] {}", if c.ok { "ok" } else { "FAIL" }, c.name, c.file, c.detail);
//! }
//! assert!(report.all_ok());
//! ```

mod derived;
mod verify;
mod verify_txt;

pub use derived::{coarsen, Derivation, DerivedDevice, DerivedManifest, ReleasedMedia, DERIVED_DEVICE_TYPE, DERIVED_MANIFEST_TYPE, RELEASE_GRID_DEG, RELEASE_MIN_ACCURACY_M};
pub use verify::{verify_package, verify_package_with, TrustAnchors};
pub use verify_txt::verify_txt;

use fieldcap_evidence::hashing::Digests;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

/// Type string of a package index.
pub const PACKAGE_TYPE: &str = "fieldcap.package/1";
/// Type string of an inclusion-proof file under `log/inclusion/`.
pub const INCLUSION_TYPE: &str = "fieldcap.inclusion/1";
/// Files not listed in the signed index (the index itself, its signature, the sums files).
pub const UNLISTED: &[&str] = &["package.json", "package.json.sig", "SHA256SUMS", "B3SUMS"];

/// One file of a package as listed in the signed index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the package root, `/`-separated.
    pub path: String,
    /// Length.
    pub bytes: u64,
    /// SHA-256 hex.
    pub sha256: String,
    /// BLAKE3 hex.
    pub blake3: String,
}

/// A link of a device's manifest chain, as the server holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// Chain position.
    pub seq: u64,
    /// SHA-256 hex of the manifest bytes.
    pub manifest_sha256: String,
    /// The manifest's `prev`.
    pub prev: Option<String>,
}

/// A device in a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDevice {
    /// Device id.
    pub device_id: String,
    /// `monitor` or `police`.
    pub role: String,
    /// Links from the device's lowest to highest included seq (every seq the server holds in that
    /// range; a seq the server never received is absent).
    pub chain: Vec<ChainLink>,
    /// Latest measured device-minus-server clock offset (ms) among the included items, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
}

/// Media of an item in a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageMedia {
    /// Path relative to the package root.
    pub path: String,
    /// MIME type.
    pub mime: String,
    /// Length.
    pub bytes: u64,
    /// SHA-256 hex.
    pub sha256: String,
    /// BLAKE3 hex.
    pub blake3: String,
}

/// An item in a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageItem {
    /// Item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Device chain position.
    pub seq: u64,
    /// Kind.
    pub kind: String,
    /// SHA-256 of the device-signed original manifest (what the receipt names).
    pub original_manifest_sha256: String,
    /// SHA-256 of `manifest.json` in this package (the original, or the derived document).
    pub manifest_sha256: String,
    /// True when `manifest.json` is a server-signed derived document (release profile).
    pub derived: bool,
    /// The media file in this package (for a release: the scrubbed copy, with its digests),
    /// absent for observations and for media withheld from a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<PackageMedia>,
    /// Release profile: why the item's media is not in the package (it could not be scrubbed
    /// of location and identity metadata); the derived manifest says the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_withheld: Option<String>,
    /// Capture start.
    pub started_at: String,
    /// Capture end.
    pub ended_at: String,
    /// When the server had everything.
    pub received_at: String,
    /// Log leaf index.
    pub log_index: u64,
    /// Tags.
    pub tags: Vec<String>,
}

/// A live recording the server holds only part of (`fieldcap.fragment/1` chain, no received
/// original): the phone was taken, broke or stopped sending mid-recording. Its files are
/// `clips/<clip_id>/media.<ext>` (exactly bytes `0..bytes` of the recording, as the last
/// fragment record names them), `clips/<clip_id>/fragments/<index, 6 digits>.json` and `.sig`
/// (each record's exact bytes and the device's signature) and `clips/<clip_id>/acks/…` (the
/// server's signed acknowledgements). What it proves: the device sealed these bytes, in this
/// order, up to the last record; not what came after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackagePartial {
    /// The recording's item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Always true: the entry is a partial recording.
    pub partial: bool,
    /// Fragment records (the initialization segment is record 0).
    pub fragments: u64,
    /// Bytes of the recording held (the last record's `total_bytes`).
    pub bytes: u64,
    /// Capture time of the last fragment (device clock).
    pub last_captured_at: String,
    /// SHA-256 hex of the last record's bytes (the head of the chain held).
    pub head: String,
    /// The media file: the bytes held.
    pub media: PackageMedia,
}

/// The files of fragment record `index` of a recording: (record, signature).
pub fn fragment_files(clip_id: &str, index: u64) -> (String, String) {
    (format!("clips/{clip_id}/fragments/{index:06}.json"), format!("clips/{clip_id}/fragments/{index:06}.sig"))
}

/// The files of the server's acknowledgement of fragment `index` of a recording: (ack, signature).
pub fn ack_files(clip_id: &str, index: u64) -> (String, String) {
    (format!("clips/{clip_id}/acks/{index:06}.json"), format!("clips/{clip_id}/acks/{index:06}.sig"))
}

/// The signed index `package.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageIndex {
    /// [`PACKAGE_TYPE`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Package id (UUIDv7).
    pub package_id: String,
    /// `full` or `release`.
    pub profile: String,
    /// When exported.
    pub created_at: String,
    /// Who exported it (as given to `fieldcap package --by`, default the system user).
    pub exported_by: String,
    /// To whom.
    pub recipient: String,
    /// Why.
    pub purpose: String,
    /// How the items were selected (incident, clip ids, time window, place).
    pub selection: serde_json::Value,
    /// Server key id.
    pub server_key_id: String,
    /// Log origin (and checkpoint key name).
    pub log_origin: String,
    /// Tree size of `log/checkpoint.txt`.
    pub checkpoint_size: u64,
    /// Seq of the server custody event recording this export (in `custody.jsonl`).
    pub export_custody_seq: u64,
    /// Whether items tagged minor_present / victim_present were included (release profile),
    /// and the recorded reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitive_reason: Option<String>,
    /// Items selected but left out, by reason (counts).
    pub omitted: BTreeMap<String, u64>,
    /// What custody.jsonl holds (server events and the devices' uploaded events of these items).
    pub custody_note: String,
    /// Devices.
    pub devices: Vec<PackageDevice>,
    /// Items, by capture start.
    pub items: Vec<PackageItem>,
    /// Partial live recordings (no received original), by clip id; absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partials: Vec<PackagePartial>,
    /// Every other file.
    pub files: Vec<FileEntry>,
}

/// An inclusion-proof file (`log/inclusion/<clip_id>.json`): the receipt's leaf in the package
/// checkpoint's tree, and consistency from the tree the receipt was issued in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionFile {
    /// [`INCLUSION_TYPE`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// Item id.
    pub clip_id: String,
    /// Leaf index.
    pub index: u64,
    /// Tree size of the package checkpoint.
    pub tree_size: u64,
    /// SHA-256 hex leaf hash (RFC 6962: SHA-256(0x00 || leaf bytes)).
    pub leaf_hash: String,
    /// Inclusion proof, hex nodes.
    pub inclusion: Vec<String>,
    /// Tree size of the receipt's checkpoint.
    pub receipt_tree_size: u64,
    /// Consistency proof from `receipt_tree_size` to `tree_size`, hex nodes.
    pub consistency: Vec<String>,
}

/// Extension of an item's media file.
pub fn media_file_name(mime: &str) -> String {
    format!("media.{}", fieldcap_evidence::manifest::extension_for_mime(mime))
}

/// Hashes files (relative paths under `dir`), two at a time, largest first; each file's SHA-256
/// and BLAKE3 are computed in one read on two threads ([`fieldcap_evidence::hashing::hash_file`]).
pub fn hash_files(dir: &Path, files: &[String]) -> HashMap<String, Digests> {
    let mut order: Vec<(u64, &String)> = files.iter().map(|f| (fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0), f)).collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let queue = std::sync::Mutex::new(order.into_iter().map(|(_, f)| f.clone()).collect::<Vec<_>>().into_iter());
    let out = std::sync::Mutex::new(HashMap::new());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 2);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let next = match queue.lock() {
                    Ok(mut q) => q.next(),
                    Err(_) => None,
                };
                let Some(f) = next else { break };
                if let Ok(d) = fieldcap_evidence::hashing::hash_file(&dir.join(&f), &mut |_| {}) {
                    if let Ok(mut o) = out.lock() {
                        o.insert(f, d);
                    }
                }
            });
        }
    });
    out.into_inner().unwrap_or_default()
}
