//! Sealed storage: items encrypted at rest, the device vault, the council's escrow key, locking.
//!
//! A store with sealed storage on (the profile's `sealed_storage`) keeps nothing of an item in the
//! clear that would expose the people it shows (FORMATS §6b):
//!
//! ```text
//! items/<clip_id>/media.<ext>.age     the media, age-encrypted to the item's own key
//! items/<clip_id>/manifest.json.age   the signed manifest (track, note, tags, observation), same key
//! items/<clip_id>/manifest.sig        the device signature over the *plaintext* manifest
//! items/<clip_id>/key.vault.age       the item key wrapped to the device vault (gone once locked)
//! items/<clip_id>/key.escrow.age      the item key wrapped to the council's escrow key
//! items/<clip_id>/sealed.json         what the database needs to rebuild the row (ids, digests)
//! keys/vault.key                      the vault identity, wrapped by the KeyProtector
//! ```
//!
//! Hashes and signatures stay over the plaintext: manifests, receipts and every verifier are
//! unchanged. The monitor reviews an item through its vault wrap. **Locking** forgets the vault
//! wrap: from then on nobody holding the phone can open the item, the monitor included, while it
//! still uploads (the device sends the ciphertext and the escrow wrap; the server opens both with
//! the escrow key and re-hashes the plaintext against the signed manifest). An item is only ever
//! locked when its escrow wrap is on disk, so locking can never make evidence unreadable to
//! everyone; nothing here deletes an item.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use fieldcap_core::{Store, identity::FileKeyProtector};
//! let store = Store::open("/tmp/fieldcap-home".as_ref(), Arc::new(FileKeyProtector))?;
//! let report = store.lock_all()?;
//! println!("{} locked, {} wait for the council key", report.locked.len(), report.waiting_for_escrow.len());
//! # Ok::<(), fieldcap_core::Error>(())
//! ```

use crate::error::{Error, IoContext, Result};
use crate::escrow::{ItemKey, Recipient, VaultIdentity};
use crate::identity::KeyProtector;
use crate::store::{append_custody_tx, db, Store};
use rusqlite::TransactionBehavior;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The item key wrapped to the vault.
pub(crate) const KEY_VAULT: &str = "key.vault.age";
/// The item key wrapped to the council's escrow key.
pub(crate) const KEY_ESCROW: &str = "key.escrow.age";
/// The manifest, encrypted to the item key.
pub(crate) const MANIFEST_AGE: &str = "manifest.json.age";
/// The public facts of a sealed item (enough to rebuild its row and to upload it).
pub(crate) const SEALED_INDEX: &str = "sealed.json";
/// Key in the `server` table holding the pinned escrow recipient.
pub(crate) const ESCROW_PIN: &str = "escrow_recipient";
const VAULT_KEY_TYPE: &str = "fieldcap.wrapped-vault-key/1";

/// Name of a sealed item's media file.
pub(crate) fn media_age_name(ext: &str) -> String {
    format!("media.{ext}.age")
}

/// The device vault: an X25519 identity kept wrapped by the platform key store.
pub(crate) struct Vault {
    identity: VaultIdentity,
}

impl Vault {
    /// Loads `keys/vault.key`, creating it on first start (or on a store older than sealing).
    pub(crate) fn load_or_create(keys: &Path, protector: &dyn KeyProtector) -> Result<Vault> {
        let (secret, _) = crate::identity::load_or_create_wrapped(keys, "vault.key", VAULT_KEY_TYPE, protector, "recipient", &mut || {
            let id = VaultIdentity::generate();
            let public = id.recipient().to_string();
            (zeroize::Zeroizing::new(id.to_secret_text().as_bytes().to_vec()), public)
        })?;
        let text = std::str::from_utf8(&secret).map_err(|_| Error::Key("the vault key is not text".into()))?;
        Ok(Vault { identity: VaultIdentity::parse(text)? })
    }

    pub(crate) fn recipient(&self) -> Recipient {
        self.identity.recipient()
    }

    /// Encrypts a small value (a pending seal's request) to the vault.
    pub(crate) fn seal_text(&self, plaintext: &str) -> Result<String> {
        let k = ItemKey::generate();
        // One-off key wrapped to the vault: the same two-layer form as an item, so one opener.
        let wrap = k.wrap_to(&self.recipient())?;
        let ct = k.encrypt(plaintext.as_bytes())?;
        Ok(format!("age:{}:{}", crate::protocol::b64(&wrap), crate::protocol::b64(&ct)))
    }

    /// Opens what [`Vault::seal_text`] made; any other text is returned as it is (rows written
    /// before sealed storage).
    pub(crate) fn open_text(&self, stored: &str) -> Result<String> {
        let Some(rest) = stored.strip_prefix("age:") else { return Ok(stored.to_string()) };
        let (wrap, ct) = rest.split_once(':').ok_or_else(|| Error::Corrupt("a sealed row is not in the sealed form".into()))?;
        let dec = |s: &str| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).map_err(|_| Error::Corrupt("a sealed row is not base64".into()));
        let k = ItemKey::unwrap_with(&dec(wrap)?, &[&self.identity])?;
        let plain = k.decrypt(&dec(ct)?, 16 << 20)?;
        String::from_utf8(plain).map_err(|_| Error::Corrupt("a sealed row is not text".into()))
    }
}

/// Length and BLAKE3 of a sealed item's media file (the ciphertext that is uploaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AgeFacts {
    pub bytes: u64,
    pub blake3: String,
}

/// The public facts of a sealed item, kept next to it in `sealed.json` so that a lost database
/// can be rebuilt even for a locked item (whose manifest nobody on the phone can read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedIndex {
    pub clip_id: String,
    pub seq: u64,
    pub kind: String,
    pub manifest_sha256: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<SealedMedia>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<(String, u32)>,
}

/// Media facts in [`SealedIndex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SealedMedia {
    pub ext: String,
    pub bytes: u64,
    pub sha256: String,
    pub blake3: String,
    pub age_bytes: u64,
    pub age_blake3: String,
}

/// What [`Store::lock_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockReport {
    /// Items locked now.
    pub locked: Vec<String>,
    /// Items already locked.
    pub already_locked: usize,
    /// Items that cannot be locked yet because the council's escrow key is not pinned (the
    /// device is not enrolled): locking them now would make them unreadable to everyone. They
    /// lock as soon as the key arrives (the next sync after enrolment).
    pub waiting_for_escrow: Vec<String>,
    /// Items stored before sealed storage was turned on: their media is in the clear and
    /// cannot be locked.
    pub not_sealed: Vec<String>,
}

/// Hands what is written to the encryption worker (a closed worker shows as a broken pipe; its
/// own error is reported when it is joined).
struct ChannelSink(Option<std::sync::mpsc::SyncSender<Vec<u8>>>);

impl Write for ChannelSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let tx = self.0.as_ref().ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        tx.send(buf.to_vec()).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A BLAKE3-hashing, counting writer in front of the media file.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Store {
    /// True when new items are sealed encrypted (the profile's `sealed_storage`).
    pub fn sealed_storage(&self) -> bool {
        self.profile.sealed_storage && self.vault.is_some()
    }

    /// A row of the capture queue as stored (a recording's request, a location fix): sealed to
    /// the vault ([`Vault::seal_text`]) on a store with sealed storage, as it is otherwise.
    pub(crate) fn protect_row(&self, plaintext: &str) -> Result<String> {
        match (&self.vault, self.sealed_storage()) {
            (Some(v), true) => v.seal_text(plaintext),
            _ => Ok(plaintext.to_string()),
        }
    }

    /// Opens a row [`Self::protect_row`] stored (rows written in the clear pass as they are).
    pub(crate) fn open_row(&self, stored: &str) -> Result<String> {
        match &self.vault {
            Some(v) => v.open_text(stored),
            None if stored.starts_with("age:") => Err(Error::Corrupt("a sealed row is stored but the vault key is missing".into())),
            None => Ok(stored.to_string()),
        }
    }

    /// The vault; an error on a store that never had sealed storage on.
    pub(crate) fn vault(&self) -> Result<&Vault> {
        self.vault.as_ref().ok_or_else(|| Error::Corrupt("sealed items are stored but the vault key is missing".into()))
    }

    /// The council's escrow recipient pinned at enrolment, if any.
    pub fn escrow_recipient(&self) -> Result<Option<Recipient>> {
        match db::sync::server_get(&self.conn(), ESCROW_PIN)? {
            Some(b) => Ok(Some(Recipient::parse(std::str::from_utf8(&b).map_err(|_| Error::Corrupt("the pinned escrow key is not text".into()))?)?)),
            None => Ok(None),
        }
    }

    /// Pins the escrow recipient the server stated (sync calls it with the recipient of the
    /// server's signed statement, checked against the pinned server key; an office provisioning
    /// a handset by hand, and tests, call it directly),
    /// wraps every unlocked sealed item's key to it, and applies the lock policy. A different
    /// recipient later (a rotation at the council) replaces the pin for new items; items already
    /// wrapped keep their wrap (the server keeps retired escrow keys).
    pub fn pin_escrow_recipient(&self, recipient: &Recipient) -> Result<usize> {
        let text = recipient.to_string();
        let changed = {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old = db::sync::server_get(&tx, ESCROW_PIN)?;
            let changed = old.as_deref() != Some(text.as_bytes());
            if changed {
                db::sync::server_put(&tx, ESCROW_PIN, text.as_bytes())?;
                append_custody_tx(&tx, &self.key, "escrow_key_pinned", None, json!({"recipient": text}))?;
            }
            tx.commit()?;
            changed
        };
        let wrapped = self.add_missing_escrow_wraps()?;
        if changed || wrapped > 0 {
            self.apply_lock_policy()?;
        }
        Ok(wrapped)
    }

    /// Writes an escrow wrap for every sealed item that lacks one (sealed before the escrow key
    /// was pinned). Returns how many were written.
    pub(crate) fn add_missing_escrow_wraps(&self) -> Result<usize> {
        let Some(escrow) = self.escrow_recipient()? else { return Ok(0) };
        let _lock = self.lock()?;
        let mut n = 0;
        let ids = db::sealed_clip_ids(&self.conn())?;
        for clip_id in ids {
            let dir = self.item_dir(&clip_id);
            if dir.join(KEY_ESCROW).exists() || !dir.join(KEY_VAULT).exists() {
                continue;
            }
            let key = self.item_key_in(&dir)?;
            crate::fsutil::write_atomic(&dir.join(KEY_ESCROW), &key.wrap_to(&escrow)?)?;
            n += 1;
        }
        Ok(n)
    }

    /// Writes a new item's key wraps into its folder: the vault always, the escrow key when one
    /// is pinned. Both are fsynced before anything encrypted to the key is committed.
    pub(crate) fn write_item_wraps(&self, dir: &Path, key: &ItemKey) -> Result<()> {
        fs::create_dir_all(dir).ctx(|| "creating the item folder".into())?;
        crate::fsutil::write_atomic(&dir.join(KEY_VAULT), &key.wrap_to(&self.vault()?.recipient())?)?;
        if let Some(escrow) = self.escrow_recipient()? {
            crate::fsutil::write_atomic(&dir.join(KEY_ESCROW), &key.wrap_to(&escrow)?)?;
        }
        Ok(())
    }

    /// The item key of the item stored in `dir`, through its vault wrap.
    pub(crate) fn item_key_in(&self, dir: &Path) -> Result<ItemKey> {
        let wrap = match fs::read(dir.join(KEY_VAULT)) {
            Ok(w) => w,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = dir.file_name().and_then(|n| n.to_str()).map(crate::items::short).unwrap_or("?").to_string();
                return Err(Error::Locked(format!("item {id} is locked to the council and cannot be opened on this phone")));
            }
            Err(e) => return Err(Error::io("reading the item's key", e)),
        };
        Ok(ItemKey::unwrap_with(&wrap, &[&self.vault()?.identity])?)
    }

    /// The item key of an unlocked sealed item; [`Error::Locked`] for a locked one.
    pub fn item_key(&self, clip_id: &str) -> Result<ItemKey> {
        self.item_key_in(&self.item_dir(clip_id))
    }

    /// The escrow wrap of a sealed item (what the server opens), if written.
    pub(crate) fn escrow_wrap(&self, clip_id: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.item_dir(clip_id).join(KEY_ESCROW)) {
            Ok(w) => Ok(Some(w)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the item's escrow key", e)),
        }
    }

    /// Encrypts `source` to `key` into `staging/<clip_id>.age.part` while hashing it, reading it
    /// once. Returns the plaintext digests, the ciphertext's facts and the staged path.
    pub(crate) fn encrypt_to_staging(&self, source: &Path, clip_id: &str, key: &ItemKey, progress: &mut dyn FnMut(u64)) -> Result<(crate::hashing::Digests, AgeFacts, PathBuf)> {
        let staged = self.home.join("staging").join(format!("{clip_id}.age.part"));
        let input = fs::File::open(source).ctx(|| "opening the file to seal".into())?;
        let out = fs::OpenOptions::new().write(true).create_new(true).open(&staged).ctx(|| "creating the encrypted copy".into())?;
        // Three threads on the bytes: this one reads and feeds BLAKE3, the SHA-256 worker of
        // `hash_reader_into`, and an encryption worker (age STREAM, BLAKE3 of the ciphertext,
        // the write), so that encryption overlaps hashing instead of following it.
        // A fourth, mostly idle, thread flushes what is written every 64 MiB (fdatasync on its
        // own handle), so that the disk writes while the others still encrypt and the final
        // fsync has little left to wait for.
        let flusher_file = out.try_clone().ctx(|| "opening the encrypted copy".into())?;
        let res = std::thread::scope(|scope| -> Result<(crate::hashing::Digests, AgeFacts)> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let (flush_tx, flush_rx) = std::sync::mpsc::sync_channel::<()>(1);
            scope.spawn(move || {
                for () in flush_rx {
                    // An error here shows again, and fails the seal, at the final fsync.
                    let _ = flusher_file.sync_data();
                }
            });
            let worker = scope.spawn(move || -> Result<(AgeFacts, fs::File)> {
                let mut hw = HashingWriter { inner: BufWriter::with_capacity(1 << 20, out), hasher: blake3::Hasher::new(), bytes: 0 };
                {
                    let mut enc = key.media_writer(&mut hw)?;
                    let mut since_flush = 0usize;
                    for chunk in rx {
                        enc.write_all(&chunk).ctx(|| "writing the encrypted copy".into())?;
                        since_flush += chunk.len();
                        if since_flush >= 64 << 20 {
                            since_flush = 0;
                            // Coalesced: a flush still running covers this one too.
                            let _ = flush_tx.try_send(());
                        }
                    }
                    enc.finish()?;
                }
                drop(flush_tx);
                let facts = AgeFacts { bytes: hw.bytes, blake3: hw.hasher.finalize().to_hex().to_string() };
                let file = hw.inner.into_inner().map_err(|e| Error::io("writing the encrypted copy", e.into_error()))?;
                Ok((facts, file))
            });
            let mut sink = ChannelSink(Some(tx));
            let digests = crate::hashing::hash_reader_into(input, &mut sink, progress);
            drop(sink);
            let (facts, file) = worker.join().map_err(|_| Error::Corrupt("the encryption worker stopped".into()))??;
            let digests = digests.ctx(|| "reading and encrypting the file".into())?;
            file.sync_all().ctx(|| "syncing the encrypted copy".into())?;
            Ok((digests, facts))
        });
        match res {
            Ok((d, f)) => Ok((d, f, staged)),
            Err(e) => {
                // Our own partial copy; the source is untouched.
                let _ = fs::remove_file(&staged);
                Err(e)
            }
        }
    }

    /// Locks one item: forgets its vault wrap, so that only the council can open it. Refused
    /// (nothing changed) while the item has no escrow wrap. Locking never deletes the item and
    /// never stops its upload. Returns false when it was locked already.
    pub fn lock_item(&self, clip_id: &str) -> Result<bool> {
        let _lock = self.lock()?;
        self.lock_item_locked(clip_id)
    }

    pub(crate) fn lock_item_locked(&self, clip_id: &str) -> Result<bool> {
        let state = db::lock_state(&self.conn(), clip_id)?.ok_or_else(|| Error::NotFound(format!("no item with id '{}'", crate::items::short(clip_id))))?;
        if !state.sealed {
            return Err(Error::InvalidInput(format!("item {} was stored before sealed storage and cannot be locked", crate::items::short(clip_id))));
        }
        let dir = self.item_dir(clip_id);
        let vault_wrap = dir.join(KEY_VAULT);
        if state.locked_at.is_some() && !vault_wrap.exists() {
            return Ok(false);
        }
        if !dir.join(KEY_ESCROW).exists() {
            return Err(Error::InvalidInput(format!(
                "item {} cannot be locked before the council's key is on the phone (enrol and sync once); locking it now would make it unreadable to everyone",
                crate::items::short(clip_id)
            )));
        }
        forget_file(&vault_wrap)?;
        crate::fsutil::sync_dir(&dir)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        db::set_locked(&tx, clip_id, &crate::time::now())?;
        append_custody_tx(&tx, &self.key, "locked", Some(clip_id), json!({}))?;
        tx.commit()?;
        Ok(true)
    }

    /// Locks every sealed item that can be locked (the "quick lock").
    pub fn lock_all(&self) -> Result<LockReport> {
        let _lock = self.lock()?;
        let mut report = LockReport::default();
        // Bound first: a guard in the loop's head would be held for the whole loop.
        let states = db::lock_states(&self.conn())?;
        for s in states {
            if !s.sealed {
                report.not_sealed.push(s.clip_id);
                continue;
            }
            let dir = self.item_dir(&s.clip_id);
            if s.locked_at.is_some() && !dir.join(KEY_VAULT).exists() {
                report.already_locked += 1;
            } else if !dir.join(KEY_ESCROW).exists() {
                report.waiting_for_escrow.push(s.clip_id);
            } else if self.lock_item_locked(&s.clip_id)? {
                report.locked.push(s.clip_id);
            }
        }
        Ok(report)
    }

    /// Locks the sealed items whose time has come under the profile's `lock_after_secs`
    /// (0: at once). Items without an escrow wrap wait. Returns how many were locked.
    pub fn apply_lock_policy(&self) -> Result<usize> {
        let Some(after) = self.profile.lock_after_secs else { return Ok(0) };
        let now = chrono::Utc::now();
        let _lock = self.lock()?;
        let mut n = 0;
        // Bound first: a guard in the loop's head would be held for the whole loop.
        let states = db::lock_states(&self.conn())?;
        for s in states {
            if !s.sealed || s.locked_at.is_some() {
                continue;
            }
            let due = crate::time::parse(&s.sealed_at, "sealed_at").map(|t| t + chrono::Duration::seconds(after.min(i64::MAX as u64) as i64) <= now).unwrap_or(true);
            if due && self.item_dir(&s.clip_id).join(KEY_ESCROW).exists() && self.lock_item_locked(&s.clip_id)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Recovery: a sealed item whose vault wrap is gone but whose row is not marked locked (a
    /// crash inside [`Store::lock_item`]) is marked locked now.
    pub(crate) fn finish_interrupted_locks(&self) -> Result<usize> {
        let mut n = 0;
        // Bound first: a guard in the loop's head would be held for the whole loop.
        let states = db::lock_states(&self.conn())?;
        for s in states {
            let dir = self.item_dir(&s.clip_id);
            if s.sealed && s.locked_at.is_none() && !dir.join(KEY_VAULT).exists() && dir.join(KEY_ESCROW).exists() {
                let mut conn = self.conn();
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                db::set_locked(&tx, &s.clip_id, &crate::time::now())?;
                append_custody_tx(&tx, &self.key, "locked", Some(&s.clip_id), json!({"recovered": true}))?;
                tx.commit()?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Overwrites a small secret file with zeros, syncs, and unlinks it. (On flash storage the old
/// blocks may survive below the filesystem; the wrap alone is useless without the vault key,
/// which the platform key store holds — FORMATS §6b says what locking does and does not do.)
fn forget_file(path: &Path) -> Result<()> {
    let len = match fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("reading the item's vault key", e)),
    };
    {
        let mut f = fs::OpenOptions::new().write(true).open(path).ctx(|| "opening the item's vault key".into())?;
        f.write_all(&vec![0u8; len as usize]).ctx(|| "overwriting the item's vault key".into())?;
        f.sync_all().ctx(|| "syncing the item's vault key".into())?;
    }
    fs::remove_file(path).ctx(|| "removing the item's vault key".into())
}
