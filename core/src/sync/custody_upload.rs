//! The last step of a sync pass: the device's own custody log goes to the server
//! (`POST /v1/custody`), so evidence packages carry the device side of the chain of custody.
//!
//! Events are sent verbatim (body and signature, FORMATS §5) in seq order, in batches of at most
//! [`protocol::MAX_CUSTODY_BATCH`], starting after the highest seq the server acknowledged
//! (`custody_uploaded_seq` in the `server` table). The server only appends a batch that
//! continues its copy without a hole and skips events it already holds byte for byte, so a lost
//! answer or a killed pass just sends a batch again. If the server's copy does not continue where
//! the device believes it does (a new server, a restored server), the device starts over from
//! seq 1 once; anything else the server refuses is reported in the pass summary and retried on
//! the next pass. Nothing here changes the local log.

use super::pass::{problem_title, Pass, Step, Stop};
use crate::store::db::sync as rows;
use super::transport::join_url;
use crate::error::Error;
use crate::protocol::{self, CustodyAck, CustodySubmission};

/// Key of the `server` table holding the highest custody seq the server acknowledged.
const UPLOADED_KEY: &str = "custody_uploaded_seq";

impl Pass<'_> {
    /// Sends every custody event the server does not hold yet.
    pub(super) fn upload_custody(&mut self) -> Step<()> {
        let stored = rows::server_get(&self.store.conn(), UPLOADED_KEY)?;
        let mut done: u64 = stored
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut restarted = false;
        let url = join_url(&self.server.url, "/v1/custody");
        loop {
            self.check_stop()?;
            let batch = self.custody_after(done)?;
            let Some(last) = batch.last().map(|(seq, _)| *seq) else {
                return Ok(());
            };
            let events = batch.into_iter().map(|(_, v)| v).collect();
            let body = serde_json::to_vec(&CustodySubmission { events }).map_err(Error::from)?;
            let u = url.clone();
            let resp = self.send("POST custody", &move |p| p.signed("POST", &u, body.clone(), Some("application/json")))?;
            match resp.status {
                200 => {
                    let ack: CustodyAck = serde_json::from_slice(&resp.body)
                        .map_err(|_| Stop::Transient("POST custody: the answer is not a custody acknowledgement".into()))?;
                    if ack.stored_through < last {
                        // The server holds less than it was just sent: do not loop on it.
                        self.summary.last_error = Some("the server did not store the whole custody batch".into());
                        return Ok(());
                    }
                    self.summary.custody_events_uploaded += last - done;
                    done = ack.stored_through;
                    rows::server_put(&self.store.conn(), UPLOADED_KEY, done.to_string().as_bytes())?;
                }
                409 if !restarted && done > 0 => {
                    // The server's copy does not continue where we thought (a new or restored
                    // server): send the whole log; events it holds are skipped if identical.
                    restarted = true;
                    done = 0;
                }
                _ => {
                    let why = format!("custody upload refused: {}", problem_title(&resp));
                    tracing::warn!("{why}");
                    self.summary.last_error = Some(why);
                    return Ok(());
                }
            }
        }
    }

    /// The next batch of local custody events after `seq`, as (seq, JSON Lines object).
    fn custody_after(&self, seq: u64) -> Step<Vec<(u64, serde_json::Value)>> {
        let events = rows::custody_after(&self.store.conn(), seq, protocol::MAX_CUSTODY_BATCH)?;
        let mut out = Vec::with_capacity(events.len());
        for (body, sig) in events {
            let e = crate::custody::CustodyEvent::from_body(body, sig)?;
            let v: serde_json::Value = serde_json::from_str(&e.to_jsonl()).map_err(Error::from)?;
            out.push((e.seq, v));
        }
        Ok(out)
    }
}
