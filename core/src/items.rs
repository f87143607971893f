//! Reading the queue: listing items, one item's record, export of a clip for a third party.

use crate::error::{Error, IoContext, Result};
use crate::store::{db, Store};
use serde::Serialize;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};

/// One line of `fieldcap clips`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemSummary {
    /// Item id.
    pub clip_id: String,
    /// Chain position.
    pub seq: u64,
    /// video / audio / photo / observation.
    pub kind: String,
    /// Queue state: sealed, manifest_sent, uploading, uploaded, receipted, needs_attention.
    pub state: String,
    /// ok, missing or mismatch.
    pub integrity: String,
    /// Capture start.
    pub started_at: String,
    /// When sealed.
    pub sealed_at: String,
    /// Media size, if any.
    pub media_bytes: Option<u64>,
    /// Recording id, for segments.
    pub recording_id: Option<String>,
    /// Segment index, for segments.
    pub segment_index: Option<u32>,
    /// When the server's receipt was verified.
    pub receipted_at: Option<String>,
    /// Why the item needs attention, if it does.
    pub last_error: Option<String>,
    /// Stored encrypted at rest (sealed storage, FORMATS §6b).
    pub sealed: bool,
    /// Locked to the council: it cannot be opened on this phone (it still uploads).
    pub locked: bool,
}

/// Everything stored about one item.
#[derive(Debug, Clone)]
pub struct ItemRecord {
    /// Summary fields.
    pub summary: ItemSummary,
    /// Exact manifest bytes (for a sealed item, decrypted through its vault wrap; empty when
    /// the item is locked: see `summary.locked`).
    pub manifest: Vec<u8>,
    /// Raw Ed25519 signature.
    pub signature: Vec<u8>,
    /// Path of the media file, if any (for a sealed item its age file: read it through
    /// [`Store::open_media`]).
    pub media_path: Option<PathBuf>,
    /// Receipt bytes and signature, once receipted.
    pub receipt: Option<(Vec<u8>, Vec<u8>)>,
}

/// States in which an item still has work to do for sync.
pub const QUEUED_STATES: &[&str] = &["sealed", "manifest_sent", "uploading", "uploaded"];

impl Store {
    /// All items in chain order.
    pub fn list_items(&self) -> Result<Vec<ItemSummary>> {
        db::item_summaries(&self.conn())
    }

    /// The oldest `limit` items that still need syncing (uses the (state, seq) index).
    pub fn next_queued(&self, limit: usize) -> Result<Vec<ItemSummary>> {
        db::queued_summaries(&self.conn(), limit)
    }

    /// One item's summary, without opening anything (no decryption for a sealed item).
    pub fn item_summary(&self, clip_id: &str) -> Result<ItemSummary> {
        let row = db::item_row(&self.conn(), clip_id)?;
        Ok(row.ok_or_else(|| Error::NotFound(format!("no item with id '{}'", clip_id.chars().take(80).collect::<String>())))?.summary)
    }

    /// One item; `NotFound` for an unknown id.
    pub fn item(&self, clip_id: &str) -> Result<ItemRecord> {
        let row = db::item_row(&self.conn(), clip_id)?;
        let db::ItemRow { summary, manifest, signature, media_ext: ext, receipt, receipt_sig, purged_at: purged } =
            row.ok_or_else(|| Error::NotFound(format!("no item with id '{}'", clip_id.chars().take(80).collect::<String>())))?;
        let media_path = match (ext, purged) {
            (Some(e), None) if summary.sealed => Some(self.item_dir(clip_id).join(crate::vault::media_age_name(&e))),
            (Some(e), None) => Some(self.item_dir(clip_id).join(format!("media.{e}"))),
            _ => None,
        };
        let manifest = match (summary.sealed, summary.locked) {
            (false, _) => manifest,
            (true, true) => Vec::new(),
            (true, false) => self.item_key(clip_id)?.decrypt(&manifest, crate::manifest::MAX_MANIFEST_BYTES)?,
        };
        Ok(ItemRecord { summary, manifest, signature, media_path, receipt: receipt.zip(receipt_sig) })
    }

    /// A reader of an item's media plaintext: the file itself, or for a sealed item its age
    /// file decrypted through the vault wrap ([`Error::Locked`] once the item is locked).
    pub fn open_media(&self, rec: &ItemRecord) -> Result<Box<dyn std::io::Read + Send>> {
        let path = rec.media_path.as_ref().ok_or_else(|| Error::NotFound("the media of this item was purged after a verified receipt".into()))?;
        let f = fs::File::open(path).ctx(|| "opening the media".into())?;
        if !rec.summary.sealed {
            return Ok(Box::new(f));
        }
        let key = self.item_key(&rec.summary.clip_id)?;
        Ok(Box::new(key.media_reader(f)?))
    }

    /// Every manifest in chain order (for chain verification).
    pub fn manifests(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        db::manifests(&self.conn())
    }

    /// Writes a self-contained, verifiable copy of one item into `out` (which must not exist or
    /// be empty): media, manifest.json, manifest.sig, device.pub.pem, the device custody log,
    /// the receipt if any, SHA256SUMS, B3SUMS and VERIFY.txt. The folder appears whole or not at
    /// all; the media is re-hashed while copying, so a damaged original is refused, not exported.
    pub fn export_clip(&self, clip_id: &str, out: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<PathBuf> {
        let rec = self.item(clip_id)?;
        if rec.summary.locked {
            return Err(Error::Locked(format!("item {} is locked to the council and cannot be exported from this phone", short(clip_id))));
        }
        match fs::read_dir(out) {
            Ok(mut d) => {
                if d.next().is_some() {
                    return Err(Error::AlreadyExists("the export folder already holds files; choose an empty or new folder".into()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(Error::AlreadyExists("the export path is a file, not a folder".into()))
            }
            Err(e) => return Err(Error::io("reading the export folder", e)),
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).ctx(|| "creating the export folder's parent".into())?;
        let tmp = parent.join(format!(".fieldcap-export-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()));
        fs::create_dir(&tmp).ctx(|| "creating a temporary export folder".into())?;
        let res = self.write_export(&rec, &tmp, progress).and_then(|_| {
            if out.exists() {
                fs::remove_dir(out).ctx(|| "replacing the empty export folder".into())?;
            }
            fs::rename(&tmp, out).ctx(|| "moving the export into place".into())?;
            Ok(crate::fsutil::sync_dir(&parent)?)
        });
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        self.append_custody("exported", Some(clip_id), json!({"manifest_sha256": crate::hashing::sha256_hex(&rec.manifest)}))?;
        Ok(out.to_path_buf())
    }

    fn write_export(&self, rec: &ItemRecord, dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<()> {
        let m = crate::manifest::Manifest::parse(&rec.manifest)?;
        let mut files: Vec<(String, crate::hashing::Digests)> = Vec::new();
        let mut put = |name: &str, data: &[u8]| -> Result<()> {
            crate::fsutil::write_new(&dir.join(name), data)?;
            files.push((name.to_string(), crate::hashing::Digests::of_bytes(data)));
            Ok(())
        };
        put("manifest.json", &rec.manifest)?;
        put("manifest.sig", &rec.signature)?;
        put("device.pub.pem", self.public_pem().as_bytes())?;
        let custody: String = self.custody_events(None)?.iter().map(|e| e.to_jsonl() + "\n").collect();
        put("custody.jsonl", custody.as_bytes())?;
        put("VERIFY.txt", crate::clip::CLIP_VERIFY_TXT.as_bytes())?;
        if let Some((r, s)) = &rec.receipt {
            put("receipt.json", r)?;
            put("receipt.sig", s)?;
        }
        if let Some(media) = &m.media {
            let name = format!("media.{}", crate::manifest::extension_for_mime(&media.mime));
            let total = media.bytes;
            let d = {
                let input = self.open_media(rec)?;
                let mut out = fs::OpenOptions::new().write(true).create_new(true).open(dir.join(&name)).ctx(|| "creating the media copy".into())?;
                let d = crate::hashing::hash_reader_into(input, &mut out, &mut |n| progress(n, total)).ctx(|| "copying the media".into())?;
                out.sync_all().ctx(|| "syncing the media copy".into())?;
                d
            };
            if d.bytes != media.bytes || d.sha256_hex() != media.sha256 || d.blake3_hex() != media.blake3 {
                return Err(Error::Integrity("the stored media no longer matches its manifest; it was not exported".into()));
            }
            files.push((name, d));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let sha: String = files.iter().map(|(n, d)| format!("{}  {n}\n", d.sha256_hex())).collect();
        let b3: String = files.iter().map(|(n, d)| format!("{}  {n}\n", d.blake3_hex())).collect();
        crate::fsutil::write_new(&dir.join("SHA256SUMS"), sha.as_bytes())?;
        crate::fsutil::write_new(&dir.join("B3SUMS"), b3.as_bytes())?;
        Ok(crate::fsutil::sync_dir(dir)?)
    }
}

/// First 8 characters of an id, for messages.
pub fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
