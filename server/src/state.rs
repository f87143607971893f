//! Shared server state: configuration, storage, key, log cache, locks.

use crate::error::{Error, Result};
use crate::log::LogTree;
use crate::store::{BlobStore, RecordStore, Stores};
use crate::ServerConfig;
use fieldcap_evidence::identity::{device_id_for, DeviceKey};
use fieldcap_evidence::tlog::{sign_checkpoint, Checkpoint};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default log origin for a server key id.
pub(crate) fn default_origin(key_id: &str) -> String {
    format!("fieldcap.intake/{key_id}")
}

/// Refuses records whose custody chain was begun under another server key: replicas of one
/// deployment must share the one key (a replica with a key of its own would sign checkpoints
/// of the shared log that no device or verifier accepts, and its custody events would break
/// the chain's single signer).
pub(crate) fn check_records_key(records: &dyn RecordStore, key_id: &str) -> Result<()> {
    let Some(first) = records.first_custody()? else { return Ok(()) };
    let v: serde_json::Value = serde_json::from_slice(&first.body)?;
    let want = crate::custody::actor(key_id);
    match v.get("actor").and_then(|a| a.as_str()) {
        Some(actor) if actor == want => Ok(()),
        Some(actor) => Err(Error::Conflict(format!(
            "these records were begun by another server key ({actor}), not this data directory's ({want}): every replica needs the deployment's server.key"
        ))),
        None => Err(Error::Internal("the first server custody event names no actor".into())),
    }
}

/// Everything a request handler needs.
pub(crate) struct AppState {
    pub cfg: ServerConfig,
    pub records: Arc<dyn RecordStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub key: DeviceKey,
    pub key_id: String,
    pub origin: String,
    /// The log cache; held while a leaf is appended, so appends are serialised.
    pub log: Mutex<LogTree>,
    /// Serialises manifest commits (checks then insert).
    pub commit_lock: Mutex<()>,
    /// One lock per upload being written.
    pub upload_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the custody events of repeated refusals (see [`crate::custody::RefusalLimiter`]).
    pub refusals: Mutex<crate::custody::RefusalLimiter>,
    /// Bytes of request bodies that may be held in memory at once
    /// ([`ServerConfig::max_buffered_body_bytes`]).
    pub body_budget: Arc<tokio::sync::Semaphore>,
    /// The witnesses and what the server knows of each ([`crate::witnessing`]).
    pub witnessing: crate::witnessing::Witnessing,
    /// Counters and gauges for `GET /metrics` ([`crate::metrics`]).
    pub metrics: crate::metrics::Metrics,
    /// Running digests of live recordings being received ([`crate::endpoints::live`]).
    pub live: Mutex<crate::endpoints::live::LiveCache>,
    /// The council's escrow keys (`<data>/escrow/`, [`crate::escrow`]); `None` for a scaled
    /// deployment without a data directory (sealed items are then refused).
    pub escrow: Option<crate::escrow::Escrow>,
}

/// The lock of one clip's upload, process and deployment ([`AppState::lock_upload`]); released
/// when dropped (the deployment's first).
#[derive(Debug)]
pub struct UploadGuard {
    _shared: crate::store::SharedUploadLock,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl AppState {
    pub fn open(cfg: ServerConfig) -> Result<AppState> {
        if let Some(dir) = &cfg.data_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the data directory", e))?;
        }
        let deployment = cfg.deployment();
        let Stores { records, blobs } = deployment.open_stores()?;
        let (key, created) = deployment.server_key(records.as_ref(), true)?;
        let key_id = device_id_for(&key.verifying_key());
        let origin = cfg.log_origin.clone().unwrap_or_else(|| default_origin(&key_id));
        check_records_key(records.as_ref(), &key_id)?;
        let tree = LogTree::from_leaves(&records.leaf_hashes()?);
        let escrow = match &cfg.data_dir {
            Some(dir) => {
                let (e, created) = crate::escrow::Escrow::open(dir)?;
                if created {
                    // The public recipient only: never the secret.
                    tracing::info!(recipient = %e.keys()?.current.recipient(), "escrow key created");
                }
                Some(e)
            }
            None => None,
        };
        let budget = cfg.max_buffered_body_bytes.min(tokio::sync::Semaphore::MAX_PERMITS);
        let witnessing = crate::witnessing::Witnessing::new(
            cfg.witnesses.clone(),
            cfg.witness_client.as_ref().map(|c| c.0.clone()),
            cfg.witness_timeout,
            cfg.witness_retry,
        )?;
        let state = AppState {
            metrics: crate::metrics::Metrics::default(),
            witnessing,
            body_budget: Arc::new(tokio::sync::Semaphore::new(budget)),
            cfg,
            records,
            blobs,
            key,
            key_id,
            origin,
            log: Mutex::new(tree),
            commit_lock: Mutex::new(()),
            upload_locks: Mutex::new(HashMap::new()),
            refusals: Mutex::new(crate::custody::RefusalLimiter::default()),
            live: Mutex::new(crate::endpoints::live::LiveCache::default()),
            escrow,
        };
        if created {
            state.custody("key_created", None, serde_json::json!({ "server_key_id": state.key_id }))?;
        }
        // Make sure a checkpoint exists for the current size (also for the empty log).
        let size = state.log()?.size();
        if state.records.latest_checkpoint()?.map(|(s, _)| s) != Some(size) {
            let note = state.checkpoint_note(size)?;
            state.records.put_checkpoint(size, &note)?;
        }
        state.record_missing_custody()?;
        Ok(state)
    }

    /// A state change and its custody event are separate transactions, so a crash between them
    /// can leave an item without its `received` or `stored` event. At start-up, such events are
    /// appended, marked `recorded_late`, so the trail names every item the server holds.
    fn record_missing_custody(&self) -> Result<()> {
        let seen = self.records.custody_clip_events(&["received", "stored"])?;
        for item in self.records.items()? {
            if !seen.contains(&(item.clip_id.clone(), "received".to_string())) {
                self.custody(
                    "received",
                    Some(&item.clip_id),
                    serde_json::json!({ "manifest_sha256": item.manifest_sha256, "seq": item.seq, "kind": item.kind, "recorded_late": true }),
                )?;
            }
            if item.media.is_some() && item.state == "received" && !seen.contains(&(item.clip_id.clone(), "stored".to_string())) {
                self.custody(
                    "stored",
                    Some(&item.clip_id),
                    serde_json::json!({ "blob_sha256": item.blob_sha256, "log_index": item.log_index, "recorded_late": true }),
                )?;
            }
        }
        Ok(())
    }

    pub fn log(&self) -> Result<MutexGuard<'_, LogTree>> {
        let mut t = self.log.lock().map_err(|_| Error::Internal("log lock poisoned".into()))?;
        // Another process on the same records (`fieldcap dispose`, see crate::retention, or
        // another replica of a scaled deployment) may have appended leaves with their
        // checkpoint: catch up from the records.
        if self.records.latest_checkpoint()?.is_some_and(|(s, _)| s > t.size()) {
            self.catch_up(&mut t)?;
        }
        Ok(t)
    }

    /// Appends to the cache the leaves on record past its end.
    pub fn catch_up(&self, t: &mut LogTree) -> Result<()> {
        for h in self.records.leaf_hashes_since(t.size())? {
            t.push(h);
        }
        Ok(())
    }

    /// A freshly signed checkpoint note at `size` (Ed25519 is deterministic: same text, same note).
    pub fn checkpoint_note(&self, size: u64) -> Result<String> {
        let root = self.log()?.root(size)?;
        Ok(sign_checkpoint(&Checkpoint { origin: self.origin.clone(), size, root }, &self.origin, &self.key))
    }

    /// Signs a canonical JSON document; returns (bytes, signature).
    pub fn sign_doc<T: serde::Serialize>(&self, doc: &T) -> Result<(Vec<u8>, Vec<u8>)> {
        let body = fieldcap_evidence::canonical::to_vec_of(doc)?;
        let sig = self.key.sign(&body).to_vec();
        Ok((body, sig))
    }

    /// Appends a signed server custody event (see [`crate::custody`]).
    pub fn custody(&self, event: &str, clip_id: Option<&str>, detail: serde_json::Value) -> Result<()> {
        crate::custody::append(self.records.as_ref(), &self.key, &self.key_id, event, clip_id, detail).map(|_| ())
    }

    /// Appends the custody event of a refusal by `device_id` of kind `kind`, rate-limited (see
    /// [`crate::custody::RefusalLimiter`]); a recorded event after unrecorded ones carries their
    /// number in `unrecorded_before`.
    pub fn custody_refusal(&self, device_id: &str, kind: &str, event: &str, clip_id: Option<&str>, mut detail: serde_json::Value) -> Result<()> {
        let admitted = self.refusals.lock().map_err(|_| Error::Internal("refusal table poisoned".into()))?.admit(device_id, kind, crate::clock::now_ms());
        let Some(unrecorded) = admitted else { return Ok(()) };
        if unrecorded > 0 {
            if let Some(o) = detail.as_object_mut() {
                o.insert("unrecorded_before".into(), serde_json::json!(unrecorded));
            }
        }
        self.custody(event, clip_id, detail)
    }

    /// The escrow keys, or `sealed-item-undecryptable` if this deployment has none.
    pub fn escrow(&self) -> Result<&crate::escrow::Escrow> {
        self.escrow.as_ref().ok_or_else(|| Error::SealedUndecryptable("this server holds no escrow key (a scaled deployment started without --data DIR)".into()))
    }

    /// Takes the lock of one clip's upload (and live fragments) for as long as the answer is
    /// kept: first this process's ([`Self::upload_lock`]), then the deployment's
    /// ([`crate::store::RecordStore::try_lock_upload`], which another replica may hold: it is
    /// tried again every 25 ms). [`Error::UploadLocked`] after `wait`.
    pub async fn lock_upload(self: &Arc<Self>, clip_id: &str, wait: std::time::Duration) -> Result<UploadGuard> {
        let until = tokio::time::Instant::now() + wait;
        let local = self.upload_lock(clip_id)?;
        let local = tokio::time::timeout_at(until, local.lock_owned()).await.map_err(|_| Error::UploadLocked)?;
        loop {
            let (st, c) = (self.clone(), clip_id.to_string());
            if let Some(shared) = crate::http::blocking(move || st.records.try_lock_upload(&c)).await? {
                return Ok(UploadGuard { _shared: shared, _local: local });
            }
            if tokio::time::Instant::now() >= until {
                return Err(Error::UploadLocked);
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// [`Self::lock_upload`] for blocking code (the caller is on a blocking thread).
    pub fn lock_upload_blocking(&self, clip_id: &str, wait: std::time::Duration) -> Result<UploadGuard> {
        let until = std::time::Instant::now() + wait;
        let local = self.upload_lock(clip_id)?;
        let local = loop {
            if let Ok(g) = local.clone().try_lock_owned() {
                break g;
            }
            if std::time::Instant::now() >= until {
                return Err(Error::UploadLocked);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        loop {
            if let Some(shared) = self.records.try_lock_upload(clip_id)? {
                return Ok(UploadGuard { _shared: shared, _local: local });
            }
            if std::time::Instant::now() >= until {
                return Err(Error::UploadLocked);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// The process-local lock of one upload (see [`Self::lock_upload`], which also takes the
    /// deployment's).
    pub fn upload_lock(&self, clip_id: &str) -> Result<Arc<tokio::sync::Mutex<()>>> {
        let mut m = self.upload_locks.lock().map_err(|_| Error::Internal("upload lock table poisoned".into()))?;
        if m.len() > 10_000 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Ok(m.entry(clip_id.to_string()).or_default().clone())
    }
}
