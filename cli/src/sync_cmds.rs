//! `fieldcap enroll` and `fieldcap sync`: the device side of the council intake protocol.

use crate::device::open;
use fieldcap_core::sync::{CancelToken, ReqwestTransport, SyncOptions, SyncPhase, SyncProgress, SyncSummary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::Path;
use std::time::Duration;

/// `fieldcap enroll --server URL --token TOKEN`.
pub fn enroll(home: &Path, server: &str, token: &str, json: bool, witnesses: &[String], threshold: Option<usize>) -> anyhow::Result<i32> {
    let keys = witnesses
        .iter()
        .map(|w| fieldcap_evidence::cosignature::VerifierKey::parse(w).map_err(|e| anyhow::anyhow!("--witness {w}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(k) = keys.iter().find(|k| !k.is_witness()) {
        anyhow::bail!("--witness {k}: not a witness key (signature type 0x04)");
    }
    if let Some(n) = threshold {
        anyhow::ensure!(n >= 1 && n <= keys.len(), "--witness-threshold {n}: between 1 and the number of --witness keys ({})", keys.len());
    }
    let store = open(home)?;
    let net = ReqwestTransport::new()?;
    let cert = store.enroll(&net, server, token)?;
    if !keys.is_empty() {
        store.set_witnesses(&keys, threshold)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&cert)?);
    } else {
        println!(
            "enrolled device {} as {} with server key {} (certificate signed {})",
            cert.device_id, cert.role, cert.server_key_id, cert.enrolled_at
        );
    }
    Ok(0)
}

/// A progress bar for a sync pass (drawn only when stderr is a terminal).
pub struct SyncBar {
    bar: ProgressBar,
    label: String,
}

impl SyncBar {
    /// A new bar; `label` prefixes every message (e.g. a device name in the demo).
    pub fn new(label: &str) -> SyncBar {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        SyncBar { bar, label: label.to_string() }
    }

    /// Same, drawn even when stderr is not a terminal is never done: hidden bar for `--json`.
    pub fn hidden() -> SyncBar {
        SyncBar { bar: ProgressBar::hidden(), label: String::new() }
    }

    /// Feeds one progress report.
    pub fn update(&self, p: &SyncProgress) {
        let id = p.clip_id.as_deref().map(crate::demo::sid).unwrap_or("");
        let what = match p.phase {
            SyncPhase::Waiting => "waiting for another sync".to_string(),
            SyncPhase::Clock => "clock".to_string(),
            SyncPhase::Manifests => format!("manifest {id}"),
            SyncPhase::Verifying => format!("verify {id}"),
            SyncPhase::Uploading => format!("upload {id}"),
            SyncPhase::Receipt => format!("receipt {id}"),
            SyncPhase::Done => "done".to_string(),
        };
        let msg = if self.label.is_empty() { what } else { format!("{} {what}", self.label) };
        self.bar.set_message(msg);
        if p.item_bytes_total > 0 {
            self.bar.set_length(p.item_bytes_total);
            self.bar.set_position(p.item_bytes_done);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The summary as one or two readable lines.
pub fn describe(s: &SyncSummary) -> String {
    let mut out = format!(
        "{} manifest(s) committed, {} upload(s) completed ({} bytes, {} re-sent), {} receipt(s) verified, {} item(s) left",
        s.manifests_committed, s.uploads_completed, s.bytes_uploaded, s.bytes_resent, s.receipts_verified, s.remaining
    );
    if let Some(o) = s.clock_offset_ms {
        out.push_str(&format!("; clock offset {o} ms (rtt {} ms)", s.rtt_ms.unwrap_or(0)));
    }
    if s.needs_attention > 0 {
        out.push_str(&format!("\n{} item(s) need attention (see `fieldcap clips`)", s.needs_attention));
    }
    if s.alarms > 0 {
        out.push_str(&format!("\nALARM: {} alarm(s) raised (see `fieldcap clips`)", s.alarms));
    }
    if s.purged > 0 {
        out.push_str(&format!("\n{} local media copy(ies) purged after a verified receipt", s.purged));
    }
    if s.busy {
        out.push_str("\nanother sync of this device was running; nothing was done");
    }
    if s.cancelled {
        out.push_str("\ncancelled; the next sync resumes where this one stopped");
    }
    if s.budget_exhausted {
        out.push_str("\ntime budget reached; the next sync resumes where this one stopped");
    }
    if let Some(e) = &s.last_error {
        out.push_str(&format!("\nstopped on: {e}"));
    }
    out
}

/// Applies `--chunk-size` and `--max-chunk-size`: `--chunk-size` alone fixes every chunk at
/// that size (as it did before sizes adapted); with `--max-chunk-size` it is the first size;
/// `--max-chunk-size` alone keeps the default start (4 MiB, or the cap if smaller).
fn chunk_options(opts: &mut SyncOptions, chunk_size: Option<usize>, max_chunk_size: Option<usize>) {
    match (chunk_size, max_chunk_size) {
        (None, None) => {}
        (Some(fixed), None) => {
            opts.chunk_size = fixed;
            opts.max_chunk_size = fixed;
        }
        (start, Some(max)) => {
            opts.chunk_size = start.unwrap_or(opts.chunk_size.min(max));
            opts.max_chunk_size = max;
        }
    }
}

/// `fieldcap sync [--timeout SECS] [--json] [--chunk-size BYTES] [--max-chunk-size BYTES] [--purge]`.
pub fn sync(
    home: &Path,
    timeout: u64,
    json: bool,
    chunk_size: Option<usize>,
    max_chunk_size: Option<usize>,
    purge: bool,
    manifests_only: bool,
) -> anyhow::Result<i32> {
    let store = open(home)?;
    let net = ReqwestTransport::new()?;
    let mut opts = SyncOptions { budget: Duration::from_secs(timeout), purge_after_receipt: purge, manifests_only, ..Default::default() };
    chunk_options(&mut opts, chunk_size, max_chunk_size);
    let bar = if json { SyncBar::hidden() } else { SyncBar::new("") };
    let cancel = CancelToken::new();
    let summary = store.sync_once(&net, &opts, &cancel, &mut |p| bar.update(p));
    bar.finish();
    let summary = summary?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", describe(&summary));
    }
    // 0 when everything is on record; 1 when work is left or something needs attention.
    if manifests_only {
        return Ok(0);
    }
    Ok(if summary.remaining == 0 && summary.needs_attention == 0 && summary.alarms == 0 && !summary.busy { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(chunk: Option<usize>, max: Option<usize>) -> (usize, usize) {
        let mut o = SyncOptions::default();
        chunk_options(&mut o, chunk, max);
        (o.chunk_size, o.max_chunk_size)
    }

    #[test]
    fn chunk_size_alone_fixes_the_size_and_the_cap_makes_it_adapt() {
        const MIB: usize = 1 << 20;
        assert_eq!(sizes(None, None), (4 * MIB, 16 * MIB), "default: adaptive from 4 MiB to 16 MiB");
        assert_eq!(sizes(Some(65_536), None), (65_536, 65_536), "fixed, as before");
        assert_eq!(sizes(Some(MIB), Some(32 * MIB)), (MIB, 32 * MIB));
        assert_eq!(sizes(None, Some(64 * MIB)), (4 * MIB, 64 * MIB));
        assert_eq!(sizes(None, Some(2 * MIB)), (2 * MIB, 2 * MIB), "a cap below the default start");
    }
}
