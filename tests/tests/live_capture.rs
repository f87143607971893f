//! Live capture end to end: the `fieldcap record --live` phone stand-in against a real server on
//! 127.0.0.1, with fMP4 from Debian's `ffmpeg`.
//!
//! * Live: each piece is on the server while the recording goes on (the last acknowledged piece
//!   trails the last sealed one by at most two; the lag distribution is printed).
//! * Seized phone: the recording process is SIGKILLed at random instants during 20 recordings;
//!   each time the server holds a prefix that `fieldcap package` + `fieldcap verify` accept as a
//!   partial recording and `ffprobe` decodes, holding every piece the phone had acknowledged;
//!   the next start finishes the recording from the phone's disk and the sync completes it with
//!   no piece lost or duplicated (the original is the source's first pieces, byte for byte).

#![allow(clippy::unwrap_used)]

use fieldcap_testkit::bytes::XorShift;
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fragmented MP4 from ffmpeg (see [`fieldcap_testkit::media::ffmpeg_fmp4`]).
fn ffmpeg_fmp4(dir: &Path, name: &str, seconds: u32, gop: u32) -> PathBuf {
    let out = dir.join(name);
    fieldcap_testkit::media::ffmpeg_fmp4(&out, seconds, gop);
    out
}

/// The source's pieces, split at top-level boxes by this test (init; moof+mdat; mfra).
fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut pos = 0usize;
    let mut init_done = false;
    while pos < bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let t = &bytes[pos + 4..pos + 8];
        if !init_done && (t == b"moof" || t == b"mfra") {
            out.push(std::mem::take(&mut cur));
            init_done = true;
        }
        cur.extend_from_slice(&bytes[pos..pos + size]);
        if init_done && (t == b"mdat" || t == b"mfra") {
            out.push(std::mem::take(&mut cur));
        }
        pos += size;
    }
    out
}

fn ffprobe_ok(path: &Path) -> u64 {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(o.status.success() && o.stderr.is_empty(), "ffprobe: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// (index, sealed_at_ms, acked_at_ms, total_bytes) of every piece of `clip`, from the phone's store.
fn pieces_of(home: &Path, clip: &str) -> Vec<(u64, i64, Option<i64>, u64)> {
    let c = rusqlite::Connection::open_with_flags(home.join("fieldcap.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut q = c.prepare("SELECT idx, sealed_at_ms, acked_at_ms, offset + bytes FROM live_fragments WHERE clip_id = ?1 ORDER BY idx").unwrap();
    q.query_map([clip], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64))).unwrap().map(|r| r.unwrap()).collect()
}

fn live_clips(home: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open_with_flags(home.join("fieldcap.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut q = c.prepare("SELECT clip_id FROM live_recordings ORDER BY clip_id").unwrap();
    q.query_map([], |r| r.get::<_, String>(0)).unwrap().map(|r| r.unwrap()).collect()
}

fn enrolled_device(cli: &Cli, server: &TestServer) -> (tempfile::TempDir, PathBuf) {
    let (dir, home) = cli.init_home(&["--role", "monitor"]);
    let tok = server.token("monitor");
    cli.ok(&home, &["enroll", "--server", &server.url(), "--token", &tok]);
    (dir, home)
}

#[test]
fn pieces_reach_the_server_while_the_recording_goes_on() {
    let cli = Cli::built();
    let server = TestServer::start();
    let (_d, home) = enrolled_device(&cli, &server);
    let t = tempfile::tempdir().unwrap();
    // 8 s, a fragment every second, filmed at its own pace.
    let src = ffmpeg_fmp4(t.path(), "src.mp4", 8, 30);
    let whole = std::fs::read(&src).unwrap();
    let out = cli.command().arg("--home").arg(&home).args(["record"]).arg(&src).args(["--live", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clip = v["item"]["clip_id"].as_str().unwrap().to_string();
    assert_eq!(v["sync"]["receipts_verified"], 1, "the final sync receipts the whole recording");
    assert_eq!(v["item"]["media"]["sha256"].as_str().unwrap(), fieldcap_core::hashing::sha256_hex(&whole), "gapless: ffmpeg's file byte for byte");
    let pieces = pieces_of(&home, &clip);
    let n = pieces.len();
    assert_eq!(n, split(&whole).len());
    // Every piece but the last two (the last fragment and the trailing index, sealed as the
    // recording ended: they go with the finished item) was acknowledged while filming.
    let acked: Vec<_> = pieces.iter().filter(|p| p.2.is_some()).collect();
    assert!(acked.len() + 2 >= n, "{} of {n} pieces acknowledged live", acked.len());
    // When piece i was sealed, pieces up to i - 2 were already on the server.
    for p in &pieces {
        let on_server = pieces.iter().filter(|q| q.2.is_some_and(|a| a <= p.1)).count() as u64;
        assert!(on_server + 2 >= p.0, "piece {} sealed with only {on_server} acknowledged", p.0);
    }
    let mut lags: Vec<i64> = pieces.iter().filter_map(|p| p.2.map(|a| a - p.1)).collect();
    lags.sort();
    eprintln!("capture-to-acknowledgement lag on loopback, ms (sorted): {lags:?}");
}

#[test]
fn a_phone_killed_mid_recording_leaves_a_verified_prefix_and_finishes_at_next_start() {
    let cli = Cli::built();
    let server = TestServer::start();
    let (_d, home) = enrolled_device(&cli, &server);
    let t = tempfile::tempdir().unwrap();
    // 4 s, a fragment every 0.2 s (21 pieces with init and mfra), filmed at its own pace.
    let src = ffmpeg_fmp4(t.path(), "src.mp4", 4, 6);
    let whole = std::fs::read(&src).unwrap();
    let source_pieces = split(&whole);
    let mut rng = XorShift::from_state(0x5EED_11FE);
    let mut partials_checked = 0;
    for round in 0..20 {
        let before = live_clips(&home);
        let mut child = cli.command().arg("--home").arg(&home).arg("record").arg(&src).arg("--live").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let delay = Duration::from_millis(100 + rng.next_u64() % 4200);
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
        let _ = child.wait();
        let Some(clip) = live_clips(&home).into_iter().find(|c| !before.contains(c)) else {
            continue; // killed before the recording began
        };
        let pieces = pieces_of(&home, &clip);
        let acked_bytes = pieces.iter().filter(|p| p.2.is_some()).map(|p| p.3).max();
        // The server's view, before the phone comes back.
        if let Some(acked_bytes) = acked_bytes.filter(|_| pieces.iter().filter(|p| p.2.is_some()).count() >= 2) {
            let pkg = t.path().join(format!("partial-{round}"));
            let o = cli.command()
                .args(["package", "--data"])
                .arg(server.data())
                .args(["--clip", &clip, "--recipient", "Test DA", "--purpose", "seized phone test", "--out"])
                .arg(&pkg)
                .output()
                .unwrap();
            if o.status.success() {
                let v = cli.command().arg("verify").arg(&pkg).args(["--json"]).output().unwrap();
                assert!(v.status.success(), "round {round}: the partial verifies: {}", String::from_utf8_lossy(&v.stdout));
                let media = find_media(&pkg, &clip);
                let held = std::fs::read(&media).unwrap();
                assert!(held.len() as u64 >= acked_bytes, "round {round}: every acknowledged piece is held");
                assert!(whole.starts_with(&held), "round {round}: the server's prefix is the source's");
                ffprobe_ok(&media);
                partials_checked += 1;
            } else if !String::from_utf8_lossy(&o.stderr).contains("finished") {
                panic!("round {round}: package of a partial recording failed: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
        // The next start finishes the recording from the phone's disk; the sync completes it.
        let clips = cli.clips_json(&home);
        let item = clips["items"].as_array().unwrap().iter().find(|i| i["clip_id"] == clip.as_str()).cloned();
        let sealed = pieces_of(&home, &clip).len();
        if sealed < 2 {
            assert!(item.is_none(), "round {round}: no media sealed, no item");
            continue;
        }
        let item = item.unwrap_or_else(|| panic!("round {round}: the recording is an item after the next start"));
        let len = item["media_bytes"].as_u64().unwrap();
        let expect: u64 = source_pieces[..sealed].iter().map(|p| p.len() as u64).sum();
        assert_eq!(len, expect, "round {round}: the sealed pieces, none lost or duplicated");
        let o = cli.command().arg("--home").arg(&home).args(["sync", "--json"]).output().unwrap();
        assert!(o.status.success(), "round {round}: sync: {}", String::from_utf8_lossy(&o.stderr));
        let clips = cli.clips_json(&home);
        let item = clips["items"].as_array().unwrap().iter().find(|i| i["clip_id"] == clip.as_str()).cloned().unwrap();
        assert_eq!(item["state"], "receipted", "round {round}: the server receipted the finished recording");
    }
    eprintln!("partial recordings packaged and verified before the phone came back: {partials_checked}");
    assert!(partials_checked >= 5, "only {partials_checked} of 20 kills left a packageable prefix");
}

/// The media file of `clip` in a package folder.
fn find_media(pkg: &Path, clip: &str) -> PathBuf {
    for entry in walk(pkg) {
        let s = entry.to_string_lossy();
        if s.contains(clip) && s.ends_with(".mp4") {
            return entry;
        }
    }
    panic!("no media of {clip} in the package");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
