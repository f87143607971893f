//! The `RecordStore` contract: one set of tests run against both record stores, the embedded
//! SQLite one (a temporary file) and the PostgreSQL one (a fresh database from
//! `fieldcap_testkit::postgres`; skipped without `FIELDCAP_TEST_POSTGRES_URL` unless
//! `FIELDCAP_REQUIRE_POSTGRES` is set). Then PostgreSQL only: two stores on one database (two
//! server replicas) appending concurrently, and a PostgreSQL restart.
//!
//! Run the PostgreSQL half with
//! `FIELDCAP_TEST_POSTGRES_URL=$(bash scripts/start_postgres.sh) FIELDCAP_REQUIRE_POSTGRES=1 cargo test -p fieldcap-server --test record_store_contract`.

#![allow(clippy::unwrap_used)]

use fieldcap_evidence::custody::{body, verify_chain, CustodyEvent};
use fieldcap_evidence::identity::DeviceKey;
use fieldcap_evidence::tlog::{leaf_hash, Hash};
use fieldcap_server::store::{
    Completion, DeviceRecord, DisposalOutcome, EnrollOutcome, FragmentRow, ItemRecord, MediaInfo, PendingDisposal, PostgresRecordStore, RecordStore, RecordsRequestRecord,
    SessionRecord, StaffRecord, UploadRecord,
};
use fieldcap_server::Error;
use fieldcap_testkit::postgres::TestPostgres;
use serde_json::json;
use std::sync::{Arc, Barrier};

// ---------------------------------------------------------------------------------------------
// Fixtures

const AT: &str = "2025-06-07T18:04:05.000Z";

/// A device record as the enrolment endpoint builds it; the certificate bytes are not UTF-8.
fn device_record(id: &str, role: &str) -> DeviceRecord {
    DeviceRecord {
        device_id: id.to_string(),
        public_key_pem: format!("-----BEGIN PUBLIC KEY-----\n{id}\n-----END PUBLIC KEY-----\n"),
        role: role.to_string(),
        org: Some("Parks".into()),
        enrolled_at: AT.into(),
        cert: vec![0x00, 0xff, 0x7b, 0x22, 0x00, 0x80],
        cert_sig: vec![0xaa; 64],
        revoked_at: None,
    }
}

fn dev_id(n: u32) -> String {
    format!("{n:032x}")
}

/// Enrols device `n` with a fresh token; returns its id.
fn enrolled(s: &dyn RecordStore, n: u32) -> String {
    let id = dev_id(n);
    let token = format!("{:064x}", 0x7000_0000u64 + n as u64);
    s.insert_token(&token, "monitor", AT, i64::MAX).unwrap();
    let out = s.enroll(&token, &id, 0, AT, &|role| Ok(device_record(&id, role))).unwrap();
    assert!(matches!(out, EnrollOutcome::Enrolled(_)), "{out:?}");
    id
}

fn clip(n: u64) -> String {
    format!("0190a4c2-0000-7000-8000-{n:012}")
}

/// An item of `device` at `seq`, waiting for its media. Its signed bytes hold NUL and non-UTF-8
/// bytes: stored exactly.
fn item(device: &str, seq: u64, clip_id: &str) -> ItemRecord {
    ItemRecord {
        clip_id: clip_id.to_string(),
        device_id: device.to_string(),
        seq,
        kind: "video".into(),
        manifest: [b"{\"manifest\":".as_slice(), clip_id.as_bytes(), &[0x00, 0xc3, 0x28, 0xff]].concat(),
        manifest_sig: vec![seq as u8; 64],
        manifest_sha256: format!("{:064x}", seq),
        media: Some(MediaInfo { mime: "video/mp4".into(), bytes: 5_000_000_000, sha256: "a".repeat(64), blake3: "b".repeat(64) }),
        started_at: AT.into(),
        ended_at: "2025-06-07T18:05:05.000Z".into(),
        commitment: vec![0x01, 0x00, 0x02],
        commitment_sig: vec![0x03; 64],
        committed_at: AT.into(),
        state: "committed".into(),
        blob_sha256: None,
        receipt: None,
        receipt_sig: None,
        received_at: None,
        log_index: None,
        refusals: 0,
        last_refusal: None,
        sealed: None,
    }
}

fn upload(clip_id: &str, cap: u64) -> UploadRecord {
    UploadRecord {
        clip_id: clip_id.to_string(),
        capability: format!("{cap:064x}"),
        length: 5_000_000_000,
        offset: 0,
        created_at: AT.into(),
        expires_at_ms: 1_900_000_000_000,
        state: "open".into(),
    }
}

/// A checkpoint-like note at `size` with `cosigs` witness lines after the server's.
fn note(size: u64, cosigs: usize) -> String {
    let mut n = format!("fieldcap.test/log\n{size}\nAAAA{size}\n\n\u{2014} fieldcap.test/log AAAAAAA=\n");
    for i in 0..cosigs {
        n.push_str(&format!("\u{2014} w{i} BBBBBBB=\n"));
    }
    n
}

/// The completion of `clip_id` as the `index`th leaf.
fn completion(clip_id: &str, index: u64, blob: Option<&str>) -> Completion {
    let leaf = format!("leaf of {clip_id}").into_bytes();
    Completion {
        clip_id: clip_id.to_string(),
        log_index: index,
        leaf_hash: leaf_hash(&leaf),
        leaf,
        tree_size: index + 1,
        checkpoint: note(index + 1, 0),
        receipt: [b"receipt ".as_slice(), clip_id.as_bytes(), &[0x00, 0xfe]].concat(),
        receipt_sig: vec![0x5a; 64],
        received_at: "2025-06-07T18:06:00.000Z".into(),
        blob_sha256: blob.map(String::from),
    }
}

/// Completes `clip_id` at the end of the log, catching up and retrying on `LogMoved` as
/// `receipts::complete` does; returns its index and how many times the log had moved.
fn complete_at_end(s: &dyn RecordStore, clip_id: &str) -> (u64, u32) {
    let mut moved = 0;
    let mut size = s.leaf_hashes().unwrap().len() as u64;
    loop {
        match s.complete_item(&completion(clip_id, size, None)) {
            Ok(()) => return (size, moved),
            Err(Error::LogMoved) => {
                moved += 1;
                assert!(moved < 10_000, "the log kept moving");
                size += s.leaf_hashes_since(size).unwrap().len() as u64;
            }
            Err(e) => panic!("completing {clip_id} at {size}: {e}"),
        }
    }
}

fn custody_signer<'a>(key: &'a DeviceKey, event: &'static str, clip_id: Option<String>) -> impl Fn(u64, Option<&str>) -> (Vec<u8>, Vec<u8>) + 'a {
    move |seq, prev| {
        let b = body("server:test", seq, AT, event, clip_id.as_deref(), json!({ "n": seq }), prev);
        let sig = key.sign(&b).to_vec();
        (b, sig)
    }
}

/// A device custody log of `n` events from `from`, chained on `prev`.
fn device_log(key: &DeviceKey, from: u64, n: u64, mut prev: Option<String>) -> Vec<CustodyEvent> {
    let mut out = Vec::new();
    for seq in from..from + n {
        let b = body(&format!("device:{}", key.device_id()), seq, AT, "sealed", Some(&clip(seq)), json!({}), prev.as_deref());
        let sig = key.sign(&b).to_vec();
        let e = CustodyEvent::from_body(b, sig).unwrap();
        prev = Some(e.hash());
        out.push(e);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The contract, run against both stores

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let s = fieldcap_server::store::SqliteRecordStore::open(&dir.path().join("records.sqlite")).unwrap();
                    super::$name(&s);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(pg) = fieldcap_testkit::postgres::TestPostgres::new() else { return };
                    let s = fieldcap_server::store::PostgresRecordStore::connect(pg.url()).unwrap();
                    super::$name(&s);
                }
            )*
        }
    };
}

contract!(
    tokens_are_consumed_once_and_expired_or_revoked_ones_refused,
    a_failed_device_build_consumes_nothing,
    a_nonce_is_used_once_until_pruned,
    items_are_stored_exactly_and_duplicates_refused,
    a_complete_upload_is_never_replaced_or_changed,
    completion_goes_at_the_end_of_the_log_or_nothing_is_stored,
    checkpoints_only_gain_signature_lines_and_the_best_covered_is_found,
    a_cosigned_receipt_replaces_only_the_stored_one,
    server_custody_is_one_chain_in_order,
    device_custody_appends_only_at_the_expected_head,
    retention_policy_holds_and_referrals,
    disposal_is_refused_while_held_or_referred_and_appends_its_leaf_once,
    a_blob_is_needed_while_another_undisposed_item_names_it,
    staff_names_are_unique_and_accounts_are_stored_exactly_and_listed_by_name,
    a_setup_token_works_once_and_never_expired_for_another_account_or_a_disabled_one,
    disabling_an_account_deletes_its_sessions_and_refuses_new_ones,
    a_reset_removes_the_password_ends_sessions_and_gives_a_new_token,
    logins_racing_a_disabling_leave_no_session_of_the_disabled_account,
    sessions_are_stored_touched_deleted_and_expired_ones_removed,
    records_requests_round_trip_with_their_items_newest_first,
    a_records_request_moves_on_only_from_the_expected_state,
    concurrent_updates_from_one_state_of_a_records_request_succeed_once,
    settings_are_upserted,
    fragments_are_stored_exactly_once_per_index_and_listed_per_recording,
);

fn tokens_are_consumed_once_and_expired_or_revoked_ones_refused(s: &dyn RecordStore) {
    let (a, b) = (dev_id(1), dev_id(2));
    let build_a = |role: &str| Ok(device_record(&a, role));
    let build_b = |role: &str| Ok(device_record(&b, role));
    assert_eq!(s.enroll(&"0".repeat(64), &a, 0, AT, &build_a).unwrap(), EnrollOutcome::InvalidToken, "unknown token");
    s.insert_token(&"e".repeat(64), "monitor", AT, 1_000).unwrap();
    assert_eq!(s.enroll(&"e".repeat(64), &a, 1_001, AT, &build_a).unwrap(), EnrollOutcome::InvalidToken, "expired token");
    assert!(s.device(&a).unwrap().is_none());

    s.insert_token(&"1".repeat(64), "police", AT, 5_000).unwrap();
    assert!(s.insert_token(&"1".repeat(64), "police", AT, 5_000).is_err(), "a token is stored once");
    let EnrollOutcome::Enrolled(d) = s.enroll(&"1".repeat(64), &a, 5_000, AT, &build_a).unwrap() else { panic!("not enrolled") };
    assert_eq!(d.role, "police", "the token's role is given to the builder");
    assert_eq!(s.device(&a).unwrap(), Some(d.clone()), "stored exactly (certificate bytes too)");
    // The same token again: the same device gets its record back, any other is refused.
    assert_eq!(s.enroll(&"1".repeat(64), &a, 9_999, AT, &build_a).unwrap(), EnrollOutcome::Existing(d.clone()));
    assert_eq!(s.enroll(&"1".repeat(64), &b, 0, AT, &build_b).unwrap(), EnrollOutcome::InvalidToken);
    assert!(s.device(&b).unwrap().is_none());
    // Another token for an enrolled device: consumed, the existing record returned.
    s.insert_token(&"2".repeat(64), "monitor", AT, i64::MAX).unwrap();
    assert_eq!(s.enroll(&"2".repeat(64), &a, 0, AT, &build_a).unwrap(), EnrollOutcome::Existing(d.clone()));
    assert_eq!(s.enroll(&"2".repeat(64), &b, 0, AT, &build_b).unwrap(), EnrollOutcome::InvalidToken, "consumed by the first device");

    s.insert_token(&"3".repeat(64), "monitor", AT, i64::MAX).unwrap();
    let EnrollOutcome::Enrolled(db) = s.enroll(&"3".repeat(64), &b, 0, "2025-06-07T18:04:04.000Z", &|role| {
        Ok(DeviceRecord { enrolled_at: "2025-06-07T18:04:04.000Z".into(), ..device_record(&b, role) })
    })
    .unwrap() else {
        panic!("not enrolled")
    };
    assert_eq!(s.devices().unwrap(), vec![db, d.clone()], "in enrolment order");

    assert!(s.revoke_device(&a, "2025-06-08T00:00:00.000Z").unwrap());
    assert!(!s.revoke_device(&a, "2025-06-09T00:00:00.000Z").unwrap(), "revoked once");
    assert!(!s.revoke_device(&dev_id(99), AT).unwrap(), "unknown device");
    assert_eq!(s.device(&a).unwrap().unwrap().revoked_at.as_deref(), Some("2025-06-08T00:00:00.000Z"));
    assert_eq!(s.enroll(&"1".repeat(64), &a, 0, AT, &build_a).unwrap(), EnrollOutcome::Revoked, "its own token");
    s.insert_token(&"4".repeat(64), "monitor", AT, i64::MAX).unwrap();
    assert_eq!(s.enroll(&"4".repeat(64), &a, 0, AT, &build_a).unwrap(), EnrollOutcome::Revoked, "a fresh token");
    // A revoked device does not consume a fresh token.
    let c = dev_id(3);
    assert!(matches!(s.enroll(&"4".repeat(64), &c, 0, AT, &|role| Ok(device_record(&c, role))).unwrap(), EnrollOutcome::Enrolled(_)));
}

fn a_failed_device_build_consumes_nothing(s: &dyn RecordStore) {
    let a = dev_id(1);
    s.insert_token(&"1".repeat(64), "monitor", AT, i64::MAX).unwrap();
    let e = s.enroll(&"1".repeat(64), &a, 0, AT, &|_| Err(Error::BadRequest("no certificate".into()))).unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e}");
    assert!(s.device(&a).unwrap().is_none());
    assert!(matches!(s.enroll(&"1".repeat(64), &a, 0, AT, &|role| Ok(device_record(&a, role))).unwrap(), EnrollOutcome::Enrolled(_)));
}

fn a_nonce_is_used_once_until_pruned(s: &dyn RecordStore) {
    let (a, b) = (dev_id(1), dev_id(2));
    assert!(s.use_nonce(&a, "n1", 1_000, 0).unwrap());
    assert!(!s.use_nonce(&a, "n1", 1_001, 0).unwrap(), "a replay is refused");
    assert!(s.use_nonce(&b, "n1", 1_000, 0).unwrap(), "nonces are per device");
    assert!(!s.use_nonce(&a, "n1", 5_000, 1_000).unwrap(), "not older than the pruning bound: kept");
    assert!(s.use_nonce(&a, "n2", 5_000, 1_001).unwrap(), "prunes n1 of both devices");
    assert!(s.use_nonce(&a, "n1", 5_000, 0).unwrap(), "forgotten once pruned");
    assert!(!s.use_nonce(&a, "n2", 5_000, 0).unwrap());
}

fn items_are_stored_exactly_and_duplicates_refused(s: &dyn RecordStore) {
    let d = enrolled(s, 1);
    let other = enrolled(s, 2);
    let i1 = item(&d, 1, &clip(1));
    assert!(s.insert_item(&i1, Some(&upload(&clip(1), 1))).unwrap());
    assert_eq!(s.item(&clip(1)).unwrap(), Some(i1.clone()), "stored exactly");
    assert!(!s.insert_item(&i1, None).unwrap(), "the same clip id again");
    assert!(!s.insert_item(&item(&d, 2, &clip(1)), Some(&upload(&clip(1), 7))).unwrap(), "a clip id taken, another seq");
    assert!(s.upload_by_capability(&format!("{:064x}", 7)).unwrap().is_none(), "a refused item's upload is not stored");
    assert!(!s.insert_item(&item(&d, 1, &clip(2)), None).unwrap(), "a (device, seq) taken");
    assert!(!s.insert_item(&item(&dev_id(77), 1, &clip(3)), None).unwrap(), "an unknown device");
    let mut obs = item(&d, 3, &clip(3));
    obs.kind = "observation".into();
    obs.media = None;
    assert!(s.insert_item(&obs, None).unwrap());
    assert!(s.insert_item(&item(&other, 1, &clip(2)), None).unwrap(), "seq 1 of another device");
    assert_eq!(s.item(&clip(3)).unwrap(), Some(obs.clone()), "no media stays no media");
    assert_eq!(s.item_by_seq(&d, 3).unwrap(), Some(obs.clone()));
    assert!(s.item_by_seq(&d, 2).unwrap().is_none());
    assert!(s.item(&clip(9)).unwrap().is_none());
    assert_eq!(s.max_seq(&d).unwrap(), Some(3));
    assert_eq!(s.max_seq(&dev_id(77)).unwrap(), None);
    let mut mine: Vec<String> = s.items_of_device(&d).unwrap().into_iter().map(|i| i.clip_id).collect();
    mine.sort();
    assert_eq!(mine, vec![clip(1), clip(3)]);
    let all: Vec<String> = s.items().unwrap().into_iter().map(|i| i.clip_id).collect();
    assert_eq!(all, vec![clip(1), clip(3), clip(2)], "in commit order");

    assert_eq!(s.upload_for_clip(&clip(1)).unwrap(), Some(upload(&clip(1), 1)));
    assert_eq!(s.upload_by_capability(&format!("{:064x}", 1)).unwrap(), Some(upload(&clip(1), 1)));
    assert!(s.upload_for_clip(&clip(3)).unwrap().is_none());
    s.note_refusal(&clip(1), "sha256 mismatch").unwrap();
    s.note_refusal(&clip(1), "length mismatch").unwrap();
    let i = s.item(&clip(1)).unwrap().unwrap();
    assert_eq!((i.refusals, i.last_refusal.as_deref()), (2, Some("length mismatch")));

    // A sealed item keeps its key wrap (exact bytes) and the length of its media's age file; a
    // sealed observation its wrap alone.
    let mut sealed = item(&other, 2, &clip(4));
    sealed.sealed = Some(fieldcap_server::store::SealedInfo { key_wrap: vec![0x61, 0x00, 0xff, 0x0a], media_age_bytes: Some(5_000_000_321) });
    assert!(s.insert_item(&sealed, None).unwrap());
    assert_eq!(s.item(&clip(4)).unwrap(), Some(sealed));
    let mut sealed_obs = item(&other, 3, &clip(5));
    sealed_obs.media = None;
    sealed_obs.sealed = Some(fieldcap_server::store::SealedInfo { key_wrap: vec![1, 2, 3], media_age_bytes: None });
    assert!(s.insert_item(&sealed_obs, None).unwrap());
    assert_eq!(s.item_by_seq(&other, 3).unwrap(), Some(sealed_obs));
}

fn a_complete_upload_is_never_replaced_or_changed(s: &dyn RecordStore) {
    let d = enrolled(s, 1);
    assert!(s.insert_item(&item(&d, 1, &clip(1)), Some(&upload(&clip(1), 1))).unwrap());
    assert!(s.insert_item(&item(&d, 2, &clip(2)), None).unwrap());
    // Replaced while not complete (a restarted upload gets a new capability).
    s.put_upload(&upload(&clip(1), 2)).unwrap();
    assert!(s.upload_by_capability(&format!("{:064x}", 1)).unwrap().is_none());
    s.set_upload_offset(&clip(1), 4096).unwrap();
    assert_eq!(s.upload_for_clip(&clip(1)).unwrap().unwrap().offset, 4096);
    assert!(s.set_upload_state(&clip(1), "terminated", 0).unwrap());
    assert_eq!(s.upload_by_capability(&format!("{:064x}", 2)).unwrap().map(|u| (u.state, u.offset)), Some(("terminated".into(), 0)));
    assert!(s.set_upload_state(&clip(1), "open", 0).unwrap(), "back to open");
    assert!(!s.set_upload_state(&clip(9), "open", 0).unwrap(), "no such upload");
    // A new upload for an item without one.
    s.put_upload(&upload(&clip(2), 3)).unwrap();
    assert_eq!(s.upload_for_clip(&clip(2)).unwrap(), Some(upload(&clip(2), 3)));

    // Completed: its offset becomes its length, and it never changes again.
    s.complete_item(&completion(&clip(1), 0, Some(&"a".repeat(64)))).unwrap();
    let done = s.upload_for_clip(&clip(1)).unwrap().unwrap();
    assert_eq!((done.state.as_str(), done.offset), ("complete", done.length));
    let e = s.put_upload(&upload(&clip(1), 4)).unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    s.set_upload_offset(&clip(1), 1).unwrap();
    assert!(!s.set_upload_state(&clip(1), "open", 0).unwrap());
    assert!(!s.set_upload_state(&clip(1), "terminated", 0).unwrap());
    assert_eq!(s.upload_for_clip(&clip(1)).unwrap(), Some(done));
    // Marked complete directly (state), likewise final.
    assert!(s.set_upload_state(&clip(2), "complete", 10).unwrap());
    assert!(matches!(s.put_upload(&upload(&clip(2), 5)).unwrap_err(), Error::Conflict(_)));
    assert_eq!(s.upload_for_clip(&clip(2)).unwrap().map(|u| (u.capability, u.offset)), Some((format!("{:064x}", 3), 10)));
}

fn completion_goes_at_the_end_of_the_log_or_nothing_is_stored(s: &dyn RecordStore) {
    let d = enrolled(s, 1);
    for n in 1..=3 {
        assert!(s.insert_item(&item(&d, n, &clip(n)), Some(&upload(&clip(n), n))).unwrap());
    }
    assert!(s.leaf_hashes().unwrap().is_empty());
    assert!(s.latest_checkpoint().unwrap().is_none());
    let c1 = completion(&clip(1), 0, Some(&"c".repeat(64)));
    s.complete_item(&c1).unwrap();
    let i1 = s.item(&clip(1)).unwrap().unwrap();
    assert_eq!(i1.state, "received");
    assert_eq!((i1.receipt.as_ref(), i1.receipt_sig.as_ref()), (Some(&c1.receipt), Some(&c1.receipt_sig)), "receipt bytes kept exactly");
    assert_eq!((i1.log_index, i1.blob_sha256.as_deref(), i1.received_at.as_deref()), (Some(0), Some("c".repeat(64).as_str()), Some(c1.received_at.as_str())));
    assert_eq!(s.leaf_hashes().unwrap(), vec![c1.leaf_hash]);
    assert_eq!(s.latest_checkpoint().unwrap(), Some((1, note(1, 0))));

    // A stale index (another writer appended meanwhile) or one past the end: LogMoved, and
    // nothing of the completion is stored.
    for stale in [0, 2] {
        let mut c = completion(&clip(2), stale, None);
        c.checkpoint = note(stale + 1, 3);
        let e = s.complete_item(&c).unwrap_err();
        assert!(matches!(e, Error::LogMoved), "index {stale}: {e}");
        assert_eq!(s.item(&clip(2)).unwrap(), Some(item(&d, 2, &clip(2))), "index {stale}: the item is untouched");
        assert_eq!(s.upload_for_clip(&clip(2)).unwrap(), Some(upload(&clip(2), 2)));
        assert_eq!(s.leaf_hashes().unwrap(), vec![c1.leaf_hash]);
        assert_eq!(s.latest_checkpoint().unwrap(), Some((1, note(1, 0))), "index {stale}: no checkpoint stored or changed");
    }
    let c2 = completion(&clip(2), 1, None);
    s.complete_item(&c2).unwrap();
    // An item that is not waiting for completion: refused, nothing stored.
    assert!(s.complete_item(&completion(&clip(1), 2, None)).is_err(), "completed twice");
    let received = ItemRecord { state: "received".into(), ..item(&d, 4, &clip(4)) };
    assert!(s.insert_item(&received, None).unwrap());
    let e = s.complete_item(&completion(&clip(4), 2, None)).unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e}");
    assert_eq!(s.leaf_hashes().unwrap().len(), 2);
    assert_eq!(s.latest_checkpoint().unwrap().unwrap().0, 2);
    let c3 = completion(&clip(3), 2, None);
    s.complete_item(&c3).unwrap();

    let all: Vec<Hash> = vec![c1.leaf_hash, c2.leaf_hash, c3.leaf_hash];
    assert_eq!(s.leaf_hashes().unwrap(), all);
    assert_eq!(s.leaf_hashes_since(0).unwrap(), all);
    assert_eq!(s.leaf_hashes_since(1).unwrap(), all[1..].to_vec());
    assert_eq!(s.leaf_hashes_since(3).unwrap(), Vec::<Hash>::new());
    assert_eq!(s.leaf_hashes_since(7).unwrap(), Vec::<Hash>::new());
}

fn checkpoints_only_gain_signature_lines_and_the_best_covered_is_found(s: &dyn RecordStore) {
    for size in 1..=4 {
        s.put_checkpoint(size, &note(size, 0)).unwrap();
    }
    s.put_checkpoint(2, &note(2, 5)).unwrap();
    assert_eq!(s.best_checkpoint(2).unwrap().unwrap(), (4, note(4, 0)), "put_checkpoint does not replace one of that size");
    // An extension is stored; anything else (another text, a changed or dropped line, the same
    // note again, a size not on record) is not.
    assert!(s.add_checkpoint_signatures(2, &note(2, 2)).unwrap());
    assert!(!s.add_checkpoint_signatures(2, &note(2, 2)).unwrap());
    assert!(!s.add_checkpoint_signatures(2, &note(2, 1)).unwrap());
    assert!(!s.add_checkpoint_signatures(3, &note(3, 1).replace("\n3\n", "\n7\n")).unwrap());
    assert!(!s.add_checkpoint_signatures(3, &format!("{}\u{2014} w9 CCCCCCC=\n", note(3, 0).replace("AAAAAAA=", "AAAAAAB="))).unwrap());
    assert!(!s.add_checkpoint_signatures(9, &note(9, 1)).unwrap());
    assert!(s.add_checkpoint_signatures(4, &note(4, 1)).unwrap());
    assert_eq!(s.latest_checkpoint().unwrap(), Some((4, note(4, 1))));
    // The best covering checkpoint: most signature lines, the newest among equals.
    assert_eq!(s.best_checkpoint(1).unwrap().unwrap(), (2, note(2, 2)));
    assert_eq!(s.best_checkpoint(3).unwrap().unwrap().0, 4);
    assert!(s.add_checkpoint_signatures(4, &note(4, 2)).unwrap());
    assert_eq!(s.best_checkpoint(1).unwrap().unwrap().0, 4, "the newest among equals");
    assert!(s.best_checkpoint(5).unwrap().is_none());
}

fn a_cosigned_receipt_replaces_only_the_stored_one(s: &dyn RecordStore) {
    let d = enrolled(s, 1);
    assert!(s.insert_item(&item(&d, 1, &clip(1)), None).unwrap());
    let c = completion(&clip(1), 0, None);
    s.complete_item(&c).unwrap();
    let (new_receipt, new_sig) = (vec![0x00, 0x01, 0xff], vec![0x77; 64]);
    // Not the stored receipt: nothing changes (the checkpoint neither).
    assert!(!s.cosign_receipt(&clip(1), b"another receipt", 1, &note(1, 1), &new_receipt, &new_sig).unwrap());
    assert_eq!(s.latest_checkpoint().unwrap(), Some((1, note(1, 0))));
    // Not an extension of the stored checkpoint: nothing changes (the receipt neither).
    assert!(!s.cosign_receipt(&clip(1), &c.receipt, 1, &note(1, 1).replace("AAAA1", "BBBB1"), &new_receipt, &new_sig).unwrap());
    assert!(!s.cosign_receipt(&clip(1), &c.receipt, 2, &note(2, 1), &new_receipt, &new_sig).unwrap(), "no checkpoint of that size");
    assert_eq!(s.item(&clip(1)).unwrap().unwrap().receipt, Some(c.receipt.clone()));
    assert!(s.cosign_receipt(&clip(1), &c.receipt, 1, &note(1, 1), &new_receipt, &new_sig).unwrap());
    let i = s.item(&clip(1)).unwrap().unwrap();
    assert_eq!((i.receipt, i.receipt_sig), (Some(new_receipt.clone()), Some(new_sig.clone())));
    assert_eq!(s.latest_checkpoint().unwrap(), Some((1, note(1, 1))));
    assert!(!s.cosign_receipt(&clip(1), &c.receipt, 1, &note(1, 2), b"x", b"y").unwrap(), "only over the receipt complete_item stored");
}

fn server_custody_is_one_chain_in_order(s: &dyn RecordStore) {
    let key = DeviceKey::generate();
    let mut seen = Vec::new();
    assert!(s.first_custody().unwrap().is_none());
    for n in 0..5u64 {
        let c = (n % 2 == 1).then(|| clip(n));
        let sign = custody_signer(&key, "stored", c.clone());
        let e = s.append_custody(c.as_deref(), "stored", AT, &sign).unwrap();
        assert_eq!(e.seq, n + 1);
        assert_eq!(e.prev(), seen.last().map(|p: &CustodyEvent| p.hash()));
        seen.push(e);
    }
    let all = s.custody(None).unwrap();
    assert_eq!(all, seen, "bodies and signatures as signed, in chain order");
    verify_chain(&all, &key.verifying_key()).unwrap();
    assert_eq!(s.custody(Some(&clip(3))).unwrap(), vec![seen[3].clone()]);
    assert!(s.custody(Some(&clip(2))).unwrap().is_empty());
    assert_eq!(s.first_custody().unwrap(), Some(seen[0].clone()), "the event that began the chain");
    let sign = custody_signer(&key, "received", Some(clip(3)));
    s.append_custody(Some(&clip(3)), "received", AT, &sign).unwrap();
    let pairs = s.custody_clip_events(&["received", "stored"]).unwrap();
    let want: std::collections::HashSet<(String, String)> =
        [(clip(1), "stored".to_string()), (clip(3), "stored".to_string()), (clip(3), "received".to_string())].into_iter().collect();
    assert_eq!(pairs, want, "events without an item are left out, each pair once");
    assert_eq!(s.custody_clip_events(&["received"]).unwrap().len(), 1);
}

fn device_custody_appends_only_at_the_expected_head(s: &dyn RecordStore) {
    let d = DeviceKey::generate();
    let id = d.device_id().to_string();
    s.insert_token(&"1".repeat(64), "monitor", AT, i64::MAX).unwrap();
    assert!(matches!(s.enroll(&"1".repeat(64), &id, 0, AT, &|role| Ok(device_record(&id, role))).unwrap(), EnrollOutcome::Enrolled(_)));
    assert!(s.device_custody_head(&id).unwrap().is_none());
    let first = device_log(&d, 1, 3, None);
    assert!(!s.append_device_custody(&id, Some((3, "x")), &first, AT).unwrap(), "a head that is not there");
    assert!(s.append_device_custody(&id, None, &first, AT).unwrap());
    let head = (3, first[2].hash());
    assert_eq!(s.device_custody_head(&id).unwrap(), Some(head.clone()));
    let next = device_log(&d, 4, 2, Some(first[2].hash()));
    assert!(!s.append_device_custody(&id, None, &next, AT).unwrap(), "the head moved");
    assert!(!s.append_device_custody(&id, Some((2, &first[1].hash())), &next, AT).unwrap(), "an older head");
    assert!(!s.append_device_custody(&id, Some((3, &first[1].hash())), &next, AT).unwrap(), "the right seq with another hash");
    assert_eq!(s.device_custody(&id).unwrap(), first, "nothing appended by a refused call");
    assert!(s.append_device_custody(&id, Some((3, &head.1)), &next, AT).unwrap());
    let all = s.device_custody(&id).unwrap();
    assert_eq!(all, [first.clone(), next.clone()].concat());
    verify_chain(&all, &d.verifying_key()).unwrap();
    assert_eq!(s.device_custody_event(&id, 4).unwrap(), Some(next[0].clone()));
    assert!(s.device_custody_event(&id, 9).unwrap().is_none());
    assert!(s.device_custody(&dev_id(5)).unwrap().is_empty());
}

fn retention_policy_holds_and_referrals(s: &dyn RecordStore) {
    assert!(s.retention_policy().unwrap().is_empty());
    s.set_retention_policy("default", 31, AT).unwrap();
    s.set_retention_policy("video", 90, AT).unwrap();
    s.set_retention_policy("default", 30, AT).unwrap();
    assert_eq!(s.retention_policy().unwrap().into_iter().collect::<Vec<_>>(), vec![("default".to_string(), 30), ("video".to_string(), 90)]);

    assert_eq!(s.retention_facts(&clip(1)).unwrap(), Default::default());
    s.add_hold(&clip(1), "court order 1", AT).unwrap();
    s.add_hold(&clip(1), "court order 2", AT).unwrap();
    assert_eq!(s.retention_facts(&clip(1)).unwrap().active_holds, 2);
    assert_eq!(s.release_holds(&clip(1), "case closed", AT).unwrap(), 2);
    assert_eq!(s.release_holds(&clip(1), "case closed", AT).unwrap(), 0, "released once");
    assert_eq!(s.retention_facts(&clip(1)).unwrap().active_holds, 0);
    s.add_referrals(&[clip(1), clip(2)], "pkg-1", "police", AT).unwrap();
    s.add_referrals(&[clip(1)], "pkg-1", "police", AT).unwrap();
    s.add_referrals(&[clip(1)], "pkg-2", "court", AT).unwrap();
    assert_eq!(s.retention_facts(&clip(1)).unwrap().referrals, 2, "once per item and package");
    assert_eq!(s.retention_facts(&clip(2)).unwrap().referrals, 1);
}

fn disposal_is_refused_while_held_or_referred_and_appends_its_leaf_once(s: &dyn RecordStore) {
    let d = enrolled(s, 1);
    assert!(s.insert_item(&item(&d, 1, &clip(1)), None).unwrap());
    s.complete_item(&completion(&clip(1), 0, None)).unwrap();
    let signed: std::sync::Mutex<Vec<(usize, Option<String>)>> = Default::default();
    let sign = |hashes: &[Hash], latest: Option<&str>| {
        signed.lock().unwrap().push((hashes.len(), latest.map(String::from)));
        Ok(note(hashes.len() as u64, 0))
    };
    let leaf = b"disposal of clip 1".to_vec();

    s.add_hold(&clip(1), "inquiry", AT).unwrap();
    assert_eq!(s.record_disposal(&clip(1), "dispose:1", &leaf, AT, &sign).unwrap(), DisposalOutcome::Held);
    s.release_holds(&clip(1), "closed", AT).unwrap();
    s.add_referrals(&[clip(2)], "pkg", "police", AT).unwrap();
    assert_eq!(s.record_disposal(&clip(2), "dispose:2", &leaf, AT, &sign).unwrap(), DisposalOutcome::Referred);
    assert!(signed.lock().unwrap().is_empty(), "nothing signed for a refused disposal");
    assert_eq!(s.leaf_hashes().unwrap().len(), 1);
    assert!(s.pending_disposals().unwrap().is_empty());

    assert_eq!(s.record_disposal(&clip(1), "dispose:1", &leaf, "2026-01-01T00:00:00.000Z", &sign).unwrap(), DisposalOutcome::Recorded { log_index: 1 });
    assert_eq!(*signed.lock().unwrap(), vec![(2, Some(note(1, 0)))], "signed over every leaf, new one last, with the latest note");
    assert_eq!(s.leaf_hashes().unwrap()[1], leaf_hash(&leaf));
    assert_eq!(s.latest_checkpoint().unwrap(), Some((2, note(2, 0))));
    assert_eq!(s.retention_facts(&clip(1)).unwrap().disposed_at.as_deref(), Some("2026-01-01T00:00:00.000Z"));
    assert_eq!(s.pending_disposals().unwrap(), vec![PendingDisposal { clip_id: clip(1), log_index: 1 }]);
    assert!(s.record_disposal(&clip(1), "dispose:1", &leaf, AT, &sign).is_err(), "an item is disposed once");
    assert_eq!(s.leaf_hashes().unwrap().len(), 2);

    // A leaf of that name already on record (a run interrupted after appending it): reused.
    assert!(s.insert_item(&item(&d, 2, "dispose:3"), None).unwrap());
    s.complete_item(&completion("dispose:3", 2, None)).unwrap();
    assert_eq!(s.record_disposal(&clip(3), "dispose:3", b"other bytes", AT, &sign).unwrap(), DisposalOutcome::Recorded { log_index: 2 });
    assert_eq!(s.leaf_hashes().unwrap().len(), 3, "no second leaf");
    assert_eq!(signed.lock().unwrap().len(), 1);

    s.set_disposal_custody_seq(&clip(1), 17).unwrap();
    assert_eq!(s.pending_disposals().unwrap(), vec![PendingDisposal { clip_id: clip(3), log_index: 2 }]);
}

fn a_blob_is_needed_while_another_undisposed_item_names_it(s: &dyn RecordStore) {
    let d = enrolled(s, 1);
    let blob = "f".repeat(64);
    for n in 1..=3 {
        assert!(s.insert_item(&item(&d, n, &clip(n)), None).unwrap());
    }
    s.complete_item(&completion(&clip(1), 0, Some(&blob))).unwrap();
    assert!(!s.blob_needed_by_another_item(&blob, &clip(1)).unwrap(), "only its own item");
    s.complete_item(&completion(&clip(2), 1, Some(&blob))).unwrap();
    s.complete_item(&completion(&clip(3), 2, Some(&"e".repeat(64)))).unwrap();
    assert!(s.blob_needed_by_another_item(&blob, &clip(1)).unwrap());
    assert!(s.blob_needed_by_another_item(&blob, &clip(2)).unwrap());
    let sign = |h: &[Hash], _: Option<&str>| Ok(note(h.len() as u64, 0));
    assert!(matches!(s.record_disposal(&clip(2), "dispose:2", b"d2", AT, &sign).unwrap(), DisposalOutcome::Recorded { .. }));
    assert!(!s.blob_needed_by_another_item(&blob, &clip(1)).unwrap(), "the other item is disposed");
    assert!(s.blob_needed_by_another_item(&blob, &clip(2)).unwrap(), "item 1 still names it");
}

// ---------------------------------------------------------------------------------------------
// Console: staff, sessions, records requests, settings

fn staff(n: u32, name: &str) -> StaffRecord {
    StaffRecord {
        staff_id: format!("0190a4c2-0000-7000-9000-{n:012}"),
        name: name.to_string(),
        role: "clerk".into(),
        password_hash: None,
        setup_token_sha256: Some(format!("{:064x}", 0x5e70_0000u64 + n as u64)),
        setup_expires_at_ms: Some(10_000),
        created_at: AT.into(),
        disabled_at: None,
    }
}

fn session(n: u32, staff_id: &str, expires_at_ms: i64) -> SessionRecord {
    SessionRecord {
        session_sha256: format!("{:064x}", 0x5e55_0000u64 + n as u64),
        staff_id: staff_id.to_string(),
        csrf_token: format!("csrf-{n}_-AbC"),
        created_at_ms: 1_000,
        expires_at_ms,
        last_seen_ms: 1_000,
    }
}

fn records_request(n: u32, received_at: &str, clip_ids: Vec<String>) -> RecordsRequestRecord {
    RecordsRequestRecord {
        request_id: format!("0190a4c2-0000-7000-a000-{n:012}"),
        requester: format!("Requester {n} \"quoted\" — Zoë"),
        description: "All video of the 7 June incident\nat Main & 3rd".into(),
        received_at: received_at.to_string(),
        created_by: "alice".into(),
        created_at: AT.into(),
        clip_ids,
        state: "open".into(),
        package_id: None,
        package_sha256: None,
        built_by: None,
        sensitive_reason: None,
        approved_by: None,
        approved_at: None,
    }
}

fn is_conflict(r: fieldcap_server::Result<()>) -> bool {
    matches!(r, Err(Error::Conflict(_)))
}

fn staff_names_are_unique_and_accounts_are_stored_exactly_and_listed_by_name(s: &dyn RecordStore) {
    let alice = staff(1, "alice");
    assert!(s.insert_staff(&alice).unwrap());
    // The same name under another id, the same id under another name: refused, nothing changed.
    assert!(!s.insert_staff(&StaffRecord { setup_token_sha256: None, ..staff(2, "alice") }).unwrap());
    assert!(!s.insert_staff(&StaffRecord { name: "alicia".into(), setup_token_sha256: None, ..alice.clone() }).unwrap());
    assert_eq!(s.staff_by_id(&alice.staff_id).unwrap(), Some(alice.clone()));
    assert_eq!(s.staff_by_name("alice").unwrap(), Some(alice.clone()));
    assert!(s.staff_by_name("alicia").unwrap().is_none());
    assert!(s.staff_by_id(&staff(2, "x").staff_id).unwrap().is_none());
    // Names are case-sensitive: "Alice" is another account, and "ALICE" none.
    let upper = StaffRecord {
        role: "supervisor".into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        setup_token_sha256: None,
        setup_expires_at_ms: None,
        disabled_at: Some(AT.into()),
        ..staff(3, "Alice")
    };
    assert!(s.insert_staff(&upper).unwrap());
    assert!(s.insert_staff(&staff(4, "bob")).unwrap());
    assert!(s.insert_staff(&staff(5, "Zoë")).unwrap());
    assert_eq!(s.staff_by_name("Alice").unwrap(), Some(upper.clone()));
    assert!(s.staff_by_name("ALICE").unwrap().is_none());
    // By name in byte order (not a locale's): upper case first.
    let names: Vec<String> = s.staff_list().unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["Alice", "Zoë", "alice", "bob"]);
    assert_eq!(s.staff_list().unwrap()[0], upper);
}

fn a_setup_token_works_once_and_never_expired_for_another_account_or_a_disabled_one(s: &dyn RecordStore) {
    let a = staff(1, "alice");
    let b = staff(2, "bob");
    for x in [&a, &b] {
        assert!(s.insert_staff(x).unwrap());
    }
    let ta = a.setup_token_sha256.clone().unwrap();
    let tb = b.setup_token_sha256.clone().unwrap();
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    assert_eq!(s.staff_by_setup_token(&ta).unwrap(), Some(a.clone()));
    assert!(s.staff_by_setup_token(&"0".repeat(64)).unwrap().is_none());
    // Another account's token, an unknown account, a wrong token: refused.
    assert!(!s.complete_staff_setup(&a.staff_id, &tb, hash, 0).unwrap());
    assert!(!s.complete_staff_setup(&staff(9, "x").staff_id, &ta, hash, 0).unwrap());
    assert!(!s.complete_staff_setup(&a.staff_id, &"0".repeat(64), hash, 0).unwrap());
    // Expired at its expiry (10 000) and after.
    assert!(!s.complete_staff_setup(&a.staff_id, &ta, hash, 10_000).unwrap());
    assert!(!s.complete_staff_setup(&a.staff_id, &ta, hash, 20_000).unwrap());
    assert_eq!(s.staff_by_id(&a.staff_id).unwrap(), Some(a.clone()), "nothing changed by a refused set-up");
    // Once, in time: the password set and the token (and its expiry) cleared.
    assert!(s.complete_staff_setup(&a.staff_id, &ta, hash, 9_999).unwrap());
    let done = s.staff_by_id(&a.staff_id).unwrap().unwrap();
    assert_eq!(done, StaffRecord { password_hash: Some(hash.into()), setup_token_sha256: None, setup_expires_at_ms: None, ..a.clone() });
    assert!(!s.complete_staff_setup(&a.staff_id, &ta, "$argon2id$other", 9_999).unwrap());
    assert!(s.staff_by_setup_token(&ta).unwrap().is_none());
    assert_eq!(s.staff_by_id(&a.staff_id).unwrap().unwrap().password_hash.as_deref(), Some(hash));
    // A disabled account's token does not work, until it is enabled again.
    assert!(s.set_staff_disabled(&b.staff_id, Some(AT)).unwrap());
    assert!(s.staff_by_setup_token(&tb).unwrap().is_some(), "found, so the caller can say why it is refused");
    assert!(!s.complete_staff_setup(&b.staff_id, &tb, hash, 0).unwrap());
    assert!(s.set_staff_disabled(&b.staff_id, None).unwrap());
    assert!(s.complete_staff_setup(&b.staff_id, &tb, hash, 0).unwrap());
    // A token without an expiry never works.
    let c = StaffRecord { setup_expires_at_ms: None, ..staff(3, "carol") };
    assert!(s.insert_staff(&c).unwrap());
    assert!(!s.complete_staff_setup(&c.staff_id, c.setup_token_sha256.as_deref().unwrap(), hash, 0).unwrap());
}

fn a_reset_removes_the_password_ends_sessions_and_gives_a_new_token(s: &dyn RecordStore) {
    let (a, b) = (staff(1, "alice"), staff(2, "bob"));
    for x in [&a, &b] {
        assert!(s.insert_staff(x).unwrap());
    }
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    assert!(s.complete_staff_setup(&a.staff_id, a.setup_token_sha256.as_deref().unwrap(), hash, 0).unwrap());
    let (a1, b1) = (session(1, &a.staff_id, 50_000), session(2, &b.staff_id, 50_000));
    s.insert_session(&a1).unwrap();
    s.insert_session(&b1).unwrap();
    let new_token = format!("{:064x}", 0xbeefu64);
    assert!(!s.reset_staff_setup(&staff(9, "x").staff_id, &new_token, 30_000).unwrap(), "an unknown account");
    assert!(s.reset_staff_setup(&a.staff_id, &new_token, 30_000).unwrap());
    let reset = s.staff_by_id(&a.staff_id).unwrap().unwrap();
    assert_eq!(reset, StaffRecord { password_hash: None, setup_token_sha256: Some(new_token.clone()), setup_expires_at_ms: Some(30_000), ..a.clone() });
    assert!(s.session(&a1.session_sha256).unwrap().is_none(), "the account's sessions end");
    assert_eq!(s.session(&b1.session_sha256).unwrap(), Some(b1.clone()), "another account's stay");
    // The new token works once; the old one never again.
    assert!(!s.complete_staff_setup(&a.staff_id, a.setup_token_sha256.as_deref().unwrap(), hash, 0).unwrap());
    assert!(s.complete_staff_setup(&a.staff_id, &new_token, hash, 29_999).unwrap());
    assert!(!s.complete_staff_setup(&a.staff_id, &new_token, hash, 0).unwrap());
    // A disabled account is not reset.
    assert!(s.set_staff_disabled(&b.staff_id, Some(AT)).unwrap());
    assert!(!s.reset_staff_setup(&b.staff_id, &format!("{:064x}", 0xcafeu64), 30_000).unwrap());
    assert_eq!(s.staff_by_id(&b.staff_id).unwrap().unwrap().setup_token_sha256, b.setup_token_sha256);
}

fn disabling_an_account_deletes_its_sessions_and_refuses_new_ones(s: &dyn RecordStore) {
    let (a, b) = (staff(1, "alice"), staff(2, "bob"));
    for x in [&a, &b] {
        assert!(s.insert_staff(x).unwrap());
    }
    let (a1, a2, b1) = (session(1, &a.staff_id, 50_000), session(2, &a.staff_id, 60_000), session(3, &b.staff_id, 50_000));
    for x in [&a1, &a2, &b1] {
        s.insert_session(x).unwrap();
    }
    assert!(!s.set_staff_disabled(&staff(9, "x").staff_id, Some(AT)).unwrap(), "an unknown account");
    assert!(s.set_staff_disabled(&a.staff_id, Some(AT)).unwrap());
    assert_eq!(s.staff_by_id(&a.staff_id).unwrap().unwrap().disabled_at.as_deref(), Some(AT));
    assert!(s.session(&a1.session_sha256).unwrap().is_none());
    assert!(s.session(&a2.session_sha256).unwrap().is_none());
    assert_eq!(s.session(&b1.session_sha256).unwrap(), Some(b1.clone()), "another account's session stays");
    // No new session for a disabled or unknown account.
    assert!(is_conflict(s.insert_session(&session(4, &a.staff_id, 50_000))));
    assert!(is_conflict(s.insert_session(&session(5, &staff(9, "x").staff_id, 50_000))));
    assert!(s.session(&session(4, "", 0).session_sha256).unwrap().is_none());
    // Enabled again: the account logs in anew (its old sessions stay gone).
    assert!(s.set_staff_disabled(&a.staff_id, None).unwrap());
    assert_eq!(s.staff_by_id(&a.staff_id).unwrap().unwrap().disabled_at, None);
    assert!(s.session(&a1.session_sha256).unwrap().is_none());
    s.insert_session(&session(6, &a.staff_id, 50_000)).unwrap();
    assert!(s.session(&session(6, "", 0).session_sha256).unwrap().is_some());
}

fn logins_racing_a_disabling_leave_no_session_of_the_disabled_account(s: &dyn RecordStore) {
    let a = staff(1, "alice");
    assert!(s.insert_staff(&a).unwrap());
    const LOGINS: u32 = 40;
    let start = Barrier::new(THREADS);
    let stored: Vec<String> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..THREADS as u32)
            .map(|t| {
                let (start, id) = (&start, a.staff_id.clone());
                sc.spawn(move || {
                    start.wait();
                    let mut stored = Vec::new();
                    if t == 0 {
                        assert!(s.set_staff_disabled(&id, Some(AT)).unwrap());
                        return stored;
                    }
                    for n in 0..LOGINS {
                        let x = session(t * 1000 + n, &id, 50_000);
                        match s.insert_session(&x) {
                            Ok(()) => stored.push(x.session_sha256),
                            Err(Error::Conflict(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    stored
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    println!("{} session(s) stored before the disabling", stored.len());
    // Whatever the order, every session the account got was deleted with the disabling, and no
    // session was stored after it.
    for h in &stored {
        assert!(s.session(h).unwrap().is_none(), "a session of the disabled account survived");
    }
    assert_eq!(s.delete_sessions_before(i64::MAX).unwrap(), 0);
}

fn sessions_are_stored_touched_deleted_and_expired_ones_removed(s: &dyn RecordStore) {
    let a = staff(1, "alice");
    assert!(s.insert_staff(&a).unwrap());
    let (x, y, z) = (session(1, &a.staff_id, 100), session(2, &a.staff_id, 200), session(3, &a.staff_id, 300));
    for v in [&x, &y, &z] {
        s.insert_session(v).unwrap();
    }
    assert_eq!(s.session(&x.session_sha256).unwrap(), Some(x.clone()));
    // The same session hash twice: refused, the first kept.
    assert!(is_conflict(s.insert_session(&SessionRecord { csrf_token: "other".into(), ..x.clone() })));
    assert_eq!(s.session(&x.session_sha256).unwrap(), Some(x.clone()));
    s.touch_session(&y.session_sha256, 150).unwrap();
    assert_eq!(s.session(&y.session_sha256).unwrap(), Some(SessionRecord { last_seen_ms: 150, ..y.clone() }));
    s.touch_session(&"f".repeat(64), 150).unwrap();
    assert!(s.session(&"f".repeat(64)).unwrap().is_none(), "touching no session makes none");
    // Expired: `expires_at_ms <= now`.
    assert_eq!(s.delete_sessions_before(99).unwrap(), 0);
    assert_eq!(s.delete_sessions_before(200).unwrap(), 2);
    assert!(s.session(&x.session_sha256).unwrap().is_none());
    assert!(s.session(&y.session_sha256).unwrap().is_none());
    assert_eq!(s.session(&z.session_sha256).unwrap(), Some(z.clone()));
    s.delete_session(&z.session_sha256).unwrap();
    assert!(s.session(&z.session_sha256).unwrap().is_none());
    s.delete_session(&z.session_sha256).unwrap();
    assert_eq!(s.delete_sessions_before(i64::MAX).unwrap(), 0);
}

fn records_requests_round_trip_with_their_items_newest_first(s: &dyn RecordStore) {
    assert!(s.records_requests().unwrap().is_empty());
    let none = records_request(1, "2025-06-08T09:00:00.000Z", vec![]);
    let some = records_request(2, "2025-06-09T09:00:00.000Z", vec![clip(3), clip(1), "a \"quoted\", ünïcode [id]".into()]);
    let same_time = records_request(3, "2025-06-09T09:00:00.000Z", vec![clip(1)]);
    for r in [&none, &some, &same_time] {
        assert!(s.insert_records_request(r).unwrap());
    }
    assert!(!s.insert_records_request(&records_request(1, "2026-01-01T00:00:00.000Z", vec![clip(9)])).unwrap(), "an id that exists");
    assert_eq!(s.records_request(&none.request_id).unwrap(), Some(none.clone()), "no items: an empty list back");
    assert_eq!(s.records_request(&some.request_id).unwrap(), Some(some.clone()), "items in their order");
    assert!(s.records_request(&records_request(9, AT, vec![]).request_id).unwrap().is_none());
    // Newest first: by received_at, then by id, both descending.
    assert_eq!(s.records_requests().unwrap(), vec![same_time, some, none]);
}

fn a_records_request_moves_on_only_from_the_expected_state(s: &dyn RecordStore) {
    let r = records_request(1, AT, vec![]);
    assert!(s.insert_records_request(&r).unwrap());
    // Items picked (open stays open).
    let picked = RecordsRequestRecord { clip_ids: vec![clip(1), clip(2)], ..r.clone() };
    assert!(s.update_records_request(&picked, "open").unwrap());
    assert_eq!(s.records_request(&r.request_id).unwrap(), Some(picked.clone()));
    // Built: every field but the id replaced.
    let built = RecordsRequestRecord {
        requester: "Another requester".into(),
        description: "narrowed".into(),
        received_at: "2025-06-10T00:00:00.000Z".into(),
        created_by: "bob".into(),
        created_at: "2025-06-10T00:00:01.000Z".into(),
        clip_ids: vec![],
        state: "built".into(),
        package_id: Some("0190a4c2-0000-7000-b000-000000000001".into()),
        package_sha256: Some("c".repeat(64)),
        built_by: Some("bob".into()),
        sensitive_reason: Some("names a minor; released with faces blurred".into()),
        approved_by: Some("carol".into()),
        approved_at: Some(AT.into()),
        ..picked.clone()
    };
    assert!(!s.update_records_request(&built, "built").unwrap(), "not in the expected state");
    assert_eq!(s.records_request(&r.request_id).unwrap(), Some(picked.clone()), "nothing changed");
    assert!(s.update_records_request(&built, "open").unwrap());
    assert_eq!(s.records_request(&r.request_id).unwrap(), Some(built.clone()));
    assert!(!s.update_records_request(&RecordsRequestRecord { state: "approved".into(), ..built.clone() }, "open").unwrap());
    assert_eq!(s.records_request(&r.request_id).unwrap(), Some(built.clone()));
    // No such request.
    assert!(!s.update_records_request(&records_request(9, AT, vec![]), "open").unwrap());
    assert!(s.records_request(&records_request(9, AT, vec![]).request_id).unwrap().is_none());
}

fn concurrent_updates_from_one_state_of_a_records_request_succeed_once(s: &dyn RecordStore) {
    for round in 0..5u32 {
        let r = records_request(round, AT, vec![clip(1)]);
        assert!(s.insert_records_request(&r).unwrap());
        let start = Barrier::new(THREADS);
        let won: Vec<(usize, bool)> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (start, r) = (&start, r.clone());
                    sc.spawn(move || {
                        let mine = RecordsRequestRecord { state: "built".into(), built_by: Some(format!("staff-{t}")), ..r };
                        start.wait();
                        (t, s.update_records_request(&mine, "open").unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = won.iter().filter(|(_, w)| *w).map(|(t, _)| *t).collect();
        assert_eq!(winners.len(), 1, "round {round}: {won:?}");
        let stored = s.records_request(&r.request_id).unwrap().unwrap();
        assert_eq!(stored.built_by, Some(format!("staff-{}", winners[0])), "the winner's update is the one stored");
    }
}

fn settings_are_upserted(s: &dyn RecordStore) {
    assert!(s.setting("console_url").unwrap().is_none());
    s.set_setting("console_url", "http://127.0.0.1:8081").unwrap();
    s.set_setting("other", "x").unwrap();
    assert_eq!(s.setting("console_url").unwrap().as_deref(), Some("http://127.0.0.1:8081"));
    s.set_setting("console_url", "https://console.example.org").unwrap();
    assert_eq!(s.setting("console_url").unwrap().as_deref(), Some("https://console.example.org"));
    assert_eq!(s.setting("other").unwrap().as_deref(), Some("x"));
    // Settings are not the server's meta (which holds a scaled deployment's key).
    assert!(s.setting("server_key_secret").unwrap().is_none());
}

fn fragment_row(device: &str, clip_id: &str, idx: u64, bytes: u64) -> FragmentRow {
    FragmentRow {
        clip_id: clip_id.to_string(),
        idx,
        device_id: device.to_string(),
        // Record and ack bytes hold NUL and non-UTF-8 bytes: stored exactly.
        record: [b"{\"fragment\":".as_slice(), &idx.to_be_bytes(), &[0x00, 0xc3, 0x28, 0xff]].concat(),
        sig: vec![idx as u8; 64],
        record_sha256: format!("{idx:064x}"),
        offset: idx * 1000,
        bytes,
        total_bytes: idx * 1000 + bytes,
        captured_at: format!("2025-06-07T18:04:{:02}.000Z", idx * 2),
        mfhd_last: if idx == 0 { None } else { Some(u32::MAX - idx as u32) },
        ack: vec![0x00, 0xfe, idx as u8],
        ack_sig: vec![0x5a; 64],
        received_at: format!("2025-06-07T18:05:{:02}.000Z", idx * 2),
    }
}

fn fragments_are_stored_exactly_once_per_index_and_listed_per_recording(s: &dyn RecordStore) {
    let d = enrolled(s, 41);
    let (a, b) = (clip(4101), clip(4102));
    assert!(s.fragments(&a).unwrap().is_empty());
    assert!(s.last_fragment(&a).unwrap().is_none());
    assert!(s.fragment_heads().unwrap().is_empty());
    // Inserted out of index order on purpose: read back in index order.
    for idx in [0u64, 2, 1] {
        assert!(s.insert_fragment(&fragment_row(&d, &a, idx, 1000)).unwrap());
    }
    assert!(s.insert_fragment(&fragment_row(&d, &b, 0, 700)).unwrap());
    // The same index again, even with other bytes, stores nothing.
    let mut other = fragment_row(&d, &a, 1, 999);
    other.record = b"other".to_vec();
    assert!(!s.insert_fragment(&other).unwrap());
    let got = s.fragments(&a).unwrap();
    assert_eq!(got, vec![fragment_row(&d, &a, 0, 1000), fragment_row(&d, &a, 1, 1000), fragment_row(&d, &a, 2, 1000)]);
    assert_eq!(s.fragment(&a, 1).unwrap(), Some(fragment_row(&d, &a, 1, 1000)));
    assert!(s.fragment(&a, 3).unwrap().is_none());
    assert_eq!(s.last_fragment(&a).unwrap(), Some(fragment_row(&d, &a, 2, 1000)));
    let heads = s.fragment_heads().unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!((heads[0].clip_id.as_str(), heads[0].device_id.as_str(), heads[0].count, heads[0].total_bytes), (a.as_str(), d.as_str(), 3, 3000));
    assert_eq!(heads[0].last_captured_at, "2025-06-07T18:04:04.000Z");
    assert_eq!(heads[0].last_received_at, "2025-06-07T18:05:04.000Z");
    assert_eq!((heads[1].clip_id.as_str(), heads[1].count, heads[1].total_bytes), (b.as_str(), 1, 700));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only: replicas, faults, secrets

/// Two stores on one fresh database: two server replicas.
fn replicas() -> Option<(TestPostgres, Arc<PostgresRecordStore>, Arc<PostgresRecordStore>)> {
    let pg = TestPostgres::new()?;
    let a = Arc::new(PostgresRecordStore::connect(pg.url()).unwrap());
    let b = Arc::new(PostgresRecordStore::connect(pg.url()).unwrap());
    Some((pg, a, b))
}

const THREADS: usize = 8;

/// Runs `f(thread, store)` on [`THREADS`] threads, half on each replica, started together.
fn on_replicas<T: Send + 'static>(a: &Arc<PostgresRecordStore>, b: &Arc<PostgresRecordStore>, f: impl Fn(usize, &dyn RecordStore) -> T + Send + Sync + 'static) -> Vec<T> {
    let f = Arc::new(f);
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = if t % 2 == 0 { a.clone() } else { b.clone() };
            let (f, start) = (f.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                f(t, s.as_ref())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn replicas_appending_at_once_keep_one_log_without_gaps_or_forks() {
    let Some((pg, a, b)) = replicas() else { return };
    const PER_THREAD: u64 = 12;
    let devices: Vec<String> = (0..THREADS as u32).map(|t| enrolled(a.as_ref(), t + 1)).collect();
    let devices = Arc::new(devices);
    let moved: u32 = on_replicas(&a, &b, move |t, s| {
        let mut moved = 0;
        for n in 1..=PER_THREAD {
            let c = clip(t as u64 * 1000 + n);
            assert!(s.insert_item(&item(&devices[t], n, &c), None).unwrap());
            let (_, m) = complete_at_end(s, &c);
            moved += m;
        }
        moved
    })
    .into_iter()
    .sum();
    let total = THREADS as u64 * PER_THREAD;
    println!("{total} leaves appended by {THREADS} threads on 2 replicas; the log had moved {moved} times");
    // One log: every index once, every item's leaf once at its own index, a checkpoint for
    // every size.
    let hashes = a.leaf_hashes().unwrap();
    assert_eq!(hashes.len() as u64, total);
    assert_eq!(b.leaf_hashes().unwrap(), hashes);
    let mut indexes: Vec<u64> = a.items().unwrap().iter().map(|i| i.log_index.unwrap()).collect();
    indexes.sort();
    assert_eq!(indexes, (0..total).collect::<Vec<_>>());
    for i in a.items().unwrap() {
        assert_eq!(hashes[i.log_index.unwrap() as usize], completion(&i.clip_id, 0, None).leaf_hash, "{}", i.clip_id);
    }
    let mut c = pg.client();
    let sizes: Vec<i64> = c.query("SELECT tree_size FROM checkpoints ORDER BY tree_size", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(sizes, (1..=total as i64).collect::<Vec<_>>());
}

#[test]
fn replicas_appending_custody_at_once_keep_one_unbroken_chain() {
    let Some((_pg, a, b)) = replicas() else { return };
    let key = Arc::new(DeviceKey::generate());
    let k = key.clone();
    on_replicas(&a, &b, move |t, s| {
        for n in 0..10u64 {
            let c = Some(clip(t as u64 * 100 + n));
            let sign = custody_signer(&k, "stored", c.clone());
            s.append_custody(c.as_deref(), "stored", AT, &sign).unwrap();
        }
    });
    let all = b.custody(None).unwrap();
    assert_eq!(all.len(), THREADS * 10);
    verify_chain(&all, &key.verifying_key()).unwrap();
}

#[test]
fn one_nonce_used_at_once_on_both_replicas_succeeds_once() {
    let Some((_pg, a, b)) = replicas() else { return };
    for round in 0..5 {
        let nonce = format!("nonce-{round}");
        let ok = on_replicas(&a, &b, move |_, s| s.use_nonce(&dev_id(1), &nonce, 10_000, 0).unwrap());
        assert_eq!(ok.iter().filter(|v| **v).count(), 1, "round {round}: {ok:?}");
    }
}

#[test]
fn concurrent_enrolments_consume_a_token_once_and_enrol_a_device_once() {
    let Some((_pg, a, b)) = replicas() else { return };
    // One token, many devices: one of them gets it.
    a.insert_token(&"1".repeat(64), "monitor", AT, i64::MAX).unwrap();
    let out = on_replicas(&a, &b, |t, s| {
        let id = dev_id(100 + t as u32);
        s.enroll(&"1".repeat(64), &id, 0, AT, &|role| Ok(device_record(&id, role))).unwrap()
    });
    assert_eq!(out.iter().filter(|o| matches!(o, EnrollOutcome::Enrolled(_))).count(), 1, "{out:?}");
    assert_eq!(out.iter().filter(|o| **o == EnrollOutcome::InvalidToken).count(), THREADS - 1);
    // One device, a token each: enrolled once, the others get its record.
    for t in 0..THREADS {
        a.insert_token(&format!("{:064x}", 0x100 + t), "monitor", AT, i64::MAX).unwrap();
    }
    let out = on_replicas(&a, &b, |t, s| {
        let id = dev_id(7);
        s.enroll(&format!("{:064x}", 0x100 + t), &id, 0, AT, &|role| Ok(device_record(&id, role))).unwrap()
    });
    assert_eq!(out.iter().filter(|o| matches!(o, EnrollOutcome::Enrolled(_))).count(), 1, "{out:?}");
    assert_eq!(out.iter().filter(|o| matches!(o, EnrollOutcome::Existing(_))).count(), THREADS - 1, "{out:?}");
}

#[test]
fn concurrent_device_custody_uploads_append_once_at_a_head() {
    let Some((_pg, a, b)) = replicas() else { return };
    let d = DeviceKey::generate();
    let id = d.device_id().to_string();
    a.insert_token(&"1".repeat(64), "monitor", AT, i64::MAX).unwrap();
    assert!(matches!(a.enroll(&"1".repeat(64), &id, 0, AT, &|role| Ok(device_record(&id, role))).unwrap(), EnrollOutcome::Enrolled(_)));
    let events = Arc::new(device_log(&d, 1, 4, None));
    let (i2, e2) = (id.clone(), events.clone());
    let ok = on_replicas(&a, &b, move |_, s| s.append_device_custody(&i2, None, &e2, AT).unwrap());
    assert_eq!(ok.iter().filter(|v| **v).count(), 1, "{ok:?}");
    assert_eq!(a.device_custody(&id).unwrap(), *events);
}

#[test]
fn a_setup_token_used_at_once_on_both_replicas_works_once() {
    let Some((_pg, a, b)) = replicas() else { return };
    for round in 0..5u32 {
        let x = staff(round, &format!("staff-{round}"));
        assert!(a.insert_staff(&x).unwrap());
        let (id, token) = (x.staff_id.clone(), x.setup_token_sha256.clone().unwrap());
        let ok = on_replicas(&a, &b, move |t, s| s.complete_staff_setup(&id, &token, &format!("$argon2id$hash-{t}"), 0).unwrap());
        assert_eq!(ok.iter().filter(|v| **v).count(), 1, "round {round}: {ok:?}");
        let winner = ok.iter().position(|v| *v).unwrap();
        assert_eq!(b.staff_by_id(&x.staff_id).unwrap().unwrap().password_hash, Some(format!("$argon2id$hash-{winner}")));
    }
}

#[test]
fn records_request_updates_at_once_on_both_replicas_succeed_once() {
    let Some((_pg, a, b)) = replicas() else { return };
    for round in 0..5u32 {
        let r = records_request(round, AT, vec![]);
        assert!(a.insert_records_request(&r).unwrap());
        let r2 = r.clone();
        let ok = on_replicas(&a, &b, move |t, s| {
            let mine = RecordsRequestRecord { state: "built".into(), built_by: Some(format!("staff-{t}")), ..r2.clone() };
            s.update_records_request(&mine, "open").unwrap()
        });
        assert_eq!(ok.iter().filter(|v| **v).count(), 1, "round {round}: {ok:?}");
        let winner = ok.iter().position(|v| *v).unwrap();
        assert_eq!(b.records_request(&r.request_id).unwrap().unwrap().built_by, Some(format!("staff-{winner}")));
    }
}

#[test]
fn logins_on_one_replica_racing_a_disabling_on_the_other_leave_no_session() {
    let Some((_pg, a, b)) = replicas() else { return };
    for round in 0..5u32 {
        let x = staff(round, &format!("staff-{round}"));
        assert!(a.insert_staff(&x).unwrap());
        let id = x.staff_id.clone();
        let stored: Vec<Vec<String>> = on_replicas(&a, &b, move |t, s| {
            if t == 1 {
                assert!(s.set_staff_disabled(&id, Some(AT)).unwrap());
                return Vec::new();
            }
            let mut stored = Vec::new();
            for n in 0..20u32 {
                let v = session(round * 100_000 + t as u32 * 1000 + n, &id, 50_000);
                match s.insert_session(&v) {
                    Ok(()) => stored.push(v.session_sha256),
                    Err(Error::Conflict(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            stored
        });
        for h in stored.iter().flatten() {
            assert!(a.session(h).unwrap().is_none(), "round {round}: a session of the disabled account survived");
        }
    }
}

#[test]
fn a_postgres_restart_is_survived_and_an_outage_is_storage_unavailable() {
    // Stops the cluster: alone (every other test database waits).
    let Some(pg) = TestPostgres::exclusive() else { return };
    let s = PostgresRecordStore::connect(pg.url()).unwrap();
    let d = enrolled(&s, 1);
    assert!(s.insert_item(&item(&d, 1, &clip(1)), None).unwrap());

    // A restart cuts every pooled connection: the next call gets a fresh one.
    pg.restart_postgres();
    assert_eq!(s.item(&clip(1)).unwrap().map(|i| i.seq), Some(1));
    assert!(s.insert_item(&item(&d, 2, &clip(2)), None).unwrap());

    // While it is down: StorageUnavailable (a 503 with Retry-After), with nothing stored.
    let stopped = pg.stop_postgres();
    match s.complete_item(&completion(&clip(1), 0, None)) {
        Err(Error::StorageUnavailable(m)) => assert_eq!(m, "the record database does not answer"),
        other => panic!("complete_item with PostgreSQL down: {other:?}"),
    }
    let e = s.use_nonce(&d, "n", 1, 0).unwrap_err();
    assert!(matches!(e, Error::StorageUnavailable(_)), "{e:?}");
    assert_eq!(e.problem().status, 503);
    stopped.start();

    // Back: calls succeed again, without a new store.
    assert!(s.use_nonce(&d, "n", 1, 0).unwrap());
    assert_eq!(s.item(&clip(1)).unwrap().unwrap().state, "committed", "nothing was stored while it was down");
    s.complete_item(&completion(&clip(1), 0, None)).unwrap();
    assert_eq!(s.leaf_hashes().unwrap().len(), 1);
}

#[test]
fn the_password_never_appears_in_errors_or_debug_output() {
    let Some(pg) = TestPostgres::new() else { return };
    let secret = "Sekr1t-pw-never-shown";
    let cfg: ::postgres::Config = pg.url().parse().unwrap();
    let user = cfg.get_user().unwrap();
    let port = cfg.get_ports()[0];
    let db = pg.name();
    let urls = [
        // Wrong password: refused by PostgreSQL (a storage error naming authentication).
        format!("postgres://{user}:{secret}@127.0.0.1:{port}/{db}"),
        // Nothing listening there: does not answer.
        format!("postgres://{user}:{secret}@127.0.0.1:1/{db}"),
        // Not a URL the client reads.
        format!("postgres://{user}:{secret}@127.0.0.1:port/{db}"),
    ];
    let mut unavailable = 0;
    for url in &urls {
        let e = PostgresRecordStore::connect(url).unwrap_err();
        for shown in [e.to_string(), format!("{e:?}"), format!("{:?}", std::error::Error::source(&e))] {
            assert!(!shown.contains(secret), "{shown}");
        }
        unavailable += matches!(e, Error::StorageUnavailable(_)) as u32;
    }
    assert_eq!(unavailable, 1, "only the address where nothing listens does not answer");
    let s = PostgresRecordStore::connect(pg.url()).unwrap();
    let password = String::from_utf8(cfg.get_password().unwrap().to_vec()).unwrap();
    assert!(!format!("{s:?}").contains(&password));
}

#[test]
fn a_store_dropped_inside_an_async_runtime_closes_without_panicking() {
    let Some(pg) = TestPostgres::new() else { return };
    let s = PostgresRecordStore::connect(pg.url()).unwrap();
    s.put_checkpoint(1, &note(1, 0)).unwrap();
    // As a server's state is dropped by its runtime at shutdown.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async move { drop(s) });
}

#[test]
fn a_full_postgres_disk_is_insufficient_storage() {
    let Some(pg) = TestPostgres::new() else { return };
    let s = PostgresRecordStore::connect(pg.url()).unwrap();
    // PostgreSQL's own disk_full error (SQLSTATE 53100), raised where a write would get it.
    pg.client()
        .batch_execute(
            "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'could not extend file' USING ERRCODE = 'disk_full'; END $$; \
             CREATE TRIGGER full_disk BEFORE INSERT ON nonces FOR EACH ROW EXECUTE FUNCTION full_disk();",
        )
        .unwrap();
    let e = s.use_nonce(&dev_id(1), "n", 1, 0).unwrap_err();
    assert!(matches!(e, Error::Storage(_)), "{e:?}");
    assert!(e.to_string().contains("53100"), "the text names the SQLSTATE: {e}");
    assert_eq!(e.problem().status, 507, "{e}");
    // Any other refusal stays a 500.
    pg.client().batch_execute("DROP TRIGGER full_disk ON nonces; CREATE TABLE devices_copy AS SELECT 1").unwrap();
    let e = s.insert_token("t", "monitor", AT, 0).and_then(|_| s.insert_token("t", "monitor", AT, 0)).unwrap_err();
    assert_eq!(e.problem().status, 500, "{e}");
}

#[test]
fn a_connection_cut_during_a_call_is_storage_unavailable_and_replaced() {
    let Some(pg) = TestPostgres::new() else { return };
    let s = Arc::new(PostgresRecordStore::connect(pg.url()).unwrap());
    let d = enrolled(s.as_ref(), 1);
    assert!(s.insert_item(&item(&d, 1, &clip(1)), None).unwrap());
    // Another writer holds the log's lock: the completion waits inside PostgreSQL…
    let mut holder = pg.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&fieldcap_server::store::postgres::LOG_LOCK]).unwrap();
    let s2 = s.clone();
    let waiting = std::thread::spawn(move || s2.complete_item(&completion(&clip(1), 0, None)));
    // … until its session is terminated (as by an administrator or a failover: SQLSTATE 57P01).
    let mut admin = pg.client();
    let mut terminated = false;
    for _ in 0..3000 {
        let n = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'fieldcap-server' AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .len();
        if n > 0 {
            terminated = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(terminated, "the completion never waited for the log's lock");
    match waiting.join().unwrap() {
        Err(Error::StorageUnavailable(m)) => assert_eq!(m, "the record database does not answer"),
        other => panic!("a call whose session was terminated: {other:?}"),
    }
    tx.rollback().unwrap();
    // The broken connection is not handed out again.
    for _ in 0..20 {
        assert_eq!(s.item(&clip(1)).unwrap().unwrap().state, "committed");
    }
    s.complete_item(&completion(&clip(1), 0, None)).unwrap();
}

#[test]
fn a_log_lock_held_too_long_elsewhere_is_storage_unavailable() {
    let Some(pg) = TestPostgres::new() else { return };
    // The store's lock_timeout (30 s) shortened through the URL's own options.
    let s = PostgresRecordStore::connect(&format!("{}?options=-c%20lock_timeout%3D200ms", pg.url())).unwrap();
    let d = enrolled(&s, 1);
    assert!(s.insert_item(&item(&d, 1, &clip(1)), None).unwrap());
    // Another session (a replica frozen inside its transaction) holds the log's lock.
    let mut holder = pg.client();
    let mut tx = holder.transaction().unwrap();
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&fieldcap_server::store::postgres::LOG_LOCK]).unwrap();
    match s.complete_item(&completion(&clip(1), 0, None)) {
        Err(Error::StorageUnavailable(m)) => assert_eq!(m, "the record database does not answer"),
        other => panic!("complete_item behind a held log lock: {other:?}"),
    }
    tx.rollback().unwrap();
    s.complete_item(&completion(&clip(1), 0, None)).unwrap();
}

#[test]
fn a_nul_character_in_a_text_is_refused_as_bad_input_and_nothing_is_stored() {
    // PostgreSQL's TEXT cannot hold NUL (SQLite's can): a device's string carrying one (its
    // organisation, a custody event name) is a 400, not a 500.
    let Some(pg) = TestPostgres::new() else { return };
    let s = PostgresRecordStore::connect(pg.url()).unwrap();
    let id = dev_id(1);
    s.insert_token(&"1".repeat(64), "monitor", AT, i64::MAX).unwrap();
    let e = s.enroll(&"1".repeat(64), &id, 0, AT, &|role| Ok(DeviceRecord { org: Some("Parks\0".into()), ..device_record(&id, role) })).unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
    assert_eq!(e.problem().status, 400);
    assert!(s.device(&id).unwrap().is_none());
    assert!(matches!(s.enroll(&"1".repeat(64), &id, 0, AT, &|role| Ok(device_record(&id, role))).unwrap(), EnrollOutcome::Enrolled(_)), "the token was not consumed");
}

#[test]
fn replicas_started_at_once_without_a_key_file_share_the_first_key_kept_in_the_records() {
    let Some((_pg, a, b)) = replicas() else { return };
    let sqlite_dir = tempfile::tempdir().unwrap();
    let sqlite = fieldcap_server::store::SqliteRecordStore::open(&sqlite_dir.path().join("records.sqlite")).unwrap();
    assert!(sqlite.server_key_secret(None).is_err(), "the embedded store keeps its key in a file, not in the records");
    assert!(a.server_key_secret(None).unwrap().is_none(), "no key before the first start");
    let keys: Vec<Vec<u8>> = on_replicas(&a, &b, |t, s| {
        let mine = vec![t as u8 + 1; 32];
        s.server_key_secret(Some(&|| mine.clone())).unwrap().unwrap().to_vec()
    });
    assert!(keys.iter().all(|k| *k == keys[0]), "every replica got the same key");
    assert!(keys[0].len() == 32 && keys[0][0] >= 1 && keys[0][0] as usize <= THREADS, "one replica's key won");
    assert_eq!(b.server_key_secret(Some(&|| vec![0xEE; 32])).unwrap().unwrap().to_vec(), keys[0], "a later start never replaces it");
}

/// Tries `s.try_lock_upload(clip)` for up to 5 s (a release is a message to the lock thread).
fn lock_within(s: &dyn RecordStore, clip: &str) -> fieldcap_server::store::SharedUploadLock {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(g) = s.try_lock_upload(clip).unwrap() {
            return g;
        }
        assert!(std::time::Instant::now() < until, "the upload lock was never released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_upload_locked_on_one_replica_is_not_lockable_on_the_other_until_released_or_its_session_ends() {
    let Some((pg, a, b)) = replicas() else { return };
    let (c1, c2) = (clip(801), clip(802));
    let held = a.try_lock_upload(&c1).unwrap().expect("a free upload locks");
    assert!(b.try_lock_upload(&c1).unwrap().is_none(), "the other replica must wait for it");
    // Another clip is not held up by it.
    let other = b.try_lock_upload(&c2).unwrap().expect("another clip locks");
    drop(other);
    drop(held);
    let _on_b = lock_within(b.as_ref(), &c1);
    assert!(a.try_lock_upload(&c1).unwrap().is_none());
    // A replica that dies (SIGKILL) ends its session, and PostgreSQL releases what it held:
    // here its lock session is ended from outside, as PostgreSQL does when the peer is gone.
    let mut admin = ::postgres::Client::connect(pg.url(), ::postgres::NoTls).unwrap();
    let ended = admin
        .query_one(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND s.pid <> pg_backend_pid()",
            &[&(fieldcap_server::store::postgres::UPLOAD_LOCK as i64)],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(ended, 1, "one session holds upload locks");
    let _on_a = lock_within(a.as_ref(), &c1);
    // Many uploads locked at once take one connection, not one each: more than a pool holds.
    let many: Vec<_> = (0..40).map(|i| b.try_lock_upload(&clip(900 + i)).unwrap().expect("free")).collect();
    assert_eq!(many.len(), 40);
}

#[test]
fn the_embedded_store_lock_holds_nothing_beyond_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let s = fieldcap_server::store::SqliteRecordStore::open(&dir.path().join("records.sqlite")).unwrap();
    let g1 = s.try_lock_upload(&clip(1)).unwrap();
    let g2 = s.try_lock_upload(&clip(1)).unwrap();
    assert!(g1.is_some() && g2.is_some(), "the process's own lock serialises one store's writers");
}
