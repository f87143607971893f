//! The send loop: tus `PATCH` chunks from the server's offset to the end of the file.
//!
//! Each chunk is read from the file, handed to the BLAKE3 worker, and sent; the acknowledged
//! offset is stored after every chunk, in one transaction with the high-water mark of the next
//! chunk (which must be on record before any of its bytes leave, so that bytes sent twice after
//! a cut are counted, and bounded by one chunk). A `409` asks the server where it is (`HEAD`) and
//! continues from there; bytes the server took that this pass did not send are read back and
//! hashed, so the stream hashed is always the whole file in order. An upload that is gone asks
//! for its receipt; any other refusal puts the item in needs_attention.

use super::super::pass::{problem_title, Pass, Step, Stop, TUS};
use super::super::transport::{HttpRequest, HttpResponse};
use super::super::SyncPhase;
use super::resume::HeadResult;
use super::Upload;
use crate::error::Error;
use crate::manifest::Media;
use crate::protocol::SignedDoc;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Instant;

/// How the send loop ended (other than with a [`Stop`]).
pub(super) enum Sent {
    /// The server acknowledged every byte.
    All,
    /// The item was set aside (flagged, needs attention) or its receipt already handled.
    SetAside,
}

/// What to do after a `PATCH` answer.
enum Next {
    /// Send from `up.offset` on.
    Continue,
    /// Stop sending: the item was set aside or its receipt handled.
    SetAside,
}

impl Pass<'_> {
    /// Sends `up` from its offset to the end.
    pub(super) fn send_chunks(&mut self, up: &mut Upload, media: &Media) -> Step<Sent> {
        self.report(SyncPhase::Uploading, Some(&up.row.clip_id), up.offset, up.total);
        while up.offset < up.total {
            if let Err(stop) = self.check_stop() {
                if up.high_water > up.sent_to {
                    self.put_high_water(&up.hw_key, up.sent_to.max(up.offset))?;
                }
                return Err(stop);
            }
            let len = ((up.total - up.offset) as usize).min(self.chunks.size());
            let end = up.offset + len as u64;
            if !self.hash_gap(up)? {
                return Ok(Sent::SetAside);
            }
            let mut buf = up.bufs.take(len);
            if !read_media(&mut up.file, up.offset, &mut buf)? {
                // Shorter than its signed length: changed since the check before the upload.
                self.flag_media(&up.row, "mismatch", "before_final_chunk", Some(&up.url))?;
                return Ok(Sent::SetAside);
            }
            let buf = up.bufs.share(buf);
            self.hash_chunk(up, &buf, end)?;
            if end == up.total && !self.final_chunk_may_go(up, media)? {
                return Ok(Sent::SetAside);
            }
            self.record_leaving(up, end)?;
            let started = Instant::now();
            let (resp, failures) = self.patch(&up.url, up.offset, buf)?;
            let elapsed = started.elapsed();
            let next = match resp.status {
                200 | 201 | 204 => {
                    if failures == 0 {
                        self.chunks.acknowledged(len, elapsed);
                    } else {
                        self.chunks.failed();
                    }
                    self.on_acknowledged(up, &resp, end)?
                }
                409 => {
                    self.chunks.failed();
                    self.on_offset_conflict(up)?
                }
                404 | 410 => {
                    // The upload resource went away (expired, or completed and removed).
                    if self.try_receipt(&up.row.clip_id)? {
                        return Ok(Sent::SetAside);
                    }
                    return Err(Stop::Transient("PATCH upload: the upload URL is gone; it will be renewed".into()));
                }
                _ => {
                    self.needs_attention(&up.row, &format!("upload refused: {}", problem_title(&resp)))?;
                    Next::SetAside
                }
            };
            if let Next::SetAside = next {
                return Ok(Sent::SetAside);
            }
        }
        Ok(Sent::All)
    }

    /// The server is ahead of what was hashed (it took bytes this pass did not send): reads
    /// those back, so the stream hashed stays the whole file in order. False when the file
    /// ended early (the item is flagged).
    fn hash_gap(&mut self, up: &mut Upload) -> Step<bool> {
        let Some(h) = up.hasher.as_mut() else { return Ok(true) };
        while up.hashed_to < up.offset {
            let n = (up.offset - up.hashed_to).min(self.chunks.size() as u64) as usize;
            let mut gap = up.bufs.take(n);
            if !read_media(&mut up.file, up.hashed_to, &mut gap)? {
                self.flag_media(&up.row, "mismatch", "before_final_chunk", Some(&up.url))?;
                return Ok(false);
            }
            h.update(up.bufs.share(gap)).map_err(|e| Error::io("hashing the media file", e))?;
            up.hashed_to += n as u64;
        }
        Ok(true)
    }

    /// Hands the chunk `[up.offset, end)` to the BLAKE3 worker, each byte once: after a 409 the
    /// server may ask for bytes again that were already hashed.
    fn hash_chunk(&mut self, up: &mut Upload, buf: &Arc<Vec<u8>>, end: u64) -> Step<()> {
        let Some(h) = up.hasher.as_mut() else { return Ok(()) };
        if end > up.hashed_to {
            let part = if up.hashed_to == up.offset { buf.clone() } else { Arc::new(buf[(up.hashed_to - up.offset) as usize..].to_vec()) };
            h.update(part).map_err(|e| Error::io("hashing the media file", e))?;
            up.hashed_to = end;
        }
        Ok(())
    }

    /// The chunk `[up.offset, end)` is about to leave: counts what is sent again, and makes
    /// the high-water mark durable before any byte beyond it goes.
    fn record_leaving(&mut self, up: &mut Upload, end: u64) -> Step<()> {
        if up.offset < up.sent_to {
            self.summary.bytes_resent += up.sent_to.min(end) - up.offset;
        }
        if end > up.high_water {
            up.high_water = end;
            self.put_high_water(&up.hw_key, up.high_water)?;
        }
        up.sent_to = up.sent_to.max(end);
        Ok(())
    }

    /// One tus `PATCH` of `chunk` at `offset` (retried on transient failures), and how many
    /// attempts failed before the answer. Each attempt carries its own copy of the chunk (the
    /// transport takes the body); the hash worker shares the original meanwhile.
    fn patch(&mut self, url: &str, offset: u64, chunk: Arc<Vec<u8>>) -> Step<(HttpResponse, u32)> {
        let offset = offset.to_string();
        self.send_counting("PATCH upload", &move |p: &Pass<'_>| HttpRequest {
            method: "PATCH".into(),
            url: url.into(),
            headers: vec![
                (TUS.0.into(), TUS.1.into()),
                ("Upload-Offset".into(), offset.clone()),
                ("Content-Type".into(), "application/offset+octet-stream".into()),
            ],
            body: chunk.to_vec(),
            timeout: p.opts.request_timeout,
        })
    }

    /// A `PATCH` was acknowledged: stores the new offset (one durable commit per chunk, with
    /// the high-water mark of the next chunk) and keeps a receipt that came with the answer.
    fn on_acknowledged(&mut self, up: &mut Upload, resp: &HttpResponse, end: u64) -> Step<Next> {
        let new = resp.header("upload-offset").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(end);
        if new < up.offset || new > up.total {
            return Err(Stop::Transient("PATCH upload: implausible Upload-Offset".into()));
        }
        self.summary.bytes_uploaded += new - up.offset;
        up.offset = new;
        // The high-water mark of the next chunk (at its size as adapted to this one) must be on
        // record before any of its bytes leave.
        let next_end = (up.offset + self.chunks.size() as u64).min(up.total);
        if up.offset < up.total && next_end > up.high_water {
            up.high_water = next_end;
            self.set_offset_and_high_water(&up.row.clip_id, up.offset, &up.hw_key, up.high_water)?;
        } else {
            self.set_offset(&up.row.clip_id, up.offset)?;
        }
        if !resp.body.is_empty() {
            if let Some(doc) = receipt_in(&resp.body) {
                up.last_receipt = Some(doc);
            }
        }
        self.report(SyncPhase::Uploading, Some(&up.row.clip_id), up.offset, up.total);
        Ok(Next::Continue)
    }

    /// A `409`: the offset differs from the server's; ask where it is and continue from there.
    fn on_offset_conflict(&mut self, up: &mut Upload) -> Step<Next> {
        up.conflicts += 1;
        if up.conflicts > 5 {
            return Err(Stop::Transient("PATCH upload: repeated offset conflicts".into()));
        }
        let url = up.url.clone();
        match self.head_or_attention(&up.row, &url)? {
            HeadResult::Offset(o) if o <= up.total => {
                up.offset = o;
                Ok(Next::Continue)
            }
            HeadResult::Offset(_) => {
                self.needs_attention(&up.row, "the server reports more bytes than the file has")?;
                Ok(Next::SetAside)
            }
            HeadResult::Gone => {
                let _ = self.try_receipt(&up.row.clip_id)?;
                Ok(Next::SetAside)
            }
            HeadResult::Attention => Ok(Next::SetAside),
        }
    }
}

/// A receipt in a `PATCH` answer: the signed document itself, or under `receipt`.
fn receipt_in(body: &[u8]) -> Option<SignedDoc> {
    if let Ok(doc) = serde_json::from_slice::<SignedDoc>(body) {
        return Some(doc);
    }
    let v = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    v.get("receipt").and_then(|r| serde_json::from_value::<SignedDoc>(r.clone()).ok())
}

/// Fills `buf` from the media file at `at`; false when the file ends before (it is shorter than
/// its signed length, so it changed).
fn read_media(file: &mut fs::File, at: u64, buf: &mut [u8]) -> Step<bool> {
    file.seek(SeekFrom::Start(at)).map_err(|e| Error::io("reading the media file", e))?;
    match file.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Stop::Fatal(Error::io("reading the media file", e))),
    }
}

/// The upload's chunk buffers, reused once the hash worker has let go of them: a fresh
/// multi-MiB buffer per chunk costs the kernel a page fault per 4 KiB, about as much CPU as
/// hashing it.
#[derive(Default)]
pub(super) struct ChunkBufs(Vec<Arc<Vec<u8>>>);

impl ChunkBufs {
    /// Buffers kept for reuse: the BLAKE3 worker holds at most one chunk (it has no queue)
    /// while the send loop fills and sends the next.
    const KEEP: usize = 2;

    /// A buffer of `len` bytes: a free one reused, else a new one.
    pub(super) fn take(&mut self, len: usize) -> Vec<u8> {
        // Only this thread clones the kept handles, so a count of 1 stays 1.
        let mut v = match self.0.iter().position(|b| Arc::strong_count(b) == 1) {
            Some(i) => Arc::try_unwrap(self.0.swap_remove(i)).unwrap_or_default(),
            None => Vec::new(),
        };
        v.resize(len, 0);
        v
    }

    /// Shares a filled buffer, keeping a handle so that it can be reused.
    pub(super) fn share(&mut self, v: Vec<u8>) -> Arc<Vec<u8>> {
        let a = Arc::new(v);
        if self.0.len() < Self::KEEP {
            self.0.push(a.clone());
        }
        a
    }
}
