//! Completing an item: log leaf, checkpoint, signed receipt — stored in one transaction.
//!
//! When an item is complete (an observation at commit time; media once its bytes verified), the
//! server builds the leaf ([`fieldcap_evidence::protocol::log_leaf_bytes`]), appends it to the log
//! cache, signs a fresh checkpoint for the new size, computes the inclusion proof from the leaf to
//! that checkpoint, and signs the [`Receipt`]. Leaf, checkpoint, receipt and upload state are then
//! stored together ([`crate::store::RecordStore::complete_item`]); if that fails the cache append
//! is undone, so the log on disk and in memory never disagree. Appends are serialised by the log
//! lock.
//!
//! Anyone verifies a receipt with [`verify_receipt`] (a thin call of
//! [`fieldcap_evidence::receipt::ReceiptVerifier`]):
//!
//! ```no_run
//! # fn f(doc: fieldcap_evidence::protocol::SignedDoc, key: ed25519_dalek::VerifyingKey) -> fieldcap_server::Result<()> {
//! let receipt = fieldcap_server::receipts::verify_receipt(&doc, &key, "fieldcap.intake/…")?;
//! println!("leaf {} of {}", receipt.log.index, receipt.log.tree_size);
//! # Ok(()) }
//! ```

use crate::error::Result;
use crate::state::AppState;
use crate::store::{Completion, ItemRecord};
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::receipt::ReceiptVerifier;
use fieldcap_evidence::tlog::{leaf_hash, proof_to_hex};
use fieldcap_evidence::protocol::{log_leaf_bytes, types, Receipt, ReceiptLog, ReceiptMedia, SignedDoc};

/// Completes `item` (in state `committed`): appends its leaf and stores the signed receipt.
/// Returns (receipt bytes, signature).
pub(crate) fn complete(state: &AppState, item: &ItemRecord, media: Option<ReceiptMedia>, blob_sha256: Option<String>) -> Result<(Vec<u8>, Vec<u8>)> {
    let received_at = fieldcap_evidence::time::now();
    let leaf = log_leaf_bytes(&item.clip_id, &item.device_id, item.seq, &item.manifest_sha256, media.as_ref(), &received_at);
    let h = leaf_hash(&leaf);
    let mut tree = state.log()?;
    // Another replica (or `fieldcap dispose`) may append between the catch-up above and the
    // store's transaction, which then refuses the leaf (`LogMoved`) and stores nothing: catch
    // up and build the completion again, a bounded number of times.
    let mut attempt = 0;
    loop {
        match complete_at_end(state, &mut tree, item, media.clone(), blob_sha256.clone(), &received_at, &leaf, h) {
            Err(crate::Error::LogMoved) if attempt < LOG_MOVED_RETRIES => {
                attempt += 1;
                state.catch_up(&mut tree)?;
            }
            other => return other,
        }
    }
}

/// How often a completion is built again when other writers keep appending to the log.
const LOG_MOVED_RETRIES: u32 = 16;

/// One attempt of [`complete`] at the cache's current end.
#[allow(clippy::too_many_arguments)]
fn complete_at_end(
    state: &AppState,
    tree: &mut crate::log::LogTree,
    item: &ItemRecord,
    media: Option<ReceiptMedia>,
    blob_sha256: Option<String>,
    received_at: &str,
    leaf: &[u8],
    h: fieldcap_evidence::tlog::Hash,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let index = tree.push(h);
    let size = index + 1;
    // The receipt as stored (document, bytes, signature) and its checkpoint (signed note).
    type Stored = (Receipt, Vec<u8>, Vec<u8>, fieldcap_evidence::tlog::Checkpoint, String);
    let built = (|| -> Result<Stored> {
        let root = tree.root(size)?;
        let proof = tree.inclusion(index, size)?;
        let cp = fieldcap_evidence::tlog::Checkpoint { origin: state.origin.clone(), size, root };
        let note = fieldcap_evidence::tlog::sign_checkpoint(&cp, &state.origin, &state.key);
        let receipt = Receipt {
            doc_type: types::RECEIPT.into(),
            clip_id: item.clip_id.clone(),
            device_id: item.device_id.clone(),
            seq: item.seq,
            manifest_sha256: item.manifest_sha256.clone(),
            media,
            received_at: received_at.to_string(),
            log: ReceiptLog { index, tree_size: size, checkpoint: note.clone(), inclusion: proof_to_hex(&proof) },
            server_key_id: state.key_id.clone(),
        };
        debug_assert_eq!(receipt.leaf_bytes(), leaf);
        let (body, sig) = state.sign_doc(&receipt)?;
        let c = Completion {
            clip_id: item.clip_id.clone(),
            log_index: index,
            leaf: leaf.to_vec(),
            leaf_hash: h,
            tree_size: size,
            checkpoint: note.clone(),
            receipt: body.clone(),
            receipt_sig: sig.clone(),
            received_at: received_at.to_string(),
            blob_sha256,
        };
        state.records.complete_item(&c)?;
        Ok((receipt, body, sig, cp, note))
    })();
    let (mut receipt, body, sig, cp, note) = match built {
        Ok(b) => b,
        Err(e) => {
            tree.truncate(index);
            return Err(e);
        }
    };
    // Only now, with the leaf and checkpoint stored, the witnesses (those that answer in time;
    // still under the log lock, so they see the log's order): asked before, a store failure or
    // a crash would leave them a checkpoint the log no longer has, and every later one would
    // look like a fork to them. The receipt is then signed again with the cosigned note and
    // stored in place of the first, which nobody has seen yet; if that fails, the first stands
    // (the background catch-up still adds the lines to the stored checkpoint).
    let cosigned = state.witnessing.cosign(tree, &cp, &note);
    if cosigned == note {
        return Ok((body, sig));
    }
    receipt.log.checkpoint = cosigned.clone();
    let again = state.sign_doc(&receipt).and_then(|(b2, s2)| {
        Ok((state.records.cosign_receipt(&item.clip_id, &body, size, &cosigned, &b2, &s2)?, b2, s2))
    });
    match again {
        Ok((true, b2, s2)) => Ok((b2, s2)),
        Ok((false, _, _)) => {
            tracing::warn!("the cosigned receipt was not stored; the receipt without cosignatures stands");
            Ok((body, sig))
        }
        Err(e) => {
            tracing::warn!(error = %e, "storing the cosigned receipt failed; the receipt without cosignatures stands");
            Ok((body, sig))
        }
    }
}

/// Verifies a signed receipt completely: server signature, type and key id, checkpoint
/// signature (key name = `origin`), and the inclusion proof of the receipt's own leaf against the
/// checkpoint root — through [`ReceiptVerifier`], the one receipt verifier the device, the server
/// and the package verifier share. Returns the receipt. (Comparing its digests with the item's is
/// the caller's part: [`ReceiptVerifier::verify`] does both when the item is known.)
pub fn verify_receipt(doc: &SignedDoc, server_key: &VerifyingKey, origin: &str) -> Result<Receipt> {
    let (body, sig) = doc.decode()?;
    Ok(ReceiptVerifier::new(*server_key, origin).verify_unbound(&body, &sig)?)
}
