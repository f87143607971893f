//! Tamper matrix over a real package: for every file, flip a byte / truncate / delete; add a file;
//! swap two clips' receipts; re-sign a manifest with another key (with and without recomputed
//! sums). `fieldcap verify` must fail naming the file, and the VERIFY.txt procedure, run as
//! written with openssl / sha256sum / b3sum, must fail too. A clean package passes both.

#![allow(clippy::unwrap_used)]

use fieldcap_package::package::verify_package;
use fieldcap_server::package::Profile;
use fieldcap_testkit::files::copy_dir;
use fieldcap_testkit::package::*;
use fieldcap_testkit::tools::{stock_verify, Cli};
use std::fs;
use std::path::Path;

fn stock_tools() -> bool {
    fieldcap_testkit::tools::stock_tools("the stock-tool half of the tamper matrix", &["openssl", "sha256sum", "b3sum"])
}

/// `stock`: the server key fingerprint to run VERIFY.txt with, when the stock tools run.
fn assert_fails_naming(dir: &Path, file: &str, what: &str, stock: Option<&str>) {
    let r = verify_package(dir);
    assert!(!r.all_ok(), "{what}: fieldcap verify passed");
    assert!(
        r.checks.iter().any(|c| !c.ok && c.file.contains(file)),
        "{what}: no failing check names {file}: {:#?}",
        r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>()
    );
    if let Some(fp) = stock {
        let (ok, out) = stock_verify(dir, fp);
        assert!(!ok, "{what}: VERIFY.txt passed:\n{out}");
    }
}

#[test]
fn tamper_matrix() {
    let fx = Fixture::new();
    let clean = fx.package("clean", Profile::Full, None).path;
    let fp = fx.server.fingerprint();
    let stock = stock_tools().then_some(fp.as_str());

    // A clean package passes both procedures, and the CLI exits 0.
    let r = verify_package(&clean);
    assert!(r.all_ok(), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    if let Some(fp) = stock {
        let (ok, out) = stock_verify(&clean, fp);
        assert!(ok, "VERIFY.txt fails on a clean package:\n{out}");
        assert!(out.contains("ALL STOCK-TOOL CHECKS PASSED"));
    }
    let cli = Cli::built().command().arg("verify").arg(&clean).output().unwrap();
    assert_eq!(cli.status.code(), Some(0), "{}", String::from_utf8_lossy(&cli.stdout));

    let files = fieldcap_package::clip::list_files(&clean).unwrap();
    assert!(files.len() > 20, "{files:?}");
    let mut n = 0;
    for f in &files {
        for op in ["flip", "truncate", "delete"] {
            n += 1;
            let d = fx.work.path().join(format!("t{n}"));
            copy_dir(&clean, &d);
            let p = d.join(f);
            let mut b = fs::read(&p).unwrap();
            match op {
                "flip" => {
                    let i = b.len() / 2;
                    b[i] ^= 0x01;
                    fs::write(&p, &b).unwrap();
                }
                "truncate" => {
                    b.truncate(b.len() / 2);
                    fs::write(&p, &b).unwrap();
                }
                _ => fs::remove_file(&p).unwrap(),
            }
            assert_fails_naming(&d, f, &format!("{op} {f}"), stock);
            fs::remove_dir_all(&d).unwrap();
        }
    }

    // Added files, at the root and inside a clip folder.
    for extra in ["notes.txt", &format!("clips/{}/media2.mp4", fx.clips[0])] {
        n += 1;
        let d = fx.work.path().join(format!("t{n}"));
        copy_dir(&clean, &d);
        fs::write(d.join(extra), b"added later").unwrap();
        assert_fails_naming(&d, extra, &format!("add {extra}"), stock);
        fs::remove_dir_all(&d).unwrap();
    }

    // Two clips' receipts swapped (with their signatures, which stay valid).
    let (a, b) = (&fx.clips[0], &fx.clips[2]);
    for recompute in [false, true] {
        n += 1;
        let d = fx.work.path().join(format!("t{n}"));
        copy_dir(&clean, &d);
        for name in ["receipt.json", "receipt.sig"] {
            let (pa, pb) = (d.join(format!("clips/{a}/{name}")), d.join(format!("clips/{b}/{name}")));
            let (ba, bb) = (fs::read(&pa).unwrap(), fs::read(&pb).unwrap());
            fs::write(&pa, bb).unwrap();
            fs::write(&pb, ba).unwrap();
        }
        if recompute {
            recompute_sums(&d);
        }
        assert_fails_naming(&d, &format!("clips/{a}/receipt.json"), "swap receipts", stock);
        fs::remove_dir_all(&d).unwrap();
    }

    // A manifest re-signed with another key (and, worse, the sums recomputed to match).
    let other = fieldcap_core::identity::DeviceKey::generate();
    for recompute in [false, true] {
        n += 1;
        let d = fx.work.path().join(format!("t{n}"));
        copy_dir(&clean, &d);
        let m = d.join(format!("clips/{a}/manifest.json"));
        fs::write(d.join(format!("clips/{a}/manifest.sig")), other.sign(&fs::read(&m).unwrap())).unwrap();
        if recompute {
            recompute_sums(&d);
        }
        assert_fails_naming(&d, &format!("clips/{a}/manifest.sig"), "re-signed manifest", stock);
        fs::remove_dir_all(&d).unwrap();
    }

    // The CLI names the file on a FAIL line and exits 1; --json says ok: false.
    let d = fx.work.path().join("cli");
    copy_dir(&clean, &d);
    let media = files.iter().find(|f| f.ends_with("media.mp4")).unwrap();
    let mut bytes = fs::read(d.join(media)).unwrap();
    bytes[10] ^= 0xff;
    fs::write(d.join(media), bytes).unwrap();
    let out = Cli::built().command().arg("verify").arg(&d).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains(media.as_str())), "{text}");
    let out = Cli::built().command().args(["verify", "--json"]).arg(&d).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
}

#[test]
fn missing_seq_in_a_device_chain_is_reported_by_number() {
    let fx = Fixture::new();
    let pkg = fx.package("chain", Profile::Full, None).path;
    // Remove seq 2 of the monitor's device from the signed chain list and re-sign the index
    // with the *server* key (as a dishonest exporter could): the verifier names the seq.
    let key = fieldcap_server::keys::load(&fx.data()).unwrap();
    let mut idx: fieldcap_package::package::PackageIndex = serde_json::from_slice(&fs::read(pkg.join("package.json")).unwrap()).unwrap();
    let dev = idx.items[0].device_id.clone();
    let d = idx.devices.iter_mut().find(|d| d.device_id == dev).unwrap();
    assert!(d.chain.len() >= 3, "{:?}", d.chain);
    d.chain.remove(1);
    let b = fieldcap_core::canonical::to_vec_of(&idx).unwrap();
    fs::write(pkg.join("package.json"), &b).unwrap();
    fs::write(pkg.join("package.json.sig"), key.sign(&b)).unwrap();
    let r = verify_package(&pkg);
    let chain = r.checks.iter().find(|c| c.name == "device chain" && c.file.contains(&dev)).unwrap();
    assert!(!chain.ok || chain.detail.contains("seq 2"), "{chain:?}");
    assert!(r.checks.iter().any(|c| !c.ok && c.detail.contains("seq 2")), "{:#?}", r.checks);
}
