//! SIGKILL during sealing with encryption and during locking (issue 14): nothing lost, nothing
//! left half-encrypted, and the next start recovers.
//!
//! The work runs in a child process (this test binary run again with `SEALED_KILLS_CHILD` set),
//! which is killed with SIGKILL at a varying instant; the parent then opens the store (recovery
//! runs) and checks every invariant.

#![allow(clippy::unwrap_used)]

use fieldcap_core::escrow::VaultIdentity;
use fieldcap_core::identity::FileKeyProtector;
use fieldcap_core::manifest::Manifest;
use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::store::Profile;
use fieldcap_core::Store;
use fieldcap_testkit::bytes::{seeded, XorShift};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const CHILD: &str = "SEALED_KILLS_CHILD";

fn open(home: &Path) -> Store {
    Store::open(home, Arc::new(FileKeyProtector)).unwrap()
}

fn sealed(home: &Path) -> Store {
    let mut s = open(home);
    if !s.profile().sealed_storage {
        s.set_profile(Profile { sealed_storage: true, lock_after_secs: None, ..Profile::default() }).unwrap();
    }
    s
}

/// The child's work: `seal:<home>:<file>` seals one file; `lock:<home>` locks everything.
#[test]
fn child_entry() {
    let Ok(task) = std::env::var(CHILD) else { return };
    let mut parts = task.splitn(3, ':');
    let (what, home) = (parts.next().unwrap(), parts.next().unwrap());
    let store = sealed(Path::new(home));
    match what {
        "seal" => {
            store.seal_file(Path::new(parts.next().unwrap()), CaptureRequest::default(), &mut |_, _| {}).unwrap();
        }
        "lock" => {
            store.lock_all().unwrap();
        }
        _ => panic!("unknown child task"),
    }
}

/// Runs the child and kills it after `delay` unless it finished; returns (killed, how long it ran).
fn run_child_timed(task: &str, delay: Duration) -> (bool, Duration) {
    let started = std::time::Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--test-threads", "1"])
        .env(CHILD, task)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = started + delay;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return (false, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap(); // SIGKILL on Unix
    }
    child.wait().unwrap();
    (killed, started.elapsed())
}

fn plaintext_sha256(store: &Store, clip_id: &str) -> String {
    let rec = store.item(clip_id).unwrap();
    let mut b = Vec::new();
    store.open_media(&rec).unwrap().read_to_end(&mut b).unwrap();
    let m = Manifest::parse(&rec.manifest).unwrap();
    let d = fieldcap_core::hashing::Digests::of_bytes(&b);
    assert_eq!(d.sha256_hex(), m.media.as_ref().unwrap().sha256, "an item's plaintext is what its manifest signs");
    d.sha256_hex()
}

#[test]
fn sigkill_while_sealing_with_encryption_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    drop(sealed(&home));
    let mut rng = XorShift::from_state(0x5EA1_ED00_u64);
    let mut kills = 0;
    let mut expected: Vec<(std::path::PathBuf, String)> = Vec::new();
    // The first seal runs to the end and says how long a whole seal takes on this machine
    // (process start included); every later one is killed at a random instant inside that span.
    let mut whole = Duration::from_secs(60);
    for i in 0..15u64 {
        let src = dir.path().join(format!("clip{i}.mp4"));
        let bytes = seeded(24_000_000 + (rng.next_u64() % 8_000_000) as usize, 100 + i);
        let sha = fieldcap_core::hashing::Digests::of_bytes(&bytes).sha256_hex();
        std::fs::write(&src, &bytes).unwrap();
        let delay = if i == 0 { whole } else { Duration::from_micros(rng.next_u64() % (whole.as_micros() as u64 * 11 / 10).max(1)) };
        let (killed, took) = run_child_timed(&format!("seal:{}:{}", home.display(), src.display()), delay);
        if i == 0 {
            assert!(!killed, "the calibration seal finishes");
            whole = took;
        } else if killed {
            kills += 1;
        }
        expected.push((src, sha));

        // The next start recovers; every file is either still where it was, whole, or sealed —
        // never both, never neither; no partial encrypted copy is left.
        let store = open(&home);
        let sealed: Vec<String> = store.list_items().unwrap().iter().map(|it| plaintext_sha256(&store, &it.clip_id)).collect();
        for (src, sha) in &expected {
            let in_store = sealed.iter().filter(|s| *s == sha).count();
            if src.exists() {
                let d = fieldcap_core::hashing::hash_file(src, &mut |_| {}).unwrap();
                assert_eq!(&d.sha256_hex(), sha, "a source left in place is untouched");
                assert_eq!(in_store, 0, "a file both sealed and left in the clear");
            } else {
                assert_eq!(in_store, 1, "a source gone must be sealed exactly once");
            }
        }
        let staging: Vec<_> = std::fs::read_dir(home.join("staging")).unwrap().collect();
        assert!(staging.is_empty(), "no partial encrypted copy survives recovery");
        for it in store.list_items().unwrap() {
            assert!(it.sealed && it.integrity == "ok", "{it:?}");
        }
    }
    assert!(kills >= 7, "only {kills} of 14 seals were cut by the kill (a whole seal took {whole:?})");
    eprintln!("{kills} of 14 seals killed (a whole seal took {whole:?})");
}

#[test]
fn sigkill_while_locking_leaves_every_item_openable_by_the_council() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let council = VaultIdentity::generate();
    sealed(&home).pin_escrow_recipient(&council.recipient()).unwrap();
    let mut rng = XorShift::from_state(0x10C4_u64);
    let mut kills = 0;
    let mut whole = Duration::from_secs(60);
    let mut n = 0u64;
    for round in 0..8 {
        // Fresh unlocked items every round (a lock is never undone).
        {
            let store = sealed(&home);
            for _ in 0..40 {
                n += 1;
                let src = dir.path().join(format!("{n}.m4a"));
                std::fs::write(&src, seeded(20_000, n)).unwrap();
                store.seal_file(&src, CaptureRequest::default(), &mut |_, _| {}).unwrap();
            }
        }
        // Round 0 runs to the end and times a whole quick lock; later rounds are cut inside it.
        let delay = if round == 0 { whole } else { Duration::from_micros(rng.next_u64() % (whole.as_micros() as u64).max(1)) };
        let (killed, took) = run_child_timed(&format!("lock:{}", home.display()), delay);
        if round == 0 {
            assert!(!killed);
            whole = took;
        } else if killed {
            kills += 1;
        }
        let store = open(&home);
        let items = store.list_items().unwrap();
        assert_eq!(items.len() as u64, n, "locking never removes an item");
        for it in items {
            let d = store.item_dir(&it.clip_id);
            let vault = d.join("key.vault.age").exists();
            assert!(d.join("key.escrow.age").exists(), "the council can always open {}", it.clip_id);
            assert_eq!(it.locked, !vault, "an item is marked locked exactly when its vault wrap is gone");
            // The council opens every item, locked or not.
            let key = fieldcap_core::escrow::ItemKey::unwrap_with(&std::fs::read(d.join("key.escrow.age")).unwrap(), &[&council]).unwrap();
            let mut b = Vec::new();
            key.media_reader(std::fs::File::open(d.join("media.m4a.age")).unwrap()).unwrap().read_to_end(&mut b).unwrap();
            assert_eq!(b.len(), 20_000);
        }
    }
    let store = open(&home);
    store.lock_all().unwrap();
    assert!(store.list_items().unwrap().iter().all(|i| i.locked));
    eprintln!("{kills} of 7 quick locks killed (a whole one took {whole:?})");
    assert!(kills >= 3, "only {kills} of 7 quick locks were cut");
}
