//! Moving an embedded server to the scaled stores with one command (issue 9):
//! `fieldcap move-stores --data DIR --records postgres://… --blobs s3://…`, SIGKILLed at several
//! instants and run again until it finishes (resumable), run once more (nothing copied twice);
//! then a replica on the scaled stores with the same key serves the same devices — their log
//! consistency checks span the move — and a package of every item, old and new, verifies with
//! the pinned key. The held item's original carries an S3 legal hold, every original a lock.
//!
//! Runs only with a test PostgreSQL and S3 server (`scripts/test.sh` starts both and requires
//! them); skipped with a line otherwise.

#![allow(clippy::unwrap_used)]

use fieldcap_server::package::Profile;
use fieldcap_server::store::BlobStore as _;
use fieldcap_testkit::device::*;
use fieldcap_testkit::proxy::Proxy;
use fieldcap_testkit::scaled::ScaledStores;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

fn move_stores(cli: &Cli, data: &std::path::Path, stores: &ScaledStores) -> std::process::Command {
    let mut c = cli.command();
    c.arg("move-stores").arg("--data").arg(data).args(stores.args()).arg("--json").envs(stores.env());
    c
}

#[test]
fn an_embedded_server_moves_to_postgres_and_s3_resumably_and_its_evidence_still_verifies() {
    let Some(stores) = ScaledStores::start() else { return };
    let stores = Arc::new(stores);
    let cli = Cli::built();
    // An embedded server with evidence on it, behind a "load balancer" the devices use.
    let mut embedded = TestServer::serve(&cli);
    assert!(embedded.scaled().is_none());
    let lb = Proxy::passthrough(embedded.addr());
    let d = Device::with_role("monitor");
    let held = d.seal_video(2_500_000, 11).clip_id;
    d.seal_video(400_000, 12);
    d.observe("before the move");
    d.enroll_via(&lb.url(), &embedded);
    sync_until_receipted(&d.store, &fast_opts(256 * 1024));
    fieldcap_server::retention::hold(embedded.data(), &held, "case 25-9").unwrap();
    embedded.stop();
    let data = embedded.data();

    // Interrupted moves, then one to the end.
    for delay_ms in [30u64, 150, 400, 900] {
        let mut child = move_stores(&cli, &data, &stores).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
    }
    let out = move_stores(&cli, &data, &stores).output().unwrap();
    assert!(out.status.success(), "move-stores: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["originals"], 2, "{r}");
    let rows = |t: &str| r["tables"].as_array().unwrap().iter().find(|x| x["table"] == t).unwrap()["rows"].as_u64().unwrap();
    assert_eq!((rows("items"), rows("log_leaves"), rows("holds")), (3, 3, 1), "{r}");
    // Once more: everything is there already and only checked.
    let again = move_stores(&cli, &data, &stores).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let a: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(a["originals_copied"], 0, "{a}");
    assert!(a["tables"].as_array().unwrap().iter().all(|t| t["copied_now"] == false), "{a}");

    // Locks in the bucket: every original retained, the held one under a legal hold.
    let bucket = stores.s3.store();
    let recs = fieldcap_server::records::Records::open(stores.deployment(&data)).unwrap();
    for it in recs.items().unwrap() {
        let Some(sha) = it.blob_sha256 else { continue };
        let lock = bucket.lock_state(&sha).unwrap().expect("a lock state");
        assert!(lock.retain_until.is_some(), "{}: {lock:?}", it.clip_id);
        assert_eq!(lock.legal_hold, it.clip_id == held, "{}: {lock:?}", it.clip_id);
    }

    // A replica on the scaled stores with the same key takes over the same address.
    let scaled = TestServer::serve_scaled(&cli, stores.clone(), Some(&data));
    lb.set_upstream(scaled.addr());
    d.seal_video(300_000, 13);
    d.observe("after the move");
    sync_until_receipted(&d.store, &fast_opts(256 * 1024));
    assert!(states(&d.store).iter().all(|(_, s)| s == "receipted"));
    assert_eq!(checkpoint_size(&d.store), 5, "one log across the move (the device checked its consistency)");

    // A package of everything, from the scaled deployment, verifies with the pinned key.
    let work = tempfile::tempdir().unwrap();
    let clips: Vec<String> = states(&d.store).into_iter().map(|(c, _)| c).collect();
    let pkg = fieldcap_server::package::export(scaled.deployment(), &fieldcap_testkit::package::request(&clips, work.path().join("pkg"), Profile::Full)).unwrap();
    let v = cli.command().arg("verify").arg(&pkg.path).args(["--server-key", &embedded.fingerprint()]).output().unwrap();
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));

    // Another server's records never mix into a database that holds these: refused, named.
    let mut other = TestServer::start();
    other.token("monitor");
    other.stop();
    let out = move_stores(&cli, &other.data(), &stores).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("differs from the embedded records") && err.contains("empty database"), "{err}");
    assert!(!err.contains("fieldcap-local-test"), "no password in the error: {err}");
}
