//! The package verifier behind `fieldcap verify`: [`verify_package`].
//!
//! Every file is hashed once up front ([`super::hash_files`]); the checks then run family by
//! family, each adding [`Check`] lines that name the file concerned, in this order:
//!
//! 1. `signatures.rs`: the index, the server key, the index signature; then the server key
//!    against the recipient's pin ([`TrustAnchors::server_key`]), if one is given;
//! 2. `sums.rs`: SHA256SUMS, B3SUMS and the file list the server signed;
//! 3. `signatures.rs`: device keys and certificates; `receipts.rs`: the package checkpoint;
//! 4. per item: `signatures.rs` the manifest (well-formed, indexed, signed), `media.rs` the media
//!    file (original, released copy or withheld), `receipts.rs` the receipt, its own log proof
//!    and its inclusion in the package checkpoint;
//!    and, for a live recording, `partials.rs` its fragment records against the media file;
//!    then `partials.rs` each partial live recording (a fragment chain without an original);
//! 5. `chains.rs`: each device's `seq`/`prev` chain;
//! 6. `custody.rs`: the server's and the devices' custody events;
//! 7. `crosscheck.rs`: the devices' own custody events against the package's server side (server
//!    key id, receipts), and the export's custody record against the index's item list;
//! 8. `witnesses.rs`: with pinned witnesses, their cosignatures on the package checkpoint.
//!
//! A check that cannot run because an earlier one failed (no index, no server key) is left out;
//! the earlier failure already makes the report fail. docs/VERIFY.md §3 describes every check.

mod chains;
mod crosscheck;
mod custody;
mod media;
mod partials;
pub(crate) use partials::PARTIAL_MEANING;
mod receipts;
mod signatures;
mod sums;
mod witnesses;

use super::{hash_files, PackageIndex, ReleasedMedia};
use crate::clip::{Check, VerifyReport};
use crate::pin::{describe_key, ServerKeyPin, ServerKeyStatus};
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::hashing::Digests;
use fieldcap_evidence::manifest::Media;
use fieldcap_evidence::receipt::ReceiptVerifier;
use ed25519_dalek::VerifyingKey;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// One package verification in progress: the folder, every file's digests (hashed once), and
/// the report so far.
struct Verification<'a> {
    dir: &'a Path,
    digests: HashMap<String, Digests>,
    report: VerifyReport,
}

impl Verification<'_> {
    fn ok(&mut self, name: &str, file: &str, detail: String) {
        self.report.checks.push(Check { name: name.into(), file: file.into(), ok: true, detail });
    }
    fn fail(&mut self, name: &str, file: &str, detail: String) {
        self.report.checks.push(Check { name: name.into(), file: file.into(), ok: false, detail });
    }
    fn res(&mut self, name: &str, file: &str, r: Result<String>) {
        self.report.push(name, file, r);
    }
    fn read(&self, f: &str) -> Result<Vec<u8>> {
        fs::read(self.dir.join(f)).map_err(|_| Error::NotFound(format!("{f} cannot be read")))
    }
    fn digest_of(&self, f: &str) -> Result<&Digests> {
        self.digests.get(f).ok_or_else(|| Error::NotFound(format!("{f} cannot be read")))
    }
}

/// What a manifest (original or derived) says about its item.
struct Facts {
    clip_id: String,
    device_id: String,
    seq: u64,
    /// The original's media digests.
    media: Option<Media>,
    /// SHA-256 of the device-signed original manifest.
    original_sha256: String,
    /// Derived manifests: the scrubbed copy in the package.
    released: Option<ReleasedMedia>,
    /// Derived manifests: why the media is not in the package.
    withheld: Option<String>,
}

/// What a recipient brings from outside the package to anchor its trust: everything in a
/// package (its `server.pub.pem` included) can be re-signed by whoever holds a key, so only a
/// key learnt out of band (the city's published fingerprint, a witness's key) can tell the
/// real server's package from a complete forgery. The default pins nothing.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    /// The server key the recipient expects (the key, its fingerprint or its key id; see
    /// [`crate::pin`]); a package signed by any other fails the check "server key is the pinned
    /// key". Without it the report's [`VerifyReport::server_key`] says the key is not pinned.
    pub server_key: Option<ServerKeyPin>,
    /// Witnesses (C2SP vkeys of type 0x04) whose cosignatures the package checkpoint must
    /// carry (`fieldcap verify --witness`); none: cosignatures are not required.
    pub witnesses: Vec<fieldcap_evidence::cosignature::VerifierKey>,
    /// How many of `witnesses` must have cosigned (`--witness-threshold`); `None`: all of them.
    pub witness_threshold: Option<usize>,
}

/// Verifies a package folder with no trust anchors; see the module documentation for the
/// checks and [`verify_package_with`].
pub fn verify_package(dir: &Path) -> VerifyReport {
    verify_package_with(dir, &TrustAnchors::default())
}

/// Verifies a package folder against the recipient's trust anchors; see the module
/// documentation for the checks.
pub fn verify_package_with(dir: &Path, anchors: &TrustAnchors) -> VerifyReport {
    let on_disk = match crate::clip::list_files(dir) {
        Ok(f) => f,
        Err(e) => {
            let mut r = VerifyReport::default();
            r.push("package folder is readable", ".", Err(e));
            return r;
        }
    };
    let digests = hash_files(dir, &on_disk);
    let mut c = Verification { dir, digests, report: VerifyReport::default() };

    let (index, key) = signatures::index_and_server_key(&mut c);
    if let Ok(k) = &key {
        pinned_key(&mut c, k, anchors.server_key.as_ref());
    }
    sums::check(&mut c, &on_disk, index.as_ref().ok());
    let (Ok(index), Ok(key)) = (index, key) else {
        return c.report;
    };
    verify_contents(&mut c, &index, &key);
    witnesses::check(&mut c, anchors);
    c.report
}

/// The package's server key against the recipient's pin: a failing check naming both keys when
/// it is another, and in every case the report's `server_key` status (not pinned, pinned, or
/// not the pinned key).
fn pinned_key(c: &mut Verification<'_>, key: &VerifyingKey, pin: Option<&ServerKeyPin>) {
    if let Some(p) = pin {
        if p.matches(key) {
            c.ok("server key is the pinned key", "server.pub.pem", format!("{}, the key given as the pin", describe_key(key)));
        } else {
            c.fail(
                "server key is the pinned key",
                "server.pub.pem",
                format!("the package is signed by another server key: {}; the pinned key is {}", describe_key(key), p.describe()),
            );
        }
    }
    c.report.server_key = Some(ServerKeyStatus::of(key, pin));
}

/// The checks that need a well-formed index and the server key.
fn verify_contents(c: &mut Verification<'_>, index: &PackageIndex, key: &VerifyingKey) {
    let device_keys = signatures::devices(c, index, key);
    let receipt_verifier = ReceiptVerifier::new(*key, &index.log_origin);
    let checkpoint = receipts::package_checkpoint(c, index, &receipt_verifier);
    // What each item's manifest holds, by (device, seq), for the chain check.
    let mut chain_seen: HashMap<(String, u64), String> = HashMap::new();
    for it in &index.items {
        let facts = signatures::manifest(c, it, key, &device_keys);
        if let Ok(f) = &facts {
            chain_seen.insert((it.device_id.clone(), it.seq), f.original_sha256.clone());
        }
        media::check(c, it, facts.as_ref().ok());
        receipts::check(c, it, &receipt_verifier, facts.as_ref().ok().and_then(|f| f.media.as_ref()), checkpoint.as_ref().ok());
        if !it.derived {
            let chain = c
                .read(&format!("clips/{}/manifest.json", it.clip_id))
                .ok()
                .and_then(|b| fieldcap_evidence::manifest::Manifest::parse(&b).ok())
                .and_then(|m| m.fragments);
            let head = chain.as_ref().map(|f| (f.count, f.head.as_str()));
            partials::finished(c, &it.clip_id, device_keys.get(&it.device_id), it.media.as_ref().map(|m| m.path.as_str()), head);
        }
    }
    partials::check(c, index, key, &device_keys);
    chains::check(c, index, &chain_seen);
    custody::check(c, index, key, &device_keys);
    crosscheck::check(c, index, key, &device_keys);
}
