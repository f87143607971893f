//! capture → export-clip → verify, checked with the stock tools a court expert would use:
//! openssl (Ed25519 over SPKI PEM, -rawin), sha256sum and b3sum.

#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::fs;

#[test]
fn exported_clip_verifies_with_openssl_sha256sum_and_b3sum() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    ok(&home, &["init", "--role", "police", "--org", "Port Police"]);
    let src = t.path().join("clip.mp4");
    fs::write(&src, bytes(3 * 1024 * 1024 + 123, 1)).unwrap();
    let gpx = t.path().join("walk.gpx");
    fs::write(&gpx, r#"<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>
      <trkpt lat="33.7361" lon="-118.2922"><ele>10</ele><time>2025-06-07T18:00:00Z</time><hdop>1.0</hdop></trkpt>
      <trkpt lat="33.7362" lon="-118.2921"><time>2025-06-07T18:00:05Z</time></trkpt></trkseg></trk></gpx>"#).unwrap();
    let out = ok(&home, &["capture", src.to_str().unwrap(), "--track", gpx.to_str().unwrap(), "--started-at", "2025-06-07T18:00:00Z",
        "--ended-at", "2025-06-07T18:01:00Z", "--tag", "use_of_force", "--note", "test", "--json"]);
    let sealed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let clip_id = sealed["clip_id"].as_str().unwrap().to_string();
    assert!(!src.exists(), "the source is moved into the evidence store");

    let exp = t.path().join("export");
    ok(&home, &["export-clip", &clip_id, "--out", exp.to_str().unwrap()]);

    let (v, msg) = tool(&exp, "openssl", &["pkeyutl", "-verify", "-pubin", "-inkey", "device.pub.pem", "-rawin", "-in", "manifest.json", "-sigfile", "manifest.sig"]);
    assert!(v, "openssl verify: {msg}");
    assert!(msg.contains("Signature Verified Successfully"), "{msg}");
    let (v, msg) = tool(&exp, "sha256sum", &["--check", "SHA256SUMS"]);
    assert!(v, "sha256sum: {msg}");
    let (v, msg) = tool(&exp, "b3sum", &["--check", "B3SUMS"]);
    assert!(v, "b3sum: {msg}");
    // The media digests in the signed manifest are the ones the stock tools compute.
    let (_, sha) = tool(&exp, "sha256sum", &["media.mp4"]);
    let (_, b3) = tool(&exp, "b3sum", &["media.mp4"]);
    let manifest: serde_json::Value = serde_json::from_slice(&fs::read(exp.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["media"]["sha256"].as_str().unwrap(), &sha[..64]);
    assert_eq!(manifest["media"]["blake3"].as_str().unwrap(), &b3[..64]);
    assert_eq!(manifest["track"][0]["accuracy_m"], 5.0);
    assert_eq!(manifest["operator"]["role"], "police");

    let o = fieldcap(&home, &["verify", exp.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // One flipped byte of the media: our verifier and the stock tools both fail.
    let media = exp.join("media.mp4");
    let mut data = fs::read(&media).unwrap();
    data[1000] ^= 0x01;
    fs::write(&media, data).unwrap();
    let o = fieldcap(&home, &["verify", exp.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL  media matches the manifest  [media.mp4]"));
    assert!(!tool(&exp, "sha256sum", &["--check", "SHA256SUMS"]).0);
    assert!(!tool(&exp, "b3sum", &["--check", "B3SUMS"]).0);

    // A flipped byte of the manifest: openssl refuses the signature.
    let m = exp.join("manifest.json");
    let mut data = fs::read(&m).unwrap();
    let i = data.len() / 2;
    data[i] ^= 0x20;
    fs::write(&m, data).unwrap();
    let (v, _) = tool(&exp, "openssl", &["pkeyutl", "-verify", "-pubin", "-inkey", "device.pub.pem", "-rawin", "-in", "manifest.json", "-sigfile", "manifest.sig"]);
    assert!(!v, "openssl must refuse a changed manifest");

    // Custody records the seal and the export.
    let c = ok(&home, &["custody", &clip_id]);
    assert!(c.contains("sealed") && c.contains("exported"), "{c}");
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    ok(&home, &["init"]);
    let empty = t.path().join("empty.mp4");
    fs::write(&empty, b"").unwrap();
    let dir = t.path().join("folder.mp4");
    fs::create_dir(&dir).unwrap();
    let good = t.path().join("good.mp4");
    fs::write(&good, bytes(4096, 2)).unwrap();
    let badext = t.path().join("notes.xyz");
    fs::write(&badext, b"abc").unwrap();
    let badgpx = t.path().join("bad.gpx");
    fs::write(&badgpx, r#"<gpx><trk><trkseg><trkpt lat="91" lon="0"><time>2025-06-07T18:00:00Z</time></trkpt></trkseg></trk></gpx>"#).unwrap();
    let g = good.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["capture", "/nonexistent/clip.mp4"], "does not exist"),
        (vec!["capture", empty.to_str().unwrap()], "is empty"),
        (vec!["capture", dir.to_str().unwrap()], "is a directory"),
        (vec!["capture", badext.to_str().unwrap()], "media type"),
        (vec!["capture", g, "--track", badgpx.to_str().unwrap()], "latitude"),
        (vec!["capture", g, "--started-at", "2025-06-07T18:00:00Z", "--ended-at", "2025-06-07T17:00:00Z"], "before"),
        (vec!["capture", g, "--tag", "kids"], "unknown tag 'kids'"),
        (vec!["capture", g, "--started-at", "noon"], "--started-at"),
        (vec!["export-clip", "01900000-0000-7000-8000-000000000000", "--out", "/tmp/x"], "no item"),
        (vec!["observe", "--text", "  "], "needs text"),
        (vec!["observe", "--text", "x", "--lat", "95", "--lon", "0"], "latitude"),
        (vec!["observe", "--text", "x", "--field", "detained=many"], "whole number"),
    ];
    for (args, expect) in cases {
        let o = fieldcap(&home, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(expect), "{args:?}: expected '{expect}' in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert!(good.exists() && empty.exists() && badext.exists(), "sources untouched");
    assert_eq!(clips_json(&home)["items"].as_array().unwrap().len(), 0, "nothing was sealed");

    // Export into a folder that already holds files is refused and leaves it as it was.
    let out = ok(&home, &["capture", g, "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["clip_id"].as_str().unwrap().to_string();
    let full = t.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("keep.txt"), b"mine").unwrap();
    let o = fieldcap(&home, &["export-clip", &id, "--out", full.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds files"));
    assert_eq!(fs::read_dir(&full).unwrap().count(), 1);
    // An empty existing folder is fine.
    let empty_dir = t.path().join("empty-out");
    fs::create_dir(&empty_dir).unwrap();
    ok(&home, &["export-clip", &id, "--out", empty_dir.to_str().unwrap()]);
    assert!(empty_dir.join("manifest.json").exists());
}

#[test]
fn reinit_never_replaces_the_key() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let a = ok(&home, &["init"]);
    let key = fs::read(home.join("keys/device.key")).unwrap();
    let b = ok(&home, &["init", "--role", "police"]);
    assert_eq!(fs::read(home.join("keys/device.key")).unwrap(), key);
    let id = a.split_whitespace().nth(2).unwrap();
    assert!(b.contains(id) && b.contains("key kept"), "{b}");
}
