//! Where an upload starts: the server's offset (tus `HEAD`), a renewed upload URL when the old
//! one is gone, the durable high-water mark of what may already have left the device, and the
//! re-hash of the bytes the server already holds.
//!
//! The server's offset is the truth: the device's stored offset may be behind (an answer lost)
//! or ahead (the server lost bytes it had acknowledged, e.g. restored from a backup; those are
//! sent again and counted as re-sent). An upload URL that is gone (expired, terminated, or
//! removed after completion) first asks the server for a receipt, then for a new URL (posting
//! the manifest again, at most once per upload). On a resume, `[0, offset)` is read back from
//! the file on a thread of its own and hashed ahead of the chunks still to send, so the final
//! check covers the whole file even though this pass sends only its tail.

use super::super::pass::{problem_title, Pass, Step, Stop, TUS};
use crate::store::db::sync::{self as rows, ItemRow};
use super::super::transport::{join_url, HttpRequest};
use super::super::SyncPhase;
use super::Uploaded;
use crate::error::Error;
use crate::hashing::StreamingDigests;
use std::fs;
use std::path::Path;

/// What a tus `HEAD` found.
pub(super) enum HeadResult {
    /// The server holds this many bytes.
    Offset(u64),
    /// The upload URL is gone (404, 410).
    Gone,
    /// The server refused; the item now needs attention.
    Attention,
}

/// Where the server is with an upload. (One per item and pass, moved at once: its size does not
/// matter.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Located {
    /// At this offset, on the row's (possibly renewed) upload URL.
    At(ItemRow, u64),
    /// Nothing to send: the upload ended so.
    Settled(Uploaded),
}

/// The hashing of an upload, as started.
pub(super) enum PrefixHash {
    /// Running; the bytes already on the server (if any) are being read back and hashed.
    Running(StreamingDigests),
    /// The server holds every byte: nothing to hash or send.
    NothingToSend,
    /// The file vanished before its prefix could be read back (the item is flagged).
    FileGone,
}

impl Pass<'_> {
    /// Finds the server's offset, renewing the upload URL once if it is gone.
    pub(super) fn locate_server_offset(&mut self, row0: &ItemRow) -> Step<Located> {
        let mut row = self.reload(&row0.clip_id)?;
        let mut renewed = false;
        loop {
            let Some(u) = row.upload_url.clone() else {
                if let Some(end) = self.renew_or_stop(&mut row, &mut renewed, "the server gave no upload URL for media it does not hold")? {
                    return Ok(Located::Settled(end));
                }
                continue;
            };
            let url = join_url(&self.server.url, &u);
            match self.head_or_attention(&row, &url)? {
                HeadResult::Offset(o) => return Ok(Located::At(row, o)),
                HeadResult::Attention => return Ok(Located::Settled(Uploaded::Settled)),
                HeadResult::Gone => {
                    // Expired or finished: does the server already have it all?
                    if self.try_receipt(&row.clip_id)? {
                        return Ok(Located::Settled(Uploaded::Settled));
                    }
                    if let Some(end) = self.renew_or_stop(&mut row, &mut renewed, "the upload URL is gone and the server has no receipt")? {
                        return Ok(Located::Settled(end));
                    }
                }
            }
        }
    }

    /// tus `HEAD`: the server's offset, or that the upload is gone; any other answer puts the
    /// item in needs_attention.
    pub(super) fn head_or_attention(&mut self, row: &ItemRow, url: &str) -> Step<HeadResult> {
        let resp = self.send("HEAD upload", &|p: &Pass<'_>| HttpRequest {
            method: "HEAD".into(),
            url: url.into(),
            headers: vec![(TUS.0.into(), TUS.1.into())],
            body: vec![],
            timeout: p.opts.request_timeout,
        })?;
        match resp.status {
            200 | 204 => match resp.header("upload-offset").and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(o) => Ok(HeadResult::Offset(o)),
                None => Err(Stop::Transient("HEAD upload: no Upload-Offset".into())),
            },
            404 | 410 => Ok(HeadResult::Gone),
            _ => {
                self.needs_attention(row, &format!("upload refused: {}", problem_title(&resp)))?;
                Ok(HeadResult::Attention)
            }
        }
    }

    /// Asks the server for a fresh upload URL, at most once per upload (a second need puts the
    /// item in needs_attention with `why`). `Some(end)` ends the upload so (`ReceiptDue` when
    /// the server already holds all the media); `None` means try the new URL.
    fn renew_or_stop(&mut self, row: &mut ItemRow, renewed: &mut bool, why: &str) -> Step<Option<Uploaded>> {
        if *renewed {
            self.needs_attention(row, why)?;
            return Ok(Some(Uploaded::Settled));
        }
        *renewed = true;
        if !self.renew_upload_url(row)? {
            return Ok(Some(Uploaded::Settled));
        }
        *row = self.reload(&row.clip_id)?;
        Ok(match row.state.as_str() {
            "uploaded" => Some(Uploaded::ReceiptDue),
            "receipted" => Some(Uploaded::Settled),
            _ => None,
        })
    }

    /// Posts the manifest again (idempotent at the server) for a fresh upload URL; false when
    /// the item was set aside instead.
    fn renew_upload_url(&mut self, row: &ItemRow) -> Step<bool> {
        let Some(cr) = self.post_manifest(row)? else { return Ok(false) };
        rows::set_upload_url(&self.store.conn(), &row.clip_id, cr.upload_url.as_deref())?;
        if let Some(r) = &cr.receipt {
            let row = self.reload(&row.clip_id)?;
            self.accept_receipt(&row, r)?;
            return Ok(true);
        }
        if cr.upload_url.is_none() {
            self.set_state(&row.clip_id, "uploaded")?;
        }
        Ok(true)
    }

    /// The durable high-water mark of this upload (never below the stored offset).
    pub(super) fn load_high_water(&self, hw_key: &str, stored_offset: u64) -> Step<u64> {
        let stored = rows::server_get(&self.store.conn(), hw_key)?;
        Ok(stored.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.parse().ok()).unwrap_or(0).max(stored_offset))
    }

    /// Starts the digest of what this upload consists of: `[0, offset)` read back from the file
    /// on the hasher's thread, then every chunk as it is sent. BLAKE3 only: either digest of the
    /// signed manifest catches a changed file, BLAKE3 costs a fraction of SHA-256's CPU, and the
    /// server re-hashes both on completion. Nothing to hash (nor to send) when the server
    /// already holds it all: its receipt comes from its own verification.
    pub(super) fn start_hashing(&mut self, row: &ItemRow, url: &str, path: &Path, offset: u64, total: u64) -> Step<PrefixHash> {
        if offset >= total {
            return Ok(PrefixHash::NothingToSend);
        }
        let started = if offset > 0 {
            let prefix = match fs::File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.flag_media(row, "missing", "before_upload", Some(url))?;
                    return Ok(PrefixHash::FileGone);
                }
                Err(e) => return Err(Stop::Fatal(Error::io("opening the media file", e))),
            };
            self.report(SyncPhase::Verifying, Some(&row.clip_id), offset, total);
            StreamingDigests::blake3_only_with_prefix(prefix, offset)
        } else {
            StreamingDigests::blake3_only()
        };
        Ok(PrefixHash::Running(started.map_err(|e| Error::io("starting the hash worker", e))?))
    }
}
