//! A fresh PostgreSQL database per test, on the cluster `scripts/start_postgres.sh` starts.
//!
//! `FIELDCAP_TEST_POSTGRES_URL` is an admin URL (`postgres://ROLE:PASSWORD@127.0.0.1:5432/postgres`,
//! a role with CREATEDB). [`TestPostgres::new`] creates a database `fieldcap_t_<random>` on it
//! and drops it (`WITH (FORCE)`) when dropped. Without the variable a test is skipped (it says so
//! on stdout and gets `None`), unless `FIELDCAP_REQUIRE_POSTGRES` is set: then it panics, so CI
//! cannot pass by skipping.
//!
//! Fault tests restart or stop the whole cluster ([`TestPostgres::restart_postgres`],
//! [`TestPostgres::stop_postgres`]). That affects every test using it, so such a test takes [`TestPostgres::exclusive`]:
//! it waits until no other [`TestPostgres`] of the process is alive, and every other one waits
//! while it is. (Tests in other processes are not covered: cargo runs test binaries one after
//! another.)
//!
//! ```no_run
//! if let Some(pg) = fieldcap_testkit::postgres::TestPostgres::new() {
//!     let mut c = postgres::Client::connect(pg.url(), postgres::NoTls).unwrap();
//!     c.batch_execute("CREATE TABLE t (x BIGINT)").unwrap();
//! }
//! ```

use std::hash::{BuildHasher, Hasher};
use std::process::Command;
use std::sync::{Condvar, Mutex};

/// The variable holding the admin URL.
pub const URL_VAR: &str = "FIELDCAP_TEST_POSTGRES_URL";
/// The variable that turns a skip into a failure.
pub const REQUIRE_VAR: &str = "FIELDCAP_REQUIRE_POSTGRES";

/// (shared holders, exclusive held) of the cluster: ordinary test databases share it, tests
/// that stop the cluster hold it alone. (Not an `RwLock`: a thread holding two shared databases
/// must not deadlock behind a waiting exclusive one.)
static CLUSTER: Mutex<(usize, bool)> = Mutex::new((0, false));
static CLUSTER_CHANGED: Condvar = Condvar::new();

/// A hold on the cluster, released when dropped.
#[derive(Debug)]
struct Hold {
    exclusive: bool,
}

impl Hold {
    fn take(exclusive: bool) -> Hold {
        let mut st = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        while st.1 || (exclusive && st.0 > 0) {
            st = CLUSTER_CHANGED.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if exclusive {
            st.1 = true;
        } else {
            st.0 += 1;
        }
        Hold { exclusive }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut st = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        if self.exclusive {
            st.1 = false;
        } else {
            st.0 -= 1;
        }
        CLUSTER_CHANGED.notify_all();
    }
}

/// A fresh database, dropped with this value.
pub struct TestPostgres {
    admin_url: String,
    name: String,
    url: String,
    hold: Hold,
}

impl std::fmt::Debug for TestPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPostgres").field("database", &self.name).finish_non_exhaustive()
    }
}

/// The admin URL, or `None` (after saying the test is skipped) when it is not set.
fn admin_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var_os(REQUIRE_VAR).is_some() => {
            panic!("{REQUIRE_VAR} is set but {URL_VAR} is missing: start PostgreSQL with `bash scripts/start_postgres.sh` and export {URL_VAR} to the URL it prints")
        }
        _ => {
            println!("skipped: no PostgreSQL ({URL_VAR} is not set; see scripts/start_postgres.sh)");
            None
        }
    }
}

/// `url` with its database (path) replaced by `db`; keeps the query.
fn with_database(url: &str, db: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).expect("the PostgreSQL URL has no scheme (postgres://…)");
    let rest = &url[scheme_end..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let query = rest[auth_end..].find('?').map(|q| &rest[auth_end + q..]).unwrap_or("");
    format!("{}{}/{db}{query}", &url[..scheme_end], &rest[..auth_end])
}

fn random_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("{:016x}", h.finish())
}

fn admin_client(admin_url: &str) -> postgres::Client {
    // Never print the URL: it holds the password.
    postgres::Client::connect(admin_url, postgres::NoTls).unwrap_or_else(|e| panic!("connecting to the test PostgreSQL ({URL_VAR}): {e}"))
}

impl TestPostgres {
    /// A fresh database, or `None` (the test is skipped) without `FIELDCAP_TEST_POSTGRES_URL`.
    pub fn new() -> Option<TestPostgres> {
        let admin_url = admin_url()?;
        let hold = Hold::take(false);
        Some(Self::create(admin_url, hold))
    }

    /// As [`TestPostgres::new`], for a test that stops or restarts the cluster: waits until no
    /// other test database of this process is alive, and keeps others from being made meanwhile.
    pub fn exclusive() -> Option<TestPostgres> {
        let admin_url = admin_url()?;
        let hold = Hold::take(true);
        Some(Self::create(admin_url, hold))
    }

    fn create(admin_url: String, hold: Hold) -> TestPostgres {
        let name = format!("fieldcap_t_{}", random_suffix());
        admin_client(&admin_url).batch_execute(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| panic!("creating the test database: {e}"));
        let url = with_database(&admin_url, &name);
        TestPostgres { admin_url, name, url, hold }
    }

    /// The URL of this test's database (holds the password: never print it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new client on this test's database.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
    }

    fn require_exclusive(&self, what: &str) {
        assert!(self.hold.exclusive, "{what} affects every test on the cluster: take TestPostgres::exclusive()");
    }

    /// Restarts the PostgreSQL cluster (`pg_ctlcluster … restart`, fast mode: sessions are cut).
    /// Only from a [`TestPostgres::exclusive`] database.
    pub fn restart_postgres(&self) {
        self.require_exclusive("restarting PostgreSQL");
        pg_ctlcluster(&self.admin_url, "restart");
    }

    /// Stops the PostgreSQL cluster (fast mode). Only from a [`TestPostgres::exclusive`] database.
    /// The cluster is started again by [`StoppedPostgres::start`], or when the guard is dropped
    /// (a failing test does not leave it stopped).
    pub fn stop_postgres(&self) -> StoppedPostgres<'_> {
        self.require_exclusive("stopping PostgreSQL");
        pg_ctlcluster(&self.admin_url, "stop");
        StoppedPostgres { pg: self, started: false }
    }
}

/// A stopped cluster (see [`TestPostgres::stop_postgres`]).
#[derive(Debug)]
pub struct StoppedPostgres<'a> {
    pg: &'a TestPostgres,
    started: bool,
}

impl StoppedPostgres<'_> {
    /// Starts the cluster again; returns once it accepts connections.
    pub fn start(mut self) {
        self.started = true;
        pg_ctlcluster(&self.pg.admin_url, "start");
    }
}

impl Drop for StoppedPostgres<'_> {
    fn drop(&mut self) {
        if !self.started {
            // Not asserted: this runs while a test is already failing.
            let (version, name) = cluster_of(&self.pg.admin_url);
            let _ = Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, &name, "start"]).status();
        }
    }
}

/// (version, name) of the local cluster serving `admin_url`'s port (from `pg_lsclusters`).
fn cluster_of(admin_url: &str) -> (String, String) {
    let port: u16 = admin_url.parse::<postgres::Config>().ok().and_then(|c| c.get_ports().first().copied()).unwrap_or(5432);
    let out = Command::new("pg_lsclusters").arg("-h").output().expect("running pg_lsclusters (Debian's postgresql-common)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[2] == port.to_string())
        .map(|f| (f[0].to_string(), f[1].to_string()))
        .unwrap_or_else(|| panic!("no local PostgreSQL cluster on port {port} (pg_lsclusters)"))
}

fn pg_ctlcluster(admin_url: &str, action: &str) {
    let (version, name) = cluster_of(admin_url);
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", "-m", "fast", &version, &name, action])
        .status()
        .expect("running pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {version} {name} {action} failed: {status}");
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // A panicking test may have left the cluster stopped; then the database stays (named
        // fieldcap_t_*, dropped by hand).
        match postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            Ok(mut c) => {
                if let Err(e) = c.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
                    eprintln!("dropping the test database {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("dropping the test database {}: {e}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced_and_its_query_kept() {
        assert_eq!(with_database("postgres://u:p@127.0.0.1:5432/postgres", "x"), "postgres://u:p@127.0.0.1:5432/x");
        assert_eq!(with_database("postgres://u:p@h/postgres?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
        assert_eq!(with_database("postgresql://u:p@h:1", "x"), "postgresql://u:p@h:1/x");
    }
}
