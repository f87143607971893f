//! Each device's manifest chain as the server holds it (`devices[].chain` in the signed index):
//! consecutive links are `prev`-linked by SHA-256, seq 1 has no `prev`, and every packaged item's
//! manifest is the one at its seq. A seq that never reached the server is a note naming it by
//! number, not a failure (the chain cannot be linked across it, and receipts and the log anchor
//! what did arrive); seqs on record but not selected for the package are listed as such.

use super::Verification;
use crate::package::{ChainLink, PackageIndex};
use std::collections::{BTreeSet, HashMap};

/// One "device chain" check per device. `chain_seen` maps (device, seq) to the SHA-256 of the
/// original manifest the package holds for it (items whose manifest could be read).
pub(super) fn check(c: &mut Verification<'_>, index: &PackageIndex, chain_seen: &HashMap<(String, u64), String>) {
    for d in &index.devices {
        let file = format!("package.json (device {})", d.device_id);
        let mut problems = Vec::new();
        let mut notes = Vec::new();
        let mut prev: Option<&ChainLink> = None;
        for l in &d.chain {
            if let Some(p) = prev {
                if l.seq <= p.seq {
                    problems.push(format!("seq {} follows seq {}: out of order", l.seq, p.seq));
                } else if l.seq != p.seq + 1 {
                    let missing: Vec<String> = (p.seq + 1..l.seq).map(|s| s.to_string()).collect();
                    notes.push(format!("seq {} never reached the server, so the chain cannot be linked across it", missing.join(", ")));
                } else if l.prev.as_deref() != Some(p.manifest_sha256.as_str()) {
                    problems.push(format!("seq {}: prev is not the SHA-256 of seq {}", l.seq, p.seq));
                }
            } else if l.seq == 1 && l.prev.is_some() {
                problems.push("seq 1 has a prev".into());
            }
            prev = Some(l);
        }
        let links: HashMap<u64, &ChainLink> = d.chain.iter().map(|l| (l.seq, l)).collect();
        for it in index.items.iter().filter(|i| i.device_id == d.device_id) {
            match (links.get(&it.seq), chain_seen.get(&(d.device_id.clone(), it.seq))) {
                (None, _) => problems.push(format!("seq {} is not in the chain", it.seq)),
                (Some(l), Some(sha)) if &l.manifest_sha256 != sha => problems.push(format!("seq {}: the manifest in the package is not the one in the chain", it.seq)),
                (Some(_), None) => problems.push(format!("seq {} (clips/{}) is missing or unreadable", it.seq, it.clip_id)),
                _ => {}
            }
        }
        let included: BTreeSet<u64> = index.items.iter().filter(|i| i.device_id == d.device_id).map(|i| i.seq).collect();
        let not_selected: Vec<String> = d.chain.iter().filter(|l| !included.contains(&l.seq)).map(|l| l.seq.to_string()).collect();
        if !not_selected.is_empty() {
            notes.push(format!("seq {} on record but not selected for this package (linked by hash)", not_selected.join(", ")));
        }
        let range = match (d.chain.first(), d.chain.last()) {
            (Some(a), Some(b)) => format!("seq {}..{}", a.seq, b.seq),
            _ => "empty".into(),
        };
        if problems.is_empty() {
            let detail = if notes.is_empty() { format!("{range}: seq and prev links hold") } else { format!("{range}: seq and prev links hold; note: {}", notes.join("; ")) };
            c.ok("device chain", &file, detail);
        } else {
            c.fail("device chain", &file, problems.join("; "));
        }
    }
}
