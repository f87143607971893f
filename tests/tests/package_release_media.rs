//! Release profile and the media files themselves: a phone's MP4 carries its exact place in
//! `moov/udta/©xyz` and `moov/meta` (QuickTime keys), a JPEG in its EXIF GPS IFD. A release
//! must not hand those out: it holds a copy with that metadata overwritten in place (same
//! length, media data identical), named in the server-signed derived manifest next to the
//! original's digests, and verifiable with `fieldcap verify` and with VERIFY.txt; media that
//! cannot be scrubbed (WebM) is withheld and the package says so. The full profile still
//! carries the originals byte for byte.
#![allow(clippy::unwrap_used)]

mod package_support;

use fieldcap_core::identity::FileKeyProtector;
use fieldcap_core::manifest::Role;
use fieldcap_package::package::{verify_package, DerivedManifest, PackageIndex};
use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::store::Profile as DeviceProfile;
use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions};
use fieldcap_core::track::TrackPoint;
use fieldcap_core::Store;
use fieldcap_server::package::{export, PackageRequest, Profile, Selection};
use package_support::{copy_dir, fieldcap_bin, have, stock_verify};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// The place the phone wrote into its files (ISO 6709, as Android and iOS write it).
const XYZ: &str = "+33.7406-118.2760/";
const ISO6709: &str = "+33.7406-118.2760+012.000/";
const OWNER: &str = "Jane Q Monitor";

fn bx(typ: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(typ);
    v.extend_from_slice(payload);
    v
}

fn full(typ: &[u8], payload: &[u8]) -> Vec<u8> {
    bx(typ, &[&[0u8; 4][..], payload].concat())
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A movie as a phone writes it: ftyp, mdat (the "video"), moov with a video track, udta with
/// `©xyz` (Android) and `©aut`, and a QuickTime `meta` with keys (iOS).
fn phone_movie(mdat: &[u8]) -> Vec<u8> {
    let text = |t: &str| [&(t.len() as u16).to_be_bytes()[..], &0x15c7u16.to_be_bytes()[..], t.as_bytes()].concat();
    let data = |t: &str| bx(b"data", &[&1u32.to_be_bytes()[..], &[0u8; 4][..], t.as_bytes()].concat());
    let hdlr = |h: &[u8]| full(b"hdlr", &[&[0u8; 4][..], h, &[0u8; 12][..], b"Handler\0"].concat());
    let mdia = bx(b"mdia", &[full(b"mdhd", &[0u8; 20]), hdlr(b"vide"), bx(b"minf", &[0u8; 24])].concat());
    let trak = bx(b"trak", &[full(b"tkhd", &[0u8; 80]), mdia].concat());
    let udta = bx(b"udta", &[bx(b"\xA9xyz", &text(XYZ)), bx(b"\xA9aut", &text(OWNER)), bx(b"\xA9mak", &text("Google"))].concat());
    let key = |k: &str| [&((k.len() + 8) as u32).to_be_bytes()[..], b"mdta", k.as_bytes()].concat();
    let keys = full(b"keys", &[&2u32.to_be_bytes()[..], &key("com.apple.quicktime.location.ISO6709"), &key("com.apple.quicktime.model")].concat());
    let ilst = bx(b"ilst", &[bx(&1u32.to_be_bytes(), &data(ISO6709)), bx(&2u32.to_be_bytes(), &data("iPhone 15"))].concat());
    let meta = bx(b"meta", &[hdlr(b"mdta"), keys, ilst].concat());
    let moov = bx(b"moov", &[full(b"mvhd", &[0u8; 96]), trak, udta, meta].concat());
    [bx(b"ftyp", b"isom\0\0\x02\0isommp41"), bx(b"mdat", mdat), moov].concat()
}

/// EXIF GPS rationals of 33°44'26.16" N and 118°16'33.60" W (big-endian).
fn rationals(v: &[(u32, u32)]) -> Vec<u8> {
    v.iter().flat_map(|(a, b)| [a.to_be_bytes(), b.to_be_bytes()].concat()).collect()
}
fn lat() -> Vec<u8> {
    rationals(&[(33, 1), (44, 1), (2616, 100)])
}
fn lon() -> Vec<u8> {
    rationals(&[(118, 1), (16, 1), (3360, 100)])
}

/// A JPEG with an EXIF block (big-endian TIFF): IFD0 Make, Artist and the GPS pointer; a GPS
/// IFD with latitude and longitude. Offsets are relative to the TIFF header.
fn phone_photo(scan: &[u8]) -> Vec<u8> {
    let entry = |tag: u16, typ: u16, count: u32, value: [u8; 4]| [&tag.to_be_bytes()[..], &typ.to_be_bytes()[..], &count.to_be_bytes()[..], &value[..]].concat();
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    // IFD0 at 8: three entries (2 + 36 + 4 bytes), then Make at 50, Artist at 56, GPS IFD at 72.
    let artist = format!("{OWNER}\0");
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend(entry(0x010F, 2, 6, 50u32.to_be_bytes()));
    t.extend(entry(0x013B, 2, artist.len() as u32, 56u32.to_be_bytes()));
    t.extend(entry(0x8825, 4, 1, 72u32.to_be_bytes()));
    t.extend_from_slice(&[0u8; 4]);
    t.extend_from_slice(b"Pixel\0");
    t.extend_from_slice(artist.as_bytes());
    t.resize(72, 0);
    // GPS IFD at 72: four entries (2 + 48 + 4), latitude at 126, longitude at 150.
    t.extend_from_slice(&4u16.to_be_bytes());
    t.extend(entry(1, 2, 2, *b"N\0\0\0"));
    t.extend(entry(2, 5, 3, 126u32.to_be_bytes()));
    t.extend(entry(3, 2, 2, *b"W\0\0\0"));
    t.extend(entry(4, 5, 3, 150u32.to_be_bytes()));
    t.extend_from_slice(&[0u8; 4]);
    assert_eq!(t.len(), 126);
    t.extend(lat());
    t.extend(lon());
    let seg = |code: u8, p: &[u8]| [&[0xFF, code][..], &((p.len() + 2) as u16).to_be_bytes()[..], p].concat();
    [
        vec![0xFF, 0xD8],
        seg(0xE1, &[&b"Exif\0\0"[..], &t].concat()),
        seg(0xDB, &[0u8; 65]),
        seg(0xC0, &[8, 0, 16, 0, 16, 1, 1, 0x11, 0]),
        seg(0xDA, &[1, 1, 0, 0, 63, 0]),
        scan.to_vec(),
        vec![0xFF, 0xD9],
    ]
    .concat()
}

fn opts() -> SyncOptions {
    SyncOptions {
        budget: Duration::from_secs(60),
        chunk_size: 256 << 10,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(300),
        request_timeout: Duration::from_secs(10),
        max_retries: 12,
        ..Default::default()
    }
}

struct Setup {
    _server: fieldcap_server::ServerHandle,
    data: tempfile::TempDir,
    _home: tempfile::TempDir,
    work: tempfile::TempDir,
    /// (clip id, original bytes) of the movie, the photo and the WebM clip.
    movie: (String, Vec<u8>),
    photo: (String, Vec<u8>),
    webm: (String, Vec<u8>),
    mdat: Vec<u8>,
    scan: Vec<u8>,
}

/// A council server on 127.0.0.1 and one monitor's phone that captures the three files and syncs.
fn setup() -> Setup {
    let data = tempfile::tempdir().unwrap();
    let server = fieldcap_server::ServerHandle::start(fieldcap_server::ServerConfig {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        worker_threads: 2,
        ..Default::default()
    })
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut store = Store::open(home.path(), Arc::new(FileKeyProtector)).unwrap();
    store.set_profile(DeviceProfile { role: Role::parse("monitor").unwrap(), org: Some("Harbor Area Peace Patrol".into()), callsign: None }).unwrap();
    let t = ReqwestTransport::new().unwrap();
    store.enroll(&t, &server.url(), &fieldcap_server::issue_token(data.path(), "monitor").unwrap()).unwrap();
    store.sync_once(&t, &opts(), &CancelToken::new(), &mut |_| {}).unwrap();

    let start = chrono::Utc::now() - chrono::Duration::minutes(20);
    // The track is where the phone was (the derived manifest coarsens it to 33.741, -118.276).
    let track = |at: chrono::DateTime<chrono::Utc>| {
        vec![TrackPoint {
            t: fieldcap_core::time::format(at),
            lat: 33.740_612,
            lon: -118.276_015,
            accuracy_m: 5.0,
            altitude_m: Some(12.0),
            heading_deg: None,
            speed_mps: None,
            provider: "gps".into(),
        }]
    };
    let mdat = noise(400_000, 1).into_iter().map(|b| if b == b'+' { b'*' } else { b }).collect::<Vec<u8>>();
    let scan: Vec<u8> = noise(30_000, 2).into_iter().map(|b| if b == 0xFF { 0xFE } else { b }).collect();
    let seal = |name: &str, bytes: &[u8], minute: i64| {
        let src = home.path().join(name);
        std::fs::write(&src, bytes).unwrap();
        let at = start + chrono::Duration::minutes(minute);
        let req = CaptureRequest { started_at: Some(at), ended_at: Some(at + chrono::Duration::seconds(30)), track: track(at), ..Default::default() };
        (store.seal_file(&src, req, &mut |_, _| {}).unwrap().clip_id, bytes.to_vec())
    };
    let movie = seal("clip.mp4", &phone_movie(&mdat), 0);
    let photo = seal("photo.jpg", &phone_photo(&scan), 2);
    // A WebM (Matroska) file: the scrubber does not parse it, so its location stays unknown.
    let webm = seal("clip.webm", &[&[0x1A, 0x45, 0xDF, 0xA3][..], b"webm", XYZ.as_bytes(), &noise(50_000, 3)].concat(), 4);
    for _ in 0..5 {
        store.sync_once(&t, &opts(), &CancelToken::new(), &mut |_| {}).unwrap();
        if store.list_items().unwrap().iter().all(|i| i.receipted_at.is_some()) {
            break;
        }
    }
    assert!(store.list_items().unwrap().iter().all(|i| i.receipted_at.is_some()), "items still without receipts");
    Setup { _server: server, data, _home: home, work: tempfile::tempdir().unwrap(), movie, photo, webm, mdat, scan }
}

fn package(s: &Setup, name: &str, clips: &[&str], profile: Profile) -> PathBuf {
    export(
        s.data.path(),
        &PackageRequest {
            selection: Selection::Clips(clips.iter().map(|c| c.to_string()).collect()),
            out: s.work.path().join(name),
            recipient: "Records request 25-301".into(),
            purpose: "public records request".into(),
            profile,
            sensitive_reason: None,
            zip: false,
            exported_by: "records custodian".into(),
        },
    )
    .unwrap()
    .path
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn cli_verify(dir: &Path) -> (bool, String) {
    let out = Command::new(fieldcap_bin()).arg("verify").arg(dir).output().unwrap();
    (out.status.code() == Some(0), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn derived(dir: &Path, clip: &str) -> DerivedManifest {
    DerivedManifest::parse(&std::fs::read(dir.join(format!("clips/{clip}/manifest.json"))).unwrap()).unwrap()
}

#[test]
fn release_media_is_scrubbed_of_location_and_owner_verifiable_and_unsupported_media_withheld() {
    let s = setup();
    let all = [s.movie.0.as_str(), s.photo.0.as_str(), s.webm.0.as_str()];
    let stock = have("openssl") && have("b3sum");

    // Full profile (prosecutors): the originals, byte for byte, location metadata and all.
    let full = package(&s, "full", &all, Profile::Full);
    for (clip, bytes, ext) in [(&s.movie.0, &s.movie.1, "mp4"), (&s.photo.0, &s.photo.1, "jpg"), (&s.webm.0, &s.webm.1, "webm")] {
        assert_eq!(&std::fs::read(full.join(format!("clips/{clip}/media.{ext}"))).unwrap(), bytes, "full profile holds the original {ext}");
    }
    assert!(verify_package(&full).all_ok());

    // Release profile.
    let rel = package(&s, "release", &all, Profile::Release);
    let idx: PackageIndex = serde_json::from_slice(&std::fs::read(rel.join("package.json")).unwrap()).unwrap();

    // No released file holds the exact place, the owner, or the EXIF rationals.
    for f in fieldcap_package::clip::list_files(&rel).unwrap() {
        let b = std::fs::read(rel.join(&f)).unwrap();
        for bad in [&b"33.7406"[..], b"118.2760", OWNER.as_bytes(), &lat(), &lon()] {
            assert!(find(&b, bad).is_none(), "{f} contains {:?}", String::from_utf8_lossy(bad));
        }
    }

    // The movie: same length, the media data identical at the same offset, the rest of the file
    // differs only where the derived manifest says it was overwritten.
    let mp4 = rel.join(format!("clips/{}/media.mp4", s.movie.0));
    let copy = std::fs::read(&mp4).unwrap();
    assert_eq!(copy.len(), s.movie.1.len());
    let at = find(&s.movie.1, &s.mdat[..256]).unwrap();
    assert_eq!(&copy[at..at + s.mdat.len()], s.mdat.as_slice(), "mdat byte-identical");
    assert!(find(&copy, b"Google").is_some() && find(&copy, b"iPhone 15").is_some(), "make and model kept");
    let d = derived(&rel, &s.movie.0);
    let rm = d.released_media.clone().expect("released_media");
    let original = fieldcap_core::hashing::Digests::of_bytes(&s.movie.1);
    let released = fieldcap_core::hashing::Digests::of_bytes(&copy);
    assert_eq!((rm.bytes, rm.sha256.as_str(), rm.blake3.as_str()), (released.bytes, released.sha256_hex().as_str(), released.blake3_hex().as_str()));
    let m = d.media.clone().unwrap();
    assert_eq!((m.bytes, m.sha256.as_str()), (original.bytes, original.sha256_hex().as_str()), "the derived manifest still names the original");
    assert!(d.media_withheld.is_none());
    for w in ["moov/udta/©xyz (location)", "moov/udta/©aut (identity)", "moov/meta/ilst/[1] com.apple.quicktime.location.ISO6709 (location)"] {
        assert!(rm.scrubbed.iter().any(|l| l.starts_with(w)), "{w} not in {:?}", rm.scrubbed);
    }
    // Every changed byte lies in a listed range ("… N bytes at offset O …").
    let ranges: Vec<(usize, usize)> = rm
        .scrubbed
        .iter()
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "bytes").unwrap();
            let (n, o): (usize, usize) = (words[i - 1].parse().unwrap(), words[i + 3].parse().unwrap());
            (o, o + n)
        })
        .collect();
    for (i, (a, b)) in s.movie.1.iter().zip(&copy).enumerate() {
        if a != b {
            assert!(ranges.iter().any(|(s, e)| (*s..*e).contains(&i)), "byte {i} changed outside the listed ranges");
        }
    }
    let item = idx.items.iter().find(|i| i.clip_id == s.movie.0).unwrap();
    assert_eq!(item.media.as_ref().unwrap().sha256, released.sha256_hex(), "the index lists the released copy");

    // The photo: GPS and Artist gone, image data identical.
    let jpg = std::fs::read(rel.join(format!("clips/{}/media.jpg", s.photo.0))).unwrap();
    assert_eq!(jpg.len(), s.photo.1.len());
    let at = find(&s.photo.1, &s.scan[..256]).unwrap();
    assert_eq!(&jpg[at..at + s.scan.len()], s.scan.as_slice(), "scan data byte-identical");
    assert!(find(&jpg, b"Pixel").is_some());
    let pd = derived(&rel, &s.photo.0);
    let scrubbed = pd.released_media.unwrap().scrubbed;
    for w in ["JPEG/EXIF/GPS IFD 0x0002 GPSLatitude", "JPEG/EXIF/GPS IFD 0x0004 GPSLongitude", "JPEG/EXIF/IFD0 0x013B Artist"] {
        assert!(scrubbed.iter().any(|l| l.starts_with(w)), "{w} not in {scrubbed:?}");
    }

    // The WebM: withheld, and the package says so in the derived manifest and the index.
    let wd = derived(&rel, &s.webm.0);
    assert!(wd.released_media.is_none());
    assert!(wd.media.is_some(), "the original's digests are still named");
    let why = wd.media_withheld.clone().expect("media_withheld");
    assert!(why.contains("video/webm"), "{why}");
    let witem = idx.items.iter().find(|i| i.clip_id == s.webm.0).unwrap();
    assert!(witem.media.is_none() && witem.media_withheld.as_deref() == Some(why.as_str()));
    assert!(!rel.join(format!("clips/{}/media.webm", s.webm.0)).exists());
    assert!(wd.derivation.changes.iter().any(|c| c.contains("withheld")));

    // It verifies: in-process, with the CLI, and with stock tools.
    let report = verify_package(&rel);
    assert!(report.all_ok(), "{:#?}", report.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    assert!(report.checks.iter().any(|c| c.name == "media withheld" && c.ok));
    assert!(report.checks.iter().any(|c| c.name == "media matches the manifest" && c.detail.contains("released copy")));
    let (ok, text) = cli_verify(&rel);
    assert!(ok && text.contains("VERIFIED"), "{text}");
    if stock {
        let (ok, text) = stock_verify(&rel);
        assert!(ok && text.contains("ALL STOCK-TOOL CHECKS PASSED") && text.contains("media withheld"), "{text}");
    }

    // A tampered released copy fails both, naming the file.
    let bad = s.work.path().join("tampered");
    copy_dir(&rel, &bad);
    let f = bad.join(format!("clips/{}/media.mp4", s.movie.0));
    let mut b = std::fs::read(&f).unwrap();
    let i = at_of_mdat(&b, &s.mdat) + 1000;
    b[i] ^= 0x01;
    std::fs::write(&f, b).unwrap();
    let (ok, text) = cli_verify(&bad);
    assert!(!ok && text.lines().any(|l| l.starts_with("FAIL") && l.contains("media.mp4")), "{text}");
    if stock {
        assert!(!stock_verify(&bad).0, "VERIFY.txt must fail on a tampered copy");
    }

    // Putting the original back in place of the released copy is not accepted either: the
    // derived manifest names the copy's digests.
    let swapped = s.work.path().join("swapped");
    copy_dir(&rel, &swapped);
    std::fs::write(swapped.join(format!("clips/{}/media.mp4", s.movie.0)), &s.movie.1).unwrap();
    let r = verify_package(&swapped);
    assert!(r.checks.iter().any(|c| !c.ok && c.name == "media matches the manifest" && c.detail.contains("released copy")), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());

    // A release of the WebM alone: no media file at all, and it still verifies.
    let only = package(&s, "webm-only", &[s.webm.0.as_str()], Profile::Release);
    assert!(fieldcap_package::clip::list_files(&only).unwrap().iter().all(|f| !f.contains("media.")));
    let (ok, text) = cli_verify(&only);
    assert!(ok, "{text}");
    if stock {
        let (ok, text) = stock_verify(&only);
        assert!(ok, "{text}");
    }
}

fn at_of_mdat(file: &[u8], mdat: &[u8]) -> usize {
    find(file, &mdat[..256]).unwrap()
}
