//! The S3 blob store against a real S3 server (moto, on 127.0.0.1, started per test by
//! testkit's `TestS3`; skipped with a line when moto_server is missing unless
//! FIELDCAP_REQUIRE_S3 is set): originals, create-only writes, checksums, partial uploads resumed
//! across replicas, Object Lock retention and legal hold, outages, and the retention wiring.
#![allow(clippy::unwrap_used)]

use fieldcap_evidence::hashing::sha256_hex;
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_server::records::Records;
use fieldcap_server::store::{BlobStore, S3BlobStore, SqliteRecordStore, Stores};
use fieldcap_server::Error;
use fieldcap_testkit::api::*;
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::s3::TestS3;
use fieldcap_testkit::server::TestServer;
use std::io::Read;
use std::sync::Arc;

const MIB: usize = 1024 * 1024;

fn clip() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

fn read_all(mut r: Box<dyn Read + Send>) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

fn read_all_err(mut r: Box<dyn Read + Send>) -> std::io::Error {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap_err()
}

/// Writes `data` as the partial of `clip` (writes of `chunk` bytes, a sync at the end).
fn write_partial(s: &dyn BlobStore, clip: &str, data: &[u8], chunk: usize) {
    let mut w = s.open_partial(clip, 0).unwrap();
    for c in data.chunks(chunk) {
        w.write_all(c).unwrap();
    }
    w.sync().unwrap();
}

fn store_bytes(s: &dyn BlobStore, data: &[u8]) -> String {
    let c = clip();
    write_partial(s, &c, data, MIB);
    let sha = sha256_hex(data);
    s.store_partial(&c, &sha).unwrap();
    sha
}

/// Objects in the bucket under `prefix`, listed with an unsigned request (moto does not check
/// signatures).
fn keys_under(s3: &TestS3, prefix: &str) -> String {
    let url = format!("{}/{}?list-type=2&prefix={prefix}", endpoint(s3), s3.bucket());
    fieldcap_testkit::server::http_client().get(url).send().unwrap().text().unwrap()
}

/// A plain SDK client on the test bucket, for what the store never does (an administrator's
/// requests).
fn raw_client(s3: &TestS3) -> (tokio::runtime::Runtime, aws_sdk_s3::Client) {
    let a = TestS3::access();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(a.region.clone()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(a.access_key_id, a.secret_access_key, None, None, "test"))
        .endpoint_url(endpoint(s3))
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    (tokio::runtime::Runtime::new().unwrap(), aws_sdk_s3::Client::from_conf(conf))
}

fn endpoint(s3: &TestS3) -> String {
    s3.url().split_once("endpoint=").unwrap().1.to_string()
}

#[test]
fn an_original_is_stored_read_copied_and_its_partial_removed() {
    let Some(s3) = TestS3::start() else { return };
    let s = s3.store();
    assert!(s.object_lock_enabled());
    let data = seeded(300_000, 1);
    let c = clip();
    assert!(s.read_partial(&c).unwrap().is_none());
    write_partial(&s, &c, &data, 64 * 1024);
    assert_eq!(read_all(s.read_partial(&c).unwrap().unwrap()), data);
    let sha = sha256_hex(&data);
    assert!(!s.contains(&sha).unwrap());
    s.store_partial(&c, &sha).unwrap();
    assert!(s.contains(&sha).unwrap());
    assert!(s.read_partial(&c).unwrap().is_none(), "the partial is removed once the original is stored");
    assert!(!keys_under(&s3, "partials/").contains(&c));
    assert_eq!(read_all(s.open(&sha).unwrap()), data);
    let dir = tempfile::tempdir().unwrap();
    let d = s.copy_to(&sha, &dir.path().join("copy")).unwrap();
    assert_eq!(d.sha256_hex(), sha);
    assert_eq!(std::fs::read(dir.path().join("copy")).unwrap(), data);
    assert!(s.local_path(&sha).is_none());
    // Under a prefix, keys stay inside it.
    let p = S3BlobStore::open_with_access(&s3.url_with_prefix("city/a"), &TestS3::access()).unwrap();
    let sha2 = store_bytes(&p, b"prefixed");
    assert!(keys_under(&s3, "city/a/originals/sha256/").contains(&sha2));
    assert!(!s.contains(&sha2).unwrap());
    // An empty partial is a partial (empty media), and an empty original can be stored.
    let e = clip();
    s.open_partial(&e, 0).unwrap().sync().unwrap();
    assert_eq!(read_all(s.read_partial(&e).unwrap().unwrap()), b"");
    s.store_partial(&e, &sha256_hex(b"")).unwrap();
    assert_eq!(read_all(s.open(&sha256_hex(b"")).unwrap()), b"");
}

#[test]
fn an_original_is_written_once_and_identical_bytes_keep_the_stored_one() {
    let Some(s3) = TestS3::start() else { return };
    let s = s3.store();
    let data = seeded(50_000, 2);
    let sha = store_bytes(&s, &data);
    // Different bytes under the same name are refused; the stored bytes are unchanged.
    let c = clip();
    write_partial(&s, &c, &seeded(50_000, 3), MIB);
    assert!(s.store_partial(&c, &sha).is_err());
    assert_eq!(read_all(s.open(&sha).unwrap()), data);
    // The bucket itself refuses a second create-only write of the name (what the store relies
    // on when two replicas store at once).
    let (rt, client) = raw_client(&s3);
    let put = rt.block_on(
        client
            .put_object()
            .bucket(s3.bucket())
            .key(format!("originals/sha256/{sha}"))
            .if_none_match("*")
            .body(b"other".to_vec().into())
            .send(),
    );
    assert_eq!(put.unwrap_err().raw_response().unwrap().status().as_u16(), 412);
    assert_eq!(read_all(s.open(&sha).unwrap()), data);
    // Identical bytes from another item: the stored original is checked and kept, the partial
    // removed.
    let c2 = clip();
    write_partial(&s, &c2, &data, 7_000);
    s.store_partial(&c2, &sha).unwrap();
    assert!(s.read_partial(&c2).unwrap().is_none());
    assert_eq!(read_all(s.open(&sha).unwrap()), data);
}

#[test]
fn bytes_that_do_not_hash_to_the_name_are_refused_and_nothing_is_stored() {
    let Some(s3) = TestS3::start() else { return };
    let s = s3.store();
    for len in [1000, 17 * MIB + 5] {
        let data = seeded(len, 4);
        let c = clip();
        write_partial(&s, &c, &data, MIB);
        let wrong = sha256_hex(b"something else");
        let e = s.store_partial(&c, &wrong).unwrap_err();
        assert!(e.to_string().contains("does not hash"), "{e}");
        assert!(!s.contains(&wrong).unwrap(), "a {len}-byte original was claimed stored");
        // The partial is kept (verification may be run again).
        assert_eq!(read_all(s.read_partial(&c).unwrap().unwrap()).len(), len);
    }
    // No multipart upload is left behind.
    let uploads = format!("{}/{}?uploads", endpoint(&s3), s3.bucket());
    let text = fieldcap_testkit::server::http_client().get(uploads).send().unwrap().text().unwrap();
    assert!(!text.contains("<UploadId>"), "{text}");
}

#[test]
fn an_upload_cut_on_one_replica_resumes_on_another_at_the_recorded_offset() {
    let Some(s3) = TestS3::start() else { return };
    let data = seeded(21 * MIB + 123, 5);
    let c = clip();
    let recorded = 3 * MIB as u64 + 17;
    {
        let a = s3.store();
        let mut w = a.open_partial(&c, 0).unwrap();
        w.write_all(&data[..recorded as usize]).unwrap();
        w.sync().unwrap(); // the server records `recorded` now
        // More bytes, never confirmed: 16 MiB of them reach S3 as two segments (at `recorded`
        // and 8 MiB past it), the rest is lost.
        w.write_all(&seeded(20 * MIB, 99)).unwrap();
        drop(w); // replica A killed
    }
    let b = s3.store();
    let mut w = b.open_partial(&c, recorded).unwrap();
    // PATCH bodies of 5 MiB, each synced: segments at other offsets than A's.
    for ch in data[recorded as usize..].chunks(5 * MIB) {
        w.write_all(ch).unwrap();
        w.sync().unwrap();
    }
    drop(w);
    assert_eq!(read_all(b.read_partial(&c).unwrap().unwrap()), data);
    let sha = sha256_hex(&data);
    b.store_partial(&c, &sha).unwrap();
    let copy = tempfile::tempdir().unwrap();
    assert_eq!(b.copy_to(&sha, &copy.path().join("x")).unwrap().sha256_hex(), sha);
    assert_eq!(std::fs::read(copy.path().join("x")).unwrap(), data);
}

#[test]
fn a_large_upload_is_segmented_and_stored_as_a_multipart_original() {
    let Some(s3) = TestS3::start() else { return };
    let s = s3.store();
    let data = seeded(25 * MIB + 1, 6);
    let c = clip();
    let mut w = s.open_partial(&c, 0).unwrap();
    for (i, ch) in data.chunks(MIB).enumerate() {
        w.write_all(ch).unwrap();
        if i % 5 == 4 {
            w.sync().unwrap(); // segments of 5 MiB and of 8 MiB
        }
    }
    w.sync().unwrap();
    drop(w);
    let listing = keys_under(&s3, &format!("partials/{c}/"));
    assert!(listing.matches("<Key>").count() >= 5, "{listing}");
    let sha = sha256_hex(&data);
    s.store_partial(&c, &sha).unwrap();
    assert_eq!(read_all(s.open(&sha).unwrap()), data);
    // Storing the same bytes again (another item) checks the multipart original and keeps it.
    let c2 = clip();
    write_partial(&s, &c2, &data, 3 * MIB);
    s.store_partial(&c2, &sha).unwrap();
    assert_eq!(read_all(s.open(&sha).unwrap()), data);
}

#[test]
fn truncate_and_resume_cut_segments_and_drop_what_lies_past() {
    let Some(s3) = TestS3::start() else { return };
    let s = s3.store();
    let c = clip();
    let mut w = s.open_partial(&c, 0).unwrap();
    w.write_all(b"hello, ").unwrap();
    w.sync().unwrap();
    w.write_all(b"world and more").unwrap();
    w.sync().unwrap();
    // A body that ran past the length is taken back to where it started.
    w.truncate(7).unwrap();
    assert_eq!(read_all(s.read_partial(&c).unwrap().unwrap()), b"hello, ");
    w.write_all(b"there").unwrap();
    w.sync().unwrap();
    // Truncating inside a segment keeps its head.
    w.truncate(3).unwrap();
    assert_eq!(read_all(s.read_partial(&c).unwrap().unwrap()), b"hel");
    w.write_all(b"p!").unwrap();
    w.sync().unwrap();
    drop(w);
    assert_eq!(read_all(s.read_partial(&c).unwrap().unwrap()), b"help!");
    // Resuming inside a segment (at 2) cuts it too.
    let mut w = s.open_partial(&c, 2).unwrap();
    w.write_all(b"ad").unwrap();
    w.sync().unwrap();
    assert_eq!(read_all(s.read_partial(&c).unwrap().unwrap()), b"head");
    // A recorded offset past the stored bytes is an error, never zero-filled.
    assert!(s.open_partial(&c, 100).is_err());
    s.discard_partial(&c).unwrap();
    assert!(s.read_partial(&c).unwrap().is_none());
    assert!(!keys_under(&s3, "partials/").contains(&c));
    s.discard_partial(&c).unwrap();
}

#[test]
fn a_partial_set_aside_is_kept_but_no_longer_the_items() {
    let Some(s3) = TestS3::start() else { return };
    let s = s3.store();
    let c = clip();
    assert_eq!(s.set_aside_partial(&c).unwrap(), None);
    let mut w = s.open_partial(&c, 0).unwrap();
    for ch in b"revoked device bytes".chunks(4) {
        w.write_all(ch).unwrap();
        w.sync().unwrap();
    }
    drop(w);
    let name = s.set_aside_partial(&c).unwrap().unwrap();
    assert!(name.starts_with(&format!("set-aside/{c}-")), "{name}");
    assert!(s.read_partial(&c).unwrap().is_none());
    assert!(s.store_partial(&c, &sha256_hex(b"revoked device bytes")).is_err());
    let kept = keys_under(&s3, &format!("{name}/"));
    assert_eq!(kept.matches("<Key>").count(), 6, "marker and five segments: {kept}");
}

#[test]
fn object_lock_refuses_removal_until_retention_ends_and_while_a_legal_hold_is_on() {
    let Some(s3) = TestS3::start() else { return };
    let s = s3.store();
    let sha = store_bytes(&s, b"locked evidence");
    let lock = s.lock_state(&sha).unwrap().unwrap();
    assert_eq!((lock.retain_until, lock.legal_hold), (None, false));
    let until = fieldcap_evidence::time::format(chrono::Utc::now() + chrono::Duration::days(2));
    s.set_retention(&sha, &until).unwrap();
    let lock = s.lock_state(&sha).unwrap().unwrap();
    assert_eq!(lock.mode.as_deref(), Some("COMPLIANCE"));
    let set = lock.retain_until.clone().unwrap();
    assert!(set.as_str() >= &until[..19], "{set} vs {until}");
    // Never shortened.
    s.set_retention(&sha, &fieldcap_evidence::time::format(chrono::Utc::now() + chrono::Duration::days(1))).unwrap();
    assert_eq!(s.lock_state(&sha).unwrap().unwrap().retain_until, Some(set.clone()));
    // Removal refused, naming the date; the original stays.
    let e = s.remove_disposed(&sha).unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert!(e.to_string().contains(&set), "{e}");
    assert!(s.contains(&sha).unwrap());
    assert_eq!(read_all(s.open(&sha).unwrap()), b"locked evidence");
    // S3 itself refuses to delete the locked version, whoever asks (here: unsigned, by hand).
    let versions = fieldcap_testkit::server::http_client().get(format!("{}/{}?versions&prefix=originals/sha256/{sha}", endpoint(&s3), s3.bucket())).send().unwrap().text().unwrap();
    let vid = versions.split("<VersionId>").nth(1).unwrap().split('<').next().unwrap().to_string();
    let (rt, client) = raw_client(&s3);
    let del = rt.block_on(client.delete_object().bucket(s3.bucket()).key(format!("originals/sha256/{sha}")).version_id(vid).send());
    assert_eq!(del.unwrap_err().raw_response().unwrap().status().as_u16(), 403);

    // A legal hold alone also refuses removal, until it is lifted.
    let sha2 = store_bytes(&s, b"held evidence");
    s.set_legal_hold(&sha2, true).unwrap();
    assert!(s.lock_state(&sha2).unwrap().unwrap().legal_hold);
    let e = s.remove_disposed(&sha2).unwrap_err();
    assert!(e.to_string().contains("legal hold"), "{e}");
    assert!(s.contains(&sha2).unwrap());
    s.set_legal_hold(&sha2, false).unwrap();
    assert!(!s.lock_state(&sha2).unwrap().unwrap().legal_hold);
    s.remove_disposed(&sha2).unwrap();
    assert!(!s.contains(&sha2).unwrap());
    // Every version is gone, not hidden behind a delete marker.
    let versions = fieldcap_testkit::server::http_client().get(format!("{}/{}?versions&prefix=originals/sha256/{sha2}", endpoint(&s3), s3.bucket())).send().unwrap().text().unwrap();
    assert!(!versions.contains("<Version>") && !versions.contains("<DeleteMarker>"), "{versions}");
    s.remove_disposed(&sha2).unwrap();
}

#[test]
fn an_object_storage_that_does_not_answer_is_storage_unavailable_until_it_is_back() {
    let Some(mut s3) = TestS3::start() else { return };
    if !s3.can_restart() {
        return;
    }
    let s = s3.store();
    let c = clip();
    let mut w = s.open_partial(&c, 0).unwrap();
    w.write_all(b"before the outage").unwrap();
    let done = clip();
    write_partial(&s, &done, b"received before the outage", 5);
    let reader = s.read_partial(&done).unwrap().unwrap(); // reads lazily
    s3.stop();
    let unavailable = |e: Error| {
        assert!(matches!(&e, Error::StorageUnavailable(m) if m == "the object storage does not answer"), "{e:?}");
        assert_eq!(e.problem().status, 503);
        assert!(!e.to_string().contains("127.0.0.1"), "{e}");
    };
    unavailable(w.sync().unwrap_err());
    // A reader handed out before the outage fails with the outage inside its I/O error.
    let e = read_all_err(reader);
    match e.into_inner().map(|inner| inner.downcast::<Error>()) {
        Some(Ok(inner)) => unavailable(*inner),
        other => panic!("{other:?}"),
    }
    unavailable(s.contains(&sha256_hex(b"x")).unwrap_err());
    unavailable(s.open_partial(&clip(), 0).err().unwrap());
    let url = s3.url();
    unavailable(S3BlobStore::open_with_access(&url, &TestS3::access()).unwrap_err());
    s3.restart(); // moto comes back empty
    let sha = store_bytes(&s, b"after the outage");
    assert_eq!(read_all(s.open(&sha).unwrap()), b"after the outage");
}

/// A data directory with two received videos (through the embedded server), then its records
/// on SQLite with the S3 blob store holding the originals.
fn records_on_s3(s3: &TestS3) -> (TestServer, Records, Vec<(String, String)>) {
    let mut srv = TestServer::start();
    let dev = DeviceKey::generate();
    srv.enroll(&dev, "monitor");
    let mut items = Vec::new();
    let mut prev: Option<Vec<u8>> = None;
    for (seq, seed) in [(1u64, 11u64), (2, 12)] {
        let data = seeded(40_000, seed);
        let m = manifest(&dev, seq, prev.as_deref(), Some(&data), "2025-06-07T18:00:00.000Z", vec![(33.74, -118.27)]);
        let c = commit(&srv, &dev, &m);
        assert_eq!(srv.patch(c.upload_url.as_ref().unwrap(), 0, &data).status(), 204);
        prev = Some(m.bytes.clone());
        items.push((m.manifest.clip_id.clone(), sha256_hex(&data)));
        // The original as an S3 replica would have stored it.
        let s = s3.store();
        write_partial(&s, &m.manifest.clip_id, &data, 10_000);
        s.store_partial(&m.manifest.clip_id, &sha256_hex(&data)).unwrap();
    }
    srv.stop();
    let data = srv.data();
    let records = SqliteRecordStore::open(&data.join(fieldcap_server::store::RECORDS_FILE)).unwrap();
    let r = Records::with_stores(&data, Stores { records: Arc::new(records), blobs: Arc::new(s3.store()) }).unwrap();
    (srv, r, items)
}

#[test]
fn retention_locks_originals_holds_them_and_dispose_refuses_a_locked_one() {
    let Some(s3) = TestS3::start() else { return };
    let (_srv, r, items) = records_on_s3(&s3);
    let (a, sha_a) = &items[0];
    let (b, sha_b) = &items[1];
    let item_a = r.item(a).unwrap().unwrap();
    // What the tus completion does before the receipt: the default 730 days.
    fieldcap_server::retention::lock_new_original(r.store(), r.blobs(), &item_a, sha_a).unwrap();
    let until = r.blobs().lock_state(sha_a).unwrap().unwrap().retain_until.unwrap();
    assert!(until > fieldcap_evidence::time::format(chrono::Utc::now() + chrono::Duration::days(729)), "{until}");

    // hold sets the legal hold in S3; release lifts it.
    fieldcap_server::retention::hold_in(&r, b, "litigation hold 25-7").unwrap();
    assert!(r.blobs().lock_state(sha_b).unwrap().unwrap().legal_hold);
    assert!(r.blobs().remove_disposed(sha_b).is_err());
    assert_eq!(fieldcap_server::retention::release_in(&r, b, "case closed").unwrap(), 1);
    assert!(!r.blobs().lock_state(sha_b).unwrap().unwrap().legal_hold);

    // Retention 0 days: both items are due; A's original is still locked in S3, so A is kept
    // (naming the date) and nothing is recorded for it; B's is not locked and is disposed.
    fieldcap_server::retention::set_policy_in(&r, "default", 0).unwrap();
    let rep = fieldcap_server::retention::dispose_in(&r, chrono::Utc::now(), false).unwrap();
    assert_eq!(rep.disposed, vec![b.clone()]);
    assert_eq!(rep.kept.len(), 1);
    assert_eq!(&rep.kept[0].0, a);
    assert!(rep.kept[0].1.contains(&until), "{:?}", rep.kept);
    assert!(r.store().retention_facts(a).unwrap().disposed_at.is_none());
    assert!(r.blobs().contains(sha_a).unwrap());
    assert!(!r.blobs().contains(sha_b).unwrap());

    // A longer policy extends the lock of the stored originals.
    fieldcap_server::retention::set_policy_in(&r, "video", 3650).unwrap();
    let longer = r.blobs().lock_state(sha_a).unwrap().unwrap().retain_until.unwrap();
    assert!(longer > fieldcap_evidence::time::format(chrono::Utc::now() + chrono::Duration::days(3600)), "{longer}");
}
