//! The package verifier against committed packages (`tests/fixtures/`, written by
//! `tests/tests/package_fixture_gen.rs` from a real server and two devices): a full and a release
//! package pass with the details each check reports, and every kind of damage — a changed,
//! truncated, deleted or added file, and what a dishonest exporter holding the server key could
//! re-sign — fails the check that owns it, naming the file. Runs in seconds without a server, so
//! the verifier can be mutation-tested (docs/BENCHMARKS.md).

#![allow(clippy::unwrap_used)]

use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_package::clip::{check_sums, list_files, verify_chain_run, verify_clip_dir, verify_clip_dir_with, verify_device_chain, Check, VerifyReport};
use fieldcap_package::package::{hash_files, verify_package, verify_txt, DerivedManifest, InclusionFile, PackageIndex};
use serde_json::Value;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// A writable copy of a fixture package.
struct Pkg {
    _t: tempfile::TempDir,
    dir: PathBuf,
}

impl Pkg {
    fn new(name: &str) -> Pkg {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(name);
        copy_dir(&fixtures().join(name), &dir);
        Pkg { _t: t, dir }
    }
    fn p(&self, f: &str) -> PathBuf {
        self.dir.join(f)
    }
    fn read(&self, f: &str) -> Vec<u8> {
        fs::read(self.p(f)).unwrap()
    }
    fn write(&self, f: &str, b: impl AsRef<[u8]>) {
        fs::write(self.p(f), b).unwrap();
    }
    fn index(&self) -> PackageIndex {
        serde_json::from_slice(&self.read("package.json")).unwrap()
    }
    fn report(&self) -> VerifyReport {
        verify_package(&self.dir)
    }
    /// Writes `idx` canonically and signs it with the server key.
    fn sign_index(&self, idx: &PackageIndex) {
        let b = fieldcap_evidence::canonical::to_vec_of(idx).unwrap();
        self.write("package.json", &b);
        self.write("package.json.sig", keys().server.sign(&b));
    }
    /// What a dishonest exporter with the server key does after changing files: the index's file
    /// list takes the files' new digests, the index is re-signed and both sums files rewritten.
    fn reseal(&self) {
        let mut idx = self.index();
        let paths: Vec<String> = idx.files.iter().map(|f| f.path.clone()).collect();
        let d = hash_files(&self.dir, &paths);
        for f in &mut idx.files {
            if let Some(x) = d.get(&f.path) {
                f.bytes = x.bytes;
                f.sha256 = x.sha256_hex();
                f.blake3 = x.blake3_hex();
            }
        }
        self.sign_index(&idx);
        self.recompute_sums();
    }
    fn recompute_sums(&self) {
        let files: Vec<String> = list_files(&self.dir).unwrap().into_iter().filter(|f| f != "SHA256SUMS" && f != "B3SUMS").collect();
        let d = hash_files(&self.dir, &files);
        let (mut s, mut b) = (String::new(), String::new());
        for f in &files {
            s.push_str(&format!("{}  {f}\n", d[f].sha256_hex()));
            b.push_str(&format!("{}  {f}\n", d[f].blake3_hex()));
        }
        self.write("SHA256SUMS", s);
        self.write("B3SUMS", b);
    }
    /// Rewrites custody.jsonl with `f` applied to the parsed lines, each event re-signed by
    /// its actor (the server key or the device's).
    fn edit_custody(&self, f: impl FnOnce(&mut Vec<Value>)) {
        let text = String::from_utf8(self.read("custody.jsonl")).unwrap();
        let mut events: Vec<Value> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone()).collect();
        f(&mut events);
        // Re-link each actor's consecutive events (`prev` = SHA-256 of the previous body), except
        // a `prev` of 64 zeros, which a test set on purpose.
        let mut last: HashMap<String, (u64, String)> = HashMap::new();
        let mut out = String::new();
        for mut e in events {
            let actor = e["actor"].as_str().unwrap().to_string();
            let seq = e["seq"].as_u64().unwrap();
            if let Some((s, h)) = last.get(&actor) {
                if seq == s + 1 && e["prev"] != "0".repeat(64).as_str() {
                    e["prev"] = h.clone().into();
                }
            }
            let body = fieldcap_evidence::canonical::to_vec(&e);
            let sig = signer(&actor).sign(&body);
            let ev = CustodyEvent::from_body(body, sig.to_vec()).unwrap();
            last.insert(actor, (seq, ev.hash()));
            out.push_str(&ev.to_jsonl());
            out.push('\n');
        }
        self.write("custody.jsonl", out);
    }
}

struct Keys {
    server: DeviceKey,
    devices: HashMap<String, DeviceKey>,
    clips: Vec<String>,
}

fn keys() -> Keys {
    let v: Value = serde_json::from_slice(&fs::read(fixtures().join("keys.json")).unwrap()).unwrap();
    let key = |s: &Value| DeviceKey::from_secret(&hex::decode(s.as_str().unwrap()).unwrap()).unwrap();
    Keys {
        server: key(&v["server"]),
        devices: v["devices"].as_object().unwrap().iter().map(|(id, s)| (id.clone(), key(s))).collect(),
        clips: v["clips"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect(),
    }
}

fn signer(actor: &str) -> DeviceKey {
    let k = keys();
    match actor.split_once(':') {
        Some(("device", id)) if k.devices.contains_key(id) => DeviceKey::from_secret(&k.devices[id].secret()[..]).unwrap(),
        // The server, or an actor the package does not know (signed by the server key).
        _ => k.server,
    }
}

fn failures(r: &VerifyReport) -> Vec<&Check> {
    r.checks.iter().filter(|c| !c.ok).collect()
}

/// The report fails, and a failing check's file contains `file` and its detail `detail`.
#[track_caller]
fn fails(p: &Pkg, file: &str, detail: &str) -> VerifyReport {
    let r = p.report();
    assert!(!r.all_ok(), "passed though {file} should fail ({detail})");
    assert!(r.checks.iter().any(|c| !c.ok && c.file.contains(file) && c.detail.contains(detail)), "no failing check names {file} with {detail:?}: {:#?}", failures(&r));
    r
}

/// Only checks named `name` fail (everything else a change should not touch still holds).
#[track_caller]
fn only(r: &VerifyReport, names: &[&str]) {
    let bad: Vec<_> = failures(r).into_iter().filter(|c| !names.contains(&c.name.as_str())).collect();
    assert!(bad.is_empty(), "unexpected failures: {bad:#?}");
}

/// The summary line `name` that a family adds when all of its checks hold is absent.
#[track_caller]
fn no_ok(r: &VerifyReport, name: &str) {
    assert!(!r.checks.iter().any(|c| c.ok && c.name == name), "{name} claimed to hold: {:#?}", r.checks.iter().filter(|c| c.name == name).collect::<Vec<_>>());
}

fn detail<'a>(r: &'a VerifyReport, name: &str, file: &str) -> &'a str {
    &r.checks.iter().find(|c| c.name == name && c.file == file).unwrap_or_else(|| panic!("no check {name} on {file}: {:#?}", r.checks)).detail
}

#[test]
fn clean_packages_pass_with_every_check_and_its_detail() {
    let k = keys();
    for name in ["full", "release"] {
        let p = Pkg::new(name);
        let r = p.report();
        assert!(r.all_ok(), "{name}: {:#?}", failures(&r));
        let idx = p.index();
        let release = name == "release";
        assert_eq!(idx.profile, name);
        assert_eq!(detail(&r, "package index is well-formed", "package.json"), format!("package {} ({name}), {} items", idx.package_id, idx.items.len()));
        assert_eq!(detail(&r, "server key matches the index", "server.pub.pem"), idx.server_key_id);
        assert_eq!(detail(&r, "index signature", "package.json.sig"), "Ed25519 signature of the server valid");
        let n_files = list_files(&p.dir).unwrap().len();
        assert_eq!(detail(&r, "SHA256SUMS covers every file", "SHA256SUMS"), format!("{} files match", n_files - 2));
        assert_eq!(detail(&r, "B3SUMS covers every file", "B3SUMS"), format!("{} files match", n_files - 2));
        assert_eq!(detail(&r, "files match the signed index", "package.json"), format!("{} files", n_files - 4));
        assert_eq!(detail(&r, "log checkpoint signed by the server", "log/checkpoint.txt"), format!("tree size {}", idx.checkpoint_size));
        assert_eq!(idx.devices.len(), 2);
        for d in &idx.devices {
            let id = &d.device_id;
            assert_eq!(detail(&r, "device key matches its id", &format!("devices/{id}.pub.pem")), id);
            assert_eq!(detail(&r, "device certificate signed by the server", &format!("devices/{id}.cert.sig")), "Ed25519 signature of the server valid");
            assert_eq!(detail(&r, "device certificate names this device and key", &format!("devices/{id}.cert.json")), format!("{} device {id}", d.role));
            let chain = detail(&r, "device chain", &format!("package.json (device {id})"));
            assert!(chain.starts_with(&format!("seq {}..{}: seq and prev links hold", d.chain[0].seq, d.chain.last().unwrap().seq)), "{chain}");
        }
        // The monitor's observation (seq 2) is not in the release: a note names it.
        let monitor = idx.devices.iter().find(|d| d.role == "monitor").unwrap();
        let chain = detail(&r, "device chain", &format!("package.json (device {})", monitor.device_id));
        assert_eq!(chain.contains("note: seq 2 on record but not selected for this package"), release, "{chain}");
        assert_eq!(idx.items.len(), if release { 4 } else { 5 });
        for it in &idx.items {
            assert!(k.clips.contains(&it.clip_id));
            let c = &it.clip_id;
            let m = detail(&r, if release { "derived manifest is well-formed and indexed" } else { "manifest is well-formed and indexed" }, &format!("clips/{c}/manifest.json"));
            assert_eq!(m, format!("seq {}", it.seq));
            assert_eq!(detail(&r, "manifest signature", &format!("clips/{c}/manifest.sig")), if release { "server signature valid (derived document)" } else { "device signature valid" });
            let rc = detail(&r, "receipt signed by the server names this manifest and media", &format!("clips/{c}/receipt.json"));
            assert_eq!(rc, format!("received {}, log leaf {}", it.received_at, it.log_index));
            let own = r.checks.iter().find(|x| x.name == "receipt's own inclusion proof" && x.file == format!("clips/{c}/receipt.json")).unwrap();
            assert!(own.ok && own.detail.starts_with(&format!("leaf {} in tree of ", it.log_index)), "{own:?}");
            let inc = detail(&r, "inclusion in the package checkpoint", &format!("log/inclusion/{c}.json"));
            assert!(inc.starts_with(&format!("leaf {} in checkpoint of {}; consistent with the receipt's tree of ", it.log_index, idx.checkpoint_size)), "{inc}");
            match (&it.media, &it.media_withheld) {
                (Some(pm), None) => {
                    let d = detail(&r, "media matches the manifest", &pm.path);
                    if release {
                        assert!(d.starts_with(&format!("{} bytes, SHA-256 and BLAKE3 match the released copy in the derived manifest (", pm.bytes)), "{d}");
                        assert!(d.contains("metadata range(s) overwritten"), "{d}");
                    } else {
                        assert_eq!(d, format!("{} bytes, SHA-256 and BLAKE3 match the manifest", pm.bytes));
                    }
                }
                (None, Some(why)) => {
                    assert!(release);
                    assert_eq!(detail(&r, "media withheld", &format!("clips/{c}/manifest.json")), format!("media withheld from this release: {why}"));
                }
                (None, None) => assert_eq!(it.kind, "observation"),
                other => panic!("{other:?}"),
            }
        }
        let custody = detail(&r, "custody events", "custody.jsonl");
        let text = String::from_utf8(p.read("custody.jsonl")).unwrap();
        let n_server = text.lines().filter(|l| l.contains("\"actor\":\"server:")).count();
        let n_device = text.lines().filter(|l| l.contains("\"actor\":\"device:")).count();
        assert!(custody.starts_with(&format!("{n_server} server events and {n_device} device events from 2 device(s): signatures and links valid")), "{custody}");
        assert_eq!(custody.contains("device logs complete from their first event"), !release, "{custody}");
        assert_eq!(custody.contains("(events of other items not included)"), release, "{custody}");
        assert!(!custody.contains("note:"), "{custody}");
        // The cross-checks without a pin: the export's record names exactly the packaged items,
        // and each device's own events name this server key and these receipts.
        assert_eq!(detail(&r, "exported items match the index", "package.json"), format!("the export event (server event {}) and its per-item events name the {} items listed", idx.export_custody_seq, idx.items.len()));
        for d in &idx.devices {
            let x = detail(&r, "device custody agrees with the package", &format!("custody.jsonl (device {})", d.device_id));
            let n = idx.items.iter().filter(|i| i.device_id == d.device_id).count();
            assert!(x.contains(&format!("manifest commitment(s) name this server key {}; {n} receipt(s) of packaged items match", idx.server_key_id)), "{x}");
        }
        // Every check names a file, in the documented order: index, sums, devices, checkpoint, items, chains, custody, cross-checks.
        assert_eq!(r.checks[0].name, "package index is well-formed");
        let custody_at = r.checks.iter().position(|c| c.name == "custody events").unwrap();
        assert_eq!(r.checks[custody_at + 1].name, "exported items match the index");
        assert!(r.checks[custody_at + 2..].iter().all(|c| c.name == "device custody agrees with the package"));
        assert_eq!(r.checks.len(), custody_at + 2 + idx.devices.len());
        // VERIFY.txt is the procedure written for this index.
        let server_key = fieldcap_evidence::identity::parse_public_pem(&String::from_utf8(p.read("server.pub.pem")).unwrap()).unwrap();
        assert_eq!(String::from_utf8(p.read("VERIFY.txt")).unwrap(), verify_txt(&idx, &server_key));
    }
}

#[test]
fn every_file_changed_or_deleted_fails_naming_it() {
    // (Truncation, and the stock-tool procedure, are in tests/tests/package_tamper.rs.)
    for (name, ops) in [("full", &["flip", "delete"][..]), ("release", &["flip"][..])] {
        let files = list_files(&fixtures().join(name)).unwrap();
        assert!(files.len() > 30, "{files:?}");
        for f in files {
            for &op in ops {
                let p = Pkg::new(name);
                let mut b = p.read(&f);
                match op {
                    "flip" => {
                        let i = b.len() / 2;
                        b[i] ^= 0x01;
                        p.write(&f, &b);
                    }
                    "truncate" => {
                        b.truncate(b.len() / 2);
                        p.write(&f, &b);
                    }
                    _ => fs::remove_file(p.p(&f)).unwrap(),
                }
                let r = p.report();
                assert!(!r.all_ok(), "{name}: {op} {f} passed");
                assert!(r.checks.iter().any(|c| !c.ok && c.file.contains(f.as_str())), "{name}: {op} {f}: no failing check names it: {:#?}", failures(&r));
            }
        }
    }
}

#[test]
fn added_files_fail_naming_them() {
    let p = Pkg::new("full");
    let clip = &p.index().items[0].clip_id.clone();
    for extra in ["notes.txt".to_string(), format!("clips/{clip}/media2.mp4")] {
        let p = Pkg::new("full");
        p.write(&extra, b"added later");
        let r = p.report();
        assert!(r.checks.iter().any(|c| !c.ok && c.name == "file listed in the signed index" && c.file == extra && c.detail == "not listed in package.json (added)"), "{:#?}", failures(&r));
        assert!(r.checks.iter().any(|c| !c.ok && c.name == "SHA256SUMS covers every file" && c.file == extra), "{:#?}", failures(&r));
        // Listed in the sums too (as an exporter would): still not in the signed index.
        p.recompute_sums();
        let r = fails(&p, &extra, "not listed in package.json (added)");
        only(&r, &["file listed in the signed index"]);
        no_ok(&r, "files match the signed index");
    }
}

#[test]
fn sums_files_are_checked_line_by_line_and_blamed_when_at_fault() {
    let p = Pkg::new("full");
    let sums = String::from_utf8(p.read("SHA256SUMS")).unwrap();
    let (first, rest) = sums.split_once('\n').unwrap();
    let (digest, file) = first.split_once("  ").unwrap();
    // A malformed line: named by number, the whole file unreadable.
    for bad in [format!("{digest} {file}"), format!("{}  {file}", &digest[1..]), format!("{}g  {file}", &digest[1..]), format!("{digest}  ")] {
        p.write("SHA256SUMS", format!("{rest}{bad}\n"));
        let n = rest.lines().count() + 1;
        let r = fails(&p, "SHA256SUMS", &format!("SHA256SUMS line {n} is malformed"));
        assert!(r.checks.iter().any(|c| c.name == "SHA256SUMS is readable" && !c.ok));
        only(&r, &["SHA256SUMS is readable"]);
    }
    // A wrong digest for a file that still matches the signed index: the sums file is blamed.
    let other = "0".repeat(64);
    p.write("SHA256SUMS", format!("{other}  {file}\n{rest}"));
    let r = fails(&p, "SHA256SUMS", &format!("{file} does not match SHA256SUMS"));
    assert!(!r.checks.iter().any(|c| !c.ok && c.file == file), "{:#?}", failures(&r));
    only(&r, &["SHA256SUMS entry"]);
    no_ok(&r, "SHA256SUMS covers every file");
    assert!(r.checks.iter().any(|c| c.ok && c.name == "B3SUMS covers every file"));
    // A line missing: the sums file is blamed (the file is signed).
    p.write("SHA256SUMS", rest);
    let r = fails(&p, "SHA256SUMS", &format!("{file} is in the package but not listed in SHA256SUMS"));
    only(&r, &["SHA256SUMS covers every file"]);
    no_ok(&r, "SHA256SUMS covers every file");
    // A line naming a file that is not there, or a path outside the package.
    for (line, says) in [(format!("{other}  clips/nothing.bin"), "clips/nothing.bin is listed in SHA256SUMS but missing"), (format!("{other}  ../etc/passwd"), "names a path outside the package: ../etc/passwd"), (format!("{other}  /etc/passwd"), "names a path outside the package: /etc/passwd")] {
        p.write("SHA256SUMS", format!("{sums}{line}\n"));
        let r = fails(&p, "SHA256SUMS", says);
        only(&r, &["SHA256SUMS entry"]);
        no_ok(&r, "SHA256SUMS covers every file");
    }
    // B3SUMS the same way, with the BLAKE3 digests.
    let p = Pkg::new("full");
    let b3 = String::from_utf8(p.read("B3SUMS")).unwrap();
    let (first, rest) = b3.split_once('\n').unwrap();
    let file = first.split_once("  ").unwrap().1;
    p.write("B3SUMS", format!("{}  {file}\n{rest}", "f".repeat(64)));
    let r = fails(&p, "B3SUMS", &format!("{file} does not match B3SUMS"));
    only(&r, &["B3SUMS entry"]);
    // A changed file that is signed: the file is blamed, by both sums files and the index.
    let p = Pkg::new("full");
    let mut b = p.read(file);
    b[0] ^= 1;
    p.write(file, &b);
    let r = fails(&p, file, &format!("{file} does not match SHA256SUMS"));
    assert!(r.checks.iter().any(|c| !c.ok && c.file == file && c.detail == format!("{file} does not match B3SUMS")));
    assert!(r.checks.iter().any(|c| !c.ok && c.file == file && c.detail == "differs from the digests in package.json"));
    // Sums unreadable.
    let p = Pkg::new("full");
    fs::remove_file(p.p("B3SUMS")).unwrap();
    let r = fails(&p, "B3SUMS", "B3SUMS cannot be read");
    only(&r, &["B3SUMS is readable"]);
    // An unsigned file not in the sums: the file is blamed.
    let p = Pkg::new("full");
    p.write("extra.txt", "x");
    let r = fails(&p, "extra.txt", "extra.txt is in the package but not listed in SHA256SUMS");
    only(&r, &["SHA256SUMS covers every file", "B3SUMS covers every file", "file listed in the signed index"]);
}

#[test]
fn the_signed_file_list_names_missing_and_changed_files() {
    let p = Pkg::new("full");
    let mut idx = p.index();
    let f = idx.files[3].path.clone();
    idx.files[3].bytes += 1;
    p.sign_index(&idx);
    p.recompute_sums();
    let r = fails(&p, &f, "differs from the digests in package.json");
    only(&r, &["file listed in the signed index"]);
    no_ok(&r, "files match the signed index");
    for field in ["sha256", "blake3"] {
        let p = Pkg::new("full");
        let mut idx = p.index();
        if field == "sha256" {
            idx.files[3].sha256 = "0".repeat(64);
        } else {
            idx.files[3].blake3 = "0".repeat(64);
        }
        p.sign_index(&idx);
        p.recompute_sums();
        let r = fails(&p, &f, "differs from the digests in package.json");
        only(&r, &["file listed in the signed index"]);
    }
    let p = Pkg::new("full");
    let mut idx = p.index();
    let mut extra = idx.files[0].clone();
    extra.path = "clips/gone.bin".into();
    idx.files.push(extra);
    p.sign_index(&idx);
    p.recompute_sums();
    let r = fails(&p, "clips/gone.bin", "missing");
    only(&r, &["file listed in the signed index"]);
    no_ok(&r, "files match the signed index");
}

#[test]
fn the_index_its_key_and_its_signature() {
    // Not canonical (same content, re-signed).
    let p = Pkg::new("full");
    let v: Value = serde_json::from_slice(&p.read("package.json")).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    p.write("package.json", &pretty);
    p.write("package.json.sig", keys().server.sign(&pretty));
    p.recompute_sums();
    let r = fails(&p, "package.json", "package.json is not canonical JSON");
    only(&r, &["package index is well-formed"]);
    // Wrong type.
    let p = Pkg::new("full");
    let mut idx = p.index();
    idx.doc_type = "fieldcap.package/2".into();
    p.sign_index(&idx);
    p.recompute_sums();
    let r = fails(&p, "package.json", "package.json has the wrong type");
    only(&r, &["package index is well-formed"]);
    // Not an index at all.
    let p = Pkg::new("full");
    p.write("package.json", b"{}");
    p.write("package.json.sig", keys().server.sign(b"{}"));
    p.recompute_sums();
    let r = fails(&p, "package.json", "is not a fieldcap.package/1 index");
    assert_eq!(r.checks.iter().filter(|c| c.name == "server key matches the index").count(), 1);
    // Signed by another key.
    let p = Pkg::new("full");
    p.write("package.json.sig", DeviceKey::generate().sign(&p.read("package.json")));
    p.recompute_sums();
    let r = fails(&p, "package.json.sig", "signature does not verify");
    only(&r, &["index signature"]);
    // A server key other than the one the index names.
    let p = Pkg::new("full");
    let other = DeviceKey::generate();
    p.write("server.pub.pem", other.public_pem());
    p.reseal();
    let r = fails(&p, "server.pub.pem", &format!("server.pub.pem has key id {}, the index names {}", other.device_id(), p.index().server_key_id));
    only(&r, &["server key matches the index"]);
    assert!(!r.checks.iter().any(|c| c.name == "index signature"), "no signature check without the key");
    // Index and key both replaced consistently by another key: the device certificates and
    // everything else the real server signed fail.
    let p = Pkg::new("full");
    let mut idx = p.index();
    idx.server_key_id = other.device_id().to_string();
    p.write("server.pub.pem", other.public_pem());
    let b = fieldcap_evidence::canonical::to_vec_of(&idx).unwrap();
    p.write("package.json", &b);
    p.write("package.json.sig", other.sign(&b));
    p.recompute_sums();
    let r = p.report();
    assert!(!r.all_ok());
    for d in &idx.devices {
        assert!(r.checks.iter().any(|c| !c.ok && c.file == format!("devices/{}.cert.sig", d.device_id)));
    }
    assert!(r.checks.iter().any(|c| !c.ok && c.file == "log/checkpoint.txt"));
    assert!(r.checks.iter().any(|c| !c.ok && c.file == "custody.jsonl"));
}

#[test]
fn device_keys_and_certificates() {
    for name in ["full", "release"] {
        let p = Pkg::new(name);
        let idx = p.index();
        let (a, b) = (&idx.devices[0].device_id, &idx.devices[1].device_id);
        // The key of another device in a device's .pub.pem.
        p.write(&format!("devices/{a}.pub.pem"), p.read(&format!("devices/{b}.pub.pem")));
        p.reseal();
        let r = fails(&p, &format!("devices/{a}.pub.pem"), &format!("devices/{a}.pub.pem is not the key of device {a}"));
        assert!(r.checks.iter().any(|c| !c.ok && c.name == "manifest signature" && c.detail.contains(&format!("no valid key for device {a}"))) || name == "release");
        // Another device's certificate (validly signed by the server).
        let p = Pkg::new(name);
        for ext in ["cert.json", "cert.sig"] {
            p.write(&format!("devices/{a}.{ext}"), p.read(&format!("devices/{b}.{ext}")));
        }
        p.reseal();
        let r = fails(&p, &format!("devices/{a}.cert.json"), "the certificate is for another device");
        only(&r, &["device certificate names this device and key"]);
        // A certificate not signed by the server.
        let p = Pkg::new(name);
        p.write(&format!("devices/{a}.cert.sig"), keys().devices[a].sign(&p.read(&format!("devices/{a}.cert.json"))));
        p.reseal();
        let r = fails(&p, &format!("devices/{a}.cert.sig"), "signature does not verify");
        only(&r, &["device certificate signed by the server"]);
        // A certificate naming another key (re-signed by the server).
        let p = Pkg::new(name);
        let cf = format!("devices/{a}.cert.json");
        let mut cert: Value = serde_json::from_slice(&p.read(&cf)).unwrap();
        cert["public_key_pem"] = Value::String(DeviceKey::generate().public_pem());
        let cb = fieldcap_evidence::canonical::to_vec(&cert);
        p.write(&cf, &cb);
        p.write(&format!("devices/{a}.cert.sig"), keys().server.sign(&cb));
        p.reseal();
        let r = fails(&p, &cf, "the certificate is for another device");
        only(&r, &["device certificate names this device and key"]);
        // The certificate of the right device, whose .pub.pem is another (valid-id) key: cannot
        // be (the id is the key's hash), so a certificate that is not JSON instead.
        let p = Pkg::new(name);
        p.write(&cf, b"{\"device_id\":1}");
        p.write(&format!("devices/{a}.cert.sig"), keys().server.sign(b"{\"device_id\":1}"));
        p.reseal();
        let want = if name == "release" { "not a derived device document" } else { "not a device certificate" };
        let r = fails(&p, &cf, want);
        only(&r, &["device certificate names this device and key"]);
    }
}

#[test]
fn manifests_must_be_the_indexed_ones_and_signed() {
    for name in ["full", "release"] {
        let k = keys();
        // A manifest signed by another key, with the sums recomputed and the index re-signed.
        let p = Pkg::new(name);
        let idx = p.index();
        let it = &idx.items[0];
        let mf = format!("clips/{}/manifest.json", it.clip_id);
        let sf = format!("clips/{}/manifest.sig", it.clip_id);
        p.write(&sf, DeviceKey::generate().sign(&p.read(&mf)));
        p.reseal();
        let r = fails(&p, &sf, "signature does not verify");
        only(&r, &["manifest signature"]);
        // Signed by the other party (device for a derived manifest, server for an original).
        let p = Pkg::new(name);
        let wrong = if name == "release" { DeviceKey::from_secret(&k.devices[&it.device_id].secret()[..]).unwrap() } else { DeviceKey::from_secret(&k.server.secret()[..]).unwrap() };
        p.write(&sf, wrong.sign(&p.read(&mf)));
        p.reseal();
        let r = fails(&p, &sf, "signature does not verify");
        only(&r, &["manifest signature"]);
        // The index names another seq / device / clip for the item.
        for what in ["seq", "device", "sha", "original", "withheld"] {
            let p = Pkg::new(name);
            let mut idx = p.index();
            let it = &mut idx.items[0];
            match what {
                "seq" => it.seq += 7,
                "device" => it.device_id = idx.devices.iter().find(|d| d.device_id != it.device_id).unwrap().device_id.clone(),
                "sha" => it.manifest_sha256 = "0".repeat(64),
                "original" => it.original_manifest_sha256 = "0".repeat(64),
                _ => it.media_withheld = Some("withheld after all".into()),
            }
            p.sign_index(&idx);
            p.recompute_sums();
            let want = match what {
                "seq" | "device" => "the manifest is for another item than the index says",
                "sha" | "original" => "the manifest's SHA-256 differs from the index",
                _ => "differ on whether the media is withheld",
            };
            let r = fails(&p, &mf, want);
            assert!(r.checks.iter().any(|c| !c.ok && c.file == mf && (c.name == "manifest is well-formed and indexed" || c.name == "derived manifest is well-formed and indexed")));
        }
        // A manifest that does not parse.
        let p = Pkg::new(name);
        p.write(&mf, b"{\"type\":\"x\"}");
        p.write(&sf, if name == "release" { k.server.sign(b"{\"type\":\"x\"}") } else { k.devices[&it.device_id].sign(b"{\"type\":\"x\"}") });
        p.reseal();
        let r = p.report();
        assert!(r.checks.iter().any(|c| !c.ok && c.file == mf), "{:#?}", failures(&r));
        assert!(r.checks.iter().any(|c| c.ok && c.file == sf && c.name == "manifest signature"), "the signature itself holds");
    }
}

#[test]
fn media_must_match_the_manifest_or_be_withheld() {
    // Full: the index lists other digests (re-signed), or the file differs and is resealed.
    let p = Pkg::new("full");
    let mut idx = p.index();
    let i = idx.items.iter().position(|i| i.media.is_some()).unwrap();
    let path = idx.items[i].media.as_ref().unwrap().path.clone();
    idx.items[i].media.as_mut().unwrap().sha256 = "0".repeat(64);
    p.sign_index(&idx);
    p.recompute_sums();
    let r = fails(&p, &path, &format!("the index lists other digests for {path} than the media the manifest names"));
    only(&r, &["media matches the manifest"]);
    let p = Pkg::new("full");
    let mut b = p.read(&path);
    b[0] ^= 1;
    p.write(&path, &b);
    p.reseal();
    let r = fails(&p, &path, &format!("{path} differs from the media the manifest names"));
    only(&r, &["media matches the manifest"]);
    // The index names another file name / MIME type for the media.
    let p = Pkg::new("full");
    let mut idx = p.index();
    idx.items[i].media.as_mut().unwrap().mime = "video/quicktime".into();
    p.sign_index(&idx);
    p.recompute_sums();
    let r = fails(&p, &path, "media file name does not follow its MIME type");
    only(&r, &["media matches the manifest"]);
    // The index lists no media for an item whose manifest has some, or media for an observation.
    let p = Pkg::new("full");
    let mut idx = p.index();
    idx.items[i].media = None;
    p.sign_index(&idx);
    p.recompute_sums();
    let c = idx.items[i].clip_id.clone();
    let r = fails(&p, &format!("clips/{c}/manifest.json"), "the manifest names media the index does not list");
    only(&r, &["media matches the manifest"]);
    let p = Pkg::new("full");
    let mut idx = p.index();
    let o = idx.items.iter().position(|i| i.kind == "observation").unwrap();
    idx.items[o].media = idx.items[i].media.clone();
    p.sign_index(&idx);
    p.recompute_sums();
    let r = fails(&p, &path, "the manifest names no media");
    only(&r, &["media matches the manifest"]);

    // A manifest that cannot be read: the media file is not blamed for what the manifest says.
    let p = Pkg::new("full");
    let c = idx.items[i].clip_id.clone();
    fs::remove_file(p.p(&format!("clips/{c}/manifest.json"))).unwrap();
    let r = p.report();
    assert!(r.checks.iter().any(|x| !x.ok && x.file == format!("clips/{c}/manifest.json")));
    assert!(!r.checks.iter().any(|x| x.name == "media matches the manifest" && x.file == path), "{:#?}", failures(&r));

    // Release: an item with a released copy that the index does not list.
    let p = Pkg::new("release");
    let mut ridx = p.index();
    let ri = ridx.items.iter().position(|i| i.media.is_some()).unwrap();
    ridx.items[ri].media = None;
    p.sign_index(&ridx);
    p.recompute_sums();
    let rc = ridx.items[ri].clip_id.clone();
    let r = fails(&p, &format!("clips/{rc}/manifest.json"), "the manifest names media the index does not list");
    assert!(!r.checks.iter().any(|x| x.name == "media withheld" && x.file == format!("clips/{rc}/manifest.json")), "{:#?}", failures(&r));

    // Release: the released copy against the derived manifest.
    let p = Pkg::new("release");
    let idx = p.index();
    let it = idx.items.iter().find(|i| i.media.is_some()).unwrap();
    let path = it.media.as_ref().unwrap().path.clone();
    let mut b = p.read(&path);
    let n = b.len();
    b[n - 1] ^= 1;
    p.write(&path, &b);
    p.reseal();
    let r = fails(&p, &path, &format!("{path} differs from the released copy the derived manifest names"));
    only(&r, &["media matches the manifest"]);
    // A withheld item's media file present anyway (from the full package).
    let p = Pkg::new("release");
    let w = idx.items.iter().find(|i| i.media_withheld.is_some()).unwrap();
    let full_media = list_files(&fixtures().join("full")).unwrap().into_iter().find(|f| f.starts_with(&format!("clips/{}/media.", w.clip_id))).unwrap();
    p.write(&full_media, fs::read(fixtures().join("full").join(&full_media)).unwrap());
    p.recompute_sums();
    let r = fails(&p, &format!("clips/{}/manifest.json", w.clip_id), &format!("the media is said to be withheld, but {full_media} is in the package"));
    only(&r, &["media withheld", "file listed in the signed index"]);
    // And listed in the index as its media.
    let mut idx2 = p.index();
    let d = hash_files(&p.dir, std::slice::from_ref(&full_media));
    let wi = idx2.items.iter().position(|i| i.clip_id == w.clip_id).unwrap();
    let m = DerivedManifest::parse(&p.read(&format!("clips/{}/manifest.json", w.clip_id))).unwrap().media.unwrap();
    idx2.items[wi].media = Some(fieldcap_package::package::PackageMedia { path: full_media.clone(), mime: m.mime.clone(), bytes: d[&full_media].bytes, sha256: d[&full_media].sha256_hex(), blake3: d[&full_media].blake3_hex() });
    idx2.files.push(fieldcap_package::package::FileEntry { path: full_media.clone(), bytes: d[&full_media].bytes, sha256: d[&full_media].sha256_hex(), blake3: d[&full_media].blake3_hex() });
    p.sign_index(&idx2);
    p.recompute_sums();
    let r = fails(&p, &full_media, &format!("the derived manifest says the media is withheld, but the index lists {full_media}"));
    only(&r, &["media matches the manifest"]);
    // A derived manifest (re-signed by the server) whose released copy is of another length,
    // or names released media together with a withholding.
    for what in ["length", "both"] {
        let p = Pkg::new("release");
        let mut idx = p.index();
        let i = idx.items.iter().position(|i| i.media.is_some()).unwrap();
        let mf = format!("clips/{}/manifest.json", idx.items[i].clip_id);
        let mut dm: Value = serde_json::from_slice(&p.read(&mf)).unwrap();
        let media_path = idx.items[i].media.as_ref().unwrap().path.clone();
        if what == "length" {
            // Append a byte to the copy and describe it exactly in released_media.
            let mut b = p.read(&media_path);
            b.push(0);
            p.write(&media_path, &b);
            let d = hash_files(&p.dir, std::slice::from_ref(&media_path));
            dm["released_media"]["bytes"] = d[&media_path].bytes.into();
            dm["released_media"]["sha256"] = d[&media_path].sha256_hex().into();
            dm["released_media"]["blake3"] = d[&media_path].blake3_hex().into();
            let pm = idx.items[i].media.as_mut().unwrap();
            pm.bytes = d[&media_path].bytes;
            pm.sha256 = d[&media_path].sha256_hex();
            pm.blake3 = d[&media_path].blake3_hex();
        } else {
            dm["media_withheld"] = "both".into();
            idx.items[i].media_withheld = Some("both".into());
        }
        let mb = fieldcap_evidence::canonical::to_vec(&dm);
        p.write(&mf, &mb);
        p.write(&format!("clips/{}/manifest.sig", idx.items[i].clip_id), keys().server.sign(&mb));
        idx.items[i].manifest_sha256 = fieldcap_evidence::hashing::sha256_hex(&mb);
        p.sign_index(&idx);
        p.reseal();
        let want = if what == "length" { format!("the released copy {media_path} is not as long as the original") } else { "released_media is named together with media_withheld".to_string() };
        let r = p.report();
        assert!(r.checks.iter().any(|c| !c.ok && c.name == "media matches the manifest" && c.detail.contains(&want)), "{what}: {:#?}", failures(&r));
        if what == "length" {
            only(&r, &["media matches the manifest"]);
        }
    }
}

#[test]
fn receipts_and_log_proofs() {
    for name in ["full", "release"] {
        let p = Pkg::new(name);
        let idx = p.index();
        let (a, b) = (&idx.items[0], &idx.items[1]);
        // Two receipts swapped (signatures stay valid), with and without resealing.
        for reseal in [false, true] {
            let p = Pkg::new(name);
            for f in ["receipt.json", "receipt.sig"] {
                let (fa, fb) = (format!("clips/{}/{f}", a.clip_id), format!("clips/{}/{f}", b.clip_id));
                let (ba, bb) = (p.read(&fa), p.read(&fb));
                p.write(&fa, bb);
                p.write(&fb, ba);
            }
            if reseal {
                p.reseal();
            }
            let r = fails(&p, &format!("clips/{}/receipt.json", a.clip_id), "the receipt names clip_id");
            if reseal {
                // The device's own record of the receipt it got names the swap too.
                only(&r, &["receipt signed by the server names this manifest and media", "device custody agrees with the package"]);
                fails(&p, &format!("custody.jsonl (device {})", a.device_id), &format!("'receipted' of clip {}: the device recorded receipt_sha256", a.clip_id));
            }
        }
        // The index states another log index or receipt time.
        for what in ["index", "time"] {
            let p = Pkg::new(name);
            let mut idx = p.index();
            if what == "index" {
                idx.items[0].log_index += 1;
            } else {
                idx.items[0].received_at = "2020-01-01T00:00:00.000Z".into();
            }
            p.sign_index(&idx);
            p.recompute_sums();
            let r = fails(&p, &format!("clips/{}/receipt.json", a.clip_id), "differs from the index (log index or time)");
            only(&r, &["receipt signed by the server names this manifest and media"]);
        }
        // A receipt signed by another key.
        let p = Pkg::new(name);
        let rf = format!("clips/{}/receipt.json", a.clip_id);
        p.write(&format!("clips/{}/receipt.sig", a.clip_id), DeviceKey::generate().sign(&p.read(&rf)));
        p.reseal();
        let r = fails(&p, &rf, "the receipt is not signed by the server key");
        only(&r, &["receipt signed by the server names this manifest and media"]);
        // A receipt (re-signed by the server) whose inclusion proof is cut.
        let p = Pkg::new(name);
        let mut rv: Value = serde_json::from_slice(&p.read(&rf)).unwrap();
        let proof = rv["log"]["inclusion"].as_array_mut().unwrap();
        assert!(!proof.is_empty());
        proof.pop();
        let rb = fieldcap_evidence::canonical::to_vec(&rv);
        p.write(&rf, &rb);
        p.write(&format!("clips/{}/receipt.sig", a.clip_id), keys().server.sign(&rb));
        p.reseal();
        let r = fails(&p, &rf, "is not proven in its tree");
        assert!(r.checks.iter().any(|c| !c.ok && c.name == "receipt's own inclusion proof"));
        // The inclusion file: another leaf, another tree, a bad proof, another receipt tree, a
        // bad consistency proof, not JSON.
        for what in ["clip", "index", "tree", "leaf", "proof", "receipt_tree", "consistency", "json"] {
            let p = Pkg::new(name);
            let inc = format!("log/inclusion/{}.json", a.clip_id);
            let mut f: InclusionFile = serde_json::from_slice(&p.read(&inc)).unwrap();
            let want = match what {
                "clip" => {
                    f.clip_id = b.clip_id.clone();
                    "the proof is for another leaf or tree"
                }
                "index" => {
                    f.index += 1;
                    "the proof is for another leaf or tree"
                }
                "tree" => {
                    f.tree_size += 1;
                    "the proof is for another leaf or tree"
                }
                "leaf" => {
                    f.leaf_hash = "0".repeat(64);
                    "the proof is for another leaf or tree"
                }
                "proof" => {
                    if f.inclusion.is_empty() {
                        continue;
                    }
                    f.inclusion[0] = "0".repeat(64);
                    "inclusion proof does not lead to the root"
                }
                "receipt_tree" => {
                    f.receipt_tree_size += 1;
                    "the consistency proof starts at another tree size than the receipt's"
                }
                "consistency" => {
                    if f.consistency.is_empty() {
                        continue;
                    }
                    f.consistency[0] = "0".repeat(64);
                    "consistency proof does not lead"
                }
                _ => "not an inclusion file",
            };
            if what == "json" {
                p.write(&inc, b"[]");
            } else {
                p.write(&inc, serde_json::to_vec(&f).unwrap());
            }
            p.reseal();
            let r = fails(&p, &inc, want);
            only(&r, &["inclusion in the package checkpoint"]);
        }
        // The package checkpoint of another size than the index says, or not signed.
        let p = Pkg::new(name);
        let mut idx = p.index();
        idx.checkpoint_size += 1;
        p.sign_index(&idx);
        p.recompute_sums();
        let r = fails(&p, "log/checkpoint.txt", &format!("the checkpoint is of tree size {}, the index says {}", idx.checkpoint_size - 1, idx.checkpoint_size));
        assert!(r.checks.iter().any(|c| !c.ok && c.name == "inclusion in the package checkpoint" && c.detail.contains("no valid package checkpoint")));
        only(&r, &["log checkpoint signed by the server", "inclusion in the package checkpoint"]);
    }
}

#[test]
fn device_chains() {
    type Edit = fn(&mut Vec<fieldcap_package::package::ChainLink>);
    let cases: [(&str, Edit, &str, bool); 6] = [
        ("reorder", |c| c.swap(0, 1), "out of order", false),
        ("prev", |c| c[1].prev = Some("0".repeat(64)), "seq 2: prev is not the SHA-256 of seq 1", false),
        ("first prev", |c| c[0].prev = Some("0".repeat(64)), "seq 1 has a prev", false),
        ("hole", |c| {
            c.remove(1);
        }, "note: seq 2 never reached the server", true),
        ("other manifest", |c| c[0].manifest_sha256 = "0".repeat(64), "seq 1: the manifest in the package is not the one in the chain", false),
        ("missing item", |c| {
            c.remove(0);
        }, "seq 1 is not in the chain", false),
    ];
    // The release package: the monitor's seq 2 (the observation) is on record but not in it.
    for (what, edit, says, ok) in cases {
        let p = Pkg::new("release");
        let mut idx = p.index();
        let d = idx.devices.iter_mut().find(|d| d.role == "monitor").unwrap();
        let file = format!("package.json (device {})", d.device_id);
        edit(&mut d.chain);
        p.sign_index(&idx);
        p.recompute_sums();
        let r = p.report();
        let c = r.checks.iter().find(|c| c.name == "device chain" && c.file == file).unwrap();
        assert_eq!(c.ok, ok, "{what}: {c:?}");
        assert!(c.detail.contains(says), "{what}: {c:?}");
        if ok {
            assert!(c.detail.contains("seq 1..4"), "{c:?}");
        }
    }
    // An item whose manifest cannot be read.
    let p = Pkg::new("full");
    let it = p.index().items[0].clone();
    fs::remove_file(p.p(&format!("clips/{}/manifest.json", it.clip_id))).unwrap();
    let r = p.report();
    let c = r.checks.iter().find(|c| c.name == "device chain" && c.file.contains(&it.device_id)).unwrap();
    assert!(!c.ok && c.detail.contains(&format!("seq {} (clips/{}) is missing or unreadable", it.seq, it.clip_id)), "{c:?}");
}

#[test]
fn custody_events() {
    let idx = Pkg::new("full").index();
    let server = format!("server:{}", idx.server_key_id);
    let monitor = idx.devices.iter().find(|d| d.role == "monitor").unwrap().device_id.clone();
    let dev = format!("device:{monitor}");
    let is = |e: &Value, actor: &str| e["actor"] == actor;
    type Edit = Box<dyn Fn(&mut Vec<Value>)>;
    let s = server.clone();
    let d = dev.clone();
    let pid = idx.package_id.clone();
    let clip0 = idx.items[0].clip_id.clone();
    let cases: Vec<(&str, Edit, String)> = vec![
        ("server event dropped from the middle", Box::new({
            let s = s.clone();
            move |ev: &mut Vec<Value>| {
                let i = ev.iter().position(|e| is(e, &s) && e["seq"] == 3).unwrap();
                let mut e = ev[i].clone();
                e["prev"] = "0".repeat(64).into();
                ev[i] = e;
            }
        }), "server custody event 3: prev does not match event 2".into()),
        ("server events out of order", Box::new({
            let s = s.clone();
            move |ev: &mut Vec<Value>| {
                let i = ev.iter().position(|e| is(e, &s) && e["seq"] == 3).unwrap();
                let j = ev.iter().position(|e| is(e, &s) && e["seq"] == 2).unwrap();
                ev.swap(i, j);
            }
        }), "server custody event 2 is out of order".into()),
        ("device event out of order", Box::new({
            let d = d.clone();
            move |ev: &mut Vec<Value>| {
                let i = ev.iter().position(|e| is(e, &d) && e["seq"] == 3).unwrap();
                let j = ev.iter().position(|e| is(e, &d) && e["seq"] == 2).unwrap();
                ev.swap(i, j);
            }
        }), format!("device {monitor} custody event 2 is out of order")),
        ("export event of another package", Box::new({
            let pid = pid.clone();
            move |ev: &mut Vec<Value>| {
                for e in ev.iter_mut().filter(|e| e["event"] == "exported" && e["detail"]["package_id"] == pid.as_str()) {
                    e["detail"]["package_id"] = "another".into();
                }
            }
        }), "is not this package's export".into()),
        ("no export event", Box::new({
            let s = s.clone();
            move |ev: &mut Vec<Value>| {
                let last = ev.iter().filter(|e| is(e, &s)).map(|e| e["seq"].as_u64().unwrap()).max().unwrap();
                ev.retain(|e| !(is(e, &s) && e["seq"].as_u64().unwrap() >= last - 5));
            }
        }), "the export of this package is not in custody.jsonl".into()),
        ("no server event for an item", Box::new({
            let c = clip0.clone();
            let s = s.clone();
            move |ev: &mut Vec<Value>| {
                for e in ev.iter_mut().filter(|e| is(e, &s) && e["clip_id"] == c.as_str() && (e["event"] == "stored" || e["event"] == "received")) {
                    e["event"] = "noted".into();
                }
            }
        }), format!("no server custody event for item {clip0}")),
        ("device log with a hole at its start", Box::new({
            let d = d.clone();
            move |ev: &mut Vec<Value>| ev.retain(|e| !(is(e, &d) && e["seq"] == 1))
        }), format!("device {monitor} custody log: event 1 is missing (found seq 2 in its place)")),
        ("device log cut short", Box::new({
            let d = d.clone();
            move |ev: &mut Vec<Value>| {
                let last = ev.iter().filter(|e| is(e, &d)).map(|e| e["seq"].as_u64().unwrap()).max().unwrap();
                ev.retain(|e| !(is(e, &d) && e["seq"] == last));
            }
        }), format!("device {monitor} custody log: the server recorded events up to")),
        ("device log dropped", Box::new({
            let d = d.clone();
            move |ev: &mut Vec<Value>| ev.retain(|e| !is(e, &d))
        }), format!("device {monitor} uploaded its custody log, but the package holds none of it")),
        ("sealed event names another manifest", Box::new({
            let d = d.clone();
            let c = clip0.clone();
            move |ev: &mut Vec<Value>| {
                for e in ev.iter_mut().filter(|e| is(e, &d) && e["event"] == "sealed" && e["clip_id"] == c.as_str()) {
                    e["detail"]["manifest_sha256"] = "0".repeat(64).into();
                }
            }
        }), "the sealed manifest is not the one in this package".to_string()),
        ("an unknown actor", Box::new(move |ev: &mut Vec<Value>| ev[0]["actor"] = "someone".into()), "neither this server's nor a device's".into()),
        ("a device not in the package", Box::new(move |ev: &mut Vec<Value>| ev[0]["actor"] = format!("device:{}", "ab".repeat(16)).into()), format!("device {} is not in this package", "ab".repeat(16))),
    ];
    for (what, edit, says) in cases {
        let p = Pkg::new("full");
        p.edit_custody(|ev| edit(ev));
        p.reseal();
        let r = p.report();
        let c = r.checks.iter().find(|c| c.name == "custody events").unwrap();
        assert!(!c.ok && c.detail.contains(&says), "{what}: {c:?}");
        only(&r, &["custody events"]);
    }
    // Unchanged but re-signed events still hold (the editing itself is faithful).
    let p = Pkg::new("full");
    p.edit_custody(|_| {});
    p.reseal();
    assert!(p.report().all_ok());
    // A bad signature on a server and on a device event; a line that is not an event.
    for actor in [server.clone(), dev.clone()] {
        let p = Pkg::new("full");
        let text = String::from_utf8(p.read("custody.jsonl")).unwrap();
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if l.contains(&format!("\"actor\":\"{actor}\"")) && !text.lines().take(i).any(|x| x.contains(&format!("\"actor\":\"{actor}\""))) {
                    let mut v: Value = serde_json::from_str(l).unwrap();
                    v["sig"] = hex::encode(DeviceKey::generate().sign(b"x")).into();
                    serde_json::to_string(&v).unwrap()
                } else {
                    l.to_string()
                }
            })
            .collect();
        p.write("custody.jsonl", lines.join("\n") + "\n");
        p.reseal();
        let r = p.report();
        let c = r.checks.iter().find(|c| c.name == "custody events").unwrap();
        assert!(!c.ok && c.detail.contains("bad signature"), "{actor}: {c:?}");
    }
    let p = Pkg::new("full");
    p.write("custody.jsonl", [p.read("custody.jsonl"), b"not json\n".to_vec()].concat());
    p.reseal();
    assert!(!p.report().checks.iter().find(|c| c.name == "custody events").unwrap().ok);
    let p = Pkg::new("full");
    p.write("custody.jsonl", [p.read("custody.jsonl"), vec![0xff, b'\n']].concat());
    p.reseal();
    assert!(p.report().checks.iter().find(|c| c.name == "custody events").unwrap().detail.contains("custody.jsonl is not UTF-8"));
    // A device that never uploaded its custody log (no upload recorded, none held) is not a
    // failure in a full package: its items are noted.
    let p = Pkg::new("full");
    let n_monitor = idx.items.iter().filter(|i| i.device_id == monitor).count();
    p.edit_custody(|ev| {
        ev.retain(|e| !(is(e, &dev) || (e["event"] == "device_custody_received" && e["detail"]["device_id"] == monitor.as_str())));
    });
    p.reseal();
    let r = p.report();
    let c = r.checks.iter().find(|c| c.name == "custody events").unwrap();
    assert!(c.ok && c.detail.contains(&format!("note: {n_monitor} item(s) without a device custody event")), "{c:?}");
    // An item whose `sealed` event is not among its device's events is noted (release: the
    // device log may skip events).
    let p = Pkg::new("release");
    let rel = p.index();
    for it in &rel.items {
        let p = Pkg::new("release");
        let actor = format!("device:{}", it.device_id);
        p.edit_custody(|ev| ev.retain(|e| !(e["actor"] == actor.as_str() && e["event"] == "sealed" && e["clip_id"] == it.clip_id.as_str())));
        p.reseal();
        let r = p.report();
        let c = r.checks.iter().find(|c| c.name == "custody events").unwrap();
        assert!(c.ok && c.detail.contains("note: 1 item(s) without a device custody event"), "{}: {c:?}", it.clip_id);
    }

    // In a release the device logs may have holes (events of other items are left out).
    let p = Pkg::new("release");
    let rel = p.index();
    let rdev = format!("device:{}", rel.devices.iter().find(|d| d.role == "monitor").unwrap().device_id);
    p.edit_custody(|ev| ev.retain(|e| !(e["actor"] == rdev.as_str() && e["seq"] == 1)));
    p.reseal();
    let r = p.report();
    assert!(r.all_ok(), "{:#?}", failures(&r));
    // Items without a device event are noted, not failed.
    let p = Pkg::new("release");
    p.edit_custody(|ev| ev.retain(|e| !e["actor"].as_str().unwrap().starts_with("device:")));
    p.reseal();
    let r = p.report();
    let c = r.checks.iter().find(|c| c.name == "custody events").unwrap();
    assert!(c.ok && c.detail.contains("0 device events from 0 device(s)") && c.detail.contains(&format!("note: {} item(s) without a device custody event", rel.items.len())), "{c:?}");
}

#[test]
fn a_folder_that_cannot_be_read_and_an_empty_report() {
    let r = verify_package(Path::new("/nonexistent/fieldcap/package"));
    assert!(!r.all_ok());
    assert_eq!(r.checks.len(), 1);
    assert_eq!((r.checks[0].name.as_str(), r.checks[0].file.as_str()), ("package folder is readable", "."));
    assert!(!VerifyReport::default().all_ok(), "no checks is not a pass");
    // An empty folder: the index, the key and the sums are named.
    let t = tempfile::tempdir().unwrap();
    let r = verify_package(t.path());
    for f in ["package.json", "server.pub.pem", "SHA256SUMS", "B3SUMS"] {
        assert!(r.checks.iter().any(|c| !c.ok && c.file == f), "{f}: {:#?}", r.checks);
    }
    assert!(!r.checks.iter().any(|c| c.name == "device chain"));
}

/// An exported clip folder (`fieldcap export-clip`), made from the full package's files.
fn clip_folder(p: &Pkg, item: usize, custody: bool) -> (tempfile::TempDir, PathBuf) {
    let idx = p.index();
    let it = &idx.items[item];
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("clip");
    fs::create_dir_all(&d).unwrap();
    for f in list_files(&p.p(&format!("clips/{}", it.clip_id))).unwrap() {
        if !f.starts_with("receipt") {
            fs::copy(p.p(&format!("clips/{}/{f}", it.clip_id)), d.join(&f)).unwrap();
        }
    }
    fs::copy(p.p(&format!("devices/{}.pub.pem", it.device_id)), d.join("device.pub.pem")).unwrap();
    if custody {
        let text = String::from_utf8(p.read("custody.jsonl")).unwrap();
        let own: String = text.lines().filter(|l| l.contains(&format!("\"actor\":\"device:{}\"", it.device_id))).map(|l| format!("{l}\n")).collect();
        fs::write(d.join("custody.jsonl"), own).unwrap();
    }
    let files: Vec<String> = list_files(&d).unwrap();
    let h = hash_files(&d, &files);
    let (mut s, mut b) = (String::new(), String::new());
    for f in &files {
        s.push_str(&format!("{}  {f}\n", h[f].sha256_hex()));
        b.push_str(&format!("{}  {f}\n", h[f].blake3_hex()));
    }
    fs::write(d.join("SHA256SUMS"), s).unwrap();
    fs::write(d.join("B3SUMS"), b).unwrap();
    (t, d)
}

#[test]
fn exported_clip_folders() {
    let p = Pkg::new("full");
    let idx = p.index();
    let v = idx.items.iter().position(|i| i.media.is_some()).unwrap();
    let (_t, d) = clip_folder(&p, v, true);
    let r = verify_clip_dir(&d);
    assert!(r.all_ok(), "{:#?}", r.checks);
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["manifest is well-formed fieldcap.manifest/1", "device key is an Ed25519 SPKI PEM", "device id matches the key", "manifest signature", "media matches the manifest", "SHA256SUMS cover every file", "B3SUMS cover every file", "device custody chain"]);
    let it = &idx.items[v];
    assert_eq!(r.checks[0].detail, format!("clip {} seq {}", it.clip_id, it.seq));
    assert_eq!(r.checks[1].detail, it.device_id);
    assert_eq!(r.checks[2].detail, it.device_id);
    assert_eq!(r.checks[3].detail, "Ed25519 signature valid");
    let pm = it.media.as_ref().unwrap();
    assert_eq!(r.checks[4].detail, format!("{} bytes, SHA-256 and BLAKE3 match", pm.bytes));
    let n = list_files(&d).unwrap().len() - 2;
    assert_eq!(r.checks[5].detail, format!("{n} files match"));
    assert!(r.checks[7].detail.ends_with("events, chain and signatures valid"), "{:?}", r.checks[7]);
    let media = pm.path.rsplit('/').next().unwrap().to_string();
    assert_eq!(check_sums(&d, "B3SUMS", true).unwrap(), format!("{n} files match"));

    // Damage, one at a time: named.
    type Damage = (&'static str, Box<dyn Fn(&Path)>, &'static str, &'static str);
    let damage: Vec<Damage> = vec![
        ("media flipped", Box::new({
            let media = media.clone();
            move |d: &Path| {
                let mut b = fs::read(d.join(&media)).unwrap();
                b[0] ^= 1;
                fs::write(d.join(&media), b).unwrap();
            }
        }), "media matches the manifest", "SHA-256 differs from the manifest"),
        ("media longer", Box::new({
            let media = media.clone();
            move |d: &Path| {
                let mut b = fs::read(d.join(&media)).unwrap();
                b.push(0);
                fs::write(d.join(&media), b).unwrap();
            }
        }), "media matches the manifest", "bytes, the manifest says"),
        ("media gone", Box::new({
            let media = media.clone();
            move |d: &Path| fs::remove_file(d.join(&media)).unwrap()
        }), "media matches the manifest", "cannot be read"),
        ("signature by another key", Box::new(|d: &Path| fs::write(d.join("manifest.sig"), DeviceKey::generate().sign(&fs::read(d.join("manifest.json")).unwrap())).unwrap()), "manifest signature", "signature does not verify"),
        ("no signature", Box::new(|d: &Path| fs::remove_file(d.join("manifest.sig")).unwrap()), "manifest signature", "manifest.sig cannot be read"),
        ("another device's key", Box::new(|d: &Path| fs::write(d.join("device.pub.pem"), DeviceKey::generate().public_pem()).unwrap()), "device id matches the key", "device_id is not derived from device.pub.pem"),
        ("custody event dropped", Box::new(|d: &Path| {
            let t = fs::read_to_string(d.join("custody.jsonl")).unwrap();
            let lines: Vec<&str> = t.lines().collect();
            fs::write(d.join("custody.jsonl"), format!("{}\n{}\n", lines[0], lines[2..].join("\n"))).unwrap();
        }), "device custody chain", ""),
        ("no sealed event", Box::new(|d: &Path| {
            let t = fs::read_to_string(d.join("custody.jsonl")).unwrap();
            let first = t.lines().next().unwrap();
            fs::write(d.join("custody.jsonl"), format!("{first}\n")).unwrap();
        }), "device custody chain", "the custody log has no sealed event for this manifest"),
        ("sums line", Box::new(|d: &Path| {
            let t = fs::read_to_string(d.join("SHA256SUMS")).unwrap();
            fs::write(d.join("SHA256SUMS"), t.replacen("  ", " ", 1)).unwrap();
        }), "SHA256SUMS cover every file", "SHA256SUMS line 1 is malformed"),
        ("sums outside", Box::new(|d: &Path| {
            let t = fs::read_to_string(d.join("B3SUMS")).unwrap();
            fs::write(d.join("B3SUMS"), format!("{t}{}  ../x\n", "0".repeat(64))).unwrap();
        }), "B3SUMS cover every file", "B3SUMS names a path outside the folder: ../x"),
        ("sums absolute", Box::new(|d: &Path| {
            let t = fs::read_to_string(d.join("B3SUMS")).unwrap();
            fs::write(d.join("B3SUMS"), format!("{t}{}  /x\n", "0".repeat(64))).unwrap();
        }), "B3SUMS cover every file", "B3SUMS names a path outside the folder: /x"),
        ("sums missing file", Box::new(|d: &Path| {
            let t = fs::read_to_string(d.join("B3SUMS")).unwrap();
            fs::write(d.join("B3SUMS"), format!("{t}{}  nothing\n", "0".repeat(64))).unwrap();
        }), "B3SUMS cover every file", "nothing is listed in B3SUMS but cannot be read"),
        ("file added", Box::new(|d: &Path| fs::write(d.join("added.txt"), "x").unwrap()), "SHA256SUMS cover every file", "added.txt is in the folder but not listed in SHA256SUMS"),
        ("manifest not canonical", Box::new(|d: &Path| {
            let b = fs::read(d.join("manifest.json")).unwrap();
            fs::write(d.join("manifest.json"), [&b[..], b"\n"].concat()).unwrap();
        }), "manifest is well-formed fieldcap.manifest/1", "not canonical"),
        ("manifest gone", Box::new(|d: &Path| fs::remove_file(d.join("manifest.json")).unwrap()), "manifest is well-formed fieldcap.manifest/1", "manifest.json cannot be read"),
        ("key gone", Box::new(|d: &Path| fs::remove_file(d.join("device.pub.pem")).unwrap()), "device key is an Ed25519 SPKI PEM", "device.pub.pem cannot be read"),
    ];
    for (what, f, check, says) in damage {
        let (_t, d) = clip_folder(&p, v, true);
        f(&d);
        let r = verify_clip_dir(&d);
        assert!(r.checks.iter().any(|c| !c.ok && c.name == check && c.detail.contains(says)), "{what}: {:#?}", r.checks);
    }
    // The device log up to the item's `sealed` event is enough; a `sealed` event naming another
    // manifest is not (even when a later event of the item names the right one).
    let (_t, d) = clip_folder(&p, v, true);
    let t = fs::read_to_string(d.join("custody.jsonl")).unwrap();
    let upto: Vec<&str> = t.lines().take_while(|l| !(l.contains("\"event\":\"sealed\"") && l.contains(&it.clip_id))).collect();
    let sealed_line = t.lines().nth(upto.len()).unwrap();
    fs::write(d.join("custody.jsonl"), format!("{}\n{sealed_line}\n", upto.join("\n"))).unwrap();
    fs::remove_file(d.join("SHA256SUMS")).unwrap();
    fs::remove_file(d.join("B3SUMS")).unwrap();
    let r = verify_clip_dir(&d);
    assert!(r.all_ok(), "{:#?}", r.checks);
    let p2 = Pkg::new("full");
    let clip = it.clip_id.clone();
    p2.edit_custody(|ev| {
        for e in ev.iter_mut().filter(|e| e["event"] == "sealed" && e["clip_id"] == clip.as_str()) {
            e["detail"]["manifest_sha256"] = "0".repeat(64).into();
        }
    });
    let (_t, d) = clip_folder(&p2, v, true);
    let r = verify_clip_dir(&d);
    assert!(r.checks.iter().any(|c| !c.ok && c.name == "device custody chain" && c.detail.contains("no sealed event for this manifest")), "{:#?}", r.checks);

    // Without sums and custody files those checks are not run; an observation has no media check.
    let o = idx.items.iter().position(|i| i.kind == "observation").unwrap();
    let (_t, d) = clip_folder(&p, o, false);
    for f in ["SHA256SUMS", "B3SUMS"] {
        fs::remove_file(d.join(f)).unwrap();
    }
    let r = verify_clip_dir(&d);
    assert!(r.all_ok(), "{:#?}", r.checks);
    assert_eq!(r.checks.len(), 4);
}

#[test]
fn device_chains_of_manifests() {
    let p = Pkg::new("full");
    let idx = p.index();
    let monitor = &idx.devices.iter().find(|d| d.role == "monitor").unwrap().device_id;
    let mut items: Vec<_> = idx.items.iter().filter(|i| &i.device_id == monitor).collect();
    items.sort_by_key(|i| i.seq);
    let ms: Vec<Vec<u8>> = items.iter().map(|i| p.read(&format!("clips/{}/manifest.json", i.clip_id))).collect();
    assert_eq!(ms.len(), 4);
    verify_device_chain(&ms).unwrap();
    verify_chain_run(&ms[1..]).unwrap();
    verify_device_chain(&[]).unwrap();
    assert!(verify_device_chain(&ms[1..]).unwrap_err().to_string().contains("the chain starts at seq 2, not 1"));
    let e = verify_chain_run(&[ms[0].clone(), ms[2].clone()]).unwrap_err().to_string();
    assert!(e.contains("seq 3 follows seq 1"), "{e}");
    let e = verify_chain_run(&[ms[1].clone(), ms[0].clone()]).unwrap_err().to_string();
    assert!(e.contains("seq 1 follows seq 2"), "{e}");
    let other = idx.items.iter().find(|i| &i.device_id != monitor).unwrap();
    let e = verify_chain_run(&[ms[0].clone(), p.read(&format!("clips/{}/manifest.json", other.clip_id))]).unwrap_err().to_string();
    assert!(e.contains("manifest 2: another device's item in the chain"), "{e}");
    let e = verify_chain_run(&[b"{}".to_vec()]).unwrap_err().to_string();
    assert!(e.contains("manifest 1:"), "{e}");
    // A seq 2 whose prev is not seq 1's hash: re-sign a changed seq 1 (same seq, other note).
    let mut m1: Value = serde_json::from_slice(&ms[0]).unwrap();
    m1["note"] = "changed".into();
    let e = verify_chain_run(&[fieldcap_evidence::canonical::to_vec(&m1), ms[1].clone()]).unwrap_err().to_string();
    assert!(e.contains("seq 2: prev does not match the previous manifest"), "{e}");
    let mut m1: Value = serde_json::from_slice(&ms[0]).unwrap();
    m1["prev"] = "0".repeat(64).into();
    assert!(verify_chain_run(&[fieldcap_evidence::canonical::to_vec(&m1)]).is_err());
}

/// The cross-checks that need no pinned key: each device's own custody events (signed by the
/// device, re-signed here with the fixture's device keys) against the server key and receipts
/// of the package, field by field; the export's custody record against the index.
#[test]
fn device_custody_and_the_export_record_are_cross_checked() {
    const DEVICE: &str = "device custody agrees with the package";
    const EXPORT: &str = "exported items match the index";
    let idx = Pkg::new("full").index();
    let key_id = idx.server_key_id.clone();
    let monitor = idx.devices.iter().find(|d| d.role == "monitor").unwrap().device_id.clone();
    let dev = format!("device:{monitor}");
    let file = format!("custody.jsonl (device {monitor})");
    let text = String::from_utf8(Pkg::new("full").read("custody.jsonl")).unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone()).collect();
    let first = |name: &str| events.iter().find(|e| e["actor"] == dev.as_str() && e["event"] == name && idx.items.iter().any(|i| e["clip_id"] == i.clip_id.as_str())).unwrap().clone();
    let (committed, receipted) = (first("manifest_committed"), first("receipted"));
    let (cseq, cclip) = (committed["seq"].as_u64().unwrap(), committed["clip_id"].as_str().unwrap().to_string());
    let (rseq, rclip) = (receipted["seq"].as_u64().unwrap(), receipted["clip_id"].as_str().unwrap().to_string());
    let receipt: fieldcap_evidence::protocol::Receipt = serde_json::from_slice(&Pkg::new("full").read(&format!("clips/{rclip}/receipt.json"))).unwrap();
    let rsha = fieldcap_evidence::hashing::sha256_hex(&Pkg::new("full").read(&format!("clips/{rclip}/receipt.json")));
    let zeros = "0".repeat(64);
    let other = "ab".repeat(16);
    let manifest = idx.items.iter().find(|i| i.clip_id == cclip).unwrap().original_manifest_sha256.clone();
    let rf = format!("clips/{rclip}/receipt.json");
    // (event seq, detail field, new value, what the check says)
    let cases: Vec<(u64, &str, Value, String)> = vec![
        (4, "server_key_id", other.clone().into(), format!("the device enrolled with or committed manifests to server key {other} (event 4 'enrolled'), but this package is signed by server key {key_id}")),
        (cseq, "server_key_id", other.clone().into(), format!("server key {other} (event {cseq} 'manifest_committed' of clip {cclip}), but this package is signed by server key {key_id}")),
        (cseq, "manifest_sha256", zeros.clone().into(), format!("event {cseq} 'manifest_committed' of clip {cclip} committed manifest SHA-256 {zeros}, the package's manifest is {manifest}")),
        (rseq, "receipt_sha256", zeros.clone().into(), format!("event {rseq} 'receipted' of clip {rclip}: the device recorded receipt_sha256 {zeros}, {rf} has SHA-256 {rsha}")),
        (rseq, "received_at", "2020-01-01T00:00:00.000Z".into(), format!("the device recorded received_at 2020-01-01T00:00:00.000Z, {rf} has received_at {}", receipt.received_at)),
        (rseq, "log_index", (receipt.log.index + 1).into(), format!("the device recorded log_index {}, {rf} has log index {}", receipt.log.index + 1, receipt.log.index)),
        (rseq, "tree_size", (receipt.log.tree_size + 1).into(), format!("the device recorded tree_size {}, {rf} has tree size {}", receipt.log.tree_size + 1, receipt.log.tree_size)),
    ];
    for (seq, field, value, says) in cases {
        let p = Pkg::new("full");
        p.edit_custody(|ev| {
            let e = ev.iter_mut().find(|e| e["actor"] == dev.as_str() && e["seq"] == seq).unwrap();
            e["detail"][field] = value.clone();
        });
        p.reseal();
        let r = fails(&p, &file, &says);
        assert!(r.checks.iter().find(|c| c.file == file).unwrap().detail.starts_with(&format!("device {monitor}: ")));
        only(&r, &[DEVICE]);
    }

    // The export record: the export event's count and hash, a per-item event missing or naming
    // another item. (A server-key holder could re-sign these to match; a re-signing with another
    // key is what the device events above catch.)
    let pid = idx.package_id.clone();
    let ids: Vec<&str> = idx.items.iter().map(|i| i.clip_id.as_str()).collect();
    let sha = fieldcap_evidence::hashing::sha256_hex(ids.join("\n").as_bytes());
    let n = ids.len();
    let seq = idx.export_custody_seq;
    let clip0 = idx.items[0].clip_id.clone();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, String)> = vec![
        ("count", Box::new(|e: &mut Value| if e["clip_id"].is_null() { e["detail"]["items"] = 9.into() }), format!("the export event (server event {seq}) names 9 items (items_sha256 {sha}), package.json lists {n}")),
        ("hash", Box::new(|e: &mut Value| if e["clip_id"].is_null() { e["detail"]["items_sha256"] = "0".repeat(64).into() }), format!("names {n} items (items_sha256 {}), package.json lists {n} (SHA-256 {sha})", "0".repeat(64))),
        ("per-item event gone", Box::new({
            let c = clip0.clone();
            move |e: &mut Value| if e["clip_id"] == c.as_str() { e["event"] = "noted".into() }
        }), format!("item {clip0} is in package.json but no server 'exported' event of this package names it")),
        ("per-item event of another item", Box::new({
            let c = clip0.clone();
            let o = other.clone();
            move |e: &mut Value| if e["clip_id"] == c.as_str() { e["clip_id"] = o.clone().into() }
        }), format!("item {other} is missing: the server recorded exporting it in this package")),
    ];
    for (what, edit, says) in cases {
        let p = Pkg::new("full");
        p.edit_custody(|ev| {
            for e in ev.iter_mut().filter(|e| e["event"] == "exported" && e["detail"]["package_id"] == pid.as_str()) {
                edit(e);
            }
        });
        p.reseal();
        let r = p.report();
        let c = r.checks.iter().find(|c| c.name == EXPORT).unwrap();
        assert!(!c.ok && c.file == "package.json" && c.detail.contains(&says), "{what}: {c:?}");
        only(&r, &[EXPORT]);
    }

    // An item taken out of the package and the index re-signed (by a holder of the server key
    // who left custody alone): the export record names it, nothing else fails. Its server
    // events removed too: the export event's items_sha256 still names it.
    let gone = idx.items.iter().find(|i| i.device_id == monitor && i.clip_id != clip0).unwrap().clip_id.clone();
    for custody_too in [false, true] {
        let p = Pkg::new("full");
        fs::remove_dir_all(p.p(&format!("clips/{gone}"))).unwrap();
        fs::remove_file(p.p(&format!("log/inclusion/{gone}.json"))).unwrap();
        if custody_too {
            p.edit_custody(|ev| ev.retain(|e| !(e["actor"].as_str().unwrap().starts_with("server:") && e["clip_id"] == gone.as_str())));
        }
        let mut i = p.index();
        i.items.retain(|x| x.clip_id != gone);
        i.files.retain(|f| !f.path.contains(&gone));
        p.sign_index(&i);
        p.reseal();
        let says = if custody_too {
            format!("item {gone} is missing: the export event (server event {seq}) lists {n} items whose SHA-256 is that of package.json's list with {gone} added")
        } else {
            format!("item {gone} is missing: the server recorded exporting it in this package")
        };
        let r = fails(&p, "package.json", &says);
        only(&r, &[EXPORT]);
    }

    // No device custody at all: not a failure, but the report says no cross-check was possible.
    let p = Pkg::new("full");
    p.edit_custody(|ev| ev.retain(|e| !(e["actor"].as_str().unwrap().starts_with("device:") || e["event"] == "device_custody_received")));
    p.reseal();
    let r = p.report();
    assert!(r.all_ok(), "{:#?}", failures(&r));
    let c = r.checks.iter().find(|c| c.name == "device custody cross-check").unwrap();
    assert!(c.detail.starts_with("not possible: this package holds no device custody events"), "{c:?}");
    // One device without its log: a note on its line, the other device still checked.
    let p = Pkg::new("full");
    p.edit_custody(|ev| ev.retain(|e| !(e["actor"] == dev.as_str() || (e["event"] == "device_custody_received" && e["detail"]["device_id"] == monitor.as_str()))));
    p.reseal();
    let r = p.report();
    assert!(r.all_ok(), "{:#?}", failures(&r));
    assert!(detail(&r, DEVICE, &file).starts_with("note: the package holds none of this device's own custody events"));
}

#[test]
fn the_pinned_server_key() {
    use fieldcap_evidence::identity::key_fingerprint;
    use fieldcap_package::package::{verify_package_with, TrustAnchors};
    use fieldcap_package::{ServerKeyPin, ServerKeyStatus};
    let with = |dir: &Path, pin: ServerKeyPin| verify_package_with(dir, &TrustAnchors { server_key: Some(pin), ..Default::default() });
    let server = keys().server.verifying_key();
    let (fp, id) = (key_fingerprint(&server), keys().server.device_id().to_string());
    let other = DeviceKey::generate();
    let (ofp, oid) = (key_fingerprint(&other.verifying_key()), other.device_id().to_string());
    const PIN: &str = "server key is the pinned key";

    // Unpinned: no pin check, every check holds, the status says so with the fingerprint.
    let p = Pkg::new("full");
    let r = p.report();
    assert!(r.all_ok(), "{:#?}", failures(&r));
    assert!(!r.checks.iter().any(|c| c.name == PIN));
    assert_eq!(r.server_key, Some(ServerKeyStatus { fingerprint: Some(fp.clone()), key_id: id.clone(), pinned: false, pin: None }));

    // The real key, as the key, its fingerprint or its key id: holds, right after the index signature.
    for pin in [ServerKeyPin::Key(server), ServerKeyPin::Fingerprint(fp.clone()), ServerKeyPin::KeyId(id.clone())] {
        let r = with(&p.dir, pin.clone());
        assert!(r.all_ok(), "{pin:?}: {:#?}", failures(&r));
        assert_eq!(detail(&r, PIN, "server.pub.pem"), format!("fingerprint {fp} (key id {id}), the key given as the pin"));
        assert_eq!(r.checks.iter().position(|c| c.name == PIN), r.checks.iter().position(|c| c.name == "index signature").map(|i| i + 1));
        assert_eq!(r.server_key.as_ref().map(|s| (s.pinned, s.pin.clone())), Some((true, Some(pin.value()))));
    }

    // Another key: only the pin check fails, naming both keys.
    for (pin, named) in [(ServerKeyPin::Key(other.verifying_key()), format!("fingerprint {ofp} (key id {oid})")), (ServerKeyPin::Fingerprint(ofp.clone()), format!("fingerprint {ofp}")), (ServerKeyPin::KeyId(oid.clone()), format!("key id {oid}"))] {
        let r = with(&p.dir, pin);
        assert!(!r.all_ok());
        only(&r, &[PIN]);
        assert_eq!(detail(&r, PIN, "server.pub.pem"), format!("the package is signed by another server key: fingerprint {fp} (key id {id}); the pinned key is {named}"));
        assert!(!r.server_key.as_ref().unwrap().pinned);
    }

    // The index re-signed by another key that also replaces server.pub.pem: with the real key
    // pinned, the pin check names the forger's key.
    let mut idx = p.index();
    idx.server_key_id = oid.clone();
    p.write("server.pub.pem", other.public_pem());
    let b = fieldcap_evidence::canonical::to_vec_of(&idx).unwrap();
    p.write("package.json", &b);
    p.write("package.json.sig", other.sign(&b));
    p.recompute_sums();
    let r = with(&p.dir, ServerKeyPin::Fingerprint(fp.clone()));
    assert!(detail(&r, PIN, "server.pub.pem").contains(&format!("fingerprint {ofp} (key id {oid}); the pinned key is fingerprint {fp}")), "{:#?}", failures(&r));
    assert_eq!(r.server_key.as_ref().unwrap().fingerprint, Some(ofp.clone()));

    // An exported clip with its receipt: checked completely against a pinned key; a fingerprint
    // or key id cannot check the signature and says to pin the key itself.
    let p = Pkg::new("full");
    let v = p.index().items.iter().position(|i| i.media.is_some()).unwrap();
    let (_t, d) = clip_folder(&p, v, true);
    let c = &p.index().items[v].clip_id.clone();
    for f in ["receipt.json", "receipt.sig"] {
        fs::copy(p.p(&format!("clips/{c}/{f}")), d.join(f)).unwrap();
    }
    for s in ["SHA256SUMS", "B3SUMS"] {
        fs::remove_file(d.join(s)).unwrap();
    }
    const RECEIPT: &str = "receipt signed by the pinned server key";
    let r = verify_clip_dir(&d);
    assert!(r.all_ok() && !r.checks.iter().any(|c| c.name == RECEIPT));
    assert_eq!(r.server_key, Some(ServerKeyStatus { fingerprint: None, key_id: id.clone(), pinned: false, pin: None }));
    let r = verify_clip_dir_with(&d, Some(&ServerKeyPin::Key(server)));
    assert!(r.all_ok(), "{:#?}", failures(&r));
    assert!(detail(&r, RECEIPT, "receipt.json").ends_with(&format!("signed by the pinned key, fingerprint {fp} (key id {id})")));
    assert_eq!(r.server_key, Some(ServerKeyStatus { fingerprint: Some(fp.clone()), key_id: id.clone(), pinned: true, pin: Some(fp.clone()) }));
    let r = verify_clip_dir_with(&d, Some(&ServerKeyPin::Key(other.verifying_key())));
    only(&r, &[RECEIPT]);
    let det = detail(&r, RECEIPT, "receipt.json");
    assert!(!r.all_ok() && det.contains(&format!("names server key id {id}")) && det.contains(&ofp), "{det}");
    for pin in [ServerKeyPin::Fingerprint(fp.clone()), ServerKeyPin::KeyId(id.clone())] {
        let r = verify_clip_dir_with(&d, Some(&pin));
        only(&r, &[RECEIPT]);
        assert!(!r.all_ok() && detail(&r, RECEIPT, "receipt.json").contains("give --server-key the server's PEM public key file"));
    }
    let r = verify_clip_dir_with(&d, Some(&ServerKeyPin::KeyId(oid.clone())));
    assert_eq!(detail(&r, RECEIPT, "receipt.json"), format!("integrity check failed: the receipt names server key id {id}, the pinned key id is {oid}"));
    // A receipt for another item, signed by the real key, fails against the pin too.
    let w = p.index().items.iter().position(|i| i.clip_id != *c).unwrap();
    let c2 = p.index().items[w].clip_id.clone();
    for f in ["receipt.json", "receipt.sig"] {
        fs::copy(p.p(&format!("clips/{c2}/{f}")), d.join(f)).unwrap();
    }
    let r = verify_clip_dir_with(&d, Some(&ServerKeyPin::Key(server)));
    only(&r, &[RECEIPT]);
    assert!(detail(&r, RECEIPT, "receipt.json").contains("the receipt names clip_id"), "{:#?}", failures(&r));
}
