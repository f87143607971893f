//! Release profile and the media files themselves: a phone's MP4 carries its exact place in
//! `moov/udta/©xyz` and `moov/meta` (QuickTime keys), a JPEG in its EXIF GPS IFD. A release
//! must not hand those out: it holds a copy with that metadata overwritten in place (same
//! length, media data identical), named in the server-signed derived manifest next to the
//! original's digests, and verifiable with `fieldcap verify` and with VERIFY.txt; media that
//! cannot be scrubbed (WebM) is withheld and the package says so. The full profile still
//! carries the originals byte for byte.
#![allow(clippy::unwrap_used)]

use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::track::TrackPoint;
use fieldcap_package::package::{verify_package, DerivedManifest, PackageIndex};
use fieldcap_server::package::{export, PackageRequest, Profile};
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::{sync_until_receipted, Device};
use fieldcap_testkit::files::copy_dir;
use fieldcap_testkit::media::{jpeg_scan, phone_movie, phone_photo, Tiff, GPS_LAT, GPS_LON, OWNER, PLACE_XYZ};
use fieldcap_testkit::package::{request, sync_opts, MONITOR_ORG};
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::{stock_tools, stock_verify, Cli};
use fieldcap_testkit::track::fix;
use std::path::{Path, PathBuf};

/// EXIF GPS rationals of the photo's place (big-endian, as the photo is written).
fn lat() -> Vec<u8> {
    Tiff::new(false).rationals(&GPS_LAT)
}
fn lon() -> Vec<u8> {
    Tiff::new(false).rationals(&GPS_LON)
}

struct Setup {
    _server: TestServer,
    _phone: Device,
    data: fieldcap_server::store::Deployment,
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
    let server = TestServer::start();
    let phone = Device::with_profile("monitor", Some(MONITOR_ORG), None);
    phone.enroll(&server);
    phone.pass(&sync_opts());

    let start = chrono::Utc::now() - chrono::Duration::minutes(20);
    // The track is where the phone was (the derived manifest coarsens it to 33.741, -118.276).
    let track = |at| vec![TrackPoint { altitude_m: Some(12.0), ..fix(at, 33.740_612, -118.276_015) }];
    let mdat = seeded(400_000, 1).into_iter().map(|b| if b == b'+' { b'*' } else { b }).collect::<Vec<u8>>();
    let scan = jpeg_scan(30_000, 2);
    let seal = |name: &str, bytes: &[u8], minute: i64| {
        let at = start + chrono::Duration::minutes(minute);
        let req = CaptureRequest { started_at: Some(at), ended_at: Some(at + chrono::Duration::seconds(30)), track: track(at), ..Default::default() };
        (phone.seal_bytes(name, bytes, req).clip_id, bytes.to_vec())
    };
    let movie = seal("clip.mp4", &phone_movie(&mdat, true, false), 0);
    let photo = seal("photo.jpg", &phone_photo(false, &scan), 2);
    // A WebM (Matroska) file: the scrubber does not parse it, so its location stays unknown.
    let webm = seal("clip.webm", &[&[0x1A, 0x45, 0xDF, 0xA3][..], b"webm", PLACE_XYZ.as_bytes(), &seeded(50_000, 3)].concat(), 4);
    sync_until_receipted(&phone.store, &sync_opts());
    Setup { data: server.deployment(), _server: server, _phone: phone, work: tempfile::tempdir().unwrap(), movie, photo, webm, mdat, scan }
}

fn package(s: &Setup, name: &str, clips: &[&str], profile: Profile) -> PathBuf {
    let clips: Vec<String> = clips.iter().map(|c| c.to_string()).collect();
    let req = PackageRequest {
        recipient: "Records request 25-301".into(),
        purpose: "public records request".into(),
        ..request(&clips, s.work.path().join(name), profile)
    };
    export(&s.data, &req).unwrap().path
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn cli_verify(dir: &Path) -> (bool, String) {
    let out = Cli::built().command().arg("verify").arg(dir).output().unwrap();
    (out.status.code() == Some(0), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn derived(dir: &Path, clip: &str) -> DerivedManifest {
    DerivedManifest::parse(&std::fs::read(dir.join(format!("clips/{clip}/manifest.json"))).unwrap()).unwrap()
}

#[test]
fn release_media_is_scrubbed_of_location_and_owner_verifiable_and_unsupported_media_withheld() {
    let s = setup();
    let all = [s.movie.0.as_str(), s.photo.0.as_str(), s.webm.0.as_str()];
    let stock = stock_tools("the VERIFY.txt runs of the release media packages", &["openssl", "sha256sum", "b3sum"]);

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
        let (ok, text) = stock_verify(&rel, &s._server.fingerprint());
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
        assert!(!stock_verify(&bad, &s._server.fingerprint()).0, "VERIFY.txt must fail on a tampered copy");
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
        let (ok, text) = stock_verify(&only, &s._server.fingerprint());
        assert!(ok, "{text}");
    }
}

fn at_of_mdat(file: &[u8], mdat: &[u8]) -> usize {
    find(file, &mdat[..256]).unwrap()
}
