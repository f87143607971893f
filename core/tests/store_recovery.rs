//! Store behaviour against real SQLite files and real filesystems: schema upgrades from frozen
//! copies, recovery from a corrupt database, orphan recordings, vanished media, a file changing
//! while it is sealed, a full disk, and copies from another filesystem.

#![allow(clippy::unwrap_used)]

use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::track::TrackPoint;
use fieldcap_core::Error;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::open_store;
use std::fs;
use std::path::Path;

fn schema_of(conn: &rusqlite::Connection) -> Vec<(String, String)> {
    let mut s = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    let rows = s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).unwrap();
    // Whitespace differs between CREATE and ALTER-built tables; compare the columns instead.
    rows.map(|r| r.unwrap()).map(|(n, _)| {
        let cols: Vec<String> = conn
            .prepare(&format!("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo('{n}')"))
            .and_then(|mut st| {
                st.query_map([], |r| Ok(format!("{}:{}:{}:{:?}:{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, i64>(4)?)))
                    .map(|m| m.map(|x| x.unwrap()).collect())
            })
            .unwrap_or_default();
        (n, cols.join(","))
    }).collect()
}

#[test]
fn frozen_v1_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_keeps_rows(include_str!("fixtures/schema_v1.sql"));
}

#[test]
fn frozen_v2_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_keeps_rows(include_str!("fixtures/schema_v2.sql"));
}

#[test]
fn frozen_v3_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_keeps_rows(include_str!("fixtures/schema_v3.sql"));
}

fn upgrade_keeps_rows(frozen: &str) {
    let t = tempfile::tempdir().unwrap();
    let old = t.path().join("old.db");
    let mut conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch(frozen).unwrap();
    conn.execute(
        "INSERT INTO items (clip_id, seq, kind, manifest, signature, manifest_sha256, started_at, sealed_at) VALUES ('a', 1, 'video', x'00', x'00', 'h', 't', 't')",
        [],
    )
    .unwrap();
    fieldcap_core::schema::migrate(&mut conn).unwrap();
    let fresh_path = t.path().join("fresh.db");
    let mut fresh = rusqlite::Connection::open(&fresh_path).unwrap();
    fieldcap_core::schema::migrate(&mut fresh).unwrap();
    assert_eq!(schema_of(&conn), schema_of(&fresh));
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, fieldcap_core::schema::CURRENT_VERSION);
    let (state, offset): (String, i64) = conn.query_row("SELECT state, upload_offset FROM items WHERE clip_id = 'a'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((state.as_str(), offset), ("sealed", 0));
    // A row from before sealed storage reads as a plain, unlocked item.
    let (sealed, locked): (i64, Option<String>) = conn.query_row("SELECT sealed, locked_at FROM items WHERE clip_id = 'a'", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!((sealed, locked), (0, None));
    // A store from a newer build is refused, not downgraded.
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    assert!(matches!(fieldcap_core::schema::migrate(&mut conn), Err(Error::NewerSchema { found: 99, .. })));
}

#[test]
fn corrupt_database_is_moved_aside_and_items_restored_from_signed_manifests() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let ids: Vec<String> = {
        let s = open_store(&home);
        (0..3u8)
            .map(|i| {
                let f = t.path().join(format!("c{i}.mp4"));
                fs::write(&f, seeded(10_000 + i as usize, i.into())).unwrap();
                s.seal_file(&f, CaptureRequest::default(), &mut |_, _| {}).unwrap().clip_id
            })
            .collect()
    };
    for ext in ["-wal", "-shm"] {
        let _ = fs::remove_file(home.join(format!("fieldcap.db{ext}")));
    }
    fs::write(home.join("fieldcap.db"), b"this is not a database, just garbage bytes of some length ..........................................").unwrap();
    let s = open_store(&home);
    let r = s.open_report();
    let aside = r.database_moved_aside.clone().expect("moved aside");
    assert!(home.join(&aside).exists(), "the corrupt file is kept");
    assert_eq!(r.items_restored, 3);
    let listed: Vec<String> = s.list_items().unwrap().into_iter().map(|i| i.clip_id).collect();
    assert_eq!(listed, ids);
    // The chain continues where it was: the next seal is seq 4 and links to seq 3.
    let f = t.path().join("next.mp4");
    fs::write(&f, seeded(500, 9)).unwrap();
    let next = s.seal_file(&f, CaptureRequest::default(), &mut |_, _| {}).unwrap();
    assert_eq!(next.seq, 4);
    let chain: Vec<Vec<u8>> = s.manifests().unwrap().into_iter().map(|m| m.0).collect();
    fieldcap_package::clip::verify_device_chain(&chain).unwrap();
    assert!(s.custody_events(None).unwrap().iter().any(|e| e.event == "database_moved_aside"));
}

#[test]
fn orphan_recording_segment_is_sealed_as_recovered_and_vanished_media_flagged() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let (rid, sealed_id) = {
        let s = open_store(&home);
        let (rid, p0) = s.start_recording(CaptureRequest { tags: vec!["arrest".into()], ..Default::default() }, "mp4").unwrap();
        s.add_fix(&rid, TrackPoint { t: "2025-06-07T18:00:00Z".into(), lat: 33.7, lon: -118.2, accuracy_m: 5.0, altitude_m: None, heading_deg: None, speed_mps: None, provider: "gps".into() }).unwrap();
        fs::write(&p0, seeded(20_000, 1)).unwrap();
        let (seg0, p1) = s.seal_segment(&rid, false, &mut |_, _| {}).unwrap();
        // The phone dies while segment 1 is being recorded: the process ends without sealing it.
        fs::write(p1.unwrap(), seeded(7_000, 2)).unwrap();
        // Dropping the store closes the recording's owner lock, as the kernel does for a killed
        // process; nothing is sealed on drop.
        drop(s);
        (rid, seg0.clip_id)
    };
    let s = open_store(&home);
    let r = s.open_report().clone();
    assert_eq!(r.segments_recovered.len(), 1, "{r:?}");
    let rec = s.item(&r.segments_recovered[0]).unwrap();
    let m: serde_json::Value = serde_json::from_slice(&rec.manifest).unwrap();
    assert_eq!(m["segment"]["recording_id"], rid.as_str());
    assert_eq!(m["segment"]["index"], 1);
    assert_eq!(m["segment"]["final"], true);
    assert!(m["tags"].as_array().unwrap().iter().any(|t| t == "recovered"));
    assert_eq!(m["media"]["bytes"], 7000);
    assert!(!home.join("recording").join(&rid).exists());
    drop(s);

    // A sealed file vanishes (e.g. deleted by another app): flagged, never silently dropped.
    fs::remove_file(home.join("items").join(&sealed_id).join("media.mp4")).unwrap();
    let s = open_store(&home);
    assert_eq!(s.open_report().flagged, vec![sealed_id.clone()]);
    let it = s.item(&sealed_id).unwrap();
    assert_eq!(it.summary.integrity, "missing");
    assert!(s.custody_events(Some(&sealed_id)).unwrap().iter().any(|e| e.event == "flagged"));
}

#[test]
fn a_file_that_changes_while_sealed_is_refused_and_left_in_place() {
    let t = tempfile::tempdir().unwrap();
    let s = open_store(&t.path().join("home"));
    let f = t.path().join("growing.mp4");
    fs::write(&f, seeded(5 << 20, 3)).unwrap();
    let mut appended = false;
    let err = s
        .seal_file(&f, CaptureRequest::default(), &mut |_, _| {
            if !appended {
                appended = true;
                use std::io::Write;
                let mut h = fs::OpenOptions::new().append(true).open(&f).unwrap();
                h.write_all(b"more frames").unwrap();
            }
        })
        .unwrap_err();
    assert!(matches!(err, Error::SourceChanged(_)), "{err}");
    assert!(f.exists());
    assert!(s.list_items().unwrap().is_empty());
}

#[test]
fn copy_from_another_filesystem_is_verified_and_a_full_disk_leaves_nothing_behind() {
    // Real filesystems: a tmpfs for the store, the source on the test's temp directory.
    let t = tempfile::tempdir().unwrap();
    let mnt = t.path().join("small");
    fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"]).arg(&mnt).status().map(|s| s.success()).unwrap_or(false);
    if !mounted {
        let root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
        assert!(!root, "running as root, a tmpfs must mount for this test");
        eprintln!("not root: cannot mount a tmpfs; the full-disk test needs root (CI runs as root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&mnt);
    let home = mnt.join("home");
    let s = open_store(&home);
    // Fits: copied across filesystems, re-hashed, then the source removed.
    let small = t.path().join("small.mp4");
    let bytes = seeded(600_000, 4);
    fs::write(&small, &bytes).unwrap();
    let item = s.seal_file(&small, CaptureRequest::default(), &mut |_, _| {}).unwrap();
    assert!(!small.exists());
    assert_eq!(fs::read(home.join("items").join(&item.clip_id).join("media.mp4")).unwrap(), bytes);
    // Does not fit: ENOSPC during the copy. The original is untouched, nothing half-written.
    let big = t.path().join("big.mp4");
    let big_bytes = seeded(4 << 20, 5);
    fs::write(&big, &big_bytes).unwrap();
    let err = s.seal_file(&big, CaptureRequest::default(), &mut |_, _| {}).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert_eq!(fs::read(&big).unwrap(), big_bytes);
    assert_eq!(fs::read_dir(home.join("staging")).unwrap().count(), 0);
    assert_eq!(s.list_items().unwrap().len(), 1);
    assert_eq!(fs::read_dir(home.join("items")).unwrap().count(), 1);
    drop(s);
    let s = open_store(&home);
    assert!(!s.open_report().is_eventful(), "{:?}", s.open_report());
}

#[test]
fn a_live_recording_in_another_process_is_left_alone_by_recovery() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("home");
    let a = open_store(&home);
    let (rid, p0) = a.start_recording(CaptureRequest::default(), "m4a").unwrap();
    fs::write(&p0, seeded(3000, 7)).unwrap();
    // A second opener (e.g. a sync worker) must not seal or move a recording still in progress.
    let b = open_store(&home);
    assert!(b.open_report().segments_recovered.is_empty());
    assert!(p0.exists());
    let (item, next) = a.seal_segment(&rid, true, &mut |_, _| {}).unwrap();
    assert!(next.is_none());
    assert_eq!(b.item(&item.clip_id).unwrap().summary.kind, "audio");
}
