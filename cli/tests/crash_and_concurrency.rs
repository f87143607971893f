//! Crash safety and concurrency of sealing, with the real binary and a real SQLite file.
//!
//! * SIGKILL at random instants during `capture` (and during the recovery the next start runs):
//!   afterwards no item is lost or duplicated, the chain is unbroken, and every source file is
//!   either still where it was, unchanged, or sealed.
//! * Two processes capturing at once produce a gap-free chain.

#![allow(clippy::unwrap_used)]
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::manifests_in_db;
use fieldcap_testkit::fieldcap_cli;
use fieldcap_testkit::tools::Cli;
use fieldcap_core::hashing::Digests;
use std::collections::HashMap;
use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn random_u64() -> u64 {
    rand_core::RngCore::next_u64(&mut rand_core::OsRng)
}

fn check_store(cli: &Cli, home: &std::path::Path, sources: &[(std::path::PathBuf, Digests)]) -> usize {
    let listing = cli.clips_json(home); // runs recovery
    let items = listing["items"].as_array().unwrap().clone();
    let manifests = manifests_in_db(home);
    assert_eq!(manifests.len(), items.len());
    fieldcap_package::clip::verify_device_chain(&manifests).expect("device chain unbroken");
    let pem = fs::read_to_string(home.join("keys/device.pub.pem")).unwrap();
    let mut by_sha: HashMap<String, usize> = HashMap::new();
    for (i, m) in manifests.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(m).unwrap();
        assert_eq!(v["seq"].as_u64().unwrap(), i as u64 + 1);
        let id = v["clip_id"].as_str().unwrap();
        let sig = fs::read(home.join("items").join(id).join("manifest.sig")).expect("mirror signature exists");
        fieldcap_core::identity::verify_with_pem(&pem, m, &sig).expect("signature");
        *by_sha.entry(v["media"]["sha256"].as_str().unwrap().to_string()).or_default() += 1;
    }
    for it in &items {
        assert_eq!(it["integrity"], "ok", "{it}");
    }
    let mut sealed = 0;
    for (path, d) in sources {
        let n = by_sha.get(&d.sha256_hex()).copied().unwrap_or(0);
        assert!(n <= 1, "{} sealed {n} times", path.display());
        if path.exists() {
            assert_eq!(n, 0, "{} both still in place and sealed", path.display());
            assert_eq!(Digests::of_bytes(&fs::read(path).unwrap()), *d, "{} altered in place", path.display());
        } else {
            assert_eq!(n, 1, "{} lost: neither in place nor sealed", path.display());
            sealed += 1;
        }
    }
    assert_eq!(fs::read_dir(home.join("quarantine")).unwrap().count(), 0, "nothing unattributable");
    assert_eq!(fs::read_dir(home.join("staging")).unwrap().count(), 0, "no partial copies left");
    sealed
}

#[test]
fn sigkill_during_capture_loses_and_duplicates_nothing() {
    let cli = fieldcap_cli!();
    let (t, home) = cli.init_home(&[]);
    // Calibrate: kill instants are spread over the whole run of one capture (start-up, recovery,
    // hashing, the move, the commit), so every window is hit across the iterations.
    let probe = t.path().join("probe.mp4");
    fs::write(&probe, seeded(3 << 20, 999)).unwrap();
    let t0 = Instant::now();
    cli.ok(&home, &["capture", probe.to_str().unwrap()]);
    let window_us = (t0.elapsed().as_micros() as u64 * 12 / 10).max(1000);
    let start = Instant::now();
    let mut sources = vec![(probe.clone(), Digests::of_bytes(&seeded(3 << 20, 999)))];
    let mut iterations = 0;
    let mut recoveries = 0;
    // 50 kills whatever the machine's speed (each is bounded by the calibrated window), and up
    // to 60 while time allows.
    while iterations < 50 || (iterations < 60 && start.elapsed() < Duration::from_secs(60)) {
        let len = 256 * 1024 + (random_u64() % (6 << 20)) as usize;
        let data = seeded(len, 1000 + iterations as u64);
        let src = t.path().join(format!("src-{iterations}.mp4"));
        fs::write(&src, &data).unwrap();
        sources.push((src.clone(), Digests::of_bytes(&data)));
        let mut child = cli.command()
            .arg("--home")
            .arg(&home)
            .args(["capture", src.to_str().unwrap(), "--tag", "arrest"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(random_u64() % window_us));
        let _ = child.kill(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("recovery:") {
            recoveries += 1;
        }
        iterations += 1;
    }
    let sealed = check_store(&cli, &home, &sources);
    eprintln!("{iterations} kills over a {window_us} µs window: {sealed} sealed, {} left in place, {recoveries} start-up recoveries seen", sources.len() - sealed);
    // Everything left in place can still be sealed afterwards.
    for (src, _) in &sources {
        if src.exists() {
            cli.ok(&home, &["capture", src.to_str().unwrap()]);
        }
    }
    assert_eq!(check_store(&cli, &home, &sources), sources.len());
}

#[test]
fn two_processes_capturing_at_once_produce_a_gap_free_chain() {
    let cli = fieldcap_cli!();
    let (t, home) = cli.init_home(&[]);
    let mut sources = Vec::new();
    for w in 0..2u64 {
        for i in 0..10u64 {
            let data = seeded(64 * 1024 + (i as usize) * 1000, w * 100 + i);
            let src = t.path().join(format!("w{w}-{i}.mp4"));
            fs::write(&src, &data).unwrap();
            sources.push((src, Digests::of_bytes(&data)));
        }
    }
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (cli, home) = (cli.clone(), home.clone());
            let files: Vec<_> = sources[w * 10..(w + 1) * 10].iter().map(|s| s.0.clone()).collect();
            std::thread::spawn(move || {
                for f in files {
                    cli.ok(&home, &["capture", f.to_str().unwrap()]);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(check_store(&cli, &home, &sources), 20);
}
