//! The records schema upgrades from a frozen copy of every older version to exactly the schema a
//! fresh data directory gets, keeping the rows.

#![allow(clippy::unwrap_used)]

fn columns(conn: &rusqlite::Connection) -> Vec<(String, Vec<String>)> {
    let mut s = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap();
    let names: Vec<String> = s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    names
        .into_iter()
        .map(|n| {
            let mut st = conn.prepare(&format!("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo('{n}')")).unwrap();
            let cols = st
                .query_map([], |r| {
                    Ok(format!("{}:{}:{}:{:?}:{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<String>>(3)?, r.get::<_, i64>(4)?))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            (n, cols)
        })
        .collect()
}

fn upgrade_from(fixture: &str) {
    let t = tempfile::tempdir().unwrap();
    let mut old = rusqlite::Connection::open(t.path().join("old.sqlite")).unwrap();
    old.execute_batch(fixture).unwrap();
    old.execute("INSERT INTO meta (key, value) VALUES ('upgrade-test', 'kept')", []).unwrap();
    fieldcap_server::store::sqlite::schema::migrate(&mut old).unwrap();
    let mut fresh = rusqlite::Connection::open(t.path().join("fresh.sqlite")).unwrap();
    fieldcap_server::store::sqlite::schema::migrate(&mut fresh).unwrap();
    assert_eq!(columns(&old), columns(&fresh));
    let v: i64 = old.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, fieldcap_server::store::sqlite::schema::VERSION);
    let kept: String = old.query_row("SELECT value FROM meta WHERE key = 'upgrade-test'", [], |r| r.get(0)).unwrap();
    assert_eq!(kept, "kept");
}

#[test]
fn frozen_v1_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/schema_v1.sql"));
}

#[test]
fn frozen_v2_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/schema_v2.sql"));
}

#[test]
fn frozen_v3_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/schema_v3.sql"));
}

#[test]
fn frozen_v4_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/schema_v4.sql"));
}

#[test]
fn frozen_v5_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/schema_v5.sql"));
}
