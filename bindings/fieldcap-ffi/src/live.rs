//! Live capture: a recording sealed piece by piece while the camera runs, and sent while it is
//! being filmed.
//!
//! The shell records one fragmented MP4 without ever stopping the camera (iOS `AVAssetWriter`
//! with its segment delegate, Android Media3 `FragmentedMp4Muxer`) and hands the core each piece
//! as it is produced: first the initialization segment, then one media fragment (`moof` + `mdat`)
//! every couple of seconds, through [`LiveCapture::append_piece`]. Each piece is checked, appended
//! durably, hashed and signed at once; a truncated piece, a piece out of order or one from another
//! recording is refused with `InvalidInput` and nothing is appended (the recording goes on with
//! the next good piece). [`LiveCapture::finish`] seals the whole file as one ordinary item.
//!
//! [`Fieldcap::start_live_upload`] starts sending each sealed piece as soon as it is sealed, on
//! a thread of the core's own, through the transport the `Fieldcap` object uses for sync; the
//! returned [`LiveUploadHandle`] stops it.
//!
//! **Threading:** every method here blocks (disk, and the signature of each piece): call it off
//! the main thread. Call `append_piece` **in order, from one thread** (a single background
//! dispatcher or serial queue): the order of the calls is the order of the pieces in the file.

use crate::api::Fieldcap;
use crate::error::{FieldcapError, Result};
use crate::types::*;
use fieldcap_core::live as core_live;
use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::sync::live::{LiveUploadStats as CoreLiveUploadStats, LiveUploader};
use fieldcap_core::sync::SyncOptions;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One piece sealed by [`LiveCapture::append_piece`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SealedFragment {
    /// The recording's item id (the finished item keeps it).
    pub clip_id: String,
    /// 0 for the initialization segment, then 1, 2, … for the media fragments.
    pub index: u64,
    /// First byte of the piece in the recording file.
    pub offset: u64,
    /// Length of the piece.
    pub bytes: u64,
    /// Length of the recording so far.
    pub total_bytes: u64,
    /// Hex SHA-256 of the piece's signed `fieldcap.fragment/1` record.
    pub record_sha256: String,
}

impl From<core_live::SealedFragment> for SealedFragment {
    fn from(s: core_live::SealedFragment) -> Self {
        SealedFragment { clip_id: s.clip_id, index: s.index, offset: s.offset, bytes: s.bytes, total_bytes: s.total_bytes, record_sha256: s.record_sha256 }
    }
}

/// Where a live recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LiveRecordingState {
    /// Being filmed: pieces are still being sealed.
    Recording,
    /// Finished and sealed as an item (see `Fieldcap.item(clip_id)`).
    Finished,
    /// Aborted: the pieces already sealed (and sent) stay on record; no item was sealed.
    Aborted,
    /// A state this version of the bindings does not know.
    Unknown,
}

impl LiveRecordingState {
    fn parse(s: &str) -> LiveRecordingState {
        match s {
            "recording" => LiveRecordingState::Recording,
            "finished" => LiveRecordingState::Finished,
            "aborted" => LiveRecordingState::Aborted,
            _ => LiveRecordingState::Unknown,
        }
    }
}

/// A live recording as listed by [`Fieldcap::live_recordings`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LiveStatus {
    /// The recording's item id.
    pub clip_id: String,
    /// Its state.
    pub state: LiveRecordingState,
    /// Pieces sealed (the initialization segment included).
    pub fragments: u64,
    /// Bytes sealed.
    pub sealed_bytes: u64,
    /// Pieces the server has acknowledged with a signed acknowledgement. (Once a recording is
    /// finished, what was not yet sent piece by piece goes up with the item's ordinary upload and
    /// its receipt covers it; this count then stays below `fragments`.)
    pub acknowledged: u64,
}

impl From<core_live::LiveStatus> for LiveStatus {
    fn from(s: core_live::LiveStatus) -> Self {
        LiveStatus {
            state: LiveRecordingState::parse(&s.state),
            clip_id: s.clip_id,
            fragments: s.fragments,
            sealed_bytes: s.sealed_bytes,
            acknowledged: s.acknowledged,
        }
    }
}

/// One sealed piece as stored on the device: its signed record and, once it came, the server's
/// signed acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FragmentInfo {
    /// The recording.
    pub clip_id: String,
    /// Index of the piece.
    pub index: u64,
    /// First byte of the piece in the recording file.
    pub offset: u64,
    /// Length of the piece.
    pub bytes: u64,
    /// Hex SHA-256 of the record.
    pub record_sha256: String,
    /// The exact signed `fieldcap.fragment/1` record (canonical JSON), as text.
    pub record_json: String,
    /// Hex of the device's raw Ed25519 signature over `record_json`.
    pub signature_hex: String,
    /// When the piece was sealed (device clock).
    pub sealed_at: SystemTime,
    /// The server's signed acknowledgement (canonical JSON), once it came.
    pub ack_json: Option<String>,
    /// Hex of the server's signature over `ack_json`.
    pub ack_signature_hex: Option<String>,
    /// When the acknowledgement arrived (device clock).
    pub acked_at: Option<SystemTime>,
}

fn from_unix_ms(ms: i64) -> SystemTime {
    match u64::try_from(ms) {
        Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH,
    }
}

impl From<core_live::FragmentRow> for FragmentInfo {
    fn from(r: core_live::FragmentRow) -> Self {
        FragmentInfo {
            record_json: String::from_utf8_lossy(&r.record).into_owned(),
            signature_hex: hex_encode(&r.sig),
            sealed_at: from_unix_ms(r.sealed_at_ms),
            ack_json: r.ack.as_deref().map(|a| String::from_utf8_lossy(a).into_owned()),
            ack_signature_hex: r.ack_sig.as_deref().map(hex_encode),
            acked_at: r.acked_at_ms.map(from_unix_ms),
            clip_id: r.clip_id,
            index: r.index,
            offset: r.offset,
            bytes: r.bytes,
            record_sha256: r.record_sha256,
        }
    }
}

/// What a live upload did between `start_live_upload` and `stop`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LiveUploadStats {
    /// Live passes run (one or more per sealed piece).
    pub passes: u64,
    /// Pieces the server acknowledged.
    pub fragments_acknowledged: u64,
    /// Passes that stopped on a transient failure (no signal, server down, a piece refused).
    pub transient_failures: u64,
    /// The last such failure, if any (names what failed, never a place or a key).
    pub last_error: Option<String>,
}

impl From<CoreLiveUploadStats> for LiveUploadStats {
    fn from(s: CoreLiveUploadStats) -> Self {
        LiveUploadStats {
            passes: s.passes,
            fragments_acknowledged: s.fragments_acknowledged,
            transient_failures: s.transient_failures,
            last_error: s.last_error,
        }
    }
}

#[uniffi::export]
impl Fieldcap {
    /// Starts a live recording of a fragmented MP4 (`extension`: `mp4`, `m4a` or `mov`; the
    /// extension in `options` is not used). Hand it the initialization segment and then each
    /// media fragment as the recorder produces them ([`LiveCapture::append_piece`]), and `finish`
    /// or `abort` it. A killed app leaves every piece already sealed; the next start finishes the
    /// recording from what is on disk, tagged `recovered`.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn begin_live_capture(self: Arc<Self>, options: CaptureOptions, extension: String) -> Result<Arc<LiveCapture>> {
        let req = CaptureRequest {
            tags: options.tags,
            note: options.note,
            incident_hint: options.incident_hint,
            clock_source: options.clock_source,
            app: self.app.clone(),
            ..Default::default()
        };
        let ext = extension.trim_start_matches('.').to_ascii_lowercase();
        let clip_id = self.store.begin_live(req, &ext)?;
        tracing::info!("live recording started");
        Ok(Arc::new(LiveCapture { core: self, clip_id, open: Mutex::new(true) }))
    }

    /// The live recordings on this device, newest first, with how many pieces are sealed and
    /// acknowledged.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn live_recordings(&self) -> Result<Vec<LiveStatus>> {
        Ok(self.store.live_recordings()?.into_iter().map(Into::into).collect())
    }

    /// One sealed piece of a live recording: its signed record and the server's acknowledgement,
    /// if it came. `NotFound` for an unknown recording or index.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn live_fragment(&self, clip_id: String, index: u64) -> Result<FragmentInfo> {
        Ok(self.store.live_fragment(&clip_id, index)?.into())
    }

    /// Starts sending each sealed piece of the recordings being filmed as soon as it is sealed,
    /// on a thread of the core's own, through the same transport as `sync_once` (the platform
    /// `HttpTransport` given to `open`, or the core's own). Start it when a recording starts and
    /// the device is online; `stop()` it when the recording ends, then run an ordinary
    /// `sync_once` pass (which sends the finished item and fetches its receipt). A slow or absent
    /// link never delays `append_piece`: unsent pieces wait on disk and go when the link is back.
    /// Throws `NotEnrolled` before `enroll`.
    ///
    /// Blocking (disk, short; it does not wait for the network): call off the main thread.
    pub fn start_live_upload(&self) -> Result<Arc<LiveUploadHandle>> {
        if self.store.enrollment()?.is_none() {
            return Err(FieldcapError::NotEnrolled { detail: "enrol the device before starting a live upload".into() });
        }
        let transport = self.net.shared_transport()?;
        let opts = SyncOptions {
            max_retries: 2,
            backoff_max: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let uploader = LiveUploader::start(self.store.clone(), transport, opts);
        tracing::info!("live upload started");
        Ok(Arc::new(LiveUploadHandle { uploader: Mutex::new(Some(uploader)) }))
    }
}

/// A running live recording. Thread-safe, but feed it from one thread: see the module docs.
///
/// Typical use (one background dispatcher / serial queue): `append_piece(init)`, then
/// `append_piece(fragment)` for each fragment the muxer emits, `add_fix` whenever the platform
/// delivers a location, `finish()` when the recorder stops.
#[derive(uniffi::Object)]
pub struct LiveCapture {
    core: Arc<Fieldcap>,
    clip_id: String,
    open: Mutex<bool>,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture").field("clip_id", &self.clip_id).finish_non_exhaustive()
    }
}

impl LiveCapture {
    fn ensure_open(&self) -> Result<std::sync::MutexGuard<'_, bool>> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if !*open {
            return Err(FieldcapError::invalid("the live recording is already finished"));
        }
        Ok(open)
    }
}

#[uniffi::export]
impl LiveCapture {
    /// The recording's item id (the finished item keeps it).
    pub fn clip_id(&self) -> String {
        self.clip_id.clone()
    }

    /// Whether the recording still takes pieces (false after `finish` or `abort`).
    pub fn is_open(&self) -> bool {
        *self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals the next piece: the first call takes the initialization segment (`ftyp` + `moov`),
    /// each later call one media fragment (`moof` + `mdat`, optionally after a `styp`/`sidx`, or
    /// a trailing `mfra`). The piece is checked, appended durably, hashed and signed before this
    /// returns. A truncated piece, one out of order or from another recording throws
    /// `InvalidInput` with nothing appended: the recording goes on, and the next good piece is
    /// taken.
    ///
    /// Call in order from one thread. Blocking (disk and a signature): call off the main thread.
    pub fn append_piece(&self, bytes: Vec<u8>) -> Result<SealedFragment> {
        let _open = self.ensure_open()?;
        Ok(self.core.store.append_live(&self.clip_id, &bytes)?.into())
    }

    /// Adds a location fix: the next piece's record carries the latest fix, and the finished
    /// manifest the whole track.
    ///
    /// Blocking (disk, short): call off the main thread.
    pub fn add_fix(&self, fix: LocationFix) -> Result<()> {
        let _open = self.ensure_open()?;
        Ok(self.core.store.add_live_fix(&self.clip_id, fix.into())?)
    }

    /// Ends the recording: seals the whole file as one item whose manifest names the head of its
    /// fragment chain, and queues it for sync. Needs at least one media fragment after the
    /// initialization segment (otherwise `InvalidInput`: abort instead).
    ///
    /// Blocking (disk): call off the main thread.
    pub fn finish(&self) -> Result<SealedItem> {
        let mut open = self.ensure_open()?;
        // Checked here first: the core forgets a running recording it refuses to finish, and
        // this one must stay open so that it can still take pieces or be aborted.
        let sealed = self.core.store.live_recordings()?.into_iter().find(|s| s.clip_id == self.clip_id).map_or(0, |s| s.fragments);
        if sealed < 2 {
            return Err(FieldcapError::invalid("the recording has no media fragment yet (only pieces after the initialization segment are media); abort it instead"));
        }
        let item: SealedItem = self.core.store.finish_live(&self.clip_id)?.into();
        *open = false;
        self.core.listeners.item_changed(&item.clip_id, ItemState::Sealed);
        Ok(item)
    }

    /// Abandons the recording without sealing an item. The pieces already sealed (and sent) stay
    /// on record; the file is moved to quarantine, never deleted.
    ///
    /// Blocking (disk): call off the main thread.
    pub fn abort(&self) -> Result<()> {
        let mut open = self.ensure_open()?;
        self.core.store.abort_live(&self.clip_id)?;
        *open = false;
        Ok(())
    }
}

/// A running live upload (from [`Fieldcap::start_live_upload`]). Dropping it stops the upload
/// too, without waiting.
#[derive(uniffi::Object)]
pub struct LiveUploadHandle {
    uploader: Mutex<Option<LiveUploader>>,
}

impl std::fmt::Debug for LiveUploadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveUploadHandle").field("running", &self.is_running()).finish()
    }
}

#[uniffi::export]
impl LiveUploadHandle {
    /// Whether the upload is still running (false after `stop`).
    pub fn is_running(&self) -> bool {
        self.uploader.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Stops the upload after the request in flight and says what it did. Pieces not yet sent
    /// are sent by the next `sync_once`. A second call throws `InvalidInput`.
    ///
    /// Blocking (up to the request in flight): call off the main thread.
    pub fn stop(&self) -> Result<LiveUploadStats> {
        let uploader = self.uploader.lock().unwrap_or_else(|p| p.into_inner()).take();
        let uploader = uploader.ok_or_else(|| FieldcapError::invalid("the live upload is already stopped"))?;
        let stats: LiveUploadStats = uploader.stop().into();
        tracing::info!("live upload stopped: {} piece(s) acknowledged in {} pass(es)", stats.fragments_acknowledged, stats.passes);
        Ok(stats)
    }
}
