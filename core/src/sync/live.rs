//! Live capture on the wire: every sealed piece of a recording still being filmed goes to the
//! server as soon as it is sealed, one request per piece.
//!
//! `PUT /v1/live/{clip_id}/{index}` carries the piece as its body, device-signed like every
//! device request, with the signed `fieldcap.fragment/1` record in `Fieldcap-Fragment-Record`
//! (and its signature in `Fieldcap-Fragment-Signature`): hash first, in the same request. The
//! server answers a signed `fieldcap.fragment-ack/1`, checked here against the pinned server key
//! and the record sent, and kept with the piece.
//!
//! Why one request per piece rather than one tus upload with a deferred length: each piece is
//! small (1–2 MB for 2 s of 1080p), must be verified and acknowledged on its own (so a phone
//! taken at any instant leaves a server-verified prefix), and a failed request is simply sent
//! again whole; a tus upload would acknowledge offsets, not signed pieces, and the server would
//! have to find the piece boundaries in a byte stream. A finished recording's remainder (pieces
//! sealed while offline) goes with its item by tus, which resumes at the prefix the server holds.
//!
//! [`LiveUploader`] runs passes of this step alone (`SyncOptions::live_only`) on a thread of its
//! own whenever a piece is sealed, so sending never delays recording: a slow link only lets the
//! queue of sealed pieces (on disk, in SQLite) grow.

use super::pass::{problem_title, Pass, Step};
use super::transport::{join_url, Transport};
use super::{CancelToken, SyncOptions, SyncSummary};
use crate::error::{Error, Result};
use crate::evidence::fragment::{FragmentAck, FragmentRecord, FRAGMENT_ACK_TYPE};
use crate::live::FragmentRow;
use crate::protocol::{self, FragmentAnswer};
use crate::store::db::live as live_rows;
use crate::store::Store;
use fieldcap_evidence::problem;
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

impl Store {
    /// The clock offset measured less than `max_age` ago, if any.
    pub(crate) fn recent_clock_offset(&self, max_age: Duration) -> Result<Option<i64>> {
        let v = super::rows::server_get(&self.conn(), "clock_offset")?.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let Some(v) = v else { return Ok(None) };
        let (Some(offset), Some(at)) = (v.get("offset_ms").and_then(|o| o.as_i64()), v.get("measured_at").and_then(|m| m.as_str())) else {
            return Ok(None);
        };
        let at = crate::time::parse(at, "measured_at")?;
        let age = chrono::Utc::now().signed_duration_since(at);
        Ok((age >= chrono::Duration::zero() && age.to_std().unwrap_or(Duration::MAX) < max_age).then_some(offset))
    }

    fn read_piece(&self, row: &FragmentRow) -> Result<Vec<u8>> {
        let rec = live_rows::recording(&self.conn(), &row.clip_id)?.ok_or_else(|| Error::NotFound(format!("live recording {}", row.clip_id)))?;
        let path = self.home.join("live").join(&row.clip_id).join(format!("media.{}", rec.media_ext));
        let mut f = std::fs::File::open(&path).map_err(|e| Error::io("opening the live recording", e))?;
        f.seek(SeekFrom::Start(row.offset)).map_err(|e| Error::io("seeking in the live recording", e))?;
        let mut buf = vec![0u8; row.bytes as usize];
        f.read_exact(&mut buf).map_err(|e| Error::io("reading a sealed piece", e))?;
        // The bytes must still be those the record names (the file is the device's own, but a
        // piece is never sent unchecked).
        // BLAKE3 alone (as the tus sender does): either digest catches a change, and the
        // server re-hashes both.
        let r = FragmentRecord::parse(&row.record)?;
        if blake3::hash(&buf).to_hex().as_str() != r.blake3 {
            return Err(Error::Integrity(format!("piece {} of a live recording no longer matches its record", row.index)));
        }
        Ok(buf)
    }
}

impl Pass<'_> {
    /// Sends every sealed, unacknowledged piece of the recordings being filmed, in order.
    pub(super) fn send_live_fragments(&mut self) -> Step<()> {
        let mut skip: HashSet<String> = HashSet::new();
        loop {
            let batch = live_rows::unacked(&self.store.conn(), 64)?;
            let batch: Vec<FragmentRow> = batch.into_iter().filter(|r| !skip.contains(&r.clip_id)).map(|r| self.store.open_fragment(r)).collect::<crate::error::Result<_>>()?;
            if batch.is_empty() {
                return Ok(());
            }
            for row in batch {
                if skip.contains(&row.clip_id) {
                    continue;
                }
                self.check_stop()?;
                if !self.send_piece(&row)? {
                    skip.insert(row.clip_id.clone());
                }
            }
        }
    }

    /// One piece; false when the server refused it (the rest of that recording waits for the
    /// item's upload).
    fn send_piece(&mut self, row: &FragmentRow) -> Step<bool> {
        let body = match self.store.read_piece(row) {
            Ok(b) => b,
            Err(e) => {
                self.store.raise_alarm("live_piece_unreadable", &format!("live recording {} piece {}: {e}", row.clip_id, row.index))?;
                self.summary.alarms += 1;
                return Ok(false);
            }
        };
        let url = join_url(&self.server.url, &protocol::fragment_path(&row.clip_id, row.index));
        let rec_b64 = protocol::b64(&row.record);
        let sig_b64 = protocol::b64(&row.sig);
        let what = format!("PUT live piece {}", row.index);
        let resp = self.send(&what, &|p: &Pass<'_>| {
            let mut req = p.signed("PUT", &url, body.clone(), Some("application/octet-stream"));
            req.headers.push((protocol::H_FRAGMENT_RECORD.into(), rec_b64.clone()));
            req.headers.push((protocol::H_FRAGMENT_SIGNATURE.into(), sig_b64.clone()));
            req
        })?;
        if resp.status != 200 && resp.status != 201 {
            let name = serde_json::from_slice::<protocol::Problem>(&resp.body).ok().and_then(|p| problem::name_of(&p.problem_type).map(String::from));
            tracing::warn!("a live piece was refused: {}", problem_title(&resp));
            if matches!(name.as_deref(), Some(problem::INVALID_FRAGMENT) | Some(problem::FRAGMENT_OUT_OF_ORDER)) {
                self.store.raise_alarm("live_piece_refused", &format!("live recording {} piece {}: {}", row.clip_id, row.index, problem_title(&resp)))?;
                self.summary.alarms += 1;
            }
            return Ok(false);
        }
        let ans: FragmentAnswer = match serde_json::from_slice(&resp.body) {
            Ok(a) => a,
            Err(_) => return Err(super::pass::Stop::Transient(format!("{what}: the answer does not parse"))),
        };
        match self.check_ack(row, &ans) {
            Ok((ack, sig)) => {
                live_rows::set_ack(&self.store.conn(), &row.clip_id, row.index, &ack, &sig, self.store.clock_ms())?;
                self.summary.fragments_acknowledged += 1;
                self.summary.bytes_uploaded += row.bytes;
                Ok(true)
            }
            Err(e) => {
                self.store.raise_alarm("bad_fragment_ack", &format!("live recording {} piece {}: {e}", row.clip_id, row.index))?;
                self.summary.alarms += 1;
                Ok(false)
            }
        }
    }

    /// The acknowledgement is signed by the pinned server key and names exactly the piece sent.
    fn check_ack(&self, row: &FragmentRow, ans: &FragmentAnswer) -> Result<(Vec<u8>, Vec<u8>)> {
        let (ack, body, sig): (FragmentAck, _, _) = ans.ack.open(&self.server.key)?;
        let rec = FragmentRecord::parse(&row.record)?;
        if ack.kind_type != FRAGMENT_ACK_TYPE
            || ack.clip_id != row.clip_id
            || ack.device_id != self.store.device_id()
            || ack.index != row.index
            || ack.record_sha256 != row.record_sha256
            || ack.total_bytes != rec.total_bytes
            || ack.server_key_id != self.server.key_id
        {
            return Err(Error::Integrity("the acknowledgement does not name the piece sent".into()));
        }
        Ok((body, sig))
    }
}

/// Sends sealed pieces while a recording runs, on a thread of its own; see the module docs.
pub struct LiveUploader {
    cancel: CancelToken,
    thread: Option<JoinHandle<LiveUploadStats>>,
}

/// What a [`LiveUploader`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LiveUploadStats {
    /// Passes run.
    pub passes: u64,
    /// Pieces acknowledged.
    pub fragments_acknowledged: u64,
    /// Passes that stopped on a transient failure (no signal, server down).
    pub transient_failures: u64,
    /// The last error, if any (no personal data).
    pub last_error: Option<String>,
}

impl LiveUploader {
    /// Starts sending. `opts` is used for each pass (its `live_only` is set; short retries suit
    /// a link that comes and goes: the next piece sealed wakes the uploader again).
    pub fn start(store: Arc<Store>, transport: Arc<dyn Transport>, mut opts: SyncOptions) -> LiveUploader {
        opts.live_only = true;
        opts.wait_for_lock = false;
        let cancel = CancelToken::new();
        let c2 = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("fieldcap-live-upload".into())
            .spawn(move || run(&store, transport.as_ref(), &opts, &c2))
            .ok();
        LiveUploader { cancel, thread }
    }

    /// Stops after the pass in flight (pieces left are sent by the next sync) and says what it did.
    pub fn stop(mut self) -> LiveUploadStats {
        self.cancel.cancel();
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for LiveUploader {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn run(store: &Store, t: &dyn Transport, opts: &SyncOptions, cancel: &CancelToken) -> LiveUploadStats {
    let mut stats = LiveUploadStats::default();
    let mut seen = 0u64;
    let mut failures = 0u32;
    loop {
        let mut progressed = false;
        if cancel.is_cancelled() {
            return stats;
        }
        let pending = live_rows::unacked(&store.conn(), 1).map(|r| !r.is_empty()).unwrap_or(false);
        if pending {
            stats.passes += 1;
            let r: Result<SyncSummary> = store.sync_once(t, opts, cancel, &mut |_| {});
            match r {
                Ok(s) => {
                    stats.fragments_acknowledged += s.fragments_acknowledged;
                    progressed = s.fragments_acknowledged > 0;
                    if let Some(e) = s.last_error {
                        stats.transient_failures += 1;
                        stats.last_error = Some(e);
                        failures += 1;
                    } else if s.busy {
                        failures += 1;
                    } else {
                        failures = 0;
                    }
                }
                Err(e) => {
                    stats.transient_failures += 1;
                    stats.last_error = Some(e.to_string());
                    failures += 1;
                }
            }
        }
        // Wait for the next piece; after failures, also back off (but a new piece still wakes
        // the loop once the backoff allows, so the queue drains as soon as the link is back).
        if failures > 0 {
            let d = super::pass::backoff(opts, failures.min(6));
            let until = std::time::Instant::now() + d;
            while std::time::Instant::now() < until && !cancel.is_cancelled() {
                std::thread::sleep(Duration::from_millis(50).min(until - std::time::Instant::now()));
            }
        }
        // Pieces may have been sealed during the pass: look again at once after progress.
        seen = store.live_signal.wait(seen, Duration::from_millis(if progressed { 0 } else { 500 }));
    }
}
