//! Who signed what: the index and the server key, device keys and certificates, and each
//! item's manifest (the device key for an original, the server key for a release-profile
//! derived manifest), together with whether each document is well-formed and is the one the
//! index names.

use super::{Facts, Verification};
use crate::package::{DerivedDevice, DerivedManifest, PackageIndex, PackageItem, PACKAGE_TYPE};
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::identity::{device_id_for, parse_public_pem, verify as verify_sig};
use fieldcap_evidence::manifest::Manifest;
use fieldcap_evidence::protocol::DeviceCertificate;
use std::collections::HashMap;

/// `package.json` parsed (right type, canonical JSON), `server.pub.pem` with the key id the index
/// names, and the server's signature over the index.
pub(super) fn index_and_server_key(c: &mut Verification<'_>) -> (Result<PackageIndex>, Result<VerifyingKey>) {
    let index_bytes = c.read("package.json");
    let index: Result<PackageIndex> = index_bytes.as_ref().map_err(Error::duplicate).and_then(|b| {
        let i: PackageIndex = serde_json::from_slice(b).map_err(|e| Error::Integrity(format!("package.json is not a fieldcap.package/1 index: {e}")))?;
        if i.doc_type != PACKAGE_TYPE {
            return Err(Error::Integrity("package.json has the wrong type".into()));
        }
        if !fieldcap_evidence::canonical::is_canonical(b) {
            return Err(Error::Integrity("package.json is not canonical JSON".into()));
        }
        Ok(i)
    });
    c.res("package index is well-formed", "package.json", index.as_ref().map(|i| format!("package {} ({}), {} items", i.package_id, i.profile, i.items.len())).map_err(Error::duplicate));
    let key = c.read("server.pub.pem").and_then(|b| parse_public_pem(&String::from_utf8_lossy(&b)));
    let key = match (&key, &index) {
        (Ok(k), Ok(i)) if device_id_for(k) != i.server_key_id => Err(Error::Integrity(format!("server.pub.pem has key id {}, the index names {}", device_id_for(k), i.server_key_id))),
        (Ok(k), _) => Ok(*k),
        (Err(e), _) => Err(e.duplicate()),
    };
    c.res("server key matches the index", "server.pub.pem", key.as_ref().map(device_id_for).map_err(Error::duplicate));
    if let (Ok(k), Ok(b)) = (&key, &index_bytes) {
        let r = c.read("package.json.sig").and_then(|s| verify_sig(k, b, &s)).map(|_| "Ed25519 signature of the server valid".to_string());
        c.res("index signature", "package.json.sig", r);
    }
    (index, key)
}

/// Each device's key (its id is the key's) and certificate (signed by the server, naming that
/// device and key; in a release the derived device document). Returns the keys that hold.
pub(super) fn devices(c: &mut Verification<'_>, index: &PackageIndex, key: &VerifyingKey) -> HashMap<String, VerifyingKey> {
    let mut device_keys: HashMap<String, VerifyingKey> = HashMap::new();
    for d in &index.devices {
        let pem_f = format!("devices/{}.pub.pem", d.device_id);
        let cert_f = format!("devices/{}.cert.json", d.device_id);
        let sig_f = format!("devices/{}.cert.sig", d.device_id);
        let k = c.read(&pem_f).and_then(|b| parse_public_pem(&String::from_utf8_lossy(&b))).and_then(|k| {
            if device_id_for(&k) == d.device_id {
                Ok(k)
            } else {
                Err(Error::Integrity(format!("{pem_f} is not the key of device {}", d.device_id)))
            }
        });
        c.res("device key matches its id", &pem_f, k.as_ref().map(|_| d.device_id.clone()).map_err(Error::duplicate));
        let cert = c.read(&cert_f);
        let sig_ok = cert.as_ref().map_err(Error::duplicate).and_then(|b| c.read(&sig_f).and_then(|s| verify_sig(key, b, &s)));
        c.res("device certificate signed by the server", &sig_f, sig_ok.map(|_| "Ed25519 signature of the server valid".into()));
        let content = cert.as_ref().map_err(Error::duplicate).and_then(|b| {
            let (id, pem, role) = if index.profile == "release" {
                let dd: DerivedDevice = serde_json::from_slice(b).map_err(|e| Error::Integrity(format!("not a derived device document: {e}")))?;
                (dd.device_id, dd.public_key_pem, dd.role)
            } else {
                let dc: DeviceCertificate = serde_json::from_slice(b).map_err(|e| Error::Integrity(format!("not a device certificate: {e}")))?;
                (dc.device_id, dc.public_key_pem, dc.role)
            };
            let ck = parse_public_pem(&pem)?;
            if id != d.device_id || device_id_for(&ck) != d.device_id {
                return Err(Error::Integrity("the certificate is for another device".into()));
            }
            if k.as_ref().is_ok_and(|k| *k != ck) {
                return Err(Error::Integrity("the certificate names another key than the .pub.pem".into()));
            }
            Ok(format!("{role} device {id}"))
        });
        c.res("device certificate names this device and key", &cert_f, content);
        if let Ok(k) = k {
            device_keys.insert(d.device_id.clone(), k);
        }
    }
    device_keys
}

/// An item's `manifest.json`: parsed in its form (original or derived), naming the item, the
/// digests and the withholding the index states; then its signature. Returns what it says.
pub(super) fn manifest(c: &mut Verification<'_>, it: &PackageItem, key: &VerifyingKey, device_keys: &HashMap<String, VerifyingKey>) -> Result<Facts> {
    let mf = format!("clips/{}/manifest.json", it.clip_id);
    let sf = format!("clips/{}/manifest.sig", it.clip_id);
    let mbytes = c.read(&mf);
    let facts = mbytes.as_ref().map_err(Error::duplicate).and_then(|b| {
        if it.derived {
            let d = DerivedManifest::parse(b)?;
            Ok(Facts {
                clip_id: d.clip_id,
                device_id: d.device_id,
                seq: d.seq,
                media: d.media,
                original_sha256: d.original_manifest_sha256,
                released: d.released_media,
                withheld: d.media_withheld,
            })
        } else {
            let m = Manifest::parse(b)?;
            Ok(Facts { clip_id: m.clip_id, device_id: m.device_id, seq: m.seq, media: m.media, original_sha256: fieldcap_evidence::hashing::sha256_hex(b), released: None, withheld: None })
        }
    });
    let facts = facts.and_then(|f| {
        if f.clip_id != it.clip_id || f.device_id != it.device_id || f.seq != it.seq {
            return Err(Error::Integrity("the manifest is for another item than the index says".into()));
        }
        let sha = mbytes.as_ref().map(|b| fieldcap_evidence::hashing::sha256_hex(b)).unwrap_or_default();
        if sha != it.manifest_sha256 || f.original_sha256 != it.original_manifest_sha256 {
            return Err(Error::Integrity("the manifest's SHA-256 differs from the index".into()));
        }
        if f.withheld != it.media_withheld {
            return Err(Error::Integrity("the manifest and the index differ on whether the media is withheld".into()));
        }
        Ok(f)
    });
    c.res(
        if it.derived { "derived manifest is well-formed and indexed" } else { "manifest is well-formed and indexed" },
        &mf,
        facts.as_ref().map(|f| format!("seq {}", f.seq)).map_err(Error::duplicate),
    );
    // Signature: device key for originals, server key for derived documents.
    let signer = if it.derived { Some(*key) } else { device_keys.get(&it.device_id).copied() };
    let sig = match (&mbytes, signer) {
        (Ok(b), Some(k)) => c.read(&sf).and_then(|s| verify_sig(&k, b, &s)).map(|_| if it.derived { "server signature valid (derived document)".to_string() } else { "device signature valid".to_string() }),
        (Err(e), _) => Err(e.duplicate()),
        (_, None) => Err(Error::Integrity(format!("no valid key for device {}", it.device_id))),
    };
    c.res("manifest signature", &sf, sig);
    facts
}
