//! Building a package: selection, custody, files, index, sums, atomic rename.

use super::release::ReleasedFile;
use super::report::{ReportDevice, ReportInput, ReportItem};
use super::{PackageOutcome, PackageRequest, Profile, Selection};
use crate::error::{Error, Result};
use crate::incidents::haversine_m;
use crate::log::LogTree;
use crate::records::Records;
use crate::store::{BlobStore, FragmentRow, ItemRecord};
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::manifest::Manifest;
use fieldcap_package::package::{
    ack_files, fragment_files, media_file_name, verify_txt, ChainLink, DerivedDevice, DerivedManifest, FileEntry, InclusionFile, PackageDevice, PackageIndex, PackageItem, PackageMedia, PackagePartial,
    DERIVED_DEVICE_TYPE, INCLUSION_TYPE, PACKAGE_TYPE, UNLISTED,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const CUSTODY_NOTE: &str = "Server custody events of these items, of their devices' enrolment and custody uploads and of this export, \
then the devices' own custody events as they uploaded them (signed by each device key): in a full package each device's complete \
log from its first event; in a release only the events of the released items with key creation, enrolment, clock measurements and \
alarms. Server events of other items are left out, so server seq numbers skip; consecutive events of one actor are hash-linked. \
A device that has not yet uploaded its log contributes no device events; its manifest chain (seq/prev) and the server's receipts \
and transparency log still anchor what it sent.";

/// Device custody events without an item that a package carries: they date the device's key,
/// its enrolment and clock measurements, and show any alarm.
const DEVICE_EVENTS_WITHOUT_ITEM: &[&str] = &["created", "enrolled", "clock_offset_measured", "alarm"];

fn parse_time(s: &str, what: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(fieldcap_evidence::time::parse(s, what)?)
}

fn select(r: &Records, sel: &Selection) -> Result<Vec<ItemRecord>> {
    Ok(match sel {
        Selection::Clips(ids) => {
            let mut out = Vec::new();
            for id in ids {
                out.push(r.item(id)?.ok_or_else(|| Error::NotFound("no item with that clip id".into()))?);
            }
            out
        }
        Selection::Incident(id) => {
            let inc = r.incidents()?.into_iter().find(|i| &i.id == id).ok_or_else(|| Error::NotFound("no incident with that id".into()))?;
            let mut out = Vec::new();
            for c in inc.clip_ids {
                if let Some(i) = r.item(&c)? {
                    out.push(i);
                }
            }
            out
        }
        Selection::Window { from, to, near } => {
            let (f, t) = (parse_time(from, "--from")?, parse_time(to, "--to")?);
            if t < f {
                return Err(Error::BadRequest("--to is before --from".into()));
            }
            let mut out = Vec::new();
            for i in r.items()? {
                let (s, e) = (parse_time(&i.started_at, "started_at")?, parse_time(&i.ended_at, "ended_at")?);
                if e < f || s > t {
                    continue;
                }
                if let Some((lat, lon, radius)) = near {
                    let m = Manifest::parse(&i.manifest).map_err(Error::Core)?;
                    if !m.track.iter().any(|p| haversine_m((p.lat, p.lon), (*lat, *lon)) <= *radius) {
                        continue;
                    }
                }
                out.push(i);
            }
            out
        }
    })
}

/// The selection as the index records it. A release names only the items it includes: the ids
/// of items held back (minors, victims) or left out must not reach the public (a UUIDv7 also
/// carries its capture time).
fn selection_json(sel: &Selection, release: bool, included: &[(ItemRecord, Manifest)]) -> serde_json::Value {
    match sel {
        Selection::Incident(id) => serde_json::json!({ "incident": id }),
        Selection::Clips(ids) if release => {
            let kept: Vec<&String> = ids.iter().filter(|id| included.iter().any(|(i, _)| &i.clip_id == *id)).collect();
            serde_json::json!({ "clips": kept })
        }
        Selection::Clips(ids) => serde_json::json!({ "clips": ids }),
        Selection::Window { from, to, near } => {
            // A string (the index holds no floating point); the release grid in a release.
            let near = near.map(|(a, b, r)| if release { format!("{:.3},{:.3},{}", a, b, r.round() as i64) } else { format!("{a:.6},{b:.6},{}", r.round() as i64) });
            serde_json::json!({ "from": from, "to": to, "near": near })
        }
    }
}

/// True if the stored original of an item is in the blob store.
fn original_stored(r: &Records, it: &ItemRecord) -> Result<bool> {
    match it.blob_sha256.as_deref() {
        Some(blob) => r.blobs().contains(blob),
        None => Ok(false),
    }
}

/// A stored original as a local file, for the release scrubber, which reads from a path: the
/// blob store's own file when it keeps originals on local disk, else a temporary copy in
/// `scratch` (beside the package, never inside it), removed when this is dropped.
struct OriginalFile {
    path: PathBuf,
    temporary: bool,
}

impl OriginalFile {
    fn of(blobs: &dyn BlobStore, sha256: &str, scratch: &Path) -> Result<OriginalFile> {
        if let Some(path) = blobs.local_path(sha256).filter(|p| p.is_file()) {
            return Ok(OriginalFile { path, temporary: false });
        }
        let path = scratch.join(format!(".original-{sha256}-{}.tmp", uuid::Uuid::new_v4().simple()));
        blobs.copy_to(sha256, &path)?;
        Ok(OriginalFile { path, temporary: true })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OriginalFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_file(&self.path);
        }
    }
}

struct Writer {
    root: PathBuf,
    bytes: u64,
}

impl Writer {
    fn put(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        let p = self.root.join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).map_err(|e| Error::io("creating a package folder", e))?;
        }
        fieldcap_evidence::fsutil::write_new(&p, data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }
}

/// Exports a package (see the module documentation).
pub fn export(data_dir: impl Into<crate::store::Deployment>, req: &PackageRequest) -> Result<PackageOutcome> {
    if req.recipient.trim().is_empty() || req.purpose.trim().is_empty() {
        return Err(Error::BadRequest("a package needs a recipient and a purpose".into()));
    }
    if req.sensitive_reason.as_deref().is_some_and(|s| s.trim().is_empty()) {
        return Err(Error::BadRequest("--include-sensitive needs a non-empty --reason".into()));
    }
    if req.out.exists() {
        return Err(Error::BadRequest("the output folder already exists".into()));
    }
    let parent = req.out.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let name = req.out.file_name().ok_or_else(|| Error::BadRequest("the output path has no folder name".into()))?.to_string_lossy().to_string();
    if !parent.is_dir() {
        return Err(Error::BadRequest("the output folder's parent does not exist".into()));
    }
    let r = Records::open(data_dir)?;

    // Live recordings named by clip id that the server holds only fragments of (no received
    // original): packaged as partial recordings, in full packages only.
    let mut partial_ids: Vec<String> = Vec::new();
    let selection = match &req.selection {
        Selection::Clips(ids) => {
            let mut keep = Vec::new();
            for id in ids {
                let whole = r.item(id)?.is_some_and(|i| i.state == "received");
                if !whole && r.store().last_fragment(id)?.is_some() {
                    if !partial_ids.contains(id) {
                        partial_ids.push(id.clone());
                    }
                } else {
                    keep.push(id.clone());
                }
            }
            Selection::Clips(keep)
        }
        other => other.clone(),
    };
    if !partial_ids.is_empty() && req.profile == Profile::Release {
        return Err(Error::BadRequest("a partial live recording is exported in full packages only".into()));
    }
    partial_ids.sort();

    // Select and filter.
    let mut omitted: BTreeMap<String, u64> = BTreeMap::new();
    let mut items: Vec<(ItemRecord, Manifest)> = Vec::new();
    let mut seen = BTreeSet::new();
    for it in select(&r, &selection)? {
        if !seen.insert(it.clip_id.clone()) {
            continue;
        }
        let explicit = matches!(req.selection, Selection::Clips(_));
        let m = Manifest::parse(&it.manifest).map_err(Error::Core)?;
        let reason = if it.state != "received" || it.receipt.is_none() {
            Some("not_received")
        } else if crate::retention::is_disposed(&r, &it.clip_id)? {
            Some("disposed")
        } else if it.media.is_some() && !original_stored(&r, &it)? {
            Some("original_missing")
        } else if req.profile == Profile::Release && req.sensitive_reason.is_none() && super::release::is_sensitive(&m.tags) {
            Some("sensitive")
        } else {
            None
        };
        match reason {
            Some(why) if explicit && why != "sensitive" => return Err(Error::BadRequest(format!("item {} cannot be exported: {}", it.clip_id, why.replace('_', " ")))),
            Some(why) => *omitted.entry(why.to_string()).or_default() += 1,
            None => items.push((it, m)),
        }
    }
    if items.is_empty() && partial_ids.is_empty() {
        return Err(Error::BadRequest("no exportable items in the selection".into()));
    }
    items.sort_by(|a, b| a.1.capture.started_at.cmp(&b.1.capture.started_at).then_with(|| a.0.clip_id.cmp(&b.0.clip_id)));

    // Folders left by an earlier export that was killed go first (never a running one's).
    super::tmpdirs::remove_stale(&parent);
    // Removed again (with its scratch folder and lock) when this returns, whatever happens.
    let temp = super::tmpdirs::ExportTemp::create(&parent, &name)?;
    let tmp = temp.dir.clone();
    let (index, bytes) = build(&r, req, &tmp, &temp.scratch, &items, &partial_ids, omitted.clone())?;
    fs::rename(&tmp, &req.out).map_err(|e| Error::io("moving the package into place", e))?;
    fieldcap_evidence::fsutil::sync_dir(&parent)?;
    let zip = if req.zip {
        let z = parent.join(format!("{name}.zip"));
        super::zip::zip_dir(&req.out, &z)?;
        Some(z)
    } else {
        None
    };
    if req.profile == Profile::Full {
        let ids: Vec<String> = items.iter().map(|(i, _)| i.clip_id.clone()).collect();
        crate::retention::record_referrals(&r, &ids, &index.package_id, &req.recipient)?;
    }
    Ok(PackageOutcome {
        path: req.out.clone(),
        zip,
        package_id: index.package_id.clone(),
        items: items.len() + partial_ids.len(),
        omitted,
        bytes,
        custody_seq: index.export_custody_seq,
    })
}

fn build(
    r: &Records,
    req: &PackageRequest,
    tmp: &Path,
    scratch: &Path,
    items: &[(ItemRecord, Manifest)],
    partial_ids: &[String],
    omitted: BTreeMap<String, u64>,
) -> Result<(PackageIndex, u64)> {
    let release = req.profile == Profile::Release;
    let key = r.server_key();
    let key_id = r.server_key_id().to_string();
    let now = fieldcap_evidence::time::now();
    let package_id = uuid::Uuid::now_v7().to_string();
    let mut w = Writer { root: tmp.to_path_buf(), bytes: 0 };

    // Log: checkpoint first, then leaves (at least as many), one tree for every proof.
    // Of the checkpoints covering every item's receipt, the one with the most witness
    // cosignatures (the newest among equals): a witness that was down when the newest was made
    // does not cost the package its cosignature.
    let min_size = items.iter().filter_map(|(i, _)| i.log_index).max().map_or(0, |i| i + 1);
    let (cp_size, cp_note) = r.best_checkpoint(min_size)?.ok_or_else(|| Error::Internal("the log has no checkpoint".into()))?;
    let origin = fieldcap_evidence::tlog::parse_note(&cp_note)?.text.lines().next().map(String::from).unwrap_or_else(|| r.default_log_origin());
    let tree = LogTree::from_leaves(&r.store().leaf_hashes()?);
    w.put("server.pub.pem", r.server_public_pem().as_bytes())?;
    w.put("log/checkpoint.txt", cp_note.as_bytes())?;

    // Devices.
    let mut partial_rows: Vec<(String, Vec<FragmentRow>)> = Vec::new();
    for id in partial_ids {
        partial_rows.push((id.clone(), r.store().fragments(id)?));
    }
    let device_ids: BTreeSet<String> =
        items.iter().map(|(i, _)| i.device_id.clone()).chain(partial_rows.iter().filter_map(|(_, f)| f.first().map(|f| f.device_id.clone()))).collect();
    let mut devices = Vec::new();
    let mut report_devices = Vec::new();
    for id in &device_ids {
        let d = r.device(id)?.ok_or_else(|| Error::Internal("an item's device is not on record".into()))?;
        w.put(&format!("devices/{id}.pub.pem"), d.public_key_pem.as_bytes())?;
        let (cert, sig) = if release {
            let dd = DerivedDevice {
                doc_type: DERIVED_DEVICE_TYPE.into(),
                device_id: d.device_id.clone(),
                public_key_pem: d.public_key_pem.clone(),
                role: d.role.clone(),
                enrolled_at: d.enrolled_at.clone(),
                original_cert_sha256: fieldcap_evidence::hashing::sha256_hex(&d.cert),
                server_key_id: key_id.clone(),
            };
            let b = fieldcap_evidence::canonical::to_vec_of(&dd)?;
            let s = key.sign(&b).to_vec();
            (b, s)
        } else {
            (d.cert.clone(), d.cert_sig.clone())
        };
        w.put(&format!("devices/{id}.cert.json"), &cert)?;
        w.put(&format!("devices/{id}.cert.sig"), &sig)?;
        // Chain links of the items on record from the lowest to the highest included seq: one
        // query for the device's stored items, never one per seq in the range (a device's seq
        // numbers may be far apart).
        let seqs: Vec<u64> = items.iter().filter(|(i, _)| &i.device_id == id).map(|(i, _)| i.seq).collect();
        let (lo, hi) = (seqs.iter().min().copied().unwrap_or(1), seqs.iter().max().copied().unwrap_or(0));
        let mut stored: Vec<ItemRecord> = r.store().items_of_device(id)?.into_iter().filter(|it| (lo..=hi).contains(&it.seq)).collect();
        stored.sort_by_key(|it| it.seq);
        let mut chain = Vec::new();
        for it in stored {
            let m = Manifest::parse(&it.manifest).map_err(Error::Core)?;
            chain.push(ChainLink { seq: it.seq, manifest_sha256: it.manifest_sha256.clone(), prev: m.prev.clone() });
        }
        let offset = items
            .iter()
            .filter(|(i, _)| &i.device_id == id)
            .filter_map(|(_, m)| m.capture.clock.measured_at.clone().zip(m.capture.clock.offset_ms))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, o)| o);
        report_devices.push(ReportDevice { device_id: id.clone(), role: d.role.clone(), org: if release { None } else { d.org.clone() }, clock_offset_ms: offset, enrolled_at: d.enrolled_at.clone() });
        devices.push(PackageDevice { device_id: id.clone(), role: d.role.clone(), chain, clock_offset_ms: offset });
    }

    // Items.
    let mut pitems = Vec::new();
    let mut report_items = Vec::new();
    for (it, m) in items {
        let dir = format!("clips/{}", it.clip_id);
        let receipt_bytes = it.receipt.clone().ok_or_else(|| Error::Internal("a received item has no receipt".into()))?;
        let receipt_sig = it.receipt_sig.clone().ok_or_else(|| Error::Internal("a received item has no receipt signature".into()))?;
        let receipt: fieldcap_evidence::protocol::Receipt = serde_json::from_slice(&receipt_bytes)?;
        // Media first, so that a release's derived manifest can name what the package holds:
        // the original (full profile); in a release a copy scrubbed of location and identity
        // metadata, or nothing when it cannot be scrubbed (release::release_media).
        let mut released = None;
        let mut withheld = None;
        let media = match &m.media {
            Some(mm) => {
                let path = format!("{dir}/{}", media_file_name(&mm.mime));
                let blob = it.blob_sha256.as_deref().ok_or_else(|| Error::NotFound("an original is missing from the blob store".into()))?;
                fs::create_dir_all(tmp.join(&dir)).map_err(|e| Error::io("creating a package folder", e))?;
                if release {
                    let original = OriginalFile::of(r.blobs(), blob, scratch)?;
                    match super::release::release_media(&it.clip_id, original.path(), &tmp.join(&path), mm)? {
                        ReleasedFile::Copy(rm) => {
                            w.bytes += rm.bytes;
                            let pm = PackageMedia { path, mime: mm.mime.clone(), bytes: rm.bytes, sha256: rm.sha256.clone(), blake3: rm.blake3.clone() };
                            released = Some(rm);
                            Some(pm)
                        }
                        ReleasedFile::Withheld(why) => {
                            withheld = Some(why);
                            None
                        }
                    }
                } else {
                    let dg = r.blobs().copy_to(blob, &tmp.join(&path))?;
                    if dg.bytes != mm.bytes || dg.sha256_hex() != mm.sha256 || dg.blake3_hex() != mm.blake3 {
                        return Err(Error::Internal(format!("the stored original of {} does not match its manifest; not exported", it.clip_id)));
                    }
                    w.bytes += dg.bytes;
                    Some(PackageMedia { path, mime: mm.mime.clone(), bytes: mm.bytes, sha256: mm.sha256.clone(), blake3: mm.blake3.clone() })
                }
            }
            None => None,
        };
        let (mbytes, msig, derived) = if release {
            let mut d = DerivedManifest::from_original(m, &it.manifest, &it.manifest_sig, &key_id, &now);
            if let Some(rm) = released {
                d.set_released_media(rm);
            }
            if let Some(why) = &withheld {
                d.set_media_withheld(why);
            }
            let b = fieldcap_evidence::canonical::to_vec_of(&d)?;
            let s = key.sign(&b).to_vec();
            (b, s, Some(d))
        } else {
            (it.manifest.clone(), it.manifest_sig.clone(), None)
        };
        w.put(&format!("{dir}/manifest.json"), &mbytes)?;
        w.put(&format!("{dir}/manifest.sig"), &msig)?;
        w.put(&format!("{dir}/receipt.json"), &receipt_bytes)?;
        w.put(&format!("{dir}/receipt.sig"), &receipt_sig)?;
        // A finished live recording carries the fragment records it was sealed with.
        if !release && m.fragments.is_some() {
            put_fragments(&mut w, &it.clip_id, &r.store().fragments(&it.clip_id)?)?;
        }
        // Inclusion in the package checkpoint and consistency from the receipt's tree.
        let index = receipt.log.index;
        let inc = InclusionFile {
            doc_type: INCLUSION_TYPE.into(),
            clip_id: it.clip_id.clone(),
            index,
            tree_size: cp_size,
            leaf_hash: fieldcap_evidence::tlog::to_hex(&fieldcap_evidence::tlog::leaf_hash(&receipt.leaf_bytes())),
            inclusion: fieldcap_evidence::tlog::proof_to_hex(&tree.inclusion(index, cp_size)?),
            receipt_tree_size: receipt.log.tree_size,
            consistency: fieldcap_evidence::tlog::proof_to_hex(&tree.consistency(receipt.log.tree_size, cp_size)?),
        };
        w.put(&format!("log/inclusion/{}.json", it.clip_id), &fieldcap_evidence::canonical::to_vec_of(&inc)?)?;
        let track: Vec<(f64, f64)> = match &derived {
            Some(d) => d.track.iter().map(|p| (p.lat, p.lon)).collect(),
            None => m.track.iter().map(|p| (p.lat, p.lon)).collect(),
        };
        report_items.push(ReportItem {
            clip_id: it.clip_id.clone(),
            device_id: it.device_id.clone(),
            seq: it.seq,
            kind: it.kind.clone(),
            role: m.operator.role.as_str().into(),
            operator: if release { None } else { [m.operator.org.clone(), m.operator.callsign.clone()].into_iter().flatten().reduce(|a, b| format!("{a}, {b}")) },
            started_at: m.capture.started_at.clone(),
            ended_at: m.capture.ended_at.clone(),
            clock_source: m.capture.clock.source.clone(),
            offset_ms: m.capture.clock.offset_ms,
            received_at: receipt.received_at.clone(),
            log_index: index,
            manifest_sha256: fieldcap_evidence::hashing::sha256_hex(&mbytes),
            original_manifest_sha256: it.manifest_sha256.clone(),
            media: media.as_ref().map(|p| (p.mime.clone(), p.bytes, p.sha256.clone(), p.blake3.clone())),
            tags: m.tags.clone(),
            text: m.observation.as_ref().map(|o| o.text.clone()),
            note: if release { None } else { m.note.clone() },
            track,
        });
        pitems.push(PackageItem {
            clip_id: it.clip_id.clone(),
            device_id: it.device_id.clone(),
            seq: it.seq,
            kind: it.kind.clone(),
            original_manifest_sha256: it.manifest_sha256.clone(),
            manifest_sha256: fieldcap_evidence::hashing::sha256_hex(&mbytes),
            derived: release,
            media,
            media_withheld: withheld,
            started_at: m.capture.started_at.clone(),
            ended_at: m.capture.ended_at.clone(),
            received_at: receipt.received_at.clone(),
            log_index: index,
            tags: m.tags.clone(),
        });
    }

    // Partial live recordings: the bytes held, exactly as the last record seals them, with
    // every record and ack.
    let mut partials = Vec::new();
    for (id, rows) in &partial_rows {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else { continue };
        let last_rec = fieldcap_evidence::fragment::FragmentRecord::parse(&last.record)?;
        let path = format!("clips/{id}/{}", media_file_name(&last_rec.mime));
        let d = copy_held(r.blobs(), id, last.total_bytes, &tmp.join(&path))?;
        if d.bytes != last.total_bytes || d.sha256_hex() != last_rec.total_sha256 || d.blake3_hex() != last_rec.total_blake3 {
            return Err(Error::Internal(format!("the bytes held of {id} do not match its last fragment record; not exported")));
        }
        w.bytes += d.bytes;
        put_fragments(&mut w, id, rows)?;
        partials.push(PackagePartial {
            clip_id: id.clone(),
            device_id: first.device_id.clone(),
            partial: true,
            fragments: rows.len() as u64,
            bytes: last.total_bytes,
            last_captured_at: last.captured_at.clone(),
            head: last.record_sha256.clone(),
            media: PackageMedia { path, mime: last_rec.mime.clone(), bytes: d.bytes, sha256: d.sha256_hex(), blake3: d.blake3_hex() },
        });
    }

    // Custody: one event per item and one for the package, then the trail of these items.
    let ids: Vec<String> = pitems.iter().map(|i| i.clip_id.clone()).collect();
    let base = serde_json::json!({
        "package_id": package_id,
        "profile": req.profile.as_str(),
        "recipient": req.recipient,
        "purpose": req.purpose,
        "exported_by": req.exported_by,
    });
    for id in &ids {
        r.append_custody("exported", Some(id), base.clone())?;
    }
    for id in partial_ids {
        r.append_custody("exported_partial", Some(id), base.clone())?;
    }
    let mut detail = base.clone();
    if let Some(o) = detail.as_object_mut() {
        o.insert("items".into(), serde_json::json!(ids.len() as i64));
        o.insert("items_sha256".into(), serde_json::json!(fieldcap_evidence::hashing::sha256_hex(ids.join("\n").as_bytes())));
        if !partial_ids.is_empty() {
            o.insert("partials".into(), serde_json::json!(partial_ids.len() as i64));
            o.insert("partials_sha256".into(), serde_json::json!(fieldcap_evidence::hashing::sha256_hex(partial_ids.join("\n").as_bytes())));
        }
        o.insert("sensitive_included".into(), serde_json::json!(release && req.sensitive_reason.is_some()));
        if let (true, Some(reason)) = (release, &req.sensitive_reason) {
            o.insert("sensitive_reason".into(), serde_json::json!(reason));
        }
    }
    let export_ev = r.append_custody("exported", None, detail)?;
    let idset: BTreeSet<&str> = ids.iter().chain(partial_ids.iter()).map(String::as_str).collect();
    let events: Vec<CustodyEvent> = r
        .custody(None)?
        .into_iter()
        .filter(|e| {
            e.seq == export_ev.seq
                || e.clip_id.as_deref().is_some_and(|c| idset.contains(c))
                || ((e.event == "enrolled" || e.event == "device_custody_received")
                    && serde_json::from_slice::<serde_json::Value>(&e.body).ok().and_then(|v| v["detail"]["device_id"].as_str().map(|d| device_ids.contains(d))).unwrap_or(false))
        })
        .collect();
    // Device logs: complete in the full profile (so a verifier can check each chain from its
    // first event and see that nothing was left out), only these items' events in a release.
    let mut events = events;
    for id in &device_ids {
        events.extend(r.device_custody(id)?.into_iter().filter(|e| {
            !release
                || match e.clip_id.as_deref() {
                    Some(c) => idset.contains(c),
                    None => DEVICE_EVENTS_WITHOUT_ITEM.contains(&e.event.as_str()),
                }
        }));
    }
    let mut jsonl = String::new();
    for e in &events {
        jsonl.push_str(&e.to_jsonl());
        jsonl.push('\n');
    }
    w.put("custody.jsonl", jsonl.as_bytes())?;

    let mut index = PackageIndex {
        doc_type: PACKAGE_TYPE.into(),
        package_id,
        profile: req.profile.as_str().into(),
        created_at: now.clone(),
        exported_by: req.exported_by.clone(),
        recipient: req.recipient.clone(),
        purpose: req.purpose.clone(),
        selection: selection_json(&req.selection, release, items),
        server_key_id: key_id.clone(),
        log_origin: origin,
        checkpoint_size: cp_size,
        export_custody_seq: export_ev.seq,
        sensitive_reason: if release { req.sensitive_reason.clone() } else { None },
        omitted,
        custody_note: CUSTODY_NOTE.into(),
        devices,
        items: pitems,
        partials,
        files: Vec::new(),
    };
    let server_fingerprint = fieldcap_evidence::identity::key_fingerprint(&key.verifying_key());
    let report = super::report::render(&ReportInput { index: &index, server_fingerprint: &server_fingerprint, devices: &report_devices, items: &report_items, custody: &events });
    w.put("report.html", report.as_bytes())?;
    w.put("VERIFY.txt", verify_txt(&index, &key.verifying_key()).as_bytes())?;

    // Index over every other file, then its signature, then the sums over everything.
    let files = fieldcap_package::clip::list_files(tmp)?;
    let digests = fieldcap_package::package::hash_files(tmp, &files);
    for f in &files {
        let d = digests.get(f).ok_or_else(|| Error::Internal("a package file could not be hashed".into()))?;
        index.files.push(FileEntry { path: f.clone(), bytes: d.bytes, sha256: d.sha256_hex(), blake3: d.blake3_hex() });
    }
    index.files.retain(|f| !UNLISTED.contains(&f.path.as_str()));
    let ib = fieldcap_evidence::canonical::to_vec_of(&index)?;
    w.put("package.json", &ib)?;
    w.put("package.json.sig", &key.sign(&ib))?;
    let mut sha = String::new();
    let mut b3 = String::new();
    let mut all: Vec<(String, String, String)> = index.files.iter().map(|f| (f.path.clone(), f.sha256.clone(), f.blake3.clone())).collect();
    for extra in ["package.json", "package.json.sig"] {
        let d = fieldcap_evidence::hashing::hash_file(&tmp.join(extra), &mut |_| {}).map_err(|e| Error::io("hashing the index", e))?;
        all.push((extra.into(), d.sha256_hex(), d.blake3_hex()));
    }
    all.sort();
    for (p, s, b) in &all {
        sha.push_str(&format!("{s}  {p}\n"));
        b3.push_str(&format!("{b}  {p}\n"));
    }
    w.put("SHA256SUMS", sha.as_bytes())?;
    w.put("B3SUMS", b3.as_bytes())?;
    // Directories durable before the rename.
    for d in walk_dirs(tmp)? {
        fieldcap_evidence::fsutil::sync_dir(&d)?;
    }
    Ok((index, w.bytes))
}

/// Writes a live recording's fragment records and the server's acks
/// (`clips/<clip>/fragments/NNNNNN.json|.sig`, `clips/<clip>/acks/…`).
fn put_fragments(w: &mut Writer, clip_id: &str, rows: &[FragmentRow]) -> Result<()> {
    for f in rows {
        let (rf, sf) = fragment_files(clip_id, f.idx);
        w.put(&rf, &f.record)?;
        w.put(&sf, &f.sig)?;
        let (af, asf) = ack_files(clip_id, f.idx);
        w.put(&af, &f.ack)?;
        w.put(&asf, &f.ack_sig)?;
    }
    Ok(())
}

/// Copies the first `len` bytes of a clip's partial upload (a live recording's bytes held) into
/// a new file `dst`, fsynced; returns the digests of what was written.
fn copy_held(blobs: &dyn BlobStore, clip_id: &str, len: u64, dst: &Path) -> Result<fieldcap_evidence::hashing::Digests> {
    use sha2::Digest as _;
    use std::io::{Read, Write};
    let src = blobs.read_partial(clip_id)?.ok_or_else(|| Error::NotFound(format!("the bytes held of {clip_id} are missing")))?;
    if let Some(d) = dst.parent() {
        fs::create_dir_all(d).map_err(|e| Error::io("creating a package folder", e))?;
    }
    let mut out = fs::OpenOptions::new().write(true).create_new(true).open(dst).map_err(|e| Error::io("creating a partial recording's media file", e))?;
    let mut src = src.take(len);
    let (mut sha, mut b3, mut n) = (sha2::Sha256::new(), blake3::Hasher::new(), 0u64);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let k = src.read(&mut buf).map_err(|e| Error::io("reading the bytes held", e))?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k]).map_err(|e| Error::io("writing a partial recording's media file", e))?;
        sha.update(&buf[..k]);
        b3.update(&buf[..k]);
        n += k as u64;
    }
    out.sync_all().map_err(|e| Error::io("syncing a partial recording's media file", e))?;
    Ok(fieldcap_evidence::hashing::Digests { bytes: n, sha256: sha.finalize().into(), blake3: *b3.finalize().as_bytes() })
}

fn walk_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let d = out[i].clone();
        for e in fs::read_dir(&d).map_err(|e| Error::io("listing the package", e))? {
            let e = e.map_err(|e| Error::io("listing the package", e))?;
            if e.file_type().map_err(|e| Error::io("listing the package", e))?.is_dir() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{LocalBlobStore, PartialWriter};
    use std::io::Read;

    /// A blob store that keeps no local paths, as an object store would, over a local one.
    struct WithoutLocalPaths(LocalBlobStore);

    impl BlobStore for WithoutLocalPaths {
        fn open_partial(&self, clip_id: &str, offset: u64) -> Result<Box<dyn PartialWriter>> {
            self.0.open_partial(clip_id, offset)
        }
        fn read_partial(&self, clip_id: &str) -> Result<Option<Box<dyn Read + Send>>> {
            self.0.read_partial(clip_id)
        }
        fn discard_partial(&self, clip_id: &str) -> Result<()> {
            self.0.discard_partial(clip_id)
        }
        fn set_aside_partial(&self, clip_id: &str) -> Result<Option<String>> {
            self.0.set_aside_partial(clip_id)
        }
        fn store_partial(&self, clip_id: &str, sha256: &str) -> Result<()> {
            self.0.store_partial(clip_id, sha256)
        }
        fn contains(&self, sha256: &str) -> Result<bool> {
            self.0.contains(sha256)
        }
        fn open(&self, sha256: &str) -> Result<Box<dyn Read + Send>> {
            self.0.open(sha256)
        }
        fn local_path(&self, _sha256: &str) -> Option<PathBuf> {
            None
        }
        fn remove_disposed(&self, sha256: &str) -> Result<()> {
            self.0.remove_disposed(sha256)
        }
    }

    #[test]
    fn an_original_without_a_local_path_is_copied_beside_the_package_and_removed_after_use() {
        let d = tempfile::tempdir().unwrap();
        let local = LocalBlobStore::open(&d.path().join("blobs"), &d.path().join("uploads")).unwrap();
        let clip = "0190a0b2-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
        let bytes = b"an original, as received".to_vec();
        let sha = fieldcap_evidence::hashing::sha256_hex(&bytes);
        let mut w = local.open_partial(clip, 0).unwrap();
        w.write_all(&bytes).unwrap();
        w.sync().unwrap();
        drop(w);
        local.store_partial(clip, &sha).unwrap();
        let scratch = d.path().join("out");
        fs::create_dir(&scratch).unwrap();

        let copy = OriginalFile::of(&WithoutLocalPaths(local.clone()), &sha, &scratch).unwrap();
        assert!(copy.path().starts_with(&scratch));
        assert_eq!(fs::read(copy.path()).unwrap(), bytes);
        let copied = copy.path().to_path_buf();
        drop(copy);
        assert!(!copied.exists(), "the temporary copy is removed");

        // A local store hands over its own file, which is never removed.
        let own = OriginalFile::of(&local, &sha, &scratch).unwrap();
        let path = own.path().to_path_buf();
        drop(own);
        assert!(path.exists());
        assert!(fs::read_dir(&scratch).unwrap().next().is_none());
    }
}
