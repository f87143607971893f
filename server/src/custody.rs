//! Server custody events: the same `fieldcap.custody/1` format as the device's
//! ([`fieldcap_evidence::custody`]), with actor `server:<server_key_id>`, hash-chained and signed by
//! the server key.
//!
//! Events the server records:
//!
//! | event | when |
//! |---|---|
//! | `key_created` | the server key was generated (first start) |
//! | `enrolled` | a device was enrolled (detail: device_id, role) |
//! | `received` | a manifest was committed (detail: manifest_sha256, seq) |
//! | `seq_gap` | a device's seq jumped (detail: expected, got); items may arrive out of order |
//! | `conflict` | a different manifest for a known clip id or (device, seq), or a broken `prev` chain |
//! | `refused` | an upload's bytes did not match the signed manifest (detail: reason) |
//! | `verified` | the received media matched length, SHA-256 and BLAKE3 |
//! | `stored` | the original was stored and the log leaf appended (detail: blob, log_index) |
//! | `terminated` | a tus upload was terminated (partial bytes discarded) |
//!
//! Other tools that open the data directory (package export) append with [`append`] too; the
//! chain position is taken inside the database transaction, so concurrent writers stay in order.
//!
//! ```
//! use fieldcap_server::store::{RecordStore, SqliteRecordStore};
//! let dir = tempfile::tempdir().unwrap();
//! let s = SqliteRecordStore::open(&dir.path().join("r.sqlite")).unwrap();
//! let key = fieldcap_evidence::identity::DeviceKey::generate();
//! let id = fieldcap_evidence::identity::device_id_for(&key.verifying_key());
//! fieldcap_server::custody::append(&s, &key, &id, "exported", None, serde_json::json!({})).unwrap();
//! fieldcap_server::custody::append(&s, &key, &id, "exported", None, serde_json::json!({})).unwrap();
//! fieldcap_evidence::custody::verify_chain(&s.custody(None).unwrap(), &key.verifying_key()).unwrap();
//! ```

use crate::error::Result;
use crate::store::RecordStore;
use fieldcap_evidence::custody::{body, CustodyEvent};
use fieldcap_evidence::identity::DeviceKey;

/// The actor name of a server key id.
pub fn actor(server_key_id: &str) -> String {
    format!("server:{server_key_id}")
}

/// Appends one signed, chained event.
pub fn append(
    records: &dyn RecordStore,
    key: &DeviceKey,
    server_key_id: &str,
    event: &str,
    clip_id: Option<&str>,
    detail: serde_json::Value,
) -> Result<CustodyEvent> {
    // No floating point in a detail (FORMATS.md §5), on the server's side either.
    fieldcap_evidence::custody::check_detail(&detail)?;
    let at = fieldcap_evidence::time::now();
    let who = actor(server_key_id);
    let sign = |seq: u64, prev: Option<&str>| {
        let b = body(&who, seq, &at, event, clip_id, detail.clone(), prev);
        let sig = key.sign(&b).to_vec();
        (b, sig)
    };
    records.append_custody(clip_id, event, &at, &sign)
}

/// Refusals of one kind by one device are recorded in custody at most once per this window.
pub const REFUSAL_WINDOW_MS: i64 = 60_000;

/// Bounds the custody events that refusals append (a hostile device could otherwise grow the
/// log without bound by sending conflicting submissions): per device and kind of refusal, the
/// first refusal in a [`REFUSAL_WINDOW_MS`] window is recorded; later ones in that window are only
/// counted, and the count is carried by the next recorded one (`unrecorded_before`). Counts
/// live in memory (a restart forgets them); every refusal is still answered (409).
#[derive(Debug, Default)]
pub(crate) struct RefusalLimiter {
    windows: std::collections::HashMap<(String, String), (i64, u64)>,
}

impl RefusalLimiter {
    /// At `now_ms`: `Some(unrecorded)` if this refusal is to be recorded (with the number of
    /// refusals of its kind not recorded since the last recorded one), `None` if only counted.
    pub(crate) fn admit(&mut self, device_id: &str, kind: &str, now_ms: i64) -> Option<u64> {
        if self.windows.len() > 10_000 {
            self.windows.retain(|_, (start, _)| now_ms.saturating_sub(*start) < REFUSAL_WINDOW_MS);
        }
        let key = (device_id.to_string(), kind.to_string());
        match self.windows.get_mut(&key) {
            Some((start, unrecorded)) if now_ms.saturating_sub(*start) < REFUSAL_WINDOW_MS && now_ms >= *start => {
                *unrecorded += 1;
                None
            }
            Some(w) => {
                let n = w.1;
                *w = (now_ms, 0);
                Some(n)
            }
            None => {
                self.windows.insert(key, (now_ms, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_recorded_refusal_per_device_kind_and_window_carrying_the_count() {
        let mut l = RefusalLimiter::default();
        assert_eq!(l.admit("d1", "conflict:clip", 0), Some(0));
        for t in 1..200 {
            assert_eq!(l.admit("d1", "conflict:clip", t), None);
        }
        // Another kind, another device: their own windows.
        assert_eq!(l.admit("d1", "conflict:seq", 5), Some(0));
        assert_eq!(l.admit("d2", "conflict:clip", 5), Some(0));
        // The next window records again, with the count of those not recorded.
        assert_eq!(l.admit("d1", "conflict:clip", REFUSAL_WINDOW_MS), Some(199));
        assert_eq!(l.admit("d1", "conflict:clip", REFUSAL_WINDOW_MS + 1), None);
        // A clock set back starts a new window rather than silencing refusals.
        assert_eq!(l.admit("d1", "conflict:clip", 10), Some(1));
    }
}
