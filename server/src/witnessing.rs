//! The intake server's side of witnessing: after each new checkpoint, it asks its witnesses
//! (C2SP `tlog-witness`, see [`crate::witness`] for the other side) to cosign it and appends
//! their cosignature lines to the checkpoint note, so receipts and packages carry a checkpoint
//! that independent parties have seen.
//!
//! * **When**: on completing an item, once its leaf, checkpoint and receipt are stored (asked
//!   before, a store failure or a crash would leave the witnesses a checkpoint the log no longer
//!   has, and they would refuse every later one as a fork), all witnesses at once, each request
//!   bounded by [`crate::ServerConfig::witness_timeout`]. The log lock is held meanwhile, so
//!   submissions to a witness follow the log's order. The receipt is then signed again with the
//!   cosigned checkpoint and stored in place of the first, which nobody has seen yet
//!   ([`crate::store::RecordStore::cosign_receipt`]).
//! * **Old size**: the size each witness last cosigned, learnt from its answers (unknown after a
//!   start: `old 0`, and the witness's `409` names its size); with the consistency proof from it.
//! * **A witness that fails** (unreachable, an error, a refusal) is skipped for
//!   [`crate::ServerConfig::witness_retry`]: intake never waits on it again meanwhile, and the
//!   receipt is issued with the cosignatures that came. A background task then submits the newest
//!   checkpoint to every witness whose cosignature it lacks, every `witness_retry`, and adds the
//!   lines to the stored note ([`crate::store::RecordStore::add_checkpoint_signatures`]: the text
//!   and the server's signature never change). A package takes the checkpoint with the most
//!   cosignatures among those covering its items.
//! * **A refusal** (`409` at the same size, `422`) means the witness holds a history this log is
//!   not an extension of: logged as an error; the checkpoint goes out without that cosignature,
//!   and a device or recipient that requires it raises the alarm.
//!
//! The intake server compiles no HTTP client (tests/tests/dependency_rules.rs): the requests go
//! through a [`WitnessTransport`] the embedding program supplies (`fieldcap serve` passes the
//! device core's rustls client).

use crate::error::{Error, Result};
use crate::log::LogTree;
use fieldcap_evidence::cosignature::{append_signatures, check_cosignatures, cosignature_lines_of, parse_tlog_size, AddCheckpoint, VerifierKey};
use fieldcap_evidence::tlog::{parse_note, Checkpoint};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A witness's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Body.
    pub body: Vec<u8>,
}

/// The HTTP client the intake server uses to reach its witnesses.
pub trait WitnessTransport: Send + Sync {
    /// POSTs `body` to `url`; the answer, or what failed (no personal data in it).
    fn post(&self, url: &str, body: Vec<u8>, timeout: Duration) -> std::result::Result<WitnessReply, String>;
}

/// A [`WitnessTransport`] in a [`crate::ServerConfig`].
#[derive(Clone)]
pub struct WitnessClient(pub Arc<dyn WitnessTransport>);

impl std::fmt::Debug for WitnessClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WitnessClient")
    }
}

/// A witness the intake server submits its checkpoints to: its submission URL prefix
/// (requests go to `<url>/add-checkpoint`) and its verifier key (type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessEndpoint {
    /// Submission prefix, e.g. `https://witness.example.org`.
    pub url: String,
    /// The witness's cosignature verifier key.
    pub vkey: VerifierKey,
}

impl WitnessEndpoint {
    /// Parses `URL=VKEY` (the form of `fieldcap serve --witness`).
    pub fn parse(spec: &str) -> Result<WitnessEndpoint> {
        let (url, vkey) = spec.split_once('=').ok_or_else(|| Error::BadRequest("a witness is given as URL=VKEY".into()))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::BadRequest("a witness URL starts with http:// or https://".into()));
        }
        let vkey = VerifierKey::parse(vkey)?;
        if !vkey.is_witness() {
            return Err(Error::BadRequest(format!("{:?} is not a witness key (signature type 0x04)", vkey.name)));
        }
        Ok(WitnessEndpoint { url: url.trim_end_matches('/').to_string(), vkey })
    }
}

#[derive(Debug, Default)]
struct Known {
    /// The size the witness last cosigned, as far as this server knows.
    size: Option<u64>,
    /// Not before this instant (after a failure).
    retry_at: Option<Instant>,
}

/// The witnesses of a server and what it knows of each.
pub(crate) struct Witnessing {
    endpoints: Vec<WitnessEndpoint>,
    transport: Option<Arc<dyn WitnessTransport>>,
    known: Vec<Mutex<Known>>,
    timeout: Duration,
    retry: Duration,
}

impl Witnessing {
    pub fn new(endpoints: Vec<WitnessEndpoint>, transport: Option<Arc<dyn WitnessTransport>>, timeout: Duration, retry: Duration) -> Result<Witnessing> {
        if !endpoints.is_empty() && transport.is_none() {
            return Err(Error::BadRequest("witnesses are configured but no HTTP client was given to reach them".into()));
        }
        let known = endpoints.iter().map(|_| Mutex::new(Known::default())).collect();
        Ok(Witnessing { endpoints, transport, known, timeout, retry })
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The verifier keys of the witnesses.
    pub fn vkeys(&self) -> Vec<VerifierKey> {
        self.endpoints.iter().map(|e| e.vkey.clone()).collect()
    }

    /// Asks the witnesses (all of them, or those whose cosignature `note` lacks) to cosign
    /// `note`, the checkpoint `cp` of `tree`, in parallel; returns `note` with the valid
    /// cosignature lines appended.
    pub fn cosign(&self, tree: &LogTree, cp: &Checkpoint, note: &str) -> String {
        if self.is_empty() {
            return note.to_string();
        }
        let lacking: Vec<usize> = match check_cosignatures(note, &self.vkeys()) {
            Ok(c) => (0..self.endpoints.len()).filter(|i| !c.valid.iter().any(|(n, _)| n == &self.endpoints[*i].vkey.name)).collect(),
            Err(_) => return note.to_string(),
        };
        let lines: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = lacking.iter().map(|&i| s.spawn(move || self.submit(i, tree, cp, note))).collect();
            handles.into_iter().filter_map(|h| h.join().ok().flatten()).collect()
        });
        let mut out = note.to_string();
        for l in lines {
            match append_signatures(&out, &l) {
                Ok(n) => out = n,
                Err(e) => tracing::error!(error = %e, "a witness cosignature could not be added"),
            }
        }
        out
    }

    /// One witness: `add-checkpoint` with the consistency proof from the size it holds,
    /// following its `409` once or twice. The cosignature line(s), or `None`.
    fn submit(&self, i: usize, tree: &LogTree, cp: &Checkpoint, note: &str) -> Option<String> {
        let (endpoint, transport) = (&self.endpoints[i], self.transport.as_ref()?);
        let mut known = self.known[i].lock().ok()?;
        if known.retry_at.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        let name = endpoint.vkey.name.as_str();
        let fail = |known: &mut Known, what: String| {
            tracing::warn!(witness = %name, size = cp.size, "{what}");
            known.retry_at = Some(Instant::now() + self.retry);
            None
        };
        let mut old = known.size.unwrap_or(0);
        for _ in 0..3 {
            if old > cp.size {
                return fail(&mut known, format!("the witness holds size {old}, larger than this checkpoint"));
            }
            let proof = if old == 0 { Ok(Vec::new()) } else { tree.consistency(old, cp.size) };
            let proof = match proof {
                Ok(p) => p,
                Err(e) => return fail(&mut known, format!("no consistency proof from size {old}: {e}")),
            };
            let body = AddCheckpoint { old_size: old, proof, checkpoint: note.to_string() }.to_body().into_bytes();
            let reply = match transport.post(&format!("{}/add-checkpoint", endpoint.url), body, self.timeout) {
                Ok(r) => r,
                Err(e) => return fail(&mut known, format!("the witness is unreachable: {e}")),
            };
            match reply.status {
                200 => {
                    // Cosigned is the note's whole text (extension lines included, if any).
                    let text = parse_note(note).map(|n| n.text).unwrap_or_else(|_| cp.body());
                    let lines = cosignature_lines_of(&String::from_utf8_lossy(&reply.body), &text, &endpoint.vkey);
                    return match lines {
                        Ok(l) if !l.is_empty() => {
                            known.size = Some(cp.size);
                            known.retry_at = None;
                            Some(l)
                        }
                        Ok(_) => fail(&mut known, "the witness answered without a cosignature of its key".into()),
                        Err(e) => fail(&mut known, format!("the witness's cosignature does not verify: {e}")),
                    };
                }
                409 => match parse_tlog_size(&reply.body) {
                    Ok(n) if n != old => {
                        known.size = Some(n);
                        old = n;
                    }
                    Ok(n) => {
                        tracing::error!(witness = %name, size = cp.size, held = n, "the witness refuses this checkpoint: it cosigned another tree of this size");
                        return fail(&mut known, "refused (409)".into());
                    }
                    Err(_) => return fail(&mut known, "the witness answered 409 without its size".into()),
                },
                422 => {
                    tracing::error!(witness = %name, size = cp.size, old, "the witness refuses this checkpoint: the consistency proof from the size it holds does not verify");
                    return fail(&mut known, "refused (422)".into());
                }
                s => return fail(&mut known, format!("the witness answered {s}")),
            }
        }
        fail(&mut known, "the witness's size kept changing".into())
    }
}

/// Catches up: submits the newest checkpoint on record to the witnesses whose cosignature it
/// lacks (and which are not backing off), and stores the cosigned note. Also picks up leaves
/// appended by another process (`fieldcap dispose`).
pub(crate) fn catch_up(state: &crate::state::AppState) -> Result<()> {
    if state.witnessing.is_empty() {
        return Ok(());
    }
    let tree = state.log()?;
    let Some((size, note)) = state.records.latest_checkpoint()? else { return Ok(()) };
    if size != tree.size() {
        return Ok(());
    }
    let cp = Checkpoint::parse_body(&parse_note(&note)?.text)?;
    let cosigned = state.witnessing.cosign(&tree, &cp, &note);
    if cosigned != note {
        state.records.add_checkpoint_signatures(size, &cosigned)?;
    }
    Ok(())
}
