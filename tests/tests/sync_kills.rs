//! Kills: SIGKILL the syncing `fieldcap` CLI at random instants (≥ 30 times), and the server
//! mid-upload; afterwards nothing is lost, nothing duplicated, and offsets resume (bytes re-sent
//! bounded by one chunk per cut). Also: a tus 1.0 client that is not ours (Python `tuspy`)
//! uploads media to an upload URL and the receipt follows.

#![allow(clippy::unwrap_used)]

use fieldcap_core::sync::CancelToken;
use fieldcap_testkit::bytes::{seeded, XorShift};
use fieldcap_testkit::device::*;
use fieldcap_testkit::proxy::Proxy;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn total_offsets(home: &std::path::Path) -> u64 {
    let c = rusqlite::Connection::open_with_flags(home.join("fieldcap.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    c.busy_timeout(Duration::from_secs(10)).expect("busy");
    c.query_row(
        "SELECT COALESCE(SUM(CASE WHEN state IN ('uploaded','receipted') THEN COALESCE(media_bytes,0) ELSE upload_offset END),0) FROM items",
        [],
        |r| r.get::<_, i64>(0),
    )
    .expect("sum") as u64
}

/// Each item needing attention: its state, integrity and last error (so a failure says why).
fn attention(home: &std::path::Path) -> Vec<(String, String, String, Option<String>)> {
    let c = rusqlite::Connection::open_with_flags(home.join("fieldcap.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("db");
    let mut q = c
        .prepare("SELECT clip_id, state, integrity, last_error FROM items WHERE state = 'needs_attention' OR integrity != 'ok'")
        .expect("query");
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).expect("rows").map(|r| r.expect("row")).collect()
}

#[test]
fn sigkill_the_syncing_cli_at_random_instants() {
    let cli = Cli::built();
    let server = TestServer::start();
    let proxy = Proxy::passthrough(server.addr());
    let d = Device::with_role("monitor");
    let mut media_total = 0u64;
    for i in 0..6u64 {
        media_total += d.seal_video(500_000 + i as usize * 100_000, 50 + i).media.expect("media").bytes;
    }
    for i in 0..3 {
        d.observe(&format!("note {i}"));
    }
    let mut n_items = d.store.list_items().expect("list").len() as u64;
    d.enroll_via(&proxy.url(), &server);
    let home = d.home.path().to_path_buf();
    drop(d.store);
    let chunk: u64 = 64 * 1024;

    // Pace uploads through the proxy at 2 MiB/s: the backlog (six clips now, one more every
    // iteration) then takes longer than the longest kill delay on any machine, so each kill
    // lands while the sync is running — in its manifest, upload, completion or receipt step —
    // instead of depending on how fast this machine happens to be.
    proxy.up_rate.store(2 << 20, Ordering::SeqCst);
    let mut rng = XorShift::from_state(0x9E37_79B9_7F4A_7C15);
    let mut kills = 0;
    let mut last_total = 0;
    let mut iterations = 0;
    while iterations < 32 {
        iterations += 1;
        let seed = rng.next_u64();
        // New evidence keeps arriving, so every iteration has an upload to cut.
        let clip = home.join(format!("new-{iterations}.mp4"));
        let len = 400_000 + (seed % 600_000) as usize;
        std::fs::write(&clip, seeded(len, seed)).expect("write clip");
        let st = cli.command().arg("--home").arg(&home).arg("capture").arg(&clip).stdout(Stdio::null()).status().expect("capture");
        assert!(st.success());
        media_total += len as u64;
        n_items += 1;
        let delay = Duration::from_millis(5 + seed % 600);
        let mut child = cli.command()
            .args(["--home"])
            .arg(&home)
            .args(["sync", "--json", "--timeout", "60", "--chunk-size", &chunk.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sync");
        std::thread::sleep(delay);
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
            kills += 1;
        }
        child.wait().expect("reap");
        let now = total_offsets(&home);
        assert!(now >= last_total, "acknowledged bytes never go backwards ({now} < {last_total}): offsets resume");
        last_total = now;
    }
    assert!(kills >= 30, "{kills} of {iterations} runs were killed mid-sync");
    assert!(last_total > 0, "the killed runs made progress");
    eprintln!("{iterations} iterations, {kills} kills, {last_total}/{media_total} bytes acknowledged");
    // A final, uninterrupted pass at full speed finishes the job.
    proxy.up_rate.store(0, Ordering::SeqCst);
    let out = cli.command().arg("--home").arg(&home).args(["sync", "--json", "--timeout", "300"]).output().expect("final sync");
    assert!(out.status.success(), "final sync: {}\nitems needing attention: {:?}", String::from_utf8_lossy(&out.stdout), attention(&home));
    let store = open_store(&home);
    for (id, state) in states(&store) {
        assert_eq!(state, "receipted", "item {id}");
    }
    assert_eq!(checkpoint_size(&store), n_items, "each item in the log exactly once");
    let stored = server.stored_digests();
    for (m, _) in store.manifests().expect("manifests") {
        if let Some(media) = fieldcap_core::manifest::Manifest::parse(&m).expect("manifest").media {
            assert!(stored.contains(&media.sha256));
        }
    }
    // Re-sent bytes: at most about one chunk per cut (plus request headers).
    let up = proxy.up_bytes.load(Ordering::SeqCst);
    let overhead = up.saturating_sub(media_total);
    let allowed = kills as u64 * (chunk + 2048) + 400 * 1024;
    assert!(overhead <= allowed, "sent {up} bytes for {media_total} of media with {kills} kills (overhead {overhead} > {allowed})");
}

#[test]
fn sigkill_the_server_mid_upload_and_resume() {
    // `fieldcap serve` (a process that can be SIGKILLed); its token comes from `fieldcap token`.
    let mut server = TestServer::serve(&Cli::built());
    let proxy = Proxy::passthrough(server.addr());
    let d = Device::with_role("police");
    let total = 12 * 1024 * 1024 + 5;
    let item = d.seal_video(total, 99);
    d.enroll_via(&proxy.url(), &server);
    let chunk = 512 * 1024;
    let opts = fieldcap_core::sync::SyncOptions { budget: Duration::from_secs(8), ..fast_opts(chunk) };
    // Kill the server (SIGKILL) once about a third has been acknowledged.
    let killed = std::sync::atomic::AtomicBool::new(false);
    let s1 = d
        .store
        .sync_once(&net(), &opts, &CancelToken::new(), &mut |p| {
            if p.item_bytes_done >= total as u64 / 3 && !killed.load(Ordering::SeqCst) {
                server.stop();
                killed.store(true, Ordering::SeqCst);
            }
        })
        .expect("pass 1 returns a summary");
    assert!(killed.load(Ordering::SeqCst));
    assert_eq!(s1.remaining, 1, "{s1:?}");
    let acked = d.store.item(&item.clip_id).expect("item").summary.state;
    assert_eq!(acked, "uploading");
    // Restart on the same data; the proxy keeps the device's URL stable.
    server.restart();
    proxy.set_upstream(server.addr());
    let s2 = d.store.sync_once(&net(), &fast_opts(chunk), &CancelToken::new(), &mut |_| {}).expect("pass 2");
    server.stop();
    assert_eq!(s2.remaining, 0, "{s2:?}");
    assert_eq!(s2.receipts_verified, 1);
    assert!(s2.bytes_uploaded < total as u64, "resumed from the server's offset, not from zero: {s2:?}");
    eprintln!("pass 1 {} bytes, pass 2 {} bytes ({} re-sent) of {total}", s1.bytes_uploaded, s2.bytes_uploaded, s2.bytes_resent);
    assert!(s1.bytes_uploaded + s2.bytes_uploaded <= total as u64 + chunk as u64 * 2, "at most a chunk or two sent twice");
}

#[test]
fn a_generic_tus_client_uploads_and_the_receipt_follows() {
    let probe = Command::new("python3").args(["-c", "import tusclient"]).output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        if std::env::var_os("FIELDCAP_REQUIRE_TUSPY").is_some() {
            panic!("python3 with tuspy is required (pip install tuspy)");
        }
        eprintln!("SKIPPED: python3 with tuspy is not installed (pip install tuspy)");
        return;
    }
    let server = TestServer::start();
    let d = Device::with_role("monitor");
    let total = 2 * 1024 * 1024 + 77;
    let item = d.seal_video(total, 4242);
    d.enroll(&server);
    // Hash first only: stop the pass as soon as the upload would start.
    let cancel = CancelToken::new();
    d.store
        .sync_once(&net(), &fast_opts(1 << 20), &cancel, &mut |p| {
            if p.phase == fieldcap_core::sync::SyncPhase::Uploading || p.phase == fieldcap_core::sync::SyncPhase::Verifying {
                cancel.cancel();
            }
        })
        .expect("manifest pass");
    let c = rusqlite::Connection::open(d.home.path().join("fieldcap.db")).expect("db");
    let url: String = c.query_row("SELECT upload_url FROM items WHERE clip_id = ?1", [&item.clip_id], |r| r.get(0)).expect("upload url");
    drop(c);
    let full = if url.starts_with("http") { url } else { format!("{}{}", server.url().trim_end_matches('/'), url) };
    let media = d.store.item(&item.clip_id).expect("item").media_path.expect("media");
    let script = r#"
import sys
from tusclient import client
c = client.TusClient(sys.argv[1].split('/v1/')[0])
u = c.uploader(file_path=sys.argv[2], url=sys.argv[1], chunk_size=512*1024)
u.upload()
print("offset", u.offset)
"#;
    let out = Command::new("python3").arg("-c").arg(script).arg(&full).arg(&media).output().expect("python3");
    assert!(out.status.success(), "tuspy failed: {}", String::from_utf8_lossy(&out.stderr));
    // The device's next pass finds the upload complete and receives and verifies the receipt.
    let s = d.store.sync_once(&net(), &fast_opts(1 << 20), &CancelToken::new(), &mut |_| {}).expect("receipt pass");
    assert_eq!(s.bytes_uploaded, 0, "the bytes came from tuspy: {s:?}");
    assert_eq!(s.receipts_verified, 1, "{s:?}");
    assert_eq!(d.store.item(&item.clip_id).expect("item").summary.state, "receipted");
}
