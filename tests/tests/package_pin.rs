//! The pinned server key, on a real package and an exported clip from a real server and two
//! devices: `fieldcap verify --server-key KEY` (a fingerprint, a key id or a PEM file) passes
//! the genuine package and fails one signed by another key naming both keys; without a pin the
//! report says, on its own line, that the key is NOT PINNED and prints its fingerprint (text and
//! `--json`), exit 0. And `VERIFY.txt`, run with the stock tools: it passes only with the
//! expected fingerprint, does not pass without one, fails on another, names a damaged sums file,
//! and ends non-zero after any FAILED line — also with a `set -e` or `set -f` line added and when
//! pasted into a shell (the old script relied on `set -e`).

#![allow(clippy::unwrap_used)]

use fieldcap_evidence::identity::{key_fingerprint, DeviceKey};
use fieldcap_server::package::Profile;
use fieldcap_testkit::files::copy_dir;
use fieldcap_testkit::package::Fixture;
use fieldcap_testkit::tools::{stock_tools, stock_verify, stock_verify_script, Cli};
use serde_json::Value;
use std::fs;
use std::path::Path;

/// `fieldcap verify PATH ARGS…`: (exit code, stdout, stderr).
fn verify(path: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Cli::built().command().arg("verify").arg(path).args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
}

fn verify_json(path: &Path, args: &[&str]) -> (i32, Value) {
    let (code, out, err) = verify(path, &[&["--json"][..], args].concat());
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}")))
}

#[test]
fn fieldcap_verify_pins_the_server_key_of_packages_and_clips() {
    let fx = Fixture::new();
    let pkg = fx.package("pkg", Profile::Full, None).path;
    let server = fieldcap_server::keys::load(&fx.data()).unwrap();
    let fp = fx.server.fingerprint();
    let id = server.device_id().to_string();
    assert_eq!(fp, key_fingerprint(&server.verifying_key()));
    // The pin comes from outside the package: the council's key written to the recipient's folder.
    let pem = fx.work.path().join("council-server.pub.pem");
    fs::write(&pem, server.public_pem()).unwrap();
    let other = DeviceKey::generate();
    let other_fp = key_fingerprint(&other.verifying_key());
    let other_pem = fx.work.path().join("other.pub.pem");
    fs::write(&other_pem, other.public_pem()).unwrap();

    // Unpinned: every check holds, exit 0, and the report says NOT PINNED on its own line with
    // the package's fingerprint.
    let (code, out, _) = verify(&pkg, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.starts_with("SERVER KEY NOT PINNED") && l.contains("out of band")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("server key: ") && l.contains(&fp) && l.contains(&id)), "{out}");
    assert!(out.lines().last().unwrap().contains("NOT PINNED"), "{out}");
    let (code, v) = verify_json(&pkg, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["ok"], true);
    assert_eq!(v["server_key"], serde_json::json!({"fingerprint": fp, "key_id": id, "pinned": false, "pin": null}));

    // Pinned to the real key, as a fingerprint (also upper case with colons), a key id or a PEM file.
    let colons = fp.to_uppercase().as_bytes().chunks(2).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect::<Vec<_>>().join(":");
    for pin in [fp.as_str(), &colons, &id, pem.to_str().unwrap()] {
        let (code, out, err) = verify(&pkg, &["--server-key", pin]);
        assert_eq!(code, 0, "{pin}: {out}{err}");
        assert!(out.lines().any(|l| l.starts_with("ok    server key is the pinned key  [server.pub.pem]") && l.contains(&fp)), "{out}");
        assert!(out.lines().any(|l| l.starts_with("server key PINNED")), "{out}");
        assert!(!out.contains("NOT PINNED"), "{out}");
        assert_eq!(out.lines().last().unwrap(), "VERIFIED: every check holds");
    }
    let (_, v) = verify_json(&pkg, &["--server-key", &fp]);
    assert_eq!(v["server_key"], serde_json::json!({"fingerprint": fp, "key_id": id, "pinned": true, "pin": fp}));

    // Pinned to another key: fails on the key, naming both.
    for (pin, named) in [(other_fp.as_str(), other_fp.as_str()), (other.device_id(), other.device_id()), (other_pem.to_str().unwrap(), other_fp.as_str())] {
        let (code, out, _) = verify(&pkg, &["--server-key", pin]);
        assert_eq!(code, 1, "{out}");
        let fail = out.lines().find(|l| l.starts_with("FAIL  server key is the pinned key  [server.pub.pem]")).unwrap_or_else(|| panic!("{out}"));
        assert!(fail.contains(&fp) && fail.contains(named), "{fail}");
        assert!(out.lines().any(|l| l.starts_with("server key IS NOT THE PINNED KEY")), "{out}");
        assert_eq!(out.lines().last().unwrap(), "NOT VERIFIED: see FAIL lines");
        let (code, v) = verify_json(&pkg, &["--server-key", pin]);
        assert_eq!(code, 1);
        assert_eq!(v["ok"], false);
        assert_eq!(v["server_key"]["pinned"], false);
        assert_eq!(v["server_key"]["pin"], named);
    }

    // A bad value is refused, naming the flag.
    let not_pem = fx.work.path().join("notes.txt");
    fs::write(&not_pem, "not a key").unwrap();
    for bad in ["nonsense", &fp[..40], not_pem.to_str().unwrap()] {
        let (code, out, err) = verify(&pkg, &["--server-key", bad]);
        assert_eq!(code, 2, "{bad}: {out}");
        assert!(err.starts_with("error: --server-key: "), "{bad}: {err}");
    }

    // An exported clip carries the device key and the server's receipt, not the server key.
    let clip = fx.work.path().join("clip");
    fx.devices[0].store.export_clip(&fx.clips[0], &clip, &mut |_, _| {}).unwrap();
    assert!(clip.join("receipt.json").exists());
    let (code, out, _) = verify(&clip, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.starts_with("SERVER KEY NOT PINNED: the receipt (receipt.json) is not checked")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("server key: key id ") && l.contains(&id)), "{out}");
    // The real key as a PEM file checks the receipt completely.
    let (code, out, _) = verify(&clip, &["--server-key", pem.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.starts_with("ok    receipt signed by the pinned server key  [receipt.json]") && l.contains(&fp)), "{out}");
    let (_, v) = verify_json(&clip, &["--server-key", pem.to_str().unwrap()]);
    assert_eq!(v["server_key"], serde_json::json!({"fingerprint": fp, "key_id": id, "pinned": true, "pin": fp}));
    // Another key fails naming the receipt's key id and the pinned key.
    let (code, out, _) = verify(&clip, &["--server-key", other_pem.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let fail = out.lines().find(|l| l.starts_with("FAIL  receipt signed by the pinned server key  [receipt.json]")).unwrap_or_else(|| panic!("{out}"));
    assert!(fail.contains(&id) && fail.contains(&other_fp), "{fail}");
    // A fingerprint cannot check a signature: the clip is not passed on it, and the line says why.
    let (code, out, _) = verify(&clip, &["--server-key", &fp]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().any(|l| l.starts_with("FAIL  receipt signed by the pinned server key") && l.contains("PEM public key file")), "{out}");
    // A changed receipt fails against the pinned key.
    let bad = fx.work.path().join("clip-bad");
    copy_dir(&clip, &bad);
    let r = fs::read_to_string(bad.join("receipt.json")).unwrap();
    let changed = r.replacen("\"received_at\":\"20", "\"received_at\":\"19", 1);
    assert_ne!(r, changed);
    fs::write(bad.join("receipt.json"), changed).unwrap();
    let (code, out, _) = verify(&bad, &["--server-key", pem.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().any(|l| l.starts_with("FAIL  receipt signed by the pinned server key")), "{out}");
}

#[test]
fn verify_txt_needs_the_expected_fingerprint_and_ends_non_zero_after_any_failed_line() {
    if !stock_tools("the VERIFY.txt pin tests", &["openssl", "sha256sum", "b3sum"]) {
        return;
    }
    let fx = Fixture::new();
    let fp = fx.server.fingerprint();
    for profile in [Profile::Full, Profile::Release] {
        let pkg = fx.package(profile.as_str(), profile, None).path;
        let txt = fs::read_to_string(pkg.join("VERIFY.txt")).unwrap();
        // The fingerprint is shown, with where to get the real one; no `set -e` to rely on.
        assert!(txt.contains(&format!("#   fingerprint {fp}")) && txt.contains("OUT OF BAND"), "{txt}");
        assert!(!txt.lines().any(|l| l.trim_start().starts_with("set ")), "{txt}");

        // The expected fingerprint (or the key id) passes.
        let (ok, out) = stock_verify(&pkg, &fp);
        assert!(ok && out.lines().last().unwrap().starts_with("ALL STOCK-TOOL CHECKS PASSED") && out.contains(&fp), "{out}");
        assert!(!out.contains("FAILED"), "{out}");
        let id = fieldcap_server::keys::load(&fx.data()).unwrap().device_id().to_string();
        assert!(stock_verify(&pkg, &id).0);

        // No argument: every check runs and holds, but it does not pass, and says how to pin.
        let (ok, out) = stock_verify(&pkg, "");
        assert!(!ok, "{out}");
        assert!(!out.contains("ALL STOCK-TOOL CHECKS PASSED"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("NOT PINNED:") && l.contains("sh VERIFY.txt FINGERPRINT")), "{out}");
        assert!(out.contains(&fp), "{out}");
        assert!(out.lines().last().unwrap().starts_with("NOT PASSED"), "{out}");

        // Another key's fingerprint fails naming both.
        let other = key_fingerprint(&DeviceKey::generate().verifying_key());
        let (ok, out) = stock_verify(&pkg, &other);
        assert!(!ok, "{out}");
        assert!(out.lines().any(|l| l.starts_with("FAILED: server.pub.pem is not the expected server key") && l.contains(&fp) && l.contains(&other)), "{out}");
        let (ok, out) = stock_verify(&pkg, "not-a-fingerprint");
        assert!(!ok && out.contains("FAILED: the argument is not a server key fingerprint"), "{out}");
    }

    let clean = fx.work.path().join("full");
    let files = fieldcap_package::clip::list_files(&clean).unwrap();
    let media = files.iter().find(|f| f.ends_with("media.mp4")).unwrap().clone();
    let copy = |name: &str| {
        let d = fx.work.path().join(name);
        copy_dir(&clean, &d);
        d
    };

    // A damaged sums file is named, also when every file is intact.
    let d = copy("sums-malformed");
    let s = fs::read_to_string(d.join("SHA256SUMS")).unwrap();
    let mut lines: Vec<String> = s.lines().map(String::from).collect();
    lines[2] = lines[2].replacen("  ", " ", 1);
    fs::write(d.join("SHA256SUMS"), lines.join("\n") + "\n").unwrap();
    let (ok, out) = stock_verify(&d, &fp);
    assert!(!ok, "{out}");
    assert!(out.contains("FAILED: SHA256SUMS is damaged: line 3 is not"), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("FAILED")).count(), 2, "line 3 malformed, and its file not listed: {out}");
    let d = copy("sums-digest");
    let b = fs::read_to_string(d.join("B3SUMS")).unwrap();
    let line = b.lines().find(|l| l.ends_with(&format!("  {media}"))).unwrap();
    let changed = format!("{}{}", if line.starts_with('0') { "1" } else { "0" }, &line[1..]);
    fs::write(d.join("B3SUMS"), b.replace(line, &changed)).unwrap();
    let (ok, out) = stock_verify(&d, &fp);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with("FAILED: B3SUMS line") && l.contains(&media) && l.contains("does not agree with the signed index")), "{out}");
    assert!(!out.lines().any(|l| l.starts_with(&format!("FAILED: {media}"))), "the media itself is intact: {out}");

    // A changed media file with both sums files recomputed: named, not passed.
    let d = copy("media");
    let mut m = fs::read(d.join(&media)).unwrap();
    m[1000] ^= 0x01;
    fs::write(d.join(&media), m).unwrap();
    fieldcap_testkit::package::recompute_sums(&d);
    let (ok, out) = stock_verify(&d, &fp);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with(&format!("FAILED: {media}: its SHA-256 differs from the signed index"))), "{out}");
    let failed = out.lines().filter(|l| l.starts_with("FAILED")).count();
    assert!(out.lines().last().unwrap() == format!("NOT PASSED: {failed} check(s) FAILED (the FAILED lines above name them)"), "{out}");

    // The same package with the script edited as the old one was attacked: a `set -e` line
    // changed to `set -f` (here: each added after the header), and pasted into a shell. The
    // FAILED lines still end in NOT PASSED and a non-zero exit (stock_verify_script asserts it
    // for every run).
    let script = fs::read_to_string(d.join("VERIFY.txt")).unwrap();
    let (head, body) = script.split_once("\nfailures=0\n").unwrap();
    let edited = d.parent().unwrap().join("EDITED.txt");
    for set in ["set -e", "set -f", "set +e"] {
        fs::write(&edited, format!("{head}\n{set}\nfailures=0\n{body}")).unwrap();
        let (ok, out) = stock_verify_script(&d, edited.to_str().unwrap(), &fp);
        assert!(!ok && out.contains("FAILED") && !out.contains("ALL STOCK-TOOL CHECKS PASSED"), "{set}: {out}");
        assert!(out.lines().last().unwrap().starts_with("NOT PASSED: "), "{set}: {out}");
    }
    // A script that stops before its verdict, after a FAILED line (an `exit 0`, or the rest of
    // it swallowed by an unterminated here-document, as one changed byte can do): not passed.
    let (before, after) = script.split_once("\n# 4. Device certificates").unwrap();
    for cut in ["exit 0", "cat >/dev/null <<'UNTERMINATED'"] {
        fs::write(&edited, format!("{before}\n{cut}\n# 4. Device certificates{after}")).unwrap();
        let (ok, out) = stock_verify_script(&d, edited.to_str().unwrap(), &fp);
        assert!(!ok && out.contains("FAILED"), "{cut}: {out}");
        let n = out.lines().filter(|l| l.starts_with("FAILED")).count();
        assert!(out.lines().last().unwrap().starts_with(&format!("NOT PASSED: the script ended before its verdict ({n} check(s) FAILED so far)")), "{cut}: {out}");
        assert!(!out.contains("item "), "the script stopped where it was cut: {out}");
    }
    // The package's own VERIFY.txt damaged: it says so itself, right after the index signature.
    let v = copy("verify-txt");
    fs::write(v.join("VERIFY.txt"), script.replacen("item ", "itam ", 1)).unwrap();
    let (ok, out) = stock_verify(&v, &fp);
    assert!(!ok && out.contains("FAILED: VERIFY.txt is not the script the signed index lists"), "{out}");
    let pasted = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("set -- {fp}\n{script}"))
        .current_dir(&d)
        .env("PATH", format!("{}/.cargo/bin:{}", std::env::var("HOME").unwrap_or_default(), std::env::var("PATH").unwrap_or_default()))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&pasted.stdout);
    assert!(!pasted.status.success() && out.contains("FAILED") && out.lines().last().unwrap().starts_with("NOT PASSED"), "{out}");

    // A missing file: named, and nothing after it is skipped (the verdict still counts it).
    let d = copy("missing");
    fs::remove_file(d.join(&media)).unwrap();
    let (ok, out) = stock_verify(&d, &fp);
    assert!(!ok && out.contains(&format!("FAILED: {media} is in the signed index but missing")), "{out}");
    assert!(out.contains("agrees with the signed index") || out.contains("FAILED: SHA256SUMS"), "the later steps ran: {out}");
}
