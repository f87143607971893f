//! Backup and restore of both kinds of deployment (issue 9): `fieldcap backup` while the server
//! serves, the backup checked with the stock `sha256sum -c`, tampered and padded copies refused
//! by `fieldcap restore` (nothing restored), and a package exported from each restore verifies
//! with the original server's pinned key. The scaled half (PostgreSQL + S3 into another
//! database and bucket) runs only with the test stores (`scripts/test.sh` requires them).

#![allow(clippy::unwrap_used)]

use fieldcap_server::package::Profile;
use fieldcap_server::store::BlobStore as _;
use fieldcap_server::store::Deployment;
use fieldcap_testkit::device::*;
use fieldcap_testkit::scaled::ScaledStores;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A package of every item of `d`, exported from `at`, verifies with the pinned `fingerprint`.
fn package_verifies(cli: &Cli, at: Deployment, d: &Device, fingerprint: &str) {
    let work = tempfile::tempdir().unwrap();
    let clips: Vec<String> = states(&d.store).into_iter().map(|(c, _)| c).collect();
    let pkg = fieldcap_server::package::export(at, &fieldcap_testkit::package::request(&clips, work.path().join("pkg"), Profile::Full)).unwrap();
    let v = cli.command().arg("verify").arg(&pkg.path).args(["--server-key", fingerprint]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
}

fn copy_dir(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success());
}

#[test]
fn an_embedded_deployment_backs_up_while_serving_and_restores_into_a_package_that_verifies() {
    let cli = Cli::built();
    let server = TestServer::start_embedded();
    let d = Device::with_role("monitor");
    d.seal_video(1_500_000, 21);
    d.seal_video(300_000, 22);
    d.observe("a note for the backup");
    d.enroll_via(&server.url(), &server);
    sync_until_receipted(&d.store, &fast_opts(256 * 1024));
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");

    // Backed up while the server keeps serving.
    let out = cli.command().arg("backup").arg("--data").arg(server.data()).arg("--out").arg(&backup).arg("--json").output().unwrap();
    let b = json_of(&out);
    assert_eq!((b["originals"].as_u64(), b["log_size"].as_u64(), b["records_from"].as_str()), (Some(2), Some(3), Some("sqlite")), "{b}");
    // The stock tool checks every file.
    let sums = Command::new("sha256sum").arg("-c").arg("--quiet").arg("SHA256SUMS").current_dir(&backup).output().unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    assert!(!work.path().join(".backup.partial").exists());
    // A second backup to the same name is refused; the first is untouched.
    let again = cli.command().arg("backup").arg("--data").arg(server.data()).arg("--out").arg(&backup).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // A tampered copy (one byte of one original) and a padded copy (a file the sums do not
    // list) are refused by name, and nothing is restored from them.
    let tampered = work.path().join("tampered");
    copy_dir(&backup, &tampered);
    let recs = fieldcap_server::records::Records::open(server.deployment()).unwrap();
    let sha = recs.items().unwrap().into_iter().find_map(|i| i.blob_sha256).unwrap();
    let blob = tampered.join("blobs/sha256").join(&sha[..2]).join(&sha);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let into = work.path().join("from-tampered");
    let r = cli.command().arg("restore").arg("--from").arg(&tampered).arg("--data").arg(&into).output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains(&format!("blobs/sha256/{}/{sha} does not match its SHA-256", &sha[..2])), "{err}");
    assert!(!into.exists(), "nothing restored from a tampered backup");
    let padded = work.path().join("padded");
    copy_dir(&backup, &padded);
    std::fs::write(padded.join("blobs/extra"), b"not evidence").unwrap();
    let r = cli.command().arg("restore").arg("--from").arg(&padded).arg("--data").arg(&into).output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("blobs/extra is in the backup but not in SHA256SUMS"), "{err}");
    assert!(!into.exists());

    // Restored into a new data directory; the backup itself is unchanged by the restore.
    let restored = work.path().join("restored");
    let r = json_of(&cli.command().arg("restore").arg("--from").arg(&backup).arg("--data").arg(&restored).arg("--json").output().unwrap());
    assert_eq!((r["originals"].as_u64(), r["log_size"].as_u64()), (Some(2), Some(3)), "{r}");
    let sums = Command::new("sha256sum").arg("-c").arg("--quiet").arg("SHA256SUMS").current_dir(&backup).output().unwrap();
    assert!(sums.status.success());
    // Restoring over a data directory that holds anything is refused.
    let r = cli.command().arg("restore").arg("--from").arg(&backup).arg("--data").arg(&restored).output().unwrap();
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("not empty"));
    package_verifies(&cli, Deployment::from(restored.as_path()), &d, &server.fingerprint());
}

#[test]
fn a_scaled_deployment_backs_up_and_restores_into_other_stores_with_its_key_and_locks() {
    let Some(stores) = ScaledStores::start() else { return };
    let Some(other) = ScaledStores::start() else { return };
    let cli = Cli::built();
    let server = TestServer::serve_scaled(&cli, Arc::new(stores), None);
    let fingerprint = server.fingerprint();
    let stores = server.scaled().unwrap().clone();
    let d = Device::with_role("police");
    let held = d.seal_video(1_200_000, 31).clip_id;
    d.observe("a scaled note");
    d.enroll_via(&server.url(), &server);
    sync_until_receipted(&d.store, &fast_opts(256 * 1024));
    fieldcap_server::retention::hold(server.deployment(), &held, "case 26-1").unwrap();
    let work = tempfile::tempdir().unwrap();
    let backup = work.path().join("backup");
    let out = cli.command().arg("backup").arg("--data").arg(server.data()).args(stores.args()).envs(stores.env()).arg("--out").arg(&backup).arg("--json").output().unwrap();
    let b = json_of(&out);
    assert_eq!((b["originals"].as_u64(), b["log_size"].as_u64(), b["records_from"].as_str(), b["originals_from"].as_str()), (Some(1), Some(2), Some("postgresql"), Some("s3")), "{b}");
    let sums = Command::new("sha256sum").arg("-c").arg("--quiet").arg("SHA256SUMS").current_dir(&backup).output().unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));

    // Into another database and bucket, the key kept in the database (no --data).
    let r = json_of(&cli.command().arg("restore").arg("--from").arg(&backup).args(other.args()).envs(other.env()).arg("--json").output().unwrap());
    assert_eq!(r["originals_copied"].as_u64(), Some(1), "{r}");
    // Run again (as after an interruption): everything is there and only checked.
    let again = json_of(&cli.command().arg("restore").arg("--from").arg(&backup).args(other.args()).envs(other.env()).arg("--json").output().unwrap());
    assert_eq!(again["originals_copied"].as_u64(), Some(0), "{again}");
    let restored = Deployment { data_dir: None, ..other.deployment(Path::new("/nonexistent")) };
    let recs = fieldcap_server::records::Records::open(restored.clone()).unwrap();
    let sha = recs.items().unwrap().into_iter().find_map(|i| i.blob_sha256).unwrap();
    let lock = other.s3.store().lock_state(&sha).unwrap().expect("a lock state");
    assert!(lock.retain_until.is_some() && lock.legal_hold, "{lock:?}");
    package_verifies(&cli, restored, &d, &fingerprint);
}
