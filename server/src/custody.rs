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
