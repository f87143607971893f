//! A soak under faults (issue 12), run by `scripts/soak.sh`: not a test, a program that runs
//! for a set time and then checks what must hold.
//!
//! The real `fieldcap serve` (a release build, given with `--bin`) runs as a child process on
//! 127.0.0.1 over `ROOT/data`, where `ROOT` is a small filesystem of its own (the script mounts a
//! tmpfs). `--devices` device stores (fieldcap-core, in `--work`) seal clips, photos and
//! observations of varied sizes and sync through the testkit fault proxy (cuts, stalls, 503s,
//! truncated answers) while:
//!
//! * the server is SIGKILLed at random intervals and restarted on the same port;
//! * `ROOT` is filled up with a filler file until ENOSPC, held full, and freed (disk-full
//!   episodes; skipped with `--no-disk-full`, when `ROOT` is not a filesystem of its own);
//! * every device's clock is minutes off (±1–15 min, through `Store::set_clock_skew_ms`), and
//!   clocks jump at random, also in the middle of a pass.
//!
//! Every few seconds it samples the server's memory (`VmRSS`) and open file descriptors, and
//! fetches and verifies the log's checkpoint. When the time is up the faults stop, the devices
//! sync until their queues drain (bounded), and it checks: every sealed item is receipted
//! exactly once (device side: a receipt that verifies against the item's manifest; server
//! side: one item record and one log leaf per item, no other), every stored original matches
//! its manifest (length, SHA-256 and BLAKE3 recomputed), the log is consistent from the first
//! checkpoint seen to the last (RFC 6962 proofs between every pair seen in turn) and its last
//! root is the root of the leaves on record, nothing half-written is visible (no `.part` of a
//! received item, no temporary files, no unreferenced originals), no error answer lacks a
//! problem document, the server never exited unasked, and its memory and descriptors are flat.
//! It prints a summary and a table of the curve, writes `samples.csv` and `summary.txt` to
//! `--out`, and exits non-zero if anything failed.

use fieldcap_core::manifest::{Manifest, Observation};
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::sync::{CancelToken, HttpRequest, HttpResponse, ReqwestTransport, SyncOptions, Transport, TransportError};
use fieldcap_core::Store;
use fieldcap_evidence::protocol::{ProofResponse, Receipt, TimeResponse};
use fieldcap_evidence::receipt::{ExpectedItem, ReceiptVerifier};
use fieldcap_evidence::tlog;
use fieldcap_testkit::bytes::{seeded, XorShift};
use fieldcap_testkit::device::open_store;
use fieldcap_testkit::media::{jpeg_scan, phone_movie, phone_photo};
use fieldcap_testkit::proxy::{Fault, Proxy};
use fieldcap_testkit::track::walk;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

// ───────────────────────────── arguments ─────────────────────────────

struct Args {
    minutes: f64,
    devices: usize,
    bin: PathBuf,
    root: PathBuf,
    work: PathBuf,
    out: PathBuf,
    seed: u64,
    disk_full: bool,
    sample_every: Duration,
}

fn usage() -> &'static str {
    "soak --bin FIELDCAP --root DIR --work DIR --out DIR [--minutes N] [--devices N] [--seed N] [--no-disk-full] [--sample-secs N]"
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        minutes: 10.0,
        devices: 30,
        bin: PathBuf::new(),
        root: PathBuf::new(),
        work: PathBuf::new(),
        out: PathBuf::new(),
        seed: 0x5eed_2026,
        disk_full: true,
        sample_every: Duration::from_secs(2),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value; usage: {}", usage()));
        match k.as_str() {
            "--minutes" => a.minutes = val("--minutes")?.parse().map_err(|_| "--minutes is not a number".to_string())?,
            "--devices" => a.devices = val("--devices")?.parse().map_err(|_| "--devices is not a whole number".to_string())?,
            "--seed" => a.seed = val("--seed")?.parse().map_err(|_| "--seed is not a whole number".to_string())?,
            "--sample-secs" => a.sample_every = Duration::from_secs_f64(val("--sample-secs")?.parse().map_err(|_| "--sample-secs is not a number".to_string())?),
            "--bin" => a.bin = val("--bin")?.into(),
            "--root" => a.root = val("--root")?.into(),
            "--work" => a.work = val("--work")?.into(),
            "--out" => a.out = val("--out")?.into(),
            "--no-disk-full" => a.disk_full = false,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other:?}; usage: {}", usage())),
        }
    }
    if a.bin.as_os_str().is_empty() || a.root.as_os_str().is_empty() || a.work.as_os_str().is_empty() || a.out.as_os_str().is_empty() {
        return Err(format!("--bin, --root, --work and --out are required; usage: {}", usage()));
    }
    if a.devices == 0 || a.minutes <= 0.0 {
        return Err("--devices and --minutes must be above zero".into());
    }
    Ok(a)
}

// ───────────────────────────── shared counters ─────────────────────────────

#[derive(Default)]
struct Stats {
    sealed: AtomicU64,
    sealed_bytes: AtomicU64,
    passes_ok: AtomicU64,
    passes_failed: AtomicU64,
    receipts: AtomicU64,
    clock_jumps: AtomicU64,
    kills: AtomicU64,
    restart_attempts_failed: AtomicU64,
    /// SIGKILLs while the disk was full, and what the immediate restart did.
    kills_disk_full: AtomicU64,
    started_disk_full: AtomicU64,
    refused_start_disk_full: AtomicU64,
    disk_full_episodes: AtomicU64,
    disk_full_ms: AtomicU64,
    filler_peak: AtomicU64,
    transport_errors: AtomicU64,
    /// Answers by "status problem-name" (e.g. `500 internal`, `409 offset-mismatch`).
    answers: Mutex<BTreeMap<String, u64>>,
    /// 5xx answers the server gave while the disk was full (or just after).
    server_5xx_disk_full: AtomicU64,
    /// 5xx answers the server gave at other times.
    server_5xx_other: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Stats {
    fn fail(&self, what: String) {
        eprintln!("FAILURE: {what}");
        self.failures.lock().expect("failures").push(what);
    }
    fn answer(&self, key: String) {
        *self.answers.lock().expect("answers").entry(key).or_default() += 1;
    }
}

fn secs(lo: f64, hi: f64, rng: &mut XorShift) -> Duration {
    Duration::from_secs_f64(lo + (hi - lo) * unit(rng))
}

fn unit(rng: &mut XorShift) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Sleeps `d` in short steps; false when `stop` was raised meanwhile.
fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    !stop.load(Ordering::SeqCst)
}

// ───────────────────────────── the server process ─────────────────────────────

/// `fieldcap serve` as a child process on one port, restarted on the same port (falling back to a
/// new one, and pointing the proxy at it, if the old one cannot be bound).
struct Serve {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    addr: Arc<Mutex<SocketAddr>>,
    pid: Arc<AtomicU32>,
    started: Arc<Mutex<Instant>>,
    proxy: Arc<Proxy>,
}

impl Serve {
    /// Starts `fieldcap serve` on `listen`; its first stdout line must be `listening on
    /// http://ADDR` within 30 s.
    fn spawn(&mut self, listen: &str) -> Result<SocketAddr, String> {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).map_err(|e| format!("server log: {e}"))?;
        let mut child = Command::new(&self.bin)
            .args(["serve", "--data"])
            .arg(&self.data)
            .args(["--listen", listen])
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawning fieldcap serve: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(|l| l.ok()));
            lines.for_each(drop);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let addr = line.as_deref().and_then(|l| l.trim().strip_prefix("listening on http://")).and_then(|a| a.parse::<SocketAddr>().ok());
        match addr {
            Some(a) => {
                self.pid.store(child.id(), Ordering::SeqCst);
                *self.started.lock().expect("started") = Instant::now();
                self.child = Some(child);
                *self.addr.lock().expect("addr") = a;
                self.proxy.set_upstream(a);
                Ok(a)
            }
            None => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!("fieldcap serve did not start ({status}); its first line was {line:?}"))
            }
        }
    }

    /// SIGKILL (a crash: no clean shutdown), reaped.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.pid.store(0, Ordering::SeqCst);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again, on the same port while that can be bound (e.g. it may fail to start
    /// while the disk is full: it is tried again every half second), within `limit`.
    fn restart(&mut self, stats: &Stats, limit: Duration) -> Result<(), String> {
        let port = self.addr.lock().expect("addr").port();
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < limit {
            // After 20 s on the old port, any free port will do (the proxy follows).
            let listen = if started.elapsed() < Duration::from_secs(20) { format!("127.0.0.1:{port}") } else { "127.0.0.1:0".into() };
            match self.spawn(&listen) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    stats.restart_attempts_failed.fetch_add(1, Ordering::SeqCst);
                    last = e;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        Err(format!("the server could not be restarted within {limit:?}: {last}"))
    }

    /// The exit status, if the process ended without being killed by us.
    fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => {
                self.child = None;
                self.pid.store(0, Ordering::SeqCst);
                Some(st.to_string())
            }
            _ => None,
        }
    }
}

// ───────────────────────────── a transport that checks every answer ─────────────────────────────

/// The built-in transport, counting answers by status and problem type, and checking that every
/// error answer is a problem document.
struct Watched {
    inner: ReqwestTransport,
    stats: Arc<Stats>,
    disk_full: Arc<AtomicBool>,
    /// Unix ms until which a 5xx still counts as caused by the disk-full episode that just ended.
    disk_grace_until: Arc<AtomicI64>,
}

fn path_kind(url: &str) -> &'static str {
    const KINDS: [&str; 8] = ["/v1/uploads", "/v1/manifests", "/v1/receipts", "/v1/custody", "/v1/time", "/v1/enroll", "/v1/log", "/v1/"];
    KINDS.into_iter().find(|k| url.contains(k)).unwrap_or("other")
}

impl Transport for Watched {
    fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let what = format!("{} {}", req.method, path_kind(&req.url));
        // An answer to HEAD has no body (RFC 9110): only its Content-Type can say "problem".
        let head = req.method == "HEAD";
        let r = self.inner.send(req);
        match &r {
            Err(_) => {
                self.stats.transport_errors.fetch_add(1, Ordering::SeqCst);
            }
            Ok(resp) if resp.status >= 400 => {
                let problem: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
                let ptype = problem.as_ref().and_then(|p| p.get("type")).and_then(|t| t.as_str()).unwrap_or("");
                let ct = resp.header("content-type").unwrap_or("");
                // The proxy's own 503s name a test problem type; to HEAD they come bodiless, and
                // the server never answers 503, so a bodiless 503 to HEAD is the proxy's.
                let from_proxy = ptype.ends_with("/problems/test") || (head && resp.status == 503 && resp.body.is_empty());
                let is_problem = ct.starts_with("application/problem+json")
                    && (head && resp.body.is_empty()
                        || problem.as_ref().is_some_and(|p| p.get("title").is_some() && p.get("status").and_then(|s| s.as_u64()) == Some(resp.status as u64)));
                if !is_problem {
                    self.stats.fail(format!("{what}: HTTP {} without a problem document (content-type {ct:?})", resp.status));
                }
                let name = if from_proxy { "proxy".to_string() } else { ptype.rsplit('/').next().unwrap_or("").to_string() };
                self.stats.answer(format!("{} {name}", resp.status));
                if resp.status >= 500 && !from_proxy {
                    let now = chrono::Utc::now().timestamp_millis();
                    if self.disk_full.load(Ordering::SeqCst) || now <= self.disk_grace_until.load(Ordering::SeqCst) {
                        self.stats.server_5xx_disk_full.fetch_add(1, Ordering::SeqCst);
                    } else {
                        self.stats.server_5xx_other.fetch_add(1, Ordering::SeqCst);
                        self.stats.answer(format!("{} {name} (disk not full): {what}", resp.status));
                    }
                }
            }
            Ok(_) => {}
        }
        r
    }
}

// ───────────────────────────── devices ─────────────────────────────

struct Dev {
    store: Arc<Store>,
    home: PathBuf,
    idx: usize,
}

/// The device's (wrong) clock.
fn device_now(skew: &AtomicI64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::milliseconds(skew.load(Ordering::SeqCst))
}

/// A clock skew of 1–15 minutes, either way.
fn random_skew(rng: &mut XorShift) -> i64 {
    let ms = (60_000.0 + 840_000.0 * unit(rng)) as i64;
    if rng.next_u64().is_multiple_of(2) {
        ms
    } else {
        -ms
    }
}

/// Seals one item: a video (MP4) or a photo (JPEG) of 2 KiB – 4 MiB, or an observation.
/// Returns the media bytes.
fn seal_one(d: &Dev, skew: &AtomicI64, rng: &mut XorShift, n: u64) -> Result<u64, String> {
    let now = device_now(skew);
    let r = rng.next_u64() % 100;
    let len = match rng.next_u64() % 100 {
        0..65 => 2048 + (rng.next_u64() % (62 * 1024)) as usize,
        65..90 => (64 << 10) + (rng.next_u64() % (960 << 10)) as usize,
        _ => (1 << 20) + (rng.next_u64() % (3 << 20)) as usize,
    };
    let seed = rng.next_u64();
    if r < 15 {
        let req = ObservationRequest {
            at: Some(now - chrono::Duration::seconds(20)),
            observation: Observation { text: format!("soak note {n} of device {}", d.idx), ..Default::default() },
            ..Default::default()
        };
        d.store.observe(req).map_err(|e| format!("observe: {e}"))?;
        return Ok(0);
    }
    let (name, bytes) = if r < 70 {
        (format!("in-{n}.mp4"), phone_movie(&seeded(len, seed), seed.is_multiple_of(2), false))
    } else {
        (format!("in-{n}.jpg"), phone_photo(seed.is_multiple_of(2), &jpeg_scan(len, seed)))
    };
    let start = now - chrono::Duration::seconds(90);
    let (lat, lon) = fieldcap_testkit::device::HARBOR;
    let req = CaptureRequest {
        started_at: Some(start),
        ended_at: Some(start + chrono::Duration::seconds(60)),
        track: walk(start, chrono::Duration::seconds(20), &[(lat, lon), (lat + 0.0001, lon + 0.0001)]),
        ..Default::default()
    };
    let src = d.home.join(&name);
    std::fs::write(&src, &bytes).map_err(|e| format!("writing {name}: {e}"))?;
    let item = d.store.seal_file(&src, req, &mut |_, _| {}).map_err(|e| format!("seal: {e}"))?;
    let _ = std::fs::remove_file(&src);
    Ok(item.media.map(|m| m.bytes).unwrap_or(0))
}

fn soak_opts() -> SyncOptions {
    SyncOptions {
        budget: Duration::from_secs(20),
        chunk_size: 256 << 10,
        max_chunk_size: 2 << 20,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_secs(1),
        request_timeout: Duration::from_secs(8),
        max_retries: 4,
        ..Default::default()
    }
}

// ───────────────────────────── samples ─────────────────────────────

#[derive(Clone)]
struct Sample {
    t: f64,
    phase: &'static str,
    pid: u32,
    age: f64,
    rss_kib: u64,
    fds: u64,
    disk_full: bool,
    sealed: u64,
    receipts: u64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn median(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

// ───────────────────────────── the log ─────────────────────────────

fn get(t: &dyn Transport, url: String) -> Result<HttpResponse, String> {
    t.send(HttpRequest { method: "GET".into(), url, headers: vec![], body: vec![], timeout: Duration::from_secs(5) }).map_err(|e| e.to_string())
}

/// The server's key and log origin, from `GET /v1/time`.
fn verifier(t: &dyn Transport, base: &str) -> Result<ReceiptVerifier, String> {
    let r = get(t, format!("{base}/v1/time"))?;
    let tr: TimeResponse = serde_json::from_slice(&r.body).map_err(|e| format!("/v1/time: {e}"))?;
    let key = fieldcap_evidence::identity::parse_public_pem(&tr.server_key_pem).map_err(|e| e.to_string())?;
    Ok(ReceiptVerifier::new(key, &tr.log_origin))
}

// ───────────────────────────── main ─────────────────────────────

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak could not run: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<bool, String> {
    let data = args.root.join("data");
    let filler = args.root.join("filler");
    std::fs::create_dir_all(&args.out).map_err(|e| format!("--out: {e}"))?;
    std::fs::create_dir_all(&args.work).map_err(|e| format!("--work: {e}"))?;
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = Arc::new(AtomicBool::new(true));
    let disk_full = Arc::new(AtomicBool::new(false));
    let disk_grace_until = Arc::new(AtomicI64::new(0));
    let mut rng = XorShift::new(args.seed);

    // The fault proxy: while not quiet, about one connection in three gets a fault.
    let proxy = {
        let quiet = quiet.clone();
        let mut prng = XorShift::new(args.seed ^ 0xfa17);
        Arc::new(Proxy::start(
            "127.0.0.1:9".parse().map_err(|_| "addr")?,
            Box::new(move |_| {
                if quiet.load(Ordering::SeqCst) {
                    return Fault::Pass;
                }
                // Connections are pooled, so a fault cuts many requests' worth of connection.
                match prng.next_u64() % 100 {
                    0..65 => Fault::Pass,
                    65..77 => Fault::DropAfter(prng.next_u64() % 400_000),
                    77..82 => Fault::Stall(Duration::from_millis(500 + prng.next_u64() % 3500)),
                    82..90 => Fault::ServiceUnavailable,
                    _ => Fault::TruncateResponse(prng.next_u64() % 800),
                }
            }),
        ))
    };
    let mut serve = Serve {
        bin: args.bin.clone(),
        data: data.clone(),
        log: args.out.join("server.log"),
        child: None,
        addr: Arc::new(Mutex::new("127.0.0.1:0".parse().map_err(|_| "addr")?)),
        pid: Arc::new(AtomicU32::new(0)),
        started: Arc::new(Mutex::new(Instant::now())),
        proxy: proxy.clone(),
    };
    let first = serve.spawn("127.0.0.1:0")?;
    let base = format!("http://{first}");
    eprintln!("soak: server on {base}, proxy on {}, {} devices, {} min", proxy.url(), args.devices, args.minutes);
    let plain = ReqwestTransport::new().map_err(|e| e.to_string())?;
    let verify = verifier(&plain, &base)?;

    // Devices, enrolled through the proxy (quiet) with their clocks already skewed.
    let mut devs = Vec::new();
    let mut skews = Vec::new();
    for i in 0..args.devices {
        let home = args.work.join(format!("device-{i:02}"));
        let store = Arc::new(open_store(&home));
        let skew = Arc::new(AtomicI64::new(random_skew(&mut rng)));
        store.set_clock_skew_ms(skew.load(Ordering::SeqCst));
        let out = Command::new(&args.bin).args(["token", "--data"]).arg(&data).args(["--role", "monitor"]).output().map_err(|e| format!("fieldcap token: {e}"))?;
        if !out.status.success() {
            return Err(format!("fieldcap token: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let token = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        store.enroll(&plain, &proxy.url(), &token).map_err(|e| format!("enrolling device {i}: {e}"))?;
        devs.push(Arc::new(Dev { store, home, idx: i }));
        skews.push(skew);
    }
    let root_size = fs_size(&args.root);
    // Sealing rate: about a third of ROOT's size in media over the run (mean item ≈ 330 kB),
    // one item per device at least every 3 s on average.
    let target_bytes = root_size.map(|s| s as f64 * 0.33).unwrap_or(300e6);
    let mean_interval = (args.devices as f64 * args.minutes * 60.0 * 330e3 / target_bytes).max(3.0);
    eprintln!("soak: data filesystem {} MiB, each device seals an item every {mean_interval:.1} s on average", root_size.unwrap_or(0) >> 20);

    let t0 = Instant::now();
    let run_for = Duration::from_secs_f64(args.minutes * 60.0);
    let serve = Arc::new(Mutex::new(serve));
    let (pid, started, addr) = {
        let s = serve.lock().expect("serve");
        (s.pid.clone(), s.started.clone(), s.addr.clone())
    };
    quiet.store(false, Ordering::SeqCst);

    // Device threads: seal on their schedule, sync, pause, again.
    let mut handles = Vec::new();
    for (d, skew) in devs.iter().zip(&skews) {
        let (d, skew, stop, stats) = (d.clone(), skew.clone(), stop.clone(), stats.clone());
        let t = Watched { inner: ReqwestTransport::new().map_err(|e| e.to_string())?, stats: stats.clone(), disk_full: disk_full.clone(), disk_grace_until: disk_grace_until.clone() };
        let mut rng = XorShift::new(args.seed.wrapping_add(1000 + d.idx as u64));
        handles.push(std::thread::spawn(move || {
            let mut next_seal = Instant::now() + secs(0.0, mean_interval, &mut rng);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if Instant::now() >= next_seal {
                    n += 1;
                    match seal_one(&d, &skew, &mut rng, n) {
                        Ok(b) => {
                            stats.sealed.fetch_add(1, Ordering::SeqCst);
                            stats.sealed_bytes.fetch_add(b, Ordering::SeqCst);
                        }
                        Err(e) => stats.fail(format!("device {}: {e}", d.idx)),
                    }
                    // Exponential gaps (a Poisson process).
                    next_seal = Instant::now() + Duration::from_secs_f64(-mean_interval * (1.0 - unit(&mut rng)).ln());
                }
                match d.store.sync_once(&t, &soak_opts(), &CancelToken::new(), &mut |_| {}) {
                    Ok(s) => {
                        stats.passes_ok.fetch_add(1, Ordering::SeqCst);
                        stats.receipts.fetch_add(s.receipts_verified as u64, Ordering::SeqCst);
                    }
                    Err(_) => {
                        stats.passes_failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                nap(secs(0.2, 2.0, &mut rng), &stop);
            }
        }));
    }

    // Clock jumps: now and then a device's clock is set to another wrong time, possibly in
    // the middle of its pass (its signed requests then go stale until it measures again).
    {
        let (devs, skews, stop, stats) = (devs.clone(), skews.clone(), stop.clone(), stats.clone());
        let mut rng = XorShift::new(args.seed ^ 0xc10c);
        handles.push(std::thread::spawn(move || {
            while nap(secs(1.0, 6.0, &mut rng), &stop) {
                let i = (rng.next_u64() % devs.len() as u64) as usize;
                let s = random_skew(&mut rng);
                skews[i].store(s, Ordering::SeqCst);
                devs[i].store.set_clock_skew_ms(s);
                stats.clock_jumps.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    // The killer: SIGKILL at random, restart on the same port after a short pause.
    {
        let (serve, stop, stats) = (serve.clone(), stop.clone(), stats.clone());
        let mut rng = XorShift::new(args.seed ^ 0x4b11);
        handles.push(std::thread::spawn(move || {
            while nap(secs(12.0, 45.0, &mut rng), &stop) {
                let mut s = serve.lock().expect("serve");
                s.kill();
                stats.kills.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(secs(0.1, 2.5, &mut rng));
                if let Err(e) = s.restart(&stats, Duration::from_secs(120)) {
                    stats.fail(e);
                }
            }
        }));
    }

    // Disk-full episodes: fill ROOT until ENOSPC, hold it full (topped up every second, as
    // the server may free a little), free it. Every second episode also SIGKILLs the server
    // while the disk is full and tries to start it then (recovery at start-up under ENOSPC);
    // if it will not start, it is started once the disk is free again.
    if args.disk_full {
        let (stop, stats, disk_full, grace, filler, serve) = (stop.clone(), stats.clone(), disk_full.clone(), disk_grace_until.clone(), filler.clone(), serve.clone());
        let mut rng = XorShift::new(args.seed ^ 0xd15c);
        handles.push(std::thread::spawn(move || {
            let mut episode = 0u64;
            while nap(secs(20.0, 50.0, &mut rng), &stop) {
                episode += 1;
                let began = Instant::now();
                match fill(&filler) {
                    Ok(n) => {
                        disk_full.store(true, Ordering::SeqCst);
                        stats.disk_full_episodes.fetch_add(1, Ordering::SeqCst);
                        stats.filler_peak.fetch_max(n, Ordering::SeqCst);
                        let hold_until = Instant::now() + secs(4.0, 15.0, &mut rng);
                        let kill_at = Instant::now() + secs(1.0, 3.0, &mut rng);
                        let mut killed = episode % 2 == 1;
                        while Instant::now() < hold_until {
                            std::thread::sleep(Duration::from_millis(250));
                            let _ = fill_more(&filler);
                            if !killed && Instant::now() >= kill_at {
                                killed = true;
                                let mut s = serve.lock().expect("serve");
                                s.kill();
                                stats.kills.fetch_add(1, Ordering::SeqCst);
                                stats.kills_disk_full.fetch_add(1, Ordering::SeqCst);
                                let port = s.addr.lock().expect("addr").port();
                                match s.spawn(&format!("127.0.0.1:{port}")) {
                                    Ok(_) => stats.started_disk_full.fetch_add(1, Ordering::SeqCst),
                                    Err(_) => stats.refused_start_disk_full.fetch_add(1, Ordering::SeqCst),
                                };
                            }
                        }
                    }
                    Err(e) => stats.fail(format!("filling the data filesystem: {e}")),
                }
                if let Err(e) = std::fs::remove_file(&filler) {
                    stats.fail(format!("removing the filler: {e}"));
                }
                disk_full.store(false, Ordering::SeqCst);
                grace.store(chrono::Utc::now().timestamp_millis() + 3000, Ordering::SeqCst);
                stats.disk_full_ms.fetch_add(began.elapsed().as_millis() as u64, Ordering::SeqCst);
                let mut s = serve.lock().expect("serve");
                if s.child.is_none() {
                    if let Err(e) = s.restart(&stats, Duration::from_secs(120)) {
                        stats.fail(e);
                    }
                }
            }
        }));
    }

    // Checkpoints: fetched and verified every few seconds, straight from the server.
    let checkpoints: Arc<Mutex<Vec<tlog::Checkpoint>>> = Arc::new(Mutex::new(Vec::new()));
    let cp_stop = Arc::new(AtomicBool::new(false));
    let cp_handle = {
        let (checkpoints, stop, stats, addr, verify) = (checkpoints.clone(), cp_stop.clone(), stats.clone(), addr.clone(), verify.clone());
        let t = ReqwestTransport::new().map_err(|e| e.to_string())?;
        std::thread::spawn(move || loop {
            let url = format!("http://{}/v1/log/checkpoint", addr.lock().expect("addr"));
            if let Ok(r) = get(&t, url) {
                if r.status == 200 {
                    match verify.checkpoint(&String::from_utf8_lossy(&r.body)) {
                        Ok(cp) => {
                            let mut v = checkpoints.lock().expect("checkpoints");
                            if v.last() != Some(&cp) {
                                v.push(cp);
                            }
                        }
                        Err(e) => stats.fail(format!("a checkpoint does not verify: {e}")),
                    }
                }
            }
            if !nap(Duration::from_secs(3), &stop) {
                break;
            }
        })
    };

    // Samples of the server's memory and descriptors; an exit we did not cause is a failure.
    let mut samples: Vec<Sample> = Vec::new();
    let sample = |phase: &'static str, samples: &mut Vec<Sample>| {
        let p = pid.load(Ordering::SeqCst);
        if p == 0 {
            return;
        }
        if let (Some(rss), Some(fds)) = (rss_kib(p), fd_count(p)) {
            samples.push(Sample {
                t: t0.elapsed().as_secs_f64(),
                phase,
                pid: p,
                age: started.lock().expect("started").elapsed().as_secs_f64(),
                rss_kib: rss,
                fds,
                disk_full: disk_full.load(Ordering::SeqCst),
                sealed: stats.sealed.load(Ordering::SeqCst),
                receipts: stats.receipts.load(Ordering::SeqCst),
            });
        }
    };
    let check_alive = |stats: &Stats| {
        if let Ok(mut s) = serve.try_lock() {
            if let Some(st) = s.exited() {
                stats.fail(format!("the server exited unasked ({st}); see server.log"));
                if let Err(e) = s.restart(stats, Duration::from_secs(120)) {
                    stats.fail(e);
                }
            }
        }
    };
    let mut last_print = Instant::now();
    while t0.elapsed() < run_for {
        std::thread::sleep(args.sample_every);
        check_alive(&stats);
        sample("faults", &mut samples);
        if last_print.elapsed() >= Duration::from_secs(30) {
            last_print = Instant::now();
            let s = samples.last();
            eprintln!(
                "soak: {:>4.0} s  sealed {}  receipts {}  kills {}  disk-full {}  rss {} MiB  fds {}",
                t0.elapsed().as_secs_f64(),
                stats.sealed.load(Ordering::SeqCst),
                stats.receipts.load(Ordering::SeqCst),
                stats.kills.load(Ordering::SeqCst),
                stats.disk_full_episodes.load(Ordering::SeqCst),
                s.map_or(0, |s| s.rss_kib >> 10),
                s.map_or(0, |s| s.fds)
            );
        }
    }
    let fault_secs = t0.elapsed().as_secs_f64();

    // ── the faults stop ──
    eprintln!("soak: faults stop; draining the queues");
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        if h.join().is_err() {
            stats.fail("a soak thread panicked".into());
        }
    }
    let _ = std::fs::remove_file(&filler);
    disk_full.store(false, Ordering::SeqCst);
    quiet.store(true, Ordering::SeqCst);
    {
        let mut s = serve.lock().expect("serve");
        if let Some(st) = s.exited() {
            stats.fail(format!("the server exited unasked ({st})"));
        }
        if s.child.is_none() {
            s.restart(&stats, Duration::from_secs(120))?;
        }
    }
    // Every device syncs until its queue is empty (bounded: 6 minutes in all).
    let drain_started = Instant::now();
    let drain_limit = Duration::from_secs(360);
    let drained: Vec<_> = devs
        .iter()
        .map(|d| {
            let d = d.clone();
            let t = Watched { inner: ReqwestTransport::new().expect("transport"), stats: stats.clone(), disk_full: disk_full.clone(), disk_grace_until: disk_grace_until.clone() };
            std::thread::spawn(move || -> Result<(), String> {
                let opts = SyncOptions { budget: Duration::from_secs(60), ..soak_opts() };
                let mut last = String::new();
                while drain_started.elapsed() < drain_limit {
                    match d.store.sync_once(&t, &opts, &CancelToken::new(), &mut |_| {}) {
                        Ok(s) if s.remaining == 0 => return Ok(()),
                        Ok(s) => last = format!("{} left, needs attention {}, last error {:?}", s.remaining, s.needs_attention, s.last_error),
                        Err(e) => last = e.to_string(),
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(format!("device {} did not drain within {drain_limit:?}: {last}", d.idx))
            })
        })
        .collect();
    let mut quiet_samples_until = Instant::now();
    for h in drained {
        while !h.is_finished() {
            std::thread::sleep(Duration::from_millis(200));
            if quiet_samples_until.elapsed() >= args.sample_every {
                quiet_samples_until = Instant::now();
                sample("drain", &mut samples);
            }
        }
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => stats.fail(e),
            Err(_) => stats.fail("a drain thread panicked".into()),
        }
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    sample("drain", &mut samples);
    cp_stop.store(true, Ordering::SeqCst);
    let _ = cp_handle.join();

    // ── checks ──
    let base = format!("http://{}", addr.lock().expect("addr"));
    let report = check(&args, &data, &base, &plain, &verify, &devs, &checkpoints.lock().expect("checkpoints"), &stats);
    serve.lock().expect("serve").kill();
    let report = report?;
    let files = check_files(&data, &report, &stats);

    // ── summary ──
    let summary = summarise(&args, &stats, &samples, &report, files, fault_secs, drain_secs, mean_interval, root_size, &proxy);
    print!("{summary}");
    std::fs::write(args.out.join("summary.txt"), &summary).map_err(|e| format!("summary.txt: {e}"))?;
    let mut csv = String::from("t_s,phase,pid,proc_age_s,rss_kib,fds,disk_full,sealed,receipts\n");
    for s in &samples {
        let _ = writeln!(csv, "{:.1},{},{},{:.1},{},{},{},{},{}", s.t, s.phase, s.pid, s.age, s.rss_kib, s.fds, s.disk_full as u8, s.sealed, s.receipts);
    }
    std::fs::write(args.out.join("samples.csv"), csv).map_err(|e| format!("samples.csv: {e}"))?;
    let failures = stats.failures.lock().expect("failures");
    Ok(failures.is_empty())
}

/// Size of the filesystem holding `p`, bytes.
fn fs_size(p: &Path) -> Option<u64> {
    let out = Command::new("df").args(["-B1", "--output=size"]).arg(p).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().nth(1)?.trim().parse().ok()
}

fn is_enospc(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(28)
}

/// Writes `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::File::create(path)?;
    write_until_full(&mut f)
}

fn fill_more(path: &Path) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    write_until_full(&mut f)
}

fn write_until_full(f: &mut std::fs::File) -> std::io::Result<u64> {
    let buf = vec![0xA5u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.write(&buf) {
            Ok(0) => return Ok(n),
            Ok(k) => n += k as u64,
            Err(e) if is_enospc(&e) => return Ok(n),
            Err(e) => return Err(e),
        }
    }
}

// ───────────────────────────── the checks ─────────────────────────────

#[derive(Default)]
struct Report {
    device_items: u64,
    device_receipted: u64,
    server_items: u64,
    server_received: u64,
    leaves: u64,
    blobs_checked: u64,
    blob_bytes: u64,
    checkpoints: usize,
    first_size: u64,
    last_size: u64,
    proofs_checked: usize,
    /// Blob names (SHA-256) every received item points at.
    blob_names: HashSet<String>,
}

#[allow(clippy::too_many_arguments)]
fn check(args: &Args, data: &Path, base: &str, t: &dyn Transport, verify: &ReceiptVerifier, devs: &[Arc<Dev>], seen: &[tlog::Checkpoint], stats: &Stats) -> Result<Report, String> {
    let _ = args;
    let mut rep = Report::default();
    let conn = rusqlite::Connection::open_with_flags(data.join("records.sqlite"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| format!("records.sqlite: {e}"))?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    // The log on record: leaf hashes by index, which must run 0..n.
    let leaves: Vec<(u64, String, Vec<u8>)> = {
        let mut s = conn.prepare("SELECT idx, clip_id, leaf_hash FROM log_leaves ORDER BY idx").map_err(|e| e.to_string())?;
        let rows = s.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))).map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    rep.leaves = leaves.len() as u64;
    for (i, (idx, _, _)) in leaves.iter().enumerate() {
        if *idx != i as u64 {
            stats.fail(format!("log leaf {i} is stored at index {idx}"));
            break;
        }
    }
    let mut leaf_of: HashMap<String, Vec<u64>> = HashMap::new();
    for (idx, clip, _) in &leaves {
        leaf_of.entry(clip.clone()).or_default().push(*idx);
    }
    // Server items.
    let server_items: HashMap<String, (String, Option<String>, Option<i64>)> = {
        let mut s = conn.prepare("SELECT clip_id, state, blob_sha256, log_index FROM items").map_err(|e| e.to_string())?;
        let rows = s.query_map([], |r| Ok((r.get::<_, String>(0)?, (r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?, r.get::<_, Option<i64>>(3)?)))).map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    rep.server_items = server_items.len() as u64;
    rep.server_received = server_items.values().filter(|v| v.0 == "received").count() as u64;
    let open_uploads: u64 = conn.query_row("SELECT COUNT(*) FROM uploads WHERE state <> 'complete' AND clip_id IN (SELECT clip_id FROM items WHERE state = 'received')", [], |r| r.get::<_, i64>(0)).map_err(|e| e.to_string())? as u64;
    if open_uploads > 0 {
        stats.fail(format!("{open_uploads} received item(s) still have an upload that is not complete"));
    }

    // Device side: every item receipted, its receipt verified against its manifest, its leaf the
    // one on record, once.
    let mut device_clips = HashSet::new();
    for d in devs {
        for (at, kind, detail) in d.store.alarms().map_err(|e| e.to_string())? {
            stats.fail(format!("device {} raised an alarm at {at}: {kind}: {detail}", d.idx));
        }
        for it in d.store.list_items().map_err(|e| e.to_string())? {
            rep.device_items += 1;
            device_clips.insert(it.clip_id.clone());
            let rec = d.store.item(&it.clip_id).map_err(|e| e.to_string())?;
            let Some((body, sig)) = &rec.receipt else {
                stats.fail(format!("device {} item {} ({}) has no receipt: {:?}", d.idx, it.clip_id, it.state, it.last_error));
                continue;
            };
            let manifest = Manifest::parse(&rec.manifest).map_err(|e| e.to_string())?;
            let msha = hex::encode(Sha256::digest(&rec.manifest));
            let receipt: Receipt = match verify.verify(body, sig, &ExpectedItem::of_manifest(&manifest, &msha)) {
                Ok(r) => r,
                Err(e) => {
                    stats.fail(format!("device {} item {}: its receipt does not verify: {e}", d.idx, it.clip_id));
                    continue;
                }
            };
            if it.state != "receipted" || it.receipted_at.is_none() {
                stats.fail(format!("device {} item {} holds a receipt but is {}", d.idx, it.clip_id, it.state));
                continue;
            }
            rep.device_receipted += 1;
            match leaf_of.get(&it.clip_id).map(Vec::as_slice) {
                Some([idx]) if *idx == receipt.log.index => {
                    let stored = &leaves[*idx as usize].2;
                    if stored.as_slice() != tlog::leaf_hash(&receipt.leaf_bytes()).as_slice() {
                        stats.fail(format!("item {}: the log leaf on record is not the receipt's", it.clip_id));
                    }
                }
                Some([idx]) => stats.fail(format!("item {}: receipt names leaf {}, the log holds it at {idx}", it.clip_id, receipt.log.index)),
                Some(v) => stats.fail(format!("item {} is in the log {} times", it.clip_id, v.len())),
                None => stats.fail(format!("item {} is not in the log", it.clip_id)),
            }
            match server_items.get(&it.clip_id) {
                Some((state, blob, log_index)) => {
                    if state != "received" || *log_index != Some(receipt.log.index as i64) {
                        stats.fail(format!("item {}: the server has it {state} at leaf {log_index:?}", it.clip_id));
                    }
                    match (&manifest.media, blob) {
                        (Some(m), Some(b)) if *b == m.sha256 => {
                            rep.blob_names.insert(b.clone());
                            if let Err(e) = check_blob(data, m) {
                                stats.fail(format!("item {}: {e}", it.clip_id));
                            } else {
                                rep.blobs_checked += 1;
                                rep.blob_bytes += m.bytes;
                            }
                        }
                        (None, None) => {}
                        (m, b) => stats.fail(format!("item {}: manifest media {:?} but blob {b:?} on record", it.clip_id, m.as_ref().map(|m| &m.sha256))),
                    }
                }
                None => stats.fail(format!("item {} is not on the server's record", it.clip_id)),
            }
        }
    }
    let sealed = stats.sealed.load(Ordering::SeqCst);
    if rep.device_items != sealed {
        stats.fail(format!("{sealed} items were sealed but the devices hold {}", rep.device_items));
    }
    for clip in server_items.keys().filter(|c| !device_clips.contains(*c)) {
        stats.fail(format!("the server holds item {clip}, which no device sealed"));
    }
    for clip in leaf_of.keys().filter(|c| !device_clips.contains(*c)) {
        stats.fail(format!("the log holds a leaf for {clip}, which no device sealed"));
    }
    if rep.leaves != rep.device_items || rep.server_received != rep.device_items {
        stats.fail(format!("{} items sealed, {} received by the server, {} log leaves", rep.device_items, rep.server_received, rep.leaves));
    }

    // The log: every checkpoint seen, in turn, consistent with the one before; the last one's
    // root is the root of the leaves on record.
    let final_note = get(t, format!("{base}/v1/log/checkpoint"))?;
    let fin = verify.checkpoint(&String::from_utf8_lossy(&final_note.body)).map_err(|e| format!("the final checkpoint: {e}"))?;
    let mut chain: Vec<tlog::Checkpoint> = seen.to_vec();
    if chain.last() != Some(&fin) {
        chain.push(fin.clone());
    }
    rep.checkpoints = chain.len();
    rep.first_size = chain.first().map_or(0, |c| c.size);
    rep.last_size = fin.size;
    let mut pairs: Vec<(&tlog::Checkpoint, &tlog::Checkpoint)> = chain.windows(2).map(|w| (&w[0], &w[1])).collect();
    if let (Some(a), Some(b)) = (chain.first(), chain.last()) {
        pairs.push((a, b));
    }
    for (a, b) in pairs {
        if b.size < a.size {
            stats.fail(format!("the log shrank from {} to {} leaves", a.size, b.size));
            continue;
        }
        if a.size == b.size {
            if a.root != b.root {
                stats.fail(format!("two checkpoints of size {} with different roots", a.size));
            }
            continue;
        }
        if a.size == 0 {
            continue; // the empty tree is a prefix of every tree
        }
        let r = get(t, format!("{base}/v1/log/consistency?from={}&to={}", a.size, b.size))?;
        let proof: ProofResponse = serde_json::from_slice(&r.body).map_err(|e| format!("consistency proof {}→{}: {e} (HTTP {})", a.size, b.size, r.status))?;
        let proof = tlog::proof_from_hex(&proof.proof).map_err(|e| e.to_string())?;
        match tlog::verify_consistency(a.size, b.size, &a.root, &b.root, &proof) {
            Ok(()) => rep.proofs_checked += 1,
            Err(e) => stats.fail(format!("checkpoints {} and {} are not consistent: {e}", a.size, b.size)),
        }
    }
    if fin.size != rep.leaves {
        stats.fail(format!("the last checkpoint has {} leaves, the record {}", fin.size, rep.leaves));
    } else {
        let hashes: Vec<tlog::Hash> = leaves.iter().filter_map(|l| l.2.as_slice().try_into().ok()).collect();
        if tlog::root_of(&hashes) != fin.root {
            stats.fail("the last checkpoint's root is not the root of the leaves on record".into());
        }
    }
    Ok(rep)
}

/// The stored original of `m`: there, read-only, of the manifest's length, SHA-256 and BLAKE3.
fn check_blob(data: &Path, m: &fieldcap_core::manifest::Media) -> Result<(), String> {
    let p = data.join("blobs").join("sha256").join(&m.sha256[..2]).join(&m.sha256);
    let mut f = std::fs::File::open(&p).map_err(|e| format!("the stored original {} cannot be opened: {e}", m.sha256))?;
    let (mut sha, mut b3, mut n) = (Sha256::new(), blake3::Hasher::new(), 0u64);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).map_err(|e| format!("reading the stored original: {e}"))?;
        if k == 0 {
            break;
        }
        sha.update(&buf[..k]);
        b3.update(&buf[..k]);
        n += k as u64;
    }
    let (s, b) = (hex::encode(sha.finalize()), b3.finalize().to_hex().to_string());
    if n != m.bytes || s != m.sha256 || b != m.blake3 {
        return Err(format!("the stored original differs from its manifest ({n} bytes, sha256 {s}, blake3 {b})"));
    }
    if std::fs::metadata(&p).map(|md| !md.permissions().readonly()).unwrap_or(true) {
        return Err("the stored original is not read-only".into());
    }
    Ok(())
}

/// Nothing half-written: no partial upload left (every item is received), no temporary file,
/// no original that no item points at.
fn check_files(data: &Path, rep: &Report, stats: &Stats) -> (u64, u64) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack = vec![data.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                if name.contains(".tmp") {
                    stats.fail(format!("a temporary folder is left: {}", p.display()));
                }
                stack.push(p);
                continue;
            }
            files += 1;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            let rel = p.strip_prefix(data).unwrap_or(&p).display().to_string();
            if name.ends_with(".part") {
                stats.fail(format!("a partial upload is left although every item is received: {rel}"));
            } else if name.contains(".tmp") || name.starts_with(".tmp") {
                stats.fail(format!("a temporary file is left: {rel}"));
            } else if rel.starts_with("blobs/sha256/") && !rep.blob_names.contains(&name) {
                stats.fail(format!("an original no item points at: {rel}"));
            }
        }
    }
    (files, bytes)
}

// ───────────────────────────── the summary ─────────────────────────────

#[allow(clippy::too_many_arguments)]
fn summarise(
    args: &Args,
    stats: &Stats,
    samples: &[Sample],
    rep: &Report,
    files: (u64, u64),
    fault_secs: f64,
    drain_secs: f64,
    mean_interval: f64,
    root_size: Option<u64>,
    proxy: &Proxy,
) -> String {
    let mut o = String::new();
    let l = |n: u64| n.to_string();
    let peak_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let peak_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    // Flatness: medians of the first and last quarter of the fault phase (after a 10 % warm-up).
    let faults: Vec<&Sample> = samples.iter().filter(|s| s.phase == "faults").collect();
    let warm = fault_secs * 0.10;
    let span = fault_secs - warm;
    let q = |lo: f64, hi: f64| -> (Vec<u64>, Vec<u64>) {
        let v: Vec<&&Sample> = faults.iter().filter(|s| s.t >= lo && s.t < hi).collect();
        (v.iter().map(|s| s.rss_kib).collect(), v.iter().map(|s| s.fds).collect())
    };
    let (mut r1, mut f1) = q(warm, warm + span / 4.0);
    let (mut r4, mut f4) = q(fault_secs - span / 4.0, f64::MAX);
    let (mr1, mr4, mf1, mf4) = (median(&mut r1), median(&mut r4), median(&mut f1), median(&mut f4));
    let rss_flat = mr4 as f64 <= mr1 as f64 * 1.5 + 16.0 * 1024.0;
    let fds_flat = mf4 <= mf1 + 32;
    if !rss_flat {
        stats.fail(format!("server memory is not flat: median RSS {} MiB in the first quarter, {} MiB in the last", mr1 >> 10, mr4 >> 10));
    }
    if !fds_flat {
        stats.fail(format!("server file descriptors are not flat: median {mf1} in the first quarter, {mf4} in the last"));
    }
    let _ = writeln!(o, "\n== soak under faults: {} devices, {} min of faults (seed {}) ==", args.devices, args.minutes, args.seed);
    let _ = writeln!(o, "data filesystem          {} MiB ({})", root_size.unwrap_or(0) >> 20, if args.disk_full { "disk-full episodes on" } else { "disk-full episodes OFF" });
    let _ = writeln!(o, "duration                 {fault_secs:.0} s of faults + {drain_secs:.1} s quiet drain");
    let _ = writeln!(o, "items sealed             {} ({} MiB of media; one per device every {mean_interval:.1} s on average)", l(stats.sealed.load(Ordering::SeqCst)), stats.sealed_bytes.load(Ordering::SeqCst) >> 20);
    let _ = writeln!(o, "items receipted          {} on the devices (receipt verified), {} received by the server, {} log leaves", rep.device_receipted, rep.server_received, rep.leaves);
    let _ = writeln!(o, "originals re-hashed      {} ({} MiB), {} files in the data folder ({} MiB)", rep.blobs_checked, rep.blob_bytes >> 20, files.0, files.1 >> 20);
    let _ = writeln!(
        o,
        "server SIGKILLs          {} ({} while the disk was full: started at once {}, refused to start {}; restart attempts refused in all: {})",
        stats.kills.load(Ordering::SeqCst),
        stats.kills_disk_full.load(Ordering::SeqCst),
        stats.started_disk_full.load(Ordering::SeqCst),
        stats.refused_start_disk_full.load(Ordering::SeqCst),
        stats.restart_attempts_failed.load(Ordering::SeqCst)
    );
    let _ = writeln!(
        o,
        "disk-full episodes       {} ({:.0} s full in all, filler up to {} MiB)",
        stats.disk_full_episodes.load(Ordering::SeqCst),
        stats.disk_full_ms.load(Ordering::SeqCst) as f64 / 1000.0,
        stats.filler_peak.load(Ordering::SeqCst) >> 20
    );
    let _ = writeln!(o, "clock                    skews of 1–15 min either way, {} jumps", stats.clock_jumps.load(Ordering::SeqCst));
    let _ = writeln!(
        o,
        "proxy                    {} connections, {} faulted",
        proxy.connections.load(Ordering::SeqCst),
        proxy.faults.load(Ordering::SeqCst)
    );
    let _ = writeln!(
        o,
        "sync passes              {} returned, {} failed to start; {} transport errors",
        stats.passes_ok.load(Ordering::SeqCst),
        stats.passes_failed.load(Ordering::SeqCst),
        stats.transport_errors.load(Ordering::SeqCst)
    );
    let _ = writeln!(
        o,
        "server 5xx               {} while the disk was full, {} otherwise",
        stats.server_5xx_disk_full.load(Ordering::SeqCst),
        stats.server_5xx_other.load(Ordering::SeqCst)
    );
    let answers = stats.answers.lock().expect("answers");
    let _ = writeln!(o, "error answers            {}", answers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "));
    let _ = writeln!(o, "log                      {} checkpoints seen, size {} → {}, {} consistency proofs verified", rep.checkpoints, rep.first_size, rep.last_size, rep.proofs_checked);
    let _ = writeln!(o, "peak RSS                 {} MiB", peak_rss >> 10);
    let _ = writeln!(o, "peak fds                 {peak_fds}");
    let _ = writeln!(
        o,
        "flat?                    RSS median {} → {} MiB ({}), fds median {mf1} → {mf4} ({}) [first vs last quarter after 10 % warm-up]",
        mr1 >> 10,
        mr4 >> 10,
        if rss_flat { "flat" } else { "NOT flat" },
        if fds_flat { "flat" } else { "NOT flat" }
    );
    // The curve, in ten slices of the whole run.
    let end = samples.last().map_or(0.0, |s| s.t);
    let _ = writeln!(o, "\n  time (s)       phase   samples  RSS med/max MiB   fds med/max   sealed  receipts");
    for k in 0..10 {
        let (lo, hi) = (end * k as f64 / 10.0, end * (k + 1) as f64 / 10.0 + if k == 9 { 1.0 } else { 0.0 });
        let v: Vec<&Sample> = samples.iter().filter(|s| s.t >= lo && s.t < hi).collect();
        if v.is_empty() {
            continue;
        }
        let (mut r, mut f): (Vec<u64>, Vec<u64>) = (v.iter().map(|s| s.rss_kib).collect(), v.iter().map(|s| s.fds).collect());
        let (rmax, fmax) = (r.iter().copied().max().unwrap_or(0), f.iter().copied().max().unwrap_or(0));
        let last = v[v.len() - 1];
        let _ = writeln!(
            o,
            "  {:>5.0}–{:<5.0}  {:>7}  {:>7}  {:>7}/{:<7}  {:>5}/{:<5}  {:>7}  {:>8}",
            lo,
            hi.min(end),
            last.phase,
            v.len(),
            median(&mut r) >> 10,
            rmax >> 10,
            median(&mut f),
            fmax,
            last.sealed,
            last.receipts
        );
    }
    let failures = stats.failures.lock().expect("failures");
    let _ = writeln!(o, "\nfailures                 {}", failures.len());
    for f in failures.iter().take(50) {
        let _ = writeln!(o, "  - {f}");
    }
    let _ = writeln!(o, "{}", if failures.is_empty() { "SOAK PASSED" } else { "SOAK FAILED" });
    o
}
