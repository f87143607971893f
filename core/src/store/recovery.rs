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
    remove_orphan_encrypted_copies(store)?;
    recover_recordings(store, report)?;
    crate::live::recover(store, report)?;
    restore_or_quarantine_item_dirs(store, report)?;
    check_items(store, report)?;
    store.finish_interrupted_locks()?;
    if let Some(aside) = report.database_moved_aside.clone() {
        store.append_custody("database_moved_aside", None, json!({"moved_to": aside, "items_restored": report.items_restored}))?;
    }
    Ok(())
}

/// `staging/<clip>.age.part` with no pending seal: a seal that stopped while encrypting, before
/// its pending row. Its key was never stored, so it opens nothing; the source is untouched.
fn remove_orphan_encrypted_copies(store: &Store) -> Result<()> {
    let pending: std::collections::HashSet<String> = db::pending_seals(&store.conn())?.into_iter().map(|p| p.0).collect();
    for entry in fs::read_dir(store.home.join("staging")).ctx(|| "listing staging".into())? {
        let entry = entry.ctx(|| "listing staging".into())?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(clip) = name.strip_suffix(".age.part") {
            if !pending.contains(clip) {
                fs::remove_file(entry.path()).ctx(|| "removing an unfinished encrypted copy".into())?;
            }
        }
    }
    Ok(())
}

/// Finishes a sealed-storage seal that a crash interrupted (see `Store::commit_sealed`).
fn finish_pending_sealed(store: &Store, p: &PendingSeal, source: &Path, report: &mut OpenReport) -> Result<()> {
    let clip_id = p.clip_id.as_str();
    let dir = store.item_dir(clip_id);
    let source_is_it = || -> bool {
        crate::hashing::hash_file(source, &mut |_| {}).map(|d| d.bytes == p.bytes && d.sha256_hex() == p.sha256 && d.blake3_hex() == p.blake3).unwrap_or(false)
    };
    if db::item_exists(&store.conn(), clip_id)? {
        // Committed: only the plaintext source's removal was left.
        if source.exists() && !source_is_it() {
            // Not the bytes sealed: someone else's file now. Leave it.
            db::delete_pending_seal(&store.conn(), clip_id)?;
            return Ok(());
        }
        return store.remove_sealed_source(source, clip_id);
    }
    let target = dir.join(crate::vault::media_age_name(&p.ext));
    if target.exists() {
        // Re-read the encrypted copy through its key: the plaintext must be the bytes hashed.
        let whole = (|| -> Result<bool> {
            let key = store.item_key_in(&dir)?;
            let f = fs::File::open(&target).ctx(|| "opening an interrupted seal".into())?;
            let r = key.media_reader(f)?;
            Ok(crate::hashing::hash_reader(r, &mut |_| {}).map(|d| d.bytes == p.bytes && d.sha256_hex() == p.sha256 && d.blake3_hex() == p.blake3).unwrap_or(false))
        })()?;
        if whole {
            store.commit_seal(p)?;
            if let Some(seg) = &p.segment {
                db::advance_session_at_least(&store.conn(), &seg.recording_id, seg.index as i64 + 1, &p.ended_at, seg.is_final)?;
            }
            report.seals_completed.push(clip_id.to_string());
            if source.exists() && !source_is_it() {
                db::delete_pending_seal(&store.conn(), clip_id)?;
                return Ok(());
            }
            return store.remove_sealed_source(source, clip_id);
        }
        // The source was never removed before the commit: it is intact.
        let q = quarantine(store, &dir, "interrupted-seal-mismatch")?;
        report.quarantined.push(q);
        db::delete_pending_seal(&store.conn(), clip_id)?;
        return Ok(());
    }
    // The encrypted copy never reached the item folder: the source is untouched. Remove our
    // copy and the key wraps (they open nothing else).
    let _ = fs::remove_file(store.home.join("staging").join(format!("{clip_id}.age.part")));
    if dir.exists() {
        fs::remove_dir_all(&dir).ctx(|| "removing an unfinished item folder".into())?;
    }
    db::delete_pending_seal(&store.conn(), clip_id)?;
    report.seals_undone += 1;
    Ok(())
}

fn finish_pending_seals(store: &Store, report: &mut OpenReport) -> Result<()> {
    let pending = db::pending_seals(&store.conn())?;
    for (clip_id, request, source) in pending {
        let request = match store.vault.as_ref() {
            Some(v) => v.open_text(&request)?,
            None => request,
        };
        let p: PendingSeal = serde_json::from_str(&request)?;
        if p.age.is_some() {
            finish_pending_sealed(store, &p, Path::new(&source), report)?;
            continue;
        }
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

/// An item folder the database does not know, that can be put back on record.
enum Restorable {
    /// A plain item: its signed manifest, exact bytes, signature, media extension.
    Plain(Box<Manifest>, Vec<u8>, Vec<u8>, Option<String>),
    /// A sealed item: its public facts, the manifest's age file, the signature, and whether it
    /// is locked (its manifest could not be read back on the phone, so only the facts are).
    Sealed(Box<crate::vault::SealedIndex>, Vec<u8>, Vec<u8>, bool),
}

impl Restorable {
    fn seq(&self) -> u64 {
        match self {
            Restorable::Plain(m, ..) => m.seq,
            Restorable::Sealed(ix, ..) => ix.seq,
        }
    }
    fn clip_id(&self) -> &str {
        match self {
            Restorable::Plain(m, ..) => &m.clip_id,
            Restorable::Sealed(ix, ..) => &ix.clip_id,
        }
    }
}

/// Reads a sealed item's folder back: unlocked, its manifest is decrypted and its signature and
/// digest checked against `sealed.json`; locked, the facts are taken as they are (the server
/// checks everything when the item arrives).
fn read_sealed_dir(store: &Store, dir: &Path, name: &str) -> Option<Restorable> {
    let ix: crate::vault::SealedIndex = serde_json::from_slice(&fs::read(dir.join(crate::vault::SEALED_INDEX)).ok()?).ok()?;
    let manifest_age = fs::read(dir.join(crate::vault::MANIFEST_AGE)).ok()?;
    let sig = fs::read(dir.join("manifest.sig")).ok()?;
    if ix.clip_id != name {
        return None;
    }
    if dir.join(crate::vault::KEY_VAULT).exists() {
        let key = store.item_key_in(dir).ok()?;
        let bytes = key.decrypt(&manifest_age, crate::manifest::MAX_MANIFEST_BYTES).ok()?;
        let m = Manifest::parse(&bytes).ok()?;
        crate::identity::verify(&store.key.verifying_key(), &bytes, &sig).ok()?;
        let ok = m.clip_id == name && m.device_id == store.device_id() && m.seq == ix.seq && crate::hashing::sha256_hex(&bytes) == ix.manifest_sha256;
        ok.then_some(Restorable::Sealed(Box::new(ix), manifest_age, sig, false))
    } else if dir.join(crate::vault::KEY_ESCROW).exists() {
        Some(Restorable::Sealed(Box::new(ix), manifest_age, sig, true))
    } else {
        None
    }
}

fn restore_or_quarantine_item_dirs(store: &Store, report: &mut OpenReport) -> Result<()> {
    let known: std::collections::HashSet<String> = {
        db::clip_ids(&store.conn())?.into_iter().collect()
    };
    let mut restorable: Vec<Restorable> = Vec::new();
    for entry in fs::read_dir(store.home.join("items")).ctx(|| "listing items".into())? {
        let entry = entry.ctx(|| "listing items".into())?;
        let name = entry.file_name().to_string_lossy().to_string();
        if known.contains(&name) {
            continue;
        }
        let dir = entry.path();
        if dir.join(crate::vault::SEALED_INDEX).exists() {
            match read_sealed_dir(store, &dir, &name) {
                Some(r) => restorable.push(r),
                None => report.quarantined.push(quarantine(store, &dir, "unattributed-item")?),
            }
            continue;
        }
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
                restorable.push(Restorable::Plain(Box::new(m), bytes, sig, ext));
            }
            None => report.quarantined.push(quarantine(store, &dir, "unattributed-item")?),
        }
    }
    restorable.sort_by_key(|r| r.seq());
    for r in restorable {
        if db::seq_taken(&store.conn(), r.seq())? {
            let dir = store.item_dir(r.clip_id());
            report.quarantined.push(quarantine(store, &dir, "seq-conflict")?);
            continue;
        }
        match r {
            Restorable::Plain(m, bytes, sig, ext) => {
                let sha = crate::hashing::sha256_hex(&bytes);
                db::insert_item(&store.conn(), &m, &bytes, &sig, &sha, ext.as_deref())?;
                store.append_custody("restored", Some(&m.clip_id), json!({"seq": m.seq, "manifest_sha256": sha}))?;
            }
            Restorable::Sealed(ix, manifest_age, sig, locked) => {
                let locked_at = locked.then(crate::time::now);
                db::restore_sealed_item(&store.conn(), &ix, &manifest_age, &sig, locked_at.as_deref())?;
                store.append_custody("restored", Some(&ix.clip_id), json!({"seq": ix.seq, "manifest_sha256": ix.manifest_sha256, "sealed": true, "locked": locked}))?;
            }
        }
        report.items_restored += 1;
    }
    Ok(())
}

fn check_items(store: &Store, report: &mut OpenReport) -> Result<()> {
    let rows = db::media_check_rows(&store.conn())?;
    for db::MediaCheckRow { clip_id, media_ext: ext, media_bytes: bytes, integrity, purged_at: purged, sealed, media_age_bytes } in rows {
        let dir = store.item_dir(&clip_id);
        if sealed {
            if !dir.join(crate::vault::MANIFEST_AGE).exists() || !dir.join("manifest.sig").exists() || !dir.join(crate::vault::SEALED_INDEX).exists() {
                let (manifest_age, sig, ix) = db::sealed_mirror_row(&store.conn(), &clip_id)?;
                crate::fsutil::write_atomic(&dir.join(crate::vault::SEALED_INDEX), &serde_json::to_vec_pretty(&ix)?)?;
                crate::fsutil::write_atomic(&dir.join("manifest.sig"), &sig)?;
                crate::fsutil::write_atomic(&dir.join(crate::vault::MANIFEST_AGE), &manifest_age)?;
                report.mirrors_rewritten += 1;
            }
        } else if !dir.join("manifest.json").exists() || !dir.join("manifest.sig").exists() {
            // Only read the blobs for the rare item whose mirror a crash left unwritten.
            let (manifest, sig) = db::manifest_of(&store.conn(), &clip_id)?;
            store.write_mirror(&clip_id, &manifest, &sig)?;
            report.mirrors_rewritten += 1;
        }
        let (Some(ext), Some(bytes)) = (ext, bytes) else { continue };
        if purged.is_some() || integrity != "ok" {
            continue;
        }
        // A sealed item's file on disk is its age file, of the length recorded when sealing.
        let (file, bytes) = match (sealed, media_age_bytes) {
            (true, Some(age)) => (crate::vault::media_age_name(&ext), age),
            _ => (format!("media.{ext}"), bytes),
        };
        let problem = match fs::metadata(dir.join(file)) {
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
