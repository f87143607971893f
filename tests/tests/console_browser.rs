//! The council console in a real browser (issue 10, "Tested in a real browser").
//!
//! A real `fieldcap serve --console-listen 127.0.0.1:0`; three devices at one place and time,
//! each a real `fieldcap` run under `faketime` with its clock minutes off (as on a phone set
//! wrong: +5 min, −2 min, +45 s), enrol with tokens from `fieldcap token`, measure their offsets,
//! seal real videos (VP9 in MP4 made by ffmpeg, a keyframe every 5 frames, the device letter and
//! frame number burned in) whose corrected capture windows overlap, a witness observation, one
//! clip tagged `minor_present`, and sync through the device API. Staff accounts of the four roles
//! come from `fieldcap staff add`. Then `node tests/browser/console.mjs CONFIG` drives Debian's
//! headless Chromium through playwright-core and checks every item of the list: logins
//! per role and what each role is refused, CSRF and a stale session, the synchronized review
//! (every video at the same corrected instant within one frame after a seek), the observation
//! marks and map, a range request, the enrolment QR code (decoded with zbarimg, a new device
//! enrolled and synced with it, its clip in the console), a records request built, refused to a
//! clerk, approved by a supervisor and downloaded, and the custody events of those accesses
//! naming the staff. Screenshots of the main pages go to `docs/screenshots/`.
//!
//! Then the same records are served again with a 5-second idle limit (`--console-idle-secs`)
//! and `console.mjs CONFIG idle` checks that an idle session, and a form it left open, are
//! refused. Finally this test checks the downloaded release with `fieldcap verify` (pinned to
//! the server key) and that the minor's item is not in it (files and `package.json`).
//!
//! Needs chromium, node (with `npm ci` done in tests/browser), zbarimg, ffmpeg and faketime
//! (scripts/install_console_test_tools.sh); without them it skips with a message, unless
//! `FIELDCAP_REQUIRE_CHROMIUM` is set (scripts/test.sh), when a missing tool fails it.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};
use fieldcap_testkit::server::server_fingerprint;
use fieldcap_testkit::tools::{have, Cli};
use fieldcap_testkit::track::{gpx, walk};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long `fieldcap serve` may take to print its two addresses.
const SERVE_START: Duration = Duration::from_secs(30);
/// How long the whole browser script may run before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(420);
/// Frames per second of the test videos (one frame: 40 ms).
const FPS: u32 = 25;
/// Length of each test video, seconds.
const CLIP_SECS: i64 = 10;
/// The scene: Harbor Area, San Pedro.
const PLACE: (f64, f64) = (33.7406, -118.2760);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// What is missing of the tools the test needs (empty: everything is there).
fn missing_tools() -> Vec<String> {
    let mut missing: Vec<String> = ["chromium", "node", "zbarimg", "ffmpeg", "faketime"].iter().filter(|t| !have(t)).map(|t| t.to_string()).collect();
    if !workspace().join("tests/browser/node_modules/playwright-core/package.json").exists() {
        missing.push("playwright-core (npm ci in tests/browser)".into());
    }
    missing
}

/// `fieldcap serve` with the console, killed (and reaped) when dropped.
struct Serve {
    child: Child,
    api: String,
    console: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fieldcap serve --data DATA --listen 127.0.0.1:0 --console-listen 127.0.0.1:0` and
/// reads its first two stdout lines, `listening on http://ADDR` and `console on http://ADDR`.
fn serve(cli: &Cli, data: &Path, stderr: &Path, extra: &[&str]) -> Serve {
    let mut child = cli
        .command()
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("spawn fieldcap serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut next = |what: &str| -> String {
        let left = SERVE_START.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("fieldcap serve printed no {what} line within {SERVE_START:?} ({e}); stderr: {}", std::fs::read_to_string(stderr).unwrap_or_default());
            }
        }
    };
    let first = next("`listening on`");
    let second = next("`console on`");
    let api = first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line is not `listening on http://ADDR`: {first:?}")).to_string();
    let console = second.trim().strip_prefix("console on ").unwrap_or_else(|| panic!("second line is not `console on http://ADDR`: {second:?}")).to_string();
    for u in [&api, &console] {
        assert!(u.starts_with("http://127.0.0.1:"), "not a loopback address: {u}");
    }
    Serve { child, api, console }
}

/// A device: a `fieldcap --home HOME` whose clock runs `skew_s` seconds off the real one.
struct Phone {
    name: &'static str,
    home: PathBuf,
    skew_s: i64,
    bin: PathBuf,
}

impl Phone {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("faketime")
            .arg("-f")
            .arg(format!("{:+}s", self.skew_s))
            .arg(&self.bin)
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .expect("run faketime fieldcap")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "device {}: fieldcap {args:?} failed: {}", self.name, String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).expect("utf8")
    }

    /// The device's clock reading at the real instant `t`.
    fn clock(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        t + ChronoDuration::seconds(self.skew_s)
    }

    fn sync(&self) -> Value {
        let s: Value = serde_json::from_str(&self.ok(&["sync", "--json", "--timeout", "60"])).expect("sync json");
        assert_eq!(s["remaining"], 0, "device {}: {s}", self.name);
        assert_eq!(s["needs_attention"], 0, "device {}: {s}", self.name);
        s
    }

    /// The manifest of a synced item, from `fieldcap export-clip`.
    fn manifest(&self, clip_id: &str, scratch: &Path) -> Value {
        let out = scratch.join(format!("export-{clip_id}"));
        self.ok(&["export-clip", clip_id, "--out", out.to_str().expect("path")]);
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).expect("manifest.json")).expect("manifest json")
    }
}

/// A `secs`-second VP9-in-MP4 test video (320×180, 25 fps, a keyframe every 5 frames so seeks
/// land exactly) with `label` and the frame number burned in; ffmpeg's own metadata left out.
fn make_video(path: &Path, label: &str, secs: i64) {
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"].into_iter().find(|f| Path::new(f).exists());
    let mut filter = String::new();
    if let Some(f) = font {
        filter = format!("drawtext=fontfile={f}:text='{label} %{{frame_num}}':x=10:y=10:fontsize=36:fontcolor=white:box=1:boxcolor=black");
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"]).arg(format!("testsrc2=size=320x180:rate={FPS}:duration={secs}"));
    if !filter.is_empty() {
        cmd.args(["-vf", &filter]);
    }
    cmd.args(["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "5", "-b:v", "200k", "-pix_fmt", "yuv420p"])
        .args(["-map_metadata", "-1", "-fflags", "+bitexact", "-movflags", "+faststart"])
        .arg(path);
    let o = cmd.output().expect("run ffmpeg");
    assert!(o.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&o.stderr));
}

fn rfc3339(t: DateTime<Utc>) -> String {
    fieldcap_evidence::time::format(t)
}

fn unix_ms(rfc: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc).unwrap_or_else(|e| panic!("{rfc}: {e}")).timestamp_millis()
}

/// The server-corrected time of an item's capture `field` (`started_at`, `ended_at`; an
/// observation's time is its start): the device-clock time minus the offset it measured.
fn corrected_ms(manifest: &Value, field: &str) -> i64 {
    let at = manifest["capture"][field].as_str().unwrap_or_else(|| panic!("capture.{field} in {manifest}"));
    unix_ms(at) - manifest["capture"]["clock"]["offset_ms"].as_i64().unwrap_or(0)
}

/// Waits for `child` at most `limit`; kills it past that.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A last-stdout-line value of a command that must succeed.
fn last_line(o: &Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or_else(|| panic!("{what} printed nothing")).trim().to_string()
}

#[test]
fn the_console_works_in_a_real_browser() {
    let missing = missing_tools();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("FIELDCAP_REQUIRE_CHROMIUM").is_none(),
            "the console browser test needs {} (scripts/install_console_test_tools.sh)",
            missing.join(", ")
        );
        eprintln!("SKIPPING the console browser test: missing {}; install with scripts/install_console_test_tools.sh", missing.join(", "));
        return;
    }
    let cli = Cli::built();
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("server-data");
    let server = serve(&cli, &data, &tmp.path().join("serve.stderr"), &[]);

    // The scene, in real (server) time: three clips of CLIP_SECS seconds starting 0, 2 and 3.5 s
    // after `base`, so all three overlap from 3.5 s to 10 s; a witness note at 5 s.
    let base = (Utc::now() - ChronoDuration::minutes(5)).trunc_subsecs(0);
    let phones = [("A", 300_i64, "monitor", 0_i64), ("B", -120, "monitor", 2_000), ("C", 45, "police", 3_500)];
    let scratch = tmp.path().join("scratch");
    let originals = tmp.path().join("originals");
    std::fs::create_dir_all(&scratch).expect("scratch");
    std::fs::create_dir_all(&originals).expect("originals");
    let mut clips = Vec::new();
    let mut observation = Value::Null;
    let mut devices = Vec::new();
    for (i, (name, skew_s, role, at_ms)) in phones.iter().enumerate() {
        let phone = Phone { name, home: tmp.path().join(format!("phone-{name}")), skew_s: *skew_s, bin: cli.bin().to_path_buf() };
        phone.ok(&["init", "--role", role]);
        let token = last_line(&cli.command().args(["token", "--data"]).arg(&data).args(["--role", role]).output().expect("fieldcap token"), "fieldcap token");
        phone.ok(&["enroll", "--server", &server.api, "--token", &token]);
        // The first pass measures the clock offset; later seals carry it.
        let first = phone.sync();
        let measured = first["clock_offset_ms"].as_i64().expect("offset measured");
        assert!((measured - skew_s * 1000).abs() < 5_000, "device {name}: measured {measured} ms for a clock {skew_s} s off");

        let start = base + ChronoDuration::milliseconds(*at_ms);
        let end = start + ChronoDuration::seconds(CLIP_SECS);
        let video = scratch.join(format!("{name}.mp4"));
        make_video(&video, name, CLIP_SECS);
        let original = originals.join(format!("{name}.mp4"));
        std::fs::copy(&video, &original).expect("keep the original");
        // A short walk within ~60 m of the scene, fixes in device time.
        let d = i as f64 * 0.0002;
        let track = walk(phone.clock(start), ChronoDuration::seconds(5), &[(PLACE.0 + d, PLACE.1), (PLACE.0 + d + 0.0001, PLACE.1 + 0.0001), (PLACE.0 + d + 0.0002, PLACE.1 + 0.0002)]);
        let gpx_path = scratch.join(format!("{name}.gpx"));
        std::fs::write(&gpx_path, gpx(&track)).expect("gpx");
        let mut args = vec![
            "capture".to_string(),
            video.to_str().expect("path").into(),
            "--track".into(),
            gpx_path.to_str().expect("path").into(),
            "--started-at".into(),
            rfc3339(phone.clock(start)),
            "--ended-at".into(),
            rfc3339(phone.clock(end)),
            "--json".into(),
        ];
        let minor = *name == "C";
        if minor {
            args.extend(["--tag".into(), "minor_present".into()]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let sealed: Value = serde_json::from_str(&phone.ok(&argv)).expect("capture json");
        let clip_id = sealed["clip_id"].as_str().expect("clip_id").to_string();
        let obs_id = if *name == "A" {
            let at = base + ChronoDuration::seconds(5);
            let o: Value = serde_json::from_str(&phone.ok(&[
                "observe",
                "--text",
                "Two unmarked vans; agents detained one man at the bus stop",
                "--at",
                &rfc3339(phone.clock(at)),
                "--lat",
                &PLACE.0.to_string(),
                "--lon",
                &PLACE.1.to_string(),
                "--field",
                "agency=unknown federal",
                "--field",
                "detained=1",
                "--json",
            ]))
            .expect("observe json");
            Some(o["clip_id"].as_str().expect("clip_id").to_string())
        } else {
            None
        };
        phone.sync();
        let m = phone.manifest(&clip_id, &scratch);
        let offset = m["capture"]["clock"]["offset_ms"].as_i64().expect("the manifest carries the measured offset");
        assert!((offset - skew_s * 1000).abs() < 5_000, "device {name}: manifest offset {offset}");
        let device_id = m["device_id"].as_str().expect("device_id").to_string();
        let start_ms = corrected_ms(&m, "started_at");
        assert!((start_ms - (base.timestamp_millis() + at_ms)).abs() < 5_000, "device {name}: corrected start {start_ms}");
        clips.push(json!({
            "clip_id": clip_id, "device_id": device_id, "label": name, "role": role,
            "start_ms": start_ms, "end_ms": corrected_ms(&m, "ended_at"),
            "original": original, "bytes": std::fs::metadata(&original).expect("original").len(),
            "minor_present": minor,
        }));
        devices.push(json!({"device_id": device_id, "label": name, "skew_s": skew_s, "offset_ms": offset}));
        if let Some(obs) = obs_id {
            let om = phone.manifest(&obs, &scratch);
            observation = json!({"clip_id": obs, "device_id": device_id, "at_ms": corrected_ms(&om, "started_at")});
        }
    }

    // Staff of every role, each with a one-time set-up link (the last stdout line).
    let mut staff = Vec::new();
    for (name, role) in [("clara.clerk", "clerk"), ("cody.custodian", "custodian"), ("sam.supervisor", "supervisor"), ("ada.auditor", "auditor")] {
        let o = cli.command().args(["staff", "add", "--data"]).arg(&data).args(["--name", name, "--role", role]).output().expect("fieldcap staff add");
        let link = last_line(&o, "fieldcap staff add");
        assert!(link.contains("/setup/"), "fieldcap staff add's last line is not a set-up link: {link}");
        staff.push(json!({"name": name, "role": role, "password": format!("{role} horse battery staple"), "setup_link": link}));
    }

    // The device the browser enrols from the QR code: a video and track made ready here, at the
    // same place a minute after the others.
    let qr_video = scratch.join("Q.mp4");
    make_video(&qr_video, "Q", 4);
    let qr_start = base + ChronoDuration::seconds(60);
    let qr_gpx = scratch.join("Q.gpx");
    std::fs::write(&qr_gpx, gpx(&walk(qr_start, ChronoDuration::seconds(2), &[PLACE, (PLACE.0 + 0.0001, PLACE.1)]))).expect("gpx");

    let out = tmp.path().join("browser-out");
    std::fs::create_dir_all(&out).expect("out");
    let shots = workspace().join("docs/screenshots");
    std::fs::create_dir_all(&shots).expect("docs/screenshots");
    let config = json!({
        "api_url": server.api,
        "console_url": server.console,
        "fieldcap": cli.bin(),
        "chromium": "/usr/bin/chromium",
        "out_dir": out,
        "screenshot_dir": shots,
        "frame_ms": 1000 / FPS,
        "staff": staff,
        "clips": clips,
        "devices": devices,
        "observation": observation,
        "qr": {
            "home": tmp.path().join("phone-Q"),
            "video": qr_video,
            "track": qr_gpx,
            "started_at": rfc3339(qr_start),
            "ended_at": rfc3339(qr_start + ChronoDuration::seconds(4)),
        },
    });
    let config_path = tmp.path().join("console-test.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).expect("json")).expect("config");

    let main = run_browser(&config_path, "main", tmp.path());
    let serve_log = std::fs::read_to_string(tmp.path().join("serve.stderr")).unwrap_or_default();

    // Session expiry: the same records served again with a 5-second idle limit (hidden test
    // option); a clerk's session left idle longer is refused, and so is its open form.
    drop(server);
    let idle_server = serve(&cli, &data, &tmp.path().join("serve-idle.stderr"), &["--console-idle-secs", "5"]);
    let mut idle_config = config.clone();
    idle_config["api_url"] = json!(idle_server.api);
    idle_config["console_url"] = json!(idle_server.console);
    idle_config["idle_secs"] = json!(5);
    let idle_path = tmp.path().join("console-test-idle.json");
    std::fs::write(&idle_path, serde_json::to_vec_pretty(&idle_config).expect("json")).expect("config");
    let idle = run_browser(&idle_path, "idle", tmp.path());
    drop(idle_server);

    // The released package the supervisor approved and the custodian downloaded: it verifies
    // against the pinned server key, and the minor's item is not in it.
    // (Checked before the browser script's verdict, so that a run reports both.)
    let result: Value = serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json")).expect("result json");
    let zip_path = PathBuf::from(result["request_zip"].as_str().expect("the browser script downloaded no approved release"));
    let fp = server_fingerprint(&data);
    let v = cli.command().arg("verify").arg(&zip_path).args(["--server-key", &fp]).output().expect("fieldcap verify");
    assert!(v.status.success(), "fieldcap verify of the released package: {}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
    // The District Attorney's full package, downloaded by the custodian, verifies too.
    let full = PathBuf::from(result["package_zip"].as_str().expect("the browser script downloaded no package"));
    let v = cli.command().arg("verify").arg(&full).args(["--server-key", &fp]).output().expect("fieldcap verify");
    assert!(v.status.success(), "fieldcap verify of the full package: {}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
    let (names, package) = zip_names_and_package(&zip_path);
    let minor = clips.iter().find(|c| c["minor_present"] == true).expect("minor clip");
    let minor_id = minor["clip_id"].as_str().expect("id");
    assert!(!names.iter().any(|n| n.contains(minor_id)), "the minor's item {minor_id} is in the released package: {names:?}");
    let packaged: Vec<&str> = package["items"].as_array().expect("package.json items").iter().filter_map(|i| i["clip_id"].as_str()).collect();
    assert!(!packaged.contains(&minor_id), "package.json lists the minor's item: {packaged:?}");
    assert_eq!(package["omitted"]["sensitive"], 1, "package.json does not count the held-back item: {}", package["omitted"]);
    for c in clips.iter().filter(|c| c["minor_present"] == false) {
        let id = c["clip_id"].as_str().expect("id");
        assert!(names.iter().any(|n| n.contains(id)), "item {id} missing from the released package: {names:?}");
        assert!(packaged.contains(&id), "package.json does not list item {id}: {packaged:?}");
    }
    for (what, status) in [("main", main), ("idle", idle)] {
        match status {
            None => panic!("the browser script ({what}) ran longer than {BROWSER_LIMIT:?} and was killed"),
            Some(s) => assert!(s.success(), "browser checks ({what}) failed (see above); server stderr tail:\n{}", tail(&serve_log, 40)),
        }
    }
}

/// Runs `node tests/browser/console.mjs CONFIG PHASE` (at most [`BROWSER_LIMIT`]) and prints
/// its report; None if it had to be killed.
fn run_browser(config: &Path, phase: &str, tmp: &Path) -> Option<std::process::ExitStatus> {
    let log_out = tmp.join(format!("node-{phase}.stdout"));
    let log_err = tmp.join(format!("node-{phase}.stderr"));
    let mut node = Command::new("node")
        .arg(workspace().join("tests/browser/console.mjs"))
        .arg(config)
        .arg(phase)
        .current_dir(workspace().join("tests/browser"))
        .stdout(std::fs::File::create(&log_out).expect("log"))
        .stderr(std::fs::File::create(&log_err).expect("log"))
        .spawn()
        .expect("run node");
    let status = wait_bounded(&mut node, BROWSER_LIMIT);
    eprintln!("--- browser checks ({phase}) ---\n{}", std::fs::read_to_string(&log_out).unwrap_or_default());
    let errors = std::fs::read_to_string(&log_err).unwrap_or_default();
    if !errors.trim().is_empty() {
        eprintln!("node stderr ({phase}):\n{errors}");
    }
    status
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The file names of a package ZIP and its `package.json`.
fn zip_names_and_package(path: &Path) -> (Vec<String>, Value) {
    use std::io::Read;
    let f = std::fs::File::open(path).expect("zip");
    let mut z = zip::ZipArchive::new(f).expect("a ZIP archive");
    let names = z.file_names().map(str::to_string).collect();
    let mut text = String::new();
    z.by_name("package.json").expect("package.json in the ZIP").read_to_string(&mut text).expect("read package.json");
    (names, serde_json::from_str(&text).expect("package.json"))
}
