//! Read access to a server's records, for tools that run beside (or instead of) the server:
//! evidence packages, incident listings, audits.
//!
//! [`Records::open`] opens a data directory (the same SQLite file the running server uses; WAL
//! makes concurrent readers safe) and gives the exact signed bytes of everything: manifests and
//! device signatures, commitments, receipts, device certificates, custody events, checkpoints,
//! and proofs. It can also append server custody events (e.g. `exported`) and sign with the
//! server key, for package indexes.
//!
//! ```no_run
//! let r = fieldcap_server::records::Records::open(std::path::Path::new("/srv/fieldcap"))?;
//! for item in r.items()? {
//!     println!("{} {} {:?}", item.clip_id, item.state, r.blob_path(&item));
//! }
//! # Ok::<(), fieldcap_server::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::log::LogTree;
use crate::state::default_origin;
use crate::store::{BlobStore, Deployment, DeviceRecord, ItemRecord, RecordStore, Stores, RECORDS_FILE};
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::identity::{device_id_for, DeviceKey};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A data directory's records, reached through the store traits.
pub struct Records {
    data_dir: Option<PathBuf>,
    store: Arc<dyn RecordStore>,
    blobs: Arc<dyn BlobStore>,
    key: DeviceKey,
    key_id: String,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("server_key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl Records {
    /// Opens the records of a deployment a server has run on (a data directory, or a scaled
    /// deployment's stores with the data directory holding its key, which must exist).
    pub fn open(at: impl Into<Deployment>) -> Result<Records> {
        let at: Deployment = at.into();
        if at.records.is_none() && !at.data_dir.as_ref().is_some_and(|d| d.join(RECORDS_FILE).exists()) {
            return Err(Error::NotFound("no server records in that directory (run `fieldcap serve` first)".into()));
        }
        let stores = at.open_stores()?;
        Records::on_stores(&at, stores)
    }

    /// The records of a data directory (its server key) on the given stores, for a deployment
    /// whose stores are not the embedded ones (an S3 blob store, another record store).
    pub fn with_stores(data_dir: &Path, stores: Stores) -> Result<Records> {
        Records::on_stores(&Deployment::from(data_dir), stores)
    }

    /// The records of a deployment on its stores, opened: the server key (from the data
    /// directory, or kept in the records), which must be the one the records were begun with.
    fn on_stores(at: &Deployment, stores: Stores) -> Result<Records> {
        let Stores { records: store, blobs } = stores;
        let (key, _) = at.server_key(store.as_ref(), false)?;
        let key_id = device_id_for(&key.verifying_key());
        crate::state::check_records_key(store.as_ref(), &key_id)?;
        Ok(Records { data_dir: at.data_dir.clone(), store, blobs, key, key_id })
    }

    /// The records a running server serves (the console works through these).
    pub(crate) fn of_state(app: &crate::state::AppState) -> Result<Records> {
        Ok(Records {
            data_dir: app.cfg.data_dir.clone(),
            store: app.records.clone(),
            blobs: app.blobs.clone(),
            key: DeviceKey::from_secret(app.key.secret().as_slice())?,
            key_id: app.key_id.clone(),
        })
    }

    /// The underlying record store.
    pub fn store(&self) -> &dyn RecordStore {
        self.store.as_ref()
    }

    /// Server public key, SPKI PEM.
    pub fn server_public_pem(&self) -> String {
        self.key.public_pem()
    }

    /// Server key id (hex of the first 16 bytes of SHA-256 over the raw key).
    pub fn server_key_id(&self) -> &str {
        &self.key_id
    }

    /// The server signing key (for package indexes and other server-signed documents).
    pub fn server_key(&self) -> &DeviceKey {
        &self.key
    }

    /// The log origin (and checkpoint key name) used by a server with default configuration.
    pub fn default_log_origin(&self) -> String {
        default_origin(&self.key_id)
    }

    /// Every item, in commit order.
    pub fn items(&self) -> Result<Vec<ItemRecord>> {
        self.store.items()
    }

    /// One item.
    pub fn item(&self, clip_id: &str) -> Result<Option<ItemRecord>> {
        self.store.item(clip_id)
    }

    /// Local path of an item's stored original (None for observations and unreceived media).
    pub fn blob_path(&self, item: &ItemRecord) -> Option<PathBuf> {
        item.blob_sha256.as_deref().and_then(|s| self.blobs.local_path(s)).filter(|p| p.is_file())
    }

    /// The blob store.
    pub fn blobs(&self) -> &dyn BlobStore {
        self.blobs.as_ref()
    }

    /// Every enrolled device.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>> {
        self.store.devices()
    }

    /// One device (its certificate bytes and signature included).
    pub fn device(&self, device_id: &str) -> Result<Option<DeviceRecord>> {
        self.store.device(device_id)
    }

    /// Server custody events, all or those of one item, in chain order.
    pub fn custody(&self, clip_id: Option<&str>) -> Result<Vec<CustodyEvent>> {
        self.store.custody(clip_id)
    }

    /// A device's own custody log as uploaded by its sync passes (FORMATS §5), in seq order.
    pub fn device_custody(&self, device_id: &str) -> Result<Vec<CustodyEvent>> {
        self.store.device_custody(device_id)
    }

    /// Appends a signed server custody event (e.g. `exported`, `accessed`).
    pub fn append_custody(&self, event: &str, clip_id: Option<&str>, detail: serde_json::Value) -> Result<CustodyEvent> {
        crate::custody::append(self.store.as_ref(), &self.key, &self.key_id, event, clip_id, detail)
    }

    /// The newest signed checkpoint as (tree size, note text).
    pub fn latest_checkpoint(&self) -> Result<Option<(u64, String)>> {
        self.store.latest_checkpoint()
    }

    /// Of the checkpoints covering at least `min_size` leaves, the one with the most signatures
    /// (witness cosignatures), the newest among equals; see [`crate::witnessing`].
    pub fn best_checkpoint(&self, min_size: u64) -> Result<Option<(u64, String)>> {
        self.store.best_checkpoint(min_size)
    }

    fn tree(&self) -> Result<LogTree> {
        Ok(LogTree::from_leaves(&self.store.leaf_hashes()?))
    }

    /// Number of leaves in the log.
    pub fn log_size(&self) -> Result<u64> {
        Ok(self.store.leaf_hashes()?.len() as u64)
    }

    /// Inclusion proof (hex) of leaf `index` in the tree of `tree_size` leaves.
    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<String>> {
        Ok(fieldcap_evidence::tlog::proof_to_hex(&self.tree()?.inclusion(index, tree_size)?))
    }

    /// Consistency proof (hex) between two tree sizes.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<String>> {
        Ok(fieldcap_evidence::tlog::proof_to_hex(&self.tree()?.consistency(from, to)?))
    }

    /// Grouped incidents.
    pub fn incidents(&self) -> Result<Vec<crate::incidents::Incident>> {
        let items: Vec<_> = self.items()?.iter().filter_map(crate::incidents::item_of).collect();
        Ok(crate::incidents::group(&items))
    }

    /// The data directory (none for a scaled deployment run without one).
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }
}
