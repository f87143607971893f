//! The witnesses a recipient trusts (`fieldcap verify --witness VKEY`, [`super::TrustAnchors`]):
//! the package checkpoint `log/checkpoint.txt` must carry valid `cosignature/v1` lines of at
//! least the threshold of them (all, by default), and none that fails to verify. Each
//! receipt's tree is proven consistent with that checkpoint (`receipts.rs`), so the cosignatures
//! cover every item: a witness cosigns a tree only if it extends every tree it cosigned before,
//! so a log shown differently to a monitor and to a court cannot carry both.

use super::{TrustAnchors, Verification};
use fieldcap_evidence::cosignature::check_cosignatures;
use fieldcap_evidence::error::{Error, Result};

/// One report line when witnesses are pinned; nothing otherwise.
pub(super) fn check(c: &mut Verification<'_>, anchors: &TrustAnchors) {
    if anchors.witnesses.is_empty() {
        return;
    }
    let threshold = anchors.witness_threshold.unwrap_or(anchors.witnesses.len());
    let r = (|| -> Result<String> {
        if threshold == 0 || threshold > anchors.witnesses.len() {
            return Err(Error::InvalidInput(format!("a witness threshold of {threshold} with {} witness keys", anchors.witnesses.len())));
        }
        let note = String::from_utf8(c.read("log/checkpoint.txt")?).map_err(|_| Error::Integrity("the checkpoint is not UTF-8".into()))?;
        let check = check_cosignatures(&note, &anchors.witnesses)?;
        check.require(threshold)?;
        let names: Vec<String> = check.valid.iter().map(|(n, ts)| format!("{n} (at {})", time_of(*ts))).collect();
        let mut detail = format!("{} of {} witnesses cosigned (threshold {threshold}): {}", check.valid.len(), anchors.witnesses.len(), names.join(", "));
        if !check.missing.is_empty() {
            detail.push_str(&format!("; no cosignature of {}", check.missing.join(", ")));
        }
        Ok(detail)
    })();
    c.res("log checkpoint cosigned by the pinned witnesses", "log/checkpoint.txt", r);
}

/// RFC 3339 of a POSIX time (seconds).
fn time_of(ts: u64) -> String {
    fieldcap_evidence::time::from_unix_secs(ts).unwrap_or_else(|| ts.to_string())
}
