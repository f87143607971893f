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
//! **Write-once locks** (a blob store with them, such as S3 with Object Lock; the local store
//! has none): an original is locked until its item's retention end (COMPLIANCE, extended only)
//! before the item's receipt is issued ([`lock_new_original`]); `hold` places a legal hold on the
//! original and `release` lifts it once no item sharing that original (identical bytes are
//! stored once) is held any more; a policy change that lengthens a category extends the locks
//! of the stored originals it covers (to the latest retention end of the items sharing each);
//! `dispose` keeps an item whose original is still locked or under a legal hold (naming the
//! retain-until date) and records nothing for it.
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
use crate::store::{BlobStore, DisposalOutcome, ItemRecord, RecordStore};
use chrono::{DateTime, Utc};
use fieldcap_evidence::tlog::{parse_note, sign_checkpoint, Checkpoint, Hash};
use serde::Serialize;
use std::collections::BTreeMap;

/// Retention period when no `default` category is configured, days.
pub const DEFAULT_RETENTION_DAYS: i64 = 730;
/// Type string of a disposal log leaf.
pub const DISPOSAL_LEAF_TYPE: &str = "fieldcap.log-disposal/1";

fn valid_category(c: &str) -> bool {
    c == "default" || matches!(c, "video" | "audio" | "photo" | "observation") || fieldcap_evidence::manifest::KNOWN_TAGS.contains(&c)
}

/// The configured policy: category → days.
pub fn policy(data_dir: impl Into<crate::store::Deployment>) -> Result<BTreeMap<String, i64>> {
    Records::open(data_dir)?.store().retention_policy()
}

/// Sets the retention of a category (kind, tag or `default`), as a signed custody event.
pub fn set_policy(data_dir: impl Into<crate::store::Deployment>, category: &str, days: i64) -> Result<()> {
    set_policy_in(&Records::open(data_dir)?, category, days)
}

/// [`set_policy`] on records already open (any record and blob store). A longer period than
/// before extends the write-once locks of the stored originals (never shortens them).
pub fn set_policy_in(r: &Records, category: &str, days: i64) -> Result<()> {
    set_policy_by(r, category, days, serde_json::json!({}))
}

/// [`set_policy_in`] with `by` (the console's staff detail) merged into the custody event.
pub fn set_policy_by(r: &Records, category: &str, days: i64, by: serde_json::Value) -> Result<()> {
    if !valid_category(category) {
        return Err(Error::BadRequest(format!("unknown retention category '{category}' (a kind, a tag or default)")));
    }
    if !(0..=36_500).contains(&days) {
        return Err(Error::BadRequest("retention days must be between 0 and 36500".into()));
    }
    let before = r.store().retention_policy()?.get(category).copied().unwrap_or(if category == "default" { DEFAULT_RETENTION_DAYS } else { -1 });
    r.store().set_retention_policy(category, days, &fieldcap_evidence::time::now())?;
    r.append_custody("retention_policy_set", None, with_by(serde_json::json!({ "category": category, "days": days }), by))?;
    if days > before {
        extend_locks(r)?;
    }
    Ok(())
}

/// Extends the lock of every stored original to its items' retention ends (a lock is never
/// shortened, so an original shared by several items ends up locked to the latest of them).
pub fn extend_locks(r: &Records) -> Result<()> {
    let pol = r.store().retention_policy()?;
    let now = Utc::now();
    for item in r.items()? {
        let Some(blob) = item.blob_sha256.as_deref() else { continue };
        let st = state_of(r.store(), &item, &pol, now)?;
        if st.disposed_at.is_none() && r.blobs().contains(blob)? {
            r.blobs().set_retention(blob, &st.until)?;
        }
    }
    Ok(())
}

/// Locks an original just stored for `item` (before its receipt is issued): retained until the
/// item's retention end counted from now (it is being received now), and under a legal hold if
/// the item is held. Nothing for a blob store without locks.
pub fn lock_new_original(records: &dyn RecordStore, blobs: &dyn BlobStore, item: &ItemRecord, blob_sha256: &str) -> Result<()> {
    let until = retention_end(records, item, Utc::now())?;
    blobs.set_retention(blob_sha256, &fieldcap_evidence::time::format(until))?;
    if records.retention_facts(&item.clip_id)?.active_holds > 0 {
        blobs.set_legal_hold(blob_sha256, true)?;
    }
    Ok(())
}

fn require_item(r: &Records, clip_id: &str) -> Result<ItemRecord> {
    r.item(clip_id)?.ok_or_else(|| Error::NotFound("no item with that id".into()))
}

/// Places a legal hold on an item (signed custody event `held`).
pub fn hold(data_dir: impl Into<crate::store::Deployment>, clip_id: &str, reason: &str) -> Result<()> {
    hold_in(&Records::open(data_dir)?, clip_id, reason)
}

/// [`hold`] on records already open. The legal hold is placed on the item's stored original
/// first (a blob store with locks), so that a hold on record always has it.
pub fn hold_in(r: &Records, clip_id: &str, reason: &str) -> Result<()> {
    hold_by(r, clip_id, reason, serde_json::json!({}))
}

/// [`hold_in`] with `by` (who placed it: the console's staff detail) merged into the custody
/// event's detail.
pub fn hold_by(r: &Records, clip_id: &str, reason: &str, by: serde_json::Value) -> Result<()> {
    if reason.trim().is_empty() {
        return Err(Error::BadRequest("a hold needs a reason".into()));
    }
    let item = require_item(r, clip_id)?;
    if let Some(blob) = item.blob_sha256.as_deref() {
        if r.blobs().contains(blob)? {
            r.blobs().set_legal_hold(blob, true)?;
        }
    }
    r.store().add_hold(clip_id, reason, &fieldcap_evidence::time::now())?;
    r.append_custody("held", Some(clip_id), with_by(serde_json::json!({ "reason": reason }), by))?;
    Ok(())
}

/// Releases every active hold of an item (signed custody event `hold_released`). Returns how
/// many holds were released.
pub fn release(data_dir: impl Into<crate::store::Deployment>, clip_id: &str, reason: &str) -> Result<usize> {
    release_in(&Records::open(data_dir)?, clip_id, reason)
}

/// [`release`] on records already open. The legal hold on the item's stored original is lifted
/// once no item sharing that original is held (also when this item had no hold left, so that a
/// release interrupted before reaching the blob store is finished by running it again).
pub fn release_in(r: &Records, clip_id: &str, reason: &str) -> Result<usize> {
    release_by(r, clip_id, reason, serde_json::json!({}))
}

fn with_by(mut detail: serde_json::Value, by: serde_json::Value) -> serde_json::Value {
    if let (Some(d), serde_json::Value::Object(b)) = (detail.as_object_mut(), by) {
        d.extend(b);
    }
    detail
}

/// [`release_in`] with `by` merged into the custody event's detail (see [`hold_by`]).
pub fn release_by(r: &Records, clip_id: &str, reason: &str, by: serde_json::Value) -> Result<usize> {
    let item = require_item(r, clip_id)?;
    let n = r.store().release_holds(clip_id, reason, &fieldcap_evidence::time::now())?;
    if n > 0 {
        r.append_custody("hold_released", Some(clip_id), with_by(serde_json::json!({ "holds": n as i64, "reason": reason }), by))?;
    }
    if let Some(blob) = item.blob_sha256.as_deref() {
        let mut held_elsewhere = false;
        for other in r.items()? {
            if other.blob_sha256.as_deref() == Some(blob) && r.store().retention_facts(&other.clip_id)?.active_holds > 0 {
                held_elsewhere = true;
                break;
            }
        }
        if !held_elsewhere && r.blobs().lock_state(blob)?.is_some_and(|l| l.legal_hold) {
            r.blobs().set_legal_hold(blob, false)?;
        }
    }
    Ok(n as usize)
}

/// Records that items were referred (exported in a full package) — called by package export.
pub fn record_referrals(r: &Records, clip_ids: &[String], package_id: &str, recipient: &str) -> Result<()> {
    r.store().add_referrals(clip_ids, package_id, recipient, &fieldcap_evidence::time::now())
}

/// True if the item has been disposed of.
pub fn is_disposed(r: &Records, clip_id: &str) -> Result<bool> {
    Ok(r.store().retention_facts(clip_id)?.disposed_at.is_some())
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

fn item_tags(item: &ItemRecord) -> Vec<String> {
    fieldcap_evidence::manifest::Manifest::parse(&item.manifest).map(|m| m.tags).unwrap_or_default()
}

/// The category that sets an item's retention (the longest of its kind, tags and `default`) and
/// its period in days.
/// When an item's retention ends under the policy on record: its period counted from when it
/// was received — or from `now` for an original being stored, received at this instant (its
/// `received_at` is written with the receipt, just after). The one rule for every original's
/// lock (at upload, at `move-stores`, at a restore); `retention` and `dispose` count the same
/// way from `received_at`.
pub fn retention_end(records: &dyn RecordStore, item: &ItemRecord, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let from = match item.received_at.as_deref() {
        Some(t) => fieldcap_evidence::time::parse(t, "received_at")?,
        None => now,
    };
    Ok(from + chrono::Duration::days(period_days(records, item)?))
}

/// The retention period (days) the policy on record gives an item.
pub fn period_days(records: &dyn RecordStore, item: &ItemRecord) -> Result<i64> {
    Ok(period_of(item, &records.retention_policy()?).1)
}

fn period_of(item: &ItemRecord, pol: &BTreeMap<String, i64>) -> (String, i64) {
    let mut cats = vec!["default".to_string(), item.kind.clone()];
    cats.extend(item_tags(item));
    cats.iter()
        .map(|c| (c.clone(), pol.get(c).copied().unwrap_or(if c == "default" { DEFAULT_RETENTION_DAYS } else { -1 })))
        .max_by_key(|(_, d)| *d)
        .unwrap_or(("default".into(), DEFAULT_RETENTION_DAYS))
}

fn state_of(store: &dyn RecordStore, item: &ItemRecord, pol: &BTreeMap<String, i64>, now: DateTime<Utc>) -> Result<ItemRetention> {
    let (category, days) = period_of(item, pol);
    let since = item.received_at.clone().unwrap_or_else(|| item.committed_at.clone());
    let start = fieldcap_evidence::time::parse(&since, "received_at")?;
    let until = start + chrono::Duration::days(days);
    let facts = store.retention_facts(&item.clip_id)?;
    let (holds, referrals) = (facts.active_holds as i64, facts.referrals as i64);
    Ok(ItemRetention {
        clip_id: item.clip_id.clone(),
        kind: item.kind.clone(),
        category,
        days,
        since,
        until: fieldcap_evidence::time::format(until),
        holds,
        referrals,
        due: until <= now && holds == 0 && referrals == 0 && facts.disposed_at.is_none(),
        disposed_at: facts.disposed_at,
    })
}

/// Retention state of every item at `now`.
pub fn status(data_dir: impl Into<crate::store::Deployment>, now: DateTime<Utc>) -> Result<Vec<ItemRetention>> {
    status_of(&Records::open(data_dir)?, now)
}

pub(crate) fn status_of(r: &Records, now: DateTime<Utc>) -> Result<Vec<ItemRetention>> {
    let pol = r.store().retention_policy()?;
    r.items()?.iter().map(|i| state_of(r.store(), i, &pol, now)).collect()
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
pub fn dispose(data_dir: impl Into<crate::store::Deployment>, now: DateTime<Utc>, dry_run: bool) -> Result<DisposalReport> {
    dispose_in(&Records::open(data_dir)?, now, dry_run)
}

/// [`dispose`] on records already open. An item whose original would be removed but is still
/// locked in the blob store (retention not ended, or a legal hold) is kept, with the reason
/// naming the lock, and nothing is recorded for it.
pub fn dispose_in(r: &Records, now: DateTime<Utc>, dry_run: bool) -> Result<DisposalReport> {
    if !dry_run {
        finish_interrupted_disposals(r)?;
    }
    let mut out = DisposalReport { dry_run, ..Default::default() };
    for st in status_of(r, now)? {
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
        if let Some(why) = original_lock_refusal(r, &st.clip_id, now)? {
            out.kept.push((st.clip_id, format!("locked: {why}")));
            continue;
        }
        if !dry_run {
            if let Some(reason) = dispose_one(r, &st)? {
                out.kept.push((st.clip_id, reason));
                continue;
            }
        }
        out.disposed.push(st.clip_id);
    }
    Ok(out)
}

/// Why the item's original, which its disposal would remove (no other live item shares it), may
/// not be removed at `now` under the blob store's lock; `None` if nothing stops it.
fn original_lock_refusal(r: &Records, clip_id: &str, now: DateTime<Utc>) -> Result<Option<String>> {
    let item = require_item(r, clip_id)?;
    let Some(blob) = item.blob_sha256.as_deref() else { return Ok(None) };
    if r.store().blob_needed_by_another_item(blob, clip_id)? {
        return Ok(None);
    }
    Ok(r.blobs().lock_state(blob)?.and_then(|l| l.refusal_at(now)))
}

/// The checkpoint after a leaf appended from outside the server process: signed with the server
/// key under the origin of the newest checkpoint on record (or the default origin).
fn checkpoint_after_append(r: &Records, hashes: &[Hash], latest_note: Option<&str>) -> Result<String> {
    let origin = latest_note
        .and_then(|n| parse_note(n).ok().and_then(|p| p.text.lines().next().map(String::from)))
        .unwrap_or_else(|| r.default_log_origin());
    let tree = LogTree::from_leaves(hashes);
    let size = tree.size();
    Ok(sign_checkpoint(&Checkpoint { origin: origin.clone(), size, root: tree.root(size)? }, &origin, r.server_key()))
}

/// Canonical bytes of a disposal leaf.
pub fn disposal_leaf(item: &ItemRecord, disposed_at: &str) -> Vec<u8> {
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
    let at = fieldcap_evidence::time::now();
    let leaf_name = format!("disposal:{}", item.clip_id);
    let sign = |hashes: &[Hash], latest: Option<&str>| checkpoint_after_append(r, hashes, latest);
    let index = match r.store().record_disposal(&item.clip_id, &leaf_name, &disposal_leaf(&item, &at), &at, &sign)? {
        DisposalOutcome::Recorded { log_index } => log_index,
        DisposalOutcome::Held => return Ok(Some("held".into())),
        DisposalOutcome::Referred => return Ok(Some("referred".into())),
    };
    finish_disposal(
        r,
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

/// After the disposal and its log leaf are on record: the signed `disposed` custody event, then
/// removal of the original. A crash in between leaves the disposal pending, which the next
/// `dispose` run finishes ([`finish_interrupted_disposals`]).
fn finish_disposal(r: &Records, item: &ItemRecord, detail: serde_json::Value) -> Result<()> {
    let ev = r.append_custody("disposed", Some(&item.clip_id), detail)?;
    r.store().set_disposal_custody_seq(&item.clip_id, ev.seq)?;
    // Remove the original unless another item that is not disposed holds the same bytes.
    if let Some(blob) = item.blob_sha256.as_deref() {
        if !r.store().blob_needed_by_another_item(blob, &item.clip_id)? {
            r.blobs().remove_disposed(blob)?;
        }
    }
    Ok(())
}

/// Finishes disposals a crash interrupted after their leaf was logged but before their custody
/// event (marked `recorded_late`) or the removal of the original.
fn finish_interrupted_disposals(r: &Records) -> Result<usize> {
    let pending = r.store().pending_disposals()?;
    for p in &pending {
        let item = require_item(r, &p.clip_id)?;
        finish_disposal(
            r,
            &item,
            serde_json::json!({
                "reason": "retention",
                "manifest_sha256": item.manifest_sha256,
                "media_sha256": item.media.as_ref().map(|m| m.sha256.clone()),
                "log_index": p.log_index as i64,
                "recorded_late": true,
            }),
        )?;
    }
    Ok(pending.len())
}
