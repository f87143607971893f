//! Sealed storage (issue 14): a seized copy of the store yields nothing of what it holds, the
//! monitor reviews unlocked items, a locked item opens for the council alone, and a lost
//! database is rebuilt for locked items too.

#![allow(clippy::unwrap_used)]

use fieldcap_core::escrow::{ItemKey, VaultIdentity};
use fieldcap_core::evidence::Error as EvError;
use fieldcap_core::identity::KeyProtector;
use fieldcap_core::manifest::Observation;
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_core::store::Profile;
use fieldcap_core::track::TrackPoint;
use fieldcap_core::{Error, Store};
use fieldcap_testkit::bytes::seeded;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A stand-in for the platform key store (Android Keystore, iOS Keychain): the wrapping key
/// lives in this process, never in the store's folder.
struct KeystoreSim {
    key: Arc<ItemKey>,
}

impl KeyProtector for KeystoreSim {
    fn name(&self) -> String {
        "keystore-sim".into()
    }
    fn wrap(&self, secret: &[u8]) -> Result<Vec<u8>, EvError> {
        self.key.encrypt(secret)
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, EvError> {
        self.key.decrypt(wrapped, 4096).map_err(|_| EvError::Key("the key store cannot unwrap this key".into()))
    }
}

const NOTE: &str = "Agent with badge 4471 detained Maria Q. outside 1410 Gaffey St";
const OBSERVATION: &str = "Two children left alone at the bus stop on Pacific Ave";
const PLATE: &str = "8XYZ512";
/// Coordinates as the manifest writes them (and their digits without the sign).
const LAT: f64 = 33.741_236_7;
const LON: f64 = -118.292_871_3;

fn fix(t: &str) -> TrackPoint {
    serde_json::from_value(serde_json::json!({"t": t, "lat": LAT, "lon": LON, "accuracy_m": 4.5, "provider": "gps"})).unwrap()
}

/// Media whose every 64 KiB holds a marker, so any plaintext run of it is found.
fn media(n: usize, seed: u64, marker: &str) -> Vec<u8> {
    let mut b = seeded(n, seed);
    for off in (0..n.saturating_sub(marker.len())).step_by(65_536) {
        b[off..off + marker.len()].copy_from_slice(marker.as_bytes());
    }
    b
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn sealed_store(home: &Path, keystore: &Arc<ItemKey>, lock_after: Option<u64>) -> Store {
    let mut s = Store::open(home, Arc::new(KeystoreSim { key: keystore.clone() })).unwrap();
    let p = Profile { sealed_storage: true, lock_after_secs: lock_after, ..Profile::default() };
    s.set_profile(p).unwrap();
    s
}

fn sha256(b: &[u8]) -> String {
    fieldcap_core::hashing::Digests::of_bytes(b).sha256_hex()
}

#[test]
fn a_seized_copy_yields_no_media_coordinates_notes_or_keys() {
    let keystore = Arc::new(ItemKey::generate());
    let council = VaultIdentity::generate();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = sealed_store(&home, &keystore, None);
    store.pin_escrow_recipient(&council.recipient()).unwrap();

    let mut originals = Vec::new();
    for i in 0..3u64 {
        let bytes = media(300_000 + i as usize * 70_000, 10 + i, &format!("PLAINTEXT-MARKER-{i}"));
        let src = dir.path().join(format!("clip{i}.mp4"));
        std::fs::write(&src, &bytes).unwrap();
        let req = CaptureRequest {
            track: vec![fix("2026-12-01T10:00:00.000Z"), fix("2026-12-01T10:00:05.000Z")],
            tags: vec!["minor_present".into()],
            note: Some(NOTE.into()),
            ..Default::default()
        };
        let item = store.seal_file(&src, req, &mut |_, _| {}).unwrap();
        assert!(!src.exists(), "the plaintext source is gone once the encrypted copy is committed");
        originals.push((item.clip_id, bytes));
    }
    let obs = store
        .observe(ObservationRequest {
            place: Some(fix("2026-12-01T10:01:00.000Z")),
            observation: Observation { text: OBSERVATION.into(), vehicle_plates: vec![PLATE.into()], ..Default::default() },
            tags: vec!["minor_present".into()],
            ..Default::default()
        })
        .unwrap();
    // A segmented recording still being filmed (fixes and its request in the queue), one whose
    // first segment is sealed already, and a live recording with pieces sealed and a fix.
    let (rid1, seg_path) = store.start_recording(CaptureRequest { note: Some(NOTE.into()), tags: vec!["minor_present".into()], ..Default::default() }, "mp4").unwrap();
    std::fs::write(&seg_path, media(50_000, 77, "SEGMENT-NOT-SEALED")).unwrap();
    store.add_fix(&rid1, fix("2026-12-01T10:02:00.000Z")).unwrap();
    let (rid2, seg2) = store.start_recording(CaptureRequest { note: Some(NOTE.into()), ..Default::default() }, "mp4").unwrap();
    std::fs::write(&seg2, media(60_000, 78, "PLAINTEXT-MARKER-SEG")).unwrap();
    store.add_fix(&rid2, fix("2026-12-01T10:03:00.000Z")).unwrap();
    let (_seg_item, next) = store.seal_segment(&rid2, false, &mut |_, _| {}).unwrap();
    store.add_fix(&rid2, fix("2026-12-01T10:03:30.000Z")).unwrap();
    let fmp4 = dir.path().join("live.mp4");
    fieldcap_testkit::media::ffmpeg_fmp4(&fmp4, 2, 15);
    let pieces = fieldcap_testkit::media::fmp4_pieces(&std::fs::read(&fmp4).unwrap());
    let live = store.begin_live(CaptureRequest { note: Some(NOTE.into()), tags: vec!["minor_present".into()], ..Default::default() }, "mp4").unwrap();
    store.add_live_fix(&live, fix("2026-12-01T10:04:00.000Z")).unwrap();
    store.append_live(&live, &pieces[0]).unwrap();
    store.append_live(&live, &pieces[1]).unwrap();
    // On the phone the queue still reads back: the piece's record (as signed) names the fix.
    let row = store.live_fragment(&live, 1).unwrap();
    let rec = fieldcap_core::evidence::fragment::FragmentRecord::parse(&row.record).unwrap();
    assert_eq!(rec.fix.unwrap().lat, LAT);

    // Lock one clip and the observation; the others stay reviewable.
    assert!(store.lock_item(&originals[0].0).unwrap());
    assert!(store.lock_item(&obs.clip_id).unwrap());
    assert!(!store.lock_item(&obs.clip_id).unwrap(), "locking twice is a no-op");

    // The seizure: every file of the store, taken while it is open (WAL and all).
    let seized = dir.path().join("seized");
    copy_tree(&home, &seized);
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("note".into(), NOTE.as_bytes().to_vec()),
        ("note fragment".into(), b"Gaffey".to_vec()),
        ("observation".into(), OBSERVATION.as_bytes().to_vec()),
        ("plate".into(), PLATE.as_bytes().to_vec()),
        ("latitude".into(), format!("{LAT}").into_bytes()),
        ("longitude digits".into(), b"118.2928".to_vec()),
        ("tag".into(), b"minor_present".to_vec()),
        ("age secret key".into(), b"AGE-SECRET-KEY-1".to_vec()),
        ("latitude f64".into(), LAT.to_le_bytes().to_vec()),
    ];
    for (i, (_, bytes)) in originals.iter().enumerate() {
        needles.push((format!("marker {i}"), format!("PLAINTEXT-MARKER-{i}").into_bytes()));
        needles.push((format!("media run {i}"), bytes[1000..1064].to_vec()));
    }
    // The files the platform's recorder is writing right now are plaintext by nature (the
    // recording folders): every other byte of the store must yield nothing.
    let files: Vec<PathBuf> = fieldcap_testkit::files::files_under(&seized)
        .into_iter()
        .filter(|f| !f.starts_with("recording/") && !f.starts_with("live/"))
        .map(|f| seized.join(f))
        .collect();
    let _ = &next;
    assert!(files.iter().any(|f| f.ends_with("fieldcap.db")), "the database is part of the copy");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        for (what, n) in &needles {
            assert!(!contains(&data, n), "{what} found in {}", f.strip_prefix(&seized).unwrap().display());
        }
    }

    // Without the platform key store the copy does not even open.
    let other = Arc::new(ItemKey::generate());
    let e = Store::open(&seized, Arc::new(KeystoreSim { key: other })).unwrap_err();
    assert!(matches!(e, Error::Key(_)), "{e}");

    // Opened on the phone itself (the key store answers): unlocked items review, locked ones
    // refuse with a clear error.
    drop(store);
    let phone = Store::open(&home, Arc::new(KeystoreSim { key: keystore.clone() })).unwrap();
    let rec = phone.item(&originals[1].0).unwrap();
    assert!(rec.summary.sealed && !rec.summary.locked);
    let mut back = Vec::new();
    phone.open_media(&rec).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back, originals[1].1);
    let m = fieldcap_core::manifest::Manifest::parse(&rec.manifest).unwrap();
    assert_eq!(m.note.as_deref(), Some(NOTE));
    let locked = phone.item(&originals[0].0).unwrap();
    assert!(locked.summary.locked && locked.manifest.is_empty());
    assert!(matches!(phone.open_media(&locked), Err(Error::Locked(_))));
    let out = dir.path().join("export");
    assert!(matches!(phone.export_clip(&originals[0].0, &out, &mut |_, _| {}), Err(Error::Locked(_))));
    assert!(!out.exists(), "a refused export leaves nothing behind");
    phone.export_clip(&originals[1].0, &out, &mut |_, _| {}).unwrap();
    assert_eq!(std::fs::read(out.join("media.mp4")).unwrap(), originals[1].1);

    // The council opens the locked item with the stock age layering: escrow → item key → media.
    let idir = phone.item_dir(&originals[0].0);
    let key = ItemKey::unwrap_with(&std::fs::read(idir.join("key.escrow.age")).unwrap(), &[&council]).unwrap();
    let mut plain = Vec::new();
    key.media_reader(std::fs::File::open(idir.join("media.mp4.age")).unwrap()).unwrap().read_to_end(&mut plain).unwrap();
    assert_eq!(sha256(&plain), sha256(&originals[0].1));
    let manifest = key.decrypt(&std::fs::read(idir.join("manifest.json.age")).unwrap(), 1 << 22).unwrap();
    fieldcap_core::identity::verify_with_pem(&phone.public_pem(), &manifest, &std::fs::read(idir.join("manifest.sig")).unwrap()).unwrap();
    assert!(!idir.join("key.vault.age").exists());
}

#[test]
fn locking_waits_for_the_council_key_and_the_policy_locks_at_once() {
    let keystore = Arc::new(ItemKey::generate());
    let dir = tempfile::tempdir().unwrap();
    let store = sealed_store(&dir.path().join("home"), &keystore, Some(0));
    let src = dir.path().join("a.mp4");
    std::fs::write(&src, media(200_000, 3, "M")).unwrap();
    let a = store.seal_file(&src, CaptureRequest::default(), &mut |_, _| {}).unwrap();
    // No escrow key yet: locking would make the item unreadable to everyone, so it waits.
    assert!(matches!(store.lock_item(&a.clip_id), Err(Error::InvalidInput(_))));
    let r = store.lock_all().unwrap();
    assert_eq!(r.waiting_for_escrow, vec![a.clip_id.clone()]);
    assert!(!store.item(&a.clip_id).unwrap().summary.locked);
    // The key arrives (enrolment): the waiting item is wrapped to it and locked by the policy.
    let council = VaultIdentity::generate();
    assert_eq!(store.pin_escrow_recipient(&council.recipient()).unwrap(), 1);
    assert!(store.item(&a.clip_id).unwrap().summary.locked);
    // From now on a monitor's item locks as it is sealed.
    std::fs::write(&src, media(100_000, 4, "N")).unwrap();
    let b = store.seal_file(&src, CaptureRequest::default(), &mut |_, _| {}).unwrap();
    assert!(store.item(&b.clip_id).unwrap().summary.locked);
    let events: Vec<String> = store.custody_events(Some(&b.clip_id)).unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(events, vec!["sealed", "locked"]);
}

#[test]
fn a_lost_database_is_rebuilt_for_locked_and_unlocked_sealed_items() {
    let keystore = Arc::new(ItemKey::generate());
    let council = VaultIdentity::generate();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = sealed_store(&home, &keystore, None);
    store.pin_escrow_recipient(&council.recipient()).unwrap();
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let src = dir.path().join(format!("{i}.mp4"));
        std::fs::write(&src, media(150_000, i, "R")).unwrap();
        ids.push(store.seal_file(&src, CaptureRequest::default(), &mut |_, _| {}).unwrap());
    }
    store.lock_item(&ids[1].clip_id).unwrap();
    let before = store.list_items().unwrap();
    drop(store);
    // The database becomes unreadable.
    for f in ["fieldcap.db", "fieldcap.db-wal", "fieldcap.db-shm"] {
        let _ = std::fs::remove_file(home.join(f));
    }
    std::fs::write(home.join("fieldcap.db"), b"this is not a database at all, not even close").unwrap();
    let s = Store::open(&home, Arc::new(KeystoreSim { key: keystore })).unwrap();
    assert_eq!(s.open_report().items_restored, 3);
    let after = s.list_items().unwrap();
    assert_eq!(after.iter().map(|i| (&i.clip_id, i.seq, i.locked)).collect::<Vec<_>>(), before.iter().map(|i| (&i.clip_id, i.seq, i.locked)).collect::<Vec<_>>());
    assert!(after[1].locked && after[1].sealed);
    let rec = s.item(&ids[2].clip_id).unwrap();
    let mut b = Vec::new();
    s.open_media(&rec).unwrap().read_to_end(&mut b).unwrap();
    assert_eq!(b.len() as u64, ids[2].media.as_ref().unwrap().bytes);
}
