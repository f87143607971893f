//! Hash first: every sealed item's manifest goes on record at the server before any of its
//! media moves, so a clip's existence and digests are provable even if the phone is taken
//! before the video leaves it.
//!
//! `POST /v1/manifests` carries the exact manifest bytes and signature. The server answers a
//! signed commitment, which is verified here (server key, clip id, device, seq, manifest digest)
//! before anything relies on it, and kept with the item; a commitment that does not verify is an
//! alarm and the item waits for a person. The same post again (idempotent at the server) is how
//! an expired upload URL is renewed (see `upload/resume.rs`).

use super::pass::{problem_title, Pass, Step, Stop};
use crate::store::db::sync::{self as rows, ItemRow};
use super::transport::join_url;
use crate::error::{Error, Result};
use crate::protocol::{self, CommitmentResponse};
use serde_json::json;

impl Pass<'_> {
    /// Puts one item's manifest on record (or notes why not).
    pub(super) fn send_manifest(&mut self, row: &ItemRow) -> Step<()> {
        let r = self.commit_manifest(row);
        self.with_transient_note(&row.clip_id, r)
    }

    /// Posts the manifest and verifies the commitment. `None` when the item was set aside (a
    /// refusal, or a commitment that does not verify).
    pub(super) fn post_manifest(&mut self, row: &ItemRow) -> Step<Option<CommitmentResponse>> {
        let (body, path) = if row.sealed {
            match self.sealed_submission(row)? {
                Some(b) => (b, protocol::SEALED_MANIFESTS_PATH),
                None => {
                    tracing::info!("a sealed item waits for the council's escrow key before its manifest is sent");
                    return Ok(None);
                }
            }
        } else {
            (serde_json::to_vec(&protocol::ManifestSubmission { manifest: protocol::b64(&row.manifest), sig: protocol::b64(&row.signature) })?, "/v1/manifests")
        };
        let url = join_url(&self.server.url, path);
        let resp = self.send(&format!("POST {path}"), &|p: &Pass<'_>| p.signed("POST", &url, body.clone(), Some("application/json")))?;
        if resp.status != 200 && resp.status != 201 {
            self.needs_attention(row, &format!("manifest refused: {}", problem_title(&resp)))?;
            return Ok(None);
        }
        let cr: CommitmentResponse = match serde_json::from_slice(&resp.body) {
            Ok(c) => c,
            Err(_) => return Err(Stop::Transient("POST /v1/manifests: the answer does not parse".into())),
        };
        // Verify the commitment before relying on it.
        if let Err(e) = self.verify_commitment(row, &cr) {
            self.store.raise_alarm("bad_commitment", &format!("item {}: {e}", row.clip_id))?;
            self.summary.alarms += 1;
            self.needs_attention(row, "the server's commitment did not verify")?;
            return Ok(None);
        }
        Ok(Some(cr))
    }

    /// The commitment is signed by the pinned server key and names exactly the manifest sent.
    fn verify_commitment(&self, row: &ItemRow, cr: &CommitmentResponse) -> Result<protocol::Commitment> {
        let (c, _, _): (protocol::Commitment, _, _) = cr.commitment.open(&self.server.key)?;
        if c.doc_type != protocol::types::COMMITMENT
            || c.clip_id != row.clip_id
            || c.device_id != self.store.device_id()
            || c.seq != row.seq
            || c.manifest_sha256 != row.manifest_sha256
            || c.server_key_id != self.server.key_id
        {
            return Err(Error::Integrity("the commitment does not match the manifest sent".into()));
        }
        Ok(c)
    }

    /// Posts the manifest and records the commitment (with a custody event). An observation's
    /// receipt comes in the same answer; media the server already holds only lacks its receipt.
    fn commit_manifest(&mut self, row: &ItemRow) -> Step<()> {
        let Some(cr) = self.post_manifest(row)? else { return Ok(()) };
        let commitment = serde_json::to_vec(&cr.commitment)?;
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction()?;
            rows::set_manifest_committed(&tx, &row.clip_id, &commitment, cr.upload_url.as_deref())?;
            crate::store::append_custody_tx(
                &tx,
                self.store.device_key(),
                "manifest_committed",
                Some(&row.clip_id),
                json!({"manifest_sha256": row.manifest_sha256, "server_key_id": self.server.key_id}),
            )?;
            tx.commit()?;
        }
        self.summary.manifests_committed += 1;
        if let Some(r) = &cr.receipt {
            let row = self.reload(&row.clip_id)?;
            self.accept_receipt(&row, r)?;
        } else if cr.upload_url.is_none() {
            // Observations, or media the server already holds: only the receipt is missing.
            self.set_state(&row.clip_id, "uploaded")?;
        }
        Ok(())
    }
}
