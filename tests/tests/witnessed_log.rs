//! Witnessed checkpoints end to end, two witnesses on loopback: real devices sync with a server
//! whose checkpoints both witnesses cosign; a server that shows another device a forked log
//! (another tree under the same key, up to the same size) gets no cosignature, and that device
//! raises its alarm (a device that knows no witness does not notice); `fieldcap verify --witness
//! A --witness B` passes on the genuine package and fails, naming the witness, when a
//! cosignature is missing or forged.
#![allow(clippy::unwrap_used)]

use fieldcap_evidence::cosignature::{check_cosignatures, VerifierKey};
use fieldcap_package::package::{verify_package_with, TrustAnchors};
use fieldcap_server::package::{export, Profile};
use fieldcap_testkit::device::Device;
use fieldcap_testkit::package::{request, sync_opts};
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use fieldcap_testkit::witness::TestWitness;
use std::path::Path;

const W1: &str = "witness.da.example/w1";
const W2: &str = "witness.civil.example/w2";

fn alarms(d: &Device) -> Vec<(String, String)> {
    d.store.alarms().unwrap().into_iter().map(|(_, kind, detail)| (kind, detail)).collect()
}

/// Seals an observation and a video on `d` and syncs until both are receipted.
fn capture_and_sync(d: &Device, seed: u64) -> Vec<String> {
    let mut clips = vec![d.observe("two unmarked vans").clip_id];
    clips.push(d.seal_video(120_000, seed).clip_id);
    fieldcap_testkit::device::sync_until_receipted(&d.store, &sync_opts());
    clips
}

#[test]
fn witnessed_log_end_to_end() {
    let mut ws: Vec<TestWitness> = Vec::new();
    let srv = TestServer::start_with_witnesses(|log| {
        ws.push(TestWitness::start(W1, std::slice::from_ref(log)));
        ws.push(TestWitness::start(W2, std::slice::from_ref(log)));
        ws.iter().map(|w| w.endpoint()).collect()
    });
    let keys: Vec<VerifierKey> = ws.iter().map(|w| w.vkey().clone()).collect();

    // A device that requires both witnesses: every checkpoint it gets is cosigned; no alarm.
    let a = Device::with_role("monitor");
    a.store.set_witnesses(&keys, None).unwrap();
    a.enroll(&srv);
    a.pass(&sync_opts());
    let clips = capture_and_sync(&a, 3);
    assert!(alarms(&a).is_empty(), "{:?}", alarms(&a));
    let held = a.store.newest_checkpoint().unwrap().unwrap();
    let c = check_cosignatures(&held, &keys).unwrap();
    assert_eq!(c.valid.len(), 2, "the device's newest checkpoint: {c:?}");

    // The forked log: the same server key, another history of the same size.
    let fork_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fork_dir.path().join("data")).unwrap();
    for f in ["server.key", "server.pub.pem"] {
        std::fs::copy(srv.data().join(f), fork_dir.path().join("data").join(f)).unwrap();
    }
    let endpoints: Vec<_> = ws.iter().map(|w| w.endpoint()).collect();
    let fork = TestServer::start_in_with_witnesses(fork_dir, |_| endpoints);
    // A device that knows the witnesses raises the alarm, naming both…
    let b = Device::with_role("monitor");
    b.store.set_witnesses(&keys, None).unwrap();
    b.enroll(&fork);
    b.pass(&sync_opts());
    capture_and_sync(&b, 4);
    let got = alarms(&b);
    let unwitnessed: Vec<&(String, String)> = got.iter().filter(|(k, _)| k == "log_unwitnessed").collect();
    assert_eq!(unwitnessed.len(), 1, "{got:?}");
    assert!(unwitnessed[0].1.contains(W1) && unwitnessed[0].1.contains(W2), "{got:?}");
    // … once per tree size: another pass on the same log adds none.
    b.pass(&sync_opts());
    assert_eq!(alarms(&b).iter().filter(|(k, _)| k == "log_unwitnessed").count(), 1);
    // … while a device that knows no witness sees nothing wrong with the fork.
    let c = Device::with_role("monitor");
    c.enroll(&fork);
    c.pass(&sync_opts());
    c.observe("a third view");
    fieldcap_testkit::device::sync_until_receipted(&c.store, &sync_opts());
    assert!(alarms(&c).is_empty(), "{:?}", alarms(&c));
    // The witnesses refused the fork's checkpoint of their size and still hold the genuine tree.
    let origin = srv.time().log_origin;
    for w in &ws {
        let (size, _) = fieldcap_server::witness::held(&w.data(), &origin).unwrap().unwrap();
        assert_eq!(size, 2);
    }

    // The genuine package, verified with both witnesses pinned.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("pkg");
    export(srv.data(), &request(&clips, out.clone(), Profile::Full)).unwrap();
    let both = TrustAnchors { witnesses: keys.clone(), ..Default::default() };
    let report = verify_package_with(&out, &both);
    assert!(report.all_ok(), "{:#?}", report.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    let line = witness_line(&out, &both);
    assert!(line.1.contains("2 of 2 witnesses cosigned") && line.1.contains(W1) && line.1.contains(W2), "{line:?}");
    let cli = Cli::built();
    let args = ["--witness", &keys[0].to_string(), "--witness", &keys[1].to_string()];
    let run = |dir: &Path, extra: &[&str]| cli.command().arg("verify").arg(dir).args(args).args(extra).output().unwrap();
    let o = run(&out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // A cosignature missing: w2's line taken off the package checkpoint (and the sums made
    // again, as a forger would): fails naming w2; a threshold of 1 accepts it.
    let cp_text = std::fs::read_to_string(out.join("log/checkpoint.txt")).unwrap();
    let missing = copy_with_checkpoint(&out, work.path(), "missing", &cp_text.lines().filter(|l| !l.contains(W2)).map(|l| format!("{l}\n")).collect::<String>());
    let (ok, detail) = witness_line(&missing, &both);
    assert!(!ok && detail.contains(&format!("no cosignature of: {W2}")), "{detail}");
    let one = TrustAnchors { witness_threshold: Some(1), ..both.clone() };
    assert!(witness_line(&missing, &one).0);
    assert_eq!(run(&missing, &[]).status.code(), Some(1));
    let o = run(&missing, &["--witness-threshold", "1"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok    log checkpoint cosigned by the pinned witnesses"), "{}", String::from_utf8_lossy(&o.stdout));

    // A cosignature forged: w2's line with one byte of its signature changed.
    let forged_text: String = cp_text
        .lines()
        .map(|l| if l.contains(W2) { format!("{}\n", flip_last_signature_byte(l)) } else { format!("{l}\n") })
        .collect();
    let forged = copy_with_checkpoint(&out, work.path(), "forged", &forged_text);
    let (ok, detail) = witness_line(&forged, &both);
    assert!(!ok && detail.contains(&format!("do not verify: {W2}")), "{detail}");
    let (ok, _) = witness_line(&forged, &one);
    assert!(!ok, "a forged cosignature fails whatever the threshold");
    let o = run(&forged, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains(W2));
}

/// The witness check's (ok, detail) in a verification of `dir` with `anchors`.
fn witness_line(dir: &Path, anchors: &TrustAnchors) -> (bool, String) {
    let report = verify_package_with(dir, anchors);
    let c = report.checks.iter().find(|c| c.name == "log checkpoint cosigned by the pinned witnesses").expect("a witness check line");
    (c.ok, c.detail.clone())
}

/// A copy of the package `src` in `work/name` with `log/checkpoint.txt` replaced and its sums
/// made again.
fn copy_with_checkpoint(src: &Path, work: &Path, name: &str, checkpoint: &str) -> std::path::PathBuf {
    let dst = work.join(name);
    copy_dir(src, &dst);
    std::fs::write(dst.join("log/checkpoint.txt"), checkpoint).unwrap();
    fieldcap_testkit::package::recompute_sums(&dst);
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// A signature line with the last byte of its signature changed.
fn flip_last_signature_byte(line: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (head, sig) = line.rsplit_once(' ').unwrap();
    let mut raw = b64.decode(sig).unwrap();
    *raw.last_mut().unwrap() ^= 1;
    format!("{head} {}", b64.encode(raw))
}
