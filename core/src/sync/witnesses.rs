//! Witnessed checkpoints on the device: when it knows witness keys, a device checks that the
//! server's log is cosigned by them (C2SP `tlog-cosignature/v1`), so a server that shows this
//! device a history other than the one the witnesses saw (a split view, a fork) is caught even
//! when the device never saw the genuine one.
//!
//! * **Where the keys come from**: configured on the device ([`Store::set_witnesses`]; the CLI's
//!   `fieldcap enroll --witness VKEY`), from the list the council publishes and the witnesses
//!   confirm out of band — never learnt from the server, which could name accomplices.
//! * **What is checked**: every receipt's checkpoint: a cosignature line of a known witness that
//!   does not verify raises the `log_unwitnessed` alarm at once. At the end of each pass that
//!   holds a checkpoint, the server's newest checkpoint (`GET /v1/log/checkpoint`, which carries
//!   the cosignatures the server collected) must be signed by the server, consistent with the
//!   newest one the device holds (else `log_inconsistent`), and cosigned by at least the
//!   threshold of the known witnesses (else `log_unwitnessed`, naming the missing ones; once per
//!   tree size). A witness refuses to cosign a tree that does not extend the one it holds, so a
//!   forked log never gets the cosignatures; a receipt made while a witness was briefly down
//!   is covered once the newest checkpoint (consistent with the receipt's) is cosigned.

use super::pass::{Pass, Step, Stop};
use super::transport::{join_url, HttpRequest};
use crate::error::{Error, Result};
use crate::store::db::sync as rows;
use crate::store::Store;
use fieldcap_evidence::cosignature::{check_cosignatures, VerifierKey};
use serde_json::json;

const KEYS: &str = "witness_keys";
const THRESHOLD: &str = "witness_threshold";
const ALARMED: &str = "unwitnessed_alarm_size";

impl Store {
    /// Sets the witnesses whose cosignatures this device requires on the server's log
    /// (verifier keys of type 0x04) and how many of them must have cosigned (`None`: all). An
    /// empty list turns the check off. Recorded in custody (`witnesses_configured`).
    pub fn set_witnesses(&self, keys: &[VerifierKey], threshold: Option<usize>) -> Result<()> {
        if let Some(k) = keys.iter().find(|k| !k.is_witness()) {
            return Err(Error::InvalidInput(format!("{:?} is not a witness key (signature type 0x04)", k.name)));
        }
        let t = threshold.unwrap_or(keys.len());
        if !keys.is_empty() && (t == 0 || t > keys.len()) {
            return Err(Error::InvalidInput(format!("a witness threshold of {t} with {} witness keys", keys.len())));
        }
        let text: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        {
            let conn = self.conn();
            rows::server_put(&conn, KEYS, text.join("\n").as_bytes())?;
            rows::server_put(&conn, THRESHOLD, t.to_string().as_bytes())?;
        }
        self.append_custody("witnesses_configured", None, json!({"witnesses": text, "threshold": t}))?;
        Ok(())
    }

    /// The witnesses this device requires and the threshold (no keys: none required).
    pub fn witnesses(&self) -> Result<(Vec<VerifierKey>, usize)> {
        let (keys, t) = {
            let conn = self.conn();
            (rows::server_get(&conn, KEYS)?, rows::server_get(&conn, THRESHOLD)?)
        };
        let keys: Vec<VerifierKey> = match keys {
            Some(b) => String::from_utf8_lossy(&b).lines().filter(|l| !l.is_empty()).map(VerifierKey::parse).collect::<fieldcap_evidence::Result<_>>()?,
            None => Vec::new(),
        };
        let t = t.and_then(|b| String::from_utf8_lossy(&b).parse().ok()).unwrap_or(keys.len());
        Ok((keys, t))
    }
}

impl Pass<'_> {
    /// A receipt's checkpoint: a known witness's cosignature that does not verify is an alarm.
    pub(super) fn check_receipt_cosignatures(&mut self, clip_id: &str, note: &str) -> Step<()> {
        let (keys, _) = self.store.witnesses()?;
        if keys.is_empty() {
            return Ok(());
        }
        let check = check_cosignatures(note, &keys)?;
        if !check.forged.is_empty() {
            self.store.raise_alarm(
                "log_unwitnessed",
                &format!("item {clip_id}: the receipt's checkpoint carries cosignatures that do not verify: {}", check.forged.join(", ")),
            )?;
            self.summary.alarms += 1;
        }
        Ok(())
    }

    /// End of a pass: the server's newest checkpoint must be consistent with the device's and
    /// cosigned by the threshold of the known witnesses.
    pub(super) fn check_witnessed(&mut self) -> Step<()> {
        let (keys, threshold) = self.store.witnesses()?;
        if keys.is_empty() || self.store.newest_checkpoint()?.is_none() {
            return Ok(());
        }
        let url = join_url(&self.server.url, "/v1/log/checkpoint");
        let resp = match self.send("GET checkpoint", &|p: &Pass<'_>| HttpRequest {
            method: "GET".into(),
            url: url.clone(),
            headers: vec![],
            body: vec![],
            timeout: p.opts.request_timeout,
        }) {
            Ok(r) if r.status == 200 => r,
            // Not reachable now: checked at the next pass.
            Ok(_) | Err(Stop::Transient(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let note = String::from_utf8_lossy(&resp.body).into_owned();
        let cp = match self.receipt_verifier().checkpoint(&note) {
            Ok(cp) => cp,
            Err(e) => {
                self.store.raise_alarm("log_inconsistent", &format!("the server's newest checkpoint does not verify: {e}"))?;
                self.summary.alarms += 1;
                return Ok(());
            }
        };
        match self.check_consistency(&note, cp.size) {
            Ok(Ok(())) => {}
            Ok(Err(detail)) => {
                self.store.raise_alarm("log_inconsistent", &detail)?;
                self.summary.alarms += 1;
                return Ok(());
            }
            Err(Stop::Fatal(Error::Integrity(e))) => {
                self.store.raise_alarm("log_inconsistent", &e)?;
                self.summary.alarms += 1;
                return Ok(());
            }
            Err(other) => return Err(other),
        }
        let check = check_cosignatures(&note, &keys)?;
        match check.require(threshold) {
            Ok(()) => {
                rows::server_put(&self.store.conn(), "witnessed_checkpoint", note.as_bytes())?;
            }
            Err(e) => {
                let alarmed = rows::server_get(&self.store.conn(), ALARMED)?;
                if alarmed.as_deref() != Some(cp.size.to_string().as_bytes()) {
                    self.store.raise_alarm("log_unwitnessed", &format!("the server's newest checkpoint (tree size {}): {}", cp.size, reason(&e)))?;
                    rows::server_put(&self.store.conn(), ALARMED, cp.size.to_string().as_bytes())?;
                    self.summary.alarms += 1;
                }
            }
        }
        Ok(())
    }
}

fn reason(e: &fieldcap_evidence::Error) -> String {
    match e {
        fieldcap_evidence::Error::Integrity(s) => s.clone(),
        other => other.to_string(),
    }
}
