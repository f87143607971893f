//! `fieldcap demo`: the whole story on an embedded council server on 127.0.0.1.
//!
//! Two devices (a community monitor's phone and a Port Police handset) capture video and witness
//! notes offline; the council office issues enrolment tokens; the devices come online; the
//! monitor's video upload is cut mid-way (signal lost) and resumed from the server's offset;
//! receipts come back and are verified against the transparency log; the council groups the
//! clips into one incident.

use crate::device::{demo_movie, demo_track, init, observation_fields, open};
use crate::output::bytes_bar;
use crate::sync_cmds::{describe, SyncBar};
use anyhow::{bail, Context};
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions, SyncPhase};
use fieldcap_core::Store;
use std::path::PathBuf;
use std::time::Instant;

const VIDEO_BYTES: usize = 24 << 20;

/// Runs the demo in `dir` (or a fresh temporary folder).
pub fn demo(dir: Option<PathBuf>, console: bool) -> anyhow::Result<i32> {
    let began = Instant::now();
    let root = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("fieldcap-demo-{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis())),
    };
    std::fs::create_dir_all(&root)?;
    println!("Fieldcap demo in {}", root.display());

    // The council office's intake server, on loopback.
    let server_data = root.join("council-server");
    let server = fieldcap_server::ServerHandle::start(fieldcap_server::ServerConfig {
        data_dir: Some(server_data.clone()),
        listen: "127.0.0.1:0".parse()?,
        console: if console { Some(fieldcap_server::console::ConsoleConfig::new("127.0.0.1:0".parse()?)) } else { None },
        ..Default::default()
    })
    .context("starting the embedded council server")?;
    let result = story(&root, &server_data, &server.url());
    let code = match result {
        Ok(c) => c,
        Err(e) => {
            server.shutdown();
            return Err(e);
        }
    };
    println!("\n(demo finished in {:.1} s)", began.elapsed().as_secs_f64());
    if !console {
        server.shutdown();
        return Ok(code);
    }
    // A ready login for a newcomer to look around the demo's incident.
    let password = fieldcap_server::console::auth::random_token()[..20].to_string();
    fieldcap_server::console::staff::add_staff_with_password(server_data.as_path(), "demo-supervisor", "supervisor", &password).context("adding the demo's staff login")?;
    println!("\nThe demo's server and console keep running; stop them with Ctrl-C.");
    println!("staff login: demo-supervisor / {password}");
    println!("console on {}", server.console_url().unwrap_or_default());
    use std::io::Write as _;
    std::io::stdout().flush()?;
    server.wait_for_signal().context("waiting for a stop signal")?;
    Ok(code)
}

fn story(root: &std::path::Path, server_data: &std::path::Path, url: &str) -> anyhow::Result<i32> {
    let now = chrono::Utc::now();
    let (lat, lon) = (33.7361, -118.2922); // San Pedro, Harbor Area
    let monitor_home = root.join("monitor-phone");
    let police_home = root.join("port-police-handset");
    // The monitor's phone keeps its items encrypted at rest (sealed storage); it quick-locks them
    // to the council after step 6.
    init(&monitor_home, "monitor", Some("Harbor Area Peace Patrol".into()), None, true, Some("never"))?;
    init(&police_home, "police", Some("Port of Los Angeles Police".into()), Some("PP-12".into()), false, None)?;
    let monitor = open(&monitor_home)?;
    let police = open(&police_home)?;

    println!("\n1. Offline: both devices capture with no signal");
    let media = root.join("camera-roll");
    std::fs::create_dir_all(&media)?;
    let clip = media.join("raid-0712.mp4");
    std::fs::write(&clip, demo_movie(VIDEO_BYTES, 7, lat, lon))?;
    let start = now - chrono::Duration::minutes(12);
    let req = CaptureRequest {
        started_at: Some(start),
        ended_at: Some(start + chrono::Duration::seconds(95)),
        track: demo_track(start, lat, lon, 20),
        tags: vec!["minor_present".into(), "detention".into()],
        note: Some("agents at the corner of 6th and Pacific".into()),
        ..Default::default()
    };
    let pb = bytes_bar(VIDEO_BYTES as u64, "sealing");
    let video = monitor.seal_file(&clip, req, &mut |n, _| pb.set_position(n))?;
    pb.finish_and_clear();
    println!("   monitor  sealed video       {}  seq {}  {} MiB  sha256 {}…", sid(&video.clip_id), video.seq, VIDEO_BYTES >> 20, &video.manifest_sha256[..12]);
    let obs = monitor.observe(ObservationRequest {
        at: Some(start + chrono::Duration::seconds(30)),
        place: demo_track(start, lat, lon, 1).pop(),
        observation: observation_fields(
            "Two unmarked SUVs, four agents in tactical vests; one man detained",
            &["agency=ICE".into(), "plate=8ABC123".into(), "detained=1".into(), "children=yes".into()],
        )?,
        tags: vec!["minor_present".into()],
        incident_hint: None,
    })?;
    println!("   monitor  sealed observation {}  seq {}", sid(&obs.clip_id), obs.seq);
    let (rid, mut path) = police.start_recording(CaptureRequest { tags: vec!["detention".into()], ..Default::default() }, "mp4")?;
    for (i, fix) in demo_track(start + chrono::Duration::seconds(10), lat + 0.0003, lon - 0.0002, 12).into_iter().enumerate() {
        police.add_fix(&rid, fix)?;
        if i % 4 == 3 {
            std::fs::write(&path, demo_movie(4 << 20, 100 + i as u64, lat + 0.0003, lon - 0.0002))?;
            let (seg, next) = police.seal_segment(&rid, i == 11, &mut |_, _| {})?;
            println!("   handset  sealed segment {}    {}  seq {}  (recording {}…, sealed while recording)", i / 4, sid(&seg.clip_id), seg.seq, sid(&rid));
            if let Some(n) = next {
                path = n;
            }
        }
    }
    let pobs = police.observe(ObservationRequest {
        at: Some(start + chrono::Duration::seconds(70)),
        place: demo_track(start, lat + 0.0002, lon, 1).pop(),
        observation: observation_fields("Federal agents requested traffic control; declined per council directive", &["agency=CBP".into(), "badge=4471,4480".into()])?,
        tags: vec![],
        incident_hint: None,
    })?;
    println!("   handset  sealed observation {}  seq {}", sid(&pobs.clip_id), pobs.seq);

    println!("\n2. The council office issues one-time enrolment tokens; the devices enrol");
    let net = ReqwestTransport::new()?;
    for (name, store, role) in [("monitor", &monitor, "monitor"), ("handset", &police, "police")] {
        let token = fieldcap_server::issue_token(server_data, role).context("issuing a token")?;
        let cert = store.enroll(&net, url, &token)?;
        println!("   {name:8} enrolled as {:7}  device {}  certificate signed by server key {}", cert.role, cert.device_id, cert.server_key_id);
    }

    println!("\n3. Back online: manifests first (hash first), then the video — and the signal drops");
    let opts = SyncOptions { chunk_size: 2 << 20, ..Default::default() };
    let cancel = CancelToken::new();
    let bar = SyncBar::new("monitor");
    let cut_at = (VIDEO_BYTES as u64) * 2 / 5;
    let s1 = monitor.sync_once(&net, &opts, &cancel, &mut |p| {
        bar.update(p);
        if p.phase == SyncPhase::Uploading && p.item_bytes_done >= cut_at {
            cancel.cancel(); // the phone loses signal
        }
    })?;
    bar.finish();
    let offset = monitor.item(&video.clip_id)?.summary;
    println!("   monitor  {} manifest(s) on record at the council before any video moved", s1.manifests_committed);
    println!(
        "   monitor  signal lost: video {} is '{}' with {:.1} of {} MiB acknowledged by the server",
        sid(&video.clip_id),
        offset.state,
        s1.bytes_uploaded as f64 / 1048576.0,
        VIDEO_BYTES >> 20
    );

    println!("\n4. Signal back: the upload resumes from the server's offset (tus HEAD), not from zero");
    let bar = SyncBar::new("monitor");
    let s2 = monitor.sync_once(&net, &opts, &CancelToken::new(), &mut |p| bar.update(p))?;
    bar.finish();
    println!(
        "   monitor  sent the remaining {:.1} MiB ({} bytes re-sent); {}",
        s2.bytes_uploaded as f64 / 1048576.0,
        s2.bytes_resent,
        describe(&s2).lines().next().unwrap_or_default()
    );
    let bar = SyncBar::new("handset");
    let s3 = police.sync_once(&net, &opts, &CancelToken::new(), &mut |p| bar.update(p))?;
    bar.finish();
    println!("   handset  {}", describe(&s3).lines().next().unwrap_or_default());
    if s2.remaining + s3.remaining > 0 || s2.needs_attention + s3.needs_attention > 0 {
        bail!("the demo's sync did not complete: {} / {}", describe(&s2), describe(&s3));
    }

    println!("\n5. Receipts: signed by the council server, each verified on the device");
    println!("   checks: server signature · clip/device/seq/manifest and media digests equal ours · inclusion proof · checkpoint signature · log consistency");
    for (name, store) in [("monitor", &monitor), ("handset", &police)] {
        for it in store.list_items()? {
            let rec = store.item(&it.clip_id)?;
            let (body, _) = rec.receipt.context("a receipt")?;
            let r: fieldcap_core::protocol::Receipt = serde_json::from_slice(&body)?;
            println!(
                "   {name:8} {}  {:11}  {:9}  log leaf {:>2} of {:>2}  received {}",
                sid(&it.clip_id),
                it.kind,
                it.state,
                r.log.index,
                r.log.tree_size,
                r.received_at
            );
        }
    }
    for (name, store) in [("monitor", &monitor), ("handset", &police)] {
        if let Some(cp) = store.newest_checkpoint()? {
            let size = cp.lines().nth(1).unwrap_or("?");
            println!("   {name:8} holds checkpoint of size {size}; alarms: {}", store.alarms()?.len());
        }
    }

    println!("\n6. Independent verification of the monitor's clip, with its receipt");
    let out = root.join("export").join(&video.clip_id);
    monitor.export_clip(&video.clip_id, &out, &mut |_, _| {})?;
    // The council office publishes its server key's fingerprint; a recipient pins it (here the
    // key itself, which also lets the clip's receipt be checked: a clip carries no server key).
    let server_key = fieldcap_server::keys::load(server_data).context("reading the server key")?.verifying_key();
    let fingerprint = fieldcap_evidence::identity::key_fingerprint(&server_key);
    let pin = fieldcap_package::ServerKeyPin::Key(server_key);
    let report = fieldcap_package::clip::verify_clip_dir_with(&out, Some(&pin));
    for c in &report.checks {
        println!("   {}  {}", if c.ok { "ok  " } else { "FAIL" }, c.name);
    }
    if !report.all_ok() {
        bail!("the exported clip did not verify");
    }
    // The phone may be taken: the quick lock leaves its items to the council alone.
    let locked = monitor.lock_all()?;
    let refused = match monitor.export_clip(&video.clip_id, &root.join("export").join("after-lock"), &mut |_, _| {}) {
        Err(fieldcap_core::Error::Locked(_)) => "refused (locked)",
        Err(_) => "refused",
        Ok(_) => bail!("a locked item was exported"),
    };
    println!(
        "   monitor  quick lock (fieldcap lock --all): {} item(s) locked to the council; exporting one on the phone now: {refused}",
        locked.locked.len()
    );

    println!("\n7. The council groups the clips into incidents (overlapping time, tracks within 500 m)");
    let incidents = fieldcap_server::incidents(server_data).context("grouping incidents")?;
    print_incidents(&serde_json::to_value(&incidents)?);

    println!("\n8. Evidence package of the incident for the District Attorney, and one for a public records request");
    println!("   the council office publishes its server key fingerprint (recipients pin it, out of band):");
    println!("   {fingerprint}");
    let mut packages = Vec::new();
    if let Some(inc) = incidents.first() {
        use fieldcap_server::package::{export, PackageRequest, Profile, Selection};
        for (profile, name, recipient, purpose) in [
            (Profile::Full, "package-da", "Los Angeles County District Attorney", "demo: referral of the incident"),
            (Profile::Release, "package-public", "public records request", "demo: public release"),
        ] {
            let outcome = export(
                server_data,
                &PackageRequest {
                    selection: Selection::Incident(inc.id.clone()),
                    out: root.join(name),
                    recipient: recipient.into(),
                    purpose: purpose.into(),
                    profile,
                    sensitive_reason: None,
                    zip: false,
                    exported_by: "demo records custodian".into(),
                },
            )
            .context("exporting a package")?;
            let anchors = fieldcap_package::package::TrustAnchors { server_key: Some(pin.clone()), ..Default::default() };
            let report = fieldcap_package::package::verify_package_with(&outcome.path, &anchors);
            let failed = report.checks.iter().filter(|c| !c.ok).count();
            let custody = report.checks.iter().find(|c| c.name == "custody events").map(|c| c.detail.clone()).unwrap_or_default();
            println!(
                "   {:7}  {} item(s){}  {:.1} MiB  fieldcap verify --server-key (pinned): {} checks, {} failed",
                profile.as_str(),
                outcome.items,
                if outcome.omitted.is_empty() { String::new() } else { format!(" ({} left out: {:?})", outcome.omitted.values().sum::<u64>(), outcome.omitted) },
                outcome.bytes as f64 / 1048576.0,
                report.checks.len(),
                failed
            );
            println!("            custody: {custody}");
            if profile == Profile::Release {
                let ix: fieldcap_package::package::PackageIndex = serde_json::from_slice(&std::fs::read(outcome.path.join("package.json"))?)?;
                let with_media: Vec<_> = ix.items.iter().filter(|i| i.media.is_some()).collect();
                let withheld = with_media.iter().filter(|i| i.media_withheld.is_some()).count();
                println!(
                    "            media: {} copies with the location atom overwritten (picture and sound unchanged), {withheld} withheld; places coarsened to ~100 m, operator identity dropped, minors' items left out",
                    with_media.len() - withheld
                );
            }
            if failed > 0 {
                bail!("the {} package did not verify", profile.as_str());
            }
            packages.push(outcome.path);
        }
    }

    println!("\nSummary");
    for (name, s) in [("monitor phone", &monitor), ("port police handset", &police)] {
        summary_line(name, s)?;
    }
    println!("   video cut at {:.1} MiB and resumed: {} bytes re-sent", s1.bytes_uploaded as f64 / 1048576.0, s2.bytes_resent);
    println!("   council server data: {}", server_data.display());
    println!("   verify it yourself:  cd {} && cat VERIFY.txt", out.display());
    for p in &packages {
        println!("   package:             cd {} && sh VERIFY.txt {fingerprint}", p.display());
        println!("                        (or: fieldcap verify {} --server-key {fingerprint})", p.display());
    }
    Ok(0)
}

/// The last 8 characters of an id (the random part of a UUIDv7), for readable lines.
pub fn sid(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

fn summary_line(name: &str, s: &Store) -> anyhow::Result<()> {
    let items = s.list_items()?;
    let receipted = items.iter().filter(|i| i.state == "receipted").count();
    println!("   {name:20} device {}  {}/{} item(s) receipted and verified", s.device_id(), receipted, items.len());
    Ok(())
}

/// Prints incidents whatever their exact shape: a list of objects with ids, times and items.
fn print_incidents(v: &serde_json::Value) {
    let list = v.as_array().cloned().or_else(|| v.get("incidents").and_then(|x| x.as_array()).cloned()).unwrap_or_default();
    if list.is_empty() {
        println!("   (no incidents)");
    }
    for inc in list {
        let id = inc.get("incident_id").or_else(|| inc.get("id")).and_then(|x| x.as_str()).unwrap_or("?");
        let from = inc.get("started_at").or_else(|| inc.get("from")).and_then(|x| x.as_str()).unwrap_or("");
        let to = inc.get("ended_at").or_else(|| inc.get("to")).and_then(|x| x.as_str()).unwrap_or("");
        let items = inc.get("clips").or_else(|| inc.get("items")).or_else(|| inc.get("clip_ids")).and_then(|x| x.as_array()).map(|a| a.len()).unwrap_or(0);
        let devices = inc.get("devices").or_else(|| inc.get("device_ids")).and_then(|x| x.as_array()).map(|a| a.len());
        println!(
            "   incident {id}  {from} → {to}  {items} item(s){}",
            devices.map(|d| format!(" from {d} device(s)")).unwrap_or_default()
        );
    }
}
