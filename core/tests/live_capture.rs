//! Live capture in the core, against real fragmented MP4 from Debian's `ffmpeg` and a real
//! SQLite store: gapless (the finished recording is ffmpeg's file byte for byte and `ffprobe`
//! counts the same frames), bad pieces refused with the recording intact, and recovery of a
//! recording whose process died (a whole unrecorded piece sealed, a torn tail set aside).

#![allow(clippy::unwrap_used)]

use fieldcap_core::evidence::fragment::ChainCheck;
use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::Error;
use fieldcap_testkit::device::open_store;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fragmented MP4 from ffmpeg (see [`fieldcap_testkit::media::ffmpeg_fmp4`]).
fn ffmpeg_fmp4(dir: &Path, name: &str, seconds: u32, gop: u32) -> PathBuf {
    let out = dir.join(name);
    fieldcap_testkit::media::ffmpeg_fmp4(&out, seconds, gop);
    out
}

/// The pieces of a fragmented MP4 ([`fieldcap_testkit::media::fmp4_pieces`]).
fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    fieldcap_testkit::media::fmp4_pieces(bytes)
}

fn ffprobe_frames(path: &Path) -> (u64, f64) {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames:format=duration", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(o.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let frames = v["streams"][0]["nb_read_frames"].as_str().unwrap().parse().unwrap();
    let dur = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    (frames, dur)
}

fn item_media(home: &Path, clip_id: &str) -> PathBuf {
    home.join("items").join(clip_id).join("media.mp4")
}

#[test]
fn a_live_recording_is_gapless_and_its_chain_verifies() {
    let t = tempfile::tempdir().unwrap();
    let src = ffmpeg_fmp4(t.path(), "src.mp4", 8, 30);
    let whole = fs::read(&src).unwrap();
    let pieces = split(&whole);
    assert!(pieces.len() >= 6, "init, ≥4 fragments, mfra: {}", pieces.len());
    let home = t.path().join("home");
    let store = open_store(&home);
    let clip = store.begin_live(CaptureRequest::default(), "mp4").unwrap();
    for (i, p) in pieces.iter().enumerate() {
        let s = store.append_live(&clip, p).unwrap();
        assert_eq!(s.index, i as u64);
    }
    let item = store.finish_live(&clip).unwrap();
    assert_eq!(item.clip_id, clip);
    let sealed = fs::read(item_media(&home, &clip)).unwrap();
    assert!(sealed == whole, "the finished recording is ffmpeg's output byte for byte");
    assert_eq!(ffprobe_frames(&item_media(&home, &clip)), ffprobe_frames(&src));
    // The manifest names the chain's head; the chain verifies over the file.
    let m = fieldcap_core::manifest::Manifest::parse(&fs::read(home.join("items").join(&clip).join("manifest.json")).unwrap()).unwrap();
    let chain = m.fragments.clone().expect("a live recording's manifest names its fragment chain");
    assert_eq!(chain.count, pieces.len() as u64);
    let mut check = ChainCheck::new(&store.device_key().verifying_key());
    for i in 0..chain.count {
        let f = store.live_fragment(&clip, i).unwrap();
        check.push(&f.record, &f.sig).unwrap();
    }
    check.push_bytes(&sealed).unwrap();
    let s = check.finish().unwrap();
    assert_eq!(s.head, chain.head);
    assert_eq!(m.media.unwrap().sha256, fieldcap_core::hashing::sha256_hex(&whole));
    assert!(store.live_recordings().unwrap().iter().any(|r| r.clip_id == clip && r.state == "finished"));
}

#[test]
fn bad_pieces_are_refused_and_leave_the_recording_intact() {
    let t = tempfile::tempdir().unwrap();
    let a = split(&fs::read(ffmpeg_fmp4(t.path(), "a.mp4", 6, 30)).unwrap());
    let b = split(&fs::read(ffmpeg_fmp4(t.path(), "b.mp4", 6, 30)).unwrap());
    let home = t.path().join("home");
    let store = open_store(&home);
    let clip = store.begin_live(CaptureRequest::default(), "mp4").unwrap();
    // A fragment before the initialization segment.
    assert!(matches!(store.append_live(&clip, &a[1]), Err(Error::InvalidInput(_))));
    store.append_live(&clip, &a[0]).unwrap();
    store.append_live(&clip, &a[1]).unwrap();
    store.append_live(&clip, &a[2]).unwrap();
    let len = || fs::metadata(home.join("live").join(&clip).join("media.mp4")).unwrap().len();
    let before = len();
    // Truncated; going backwards (a repeat of a[1]); another recording's first fragment; junk.
    let e = store.append_live(&clip, &a[3][..a[3].len() - 10]).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)) && e.to_string().contains("cut short"), "{e}");
    let e = store.append_live(&clip, &a[1]).unwrap_err();
    assert!(e.to_string().contains("does not follow"), "{e}");
    let e = store.append_live(&clip, &b[1]).unwrap_err();
    assert!(e.to_string().contains("does not follow"), "{e}");
    assert!(matches!(store.append_live(&clip, b"\0\0\0\x08junk"), Err(Error::InvalidInput(_))));
    assert!(matches!(store.append_live(&clip, &a[0]), Err(Error::InvalidInput(_))), "a second init segment");
    assert_eq!(len(), before, "nothing appended");
    // The recording continues with the right pieces and finishes whole.
    for p in &a[3..] {
        store.append_live(&clip, p).unwrap();
    }
    let item = store.finish_live(&clip).unwrap();
    let whole: Vec<u8> = a.concat();
    assert_eq!(item.media.unwrap().sha256, fieldcap_core::hashing::sha256_hex(&whole));
    // A finished recording takes no more pieces; one with no media yet cannot be finished, and
    // stays running after the refusal.
    let c2 = store.begin_live(CaptureRequest::default(), "mp4").unwrap();
    assert!(matches!(store.finish_live(&c2), Err(Error::InvalidInput(_))));
    store.append_live(&c2, &a[0]).unwrap();
    assert!(matches!(store.finish_live(&c2), Err(Error::InvalidInput(_))));
    store.append_live(&c2, &a[1]).unwrap();
    store.finish_live(&c2).unwrap();
    assert!(matches!(store.append_live(&clip, &a[1]), Err(Error::NotFound(_))));
}

#[test]
fn a_recording_whose_process_died_is_finished_at_the_next_start() {
    let t = tempfile::tempdir().unwrap();
    let src = ffmpeg_fmp4(t.path(), "src.mp4", 8, 30);
    let pieces = split(&fs::read(&src).unwrap());
    let home = t.path().join("home");
    // Died after sealing three pieces, with a fourth written whole but not yet recorded. Dropping
    // the store closes its files without finishing anything: what a killed process leaves
    // (every sealed piece was fsynced before its record).
    let clip = {
        let store = open_store(&home);
        let clip = store.begin_live(CaptureRequest::default(), "mp4").unwrap();
        for p in &pieces[..3] {
            store.append_live(&clip, p).unwrap();
        }
        let mut f = fs::OpenOptions::new().append(true).open(home.join("live").join(&clip).join("media.mp4")).unwrap();
        std::io::Write::write_all(&mut f, &pieces[3]).unwrap();
        clip
    };
    let store = open_store(&home);
    assert_eq!(store.open_report().segments_recovered, vec![clip.clone()]);
    let sealed = fs::read(item_media(&home, &clip)).unwrap();
    assert!(sealed == pieces[..4].concat(), "the sealed prefix and the whole unrecorded piece, nothing else");
    let m = fieldcap_core::manifest::Manifest::parse(&fs::read(home.join("items").join(&clip).join("manifest.json")).unwrap()).unwrap();
    assert!(m.tags.contains(&"recovered".to_string()));
    assert_eq!(m.fragments.unwrap().count, 4);
    let (frames, _) = ffprobe_frames(&item_media(&home, &clip));
    assert_eq!(frames, 90, "three fragments of 30 frames decode");
    drop(store);

    // Died with a torn piece at the end: the tail is set aside (kept), the prefix finished.
    let clip2 = {
        let store = open_store(&home);
        let clip = store.begin_live(CaptureRequest::default(), "mp4").unwrap();
        for p in &pieces[..2] {
            store.append_live(&clip, p).unwrap();
        }
        let mut f = fs::OpenOptions::new().append(true).open(home.join("live").join(&clip).join("media.mp4")).unwrap();
        std::io::Write::write_all(&mut f, &pieces[2][..1000]).unwrap();
        clip
    };
    let store = open_store(&home);
    assert_eq!(store.open_report().segments_recovered, vec![clip2.clone()]);
    assert!(fs::read(item_media(&home, &clip2)).unwrap() == pieces[..2].concat());
    let kept: Vec<_> = fs::read_dir(home.join("quarantine")).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().contains("torn-tail")).collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(fs::read(kept[0].path()).unwrap(), &pieces[2][..1000]);
    drop(store);

    // A sealed prefix altered on disk is not finished as evidence: alarm, set aside.
    let clip3 = {
        let store = open_store(&home);
        let clip = store.begin_live(CaptureRequest::default(), "mp4").unwrap();
        for p in &pieces[..2] {
            store.append_live(&clip, p).unwrap();
        }
        clip
    };
    let path = home.join("live").join(&clip3).join("media.mp4");
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let store = open_store(&home);
    assert!(store.open_report().segments_recovered.is_empty());
    assert!(store.alarms().unwrap().iter().any(|a| a.1 == "live_recording_damaged"));
    assert!(store.live_recordings().unwrap().iter().any(|r| r.clip_id == clip3 && r.state == "damaged"));
    assert!(!home.join("items").join(&clip3).exists());
}
