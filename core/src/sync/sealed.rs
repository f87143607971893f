//! Sync of sealed items (FORMATS §6b, §8 "Sealed items"): the council's escrow key, and the
//! manifests of items encrypted at rest.
//!
//! The escrow recipient comes from `GET /v1/escrow-key`, a statement signed by the server key
//! pinned at enrolment; it is checked before it is pinned, and every sealed item's key is wrapped
//! to it. A sealed item's manifest goes to `POST /v1/manifests/sealed` as its age file with the
//! escrow wrap of its key (the device sends the same bytes whether or not it can still open them:
//! a locked item uploads exactly like an unlocked one). Its media is the age file, sent by the
//! same tus upload as any other; the server decrypts it and re-hashes the plaintext against the
//! signed manifest before it accepts the last byte.

use super::pass::{Pass, Step, Stop};
use super::transport::{join_url, HttpRequest};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, Media};
use crate::protocol::{self, EscrowKeyStatement, SignedDoc};
use crate::store::db::sync::ItemRow;

impl ItemRow {
    /// The media as signed (what a receipt must name): from the manifest, or for a sealed item
    /// (whose manifest the phone may no longer be able to open) from its row.
    pub(crate) fn signed_media(&self) -> Result<Option<Media>> {
        if !self.sealed {
            return Ok(Manifest::parse(&self.manifest)?.media);
        }
        Ok(match (&self.media_plain, &self.media_ext) {
            (Some((bytes, sha256, blake3)), Some(ext)) => Some(Media {
                mime: crate::manifest::mime_for_extension(ext).map(|m| m.0.to_string()).unwrap_or_default(),
                bytes: *bytes,
                sha256: sha256.clone(),
                blake3: blake3.clone(),
            }),
            _ => None,
        })
    }

    /// The file that is uploaded and what it must be: for a plain item the media itself, for a
    /// sealed one its age file (length and BLAKE3 of the ciphertext; SHA-256 is not checked on
    /// the device for either). `None` for an item without media.
    pub(crate) fn upload_file(&self) -> Result<Option<(String, Media)>> {
        let Some(plain) = self.signed_media()? else { return Ok(None) };
        let ext = self.media_ext.clone().ok_or_else(|| Error::Corrupt("an item with media has no file extension".into()))?;
        if !self.sealed {
            return Ok(Some((format!("media.{ext}"), plain)));
        }
        let (bytes, blake3) = self.media_age.clone().ok_or_else(|| Error::Corrupt("a sealed item with media has no encrypted-file facts".into()))?;
        Ok(Some((crate::vault::media_age_name(&ext), Media { mime: "application/octet-stream".into(), bytes, sha256: String::new(), blake3 })))
    }
}

/// The escrow recipient of a `GET /v1/escrow-key` answer, checked: signed by the pinned server
/// key, naming that key.
pub(crate) fn escrow_recipient_from(body: &[u8], server_key: &ed25519_dalek::VerifyingKey, server_key_id: &str) -> Result<crate::escrow::Recipient> {
    let doc: SignedDoc = serde_json::from_slice(body).map_err(|_| Error::Integrity("the escrow-key answer does not parse".into()))?;
    let (st, _, _): (EscrowKeyStatement, _, _) = doc.open(server_key)?;
    if st.doc_type != protocol::types::ESCROW_KEY || st.server_key_id != server_key_id {
        return Err(Error::Integrity("the escrow-key statement is not this server's".into()));
    }
    Ok(crate::escrow::Recipient::parse(&st.recipient)?)
}

impl Pass<'_> {
    /// Fetches the escrow-key statement, checks it against the pinned server key and pins its
    /// recipient (wrapping the keys of sealed items that lack an escrow wrap, then applying the
    /// lock policy). A server without escrow (404) leaves everything as it is.
    pub(super) fn refresh_escrow_key(&mut self) -> Step<()> {
        let url = join_url(&self.server.url, protocol::ESCROW_KEY_PATH);
        let resp = self.send("GET /v1/escrow-key", &|p: &Pass<'_>| HttpRequest {
            method: "GET".into(),
            url: url.clone(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: p.opts.request_timeout,
        })?;
        if resp.status == 404 {
            return Ok(());
        }
        if resp.status != 200 {
            return Err(Stop::Transient(format!("GET /v1/escrow-key: status {}", resp.status)));
        }
        match escrow_recipient_from(&resp.body, &self.server.key, &self.server.key_id) {
            Ok(r) => {
                self.store.pin_escrow_recipient(&r)?;
                Ok(())
            }
            Err(e) => {
                self.store.raise_alarm("bad_escrow_key", &e.to_string())?;
                self.summary.alarms += 1;
                Ok(())
            }
        }
    }

    /// The body and path of a sealed item's manifest submission; `None` while the item has no
    /// escrow wrap yet (the council's key is not pinned: it waits, queued).
    pub(super) fn sealed_submission(&self, row: &ItemRow) -> Step<Option<Vec<u8>>> {
        let Some(wrap) = self.store.escrow_wrap(&row.clip_id)? else { return Ok(None) };
        let body = protocol::SealedManifestSubmission {
            manifest_age: protocol::b64(&row.manifest),
            sig: protocol::b64(&row.signature),
            key_wrap: protocol::b64(&wrap),
            media_age_bytes: row.media_age.as_ref().map(|a| a.0),
        };
        Ok(Some(serde_json::to_vec(&body)?))
    }
}
