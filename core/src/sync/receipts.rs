//! Receipts and the transparency log: what makes an upload provable.
//!
//! A receipt comes with the last `PATCH` (or with the commitment, for an observation or media
//! the server already holds), or is fetched with `GET /v1/receipts/{clip_id}` when that answer
//! was lost. It is verified in full before it is kept: the server's signature; clip, device,
//! seq, manifest digest and media digests equal to the device's own; the inclusion proof
//! against the receipt's checkpoint; the checkpoint's signature and log origin. Then the new
//! checkpoint is checked against the newest one the device holds (a consistency proof from the
//! server): a log that is not an extension of what the device saw before is an alarm, recorded in
//! custody and never ignored. A receipt that does not verify is an alarm too, and the item waits
//! for a person. After a verified receipt, the local media copy may be purged (option).

use super::pass::{problem_title, Pass, Step, Stop};
use crate::store::db::sync::{self as rows, ItemRow};
use super::transport::{join_url, HttpRequest};
use super::SyncPhase;
use crate::error::{Error, Result};
use crate::manifest::Media;
use crate::protocol::{self, Receipt, SignedDoc};
use fieldcap_evidence::receipt::{ExpectedItem, ReceiptVerifier};
use serde_json::json;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

impl Pass<'_> {
    /// GET the receipt; true if one was found (and handled).
    pub(super) fn try_receipt(&mut self, clip_id: &str) -> Step<bool> {
        let url = join_url(&self.server.url, &format!("/v1/receipts/{clip_id}"));
        let resp = self.send("GET receipt", &|p: &Pass<'_>| p.signed("GET", &url, vec![], None))?;
        if resp.status != 200 {
            return Ok(false);
        }
        let doc: SignedDoc = serde_json::from_slice(&resp.body).map_err(|_| Stop::Transient("GET receipt: the answer does not parse".into()))?;
        let row = self.reload(clip_id)?;
        self.accept_receipt(&row, &doc)?;
        Ok(true)
    }

    /// Fetches the receipt of an item whose media the server holds.
    pub(super) fn fetch_receipt(&mut self, clip_id: &str) -> Step<()> {
        let row = self.reload(clip_id)?;
        if row.state != "uploaded" {
            return Ok(());
        }
        self.report(SyncPhase::Receipt, Some(clip_id), 0, 0);
        // The server may still be finishing (re-hashing, logging): a few short waits.
        for attempt in 0..6u32 {
            if self.try_receipt(clip_id)? {
                return Ok(());
            }
            self.sleep(self.backoff(attempt).min(Duration::from_secs(2)))?;
        }
        Err(Stop::Transient("the server has no receipt yet".into()))
    }

    /// Verifies a receipt in full and stores it; a failure is recorded on the item (and as an
    /// alarm when the log is inconsistent).
    pub(super) fn accept_receipt(&mut self, row: &ItemRow, doc: &SignedDoc) -> Step<()> {
        self.report(SyncPhase::Receipt, Some(&row.clip_id), 0, 0);
        let media = row.signed_media()?;
        let (receipt, body, sig) = match self.verify_receipt(row, media.as_ref(), doc) {
            Ok(v) => v,
            Err(e) => {
                self.store.raise_alarm("bad_receipt", &format!("item {}: {e}", row.clip_id))?;
                self.summary.alarms += 1;
                self.needs_attention(row, "the server's receipt did not verify")?;
                return Ok(());
            }
        };
        // Witnesses the device knows: a cosignature of theirs that does not verify is an alarm.
        self.check_receipt_cosignatures(&row.clip_id, &receipt.log.checkpoint)?;
        // Consistency of the log with the newest checkpoint held.
        let consistent = match self.check_consistency(&receipt.log.checkpoint, receipt.log.tree_size) {
            Ok(c) => c,
            Err(Stop::Fatal(Error::Integrity(e))) => Err(e),
            Err(other) => return Err(other),
        };
        let received_at = crate::time::now();
        let ok = consistent.is_ok();
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction()?;
            rows::set_receipt(
                &tx,
                &row.clip_id,
                if ok { "receipted" } else { "needs_attention" },
                &body,
                &sig,
                &received_at,
                if ok { None } else { Some("transparency log inconsistent with an earlier checkpoint") },
            )?;
            crate::store::append_custody_tx(
                &tx,
                self.store.device_key(),
                "receipted",
                Some(&row.clip_id),
                json!({"log_index": receipt.log.index, "tree_size": receipt.log.tree_size, "received_at": receipt.received_at, "receipt_sha256": crate::hashing::sha256_hex(&body)}),
            )?;
            tx.commit()?;
        }
        if let Err(detail) = consistent {
            self.store.raise_alarm("log_inconsistent", &detail)?;
            self.summary.alarms += 1;
            return Ok(());
        }
        let _ = crate::fsutil::write_atomic(&self.store.item_dir(&row.clip_id).join("receipt.json"), &body);
        let _ = crate::fsutil::write_atomic(&self.store.item_dir(&row.clip_id).join("receipt.sig"), &sig);
        self.summary.receipts_verified += 1;
        if self.opts.purge_after_receipt && media.is_some() {
            self.purge(row)?;
        }
        Ok(())
    }

    fn verify_receipt(&self, row: &ItemRow, media: Option<&Media>, doc: &SignedDoc) -> Result<(Receipt, Vec<u8>, Vec<u8>)> {
        let (body, sig) = doc.decode()?;
        let expected = ExpectedItem {
            clip_id: &row.clip_id,
            device_id: self.store.device_id(),
            seq: row.seq,
            manifest_sha256: &row.manifest_sha256,
            media,
        };
        let r = self.receipt_verifier().verify(&body, &sig, &expected)?;
        Ok((r, body, sig))
    }

    /// The one receipt verifier (fieldcap-evidence), for the server pinned at enrolment.
    pub(super) fn receipt_verifier(&self) -> ReceiptVerifier {
        ReceiptVerifier::new(self.server.key, &self.server.origin)
    }

    /// Checks the new checkpoint against the newest held; stores it if newer. `Ok(Err(detail))`
    /// is an inconsistency (the caller raises the alarm).
    pub(super) fn check_consistency(&mut self, checkpoint: &str, size: u64) -> Step<std::result::Result<(), String>> {
        let new = self.receipt_verifier().checkpoint(checkpoint)?;
        let Some(held_text) = self.store.newest_checkpoint()? else {
            rows::server_put(&self.store.conn(), "checkpoint", checkpoint.as_bytes())?;
            return Ok(Ok(()));
        };
        let held = self.receipt_verifier().checkpoint(&held_text)?;
        let (old, newer, store_new) = if size >= held.size { (&held, &new, size > held.size) } else { (&new, &held, false) };
        if old.size == newer.size {
            return Ok(if old.root == newer.root {
                Ok(())
            } else {
                Err(format!("two checkpoints of size {} have different roots", old.size))
            });
        }
        let url = join_url(&self.server.url, &format!("/v1/log/consistency?from={}&to={}", old.size, newer.size));
        let resp = self.send("GET consistency", &|p: &Pass<'_>| HttpRequest {
            method: "GET".into(),
            url: url.clone(),
            headers: vec![],
            body: vec![],
            timeout: p.opts.request_timeout,
        })?;
        if resp.status != 200 {
            return Err(Stop::Transient(format!("GET consistency: {}", problem_title(&resp))));
        }
        let pr: protocol::ProofResponse = serde_json::from_slice(&resp.body).map_err(|_| Stop::Transient("GET consistency: the answer does not parse".into()))?;
        let proof = decode_proof(&pr.proof)?;
        if crate::tlog::verify_consistency(old.size, newer.size, &old.root, &newer.root, &proof).is_err() {
            return Ok(Err(format!("the log of size {} is not an extension of the checkpoint of size {} held by this device", newer.size, old.size)));
        }
        if store_new {
            rows::server_put(&self.store.conn(), "checkpoint", checkpoint.as_bytes())?;
        }
        Ok(Ok(()))
    }

    /// Removes the local media copy after a verified receipt (recorded in custody first).
    fn purge(&mut self, row: &ItemRow) -> Step<()> {
        let Some(ext) = &row.media_ext else { return Ok(()) };
        let name = if row.sealed { crate::vault::media_age_name(ext) } else { format!("media.{ext}") };
        let path: PathBuf = self.store.item_dir(&row.clip_id).join(name);
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction()?;
            rows::set_purged(&tx, &row.clip_id, &crate::time::now())?;
            crate::store::append_custody_tx(&tx, self.store.device_key(), "purged", Some(&row.clip_id), json!({"reason": "verified_receipt"}))?;
            tx.commit()?;
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Stop::Fatal(Error::io("removing the purged media", e))),
        }
        self.summary.purged += 1;
        Ok(())
    }
}

fn decode_proof(nodes: &[String]) -> Result<Vec<[u8; 32]>> {
    nodes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
                .ok_or_else(|| Error::Integrity("a proof node is not 32 bytes of hex".into()))
        })
        .collect()
}
