//! Start-up reconciliation of the store's files with its database (runs under the store lock).
//!
//! Order matters: interrupted seals first (their files are known), then orphan recordings, then
//! item folders without rows (restored from their signed manifests, or quarantined), then rows
//! whose media vanished or changed size (flagged). Nothing is ever deleted except a partial copy
//! in `staging/` whose source is still intact.

use crate::error::{IoContext, Result};
use crate::manifest::Manifest;
use crate::seal::PendingSeal;
use crate::store::{db, OpenReport, Store};
use serde_json::json;
use std::fs;
use std::path::Path;

/// Moves a file or folder into `quarantine/` and records it in custody. Returns the new name.
pub(crate) fn quarantine(store: &Store, path: &Path, reason: &str) -> Result<String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("unnamed");
    let new_name = format!("{}-{reason}-{name}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    fs::rename(path, store.home.join("quarantine").join(&new_name)).ctx(|| "moving a file to quarantine".into())?;
    store.append_custody("quarantined", None, json!({"reason": reason, "name": new_name}))?;
    Ok(new_name)
}

pub(crate) fn reconcile(store: &Store, report: &mut OpenReport) -> Result<()> {
    finish_pending_seals(store, report)?;
    recover_recordings(store, report)?;
    crate::live::recover(store, report)?;
    restore_or_quarantine_item_dirs(store, report)?;
    check_items(store, report)?;
    if let Some(aside) = report.database_moved_aside.clone() {
        store.append_custody("database_moved_aside", None, json!({"moved_to": aside, "items_restored": report.items_restored}))?;
    }
    Ok(())
}

fn finish_pending_seals(store: &Store, report: &mut OpenReport) -> Result<()> {
    let pending = db::pending_seals(&store.conn())?;
    for (clip_id, request) in pending {
        let p: PendingSeal = serde_json::from_str(&request)?;
        let exists = db::item_exists(&store.conn(), &clip_id)?;
        let dir = store.item_dir(&clip_id);
        let target = dir.join(format!("media.{}", p.ext));
        if exists {
            db::delete_pending_seal(&store.conn(), &clip_id)?;
            continue;
        }
        if target.exists() {
            let d = crate::hashing::hash_file(&target, &mut |_| {}).ctx(|| "re-reading an interrupted seal".into())?;
            if d.bytes == p.bytes && d.sha256_hex() == p.sha256 && d.blake3_hex() == p.blake3 {
                store.commit_seal(&p)?;
                if let Some(seg) = &p.segment {
                    db::advance_session_at_least(&store.conn(), &seg.recording_id, seg.index as i64 + 1, &p.ended_at, seg.is_final)?;
                }
                report.seals_completed.push(clip_id.clone());
            } else {
                let q = quarantine(store, &dir, "interrupted-seal-mismatch")?;
                report.quarantined.push(q);
                db::delete_pending_seal(&store.conn(), &clip_id)?;
            }
        } else {
            // The file never moved: the source is untouched. Remove a partial copy, if any.
            let _ = fs::remove_file(store.home.join("staging").join(format!("{clip_id}.part")));
            let _ = fs::remove_dir(&dir);
            db::delete_pending_seal(&store.conn(), &clip_id)?;
            report.seals_undone += 1;
        }
    }
    Ok(())
}

fn recover_recordings(store: &Store, report: &mut OpenReport) -> Result<()> {
    let root = store.home.join("recording");
    let entries = fs::read_dir(&root).ctx(|| "listing recordings".into())?;
    for entry in entries {
        let entry = entry.ctx(|| "listing recordings".into())?;
        let dir = entry.path();
        let rid = entry.file_name().to_string_lossy().to_string();
        let owner = dir.join(".owner");
        // A recording whose owner lock is held belongs to a live process: leave it alone.
        let _owner = match fs::OpenOptions::new().write(true).open(&owner) {
            Ok(f) => match f.try_lock() {
                Ok(()) => Some(f),
                Err(_) => continue,
            },
            Err(_) => None,
        };
        let session = db::session(&store.conn(), &rid)?.map(|s| (s.media_ext, s.next_index, s.finished));
        match session {
            None => {
                report.quarantined.push(quarantine(store, &dir, "unknown-recording")?);
            }
            Some((ext, index, 0)) => {
                let seg = dir.join(format!("{index}.{ext}"));
                let has_bytes = fs::metadata(&seg).map(|m| m.len() > 0).unwrap_or(false);
                if has_bytes {
                    let mtime = fs::metadata(&seg).and_then(|m| m.modified()).map(chrono::DateTime::<chrono::Utc>::from).unwrap_or_else(|_| chrono::Utc::now());
                    let item = store.seal_segment_inner(&rid, true, mtime, true, &mut |_, _| {})?;
                    report.segments_recovered.push(item.clip_id);
                } else {
                    db::finish_session(&store.conn(), &rid)?;
                }
                finish_recording_dir(store, &dir, report)?;
            }
            Some(_) => finish_recording_dir(store, &dir, report)?,
        }
    }
    Ok(())
}

fn finish_recording_dir(store: &Store, dir: &Path, report: &mut OpenReport) -> Result<()> {
    let _ = fs::remove_file(dir.join(".owner"));
    if fs::remove_dir(dir).is_err() && dir.exists() {
        report.quarantined.push(quarantine(store, dir, "recording-leftovers")?);
    }
    Ok(())
}

fn restore_or_quarantine_item_dirs(store: &Store, report: &mut OpenReport) -> Result<()> {
    let known: std::collections::HashSet<String> = {
        db::clip_ids(&store.conn())?.into_iter().collect()
    };
    // (manifest, its exact bytes, signature, media extension)
    type Restorable = (Manifest, Vec<u8>, Vec<u8>, Option<String>);
    let mut restorable: Vec<Restorable> = Vec::new();
    for entry in fs::read_dir(store.home.join("items")).ctx(|| "listing items".into())? {
        let entry = entry.ctx(|| "listing items".into())?;
        let name = entry.file_name().to_string_lossy().to_string();
        if known.contains(&name) {
            continue;
        }
        let dir = entry.path();
        let signed = (|| {
            let bytes = fs::read(dir.join("manifest.json")).ok()?;
            let sig = fs::read(dir.join("manifest.sig")).ok()?;
            let m = Manifest::parse(&bytes).ok()?;
            crate::identity::verify(&store.key.verifying_key(), &bytes, &sig).ok()?;
            (m.clip_id == name && m.device_id == store.device_id()).then_some((m, bytes, sig))
        })();
        match signed {
            Some((m, bytes, sig)) => {
                let ext = m.media.as_ref().map(|x| crate::manifest::extension_for_mime(&x.mime).to_string());
                restorable.push((m, bytes, sig, ext));
            }
            None => report.quarantined.push(quarantine(store, &dir, "unattributed-item")?),
        }
    }
    restorable.sort_by_key(|r| r.0.seq);
    for (m, bytes, sig, ext) in restorable {
        if db::seq_taken(&store.conn(), m.seq)? {
            let dir = store.item_dir(&m.clip_id);
            report.quarantined.push(quarantine(store, &dir, "seq-conflict")?);
            continue;
        }
        let sha = crate::hashing::sha256_hex(&bytes);
        db::insert_item(&store.conn(), &m, &bytes, &sig, &sha, ext.as_deref())?;
        store.append_custody("restored", Some(&m.clip_id), json!({"seq": m.seq, "manifest_sha256": sha}))?;
        report.items_restored += 1;
    }
    Ok(())
}

fn check_items(store: &Store, report: &mut OpenReport) -> Result<()> {
    let rows = db::media_check_rows(&store.conn())?;
    for db::MediaCheckRow { clip_id, media_ext: ext, media_bytes: bytes, integrity, purged_at: purged } in rows {
        let dir = store.item_dir(&clip_id);
        if !dir.join("manifest.json").exists() || !dir.join("manifest.sig").exists() {
            // Only read the blobs for the rare item whose mirror a crash left unwritten.
            let (manifest, sig) = db::manifest_of(&store.conn(), &clip_id)?;
            store.write_mirror(&clip_id, &manifest, &sig)?;
            report.mirrors_rewritten += 1;
        }
        let (Some(ext), Some(bytes)) = (ext, bytes) else { continue };
        if purged.is_some() || integrity != "ok" {
            continue;
        }
        let problem = match fs::metadata(dir.join(format!("media.{ext}"))) {
            Err(_) => Some(("missing", "the media file is missing".to_string())),
            Ok(m) if m.len() as i64 != bytes => Some(("mismatch", format!("the media file is {} bytes, the manifest says {bytes}", m.len()))),
            Ok(_) => None,
        };
        if let Some((state, detail)) = problem {
            db::set_integrity(&store.conn(), &clip_id, state, &detail)?;
            store.append_custody("flagged", Some(&clip_id), json!({"integrity": state}))?;
            report.flagged.push(clip_id);
        }
    }
    Ok(())
}
