//! Independent verification of exported evidence: a clip folder, and a device's manifest chain.
//!
//! Each check yields one [`Check`] line naming the file it concerns, so a failure says exactly
//! what does not hold. The same checks can be done with stock tools; see `VERIFY.txt` in every
//! export (and [`CLIP_VERIFY_TXT`]).

use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::manifest::{extension_for_mime, Manifest};
use crate::pin::{describe_key, ServerKeyPin, ServerKeyStatus};
use serde::Serialize;
use std::fs;
use std::path::Path;

/// Stock-tool procedure shipped in every exported clip folder.
pub const CLIP_VERIFY_TXT: &str = "\
Fieldcap exported clip: how to verify it with stock tools (OpenSSL 3, coreutils, b3sum).
Run these commands inside this folder. Each must succeed.

1. The device signed exactly these manifest bytes:
   openssl pkeyutl -verify -pubin -inkey device.pub.pem -rawin -in manifest.json -sigfile manifest.sig

2. Every file is intact (SHA-256 and BLAKE3):
   sha256sum --check SHA256SUMS
   b3sum --check B3SUMS

3. The media is the one the manifest names: compare the \"sha256\" and \"blake3\" values under
   \"media\" in manifest.json with the line for media.* in SHA256SUMS and B3SUMS:
   grep -o '\"sha256\":\"[0-9a-f]*\"' manifest.json; grep media SHA256SUMS

4. The device id in the manifest is the first 16 bytes of SHA-256 over the raw public key:
   openssl pkey -pubin -in device.pub.pem -outform DER | tail -c 32 | sha256sum | cut -c1-32

5. If receipt.json is present, the council server signed it. This folder does not carry the
   server's key: get the council office's public key file and its published fingerprint out of
   band (never from this folder), check the fingerprint, then the signature:
   openssl pkey -pubin -in SERVER.pub.pem -outform DER | sha256sum
   openssl pkeyutl -verify -pubin -inkey SERVER.pub.pem -rawin -in receipt.json -sigfile receipt.sig

`fieldcap verify . --server-key SERVER.pub.pem` performs all of these checks, the receipt's
transparency-log proof and the custody-chain checks in one step.
";

/// One verification step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The file concerned.
    pub file: String,
    /// Whether it holds.
    pub ok: bool,
    /// Why not, or a detail.
    pub detail: String,
}

/// All checks of one verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Checks in the order performed.
    pub checks: Vec<Check>,
    /// The server key the evidence is signed with and whether it is the pinned one (`None`
    /// when there is none to report: no readable server key, or a clip without a receipt).
    /// An unpinned key is a warning, not a failed check: [`VerifyReport::all_ok`] ignores it.
    pub server_key: Option<ServerKeyStatus>,
}

impl VerifyReport {
    /// True when every check holds (and there was at least one).
    pub fn all_ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// Records a check.
    pub fn push(&mut self, name: &str, file: &str, result: Result<String>) {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, e.to_string()),
        };
        self.checks.push(Check { name: name.into(), file: file.into(), ok, detail });
    }
}

/// Checks a sums file (`<hex>  <path>` lines) against the folder: every listed file matches and
/// every file in the folder (but the sums files) is listed.
pub fn check_sums(dir: &Path, sums_name: &str, blake: bool) -> Result<String> {
    let text = fs::read_to_string(dir.join(sums_name)).map_err(|e| Error::io(format!("reading {sums_name}"), e))?;
    let mut listed = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let (digest, name) = line
            .split_once("  ")
            .ok_or_else(|| Error::Integrity(format!("{sums_name} line {} is malformed", i + 1)))?;
        if name.contains("..") || name.starts_with('/') {
            return Err(Error::Integrity(format!("{sums_name} names a path outside the folder: {name}")));
        }
        let d = fieldcap_evidence::hashing::hash_file(&dir.join(name), &mut |_| {}).map_err(|_| Error::Integrity(format!("{name} is listed in {sums_name} but cannot be read")))?;
        let actual = if blake { d.blake3_hex() } else { d.sha256_hex() };
        if actual != digest {
            return Err(Error::Integrity(format!("{name} does not match {sums_name}")));
        }
        listed.insert(name.to_string());
    }
    for f in list_files(dir)? {
        if !matches!(f.as_str(), "SHA256SUMS" | "B3SUMS") && !listed.contains(&f) {
            return Err(Error::Integrity(format!("{f} is in the folder but not listed in {sums_name}")));
        }
    }
    Ok(format!("{} files match", listed.len()))
}

/// Relative paths of every regular file below `dir`, sorted.
pub fn list_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) -> Result<()> {
        for e in fs::read_dir(d).map_err(|e| Error::io("listing the folder", e))? {
            let e = e.map_err(|e| Error::io("listing the folder", e))?;
            let p = e.path();
            let t = e.file_type().map_err(|e| Error::io("listing the folder", e))?;
            if t.is_dir() {
                walk(base, &p, out)?;
            } else {
                out.push(p.strip_prefix(base).unwrap_or(&p).to_string_lossy().to_string());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Verifies an exported clip folder (as `fieldcap export-clip` writes it), with no pinned
/// server key; see [`verify_clip_dir_with`].
pub fn verify_clip_dir(dir: &Path) -> VerifyReport {
    verify_clip_dir_with(dir, None)
}

/// Verifies an exported clip folder against the recipient's pinned server key, if any.
///
/// A clip carries the device's key, not the server's: its `receipt.json` (present once the
/// server's receipt was verified on the device) names the server key by id only. With a pin
/// that is the key itself (a PEM file) the receipt is verified completely (signature, the item
/// it names, its checkpoint and inclusion proof); a pin given as a fingerprint or key id cannot
/// check a signature, so the check fails and says to pin the key itself. Without a pin the
/// receipt is not checked and the report's `server_key` says so.
pub fn verify_clip_dir_with(dir: &Path, pin: Option<&ServerKeyPin>) -> VerifyReport {
    let mut r = VerifyReport::default();
    let manifest_bytes = fs::read(dir.join("manifest.json"));
    let manifest = match &manifest_bytes {
        Ok(b) => Manifest::parse(b),
        Err(e) => Err(Error::NotFound(format!("manifest.json cannot be read: {}", e.kind()))),
    };
    r.push("manifest is well-formed fieldcap.manifest/1", "manifest.json", manifest.as_ref().map(|m| format!("clip {} seq {}", m.clip_id, m.seq)).map_err(Error::duplicate));
    let pem = fs::read_to_string(dir.join("device.pub.pem"));
    let key = pem.as_ref().map_err(|_| Error::NotFound("device.pub.pem cannot be read".into())).and_then(|p| fieldcap_evidence::identity::parse_public_pem(p));
    r.push("device key is an Ed25519 SPKI PEM", "device.pub.pem", key.as_ref().map(fieldcap_evidence::identity::device_id_for).map_err(Error::duplicate));
    let (Ok(m), Ok(key), Ok(bytes)) = (&manifest, &key, &manifest_bytes) else {
        return r;
    };
    r.push(
        "device id matches the key",
        "manifest.json",
        if fieldcap_evidence::identity::device_id_for(key) == m.device_id { Ok(m.device_id.clone()) } else { Err(Error::Integrity("device_id is not derived from device.pub.pem".into())) },
    );
    let sig = fs::read(dir.join("manifest.sig")).map_err(|_| Error::NotFound("manifest.sig cannot be read".into()));
    r.push("manifest signature", "manifest.json + manifest.sig", sig.and_then(|s| fieldcap_evidence::identity::verify(key, bytes, &s)).map(|_| "Ed25519 signature valid".into()));
    if let Some(media) = &m.media {
        let name = format!("media.{}", extension_for_mime(&media.mime));
        let res = fieldcap_evidence::hashing::hash_file(&dir.join(&name), &mut |_| {})
            .map_err(|_| Error::NotFound(format!("{name} cannot be read")))
            .and_then(|d| {
                if d.bytes != media.bytes {
                    Err(Error::Integrity(format!("{name} is {} bytes, the manifest says {}", d.bytes, media.bytes)))
                } else if d.sha256_hex() != media.sha256 {
                    Err(Error::Integrity(format!("{name} SHA-256 differs from the manifest")))
                } else if d.blake3_hex() != media.blake3 {
                    Err(Error::Integrity(format!("{name} BLAKE3 differs from the manifest")))
                } else {
                    Ok(format!("{} bytes, SHA-256 and BLAKE3 match", d.bytes))
                }
            });
        r.push("media matches the manifest", &name, res);
    }
    clip_receipt(&mut r, dir, m, bytes, pin);
    for (sums, blake) in [("SHA256SUMS", false), ("B3SUMS", true)] {
        if dir.join(sums).exists() {
            r.push(&format!("{sums} cover every file"), sums, check_sums(dir, sums, blake));
        }
    }
    if dir.join("custody.jsonl").exists() {
        let res = fs::read_to_string(dir.join("custody.jsonl"))
            .map_err(|e| Error::io("reading custody.jsonl", e))
            .and_then(|t| t.lines().filter(|l| !l.trim().is_empty()).map(CustodyEvent::from_jsonl).collect::<Result<Vec<_>>>())
            .and_then(|events| {
                fieldcap_evidence::custody::verify_chain(&events, key)?;
                let sha = fieldcap_evidence::hashing::sha256_hex(bytes);
                let sealed = events.iter().any(|e| {
                    e.event == "sealed"
                        && e.clip_id.as_deref() == Some(m.clip_id.as_str())
                        && serde_json::from_slice::<serde_json::Value>(&e.body).ok().and_then(|v| v["detail"]["manifest_sha256"].as_str().map(|s| s == sha)).unwrap_or(false)
                });
                if !sealed {
                    return Err(Error::Integrity("the custody log has no sealed event for this manifest".into()));
                }
                Ok(format!("{} events, chain and signatures valid", events.len()))
            });
        r.push("device custody chain", "custody.jsonl", res);
    }
    r
}

/// An exported clip's receipt against the pinned server key (see [`verify_clip_dir_with`]), and
/// the report's `server_key` status. A clip exported before its receipt came has none: nothing
/// server-signed to pin.
fn clip_receipt(r: &mut VerifyReport, dir: &Path, m: &Manifest, manifest_bytes: &[u8], pin: Option<&ServerKeyPin>) {
    use fieldcap_evidence::receipt::{ExpectedItem, ReceiptVerifier};
    const CHECK: &str = "receipt signed by the pinned server key";
    let Ok(body) = fs::read(dir.join("receipt.json")) else {
        return;
    };
    let parsed = serde_json::from_slice::<fieldcap_evidence::protocol::Receipt>(&body);
    let Some(pin) = pin else {
        if let Ok(rc) = parsed {
            r.server_key = Some(ServerKeyStatus { fingerprint: None, key_id: rc.server_key_id, pinned: false, pin: None });
        }
        return;
    };
    let key_id = parsed.as_ref().map(|rc| rc.server_key_id.clone()).unwrap_or_default();
    let mut status = ServerKeyStatus { fingerprint: None, key_id: key_id.clone(), pinned: false, pin: Some(pin.value()) };
    let res = match (pin.key(), &parsed) {
        (_, Err(e)) => Err(Error::Integrity(format!("receipt.json is not a receipt: {e}"))),
        (Some(k), Ok(rc)) => {
            let sha = fieldcap_evidence::hashing::sha256_hex(manifest_bytes);
            fs::read(dir.join("receipt.sig"))
                .map_err(|_| Error::NotFound("receipt.sig cannot be read".into()))
                .and_then(|sig| {
                    // The log origin is the checkpoint's first line: the checkpoint is signed
                    // under it with the pinned key, so only that key's holder chose it.
                    let note = fieldcap_evidence::tlog::parse_note(&rc.log.checkpoint)?;
                    let origin = note.text.lines().next().unwrap_or_default().to_string();
                    ReceiptVerifier::new(*k, &origin).verify(&body, &sig, &ExpectedItem::of_manifest(m, &sha))
                })
                .map(|rc| {
                    status.fingerprint = Some(fieldcap_evidence::identity::key_fingerprint(k));
                    status.pinned = true;
                    format!("received {}, log leaf {} of {}: signed by the pinned key, {}", rc.received_at, rc.log.index, rc.log.tree_size, describe_key(k))
                })
                .map_err(|e| {
                    let why = match &e {
                        Error::Integrity(s) | Error::InvalidInput(s) | Error::NotFound(s) => s.clone(),
                        other => other.to_string(),
                    };
                    Error::Integrity(format!("the receipt names server key id {key_id} and does not verify with the pinned key, {}: {why}", describe_key(k)))
                })
        }
        (None, Ok(rc)) => match pin {
            ServerKeyPin::KeyId(p) if *p != rc.server_key_id => Err(Error::Integrity(format!("the receipt names server key id {key_id}, the pinned key id is {p}"))),
            _ => Err(Error::InvalidInput(format!(
                "an exported clip carries no server key, so its receipt (server key id {key_id}) can be checked only with the key itself: give --server-key the server's PEM public key file (the pin given is {})",
                pin.describe()
            ))),
        },
    };
    r.push(CHECK, "receipt.json", res);
    r.server_key = Some(status);
}

/// Checks that manifests (in the order given) form a device's whole chain: one device, seq
/// 1, 2, 3 …, each `prev` the SHA-256 of the previous bytes. A removed, inserted or reordered
/// item is detected; a removed *tail* cannot be seen from the chain alone (the server's signed
/// receipts and transparency log anchor it).
pub fn verify_device_chain(manifests: &[Vec<u8>]) -> Result<()> {
    if let Some(first) = manifests.first() {
        let m = Manifest::parse(first).map_err(|e| Error::Integrity(format!("manifest 1: {e}")))?;
        if m.seq != 1 {
            return Err(Error::Integrity(format!("the chain starts at seq {}, not 1: earlier items are missing", m.seq)));
        }
    }
    verify_chain_run(manifests)
}

/// Like [`verify_device_chain`] for a consecutive run that may start after seq 1.
pub fn verify_chain_run(manifests: &[Vec<u8>]) -> Result<()> {
    let mut prev: Option<(u64, String, String)> = None;
    for (i, bytes) in manifests.iter().enumerate() {
        let m = Manifest::parse(bytes).map_err(|e| Error::Integrity(format!("manifest {}: {e}", i + 1)))?;
        if let Some((seq, hash, device)) = &prev {
            if m.device_id != *device {
                return Err(Error::Integrity(format!("manifest {}: another device's item in the chain", i + 1)));
            }
            if m.seq != seq + 1 {
                return Err(Error::Integrity(format!("seq {} follows seq {seq}: items are missing or out of order", m.seq)));
            }
            if m.prev.as_deref() != Some(hash.as_str()) {
                return Err(Error::Integrity(format!("seq {}: prev does not match the previous manifest", m.seq)));
            }
        } else if m.seq == 1 && m.prev.is_some() {
            return Err(Error::Integrity("seq 1 must have prev null".into()));
        }
        prev = Some((m.seq, fieldcap_evidence::hashing::sha256_hex(bytes), m.device_id.clone()));
    }
    Ok(())
}
