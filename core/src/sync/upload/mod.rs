//! The media of one item, over tus 1.0, verified while it is sent.
//!
//! Before any byte leaves, the file must be there at its signed length (else the item is
//! flagged `before_upload`). Then:
//!
//! 1. **Resume** (`resume.rs`): `HEAD` gives the server's offset; an expired or vanished upload
//!    URL is renewed once by posting the manifest again. On a resume, the bytes already on the
//!    server are read back from the file and hashed first ([`super::SyncPhase::Verifying`]).
//! 2. **Send** (`send.rs`): `PATCH` chunks from the server's offset; each acknowledged offset is
//!    stored (and a high-water mark of what may have left, so that re-sent bytes are counted);
//!    a `409` means "HEAD again and continue from there". Each chunk is handed to the BLAKE3
//!    worker as it is sent, so the digest covers exactly the bytes of the upload. Chunk sizes
//!    adapt to the link (`chunk_size.rs`).
//! 3. **Final check** (`final_check.rs`): the final chunk is held back until the length and
//!    BLAKE3 of the whole equal the signed manifest's. On a difference the item is flagged
//!    (`before_final_chunk`), the partial upload terminated (tus `DELETE`), and the final chunk
//!    never sent: the server never holds the whole of a changed file.
//!
//! When the server already holds every byte, nothing is hashed or sent: its receipt rests on its
//! own verification (it re-hashes on completion whatever the device did).

mod chunk_size;
mod final_check;
mod resume;
mod send;

pub(super) use chunk_size::ChunkSizer;

use super::pass::{problem_title, Pass, Step, Stop, TUS};
use crate::store::db::sync::{self as rows, ItemRow};
use super::transport::{join_url, HttpRequest};
use crate::error::Error;
use crate::hashing::StreamingDigests;
use crate::manifest::Media;
use crate::protocol::SignedDoc;
use resume::{Located, PrefixHash};
use send::{ChunkBufs, Sent};
use serde_json::json;
use std::fs;
use std::path::Path;

/// How an upload ended, when it did not stop the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Uploaded {
    /// The server holds every byte; its receipt is still to be fetched.
    ReceiptDue,
    /// Nothing more for this item in this pass: its receipt was verified and kept already (it
    /// came with the last `PATCH`, or the server had it), or the item was set aside (flagged,
    /// refused, waiting for a person).
    Settled,
}

/// One upload in progress: where the server is, what was hashed, what may have been sent.
struct Upload {
    /// The item's row (as reloaded when the upload started or was renewed).
    row: ItemRow,
    /// The absolute upload URL.
    url: String,
    /// The media file, read chunk by chunk.
    file: fs::File,
    /// The signed length of the media.
    total: u64,
    /// The server's offset, as last acknowledged.
    offset: u64,
    /// The BLAKE3 of `[0, hashed_to)`; `None` once the final check took it (or when the
    /// server held everything from the start).
    hasher: Option<StreamingDigests>,
    /// How far the stream given to `hasher` reaches.
    hashed_to: u64,
    /// Key of the durable high-water mark in the `server` table.
    hw_key: String,
    /// Durable: no byte beyond it ever left the device for this upload. It may run one chunk
    /// ahead (recorded with the previous offset, before the next chunk's bytes leave).
    high_water: u64,
    /// How far this pass really sent; written back on a clean stop so that a cancelled pass
    /// does not count the unsent next chunk as re-sent later.
    sent_to: u64,
    /// Reused chunk buffers.
    bufs: ChunkBufs,
    /// A receipt found in a `PATCH` answer.
    last_receipt: Option<SignedDoc>,
    /// `409` answers so far.
    conflicts: u32,
}

impl Pass<'_> {
    /// The media step of one item (then its receipt), noting a transient stop on the item.
    pub(super) fn item(&mut self, row: &ItemRow) -> Step<()> {
        let r = self.item_inner(row);
        self.with_transient_note(&row.clip_id, r)
    }

    fn item_inner(&mut self, row: &ItemRow) -> Step<()> {
        if row.state != "uploaded" {
            // A sealed item uploads its age file (the server decrypts it); `media` then describes
            // the ciphertext.
            if let Some((name, media)) = &row.upload_file()? {
                let path = self.store.item_dir(&row.clip_id).join(name);
                // The file must be there, at its signed length, before any byte leaves; its
                // digests are taken over the bytes as they are sent (see `upload`).
                let earlier_partial = row.upload_url.as_deref().filter(|_| row.upload_offset > 0).map(|u| join_url(&self.server.url, u));
                let file = match fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.flag_media(row, "missing", "before_upload", earlier_partial.as_deref())?;
                        return Ok(());
                    }
                    Err(e) => return Err(Stop::Fatal(Error::io("opening the media file before upload", e))),
                };
                let len = file.metadata().map_err(|e| Error::io("reading the media file before upload", e))?.len();
                if len != media.bytes {
                    self.flag_media(row, "mismatch", "before_upload", earlier_partial.as_deref())?;
                    return Ok(());
                }
                if let Uploaded::Settled = self.upload(row, file, &path, media)? {
                    return Ok(());
                }
            } else {
                self.set_state(&row.clip_id, "uploaded")?;
            }
        }
        self.fetch_receipt(&row.clip_id)
    }

    /// Uploads the media from the server's offset: [`Uploaded::ReceiptDue`] when the server
    /// holds every byte and its receipt is still to be fetched, [`Uploaded::Settled`] when there
    /// is nothing more to do for the item in this pass (its receipt was verified and kept
    /// already, or the item was set aside).
    ///
    /// The digest is taken over exactly the bytes of the upload while it runs: the bytes
    /// already on the server are read back from the file by the hasher's own thread, each chunk
    /// is handed to the BLAKE3 worker as it is sent, and the final chunk is held back until the
    /// length and BLAKE3 of the whole equal the signed manifest's. A difference flags the item
    /// and terminates the partial upload; the final chunk is never sent.
    fn upload(&mut self, row0: &ItemRow, file: fs::File, path: &Path, media: &Media) -> Step<Uploaded> {
        let total = media.bytes;
        let (row, offset) = match self.locate_server_offset(row0)? {
            Located::At(row, offset) => (row, offset),
            Located::Settled(end) => return Ok(end),
        };
        let url = join_url(&self.server.url, row.upload_url.as_deref().unwrap_or_default());
        if offset > total {
            self.needs_attention(&row, "the server reports more bytes than the file has")?;
            return Ok(Uploaded::Settled);
        }
        // When the server kept less than it acknowledged (restored from a backup), those bytes
        // go again; the send loop counts them as re-sent as they leave (the high-water mark is
        // never below the acknowledged offset), so they are not counted here as well.
        let hw_key = format!("upload_hw/{}", row.clip_id);
        let high_water = self.load_high_water(&hw_key, row.upload_offset)?;
        self.set_offset(&row.clip_id, offset)?;
        let hasher = match self.start_hashing(&row, &url, path, offset, total)? {
            PrefixHash::Running(h) => Some(h),
            PrefixHash::NothingToSend => None,
            PrefixHash::FileGone => return Ok(Uploaded::Settled),
        };
        let mut up = Upload {
            row,
            url,
            file,
            total,
            offset,
            hasher,
            hashed_to: offset,
            hw_key,
            high_water,
            sent_to: high_water,
            bufs: ChunkBufs::default(),
            last_receipt: None,
            conflicts: 0,
        };
        match self.send_chunks(&mut up, media)? {
            Sent::All => self.complete_upload(up),
            Sent::SetAside => Ok(Uploaded::Settled),
        }
    }

    /// Every byte is on the server: the item is `uploaded` (with a custody event), and a receipt
    /// that came with the last `PATCH` is verified at once. A stop while verifying it (cancel,
    /// budget, a store failure) stops the pass like any other; the item stays `uploaded` and
    /// the next pass fetches the receipt again.
    fn complete_upload(&mut self, up: Upload) -> Step<Uploaded> {
        let _ = rows::server_del(&self.store.conn(), &up.hw_key);
        {
            let mut conn = self.store.conn();
            let tx = conn.transaction()?;
            rows::set_uploaded(&tx, &up.row.clip_id, up.total)?;
            crate::store::append_custody_tx(&tx, self.store.device_key(), "uploaded", Some(&up.row.clip_id), json!({"bytes": up.total}))?;
            tx.commit()?;
        }
        self.summary.uploads_completed += 1;
        if let Some(doc) = up.last_receipt {
            let row = self.reload(&up.row.clip_id)?;
            self.accept_receipt(&row, &doc)?;
            return Ok(Uploaded::Settled);
        }
        Ok(Uploaded::ReceiptDue)
    }

    /// Flags an item whose media file is missing or no longer matches its signed manifest:
    /// `integrity`, `needs_attention`, `last_error`, and a custody `flagged` event naming
    /// `when` it was found. With `partial` (the upload URL of bytes already on the server), the
    /// partial upload is terminated first (tus `DELETE`), so no partial copy of a changed file
    /// lingers; a termination that fails is noted in `last_error` and in the custody event
    /// (`upload_terminated: false`), not fatal: the server expires incomplete uploads, and it
    /// re-verifies on completion anyway.
    fn flag_media(&mut self, row: &ItemRow, integrity: &str, when: &str, partial: Option<&str>) -> Step<()> {
        let detail = if integrity == "missing" { "the media file is missing" } else { "the media file no longer matches its signed manifest" };
        let mut details = json!({"integrity": integrity, "when": when});
        let mut last_error = detail.to_string();
        let mut terminated = false;
        if let Some(url) = partial {
            match self.terminate_upload(url) {
                Ok(()) => terminated = true,
                Err(why) => {
                    tracing::warn!("item {}: the partial upload could not be terminated: {why}", row.clip_id);
                    last_error.push_str(&format!("; the partial upload on the server could not be discarded ({why}); it expires there"));
                }
            }
            details["upload_terminated"] = json!(terminated);
        }
        let _ = rows::server_del(&self.store.conn(), &format!("upload_hw/{}", row.clip_id));
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        rows::set_flagged(&tx, &row.clip_id, integrity, detail, &last_error, terminated)?;
        crate::store::append_custody_tx(&tx, self.store.device_key(), "flagged", Some(&row.clip_id), details)?;
        tx.commit()?;
        Ok(())
    }

    /// tus termination of an unfinished upload. An upload already gone (404, 410) counts as
    /// terminated; anything else is returned as the reason it was not.
    fn terminate_upload(&mut self, url: &str) -> std::result::Result<(), String> {
        let r = self.send("DELETE upload", &|p: &Pass<'_>| HttpRequest {
            method: "DELETE".into(),
            url: url.into(),
            headers: vec![(TUS.0.into(), TUS.1.into())],
            body: vec![],
            timeout: p.opts.request_timeout,
        });
        match r {
            Ok(resp) if matches!(resp.status, 200 | 204 | 404 | 410) => Ok(()),
            Ok(resp) => Err(problem_title(&resp)),
            Err(Stop::Transient(e)) => Err(e),
            Err(Stop::Cancelled) => Err("the pass was cancelled".into()),
            Err(Stop::Budget) => Err("the pass ran out of time".into()),
            Err(Stop::Fatal(e)) => Err(e.to_string()),
        }
    }

    /// Records the server-acknowledged offset of an upload (and that it has started).
    fn set_offset(&self, clip_id: &str, offset: u64) -> Step<()> {
        rows::set_upload_offset(&self.store.conn(), clip_id, offset)?;
        Ok(())
    }

    /// [`Self::set_offset`] and the upload's high-water mark in one transaction.
    fn set_offset_and_high_water(&self, clip_id: &str, offset: u64, hw_key: &str, high_water: u64) -> Step<()> {
        let mut conn = self.store.conn();
        let tx = conn.transaction()?;
        rows::set_upload_offset(&tx, clip_id, offset)?;
        rows::server_put(&tx, hw_key, high_water.to_string().as_bytes())?;
        tx.commit()?;
        Ok(())
    }

    /// Stores the upload's high-water mark alone.
    fn put_high_water(&self, hw_key: &str, high_water: u64) -> Step<()> {
        rows::server_put(&self.store.conn(), hw_key, high_water.to_string().as_bytes())?;
        Ok(())
    }
}
