//! The test forger: what someone holding only a genuine evidence package (and no key of the
//! city's) can make of it by signing everything again with a server key of their own.
//!
//! [`forge_package`] copies a package folder (full or release profile) and re-signs, with a
//! fresh server key, every document the server signed:
//!
//! * `server.pub.pem` (the new key) and the log origin when it names the server key id;
//! * the device certificates (`devices/<id>.cert.json`, `.cert.sig`; in a release the derived
//!   device documents), naming the new key id;
//! * the receipts (`clips/<id>/receipt.json`, `.sig`) with their own checkpoints and inclusion
//!   proofs, the package checkpoint (`log/checkpoint.txt`) and every `log/inclusion/<id>.json`,
//!   over a Merkle log **rebuilt** with `fieldcap_evidence::tlog`: each packaged receipt's leaf at
//!   its index, filler leaves in every other position (a forger knows no other leaf), same tree
//!   sizes as before;
//! * the server's custody events in `custody.jsonl` (new actor, signed again, `prev` linked
//!   again to the re-signed events), including the export event's `items`/`items_sha256`;
//! * in a release, the derived manifests (`derivation.server_key_id`);
//! * `package.json` (new key id, items, file list) and its signature, `VERIFY.txt`, the key id in
//!   `report.html`, and `SHA256SUMS`/`B3SUMS`.
//!
//! What the forger cannot redo is left byte for byte: the device-signed manifests and the
//! devices' own custody events (it holds no device key). [`ForgeOptions`] can also leave clips
//! out (their files, index entries, inclusion files and server custody events; in a release
//! their device events too, since a release carries only the released items' device events; a
//! device left without items goes with its files and events), move a receipt's `received_at`, and
//! leave out all device custody (with the server's record of its upload).
//!
//! Without the cross-checks of device custody, such a package passed `fieldcap verify` whole;
//! the tests in `tests/tests/forger.rs` show it now fails, naming what the devices recorded.
//!
//! ```no_run
//! use fieldcap_testkit::forger::{forge_package, ForgeOptions};
//! # let (src, dst) = (std::path::Path::new("pkg"), std::path::Path::new("forged"));
//! let opts = ForgeOptions { drop_clips: vec!["0190…".into()], ..Default::default() };
//! let forged = forge_package(src, dst, &opts).expect("forge");
//! println!("re-signed with server key {}", forged.key_id);
//! ```

use fieldcap_evidence::canonical::{to_vec, to_vec_of};
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::hashing::sha256_hex;
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::protocol::{DeviceCertificate, Receipt};
use fieldcap_evidence::tlog::{consistency_proof, inclusion_proof, leaf_hash, proof_to_hex, root_of, sign_checkpoint, to_hex, Checkpoint, Hash};
use fieldcap_package::package::{hash_files, verify_txt, DerivedDevice, DerivedManifest, FileEntry, InclusionFile, PackageIndex, INCLUSION_TYPE, UNLISTED};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

/// What to change besides the server key.
#[derive(Debug, Clone, Default)]
pub struct ForgeOptions {
    /// Clip ids to leave out of the package.
    pub drop_clips: Vec<String>,
    /// `(clip id, shift)`: move that receipt's `received_at` by `shift` (negative: earlier).
    pub shift_received_at: Vec<(String, chrono::Duration)>,
    /// Leave out every device custody event, and the server's `device_custody_received` events
    /// that would show the devices had uploaded them: the package then looks like one whose
    /// devices never uploaded their logs (what no cross-check can see through).
    pub drop_device_custody: bool,
    /// The 32-byte secret of the server key to sign with (to forge several packages with one
    /// key); a fresh key when `None`.
    pub key_secret: Option<[u8; 32]>,
}

/// The server key a forgery is signed with.
pub struct ForgedKey {
    /// The signing key (to sign more, or to build a pin of the wrong key).
    pub key: DeviceKey,
    /// Its key id, as the tools print it.
    pub key_id: String,
    /// Its public key, SPKI PEM (the forged `server.pub.pem`).
    pub public_pem: String,
}

fn read(dir: &Path, rel: &str) -> Result<Vec<u8>> {
    fs::read(dir.join(rel)).map_err(|e| Error::io(format!("reading {rel}"), e))
}

fn write(dir: &Path, rel: &str, data: &[u8]) -> Result<()> {
    fs::write(dir.join(rel), data).map_err(|e| Error::io(format!("writing {rel}"), e))
}

fn remove(dir: &Path, rel: &str) -> Result<()> {
    let p = dir.join(rel);
    let r = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(format!("removing {rel}"), e)),
        _ => Ok(()),
    }
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fs::create_dir(dst).map_err(|e| Error::io("creating the forged package folder", e))?;
    for e in fs::read_dir(src).map_err(|e| Error::io("listing the package", e))? {
        let e = e.map_err(|e| Error::io("listing the package", e))?;
        let to = dst.join(e.file_name());
        if e.file_type().map_err(|e| Error::io("listing the package", e))?.is_dir() {
            copy_tree(&e.path(), &to)?;
        } else {
            fs::copy(e.path(), &to).map_err(|e| Error::io("copying a package file", e))?;
        }
    }
    Ok(())
}

fn json_err(what: &str) -> impl Fn(serde_json::Error) -> Error + '_ {
    move |e| Error::InvalidInput(format!("{what}: {e}"))
}

/// Writes a copy of the package `src` at `dst` (which must not exist) re-signed with a fresh
/// server key (or [`ForgeOptions::key_secret`]); see the module documentation. Returns the key.
pub fn forge_package(src: &Path, dst: &Path, opts: &ForgeOptions) -> Result<ForgedKey> {
    let mut index: PackageIndex = serde_json::from_slice(&read(src, "package.json")?).map_err(json_err("package.json"))?;
    let known: BTreeSet<&str> = index.items.iter().map(|i| i.clip_id.as_str()).collect();
    for c in opts.drop_clips.iter().chain(opts.shift_received_at.iter().map(|(c, _)| c)) {
        if !known.contains(c.as_str()) {
            return Err(Error::InvalidInput(format!("clip {c} is not in the package")));
        }
    }
    copy_tree(src, dst)?;
    let key = match &opts.key_secret {
        Some(secret) => DeviceKey::from_secret(secret)?,
        None => DeviceKey::generate(),
    };
    let (old_id, new_id) = (index.server_key_id.clone(), key.device_id().to_string());
    let release = index.profile == "release";
    let origin = index.log_origin.replace(&old_id, &new_id);

    // Clips left out, and devices left without items.
    let dropped: BTreeSet<String> = opts.drop_clips.iter().cloned().collect();
    for c in &dropped {
        remove(dst, &format!("clips/{c}"))?;
        remove(dst, &format!("log/inclusion/{c}.json"))?;
    }
    index.items.retain(|i| !dropped.contains(&i.clip_id));
    let kept_devices: BTreeSet<String> = index.items.iter().map(|i| i.device_id.clone()).collect();
    let gone_devices: BTreeSet<String> = index.devices.iter().map(|d| d.device_id.clone()).filter(|d| !kept_devices.contains(d)).collect();
    for d in &gone_devices {
        for ext in ["pub.pem", "cert.json", "cert.sig"] {
            remove(dst, &format!("devices/{d}.{ext}"))?;
        }
    }
    index.devices.retain(|d| kept_devices.contains(&d.device_id));
    if let Some(clips) = index.selection.get_mut("clips").and_then(|c| c.as_array_mut()) {
        clips.retain(|c| c.as_str().is_none_or(|c| !dropped.contains(c)));
    }

    // Receipts: new key id, moved times; then the log they sit in, rebuilt.
    let shift: HashMap<&str, chrono::Duration> = opts.shift_received_at.iter().map(|(c, d)| (c.as_str(), *d)).collect();
    let mut receipts: Vec<Receipt> = Vec::new();
    for it in &mut index.items {
        let rel = format!("clips/{}/receipt.json", it.clip_id);
        let mut r: Receipt = serde_json::from_slice(&read(dst, &rel)?).map_err(json_err(&rel))?;
        r.server_key_id = new_id.clone();
        if let Some(d) = shift.get(it.clip_id.as_str()) {
            r.received_at = fieldcap_evidence::time::format(fieldcap_evidence::time::parse(&r.received_at, "received_at")? + *d);
        }
        it.received_at = r.received_at.clone();
        receipts.push(r);
    }
    let size = index.checkpoint_size;
    let mut leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(format!("leaf {i} of a log the forger never saw").as_bytes())).collect();
    for r in &receipts {
        if r.log.index >= size || r.log.tree_size > size || r.log.index >= r.log.tree_size {
            return Err(Error::InvalidInput(format!("receipt of {} is outside the package's log of {size}", r.clip_id)));
        }
        leaves[r.log.index as usize] = leaf_hash(&r.leaf_bytes());
    }
    let note_at = |n: u64| sign_checkpoint(&Checkpoint { origin: origin.clone(), size: n, root: root_of(&leaves[..n as usize]) }, &origin, &key);
    for r in &mut receipts {
        let t = r.log.tree_size as usize;
        r.log.checkpoint = note_at(r.log.tree_size);
        r.log.inclusion = proof_to_hex(&inclusion_proof(&leaves[..t], r.log.index)?);
        let body = to_vec_of(&*r)?;
        write(dst, &format!("clips/{}/receipt.json", r.clip_id), &body)?;
        write(dst, &format!("clips/{}/receipt.sig", r.clip_id), &key.sign(&body))?;
        let inc = InclusionFile {
            doc_type: INCLUSION_TYPE.into(),
            clip_id: r.clip_id.clone(),
            index: r.log.index,
            tree_size: size,
            leaf_hash: to_hex(&leaves[r.log.index as usize]),
            inclusion: proof_to_hex(&inclusion_proof(&leaves, r.log.index)?),
            receipt_tree_size: r.log.tree_size,
            consistency: proof_to_hex(&consistency_proof(&leaves, r.log.tree_size)?),
        };
        write(dst, &format!("log/inclusion/{}.json", r.clip_id), &to_vec_of(&inc)?)?;
    }
    write(dst, "log/checkpoint.txt", note_at(size).as_bytes())?;
    write(dst, "server.pub.pem", key.public_pem().as_bytes())?;

    // Device certificates (release: derived device documents) name the new key.
    for d in &index.devices {
        let rel = format!("devices/{}.cert.json", d.device_id);
        let b = read(dst, &rel)?;
        let cert = if release {
            let mut dd: DerivedDevice = serde_json::from_slice(&b).map_err(json_err(&rel))?;
            dd.server_key_id = new_id.clone();
            to_vec_of(&dd)?
        } else {
            let mut dc: DeviceCertificate = serde_json::from_slice(&b).map_err(json_err(&rel))?;
            dc.server_key_id = new_id.clone();
            to_vec_of(&dc)?
        };
        write(dst, &rel, &cert)?;
        write(dst, &format!("devices/{}.cert.sig", d.device_id), &key.sign(&cert))?;
    }

    // Derived manifests (release) are the server's documents too.
    for it in index.items.iter_mut().filter(|i| i.derived) {
        let rel = format!("clips/{}/manifest.json", it.clip_id);
        let mut dm = DerivedManifest::parse(&read(dst, &rel)?)?;
        dm.derivation.server_key_id = new_id.clone();
        let b = to_vec_of(&dm)?;
        write(dst, &rel, &b)?;
        write(dst, &format!("clips/{}/manifest.sig", it.clip_id), &key.sign(&b))?;
        it.manifest_sha256 = sha256_hex(&b);
    }

    // Custody: the server's events re-signed and re-linked; device events kept verbatim.
    let ids: Vec<&str> = index.items.iter().map(|i| i.clip_id.as_str()).collect();
    let items_sha256 = sha256_hex(ids.join("\n").as_bytes());
    let text = String::from_utf8(read(dst, "custody.jsonl")?).map_err(|_| Error::InvalidInput("custody.jsonl is not UTF-8".into()))?;
    let (old_actor, new_actor) = (format!("server:{old_id}"), format!("server:{new_id}"));
    let mut out: Vec<CustodyEvent> = Vec::new();
    let mut server_hash: HashMap<u64, String> = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e = CustodyEvent::from_jsonl(line)?;
        let mut v: serde_json::Value = serde_json::from_slice(&e.body)?;
        let about_clip = e.clip_id.as_ref().is_some_and(|c| dropped.contains(c));
        let actor = v["actor"].as_str().unwrap_or_default().to_string();
        if actor == old_actor {
            let about_device = v["detail"]["device_id"].as_str().is_some_and(|d| gone_devices.contains(d));
            let upload = opts.drop_device_custody && e.event == "device_custody_received";
            if about_clip || about_device || upload {
                continue;
            }
            v["actor"] = serde_json::json!(new_actor);
            if e.event == "exported" && e.clip_id.is_none() && v["detail"]["package_id"].as_str() == Some(index.package_id.as_str()) {
                v["detail"]["items"] = serde_json::json!(ids.len() as i64);
                v["detail"]["items_sha256"] = serde_json::json!(items_sha256);
            }
            if let Some(p) = e.seq.checked_sub(1).and_then(|s| server_hash.get(&s)) {
                v["prev"] = serde_json::json!(p);
            }
            let body = to_vec(&v);
            let ev = CustodyEvent::from_body(body.clone(), key.sign(&body).to_vec())?;
            server_hash.insert(e.seq, ev.hash());
            out.push(ev);
        } else {
            let dev = actor.strip_prefix("device:").unwrap_or_default();
            if opts.drop_device_custody || gone_devices.contains(dev) || (release && about_clip) {
                continue;
            }
            out.push(e);
        }
    }
    let jsonl: String = out.iter().map(|e| format!("{}\n", e.to_jsonl())).collect();
    write(dst, "custody.jsonl", jsonl.as_bytes())?;

    // The index and the files derived from it, its signature, the sums.
    index.server_key_id = new_id.clone();
    index.log_origin = origin;
    index.files.clear();
    write(dst, "VERIFY.txt", verify_txt(&index, &key.verifying_key()).as_bytes())?;
    let report = String::from_utf8_lossy(&read(dst, "report.html")?).replace(&old_id, &new_id);
    write(dst, "report.html", report.as_bytes())?;
    let files = fieldcap_package::clip::list_files(dst)?;
    let listed: Vec<String> = files.iter().filter(|f| !UNLISTED.contains(&f.as_str())).cloned().collect();
    let digests = hash_files(dst, &listed);
    for f in &listed {
        let d = digests.get(f).ok_or_else(|| Error::NotFound(format!("{f} cannot be hashed")))?;
        index.files.push(FileEntry { path: f.clone(), bytes: d.bytes, sha256: d.sha256_hex(), blake3: d.blake3_hex() });
    }
    let ib = to_vec_of(&index)?;
    write(dst, "package.json", &ib)?;
    write(dst, "package.json.sig", &key.sign(&ib))?;
    let summed: Vec<String> = files.into_iter().filter(|f| f != "SHA256SUMS" && f != "B3SUMS").collect();
    let digests = hash_files(dst, &summed);
    let (mut sha, mut b3) = (String::new(), String::new());
    for f in &summed {
        let d = digests.get(f).ok_or_else(|| Error::NotFound(format!("{f} cannot be hashed")))?;
        sha.push_str(&format!("{}  {f}\n", d.sha256_hex()));
        b3.push_str(&format!("{}  {f}\n", d.blake3_hex()));
    }
    write(dst, "SHA256SUMS", sha.as_bytes())?;
    write(dst, "B3SUMS", b3.as_bytes())?;
    Ok(ForgedKey { key_id: new_id, public_pem: key.public_pem(), key })
}
