//! The console's records (staff accounts, records requests, settings) survive every copy of the
//! records: a backup and its restore, `move-stores` into PostgreSQL (`import_sqlite`, also what a
//! restore into a scaled deployment runs) and a PostgreSQL backup's export (`export_sqlite`).
//! Login sessions are deliberately left out of every copy. A backup made before the console's
//! tables existed still restores, and an embedded records file of that older schema still moves.
//! The PostgreSQL half needs the test database (see `fieldcap_testkit::postgres`; skipped without
//! it unless `FIELDCAP_REQUIRE_POSTGRES` is set).

#![allow(clippy::unwrap_used)]

use fieldcap_server::store::backup::{self, BackupManifest, TableRows};
use fieldcap_server::store::{Deployment, PostgresRecordStore, RecordStore, RecordsRequestRecord, SessionRecord, SqliteRecordStore, StaffRecord};
use fieldcap_testkit::postgres::TestPostgres;
use sha2::{Digest, Sha256};
use std::path::Path;

const AT: &str = "2025-06-07T18:04:05.000Z";

fn staff(n: u32, name: &str, disabled: bool) -> StaffRecord {
    StaffRecord {
        staff_id: format!("0190a4c2-0000-7000-9000-{n:012}"),
        name: name.into(),
        role: if disabled { "auditor" } else { "supervisor" }.into(),
        password_hash: (!disabled).then(|| "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        setup_token_sha256: disabled.then(|| "5".repeat(64)),
        setup_expires_at_ms: disabled.then_some(1_700_000_000_000),
        created_at: AT.into(),
        disabled_at: disabled.then(|| AT.into()),
    }
}

fn request(n: u32, clip_ids: Vec<String>, state: &str) -> RecordsRequestRecord {
    RecordsRequestRecord {
        request_id: format!("0190a4c2-0000-7000-a000-{n:012}"),
        requester: "A. Reporter, Daily \"Ledger\"".into(),
        description: "Video of Main & 3rd on 7 June".into(),
        received_at: format!("2025-06-0{n}T09:00:00.000Z"),
        created_by: "alice".into(),
        created_at: AT.into(),
        clip_ids,
        state: state.into(),
        package_id: (state != "open").then(|| "0190a4c2-0000-7000-b000-000000000001".into()),
        package_sha256: (state != "open").then(|| "c".repeat(64)),
        built_by: (state != "open").then(|| "alice".into()),
        sensitive_reason: None,
        approved_by: None,
        approved_at: None,
    }
}

fn the_session(staff_id: &str) -> SessionRecord {
    SessionRecord {
        session_sha256: "e".repeat(64),
        staff_id: staff_id.into(),
        csrf_token: "csrf".into(),
        created_at_ms: 1,
        expires_at_ms: i64::MAX,
        last_seen_ms: 1,
    }
}

/// An embedded data directory (server key and records) holding console records and a session.
fn embedded_with_console_records(dir: &Path) {
    fieldcap_server::keys::load_or_create(dir).unwrap();
    let s = fieldcap_server::store::open_embedded_records(dir).unwrap();
    let alice = staff(1, "alice", false);
    assert!(s.insert_staff(&alice).unwrap());
    assert!(s.insert_staff(&staff(2, "bob", true)).unwrap());
    assert!(s.insert_records_request(&request(1, vec![], "open")).unwrap());
    assert!(s.insert_records_request(&request(2, vec!["0190a4c2-0000-7000-8000-000000000001".into(), "0190a4c2-0000-7000-8000-000000000002".into()], "built")).unwrap());
    s.set_setting("console_url", "http://127.0.0.1:8081").unwrap();
    s.insert_session(&the_session(&alice.staff_id)).unwrap();
}

/// The console records of `s` (everything but sessions).
fn console_records(s: &dyn RecordStore) -> (Vec<StaffRecord>, Vec<RecordsRequestRecord>, Option<String>) {
    (s.staff_list().unwrap(), s.records_requests().unwrap(), s.setting("console_url").unwrap())
}

fn rows_of(m: &BackupManifest, table: &str) -> Option<u64> {
    m.tables.iter().find(|t| t.table == table).map(|t| t.rows)
}

#[test]
fn console_records_survive_an_embedded_backup_and_restore_without_sessions() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    embedded_with_console_records(&data);
    let source = fieldcap_server::store::open_embedded_records(&data).unwrap();
    let want = console_records(&source);
    assert_eq!((want.0.len(), want.1.len()), (2, 2));

    let made = backup::backup(&Deployment::from(data.as_path()), &t.path().join("backup"), &mut |_| {}).unwrap();
    let m = &made.manifest;
    assert_eq!((rows_of(m, "staff"), rows_of(m, "records_requests"), rows_of(m, "settings")), (Some(2), Some(2), Some(1)), "{m:?}");
    assert_eq!(rows_of(m, "sessions"), None, "sessions are not counted: not backed up");
    // (Read without changing it: the backup's sums cover its bytes.)
    let uri = format!("file:{}?immutable=1", made.path.join("records.sqlite").display());
    let copy = rusqlite::Connection::open_with_flags(uri, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI).unwrap();
    let sessions: i64 = copy.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(sessions, 0, "the backup holds no session");
    drop(copy);
    // The live records keep theirs.
    assert!(source.session(&"e".repeat(64)).unwrap().is_some());

    let restored = t.path().join("restored");
    backup::restore(&made.path, &Deployment::from(restored.as_path()), &mut |_| {}).unwrap();
    let r = fieldcap_server::store::open_embedded_records(&restored).unwrap();
    assert_eq!(console_records(&r), want);
    assert!(r.session(&"e".repeat(64)).unwrap().is_none(), "everyone logs in again after a restore");
}

/// SHA-256 hex of a file.
fn sha256_hex(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

#[test]
fn a_backup_made_before_the_console_tables_existed_restores_and_gains_them() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    fieldcap_server::keys::load_or_create(&data).unwrap();
    drop(fieldcap_server::store::open_embedded_records(&data).unwrap());
    let made = backup::backup(&Deployment::from(data.as_path()), &t.path().join("backup"), &mut |_| {}).unwrap();
    // Made into a backup of the previous schema (v3): its records file, its table list, its sums.
    let old = made.path;
    let records = old.join("records.sqlite");
    std::fs::remove_file(&records).unwrap();
    let c = rusqlite::Connection::open(&records).unwrap();
    c.execute_batch(include_str!("fixtures/schema_v3.sql")).unwrap();
    drop(c);
    let v3_tables = [
        "tokens", "devices", "nonces", "items", "uploads", "log_leaves", "checkpoints", "custody", "retention_policy", "holds", "referrals", "disposals", "device_custody",
    ];
    let m = BackupManifest { tables: v3_tables.iter().map(|t| TableRows { table: t.to_string(), rows: 0 }).collect(), ..made.manifest };
    std::fs::write(old.join(backup::MANIFEST_FILE), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let mut sums = String::new();
    for rel in ["BACKUP.json", "records.sqlite", "server.key", "server.pub.pem"] {
        sums.push_str(&format!("{}  {rel}\n", sha256_hex(&old.join(rel))));
    }
    std::fs::write(old.join(backup::SUMS_FILE), sums).unwrap();

    assert_eq!(backup::verify_backup(&old).unwrap().tables, m.tables);
    let restored = t.path().join("restored");
    backup::restore(&old, &Deployment::from(restored.as_path()), &mut |_| {}).unwrap();
    let r = fieldcap_server::store::open_embedded_records(&restored).unwrap();
    assert!(r.staff_list().unwrap().is_empty());
    assert!(r.insert_staff(&staff(1, "alice", false)).unwrap(), "the restored records have the console's tables");
}

#[test]
fn console_records_move_into_postgres_and_export_back_without_sessions() {
    let Some(pg) = TestPostgres::new() else { return };
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    embedded_with_console_records(&data);
    let want = console_records(&fieldcap_server::store::open_embedded_records(&data).unwrap());

    // move-stores (and a restore into a scaled deployment): table by table into PostgreSQL.
    let p = PostgresRecordStore::connect(pg.url()).unwrap();
    let moved = p.import_sqlite(&data.join("records.sqlite"), &mut |_| {}).unwrap();
    let rows = |table: &str| moved.iter().find(|t| t.table == table).map(|t| t.rows);
    assert_eq!((rows("staff"), rows("records_requests"), rows("settings"), rows("sessions")), (Some(2), Some(2), Some(1), None));
    assert_eq!(console_records(&p), want);
    assert!(p.session(&"e".repeat(64)).unwrap().is_none(), "sessions are not moved");
    // Run again (an interrupted move resumed): checked, not copied twice.
    let again = p.import_sqlite(&data.join("records.sqlite"), &mut |_| {}).unwrap();
    assert!(again.iter().all(|t| !t.copied_now || t.rows == 0), "{again:?}");
    assert_eq!(console_records(&p), want);

    // A PostgreSQL backup's records: exported into the embedded schema.
    p.insert_session(&the_session(&want.0[0].staff_id)).unwrap();
    let out = t.path().join("export.sqlite");
    p.export_sqlite(&out, &mut |_| {}).unwrap();
    let e = SqliteRecordStore::open(&out).unwrap();
    assert_eq!(console_records(&e), want);
    assert!(e.session(&"e".repeat(64)).unwrap().is_none(), "sessions are not exported");
}

#[test]
fn an_embedded_records_file_of_the_previous_schema_moves_into_postgres() {
    let Some(pg) = TestPostgres::new() else { return };
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("records.sqlite");
    let c = rusqlite::Connection::open(&file).unwrap();
    c.execute_batch(include_str!("fixtures/schema_v3.sql")).unwrap();
    c.execute("INSERT INTO retention_policy (category, days, set_at) VALUES ('default', 90, ?1)", [AT]).unwrap();
    drop(c);
    let p = PostgresRecordStore::connect(pg.url()).unwrap();
    let moved = p.import_sqlite(&file, &mut |_| {}).unwrap();
    let rows = |table: &str| moved.iter().find(|t| t.table == table).map(|t| t.rows);
    assert_eq!((rows("retention_policy"), rows("staff")), (Some(1), Some(0)));
    assert_eq!(p.retention_policy().unwrap().get("default"), Some(&90));
}
