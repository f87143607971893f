//! Evidence packages for prosecutors, defence, courts and records requests.
//!
//! [`export()`] selects items (an incident, clip ids, or a time window optionally near a place),
//! records the export as signed server custody events (who, to whom, why, which items), and writes
//! a package folder that a recipient verifies without trusting the city or this software:
//!
//! ```text
//! VERIFY.txt                 stock-tool procedure (sh script: openssl 3, sha256sum, b3sum)
//! SHA256SUMS  B3SUMS         every other file, paths relative to the package root
//! package.json  package.json.sig   server-signed index (fieldcap_package::package::PackageIndex)
//! server.pub.pem
//! report.html                self-contained report (report::render)
//! devices/<device_id>.pub.pem  devices/<device_id>.cert.json  devices/<device_id>.cert.sig
//! clips/<clip_id>/media.<ext>  manifest.json  manifest.sig  receipt.json  receipt.sig
//! custody.jsonl              server custody events of these items and of this export
//! log/checkpoint.txt  log/inclusion/<clip_id>.json
//! ```
//!
//! The folder is written to a temporary sibling and renamed into place, so it appears whole or
//! not at all (likewise the optional `.zip`, see [`zip`]). Originals are copied with their digests
//! re-computed on the way and compared with the records, so a damaged blob is refused rather than
//! exported. Verification lives in [`fieldcap_package::package`].
//!
//! The **release** profile (records requests, public) leaves out items tagged `minor_present`
//! or `victim_present` unless a reason is given (recorded in custody), and replaces manifests
//! and device certificates by server-signed derived documents without operator identity and with
//! locations snapped to a 0.001° grid ([`release`]); the originals and their records are never
//! changed.
//!
//! ```no_run
//! use fieldcap_server::package::{export, PackageRequest, Profile, Selection};
//! let out = export(std::path::Path::new("/srv/fieldcap"), &PackageRequest {
//!     selection: Selection::Incident("inc-0190…".into()),
//!     out: "/tmp/pkg".into(),
//!     recipient: "Los Angeles County District Attorney".into(),
//!     purpose: "Case 25-1234".into(),
//!     profile: Profile::Full,
//!     sensitive_reason: None,
//!     zip: false,
//!     exported_by: "records custodian".into(),
//! })?;
//! println!("{} items in {}", out.items, out.path.display());
//! # Ok::<(), fieldcap_server::Error>(())
//! ```

mod export;
pub mod release;
pub mod report;
mod tmpdirs;
pub mod zip;

pub use export::export;

use std::path::PathBuf;

/// Which items go into a package.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// Every item of an incident (see [`mod@crate::incidents`]).
    Incident(String),
    /// These items.
    Clips(Vec<String>),
    /// Items whose capture window overlaps `[from, to]`, optionally with a fix within
    /// `radius_m` metres of (`lat`, `lon`).
    Window {
        /// Start (RFC 3339).
        from: String,
        /// End (RFC 3339).
        to: String,
        /// (lat, lon, radius in metres).
        near: Option<(f64, f64, f64)>,
    },
}

/// Package profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Originals, for police, prosecutors, defence and courts. Items become *referred*.
    Full,
    /// Public release: derived documents, no sensitive items by default.
    Release,
}

impl Profile {
    /// `full` or `release`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::Release => "release",
        }
    }
}

/// An export request.
#[derive(Debug, Clone)]
pub struct PackageRequest {
    /// Items.
    pub selection: Selection,
    /// Output folder (must not exist).
    pub out: PathBuf,
    /// To whom.
    pub recipient: String,
    /// Why.
    pub purpose: String,
    /// Profile.
    pub profile: Profile,
    /// Release profile: include items tagged minor_present / victim_present, for this reason.
    pub sensitive_reason: Option<String>,
    /// Also write `<out>.zip`.
    pub zip: bool,
    /// Who exports (staff name or role), recorded in custody and the index.
    pub exported_by: String,
}

/// What an export produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageOutcome {
    /// The package folder.
    pub path: PathBuf,
    /// The zip file, if asked for.
    pub zip: Option<PathBuf>,
    /// Package id.
    pub package_id: String,
    /// Items included.
    pub items: usize,
    /// Items left out, by reason.
    pub omitted: std::collections::BTreeMap<String, u64>,
    /// Total bytes of the package files.
    pub bytes: u64,
    /// Seq of the server custody event recording the export.
    pub custody_seq: u64,
}
