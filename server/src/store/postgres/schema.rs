//! Schema of the PostgreSQL record store and its migrations.
//!
//! Migrations are SQL files in `migrations/` (`0001_initial.sql`, …), embedded in the binary and
//! applied in order, each in its own transaction together with its row in `schema_migrations`
//! (version, name, when), so a crash mid-upgrade leaves the previous version. Replicas starting
//! at once do not race: each migration transaction first takes the advisory lock
//! [`MIGRATION_LOCK`] and reads the applied versions only then. A database with a version newer
//! than this build is refused. A released migration is frozen: never edit it, add the next one
//! to [`MIGRATIONS`] (and its schema, as created, to the upgrade test's fixtures).

use crate::error::{Error, Result};
use postgres::{Client, IsolationLevel};

/// Current schema version (the number of the last migration).
pub const VERSION: i64 = 4;

/// Advisory lock key held by a transaction applying a migration.
pub const MIGRATION_LOCK: i64 = 0x4643_0001; // "FC" 1

/// (version, name, SQL) in order; version i+1 is at index i.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_initial", include_str!("migrations/0001_initial.sql")),
    (2, "0002_console", include_str!("migrations/0002_console.sql")),
    (3, "0003_fragments", include_str!("migrations/0003_fragments.sql")),
    (4, "0004_sealed_items", include_str!("migrations/0004_sealed_items.sql")),
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";

/// Brings the database's schema to [`VERSION`]. Several processes may call it at once.
pub fn migrate(client: &mut Client) -> Result<()> {
    loop {
        let mut tx = client.build_transaction().isolation_level(IsolationLevel::ReadCommitted).start().map_err(super::map_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(super::map_err)?;
        tx.batch_execute(CREATE_MIGRATIONS_TABLE).map_err(super::map_err)?;
        let row = tx.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).map_err(super::map_err)?;
        let v: i64 = row.try_get(0).map_err(super::map_err)?;
        if v > VERSION {
            return Err(Error::Internal(format!("the record database has schema {v}, newer than this server ({VERSION})")));
        }
        if v == VERSION {
            tx.commit().map_err(super::map_err)?;
            return Ok(());
        }
        let (version, name, sql) = MIGRATIONS
            .get(v as usize)
            .copied()
            .ok_or_else(|| Error::Internal(format!("no migration from schema {v}")))?;
        tx.batch_execute(sql).map_err(super::map_err)?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&version, &name]).map_err(super::map_err)?;
        tx.commit().map_err(super::map_err)?;
        tracing::info!(version, name, "record database migrated");
    }
}
