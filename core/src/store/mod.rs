//! The device evidence store: a directory holding the SQLite database, the device key and the
//! sealed items, plus the recovery that runs every time it is opened.
//!
//! Layout of a store (`HOME`):
//! ```text
//! fieldcap.db              SQLite (WAL): items, custody log, pending seals, capture sessions
//! device.json              role, org, callsign (the operator profile)
//! keys/device.key          the device secret, wrapped by the KeyProtector (0600)
//! keys/device.pub.pem      SPKI PEM public key
//! items/<clip_id>/         media.<ext>, manifest.json, manifest.sig (exact signed bytes)
//! recording/<rec_id>/      where the shell records segments before they are sealed
//! staging/                 copies in progress from another filesystem
//! quarantine/              anything recovery could not attribute; never deleted
//! lock                     inter-process lock for sealing and recovery
//! ```
//!
//! Opening the store reconciles the files with the database under the lock: an interrupted seal
//! is finished (or undone if the file never moved), an orphan recording segment is sealed with the
//! `recovered` tag, anything that cannot be attributed is moved to `quarantine/`, an item whose
//! file vanished or changed size is flagged, and a database that is not SQLite is moved aside and
//! rebuilt from the signed manifests on disk. Nothing is ever deleted.
//!
//! All SQL lives in [`db`]; the migrations in [`schema`]; start-up reconciliation in `recovery`.

pub(crate) mod db;
pub(crate) mod recovery;
pub mod schema;

use crate::custody::{self, CustodyEvent};
use crate::error::{Error, IoContext, Result};
use crate::identity::{DeviceKey, KeyProtector};
use crate::manifest::{Operator, Role};
use rusqlite::{Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The operator profile kept in `device.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Monitor or police.
    pub role: Role,
    /// Organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Call sign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callsign: Option<String>,
    /// New items are sealed encrypted at rest (FORMATS §6b, [`crate::vault`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed_storage: bool,
    /// Sealed items lock to the council this many seconds after sealing (0: at once); `None`:
    /// never automatically. Monitors default to 0, police handsets to never
    /// ([`Profile::default_lock_after`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_after_secs: Option<u64>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile { role: Role::Monitor, org: None, callsign: None, sealed_storage: false, lock_after_secs: None }
    }
}

impl Profile {
    /// The lock policy a role starts with: monitors lock at once (their phones are the ones
    /// taken), police handsets never automatically.
    pub fn default_lock_after(role: Role) -> Option<u64> {
        match role {
            Role::Monitor => Some(0),
            Role::Police => None,
        }
    }

    /// The manifest's operator block.
    pub fn operator(&self) -> Operator {
        Operator { role: self.role, org: self.org.clone(), callsign: self.callsign.clone() }
    }
}

/// What recovery found and did when the store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpenReport {
    /// A new device key was generated.
    pub key_created: bool,
    /// Interrupted seals that were completed.
    pub seals_completed: Vec<String>,
    /// Interrupted seals whose file had not moved yet (nothing to do; the source is untouched).
    pub seals_undone: usize,
    /// Orphan recording segments sealed with the `recovered` tag.
    pub segments_recovered: Vec<String>,
    /// Files or folders moved to quarantine.
    pub quarantined: Vec<String>,
    /// Items flagged because their media is missing or changed.
    pub flagged: Vec<String>,
    /// Name of a database that failed to open and was moved aside.
    pub database_moved_aside: Option<String>,
    /// Items restored from their signed manifests after the database was moved aside.
    pub items_restored: usize,
    /// Missing manifest mirrors rewritten from the database.
    pub mirrors_rewritten: usize,
}

impl OpenReport {
    /// True when recovery did anything a user should hear about.
    pub fn is_eventful(&self) -> bool {
        !(self.seals_completed.is_empty()
            && self.seals_undone == 0
            && self.segments_recovered.is_empty()
            && self.quarantined.is_empty()
            && self.flagged.is_empty()
            && self.database_moved_aside.is_none())
    }
}

/// An open device store. `Send + Sync`: calls are serialised on one connection.
pub struct Store {
    pub(crate) home: PathBuf,
    pub(crate) key: DeviceKey,
    pub(crate) profile: Profile,
    pub(crate) conn: Mutex<Connection>,
    pub(crate) active_recordings: Mutex<std::collections::HashMap<String, File>>,
    /// Live recordings this process is recording ([`crate::live`]).
    pub(crate) live: Mutex<std::collections::HashMap<String, crate::live::LiveState>>,
    /// Wakes the live uploader when a piece is sealed.
    pub(crate) live_signal: crate::live::LiveSignal,
    /// The device vault, once sealed storage was ever turned on ([`crate::vault`]).
    pub(crate) vault: Option<crate::vault::Vault>,
    /// The key protector, for creating the vault when sealed storage is turned on.
    protector: Arc<dyn KeyProtector>,
    report: OpenReport,
    /// Test hook: milliseconds added to the system clock where sync reads it (see
    /// [`Store::set_clock_skew_ms`]); 0 on a real device.
    clock_skew_ms: AtomicI64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("device_id", &self.key.device_id()).finish_non_exhaustive()
    }
}

/// Holds the inter-process store lock until dropped.
pub(crate) struct StoreLock(File);

impl Drop for StoreLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

const DB_NAME: &str = "fieldcap.db";

impl Store {
    /// Opens (creating if needed) the store at `home`, generating the device key on first start,
    /// and runs recovery. See [`Store::open_report`] for what recovery did.
    pub fn open(home: &Path, protector: Arc<dyn KeyProtector>) -> Result<Store> {
        for d in ["", "keys", "items", "recording", "live", "staging", "quarantine"] {
            fs::create_dir_all(home.join(d)).ctx(|| "creating the store directories".into())?;
        }
        let (key, key_created) = DeviceKey::load_or_create(&home.join("keys"), protector.as_ref())?;
        let profile_path = home.join("device.json");
        let profile = match fs::read(&profile_path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|_| Error::Corrupt("device.json is not a valid profile".into()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let p = Profile::default();
                crate::fsutil::write_atomic(&profile_path, &serde_json::to_vec_pretty(&p)?)?;
                p
            }
            Err(e) => return Err(Error::io("reading device.json", e)),
        };
        // The vault exists once sealed storage was turned on; a store that never had it does
        // not touch the key store for it.
        let vault = if profile.sealed_storage || home.join("keys").join("vault.key").exists() {
            Some(crate::vault::Vault::load_or_create(&home.join("keys"), protector.as_ref())?)
        } else {
            None
        };
        let mut report = OpenReport { key_created, ..Default::default() };
        let lock = Self::lock_path(home)?;
        let db_path = home.join(DB_NAME);
        let mut conn = match db::open_connection(&db_path) {
            Ok(c) => c,
            Err(e) if db::is_not_a_database(&e) => {
                let aside = format!("{DB_NAME}.corrupt-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
                for suffix in ["", "-wal", "-shm"] {
                    let from = home.join(format!("{DB_NAME}{suffix}"));
                    if from.exists() {
                        fs::rename(&from, home.join(format!("{aside}{suffix}"))).ctx(|| "moving the unreadable database aside".into())?;
                    }
                }
                tracing::warn!("the database could not be opened as SQLite and was moved aside as {aside}");
                report.database_moved_aside = Some(aside);
                db::open_connection(&db_path)?
            }
            Err(e) => return Err(e),
        };
        schema::migrate(&mut conn)?;
        let mut store = Store {
            home: home.to_path_buf(),
            key,
            profile,
            conn: Mutex::new(conn),
            active_recordings: Mutex::new(Default::default()),
            live: Mutex::new(Default::default()),
            live_signal: Default::default(),
            vault,
            protector: protector.clone(),
            report: OpenReport::default(),
            clock_skew_ms: AtomicI64::new(0),
        };
        {
            let _guard = StoreLock::acquire(lock)?;
            if key_created {
                store.append_custody("created", None, json!({"key_protector": protector.name()}))?;
            }
            recovery::reconcile(&store, &mut report)?;
        }
        store.report = report;
        Ok(store)
    }

    fn lock_path(home: &Path) -> Result<File> {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(home.join("lock"))
            .ctx(|| "opening the store lock".into())
    }

    /// Takes the inter-process lock (blocking).
    pub(crate) fn lock(&self) -> Result<StoreLock> {
        StoreLock::acquire(Self::lock_path(&self.home)?)
    }

    /// What recovery did when this store was opened.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The store directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// This device's identifier.
    pub fn device_id(&self) -> &str {
        self.key.device_id()
    }

    /// SPKI PEM of the device key.
    pub fn public_pem(&self) -> String {
        self.key.public_pem()
    }

    /// The device key (for signing sync requests).
    pub fn device_key(&self) -> &DeviceKey {
        &self.key
    }

    /// Test hook: sets this store's clock `ms` milliseconds ahead of the system clock (behind,
    /// if negative), as on a phone whose clock is set wrong, so that tests and soaks can run many
    /// devices with different clocks in one process. Sync reads the device clock through it (the
    /// offset measured with `GET /v1/time`, the timestamps of signed requests); sealing and
    /// custody times still read the system clock. A real device never calls it (the skew starts
    /// at 0 on every open).
    pub fn set_clock_skew_ms(&self, ms: i64) {
        self.clock_skew_ms.store(ms, Ordering::SeqCst);
    }

    /// The device clock as sync reads it, Unix ms: the system clock plus the test skew.
    pub(crate) fn clock_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis().saturating_add(self.clock_skew_ms.load(Ordering::SeqCst))
    }

    /// Operator profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Replaces the operator profile (role, org, callsign). The key is never touched.
    pub fn set_profile(&mut self, profile: Profile) -> Result<()> {
        if profile.sealed_storage && self.vault.is_none() {
            self.vault = Some(crate::vault::Vault::load_or_create(&self.home.join("keys"), self.protector.as_ref())?);
        }
        crate::fsutil::write_atomic(&self.home.join("device.json"), &serde_json::to_vec_pretty(&profile)?)?;
        let _g = self.lock()?;
        self.append_custody(
            "profile_changed",
            None,
            json!({"role": profile.role.as_str(), "sealed_storage": profile.sealed_storage, "lock_after_secs": profile.lock_after_secs}),
        )?;
        self.profile = profile;
        Ok(())
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection cannot leave a half transaction (rusqlite rolls
        // back on drop), so a poisoned mutex is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Path of an item's folder.
    pub fn item_dir(&self, clip_id: &str) -> PathBuf {
        self.home.join("items").join(clip_id)
    }

    /// Appends a custody event in its own transaction.
    pub fn append_custody(&self, event: &str, clip_id: Option<&str>, detail: serde_json::Value) -> Result<CustodyEvent> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let e = append_custody_tx(&tx, &self.key, event, clip_id, detail)?;
        tx.commit()?;
        Ok(e)
    }

    /// Custody events, all or those of one item, in order.
    pub fn custody_events(&self, clip_id: Option<&str>) -> Result<Vec<CustodyEvent>> {
        let rows = db::custody_bodies(&self.conn(), clip_id)?;
        let mut out = Vec::with_capacity(rows.len());
        for (body, sig) in rows {
            out.push(CustodyEvent::from_body(body, sig)?);
        }
        Ok(out)
    }

    /// Records an alarm (e.g. a log inconsistency) that `clips` shows until acknowledged.
    pub fn raise_alarm(&self, kind: &str, detail: &str) -> Result<()> {
        db::insert_alarm(&self.conn(), &crate::time::now(), kind, detail)?;
        self.append_custody("alarm", None, json!({"kind": kind, "detail": detail}))?;
        Ok(())
    }

    /// Alarms raised so far: (at, kind, detail).
    pub fn alarms(&self) -> Result<Vec<(String, String, String)>> {
        db::alarms(&self.conn())
    }
}

impl StoreLock {
    fn acquire(f: File) -> Result<StoreLock> {
        f.lock().ctx(|| "taking the store lock".into())?;
        Ok(StoreLock(f))
    }
}

/// Appends a custody event inside an open transaction (so it commits with the action it records).
pub(crate) fn append_custody_tx(
    tx: &rusqlite::Transaction<'_>,
    key: &DeviceKey,
    event: &str,
    clip_id: Option<&str>,
    detail: serde_json::Value,
) -> Result<CustodyEvent> {
    // The format allows no floating point in a detail (FORMATS.md §5): never sign one.
    custody::check_detail(&detail)?;
    let last = db::custody_head(tx)?;
    let seq = last.as_ref().map(|l| l.0 as u64 + 1).unwrap_or(1);
    let at = crate::time::now();
    let actor = format!("device:{}", key.device_id());
    let body = custody::body(&actor, seq, &at, event, clip_id, detail, last.as_ref().map(|l| l.1.as_str()));
    let sig = key.sign(&body).to_vec();
    let hash = crate::hashing::sha256_hex(&body);
    db::insert_custody(tx, &db::CustodyRow { seq, clip_id, event, at: &at, body: &body, hash: &hash, sig: &sig })?;
    Ok(CustodyEvent { seq, clip_id: clip_id.map(String::from), event: event.into(), at, body, sig })
}
