//! The `Fieldcap` object (one per app process) and the `CaptureSession` of a running recording.
//!
//! Every method that touches the disk or the network **blocks: call it off the main thread**
//! (a Kotlin `Dispatchers.IO` coroutine or WorkManager worker; a Swift `Task.detached` or a
//! background queue). The objects are thread-safe: the store serialises calls itself.

use crate::error::{FieldcapError, Result};
use crate::listener::{Listeners, StateListener};
use crate::protector::{KeyProtector, ProtectorAdapter};
use crate::types::*;
use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::store::Profile;
use fieldcap_core::Store;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The device core, opened on the app's data directory.
#[derive(uniffi::Object)]
pub struct Fieldcap {
    pub(crate) store: Arc<Store>,
    pub(crate) app: Option<fieldcap_core::manifest::App>,
    pub(crate) listeners: Listeners,
    pub(crate) net: crate::net::NetState,
}

impl std::fmt::Debug for Fieldcap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fieldcap").field("device_id", &self.store.device_id()).finish_non_exhaustive()
    }
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[uniffi::export]
impl Fieldcap {
    /// Opens (creating on first start) the evidence store in `options.data_dir`, generating the
    /// device key and wrapping it with `protector` on first start, and runs crash recovery.
    /// Capture works at once, before any enrolment or network.
    ///
    /// `transport`: the HTTP client sync uses. `None` uses the core's own (rustls); a shell may
    /// pass its platform client (OkHttp, URLSession) to get the platform's proxy and certificate
    /// handling.
    ///
    /// Blocking (disk): call off the main thread.
    #[uniffi::constructor(default(transport = None))]
    pub fn open(
        options: OpenOptions,
        protector: Arc<dyn KeyProtector>,
        transport: Option<Arc<dyn crate::net::HttpTransport>>,
    ) -> Result<Arc<Fieldcap>> {
        if options.data_dir.trim().is_empty() {
            return Err(FieldcapError::invalid("data_dir is empty"));
        }
        let home = PathBuf::from(&options.data_dir);
        let mut store = Store::open(&home, Arc::new(ProtectorAdapter(protector)))?;
        // Sealed storage never turns off once on (items sealed encrypted stay so).
        let sealed = options.sealed_storage || store.profile().sealed_storage;
        let wanted = Profile {
            role: options.role.into(),
            org: options.org.clone(),
            callsign: options.callsign.clone(),
            sealed_storage: sealed,
            lock_after_secs: if sealed { options.lock_after_secs } else { None },
        };
        if store.profile() != &wanted {
            store.set_profile(wanted)?;
        }
        let report = store.open_report();
        if report.is_eventful() {
            tracing::warn!("store opened; recovery: {:?}", RecoveryReport::from(report));
        } else {
            tracing::info!("store opened (key created: {})", report.key_created);
        }
        Ok(Arc::new(Fieldcap {
            store: Arc::new(store),
            app: options.app.map(Into::into),
            listeners: Listeners::default(),
            net: crate::net::NetState::new(transport),
        }))
    }

    /// This device's identifier (32 hex characters).
    pub fn device_id(&self) -> String {
        self.store.device_id().to_string()
    }

    /// The device public key as SPKI PEM (what a verifier needs).
    pub fn public_key_pem(&self) -> String {
        self.store.public_pem()
    }

    /// The operator role in use.
    pub fn role(&self) -> Role {
        self.store.profile().role.into()
    }

    /// What crash recovery found and did when the core was opened.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.store.open_report().into()
    }

    /// Starts a recording. The returned session says where to record (`current_path`); feed it
    /// location fixes, seal segments as the recording runs, and `finish` or `abort` it.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn start_capture(self: Arc<Self>, options: CaptureOptions) -> Result<Arc<CaptureSession>> {
        let req = CaptureRequest {
            tags: options.tags,
            note: options.note,
            incident_hint: options.incident_hint,
            clock_source: options.clock_source,
            app: self.app.clone(),
            ..Default::default()
        };
        let ext = options.extension.trim_start_matches('.').to_string();
        let (recording_id, path) = self.store.start_recording(req, &ext)?;
        Ok(Arc::new(CaptureSession { core: self, recording_id, path: Mutex::new(Some(path)) }))
    }

    /// Seals a witness log entry (no media).
    ///
    /// Blocking (disk): call off the main thread.
    pub fn add_observation(&self, observation: ObservationInput) -> Result<SealedItem> {
        let item: SealedItem = self.store.observe(observation.into())?.into();
        self.listeners.item_changed(&item.clip_id, ItemState::Sealed);
        Ok(item)
    }

    /// Every item in chain order, with its queue state.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn list_items(&self) -> Result<Vec<ItemInfo>> {
        self.store.list_items()?.into_iter().map(ItemInfo::try_from).collect()
    }

    /// One item; `NotFound` for an unknown id.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn item(&self, clip_id: String) -> Result<ItemInfo> {
        self.store.item_summary(&clip_id)?.try_into()
    }

    /// Locks one sealed item to the council: from now on nobody holding this phone can open it
    /// (it still uploads). False when it was locked already; `InvalidInput` while the council's
    /// key is not on the phone yet, or for an item stored before sealed storage.
    pub fn lock_item(&self, clip_id: String) -> Result<bool> {
        Ok(self.store.lock_item(&clip_id)?)
    }

    /// The quick lock: locks every sealed item that can be locked. Never deletes anything.
    pub fn lock_all(&self) -> Result<LockSummary> {
        Ok(self.store.lock_all()?.into())
    }

    /// Up to `length` bytes of an item's media plaintext from `offset` (fewer at the end), for
    /// the review player (Android `MediaDataSource`, an `AVAssetResourceLoader` on iOS): a
    /// sealed item is decrypted in memory, nothing plaintext is written. `Locked` for a locked
    /// item; `NotFound` for an unknown or purged one.
    pub fn read_media(&self, clip_id: String, offset: u64, length: u32) -> Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let rec = self.store.item(&clip_id)?;
        if rec.summary.locked {
            return Err(fieldcap_core::Error::Locked(format!("item {} is locked to the council and cannot be opened on this phone", fieldcap_core::items::short(&clip_id))).into());
        }
        let path = rec.media_path.clone().ok_or_else(|| FieldcapError::NotFound { detail: "the item has no media on this phone".into() })?;
        let f = std::fs::File::open(&path).map_err(|e| fieldcap_core::Error::io("opening the media", e))?;
        let mut out = Vec::with_capacity(length.min(16 << 20) as usize);
        let read = |r: &mut dyn Read, out: &mut Vec<u8>| r.take(length as u64).read_to_end(out).map_err(|e| fieldcap_core::Error::io("reading the media", e));
        if rec.summary.sealed {
            let mut r = self.store.item_key(&clip_id)?.media_reader(f).map_err(fieldcap_core::Error::from)?;
            r.seek(SeekFrom::Start(offset)).map_err(|e| fieldcap_core::Error::io("seeking in the media", e))?;
            read(&mut r, &mut out)?;
        } else {
            let mut f = f;
            f.seek(SeekFrom::Start(offset)).map_err(|e| fieldcap_core::Error::io("seeking in the media", e))?;
            read(&mut f, &mut out)?;
        }
        Ok(out)
    }

    /// How many items still wait for sync (for the scheduler: nothing queued, no work).
    ///
    /// Blocking (disk): call off the main thread.
    pub fn queued_count(&self) -> Result<u64> {
        Ok(self.store.next_queued(usize::MAX >> 1)?.len() as u64)
    }

    /// The server's receipt for an item, once it has one (`None` before); `NotFound` for an
    /// unknown id.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn receipt(&self, clip_id: String) -> Result<Option<ReceiptInfo>> {
        match self.store.item(&clip_id)?.receipt {
            Some((body, sig)) => ReceiptInfo::from_stored(&body, &sig).map(Some),
            None => Ok(None),
        }
    }

    /// Alarms the core raised (e.g. the server's log was inconsistent): (kind, detail) pairs as
    /// `kind: detail` strings, oldest first. Show them; they are evidence-relevant.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn alarms(&self) -> Result<Vec<String>> {
        Ok(self.store.alarms()?.into_iter().map(|(_, kind, detail)| format!("{kind}: {detail}")).collect())
    }

    /// Sets (or with `None` clears) the listener told about item state changes and sync progress.
    pub fn set_listener(&self, listener: Option<Arc<dyn StateListener>>) {
        self.listeners.set(listener);
    }
}

/// A running recording. Thread-safe; one recorder writes `current_path` while the session lives.
///
/// Typical use: record into `current_path()`; every N seconds stop the recorder, call
/// `seal_segment()`, and restart the recorder on the `next_path` it returns; at the end stop the
/// recorder and call `finish()`. A crash or a killed app leaves the segments already sealed, and
/// the next start seals the interrupted one with the `recovered` tag.
#[derive(uniffi::Object)]
pub struct CaptureSession {
    core: Arc<Fieldcap>,
    recording_id: String,
    path: Mutex<Option<PathBuf>>,
}

impl std::fmt::Debug for CaptureSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSession").field("recording_id", &self.recording_id).finish_non_exhaustive()
    }
}

impl CaptureSession {
    fn seal(&self, is_final: bool) -> Result<SegmentSealed> {
        let mut path = self.path.lock().unwrap_or_else(|p| p.into_inner());
        if path.is_none() {
            return Err(FieldcapError::invalid("the recording is already finished"));
        }
        let (item, next) = self.core.store.seal_segment(&self.recording_id, is_final, &mut |_, _| {})?;
        *path = next.clone();
        let item: SealedItem = item.into();
        self.core.listeners.item_changed(&item.clip_id, ItemState::Sealed);
        Ok(SegmentSealed { item, next_path: next.as_deref().map(path_string) })
    }
}

#[uniffi::export]
impl CaptureSession {
    /// The recording id (shared by all its segments).
    pub fn recording_id(&self) -> String {
        self.recording_id.clone()
    }

    /// The absolute path the recorder must write the current segment into; `None` once the
    /// recording is finished or aborted.
    pub fn current_path(&self) -> Option<String> {
        self.path.lock().unwrap_or_else(|p| p.into_inner()).as_deref().map(path_string)
    }

    /// Adds a location fix; it is stored at once and goes into the manifest of the segment being
    /// recorded.
    ///
    /// Blocking (disk, short): call off the main thread.
    pub fn add_location_fix(&self, fix: LocationFix) -> Result<()> {
        Ok(self.core.store.add_fix(&self.recording_id, fix.into())?)
    }

    /// Seals the segment in `current_path` (the recorder must have closed the file) while the
    /// recording goes on; returns it and the path for the next segment.
    ///
    /// Blocking (hashes the segment): call off the main thread.
    pub fn seal_segment(&self) -> Result<SegmentSealed> {
        self.seal(false)
    }

    /// Seals the last segment (the recorder must have closed the file) and ends the recording.
    ///
    /// Blocking (hashes the segment): call off the main thread.
    pub fn finish(&self) -> Result<SealedItem> {
        Ok(self.seal(true)?.item)
    }

    /// Ends the recording without sealing the current segment. Segments already sealed stay;
    /// an unsealed file is moved to quarantine, never deleted.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn abort(&self) -> Result<()> {
        let mut path = self.path.lock().unwrap_or_else(|p| p.into_inner());
        if path.is_none() {
            return Err(FieldcapError::invalid("the recording is already finished"));
        }
        self.core.store.abort_recording(&self.recording_id)?;
        *path = None;
        Ok(())
    }
}
