//! The server's receipts and its transparency log: the package checkpoint (`log/checkpoint.txt`,
//! signed by the server, of the size the index names); per item the receipt (signed by the
//! server, naming the item, its original manifest and the original media's digests, at the log
//! position and time the index states), the receipt's own checkpoint and inclusion proof, and the
//! proof file `log/inclusion/<clip_id>.json`: the receipt's leaf in the package checkpoint's
//! tree, and that tree consistent with (an extension of) the receipt's.
//!
//! Receipts are checked by the workspace's one receipt verifier
//! ([`fieldcap_evidence::receipt::ReceiptVerifier`], the same the device uses after an upload),
//! in two report lines: what the receipt names, then its own log proof.

use super::Verification;
use crate::package::{InclusionFile, PackageIndex, PackageItem};
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::manifest::Media;
use fieldcap_evidence::receipt::{ExpectedItem, ReceiptVerifier};
use fieldcap_evidence::tlog::{from_hex, leaf_hash, proof_from_hex, verify_consistency, verify_inclusion, Checkpoint};

/// `log/checkpoint.txt`: signed by the server under the log origin, of the index's size.
pub(super) fn package_checkpoint(c: &mut Verification<'_>, index: &PackageIndex, receipts: &ReceiptVerifier) -> Result<Checkpoint> {
    let cp = c.read("log/checkpoint.txt").and_then(|b| {
        let cp = receipts.checkpoint(&String::from_utf8_lossy(&b))?;
        if cp.size != index.checkpoint_size {
            return Err(Error::Integrity(format!("the checkpoint is of tree size {}, the index says {}", cp.size, index.checkpoint_size)));
        }
        Ok(cp)
    });
    c.res("log checkpoint signed by the server", "log/checkpoint.txt", cp.as_ref().map(|cp| format!("tree size {}", cp.size)).map_err(Error::duplicate));
    cp
}

/// The receipt checks of one item. `manifest_media` is the original media the manifest names
/// (none for an observation or an unreadable manifest); `checkpoint` the package checkpoint, if
/// it verified.
pub(super) fn check(c: &mut Verification<'_>, it: &PackageItem, receipts: &ReceiptVerifier, manifest_media: Option<&Media>, checkpoint: Option<&Checkpoint>) {
    let rf = format!("clips/{}/receipt.json", it.clip_id);
    let rsf = format!("clips/{}/receipt.sig", it.clip_id);
    // The receipt names the original manifest (in a release, the one the derived manifest names).
    let expected = ExpectedItem { clip_id: &it.clip_id, device_id: &it.device_id, seq: it.seq, manifest_sha256: &it.original_manifest_sha256, media: manifest_media };
    let receipt = c.read(&rf).and_then(|body| {
        let receipt = receipts.open(&body, &c.read(&rsf)?)?;
        expected.check(&receipt)?;
        if receipt.log.index != it.log_index || receipt.received_at != it.received_at {
            return Err(Error::Integrity(format!("{rf} differs from the index (log index or time)")));
        }
        Ok(receipt)
    });
    c.res("receipt signed by the server names this manifest and media", &rf, receipt.as_ref().map(|r| format!("received {}, log leaf {}", r.received_at, r.log.index)).map_err(Error::duplicate));
    let Ok(receipt) = receipt else { return };
    let own = receipts.check_log(&receipt).map(|_| format!("leaf {} in tree of {}", receipt.log.index, receipt.log.tree_size));
    c.res("receipt's own inclusion proof", &rf, own);
    // Inclusion in the package checkpoint.
    let inc_f = format!("log/inclusion/{}.json", it.clip_id);
    let inc = c.read(&inc_f).and_then(|b| {
        let f: InclusionFile = serde_json::from_slice(&b).map_err(|e| Error::Integrity(format!("not an inclusion file: {e}")))?;
        let cp = checkpoint.ok_or_else(|| Error::Integrity("no valid package checkpoint".into()))?;
        let lh = leaf_hash(&receipt.leaf_bytes());
        if f.clip_id != it.clip_id || f.index != receipt.log.index || f.tree_size != cp.size || from_hex(&f.leaf_hash, "leaf_hash")? != lh {
            return Err(Error::Integrity("the proof is for another leaf or tree".into()));
        }
        verify_inclusion(f.index, f.tree_size, &lh, &proof_from_hex(&f.inclusion)?, &cp.root)?;
        if f.receipt_tree_size != receipt.log.tree_size {
            return Err(Error::Integrity("the consistency proof starts at another tree size than the receipt's".into()));
        }
        let rcp = receipts.checkpoint(&receipt.log.checkpoint)?;
        verify_consistency(f.receipt_tree_size, f.tree_size, &rcp.root, &cp.root, &proof_from_hex(&f.consistency)?)?;
        Ok(format!("leaf {} in checkpoint of {}; consistent with the receipt's tree of {}", f.index, f.tree_size, f.receipt_tree_size))
    });
    c.res("inclusion in the package checkpoint", &inc_f, inc);
}
