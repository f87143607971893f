//! `fieldcap record FILE --live`: the phone stand-in for live capture.
//!
//! A phone's camera hands the core a fragmented MP4 piece by piece while it films; this command
//! does the same with a fragmented MP4 file (`ffmpeg … -movflags
//! frag_keyframe+empty_moov+default_base_moof`): it splits the file into its initialization
//! segment and movie fragments, hands each to the core at the pace the recording was filmed (each
//! fragment when its last frame would have been filmed; `--fast`: as fast as it can), the core
//! seals each one, and — when the device is enrolled — the live uploader sends each sealed piece at
//! once. At the end the recording is finished as one item (its manifest names the fragment chain)
//! and one sync pass puts it on record. Killed at any instant, the next start of any `fieldcap`
//! device command finishes the recording from what is on disk.

use crate::device::open;
use anyhow::Context;
use clap::Args;
use fieldcap_core::evidence::fmp4;
use fieldcap_core::seal::CaptureRequest;
use fieldcap_core::sync::live::LiveUploader;
use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions};
use serde_json::json;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `fieldcap record`.
#[derive(Args, Debug)]
pub struct RecordArgs {
    /// A fragmented MP4 file (init segment, then moof+mdat fragments).
    pub file: PathBuf,
    /// Live capture: seal (and send) the recording fragment by fragment. Required: the old
    /// stop-and-seal segment mode is `fieldcap capture` on each segment file.
    #[arg(long)]
    pub live: bool,
    /// Hand the fragments over as fast as possible instead of at the recording's own pace.
    #[arg(long)]
    pub fast: bool,
    /// Do not send while recording, even when enrolled.
    #[arg(long)]
    pub offline: bool,
    /// GPS track (.gpx or .geojson): each fix is added when the recording reaches its time.
    #[arg(long)]
    pub track: Option<PathBuf>,
    /// Tag (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Incident hint.
    #[arg(long)]
    pub incident_hint: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The pieces of a fragmented MP4 file, read one at a time (memory holds two pieces, whatever
/// the length of the recording).
struct PieceReader {
    file: std::fs::File,
    ranges: std::vec::IntoIter<std::ops::Range<u64>>,
    init: Option<fmp4::InitInfo>,
    last_sequence: Option<u32>,
}

impl PieceReader {
    fn open(path: &Path) -> anyhow::Result<(PieceReader, usize)> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("the file").to_string();
        let mut file = std::fs::File::open(path).with_context(|| format!("opening '{name}'"))?;
        let len = file.metadata()?.len();
        // Top-level box headers only (seeks; `mdat` is never read here).
        let mut heads = Vec::new();
        let mut pos = 0u64;
        while pos < len {
            anyhow::ensure!(len - pos >= 8, "'{name}': truncated box header at byte {pos}");
            let mut h = [0u8; 16];
            file.seek(SeekFrom::Start(pos))?;
            let n = (len - pos).min(16) as usize;
            file.read_exact(&mut h[..n])?;
            let size = match u32::from_be_bytes([h[0], h[1], h[2], h[3]]) {
                0 => len - pos,
                1 => {
                    anyhow::ensure!(n == 16, "'{name}': truncated 64-bit box header at byte {pos}");
                    u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]])
                }
                s => u64::from(s),
            };
            anyhow::ensure!(size >= 8 && pos + size <= len, "'{name}': box at byte {pos} is cut short or malformed");
            heads.push((pos, pos + size, [h[4], h[5], h[6], h[7]]));
            pos += size;
        }
        let mut ranges = Vec::new();
        let mut start = 0u64;
        let mut seen_init = false;
        for (s, e, t) in heads {
            let fragment_level = matches!(&t, b"styp" | b"sidx" | b"ssix" | b"prft" | b"emsg" | b"moof" | b"mfra");
            if !seen_init && fragment_level {
                anyhow::ensure!(s > 0, "'{name}' starts with a fragment, not an initialization segment");
                ranges.push(0..s);
                start = s;
                seen_init = true;
            }
            if seen_init && (&t == b"mdat" || &t == b"mfra") {
                ranges.push(start..e);
                start = e;
            }
        }
        anyhow::ensure!(seen_init, "'{name}' has no movie fragment: record fragmented MP4 (-movflags frag_keyframe+empty_moov)");
        if start < len {
            ranges.push(start..len);
        }
        let n = ranges.len();
        Ok((PieceReader { file, ranges: ranges.into_iter(), init: None, last_sequence: None }, n))
    }

    /// The next piece and its start time in the recording (seconds), if known.
    fn next_piece(&mut self) -> anyhow::Result<Option<(Vec<u8>, Option<f64>)>> {
        let Some(r) = self.ranges.next() else { return Ok(None) };
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        self.file.seek(SeekFrom::Start(r.start))?;
        self.file.read_exact(&mut buf)?;
        let t = match &self.init {
            None => {
                self.init = fmp4::check_init(&buf).ok();
                Some(0.0)
            }
            Some(init) => match fmp4::check_fragment(&buf, init, self.last_sequence) {
                Ok(f) => {
                    self.last_sequence = f.sequence_numbers.last().copied().or(self.last_sequence);
                    f.start_seconds(init)
                }
                Err(_) => None, // the core refuses it, with the reason
            },
        };
        Ok(Some((buf, t)))
    }
}

/// `fieldcap record FILE --live [--fast]`.
pub fn record(home: &Path, a: &RecordArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(a.live, "fieldcap record needs --live (segment files are sealed one by one with fieldcap capture)");
    let ext = a.file.extension().and_then(|e| e.to_str()).unwrap_or("mp4").to_ascii_lowercase();
    let (mut reader, count) = PieceReader::open(&a.file)?;
    let mut track = match &a.track {
        Some(p) => fieldcap_core::track::import_file(p)?,
        None => Vec::new(),
    };
    track.sort_by(|x, y| x.t.cmp(&y.t));
    let req = CaptureRequest { tags: a.tags.clone(), incident_hint: a.incident_hint.clone(), ..Default::default() }.validated()?;
    let store = Arc::new(open(home)?);
    let enrolled = store.enrollment()?.is_some();
    let uploader = if enrolled && !a.offline {
        let net: Arc<dyn fieldcap_core::sync::Transport> = Arc::new(ReqwestTransport::new()?);
        let opts = SyncOptions { max_retries: 2, backoff_max: Duration::from_secs(5), request_timeout: Duration::from_secs(30), ..Default::default() };
        Some(LiveUploader::start(store.clone(), net, opts))
    } else {
        None
    };
    let clip_id = store.begin_live(req, &ext)?;
    eprintln!("recording {clip_id} live: {count} piece(s)");
    let started = Instant::now();
    // The pace: a fragment is handed over when the next one starts (its last frame filmed).
    let mut fixes = track.into_iter().peekable();
    let first_fix_t = fixes.peek().and_then(|f| fieldcap_core::time::parse(&f.t, "fix").ok());
    let mut next = reader.next_piece()?;
    let mut i = 0usize;
    while let Some((piece, _)) = next.take() {
        // The piece after this one, read ahead for its start time.
        next = reader.next_piece()?;
        if !a.fast {
            if let Some(due) = next.as_ref().and_then(|p| p.1) {
                let due = Duration::from_secs_f64(due.max(0.0));
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        // Location fixes up to this point of the recording.
        let at = started.elapsed();
        while let Some(f) = fixes.peek() {
            let ft = fieldcap_core::time::parse(&f.t, "fix").ok();
            let rel = match (ft, first_fix_t) {
                (Some(t), Some(t0)) => (t - t0).to_std().unwrap_or_default(),
                _ => Duration::ZERO,
            };
            if !a.fast && rel > at {
                break;
            }
            let f = fixes.next().context("a fix")?;
            store.add_live_fix(&clip_id, f)?;
        }
        let sealed = store.append_live(&clip_id, &piece).with_context(|| format!("piece {i} of the recording"))?;
        if !a.json {
            eprintln!("sealed piece {} ({} bytes, {} in all)", sealed.index, sealed.bytes, sealed.total_bytes);
        }
        i += 1;
    }
    let item = store.finish_live(&clip_id)?;
    let stats = uploader.map(|u| u.stop());
    let mut summary = None;
    if enrolled && !a.offline {
        let net = ReqwestTransport::new()?;
        let opts = SyncOptions { budget: Duration::from_secs(120), ..Default::default() };
        summary = Some(store.sync_once(&net, &opts, &CancelToken::new(), &mut |_| {})?);
    }
    let status = store.live_recordings()?.into_iter().find(|s| s.clip_id == clip_id);
    let lags = lags(&store, &clip_id, status.as_ref().map(|s| s.fragments).unwrap_or(0))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "item": item,
                "fragments": status.as_ref().map(|s| s.fragments),
                "acknowledged_live": status.as_ref().map(|s| s.acknowledged),
                "ack_lag_ms": lags,
                "uploader": stats,
                "sync": summary,
            }))?
        );
    } else {
        println!(
            "sealed {} (seq {}): {} piece(s), {} acknowledged while recording",
            item.clip_id,
            item.seq,
            status.as_ref().map(|s| s.fragments).unwrap_or(0),
            status.as_ref().map(|s| s.acknowledged).unwrap_or(0)
        );
        if let Some(s) = summary {
            println!("sync: {} receipt(s) verified, {} item(s) left", s.receipts_verified, s.remaining);
        }
    }
    Ok(0)
}

/// Capture-to-acknowledgement lag of each acknowledged piece, ms.
fn lags(store: &fieldcap_core::Store, clip_id: &str, n: u64) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    for i in 0..n {
        let f = store.live_fragment(clip_id, i)?;
        if let Some(a) = f.acked_at_ms {
            out.push(a - f.sealed_at_ms);
        }
    }
    Ok(out)
}
