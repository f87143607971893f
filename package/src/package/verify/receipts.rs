//! The server's receipts and its transparency log: the package checkpoint (`log/checkpoint.txt`,
//! signed by the server, of the size the index names); per item the receipt (signed by the
//! server, naming the item, its original manifest and the original media's digests, at the log
//! position and time the index states), the receipt's own checkpoint and inclusion proof, and the
//! proof file `log/inclusion/<clip_id>.json`: the receipt's leaf in the package checkpoint's
//! tree, and that tree consistent with (an extension of) the receipt's.

use super::{clone_err, Verification};
use crate::package::{InclusionFile, PackageIndex, PackageItem};
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::identity::verify as verify_sig;
use fieldcap_evidence::manifest::Media;
use fieldcap_evidence::protocol::Receipt;
use fieldcap_evidence::tlog::{from_hex, leaf_hash, proof_from_hex, verify_checkpoint, verify_consistency, verify_inclusion, Checkpoint};

/// `log/checkpoint.txt`: signed by the server under the log origin, of the index's size.
pub(super) fn package_checkpoint(c: &mut Verification<'_>, index: &PackageIndex, key: &VerifyingKey) -> Result<Checkpoint> {
    let cp = c.read("log/checkpoint.txt").and_then(|b| {
        let cp = verify_checkpoint(&String::from_utf8_lossy(&b), &index.log_origin, key)?;
        if cp.size != index.checkpoint_size || cp.origin != index.log_origin {
            return Err(Error::Integrity("the checkpoint's size or origin differs from the index".into()));
        }
        Ok(cp)
    });
    c.res("log checkpoint signed by the server", "log/checkpoint.txt", cp.as_ref().map(|cp| format!("tree size {}", cp.size)).map_err(clone_err));
    cp
}

/// The receipt checks of one item. `manifest_media` is the original media the manifest names
/// (none for an observation or an unreadable manifest); `checkpoint` the package checkpoint, if
/// it verified.
pub(super) fn check(c: &mut Verification<'_>, index: &PackageIndex, it: &PackageItem, key: &VerifyingKey, manifest_media: Option<&Media>, checkpoint: Option<&Checkpoint>) {
    let rf = format!("clips/{}/receipt.json", it.clip_id);
    let rsf = format!("clips/{}/receipt.sig", it.clip_id);
    let receipt = c.read(&rf).and_then(|b| {
        let s = c.read(&rsf)?;
        verify_sig(key, &b, &s).map_err(|_| Error::Integrity(format!("{rsf} is not the server's signature over {rf}")))?;
        let r: Receipt = serde_json::from_slice(&b).map_err(|e| Error::Integrity(format!("not a receipt: {e}")))?;
        Ok(r)
    });
    let receipt = receipt.and_then(|r| {
        if r.clip_id != it.clip_id || r.device_id != it.device_id || r.seq != it.seq {
            return Err(Error::Integrity(format!("{rf} is the receipt of another item ({})", r.clip_id)));
        }
        if r.manifest_sha256 != it.original_manifest_sha256 {
            return Err(Error::Integrity(format!("{rf} names another manifest")));
        }
        match (&r.media, manifest_media) {
            (Some(a), Some(b)) if a.bytes == b.bytes && a.sha256 == b.sha256 && a.blake3 == b.blake3 => {}
            (None, None) => {}
            _ => return Err(Error::Integrity(format!("{rf} names other media than the manifest"))),
        }
        if r.log.index != it.log_index || r.received_at != it.received_at {
            return Err(Error::Integrity(format!("{rf} differs from the index (log index or time)")));
        }
        Ok(r)
    });
    c.res("receipt signed by the server names this manifest and media", &rf, receipt.as_ref().map(|r| format!("received {}, log leaf {}", r.received_at, r.log.index)).map_err(clone_err));
    let Ok(receipt) = receipt else { return };
    let own = (|| -> Result<String> {
        let rcp = verify_checkpoint(&receipt.log.checkpoint, &index.log_origin, key)?;
        if rcp.size != receipt.log.tree_size {
            return Err(Error::Integrity("the receipt's checkpoint has another size".into()));
        }
        verify_inclusion(receipt.log.index, receipt.log.tree_size, &leaf_hash(&receipt.leaf_bytes()), &proof_from_hex(&receipt.log.inclusion)?, &rcp.root)?;
        Ok(format!("leaf {} in tree of {}", receipt.log.index, receipt.log.tree_size))
    })();
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
        let rcp = verify_checkpoint(&receipt.log.checkpoint, &index.log_origin, key)?;
        verify_consistency(f.receipt_tree_size, f.tree_size, &rcp.root, &cp.root, &proof_from_hex(&f.consistency)?)?;
        Ok(format!("leaf {} in checkpoint of {}; consistent with the receipt's tree of {}", f.index, f.tree_size, f.receipt_tree_size))
    });
    c.res("inclusion in the package checkpoint", &inc_f, inc);
}
