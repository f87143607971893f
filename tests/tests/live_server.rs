//! Live capture, server side (issue 11): a real server on 127.0.0.1 with its real SQLite records
//! and files receives a fragmented MP4 made by Debian's `ffmpeg`, piece by piece
//! (`PUT /v1/live/{clip_id}/{index}`), each with a `fieldcap.fragment/1` record signed by an
//! enrolled device key. Covered: a whole recording sent fragment by fragment and then its
//! manifest (the commitment answer carries the receipt, the original is ffmpeg's file byte for
//! byte); a recording cut short (a partial: `fieldcap live` lists it, `fieldcap package --clip`
//! packages it, `fieldcap verify` accepts it as partial, `ffprobe` decodes its media); and
//! refusals (truncated piece, a gap, a fragment of another recording, a forged record, the same
//! index with other bytes), each leaving the held prefix intact.

#![allow(clippy::unwrap_used)]

use fieldcap_evidence::fragment::{FragmentAck, FragmentRecord, FRAGMENT_TYPE};
use fieldcap_evidence::hashing::{sha256_hex, Digests};
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::manifest::FragmentChain;
use fieldcap_evidence::protocol::{self, CommitmentResponse, FragmentAnswer};
use fieldcap_testkit::api::{manifest, problem};
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::tools::Cli;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// ffmpeg's fragmented MP4 (6 s of test pattern, a keyframe and so a fragment every second),
/// made once per test process.
fn ffmpeg_fmp4() -> &'static Vec<u8> {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out.mp4");
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "6", "-c:v", "libx264", "-g", "30"])
            .args(["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"])
            .arg(&out)
            .status()
            .expect("ffmpeg (Debian's package) must be installed");
        assert!(st.success(), "ffmpeg failed");
        std::fs::read(&out).unwrap()
    })
}

/// Splits a fragmented MP4 at its top-level boxes: the initialization segment (`ftyp` + `moov`),
/// then each `moof` + `mdat`, then a trailing `mfra` on its own.
fn split(file: &[u8]) -> Vec<Vec<u8>> {
    let mut boxes = Vec::new();
    let mut pos = 0usize;
    while pos < file.len() {
        let size = u32::from_be_bytes(file[pos..pos + 4].try_into().unwrap()) as usize;
        let typ: [u8; 4] = file[pos + 4..pos + 8].try_into().unwrap();
        assert!(size >= 8, "64-bit or open-ended boxes are not expected here");
        boxes.push((typ, &file[pos..pos + size]));
        pos += size;
    }
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for (typ, b) in boxes {
        match &typ {
            b"ftyp" => cur.extend_from_slice(b),
            b"moov" => {
                cur.extend_from_slice(b);
                pieces.push(std::mem::take(&mut cur));
            }
            b"moof" => cur.extend_from_slice(b),
            b"mdat" => {
                cur.extend_from_slice(b);
                pieces.push(std::mem::take(&mut cur));
            }
            b"mfra" => pieces.push(b.to_vec()),
            other => panic!("unexpected top-level box {:?}", String::from_utf8_lossy(other)),
        }
    }
    assert!(cur.is_empty());
    pieces
}

/// A signed chain of fragment records over `pieces` for `clip_id`: (record bytes, signature).
fn chain(key: &DeviceKey, clip_id: &str, pieces: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut whole = Vec::new();
    let mut prev: Option<String> = None;
    // Deterministic: the same pieces give the same records.
    let t0 = fieldcap_evidence::time::parse("2026-11-30T12:00:00.000Z", "t0").unwrap();
    for (i, p) in pieces.iter().enumerate() {
        let offset = whole.len() as u64;
        whole.extend_from_slice(p);
        let d = Digests::of_bytes(p);
        let t = Digests::of_bytes(&whole);
        let r = FragmentRecord {
            kind_type: FRAGMENT_TYPE.into(),
            clip_id: clip_id.into(),
            device_id: key.device_id().into(),
            mime: "video/mp4".into(),
            index: i as u64,
            offset,
            bytes: d.bytes,
            sha256: d.sha256_hex(),
            blake3: d.blake3_hex(),
            total_bytes: t.bytes,
            total_sha256: t.sha256_hex(),
            total_blake3: t.blake3_hex(),
            captured_at: fieldcap_evidence::time::format(t0 + chrono::Duration::seconds(i as i64)),
            fix: None,
            prev: prev.clone(),
        };
        let b = r.to_canonical_bytes().unwrap();
        let s = key.sign(&b).to_vec();
        prev = Some(sha256_hex(&b));
        out.push((b, s));
    }
    out
}

fn new_clip() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// `PUT /v1/live/{clip}/{index}` signed by `key`, with the record headers.
fn put(srv: &TestServer, key: &DeviceKey, clip_id: &str, index: u64, rec: &(Vec<u8>, Vec<u8>), body: &[u8]) -> reqwest::blocking::Response {
    let path = protocol::fragment_path(clip_id, index);
    let ts = chrono::Utc::now().timestamp_millis();
    let mut rb = srv.client.put(format!("{}{}", srv.url(), path));
    for (k, v) in protocol::sign_request(key, "PUT", &path, ts, body) {
        rb = rb.header(k, v);
    }
    rb.header(protocol::H_FRAGMENT_RECORD, protocol::b64(&rec.0))
        .header(protocol::H_FRAGMENT_SIGNATURE, protocol::b64(&rec.1))
        .header("content-type", "application/octet-stream")
        .body(body.to_vec())
        .send()
        .unwrap()
}

/// Sends piece `i`, which must be stored now (201); checks the signed ack and returns it.
fn put_ok(srv: &TestServer, key: &DeviceKey, clip_id: &str, i: usize, recs: &[(Vec<u8>, Vec<u8>)], pieces: &[Vec<u8>]) -> FragmentAck {
    let r = put(srv, key, clip_id, i as u64, &recs[i], &pieces[i]);
    assert_eq!(r.status(), 201, "fragment {i}: {:?}", r.text());
    ack_of(srv, r.json().unwrap())
}

fn ack_of(srv: &TestServer, a: FragmentAnswer) -> FragmentAck {
    let body = protocol::unb64(&a.ack.body, "ack").unwrap();
    let sig = protocol::unb64(&a.ack.sig, "sig").unwrap();
    fieldcap_evidence::identity::verify(&srv.server_key(), &body, &sig).expect("the ack is signed by the server key");
    serde_json::from_slice(&body).unwrap()
}

fn enrolled(srv: &TestServer) -> DeviceKey {
    let key = DeviceKey::generate();
    srv.enroll(&key, "monitor");
    key
}

/// The held partial of a clip (the embedded store's `uploads/<clip>.part`).
fn held(srv: &TestServer, clip_id: &str) -> Vec<u8> {
    std::fs::read(srv.data().join("uploads").join(format!("{clip_id}.part"))).unwrap_or_default()
}

#[test]
fn a_whole_recording_sent_fragment_by_fragment_is_receipted_by_its_manifest_without_a_byte_sent_twice() {
    let srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let file = ffmpeg_fmp4();
    let pieces = split(file);
    assert!(pieces.len() >= 5, "ffmpeg made {} pieces", pieces.len());
    assert_eq!(pieces.concat(), *file);
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    for i in 0..pieces.len() {
        let ack = put_ok(&srv, &key, &clip, i, &recs, &pieces);
        assert_eq!((ack.index, ack.clip_id.as_str(), ack.device_id.as_str()), (i as u64, clip.as_str(), key.device_id()));
        assert_eq!(ack.record_sha256, sha256_hex(&recs[i].0));
        assert_eq!(ack.total_bytes, pieces[..=i].iter().map(|p| p.len() as u64).sum::<u64>());
    }
    // A repeat of a stored fragment answers 200 with the same ack.
    let r = put(&srv, &key, &clip, 2, &recs[2], &pieces[2]);
    assert_eq!(r.status(), 200);
    let again = ack_of(&srv, r.json().unwrap());
    assert_eq!(again.index, 2);

    // The finished recording's manifest names the chain's head: the commitment answer carries
    // the receipt at once, no upload needed.
    let mut m = manifest(&key, 1, None, Some(file), "2026-11-30T12:00:00.000Z", vec![]);
    m.manifest.clip_id = clip.clone();
    m.manifest.fragments = Some(FragmentChain { count: pieces.len() as u64, head: sha256_hex(&recs.last().unwrap().0) });
    let bytes = m.manifest.to_canonical_bytes().unwrap();
    let sig = key.sign(&bytes).to_vec();
    let r = srv.submit(&key, &bytes, &sig);
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let c: CommitmentResponse = r.json().unwrap();
    assert!(c.receipt.is_some(), "the receipt comes with the commitment");
    assert!(c.upload_url.is_none());
    // The original is ffmpeg's file, byte for byte.
    let recs_store = fieldcap_server::records::Records::open(srv.data()).unwrap();
    let item = recs_store.item(&clip).unwrap().unwrap();
    assert_eq!(item.state, "received");
    let blob = item.blob_sha256.clone().unwrap();
    let stored = std::fs::read(srv.data().join("blobs").join("sha256").join(&blob[..2]).join(&blob)).unwrap();
    assert_eq!(stored, *file);
    // One live_started custody event, none per fragment.
    let events: Vec<String> = recs_store.custody(Some(&clip)).unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(events.iter().filter(|e| *e == "live_started").count(), 1, "{events:?}");
    // Its package carries the fragment records, which the verifier checks against the media
    // and the manifest's chain head.
    let cli = Cli::built();
    let t = tempfile::tempdir().unwrap();
    let pkg = t.path().join("pkg");
    let (ok, _, err) = run(&cli, &["package", "--data", srv.data().to_str().unwrap(), "--clip", &clip, "--out", pkg.to_str().unwrap(), "--recipient", "County DA", "--purpose", "a live recording"]);
    assert!(ok, "{err}");
    assert!(pkg.join("clips").join(&clip).join("fragments").join(format!("{:06}.json", pieces.len() - 1)).exists());
    let (ok, out, err) = run(&cli, &["verify", pkg.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("fragment chain of a live recording"), "{out}");

    // Another record after the recording is whole: 409 conflict.
    let other = chain(&key, &clip, &[pieces[1].clone()]);
    problem(put(&srv, &key, &clip, 0, &other[0], &pieces[1]), 409, "conflict");
}

#[test]
fn a_prefix_then_the_manifest_resumes_the_upload_at_the_servers_offset() {
    let srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let file = ffmpeg_fmp4();
    let pieces = split(file);
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    let k = 3;
    for i in 0..k {
        put_ok(&srv, &key, &clip, i, &recs, &pieces);
    }
    let held_bytes: u64 = pieces[..k].iter().map(|p| p.len() as u64).sum();
    let mut m = manifest(&key, 1, None, Some(file), "2026-11-30T12:00:00.000Z", vec![]);
    m.manifest.clip_id = clip.clone();
    m.manifest.fragments = Some(FragmentChain { count: pieces.len() as u64, head: sha256_hex(&recs.last().unwrap().0) });
    let bytes = m.manifest.to_canonical_bytes().unwrap();
    let sig = key.sign(&bytes).to_vec();
    let c: CommitmentResponse = srv.submit(&key, &bytes, &sig).json().unwrap();
    let url = c.upload_url.expect("an upload URL for the rest");
    assert_eq!(srv.head_offset(&url), held_bytes);
    // The next fragment still comes in (the phone's queue), and moves the upload on.
    put_ok(&srv, &key, &clip, k, &recs, &pieces);
    let now: u64 = pieces[..=k].iter().map(|p| p.len() as u64).sum();
    assert_eq!(srv.head_offset(&url), now);
    let r = srv.patch(&url, now, &file[now as usize..]);
    assert_eq!(r.status(), 204, "{:?}", r.text());
    let item = fieldcap_server::records::Records::open(srv.data()).unwrap().item(&clip).unwrap().unwrap();
    assert_eq!(item.state, "received");
}

#[test]
fn a_manifest_naming_another_chain_sets_the_fragments_aside_and_uploads_from_zero() {
    let srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let file = ffmpeg_fmp4();
    let pieces = split(file);
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    for i in 0..pieces.len() {
        put_ok(&srv, &key, &clip, i, &recs, &pieces);
    }
    let mut m = manifest(&key, 1, None, Some(file), "2026-11-30T12:00:00.000Z", vec![]);
    m.manifest.clip_id = clip.clone();
    m.manifest.fragments = Some(FragmentChain { count: pieces.len() as u64, head: "ab".repeat(32) });
    let bytes = m.manifest.to_canonical_bytes().unwrap();
    let sig = key.sign(&bytes).to_vec();
    let c: CommitmentResponse = srv.submit(&key, &bytes, &sig).json().unwrap();
    assert!(c.receipt.is_none());
    assert_eq!(srv.head_offset(&c.upload_url.unwrap()), 0);
    let events: Vec<String> = fieldcap_server::records::Records::open(srv.data()).unwrap().custody(Some(&clip)).unwrap().into_iter().map(|e| e.event).collect();
    assert!(events.contains(&"live_chain_mismatch".to_string()), "{events:?}");
}

#[test]
fn bad_fragments_are_refused_and_leave_the_held_prefix_intact() {
    let srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let pieces = split(ffmpeg_fmp4());
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    put_ok(&srv, &key, &clip, 0, &recs, &pieces);
    put_ok(&srv, &key, &clip, 1, &recs, &pieces);
    let prefix: Vec<u8> = pieces[..2].concat();
    assert_eq!(held(&srv, &clip), prefix);

    // Truncated piece: the record names the whole piece, the body is cut.
    let cut = &pieces[2][..pieces[2].len() - 100];
    problem(put(&srv, &key, &clip, 2, &recs[2], cut), 422, "invalid-fragment");
    // A truncated piece with a record made for it (digests match): its boxes do not tile it.
    let mut bad_pieces = pieces.clone();
    bad_pieces[2] = cut.to_vec();
    let bad = chain(&key, &clip, &bad_pieces);
    problem(put(&srv, &key, &clip, 2, &bad[2], cut), 422, "invalid-fragment");
    assert_eq!(held(&srv, &clip), prefix);

    // A gap: fragment 3 before 2.
    let r = put(&srv, &key, &clip, 3, &recs[3], &pieces[3]);
    assert_eq!(r.headers()[protocol::H_NEXT_FRAGMENT].to_str().unwrap(), "2");
    problem(r, 409, "fragment-out-of-order");

    // A fragment of another recording (its own chain, same device, same index).
    let other_clip = new_clip();
    let other = chain(&key, &other_clip, &pieces);
    problem(put(&srv, &key, &clip, 2, &other[2], &pieces[2]), 422, "invalid-fragment");
    // ... and the same record forged onto this clip (clip id changed, signature kept).
    let mut r2 = FragmentRecord::parse(&other[2].0).unwrap();
    r2.clip_id = clip.clone();
    let forged = (r2.to_canonical_bytes().unwrap(), other[2].1.clone());
    problem(put(&srv, &key, &clip, 2, &forged, &pieces[2]), 422, "invalid-fragment");
    // Re-signed properly, it still does not follow this chain (its prev names the other one's).
    let resigned = (forged.0.clone(), key.sign(&forged.0).to_vec());
    problem(put(&srv, &key, &clip, 2, &resigned, &pieces[2]), 409, "fragment-out-of-order");

    // A forged record: one digit of the totals changed, the signature kept.
    let mut f = FragmentRecord::parse(&recs[2].0).unwrap();
    f.captured_at = fieldcap_evidence::time::now();
    let forged = (f.to_canonical_bytes().unwrap(), recs[2].1.clone());
    problem(put(&srv, &key, &clip, 2, &forged, &pieces[2]), 422, "invalid-fragment");
    // Signed by another (enrolled) device's key.
    let stranger = enrolled(&srv);
    problem(put(&srv, &stranger, &clip, 2, &recs[2], &pieces[2]), 422, "invalid-fragment");

    // The same index again with other bytes (a record made for them).
    let mut swapped = pieces.clone();
    swapped[1] = pieces[2].clone();
    let srecs = chain(&key, &clip, &swapped);
    let r = put(&srv, &key, &clip, 1, &srecs[1], &swapped[1]);
    assert_eq!(r.headers()[protocol::H_NEXT_FRAGMENT].to_str().unwrap(), "2");
    problem(r, 409, "fragment-out-of-order");
    assert_eq!(held(&srv, &clip), prefix);

    // A body announced larger than 64 MiB: 413 from Content-Length, before a byte is read.
    let req = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        protocol::fragment_path(&clip, 2),
        fieldcap_evidence::fragment::MAX_FRAGMENT_BYTES + 1
    );
    let (status, text) = fieldcap_testkit::api::raw(srv.addr(), req.as_bytes());
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("too-large"), "{text}");

    // The next good fragment is still accepted.
    put_ok(&srv, &key, &clip, 2, &recs, &pieces);
    assert_eq!(held(&srv, &clip), pieces[..3].concat());
}

#[test]
fn the_running_totals_survive_a_restart() {
    let mut srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let pieces = split(ffmpeg_fmp4());
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    put_ok(&srv, &key, &clip, 0, &recs, &pieces);
    put_ok(&srv, &key, &clip, 1, &recs, &pieces);
    srv.restart();
    put_ok(&srv, &key, &clip, 2, &recs, &pieces);
    assert_eq!(held(&srv, &clip), pieces[..3].concat());
}

/// Runs `fieldcap ARGS` and returns (success, stdout, stderr).
fn run(cli: &Cli, args: &[&str]) -> (bool, String, String) {
    let o = cli.run(args);
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn ffprobe_decodes(path: &Path) -> bool {
    let o = Command::new("ffprobe").args(["-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"]).arg(path).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    o.status.success() && err.trim().is_empty() && String::from_utf8_lossy(&o.stdout).trim().parse::<u64>().is_ok_and(|n| n > 0)
}

#[test]
fn a_recording_cut_short_is_listed_packaged_and_verified_as_partial() {
    let cli = Cli::built();
    let mut srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let pieces = split(ffmpeg_fmp4());
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    let k = 4;
    for i in 0..k {
        put_ok(&srv, &key, &clip, i, &recs, &pieces);
    }
    srv.stop();
    let data = srv.data().to_str().unwrap().to_string();
    let held_bytes: u64 = pieces[..k].iter().map(|p| p.len() as u64).sum();

    // Listed as partial.
    let (ok, out, err) = run(&cli, &["live", "--data", &data, "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["clip_id"], clip.as_str());
    assert_eq!(list[0]["state"], "partial");
    assert_eq!(list[0]["fragments"], k as u64);
    assert_eq!(list[0]["bytes"], held_bytes);
    let (ok, out, _) = run(&cli, &["live", "--data", &data]);
    assert!(ok && out.contains("partial") && out.contains(&clip), "{out}");

    // Packaged and verified as partial.
    let t = tempfile::tempdir().unwrap();
    let pkg = t.path().join("pkg");
    let pkg_s = pkg.to_str().unwrap();
    let (ok, _, err) = run(&cli, &["package", "--data", &data, "--clip", &clip, "--out", pkg_s, "--recipient", "County DA", "--purpose", "a phone taken mid-recording"]);
    assert!(ok, "{err}");
    let media = pkg.join("clips").join(&clip).join("media.mp4");
    let mbytes = std::fs::read(&media).unwrap();
    assert_eq!(mbytes, pieces[..k].concat());
    assert!(pkg.join("clips").join(&clip).join("fragments").join("000003.json").exists());
    assert!(pkg.join("clips").join(&clip).join("acks").join("000003.sig").exists());
    let (ok, out, err) = run(&cli, &["verify", pkg_s]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("partial recording"), "{out}");
    assert!(ffprobe_decodes(&media), "ffprobe could not decode the partial recording");
    // The stock-tool procedure checks it too (step 5b).
    if fieldcap_testkit::tools::stock_tools("VERIFY.txt on a partial recording", &["openssl", "sha256sum", "b3sum"]) {
        let (ok, out) = fieldcap_testkit::tools::stock_verify(&pkg, &srv.fingerprint());
        assert!(ok, "{out}");
        assert!(out.contains("partial recording") && !out.contains("FAILED"), "{out}");
    }

    // Tampered: one byte of the media changed, the verifier names the fragment.
    let mut bad = mbytes.clone();
    let at = pieces[0].len() + 50;
    bad[at] ^= 0x40;
    std::fs::write(&media, &bad).unwrap();
    let (ok, out, err) = run(&cli, &["verify", pkg_s]);
    assert!(!ok);
    assert!(format!("{out}{err}").contains("fragment 1"), "{out}\n{err}");
}

#[test]
fn a_file_that_does_not_continue_the_fragments_held_sets_them_aside_and_starts_over() {
    let srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let file = ffmpeg_fmp4();
    let pieces = split(file);
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    for i in 0..2 {
        put_ok(&srv, &key, &clip, i, &recs, &pieces);
    }
    let held_bytes = (pieces[0].len() + pieces[1].len()) as u64;
    // The manifest names the chain's count and head, but the rest sent with tus is other bytes.
    let mut m = manifest(&key, 1, None, Some(file), "2026-11-30T12:00:00.000Z", vec![]);
    m.manifest.clip_id = clip.clone();
    m.manifest.fragments = Some(FragmentChain { count: pieces.len() as u64, head: sha256_hex(&recs.last().unwrap().0) });
    let bytes = m.manifest.to_canonical_bytes().unwrap();
    let sig = key.sign(&bytes).to_vec();
    let c: CommitmentResponse = srv.submit(&key, &bytes, &sig).json().unwrap();
    let url = c.upload_url.unwrap();
    assert_eq!(srv.head_offset(&url), held_bytes);
    let mut rest = file[held_bytes as usize..].to_vec();
    rest[10] ^= 1;
    problem(srv.patch(&url, held_bytes, &rest), 422, "digest-mismatch");
    // The upload starts over at 0 (the fragments held set aside, recorded), and the right file
    // is then received.
    assert_eq!(srv.head_offset(&url), 0);
    let events: Vec<String> = fieldcap_server::records::Records::open(srv.data()).unwrap().custody(Some(&clip)).unwrap().into_iter().map(|e| e.event).collect();
    assert!(events.contains(&"live_chain_mismatch".to_string()), "{events:?}");
    assert_eq!(srv.patch(&url, 0, file).status(), 204);
}

/// A sealed submission (`POST /v1/manifests/sealed`) of a manifest, encrypted to `item` and
/// its key wrapped to the server's escrow recipient; `media_age_len` is the length of the
/// media's age file.
fn submit_sealed(srv: &TestServer, key: &DeviceKey, item: &fieldcap_evidence::escrow::ItemKey, bytes: &[u8], sig: &[u8], media_age_len: usize) -> reqwest::blocking::Response {
    let doc: protocol::SignedDoc = srv.client.get(format!("{}{}", srv.url(), protocol::ESCROW_KEY_PATH)).send().unwrap().json().unwrap();
    let (st, _, _): (protocol::EscrowKeyStatement, _, _) = doc.open(&srv.server_key()).unwrap();
    let escrow = fieldcap_evidence::escrow::Recipient::parse(&st.recipient).unwrap();
    let sub = protocol::SealedManifestSubmission {
        manifest_age: protocol::b64(&item.encrypt(bytes).unwrap()),
        sig: protocol::b64(sig),
        key_wrap: protocol::b64(&item.wrap_to(&escrow).unwrap()),
        media_age_bytes: Some(media_age_len as u64),
    };
    let body = serde_json::to_vec(&sub).unwrap();
    srv.signed(key, "POST", protocol::SEALED_MANIFESTS_PATH, &body)
}

#[test]
fn a_recording_sealed_when_it_finished_keeps_its_pieces_on_record_and_uploads_encrypted_whole() {
    let srv = TestServer::start_embedded();
    let key = enrolled(&srv);
    let file = ffmpeg_fmp4();
    let pieces = split(file);
    // Pieces held (sent in the clear while filming), then the phone seals the finished
    // recording encrypted and submits it sealed: accepted, the held bytes set aside.
    let clip = new_clip();
    let recs = chain(&key, &clip, &pieces);
    for i in 0..3 {
        put_ok(&srv, &key, &clip, i, &recs, &pieces);
    }
    let mut m = manifest(&key, 1, None, Some(file), "2026-11-30T12:00:00.000Z", vec![]);
    m.manifest.clip_id = clip.clone();
    m.manifest.fragments = Some(FragmentChain { count: pieces.len() as u64, head: sha256_hex(&recs.last().unwrap().0) });
    let bytes = m.manifest.to_canonical_bytes().unwrap();
    let sig = key.sign(&bytes).to_vec();
    let item_key = fieldcap_evidence::escrow::ItemKey::generate();
    let media_age = item_key.encrypt(file).unwrap();
    let r = submit_sealed(&srv, &key, &item_key, &bytes, &sig, media_age.len());
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let c: CommitmentResponse = r.json().unwrap();
    let url = c.upload_url.expect("an upload URL for the encrypted file");
    assert_eq!(srv.head_offset(&url), 0, "the encrypted file is uploaded whole");
    let records = fieldcap_server::records::Records::open(srv.data()).unwrap();
    let events: Vec<String> = records.custody(Some(&clip)).unwrap().into_iter().map(|e| e.event).collect();
    assert!(events.contains(&"live_prefix_set_aside".to_string()), "{events:?}");
    // No further piece of it is taken; the pieces held stay on record.
    problem(put(&srv, &key, &clip, 3, &recs[3], &pieces[3]), 409, "conflict");
    assert_eq!(records.store().fragments(&clip).unwrap().len(), 3);
    // The ciphertext, whole: decrypted and checked at the last byte, the original is the file.
    let mid = media_age.len() / 2;
    assert_eq!(srv.patch(&url, 0, &media_age[..mid]).status(), 204);
    let r = srv.patch(&url, mid as u64, &media_age[mid..]);
    assert_eq!(r.status(), 204, "{:?}", r.text());
    let item = records.item(&clip).unwrap().unwrap();
    assert_eq!(item.state, "received");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut srv.deployment().open_blob_store().unwrap().open(&item.media.unwrap().sha256).unwrap(), &mut out).unwrap();
    assert!(out == *file, "the original stored is the recording, byte for byte");

    // A clip committed sealed with no piece held: a live fragment for it is refused (409).
    let clip2 = new_clip();
    let mut m2 = manifest(&key, 2, Some(&bytes), Some(file), "2026-11-30T12:10:00.000Z", vec![]);
    m2.manifest.clip_id = clip2.clone();
    let bytes2 = m2.manifest.to_canonical_bytes().unwrap();
    let sig2 = key.sign(&bytes2).to_vec();
    let r = submit_sealed(&srv, &key, &item_key, &bytes2, &sig2, media_age.len());
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let recs2 = chain(&key, &clip2, &pieces);
    problem(put(&srv, &key, &clip2, 0, &recs2[0], &pieces[0]), 409, "conflict");
}
