//! Device-side commands (a stand-in for the phone app) and the demo.

use crate::output::bytes_bar;
use anyhow::{bail, Context};
use clap::Args;
use fieldcap_core::identity::FileKeyProtector;
use fieldcap_core::manifest::{Observation, Role};
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::store::Profile;
use fieldcap_core::track::TrackPoint;
use fieldcap_core::Store;
use fieldcap_package::package::TrustAnchors;
use fieldcap_package::ServerKeyPin;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `fieldcap capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// The recorded file (moved into the evidence store once sealed).
    pub file: PathBuf,
    /// GPS track (.gpx or .geojson).
    #[arg(long)]
    pub track: Option<PathBuf>,
    /// Start of capture (RFC 3339); default: the file's modification time.
    #[arg(long)]
    pub started_at: Option<String>,
    /// End of capture (RFC 3339); default: the file's modification time.
    #[arg(long)]
    pub ended_at: Option<String>,
    /// Tag (repeatable): minor_present, victim_present, injury, use_of_force, …
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Note.
    #[arg(long)]
    pub note: Option<String>,
    /// Incident hint.
    #[arg(long)]
    pub incident_hint: Option<String>,
    /// Clock source of the times: system, gnss or network.
    #[arg(long)]
    pub clock_source: Option<String>,
    /// Print the sealed item as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fieldcap observe`.
#[derive(Args, Debug)]
pub struct ObserveArgs {
    /// What the witness saw.
    #[arg(long)]
    pub text: String,
    /// When (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Latitude of the place.
    #[arg(long, requires = "lon", allow_hyphen_values = true)]
    pub lat: Option<f64>,
    /// Longitude of the place.
    #[arg(long, requires = "lat", allow_hyphen_values = true)]
    pub lon: Option<f64>,
    /// Accuracy of the place, metres.
    #[arg(long, default_value_t = 25.0)]
    pub accuracy: f64,
    /// Structured field K=V (repeatable): agency, badge, plate, detained, children, or any other name.
    #[arg(long = "field")]
    pub fields: Vec<String>,
    /// Tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Print the sealed item as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Opens the store with the desktop key protector and reports what recovery did.
pub fn open(home: &Path) -> anyhow::Result<Store> {
    let store = Store::open(home, Arc::new(FileKeyProtector)).context("opening the device store")?;
    let r = store.open_report();
    if r.is_eventful() {
        eprintln!(
            "recovery: {} interrupted seal(s) completed, {} undone (source untouched), {} recording segment(s) recovered, {} item(s) flagged, {} moved to quarantine{}",
            r.seals_completed.len(),
            r.seals_undone,
            r.segments_recovered.len(),
            r.flagged.len(),
            r.quarantined.len(),
            r.database_moved_aside.as_ref().map(|a| format!("; unreadable database moved aside as {a}, {} item(s) restored from signed manifests", r.items_restored)).unwrap_or_default()
        );
    }
    Ok(store)
}

pub fn init(home: &Path, role: &str, org: Option<String>, callsign: Option<String>, sealed: bool, lock_after: Option<&str>) -> anyhow::Result<i32> {
    let mut store = open(home)?;
    let role_v = Role::parse(role)?;
    // Sealed storage never turns off again once on (items sealed encrypted stay so).
    let sealed = sealed || store.profile().sealed_storage;
    let lock_after_secs = match lock_after {
        None if sealed && !store.profile().sealed_storage => Profile::default_lock_after(role_v),
        None => store.profile().lock_after_secs,
        Some("never") => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| anyhow::anyhow!("--lock-after takes a number of seconds or 'never'"))?),
    };
    if lock_after.is_some() && !sealed {
        anyhow::bail!("--lock-after needs sealed storage (--sealed)");
    }
    let profile = Profile { role: role_v, org, callsign, sealed_storage: sealed, lock_after_secs };
    if store.open_report().key_created {
        store.set_profile(profile)?;
        println!("initialised device {} ({role})", store.device_id());
    } else if store.profile() != &profile {
        store.set_profile(profile)?;
        println!("device {} already initialised; key kept, profile updated ({role})", store.device_id());
    } else {
        println!("device {} already initialised; key kept", store.device_id());
    }
    Ok(0)
}

pub fn lock(home: &Path, all: bool, clip_id: Option<&str>, json: bool) -> anyhow::Result<i32> {
    let store = open(home)?;
    if !all {
        let id = clip_id.ok_or_else(|| anyhow::anyhow!("name an item or pass --all"))?;
        let now = store.lock_item(id)?;
        if json {
            println!("{}", serde_json::json!({"clip_id": id, "locked_now": now}));
        } else if now {
            println!("locked {}: only the council can open it now; it still uploads", fieldcap_core::items::short(id));
        } else {
            println!("{} was locked already", fieldcap_core::items::short(id));
        }
        return Ok(0);
    }
    let r = store.lock_all()?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "locked {} item(s) now, {} already locked; {} wait for the council's key (enrol and sync), {} stored before sealed storage cannot be locked",
            r.locked.len(),
            r.already_locked,
            r.waiting_for_escrow.len(),
            r.not_sealed.len()
        );
    }
    // Items that could not be locked are a condition the user must see.
    Ok(if r.waiting_for_escrow.is_empty() { 0 } else { 3 })
}

fn parse_time(s: &Option<String>, what: &str) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    Ok(match s {
        Some(s) => Some(fieldcap_core::time::parse(s, what)?),
        None => None,
    })
}

pub fn capture(home: &Path, a: &CaptureArgs) -> anyhow::Result<i32> {
    let track = match &a.track {
        Some(p) => fieldcap_core::track::import_file(p)?,
        None => Vec::new(),
    };
    let req = CaptureRequest {
        started_at: parse_time(&a.started_at, "--started-at")?,
        ended_at: parse_time(&a.ended_at, "--ended-at")?,
        track,
        tags: a.tags.clone(),
        note: a.note.clone(),
        incident_hint: a.incident_hint.clone(),
        clock_source: a.clock_source.clone(),
        app: None,
    }
    .validated()?;
    let store = open(home)?;
    let pb = bytes_bar(0, "sealing");
    let item = store.seal_file(&a.file, req, &mut |n, total| {
        pb.set_length(total);
        pb.set_position(n);
    })?;
    pb.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&item)?);
    } else {
        println!("sealed {} (seq {}, manifest sha256 {})", item.clip_id, item.seq, item.manifest_sha256);
    }
    Ok(0)
}

/// Parses `--field K=V` pairs into the observation's structured fields.
pub fn observation_fields(text: &str, fields: &[String]) -> anyhow::Result<Observation> {
    let mut o = Observation { text: text.to_string(), ..Default::default() };
    for f in fields {
        let (k, v) = f.split_once('=').with_context(|| format!("--field '{f}' is not K=V"))?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("--field name '{k}' must be letters, digits or _");
        }
        let list = || v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty());
        match k {
            "agency" => o.agency = Some(v.to_string()),
            "badge" | "badges" | "badge_numbers" => o.badge_numbers.extend(list()),
            "plate" | "plates" | "vehicle_plates" => o.vehicle_plates.extend(list()),
            "detained" | "people_detained" => o.people_detained = Some(v.parse().with_context(|| format!("--field {k}: '{v}' is not a whole number"))?),
            "children" | "children_present" => {
                o.children_present = Some(match v.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" => true,
                    "no" | "false" | "0" => false,
                    _ => bail!("--field {k}: '{v}' must be yes or no"),
                })
            }
            _ => {
                o.extra.insert(k.to_string(), v.to_string());
            }
        }
    }
    Ok(o)
}

pub fn observe(home: &Path, a: &ObserveArgs) -> anyhow::Result<i32> {
    let at = parse_time(&a.at, "--at")?;
    let place = match (a.lat, a.lon) {
        (Some(lat), Some(lon)) => Some(TrackPoint {
            t: fieldcap_core::time::format(at.unwrap_or_else(chrono::Utc::now)),
            lat,
            lon,
            accuracy_m: a.accuracy,
            altitude_m: None,
            heading_deg: None,
            speed_mps: None,
            provider: "manual".into(),
        }),
        _ => None,
    };
    let req = ObservationRequest { at, place, observation: observation_fields(&a.text, &a.fields)?, tags: a.tags.clone(), incident_hint: None };
    let store = open(home)?;
    let item = store.observe(req)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&item)?);
    } else {
        println!("sealed observation {} (seq {})", item.clip_id, item.seq);
    }
    Ok(0)
}

pub fn clips(home: &Path, json: bool) -> anyhow::Result<i32> {
    let store = open(home)?;
    let items = store.list_items()?;
    let alarms = store.alarms()?;
    if json {
        let v = serde_json::json!({
            "device_id": store.device_id(),
            "items": items,
            "alarms": alarms.iter().map(|(at, kind, detail)| serde_json::json!({"at": at, "kind": kind, "detail": detail})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    for (at, kind, detail) in &alarms {
        println!("ALARM {at} {kind}: {detail}");
    }
    println!("{:>5}  {:36}  {:11}  {:15}  {:9}  {:>12}  {:24}  receipt", "seq", "clip_id", "kind", "state", "integrity", "bytes", "started_at");
    for i in &items {
        println!(
            "{:>5}  {:36}  {:11}  {:15}  {:9}  {:>12}  {:24}  {}",
            i.seq,
            i.clip_id,
            i.kind,
            i.state,
            i.integrity,
            i.media_bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into()),
            i.started_at,
            i.receipted_at.clone().or_else(|| i.last_error.clone()).unwrap_or_else(|| "-".into())
        );
    }
    println!("{} item(s) on device {}", items.len(), store.device_id());
    let sealed = items.iter().filter(|i| i.sealed).count();
    if sealed > 0 {
        let locked: Vec<&str> = items.iter().filter(|i| i.locked).map(|i| fieldcap_core::items::short(&i.clip_id)).collect();
        println!("{sealed} sealed (encrypted at rest); {} locked to the council{}", locked.len(), if locked.is_empty() { String::new() } else { format!(": {}", locked.join(" ")) });
    }
    Ok(0)
}

pub fn export_clip(home: &Path, clip_id: &str, out: &Path) -> anyhow::Result<i32> {
    let store = open(home)?;
    let pb = bytes_bar(0, "exporting");
    store.export_clip(clip_id, out, &mut |n, t| {
        pb.set_length(t);
        pb.set_position(n);
    })?;
    pb.finish_and_clear();
    println!("exported {clip_id} to {}", out.display());
    Ok(0)
}

pub fn custody(home: &Path, clip_id: Option<&str>, all: bool, json: bool) -> anyhow::Result<i32> {
    let store = open(home)?;
    if clip_id.is_none() && !all {
        bail!("give a clip id or --all");
    }
    if let Some(id) = clip_id {
        store.item(id)?;
    }
    let events = store.custody_events(if all { None } else { clip_id })?;
    if json {
        let v: Vec<serde_json::Value> = events
            .iter()
            .map(|e| serde_json::json!({"event": serde_json::from_slice::<serde_json::Value>(&e.body).unwrap_or_default(), "sig": hex::encode(&e.sig)}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for e in &events {
            println!("{:>5}  {}  {:22}  {}", e.seq, e.at, e.event, e.clip_id.as_deref().unwrap_or("-"));
        }
    }
    Ok(0)
}

/// The trust anchors of `fieldcap verify`'s `--witness VKEY` and `--witness-threshold N`.
pub fn trust_anchors(witnesses: &[String], threshold: Option<usize>) -> anyhow::Result<TrustAnchors> {
    let mut anchors = TrustAnchors::default();
    for w in witnesses {
        let vk = fieldcap_evidence::cosignature::VerifierKey::parse(w).with_context(|| format!("--witness {w}"))?;
        if !vk.is_witness() {
            bail!("--witness {w}: not a witness key (signature type 0x04; a log's key is type 0x01)");
        }
        anchors.witnesses.push(vk);
    }
    if let Some(n) = threshold {
        if n == 0 || n > anchors.witnesses.len() {
            bail!("--witness-threshold {n}: between 1 and the number of --witness keys ({})", anchors.witnesses.len());
        }
    }
    anchors.witness_threshold = threshold;
    Ok(anchors)
}
/// `fieldcap verify PATH [--json] [--server-key KEY] [--witness VKEY…] [--witness-threshold N]`:
/// parses the trust anchors, then verifies.
pub fn verify_cmd(path: &Path, json: bool, server_key: Option<&str>, witnesses: &[String], threshold: Option<usize>) -> anyhow::Result<i32> {
    let mut anchors = trust_anchors(witnesses, threshold)?;
    anchors.server_key = server_key.map(parse_server_key).transpose()?;
    verify(path, json, &anchors)
}

/// A `--server-key` value: a fingerprint (64 hex digits) or key id (32 hex digits), or else the
/// path of a PEM public key file. Anything else is refused naming the flag.
pub fn parse_server_key(arg: &str) -> anyhow::Result<ServerKeyPin> {
    if let Ok(pin) = ServerKeyPin::parse(arg) {
        return Ok(pin);
    }
    let p = Path::new(arg);
    if p.is_file() {
        let text = std::fs::read_to_string(p).with_context(|| format!("--server-key: reading '{}'", p.display()))?;
        return ServerKeyPin::parse(&text).map_err(|_| anyhow::anyhow!("--server-key: '{}' is not an Ed25519 public key PEM file", p.display()));
    }
    bail!("--server-key: '{arg}' is neither a server key fingerprint (64 hex digits), a key id (32 hex digits) nor a PEM public key file")
}

/// Verifies a package or an exported clip (a folder, or a .zip of either) against the trust
/// anchors (pinned server key, witnesses), if any; prints one line per check, then the server key lines, then the verdict. Exit 0 only if
/// every check holds (an unpinned key is a warning, not a failure).
pub fn verify(path: &Path, json: bool, anchors: &TrustAnchors) -> anyhow::Result<i32> {
    if path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        return verify_zip(path, json, anchors);
    }
    if !path.is_dir() {
        bail!("'{}' is not a folder to verify", path.display());
    }
    let report = if path.join("package.json").exists() {
        fieldcap_package::package::verify_package_with(path, anchors)
    } else if path.join("manifest.json").exists() {
        if !anchors.witnesses.is_empty() {
            bail!("--witness applies to packages (their log checkpoint); '{}' is an exported clip", path.display());
        }
        fieldcap_package::clip::verify_clip_dir_with(path, anchors.server_key.as_ref())
    } else {
        bail!("'{}' holds neither manifest.json (an exported clip) nor package.json (a package)", path.display());
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"ok": report.all_ok(), "checks": report.checks, "server_key": report.server_key}))?);
    } else {
        for c in &report.checks {
            println!("{}  {}  [{}]  {}", if c.ok { "ok  " } else { "FAIL" }, c.name, c.file, c.detail);
        }
        match &report.server_key {
            Some(k) => k.lines().iter().for_each(|l| println!("{l}")),
            None if path.join("manifest.json").exists() && !path.join("package.json").exists() => {
                println!("server key: none (this clip has no server receipt; only the device's signature is checked)")
            }
            None => {}
        }
        let unpinned = report.server_key.as_ref().is_some_and(|k| k.pin.is_none());
        println!(
            "{}",
            match (report.all_ok(), unpinned) {
                (true, false) => "VERIFIED: every check holds",
                (true, true) => "VERIFIED: every check holds, but the server key is NOT PINNED (see above)",
                (false, _) => "NOT VERIFIED: see FAIL lines",
            }
        );
    }
    Ok(if report.all_ok() { 0 } else { 1 })
}

/// Verifies a zipped package or clip: extracts it into a private temporary folder (refusing any
/// entry whose name would land outside it), verifies that folder, and removes it. A damaged
/// archive (bad CRC, truncated) fails with an error naming the entry.
fn verify_zip(path: &Path, json: bool, anchors: &TrustAnchors) -> anyhow::Result<i32> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tmp = std::env::temp_dir().join(format!("fieldcap-verify-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&tmp).context("creating a temporary folder to extract into")?;
    let result = (|| -> anyhow::Result<i32> {
        fieldcap_server::package::zip::unzip_into(path, &tmp)?;
        // The package may sit at the archive's root or in one top-level folder.
        let root = if tmp.join("package.json").exists() || tmp.join("manifest.json").exists() {
            tmp.clone()
        } else {
            let dirs: Vec<PathBuf> = std::fs::read_dir(&tmp)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
            match dirs.as_slice() {
                [one] => one.clone(),
                _ => bail!("the archive holds neither package.json nor manifest.json at its root or in one top-level folder"),
            }
        };
        verify(&root, json, anchors)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Deterministic pseudo-random bytes for demo media (xorshift; not a cryptographic source).
pub fn demo_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small but well-formed MP4 as a phone writes one: `ftyp`, `mdat` of `len` pseudo-random
/// bytes (the "video"), and `moov` with a video track and a `udta/©xyz` atom holding the place
/// (ISO 6709), which a release package must not carry.
pub fn demo_movie(len: usize, seed: u64, lat: f64, lon: f64) -> Vec<u8> {
    fn bx(typ: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(typ);
        v.extend_from_slice(payload);
        v
    }
    fn full(typ: &[u8], payload: &[u8]) -> Vec<u8> {
        bx(typ, &[&[0u8; 4][..], payload].concat())
    }
    let xyz = format!("{lat:+08.4}{lon:+09.4}/");
    let text = [&(xyz.len() as u16).to_be_bytes()[..], &0x15c7u16.to_be_bytes()[..], xyz.as_bytes()].concat();
    let hdlr = full(b"hdlr", &[&[0u8; 4][..], b"vide", &[0u8; 12][..], b"VideoHandle\0"].concat());
    let mdia = bx(b"mdia", &[full(b"mdhd", &[0u8; 20]), hdlr, bx(b"minf", &[0u8; 24])].concat());
    let trak = bx(b"trak", &[full(b"tkhd", &[0u8; 80]), mdia].concat());
    let udta = bx(b"udta", &bx(b"\xA9xyz", &text));
    let moov = bx(b"moov", &[full(b"mvhd", &[0u8; 96]), trak, udta].concat());
    let head = bx(b"ftyp", b"isom\0\0\x02\0isommp41");
    let mdat_len = len.saturating_sub(head.len() + moov.len() + 8);
    [head, bx(b"mdat", &demo_bytes(mdat_len, seed)), moov].concat()
}

/// A walk near a point: `n` fixes, one every 5 s from `start`.
pub fn demo_track(start: chrono::DateTime<chrono::Utc>, lat: f64, lon: f64, n: usize) -> Vec<TrackPoint> {
    (0..n)
        .map(|i| TrackPoint {
            t: fieldcap_core::time::format(start + chrono::Duration::seconds(5 * i as i64)),
            lat: lat + 0.00004 * i as f64,
            lon: lon + 0.00003 * i as f64,
            accuracy_m: 4.0 + (i % 3) as f64,
            altitude_m: Some(12.0),
            heading_deg: Some(37.0),
            speed_mps: Some(1.2),
            provider: "gps".into(),
        })
        .collect()
}
