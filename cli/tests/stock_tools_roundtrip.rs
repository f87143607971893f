//! capture → export-clip → verify, checked with the stock tools a court expert would use:
//! openssl (Ed25519 over SPKI PEM, -rawin), sha256sum and b3sum.

#![allow(clippy::unwrap_used)]
use chrono::Duration;
use fieldcap_core::track::TrackPoint;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::manifests_in_db;
use fieldcap_testkit::fieldcap_cli;
use fieldcap_testkit::tools::tool;
use fieldcap_testkit::track::{fix, geojson, gpx, utc, walk};
use std::fs;

#[test]
fn exported_clip_verifies_with_openssl_sha256sum_and_b3sum() {
    let cli = fieldcap_cli!();
    let (t, home) = cli.init_home(&["--role", "police", "--org", "Port Police"]);
    let src = t.path().join("clip.mp4");
    fs::write(&src, seeded(3 * 1024 * 1024 + 123, 1)).unwrap();
    let walk_file = t.path().join("walk.gpx");
    let mut points = walk(utc("2025-06-07T18:00:00Z"), Duration::seconds(5), &[(33.7361, -118.2922), (33.7362, -118.2921)]);
    points[0].altitude_m = Some(10.0);
    fs::write(&walk_file, gpx(&points)).unwrap();
    let out = cli.ok(&home, &["capture", src.to_str().unwrap(), "--track", walk_file.to_str().unwrap(), "--started-at", "2025-06-07T18:00:00Z",
        "--ended-at", "2025-06-07T18:01:00Z", "--tag", "use_of_force", "--note", "test", "--json"]);
    let sealed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let clip_id = sealed["clip_id"].as_str().unwrap().to_string();
    assert!(!src.exists(), "the source is moved into the evidence store");

    let exp = t.path().join("export");
    cli.ok(&home, &["export-clip", &clip_id, "--out", exp.to_str().unwrap()]);

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

    let o = cli.run_home(&home, &["verify", exp.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // One flipped byte of the media: our verifier and the stock tools both fail.
    let media = exp.join("media.mp4");
    let mut data = fs::read(&media).unwrap();
    data[1000] ^= 0x01;
    fs::write(&media, data).unwrap();
    let o = cli.run_home(&home, &["verify", exp.to_str().unwrap()]);
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
    let c = cli.ok(&home, &["custody", &clip_id]);
    assert!(c.contains("sealed") && c.contains("exported"), "{c}");
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let cli = fieldcap_cli!();
    let (t, home) = cli.init_home(&[]);
    let empty = t.path().join("empty.mp4");
    fs::write(&empty, b"").unwrap();
    let dir = t.path().join("folder.mp4");
    fs::create_dir(&dir).unwrap();
    let good = t.path().join("good.mp4");
    fs::write(&good, seeded(4096, 2)).unwrap();
    let badext = t.path().join("notes.xyz");
    fs::write(&badext, b"abc").unwrap();
    let badgpx = t.path().join("bad.gpx");
    fs::write(&badgpx, gpx(&[fix(utc("2025-06-07T18:00:00Z"), 91.0, 0.0)])).unwrap();
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
        let o = cli.run_home(&home, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(expect), "{args:?}: expected '{expect}' in: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert!(good.exists() && empty.exists() && badext.exists(), "sources untouched");
    assert_eq!(cli.clips_json(&home)["items"].as_array().unwrap().len(), 0, "nothing was sealed");

    // Export into a folder that already holds files is refused and leaves it as it was.
    let out = cli.ok(&home, &["capture", g, "--json"]);
    let id = serde_json::from_str::<serde_json::Value>(&out).unwrap()["clip_id"].as_str().unwrap().to_string();
    let full = t.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("keep.txt"), b"mine").unwrap();
    let o = cli.run_home(&home, &["export-clip", &id, "--out", full.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds files"));
    assert_eq!(fs::read_dir(&full).unwrap().count(), 1);
    // An empty existing folder is fine.
    let empty_dir = t.path().join("empty-out");
    fs::create_dir(&empty_dir).unwrap();
    cli.ok(&home, &["export-clip", &id, "--out", empty_dir.to_str().unwrap()]);
    assert!(empty_dir.join("manifest.json").exists());
}

#[test]
fn reinit_never_replaces_the_key() {
    let cli = fieldcap_cli!();
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let a = cli.ok(&home, &["init"]);
    let key = fs::read(home.join("keys/device.key")).unwrap();
    let b = cli.ok(&home, &["init", "--role", "police"]);
    assert_eq!(fs::read(home.join("keys/device.key")).unwrap(), key);
    let id = a.split_whitespace().nth(2).unwrap();
    assert!(b.contains(id) && b.contains("key kept"), "{b}");
}

#[test]
fn a_gpx_and_a_geojson_track_give_the_same_manifest_track() {
    let cli = fieldcap_cli!();
    let (t, home) = cli.init_home(&[]);
    let mut points = walk(utc("2025-06-07T18:00:00Z"), Duration::seconds(5), &[(33.7361, -118.2922), (33.7362, -118.2921), (33.7364, -118.2919)]);
    points[0].altitude_m = Some(10.0);
    for (n, (ext, text)) in [("gpx", gpx(&points)), ("geojson", geojson(&points))].into_iter().enumerate() {
        let track = t.path().join(format!("walk.{ext}"));
        fs::write(&track, text).unwrap();
        let src = t.path().join(format!("clip-{ext}.mp4"));
        fs::write(&src, seeded(4096, n as u64)).unwrap();
        cli.ok(&home, &["capture", src.to_str().unwrap(), "--track", track.to_str().unwrap()]);
    }
    let tracks: Vec<Vec<TrackPoint>> = manifests_in_db(&home).iter().map(|m| serde_json::from_value(serde_json::from_slice::<serde_json::Value>(m).unwrap()["track"].clone()).unwrap()).collect();
    assert_eq!(tracks.len(), 2);
    for (got, provider) in tracks.iter().zip(["gpx", "geojson"]) {
        let want: Vec<TrackPoint> = points.iter().map(|p| TrackPoint { provider: provider.into(), ..p.clone() }).collect();
        assert_eq!(got, &want, "{provider}");
    }
}
