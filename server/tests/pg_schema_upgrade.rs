//! The PostgreSQL record schema upgrades from a frozen copy of every older version to exactly the
//! schema a fresh database gets (columns, indexes and constraints from the catalog), keeping
//! the rows; a newer schema is refused; replicas starting at once migrate once. Needs
//! PostgreSQL (see `fieldcap_testkit::postgres`; skipped without it).

#![allow(clippy::unwrap_used)]

use fieldcap_server::store::postgres::schema::{MIGRATIONS, VERSION};
use fieldcap_server::store::PostgresRecordStore;
use fieldcap_testkit::postgres::TestPostgres;
use postgres::Client;

/// The public schema as the catalog describes it, one line per column, index and constraint.
fn catalog(c: &mut Client) -> Vec<String> {
    let queries = [
        "SELECT concat_ws(' | ', 'column', table_name, ordinal_position, column_name, data_type, is_nullable, column_default, is_identity, identity_generation) \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        "SELECT concat_ws(' | ', 'index', tablename, indexname, indexdef) FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname",
        "SELECT concat_ws(' | ', 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid)) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1",
    ];
    queries.iter().flat_map(|q| c.query(*q, &[]).unwrap().into_iter().map(|r| r.get::<_, String>(0))).collect()
}

fn versions(c: &mut Client) -> Vec<i64> {
    c.query("SELECT version FROM schema_migrations ORDER BY version", &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

fn upgrade_from(fixture: &str) {
    let (Some(old), Some(fresh)) = (TestPostgres::new(), TestPostgres::new()) else { return };
    let mut c = old.client();
    c.batch_execute(fixture).unwrap();
    c.execute("INSERT INTO meta (key, value) VALUES ('upgrade-test', 'kept')", &[]).unwrap();
    drop(PostgresRecordStore::connect(old.url()).unwrap());
    drop(PostgresRecordStore::connect(fresh.url()).unwrap());
    let upgraded = catalog(&mut c);
    assert!(upgraded.iter().any(|l| l.starts_with("column | log_leaves |")), "{upgraded:?}");
    assert_eq!(upgraded, catalog(&mut fresh.client()));
    assert_eq!(versions(&mut c), (1..=VERSION).collect::<Vec<_>>());
    let kept: String = c.query_one("SELECT value FROM meta WHERE key = 'upgrade-test'", &[]).unwrap().get(0);
    assert_eq!(kept, "kept");
}

#[test]
fn migrations_are_numbered_in_order() {
    let numbers: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(numbers, (1..=VERSION).collect::<Vec<_>>());
    for (v, name, _) in MIGRATIONS {
        assert!(name.starts_with(&format!("{v:04}_")), "{name}");
    }
}

#[test]
fn frozen_v1_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/pg_schema_v1.sql"));
}

#[test]
fn frozen_v2_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/pg_schema_v2.sql"));
}

#[test]
fn frozen_v3_records_schema_upgrades_to_the_fresh_schema_and_keeps_rows() {
    upgrade_from(include_str!("fixtures/pg_schema_v3.sql"));
}

#[test]
fn a_schema_newer_than_this_server_is_refused() {
    let Some(pg) = TestPostgres::new() else { return };
    drop(PostgresRecordStore::connect(pg.url()).unwrap());
    pg.client().execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", &[&(VERSION + 1)]).unwrap();
    let e = PostgresRecordStore::connect(pg.url()).unwrap_err();
    assert!(e.to_string().contains("newer than this server"), "{e}");
}

#[test]
fn replicas_starting_at_once_migrate_once() {
    let Some(pg) = TestPostgres::new() else { return };
    let url = std::sync::Arc::new(pg.url().to_string());
    let start = std::sync::Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                PostgresRecordStore::connect(&url).map(drop)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(versions(&mut pg.client()), (1..=VERSION).collect::<Vec<_>>());
}
