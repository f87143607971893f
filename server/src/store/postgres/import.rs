//! Moving an embedded server's records (its `records.sqlite`) into PostgreSQL, table by table,
//! for `fieldcap move-stores` (see [`crate::store::migrate`]), and copying PostgreSQL's records
//! out into a new `records.sqlite` for a backup ([`PostgresRecordStore::export_sqlite`], see
//! [`crate::store::backup`]).
//!
//! The PostgreSQL schema mirrors the SQLite one table for table and column for column, so each
//! table is copied generically: its columns as PostgreSQL names them (`information_schema`;
//! generated identity columns left to PostgreSQL), each value converted to the column's type.
//! A table is copied in **one transaction** — all of it or nothing — so an interrupted move is
//! resumed by running it again: tables already copied are checked, not copied twice. Every
//! table, copied now or before, is then compared with its source row for row (a digest over the
//! sorted rows on both sides). A target that holds other records than the source's is refused.

use super::{Pg, PostgresRecordStore};
use crate::error::{Error, Result};
use postgres::types::ToSql;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Tables in the order they are copied (a row's references come first): every table of the
/// records but `meta` (the server's own bookkeeping; a scaled deployment's key is stored by
/// restore itself) and `sessions`. Console login sessions are left out of a move and a backup
/// deliberately: they are short-lived, a restored or moved deployment starts with everyone
/// logged out, and a backup then holds no live session. A table added to the schema goes here,
/// or is named here as left out.
pub(crate) const TABLES: &[&str] = &[
    "tokens",
    "devices",
    "nonces",
    "items",
    "uploads",
    "log_leaves",
    "checkpoints",
    "custody",
    "retention_policy",
    "holds",
    "referrals",
    "disposals",
    "device_custody",
    "fragments",
    "staff",
    "records_requests",
    "settings",
];

/// True if the SQLite database has the table (a records file of an older schema lacks the
/// newer tables: they hold no rows there).
pub(crate) fn sqlite_has_table(c: &rusqlite::Connection, table: &str) -> Result<bool> {
    c.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get::<_, i64>(0))
        .map(|n| n > 0)
        .map_err(sqlite_err)
}

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableImport {
    /// Table name.
    pub table: String,
    /// Rows in the source (and now in the target).
    pub rows: u64,
    /// True if copied by this run; false if it was copied before (and checked now).
    pub copied_now: bool,
}

/// One value of a row, as both databases hold it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.push(0),
            Value::Int(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_be_bytes());
            }
            Value::Text(t) => {
                out.push(2);
                out.extend_from_slice(&(t.len() as u64).to_be_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(3);
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        }
    }
}

/// SHA-256 over the rows, sorted (the two databases order text differently).
fn rows_digest(rows: &[Vec<Value>]) -> [u8; 32] {
    let mut enc: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| {
            let mut b = Vec::new();
            for v in r {
                v.encode(&mut b);
            }
            b
        })
        .collect();
    enc.sort();
    let mut h = Sha256::new();
    for e in &enc {
        h.update((e.len() as u64).to_be_bytes());
        h.update(e);
    }
    h.finalize().into()
}

fn sqlite_err(e: rusqlite::Error) -> Error {
    Error::Storage(Box::new(e))
}

/// The source rows of `table` with the columns `cols`, in insertion order.
fn source_rows(src: &rusqlite::Connection, table: &str, cols: &[(String, String)]) -> Result<Vec<Vec<Value>>> {
    let list: Vec<String> = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let mut st = src.prepare(&format!("SELECT {} FROM \"{table}\" ORDER BY rowid", list.join(", "))).map_err(sqlite_err)?;
    let mut rows = st.query([]).map_err(sqlite_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sqlite_err)? {
        let mut row = Vec::with_capacity(cols.len());
        for (i, (c, ty)) in cols.iter().enumerate() {
            use rusqlite::types::ValueRef;
            let v = match (r.get_ref(i).map_err(sqlite_err)?, ty.as_str()) {
                (ValueRef::Null, _) => Value::Null,
                (ValueRef::Integer(n), "bigint") => Value::Int(n),
                (ValueRef::Text(t), "text") => Value::Text(String::from_utf8(t.to_vec()).map_err(|_| bad(table, c, "text that is not UTF-8"))?),
                (ValueRef::Blob(b), "bytea") => Value::Bytes(b.to_vec()),
                // SQLite is typed per value: a BLOB column may hold text, etc.
                (ValueRef::Text(t), "bytea") => Value::Bytes(t.to_vec()),
                (ValueRef::Integer(n), "text") => Value::Text(n.to_string()),
                (_, other) => return Err(bad(table, c, &format!("a value that does not fit PostgreSQL type {other}"))),
            };
            row.push(v);
        }
        out.push(row);
    }
    Ok(out)
}

fn bad(table: &str, col: &str, what: &str) -> Error {
    Error::Conflict(format!("the embedded records cannot be moved: {table}.{col} holds {what}"))
}

/// The target rows of `table` with the columns `cols`.
fn target_rows(tx: &mut impl postgres::GenericClient, table: &str, cols: &[(String, String)]) -> Result<Vec<Vec<Value>>> {
    let list: Vec<String> = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let rows = tx.query(&format!("SELECT {} FROM \"{table}\"", list.join(", ")), &[]).pg()?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut row = Vec::with_capacity(cols.len());
        for (i, (_, ty)) in cols.iter().enumerate() {
            let v = match ty.as_str() {
                "bigint" => r.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Int),
                "text" => r.get::<_, Option<String>>(i).map_or(Value::Null, Value::Text),
                "bytea" => r.get::<_, Option<Vec<u8>>>(i).map_or(Value::Null, Value::Bytes),
                other => return Err(Error::Internal(format!("{table}: unexpected column type {other}"))),
            };
            row.push(v);
        }
        out.push(row);
    }
    Ok(out)
}

impl PostgresRecordStore {
    /// Copies the records of the SQLite file `sqlite` (an embedded server's `records.sqlite`,
    /// its server stopped) into this database, table by table, each in one transaction; tables
    /// copied by an earlier, interrupted run are checked instead. Every table is then compared
    /// with its source. Refuses a target holding records the source does not have.
    pub fn import_sqlite(&self, sqlite: &Path, progress: &mut dyn FnMut(&TableImport)) -> Result<Vec<TableImport>> {
        let src = rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite_err)?;
        // One snapshot of the source for the whole copy.
        src.execute_batch("BEGIN").map_err(sqlite_err)?;
        let mut conn = self.conn()?;
        let mut out = Vec::new();
        for table in TABLES {
            let cols: Vec<(String, String)> = conn
                .query(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'NO' ORDER BY ordinal_position",
                    &[table],
                )
                .pg()?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            if cols.is_empty() {
                return Err(Error::Internal(format!("the record database has no table {table}")));
            }
            // A table newer than the source's schema (an embedded server not started since an
            // upgrade) has no rows to copy; it is still checked empty in the target.
            let rows = if sqlite_has_table(&src, table)? { source_rows(&src, table, &cols)? } else { Vec::new() };
            let mut tx = super::begin(&mut conn)?;
            // The table is locked for the copy (another mover, or a server started too early).
            tx.batch_execute(&format!("LOCK TABLE \"{table}\" IN EXCLUSIVE MODE")).pg()?;
            let present: i64 = tx.query_one(&format!("SELECT count(*) FROM \"{table}\""), &[]).pg()?.get(0);
            let copied_now = present == 0 && !rows.is_empty();
            if copied_now {
                let names: Vec<String> = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                let st = tx.prepare(&format!("INSERT INTO \"{table}\" ({}) VALUES ({})", names.join(", "), marks.join(", "))).pg()?;
                for row in &rows {
                    let params: Vec<Box<dyn ToSql + Sync>> = row
                        .iter()
                        .zip(&cols)
                        .map(|(v, (_, ty))| -> Box<dyn ToSql + Sync> {
                            match (v, ty.as_str()) {
                                (Value::Null, "bigint") => Box::new(None::<i64>),
                                (Value::Null, "bytea") => Box::new(None::<Vec<u8>>),
                                (Value::Null, _) => Box::new(None::<String>),
                                (Value::Int(n), _) => Box::new(*n),
                                (Value::Text(t), _) => Box::new(t.clone()),
                                (Value::Bytes(b), _) => Box::new(b.clone()),
                            }
                        })
                        .collect();
                    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
                    tx.execute(&st, &refs).pg()?;
                }
            }
            let there = target_rows(&mut tx, table, &cols)?;
            if there.len() != rows.len() || rows_digest(&there) != rows_digest(&rows) {
                return Err(Error::Conflict(format!(
                    "the record database's {table} differs from the embedded records ({} rows there, {} here): it holds other records; move into an empty database",
                    there.len(),
                    rows.len()
                )));
            }
            tx.commit().pg()?;
            let t = TableImport { table: table.to_string(), rows: rows.len() as u64, copied_now };
            progress(&t);
            out.push(t);
        }
        Ok(out)
    }
}

/// Columns to copy (name, PostgreSQL type) and the identity column that orders the rows.
type CopyColumns = (Vec<(String, String)>, Option<String>);

/// The columns of `table` to copy (identity columns left to the database that receives the
/// rows), with their PostgreSQL types, and the identity column that orders its rows, if any.
fn copy_columns(conn: &mut impl postgres::GenericClient, table: &str) -> Result<CopyColumns> {
    let rows = conn
        .query(
            "SELECT column_name::text, data_type::text, is_identity::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .pg()?;
    if rows.is_empty() {
        return Err(Error::Internal(format!("the record database has no table {table}")));
    }
    let mut cols = Vec::new();
    let mut order = None;
    for r in rows {
        let (name, ty, identity): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        if identity == "YES" {
            order = Some(name);
        } else {
            cols.push((name, ty));
        }
    }
    Ok((cols, order))
}

impl PostgresRecordStore {
    /// Copies every record of this database into a new SQLite file `dst` with the embedded
    /// server's schema (a backup, or a way back to one machine): one consistent snapshot of the
    /// database (a read-only repeatable-read transaction, so the server may keep running), rows
    /// in their insertion order, each table compared with its source afterwards. `dst` must not
    /// exist; on error it is removed.
    pub fn export_sqlite(&self, dst: &Path, progress: &mut dyn FnMut(&TableImport)) -> Result<Vec<TableImport>> {
        if dst.exists() {
            return Err(Error::Conflict("the records copy's file exists already".into()));
        }
        let r = self.export_sqlite_inner(dst, progress);
        if r.is_err() {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", dst.display()));
            }
        }
        r
    }

    fn export_sqlite_inner(&self, dst: &Path, progress: &mut dyn FnMut(&TableImport)) -> Result<Vec<TableImport>> {
        // The embedded schema, at its latest version, made by the embedded store itself.
        drop(crate::store::SqliteRecordStore::open(dst)?);
        let mut out_db = rusqlite::Connection::open(dst).map_err(sqlite_err)?;
        let mut conn = self.conn()?;
        let mut snap = conn.build_transaction().isolation_level(postgres::IsolationLevel::RepeatableRead).read_only(true).start().pg()?;
        let tx = out_db.transaction().map_err(sqlite_err)?;
        let mut out = Vec::new();
        for table in TABLES {
            let (cols, order) = copy_columns(&mut snap, table)?;
            let list: Vec<String> = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect();
            let order_by = order.map(|o| format!(" ORDER BY \"{o}\"")).unwrap_or_default();
            let rows = snap.query(&format!("SELECT {} FROM \"{table}\"{order_by}", list.join(", ")), &[]).pg()?;
            {
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
                let mut st = tx.prepare(&format!("INSERT INTO \"{table}\" ({}) VALUES ({})", list.join(", "), marks.join(", "))).map_err(sqlite_err)?;
                for r in &rows {
                    let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(cols.len());
                    for (i, (c, ty)) in cols.iter().enumerate() {
                        use rusqlite::types::Value as V;
                        values.push(match ty.as_str() {
                            "bigint" => r.get::<_, Option<i64>>(i).map_or(V::Null, V::Integer),
                            "text" => r.get::<_, Option<String>>(i).map_or(V::Null, V::Text),
                            "bytea" => r.get::<_, Option<Vec<u8>>>(i).map_or(V::Null, V::Blob),
                            other => return Err(Error::Internal(format!("{table}.{c}: unexpected column type {other}"))),
                        });
                    }
                    st.execute(rusqlite::params_from_iter(values)).map_err(sqlite_err)?;
                }
            }
            let copied = source_rows(&tx, table, &cols)?;
            let there = target_rows(&mut snap, table, &cols)?;
            if copied.len() != there.len() || rows_digest(&copied) != rows_digest(&there) {
                return Err(Error::Internal(format!("the copy of {table} differs from the record database's")));
            }
            let t = TableImport { table: table.to_string(), rows: copied.len() as u64, copied_now: true };
            progress(&t);
            out.push(t);
        }
        tx.commit().map_err(sqlite_err)?;
        snap.commit().pg()?;
        out_db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(sqlite_err)?;
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Tables of the records deliberately not copied by a move or a backup (see [`TABLES`]).
    const NOT_COPIED: &[&str] = &["meta", "sessions"];

    #[test]
    fn every_table_of_the_records_is_copied_or_named_as_left_out() {
        let dir = tempfile::tempdir().unwrap();
        drop(crate::store::SqliteRecordStore::open(&dir.path().join("records.sqlite")).unwrap());
        let c = rusqlite::Connection::open(dir.path().join("records.sqlite")).unwrap();
        let mut st = c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").unwrap();
        let present: Vec<String> = st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        let mut named: Vec<String> = TABLES.iter().chain(NOT_COPIED).map(|t| t.to_string()).collect();
        named.sort();
        assert_eq!(present, named);
        for t in TABLES.iter().chain(NOT_COPIED) {
            assert!(sqlite_has_table(&c, t).unwrap(), "{t}");
        }
        assert!(!sqlite_has_table(&c, "no_such_table").unwrap());
    }
}
