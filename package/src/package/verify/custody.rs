//! Custody events (`custody.jsonl`): the server's, signed by the server key, and each device's own
//! as it uploaded them, signed by that device's key. Per actor the seq numbers increase and
//! consecutive events are `prev`-linked (events of items not in the package are left out, so
//! numbers skip). The package's own export event must be there, and a `received` or `stored`
//! event for every item, and no event after an item's `stored` that only an open upload can have
//! (`verified`, `refused`, `terminated`, `stored` or `received` again). In a full package each
//! device's log runs from seq 1 without a hole up to at least what the server recorded
//! receiving; a `sealed` or `restored` device event of a packaged item must name the manifest
//! the package holds.

use super::Verification;
use crate::package::PackageIndex;
use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::identity::verify as verify_sig;
use std::collections::{BTreeMap, HashMap};

/// The "custody events" check.
pub(super) fn check(c: &mut Verification<'_>, index: &PackageIndex, key: &VerifyingKey, device_keys: &HashMap<String, VerifyingKey>) {
    let custody = c.read("custody.jsonl").and_then(|b| events_hold(b, index, key, device_keys));
    c.res("custody events", "custody.jsonl", custody);
}

/// Everything the module documentation lists, over the bytes of `custody.jsonl`; the first
/// failure is the error, else a summary (with a note on items without device events).
fn events_hold(b: Vec<u8>, index: &PackageIndex, key: &VerifyingKey, device_keys: &HashMap<String, VerifyingKey>) -> Result<String> {
    let text = String::from_utf8(b).map_err(|_| Error::Integrity("custody.jsonl is not UTF-8".into()))?;
    let events = text.lines().filter(|l| !l.trim().is_empty()).map(CustodyEvent::from_jsonl).collect::<Result<Vec<_>>>()?;
    let server_actor = format!("server:{}", index.server_key_id);
    let mut server_events = Vec::new();
    let mut device_events: BTreeMap<String, Vec<&CustodyEvent>> = BTreeMap::new();
    for e in &events {
        let v: serde_json::Value = serde_json::from_slice(&e.body)?;
        let actor = v["actor"].as_str().unwrap_or_default();
        if actor == server_actor {
            verify_sig(key, &e.body, &e.sig).map_err(|_| Error::Integrity(format!("server custody event {}: bad signature", e.seq)))?;
            server_events.push((e, v));
        } else if let Some(dev) = actor.strip_prefix("device:") {
            let dk = device_keys
                .get(dev)
                .ok_or_else(|| Error::Integrity(format!("device custody event {}: device {dev} is not in this package", e.seq)))?;
            verify_sig(dk, &e.body, &e.sig).map_err(|_| Error::Integrity(format!("device {dev} custody event {}: bad signature", e.seq)))?;
            device_events.entry(dev.to_string()).or_default().push(e);
        } else {
            return Err(Error::Integrity(format!("custody event {}: neither this server's nor a device's", e.seq)));
        }
    }
    check_links(server_events.iter().map(|(e, _)| *e), "server")?;
    let mut export_found = false;
    for (e, v) in &server_events {
        if e.seq == index.export_custody_seq {
            if e.event != "exported" || v["detail"]["package_id"].as_str() != Some(index.package_id.as_str()) {
                return Err(Error::Integrity(format!("server custody event {} is not this package's export", e.seq)));
            }
            export_found = true;
        }
    }
    if !export_found {
        return Err(Error::Integrity("the export of this package is not in custody.jsonl".into()));
    }
    for it in &index.items {
        if !server_events.iter().any(|(e, _)| e.clip_id.as_deref() == Some(it.clip_id.as_str()) && (e.event == "stored" || e.event == "received")) {
            return Err(Error::Integrity(format!("no server custody event for item {}", it.clip_id)));
        }
    }
    // A stored item's upload is finished for good: an event that only an open upload can have
    // (its bytes verified, refused or terminated, or stored again) after `stored` means the
    // server's record of the item contradicts itself.
    for it in &index.items {
        let mut stored_at: Option<u64> = None;
        for (e, _) in server_events.iter().filter(|(e, _)| e.clip_id.as_deref() == Some(it.clip_id.as_str())) {
            match (stored_at, e.event.as_str()) {
                (None, "stored") => stored_at = Some(e.seq),
                (Some(s), "refused" | "terminated" | "verified" | "stored" | "received") => {
                    return Err(Error::Integrity(format!(
                        "server custody of item {} contradicts itself: a '{}' event (seq {}) after the item was stored (seq {s}); only an open upload can have one",
                        it.clip_id, e.event, e.seq
                    )));
                }
                _ => {}
            }
        }
    }
    // Device events: each device's run in order and linked; in a full package each log is
    // complete from seq 1 up to at least the last upload the server recorded for it; a
    // `sealed` or `restored` event of an item must name the manifest the package holds.
    let full = index.profile == "full";
    let mut without = 0usize;
    for (dev, evs) in &device_events {
        check_links(evs.iter().copied(), &format!("device {dev}"))?;
        if full {
            if let Some((i, e)) = evs.iter().enumerate().find(|(i, e)| e.seq != *i as u64 + 1) {
                return Err(Error::Integrity(format!("device {dev} custody log: event {} is missing (found seq {} in its place)", i + 1, e.seq)));
            }
            let uploaded = server_events
                .iter()
                .filter(|(e, v)| e.event == "device_custody_received" && v["detail"]["device_id"].as_str() == Some(dev.as_str()))
                .filter_map(|(_, v)| v["detail"]["to_seq"].as_u64())
                .max()
                .unwrap_or(0);
            let have = evs.last().map_or(0, |e| e.seq);
            if have < uploaded {
                return Err(Error::Integrity(format!("device {dev} custody log: the server recorded events up to {uploaded}, the package holds up to {have}")));
            }
        }
        for e in evs {
            if let (Some(clip), "sealed" | "restored") = (e.clip_id.as_deref(), e.event.as_str()) {
                let v: serde_json::Value = serde_json::from_slice(&e.body)?;
                if let Some(it) = index.items.iter().find(|i| i.clip_id == clip) {
                    if v["detail"]["manifest_sha256"].as_str() != Some(it.original_manifest_sha256.as_str()) {
                        return Err(Error::Integrity(format!("device {dev} custody event {}: the {} manifest is not the one in this package", e.seq, e.event)));
                    }
                }
            }
        }
    }
    if full {
        for d in &index.devices {
            let uploaded = server_events
                .iter()
                .any(|(e, v)| e.event == "device_custody_received" && v["detail"]["device_id"].as_str() == Some(d.device_id.as_str()));
            if uploaded && !device_events.contains_key(&d.device_id) {
                return Err(Error::Integrity(format!("device {} uploaded its custody log, but the package holds none of it", d.device_id)));
            }
        }
    }
    for it in &index.items {
        let sealed = device_events
            .get(&it.device_id)
            .is_some_and(|evs| evs.iter().any(|e| e.clip_id.as_deref() == Some(it.clip_id.as_str()) && (e.event == "sealed" || e.event == "restored")));
        if !sealed {
            without += 1;
        }
    }
    let n_dev: usize = device_events.values().map(Vec::len).sum();
    let mut msg = format!(
        "{} server events and {n_dev} device events from {} device(s): signatures and links valid{}",
        server_events.len(),
        device_events.len(),
        if full { " (device logs complete from their first event; server events of other items not included)" } else { " (events of other items not included)" }
    );
    if without > 0 {
        msg.push_str(&format!("; note: {without} item(s) without a device custody event on record (the device had not uploaded its log)"));
    }
    Ok(msg)
}

/// Checks one actor's events: seq numbers increase, and where two are consecutive the later
/// one's `prev` is the SHA-256 of the earlier body (events of other items are left out).
fn check_links<'a>(events: impl Iterator<Item = &'a CustodyEvent>, who: &str) -> Result<()> {
    let mut prev: Option<&CustodyEvent> = None;
    for e in events {
        if let Some(p) = prev {
            if e.seq <= p.seq {
                return Err(Error::Integrity(format!("{who} custody event {} is out of order", e.seq)));
            }
            if e.seq == p.seq + 1 && e.prev().as_deref() != Some(p.hash().as_str()) {
                return Err(Error::Integrity(format!("{who} custody event {}: prev does not match event {}", e.seq, p.seq)));
            }
        }
        prev = Some(e);
    }
    Ok(())
}
