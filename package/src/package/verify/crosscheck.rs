//! Cross-checks that need no pinned key: what the package's server side says against records
//! that a re-signing cannot redo.
//!
//! Everything the server signed (index, receipts, checkpoints, certificates, its custody
//! events) can be signed again by whoever holds *a* key, and `server.pub.pem` is whatever the
//! package carries. The devices' own custody events are signed by the device keys, and they
//! name the server the device dealt with and the receipts it got:
//!
//! * `enrolled {server_key_id}` and `manifest_committed {manifest_sha256, server_key_id}`: a
//!   device is pinned to one server key at enrolment and refuses another, so every one of these
//!   events must name this package's server key id (and a commitment of a packaged item the
//!   manifest the package holds);
//! * `receipted {log_index, tree_size, received_at, receipt_sha256}` of a packaged item must
//!   match that item's `receipt.json`: SHA-256 of its exact bytes, time and log position.
//!
//! One "device custody agrees with the package" line per device names each disagreement
//! (device, event seq, clip, both values). A device that has uploaded none of its log gives a
//! note; a package with no device custody at all says, on its own line, that no device
//! cross-check was possible (not a failure: such a package can only be anchored by a pinned
//! server key).
//!
//! And the export itself: the server's per-item `exported` events carrying this package's id and
//! the export event's `items`/`items_sha256` must describe exactly the items in `package.json`.
//! This names an item removed from a package (its files and its index entry) even though the
//! index signature then fails too; when the per-item events were removed as well, an item id
//! found elsewhere in `custody.jsonl` that makes `items_sha256` match is named.

use super::Verification;
use crate::package::PackageIndex;
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::hashing::sha256_hex;
use fieldcap_evidence::identity::verify as verify_sig;
use fieldcap_evidence::protocol::Receipt;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// At most this many disagreements are spelled out per line; the rest are counted.
const MAX_LISTED: usize = 8;

/// A custody event whose signature holds, with its parsed body.
struct Signed {
    ev: CustodyEvent,
    body: Value,
}

/// Both cross-checks. Events whose signature does not hold are ignored here (the custody check
/// fails on them).
pub(super) fn check(c: &mut Verification<'_>, index: &PackageIndex, key: &VerifyingKey, device_keys: &HashMap<String, VerifyingKey>) {
    let Ok(bytes) = c.read("custody.jsonl") else { return };
    let text = String::from_utf8_lossy(&bytes);
    let server_actor = format!("server:{}", index.server_key_id);
    let mut server: Vec<Signed> = Vec::new();
    let mut devices: BTreeMap<String, Vec<Signed>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(ev) = CustodyEvent::from_jsonl(line) else { continue };
        let Ok(body) = serde_json::from_slice::<Value>(&ev.body) else { continue };
        let actor = body["actor"].as_str().unwrap_or_default().to_string();
        if actor == server_actor {
            if verify_sig(key, &ev.body, &ev.sig).is_ok() {
                server.push(Signed { ev, body });
            }
        } else if let Some(dev) = actor.strip_prefix("device:") {
            if device_keys.get(dev).is_some_and(|k| verify_sig(k, &ev.body, &ev.sig).is_ok()) {
                devices.entry(dev.to_string()).or_default().push(Signed { ev, body });
            }
        }
    }
    exported_items(c, index, &server, &devices);
    if devices.is_empty() {
        c.ok(
            "device custody cross-check",
            "custody.jsonl",
            "not possible: this package holds no device custody events, so nothing the devices signed can be compared with the server's \
             signatures (a package signed again with another server key would not show here; compare the server key with the one \
             published out of band)"
                .into(),
        );
        return;
    }
    for d in &index.devices {
        device_agrees(c, index, &d.device_id, devices.get(&d.device_id).map(Vec::as_slice).unwrap_or_default());
    }
}

/// The export's own record against the index: each per-item `exported` event of this package
/// names an item in the index, each item has one, and the export event's count and
/// `items_sha256` are those of the index's item list.
fn exported_items(c: &mut Verification<'_>, index: &PackageIndex, server: &[Signed], devices: &BTreeMap<String, Vec<Signed>>) {
    let ours = |s: &&Signed| s.ev.event == "exported" && s.body["detail"]["package_id"].as_str() == Some(index.package_id.as_str());
    let Some(export) = server.iter().filter(ours).find(|s| s.ev.clip_id.is_none() && s.ev.seq == index.export_custody_seq) else {
        // No signed export event of this package: the custody check names that.
        return;
    };
    let ids: Vec<&str> = index.items.iter().map(|i| i.clip_id.as_str()).collect();
    let in_index: BTreeSet<&str> = ids.iter().copied().collect();
    let per_item: BTreeMap<&str, u64> = server.iter().filter(ours).filter_map(|s| s.ev.clip_id.as_deref().map(|c| (c, s.ev.seq))).collect();
    let mut problems = Vec::new();
    for (clip, seq) in &per_item {
        if !in_index.contains(clip) {
            problems.push(format!("item {clip} is missing: the server recorded exporting it in this package (custody.jsonl server event {seq}) but package.json does not list it"));
        }
    }
    for id in &ids {
        if !per_item.contains_key(id) {
            problems.push(format!("item {id} is in package.json but no server 'exported' event of this package names it"));
        }
    }
    let detail = &export.body["detail"];
    let sha = sha256_hex(ids.join("\n").as_bytes());
    let count = detail["items"].as_u64();
    let want_sha = detail["items_sha256"].as_str();
    if count.is_some_and(|n| n != ids.len() as u64) || want_sha.is_some_and(|s| s != sha) {
        let named = problems.iter().any(|p| p.contains("is missing"));
        let one_missing = count == Some(ids.len() as u64 + 1);
        let found = if named || !one_missing { None } else { want_sha.and_then(|w| find_missing(&ids, w, server, devices)) };
        problems.push(match found {
            Some(clip) => format!("item {clip} is missing: the export event (server event {}) lists {} items whose SHA-256 is that of package.json's list with {clip} added", export.ev.seq, count.unwrap_or_default()),
            None => format!(
                "the export event (server event {}) names {} items (items_sha256 {}), package.json lists {} (SHA-256 {sha})",
                export.ev.seq,
                count.map_or("?".into(), |n| n.to_string()),
                want_sha.unwrap_or("?"),
                ids.len()
            ),
        });
    }
    if problems.is_empty() {
        c.ok("exported items match the index", "package.json", format!("the export event (server event {}) and its per-item events name the {} items listed", export.ev.seq, ids.len()));
    } else {
        c.fail("exported items match the index", "package.json", listed(&problems));
    }
}

/// At most this many bytes are hashed looking for a missing item (a few hundred milliseconds).
const SEARCH_BUDGET: usize = 256 << 20;

/// An item id seen in `custody.jsonl` but not in `ids` that, inserted somewhere in `ids`, gives
/// the export event's `items_sha256` (one item removed along with its per-item events). The
/// search is skipped when it would hash more than [`SEARCH_BUDGET`] bytes.
fn find_missing(ids: &[&str], want: &str, server: &[Signed], devices: &BTreeMap<String, Vec<Signed>>) -> Option<String> {
    let listed: BTreeSet<&str> = ids.iter().copied().collect();
    let candidates: BTreeSet<&str> = server.iter().chain(devices.values().flatten()).filter_map(|s| s.ev.clip_id.as_deref()).filter(|c| !listed.contains(c)).collect();
    let joined_len = ids.iter().map(|i| i.len() + 1).sum::<usize>() + 40;
    if candidates.len().saturating_mul(ids.len() + 1).saturating_mul(joined_len) > SEARCH_BUDGET {
        return None;
    }
    for cand in candidates {
        for pos in 0..=ids.len() {
            let mut v = ids.to_vec();
            v.insert(pos, cand);
            if sha256_hex(v.join("\n").as_bytes()) == want {
                return Some(cand.to_string());
            }
        }
    }
    None
}

/// One device's own events against the package's server side.
fn device_agrees(c: &mut Verification<'_>, index: &PackageIndex, device: &str, events: &[Signed]) {
    let file = format!("custody.jsonl (device {device})");
    let name = "device custody agrees with the package";
    if events.is_empty() {
        c.ok(name, &file, "note: the package holds none of this device's own custody events (not uploaded yet), so nothing to compare".into());
        return;
    }
    let key_id = index.server_key_id.as_str();
    let items: HashMap<&str, &crate::package::PackageItem> = index.items.iter().filter(|i| i.device_id == device).map(|i| (i.clip_id.as_str(), i)).collect();
    let mut problems = Vec::new();
    // Server key ids other than the package's, and the events that name them.
    let mut other_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut enrolled, mut committed, mut receipted) = (0usize, 0usize, 0usize);
    let mut receipts: HashMap<&str, Option<(Receipt, String)>> = HashMap::new();
    for s in events {
        let (e, d) = (&s.ev, &s.body["detail"]);
        let at = match e.clip_id.as_deref() {
            Some(clip) => format!("event {} '{}' of clip {clip}", e.seq, e.event),
            None => format!("event {} '{}'", e.seq, e.event),
        };
        match e.event.as_str() {
            "enrolled" | "manifest_committed" => {
                // A field the event does not carry is not compared (the forger cannot remove it).
                let named = d["server_key_id"].as_str().unwrap_or(key_id);
                if named != key_id {
                    other_key.entry(named.to_string()).or_default().push(at.clone());
                }
                if e.event == "enrolled" {
                    enrolled += 1;
                    continue;
                }
                committed += 1;
                if let Some(it) = e.clip_id.as_deref().and_then(|clip| items.get(clip)) {
                    let m = d["manifest_sha256"].as_str().unwrap_or(&it.original_manifest_sha256);
                    if m != it.original_manifest_sha256 {
                        problems.push(format!("{at} committed manifest SHA-256 {m}, the package's manifest is {}", it.original_manifest_sha256));
                    }
                }
            }
            "receipted" => {
                let Some(clip) = e.clip_id.as_deref().filter(|clip| items.contains_key(clip)) else { continue };
                let rf = format!("clips/{clip}/receipt.json");
                let held = receipts.entry(clip).or_insert_with(|| {
                    let b = c.read(&rf).ok()?;
                    let r: Receipt = serde_json::from_slice(&b).ok()?;
                    Some((r, sha256_hex(&b)))
                });
                // An unreadable receipt fails its own check.
                let Some((r, sha)) = held else { continue };
                receipted += 1;
                let str_field = |k: &str| d.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), String::from));
                let num_field = |k: &str| d.get(k).map(|v| v.to_string());
                let pairs = [
                    ("receipt_sha256", "SHA-256", str_field("receipt_sha256"), sha.clone()),
                    ("received_at", "received_at", str_field("received_at"), r.received_at.clone()),
                    ("log_index", "log index", num_field("log_index"), r.log.index.to_string()),
                    ("tree_size", "tree size", num_field("tree_size"), r.log.tree_size.to_string()),
                ];
                for (field, what, device_says, package_says) in pairs {
                    let Some(device_says) = device_says else { continue };
                    if device_says != package_says {
                        problems.push(format!("{at}: the device recorded {field} {device_says}, {rf} has {what} {package_says}"));
                    }
                }
            }
            _ => {}
        }
    }
    let key_problems = other_key.into_iter().map(|(named, at)| {
        format!("the device enrolled with or committed manifests to server key {named} ({}), but this package is signed by server key {key_id}", at.join(", "))
    });
    let problems: Vec<String> = key_problems.chain(problems).collect();
    if problems.is_empty() {
        let mut detail = format!(
            "{enrolled} enrolment(s) and {committed} manifest commitment(s) name this server key {key_id}; {receipted} receipt(s) of packaged items \
             match what the device recorded (SHA-256, time, log position)"
        );
        let without: Vec<&str> = items.keys().copied().filter(|clip| !events.iter().any(|s| s.ev.event == "receipted" && s.ev.clip_id.as_deref() == Some(clip))).collect();
        if !without.is_empty() {
            let mut without = without;
            without.sort_unstable();
            detail.push_str(&format!("; note: no device 'receipted' event in the package for {} (not uploaded yet)", without.join(", ")));
        }
        c.ok(name, &file, detail);
    } else {
        c.fail(name, &file, format!("device {device}: {}", listed(&problems)));
    }
}

/// The first [`MAX_LISTED`] problems joined, and how many more there are.
fn listed(problems: &[String]) -> String {
    let mut s = problems.iter().take(MAX_LISTED).cloned().collect::<Vec<_>>().join("; ");
    if problems.len() > MAX_LISTED {
        s.push_str(&format!("; and {} more disagreement(s)", problems.len() - MAX_LISTED));
    }
    s
}
