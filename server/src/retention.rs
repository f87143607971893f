//! Retention and legal hold.
//!
//! * **Policy per category**: a category is an item kind (`video`, `audio`, `photo`,
//!   `observation`), a tag (`use_of_force`, `minor_present`, …) or `default`. An item is kept for
//!   the *longest* period of the categories it falls in (its kind, each of its tags, `default`),
//!   counted from when the server received it (or committed its manifest, if the media never
//!   came). Without a configured `default` the period is [`DEFAULT_RETENTION_DAYS`].
//! * **Legal hold**: `hold` (with a reason) stops disposal of an item until `release`.
//! * **Referral**: an item exported in a `full` package (to a prosecutor, police or court) is
//!   *referred* and is never disposed by retention (`release`-profile public packages do not refer).
//! * **Disposal** removes the stored media original (if no other live item shares its bytes) and
//!   keeps the manifest, signatures, receipt and custody records, so what existed stays provable.
//!   Each disposal is a signed server custody event `disposed` and a transparency-log leaf
//!   `fieldcap.log-disposal/1` (docs/FORMATS.md), appended with a freshly signed checkpoint. A held
//!   or referred item is never disposed: the check is made again inside the same transaction
//!   that records the disposal.
//!
//! Every change (policy set, hold, release, disposal) is a signed server custody event. Reasons
//! are written by council staff and go into custody as they are given.
//!
//! ```no_run
//! use fieldcap_server::retention;
//! let data = std::path::Path::new("/srv/fieldcap");
//! retention::set_policy(data, "default", 730)?;
//! retention::hold(data, "0190a0b2-…", "litigation hold, case 25-1234")?;
//! let plan = retention::dispose(data, chrono::Utc::now(), true)?; // dry run
//! println!("{} items would be disposed", plan.disposed.len());
//! # Ok::<(), fieldcap_server::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::log::LogTree;
use crate::records::Records;
use chrono::{DateTime, Utc};
use fieldcap_evidence::tlog::{leaf_hash, parse_note, sign_checkpoint, Checkpoint};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Retention period when no `default` category is configured, days.
pub const DEFAULT_RETENTION_DAYS: i64 = 730;
/// Type string of a disposal log leaf.
pub const DISPOSAL_LEAF_TYPE: &str = "fieldcap.log-disposal/1";

fn conn(data_dir: &Path) -> Result<Connection> {
    crate::store::sqlite::schema::open(&data_dir.join("records.sqlite"))
}

fn valid_category(c: &str) -> bool {
    c == "default" || matches!(c, "video" | "audio" | "photo" | "observation") || fieldcap_evidence::manifest::KNOWN_TAGS.contains(&c)
}

/// The configured policy: category → days.
pub fn policy(data_dir: &Path) -> Result<BTreeMap<String, i64>> {
    let c = conn(data_dir)?;
    let mut st = c.prepare("SELECT category, days FROM retention_policy ORDER BY category")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?.collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
    Ok(rows)
}

/// Sets the retention of a category (kind, tag or `default`), as a signed custody event.
pub fn set_policy(data_dir: &Path, category: &str, days: i64) -> Result<()> {
    if !valid_category(category) {
        return Err(Error::BadRequest(format!("unknown retention category '{category}' (a kind, a tag or default)")));
    }
    if !(0..=36_500).contains(&days) {
        return Err(Error::BadRequest("retention days must be between 0 and 36500".into()));
    }
    let r = Records::open(data_dir)?;
    let at = fieldcap_evidence::time::now();
    conn(data_dir)?.execute(
        "INSERT INTO retention_policy (category, days, set_at) VALUES (?1, ?2, ?3) ON CONFLICT(category) DO UPDATE SET days = ?2, set_at = ?3",
        params![category, days, at],
    )?;
    r.append_custody("retention_policy_set", None, serde_json::json!({ "category": category, "days": days }))?;
    Ok(())
}

fn require_item(r: &Records, clip_id: &str) -> Result<crate::records::Item> {
    r.item(clip_id)?.ok_or_else(|| Error::NotFound("no item with that id".into()))
}

/// Places a legal hold on an item (signed custody event `held`).
pub fn hold(data_dir: &Path, clip_id: &str, reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::BadRequest("a hold needs a reason".into()));
    }
    let r = Records::open(data_dir)?;
    require_item(&r, clip_id)?;
    conn(data_dir)?.execute(
        "INSERT INTO holds (clip_id, reason, held_at) VALUES (?1, ?2, ?3)",
        params![clip_id, reason, fieldcap_evidence::time::now()],
    )?;
    r.append_custody("held", Some(clip_id), serde_json::json!({ "reason": reason }))?;
    Ok(())
}

/// Releases every active hold of an item (signed custody event `hold_released`). Returns how
/// many holds were released.
pub fn release(data_dir: &Path, clip_id: &str, reason: &str) -> Result<usize> {
    let r = Records::open(data_dir)?;
    require_item(&r, clip_id)?;
    let n = conn(data_dir)?.execute(
        "UPDATE holds SET released_at = ?2, release_reason = ?3 WHERE clip_id = ?1 AND released_at IS NULL",
        params![clip_id, fieldcap_evidence::time::now(), reason],
    )?;
    if n > 0 {
        r.append_custody("hold_released", Some(clip_id), serde_json::json!({ "holds": n as i64, "reason": reason }))?;
    }
    Ok(n)
}

/// Records that items were referred (exported in a full package) — called by package export.
pub fn record_referrals(data_dir: &Path, clip_ids: &[String], package_id: &str, recipient: &str) -> Result<()> {
    let mut c = conn(data_dir)?;
    let tx = c.transaction()?;
    let at = fieldcap_evidence::time::now();
    for id in clip_ids {
        tx.execute(
            "INSERT OR IGNORE INTO referrals (clip_id, package_id, recipient, at) VALUES (?1, ?2, ?3, ?4)",
            params![id, package_id, recipient, at],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// True if the item has been disposed of.
pub fn is_disposed(data_dir: &Path, clip_id: &str) -> Result<bool> {
    Ok(conn(data_dir)?.query_row("SELECT 1 FROM disposals WHERE clip_id = ?1", [clip_id], |_| Ok(())).optional()?.is_some())
}

/// Retention state of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemRetention {
    /// Item id.
    pub clip_id: String,
    /// Kind.
    pub kind: String,
    /// The category that sets the period (longest wins).
    pub category: String,
    /// Retention period, days.
    pub days: i64,
    /// When the period started (received or committed).
    pub since: String,
    /// When it ends.
    pub until: String,
    /// Active legal holds.
    pub holds: i64,
    /// Packages it was referred in.
    pub referrals: i64,
    /// When disposed, if it was.
    pub disposed_at: Option<String>,
    /// Past retention, not held, not referred, not yet disposed.
    pub due: bool,
}

fn item_tags(item: &crate::records::Item) -> Vec<String> {
    fieldcap_evidence::manifest::Manifest::parse(&item.manifest).map(|m| m.tags).unwrap_or_default()
}

fn state_of(c: &Connection, item: &crate::records::Item, pol: &BTreeMap<String, i64>, now: DateTime<Utc>) -> Result<ItemRetention> {
    let mut cats = vec!["default".to_string(), item.kind.clone()];
    cats.extend(item_tags(item));
    let (category, days) = cats
        .iter()
        .map(|c| (c.clone(), pol.get(c).copied().unwrap_or(if c == "default" { DEFAULT_RETENTION_DAYS } else { -1 })))
        .max_by_key(|(_, d)| *d)
        .unwrap_or(("default".into(), DEFAULT_RETENTION_DAYS));
    let since = item.received_at.clone().unwrap_or_else(|| item.committed_at.clone());
    let start = fieldcap_evidence::time::parse(&since, "received_at")?;
    let until = start + chrono::Duration::days(days);
    let holds: i64 = c.query_row("SELECT COUNT(*) FROM holds WHERE clip_id = ?1 AND released_at IS NULL", [&item.clip_id], |r| r.get(0))?;
    let referrals: i64 = c.query_row("SELECT COUNT(*) FROM referrals WHERE clip_id = ?1", [&item.clip_id], |r| r.get(0))?;
    let disposed_at: Option<String> = c.query_row("SELECT disposed_at FROM disposals WHERE clip_id = ?1", [&item.clip_id], |r| r.get(0)).optional()?;
    Ok(ItemRetention {
        clip_id: item.clip_id.clone(),
        kind: item.kind.clone(),
        category,
        days,
        since,
        until: fieldcap_evidence::time::format(until),
        holds,
        referrals,
        due: until <= now && holds == 0 && referrals == 0 && disposed_at.is_none(),
        disposed_at,
    })
}

/// Retention state of every item at `now`.
pub fn status(data_dir: &Path, now: DateTime<Utc>) -> Result<Vec<ItemRetention>> {
    let r = Records::open(data_dir)?;
    let c = conn(data_dir)?;
    let pol = policy(data_dir)?;
    r.items()?.iter().map(|i| state_of(&c, i, &pol, now)).collect()
}

/// What a disposal run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DisposalReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Items disposed (or that would be).
    pub disposed: Vec<String>,
    /// Items past retention kept, with why (`held`, `referred`).
    pub kept: Vec<(String, String)>,
}

/// Disposes every item past retention at `now` that is not held, referred or already disposed.
pub fn dispose(data_dir: &Path, now: DateTime<Utc>, dry_run: bool) -> Result<DisposalReport> {
    let r = Records::open(data_dir)?;
    if !dry_run {
        finish_interrupted_disposals(&r)?;
    }
    let mut out = DisposalReport { dry_run, ..Default::default() };
    for st in status(data_dir, now)? {
        if st.disposed_at.is_some() || fieldcap_evidence::time::parse(&st.until, "until")? > now {
            continue;
        }
        if st.holds > 0 {
            out.kept.push((st.clip_id, "held".into()));
            continue;
        }
        if st.referrals > 0 {
            out.kept.push((st.clip_id, "referred".into()));
            continue;
        }
        if !dry_run {
            if let Some(reason) = dispose_one(&r, &st)? {
                out.kept.push((st.clip_id, reason));
                continue;
            }
        }
        out.disposed.push(st.clip_id);
    }
    Ok(out)
}

/// Appends a leaf to the log from outside the server process, with a signed checkpoint, in one
/// transaction. A running server catches up on its next log access. Returns (index, tree size).
fn append_leaf(tx: &rusqlite::Transaction<'_>, key: &fieldcap_evidence::identity::DeviceKey, default_origin: &str, name: &str, leaf: &[u8]) -> Result<(u64, u64)> {
    let mut st = tx.prepare("SELECT leaf_hash FROM log_leaves ORDER BY idx")?;
    let hashes = st
        .query_map([], |r| r.get::<_, Vec<u8>>(0))?
        .map(|h| h.map_err(Error::from).and_then(|h| <[u8; 32]>::try_from(h).map_err(|_| Error::Internal("a log leaf has a bad hash".into()))))
        .collect::<Result<Vec<_>>>()?;
    drop(st);
    let origin = tx
        .query_row("SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1", [], |r| r.get::<_, String>(0))
        .optional()?
        .and_then(|n| parse_note(&n).ok().and_then(|p| p.text.lines().next().map(String::from)))
        .unwrap_or_else(|| default_origin.to_string());
    let mut tree = LogTree::from_leaves(&hashes);
    let h = leaf_hash(leaf);
    let index = tree.push(h);
    let size = index + 1;
    let note = sign_checkpoint(&Checkpoint { origin: origin.clone(), size, root: tree.root(size)? }, &origin, key);
    tx.execute("INSERT INTO log_leaves (idx, clip_id, leaf, leaf_hash) VALUES (?1, ?2, ?3, ?4)", params![index as i64, name, leaf, h.to_vec()])?;
    tx.execute("INSERT OR IGNORE INTO checkpoints (tree_size, note) VALUES (?1, ?2)", params![size as i64, note])?;
    Ok((index, size))
}

/// Canonical bytes of a disposal leaf.
pub fn disposal_leaf(item: &crate::records::Item, disposed_at: &str) -> Vec<u8> {
    fieldcap_evidence::canonical::to_vec(&serde_json::json!({
        "type": DISPOSAL_LEAF_TYPE,
        "clip_id": item.clip_id,
        "device_id": item.device_id,
        "seq": item.seq,
        "manifest_sha256": item.manifest_sha256,
        "media_sha256": item.media.as_ref().map(|m| m.sha256.clone()),
        "disposed_at": disposed_at,
        "reason": "retention",
    }))
}

/// Disposes one item; `Ok(Some(reason))` if it turned out to be held or referred meanwhile.
fn dispose_one(r: &Records, st: &ItemRetention) -> Result<Option<String>> {
    let item = require_item(r, &st.clip_id)?;
    let mut c = conn(r.data_dir())?;
    let at = fieldcap_evidence::time::now();
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Checked again under the write lock: a hold or export made meanwhile wins.
    let holds: i64 = tx.query_row("SELECT COUNT(*) FROM holds WHERE clip_id = ?1 AND released_at IS NULL", [&item.clip_id], |r| r.get(0))?;
    let refs: i64 = tx.query_row("SELECT COUNT(*) FROM referrals WHERE clip_id = ?1", [&item.clip_id], |r| r.get(0))?;
    if holds > 0 {
        return Ok(Some("held".into()));
    }
    if refs > 0 {
        return Ok(Some("referred".into()));
    }
    let name = format!("disposal:{}", item.clip_id);
    let existing: Option<i64> = tx.query_row("SELECT idx FROM log_leaves WHERE clip_id = ?1", [&name], |r| r.get(0)).optional()?;
    let index = match existing {
        Some(i) => i as u64,
        None => append_leaf(&tx, r.server_key(), &r.default_log_origin(), &name, &disposal_leaf(&item, &at))?.0,
    };
    // The disposal row is written in the same transaction as the leaf; custody follows.
    tx.execute("INSERT INTO disposals (clip_id, disposed_at, log_index, custody_seq) VALUES (?1, ?2, ?3, 0)", params![item.clip_id, at, index as i64])?;
    tx.commit()?;
    finish_disposal(
        r,
        &c,
        &item,
        serde_json::json!({
            "reason": "retention",
            "category": st.category,
            "retention_days": st.days,
            "manifest_sha256": item.manifest_sha256,
            "media_sha256": item.media.as_ref().map(|m| m.sha256.clone()),
            "log_index": index as i64,
        }),
    )?;
    Ok(None)
}

/// After the disposal row and its log leaf are committed: the signed `disposed` custody event,
/// then removal of the original. A crash in between leaves `custody_seq = 0`, which the next
/// `dispose` run finishes ([`finish_interrupted_disposals`]).
fn finish_disposal(r: &Records, c: &rusqlite::Connection, item: &crate::store::ItemRecord, detail: serde_json::Value) -> Result<()> {
    let ev = r.append_custody("disposed", Some(&item.clip_id), detail)?;
    c.execute("UPDATE disposals SET custody_seq = ?2 WHERE clip_id = ?1", params![item.clip_id, ev.seq as i64])?;
    // Remove the original unless another item that is not disposed holds the same bytes.
    if let (Some(blob), Some(path)) = (item.blob_sha256.as_deref(), r.blob_path(item)) {
        let shared: i64 = c.query_row(
            "SELECT COUNT(*) FROM items WHERE blob_sha256 = ?1 AND clip_id != ?2 AND clip_id NOT IN (SELECT clip_id FROM disposals)",
            params![blob, item.clip_id],
            |r| r.get(0),
        )?;
        if shared == 0 {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing a disposed original", e)),
            }
        }
    }
    Ok(())
}

/// Finishes disposals a crash interrupted after their leaf was logged but before their custody
/// event (marked `recorded_late`) or the removal of the original.
fn finish_interrupted_disposals(r: &Records) -> Result<usize> {
    let c = conn(r.data_dir())?;
    let pending: Vec<(String, i64)> = {
        let mut st = c.prepare("SELECT clip_id, log_index FROM disposals WHERE custody_seq = 0 ORDER BY log_index")?;
        let v = st.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<std::result::Result<Vec<_>, _>>()?;
        v
    };
    for (clip_id, index) in &pending {
        let item = require_item(r, clip_id)?;
        finish_disposal(
            r,
            &c,
            &item,
            serde_json::json!({
                "reason": "retention",
                "manifest_sha256": item.manifest_sha256,
                "media_sha256": item.media.as_ref().map(|m| m.sha256.clone()),
                "log_index": index,
                "recorded_late": true,
            }),
        )?;
    }
    Ok(pending.len())
}
