//! The optional foreign listener that keeps the UI current.

use crate::types::ItemState;
use std::sync::{Arc, RwLock};

/// What a sync pass is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    /// Waiting for another pass on the same store.
    Waiting,
    /// Measuring the clock offset.
    Clock,
    /// Sending manifests (hash first).
    Manifests,
    /// Hashing the part of a media file already on the server before resuming its upload.
    Verifying,
    /// Uploading media.
    Uploading,
    /// Fetching and verifying a receipt.
    Receipt,
    /// Finished.
    Done,
}

/// Progress of a running sync (reported often, after each chunk).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// Phase.
    pub phase: SyncPhase,
    /// Item being worked on, if any.
    pub clip_id: Option<String>,
    /// Bytes of that item's media on the server.
    pub item_bytes_done: u64,
    /// That item's media size.
    pub item_bytes_total: u64,
    /// Items finished in this pass.
    pub items_done: u32,
    /// Items this pass started with.
    pub items_total: u32,
    /// Media bytes acknowledged in this pass.
    pub bytes_uploaded: u64,
}

/// Told about changes, for the UI. Called on whichever thread made the change (a capture or
/// sync thread, never the main thread): hop to the main thread before touching views, return
/// quickly, and do not call back into Fieldcap from inside.
#[uniffi::export(foreign)]
pub trait StateListener: Send + Sync {
    /// An item was sealed or moved to another queue state.
    fn on_item_changed(&self, clip_id: String, state: ItemState);
    /// Sync made progress.
    fn on_sync_progress(&self, progress: SyncProgress);
}

/// The current listener, if any.
#[derive(Default)]
pub(crate) struct Listeners(RwLock<Option<Arc<dyn StateListener>>>);

impl Listeners {
    pub(crate) fn set(&self, l: Option<Arc<dyn StateListener>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = l;
    }
    pub(crate) fn get(&self) -> Option<Arc<dyn StateListener>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(crate) fn item_changed(&self, clip_id: &str, state: ItemState) {
        if let Some(l) = self.get() {
            l.on_item_changed(clip_id.to_string(), state);
        }
    }
    pub(crate) fn progress(&self, p: SyncProgress) {
        if let Some(l) = self.get() {
            l.on_sync_progress(p);
        }
    }
}
