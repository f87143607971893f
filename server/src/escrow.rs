//! The council's escrow key: an age X25519 identity that opens every sealed item's key wrap
//! (`fieldcap_evidence::escrow`, `POST /v1/manifests/sealed`).
//!
//! Kept next to, but apart from, the server's signing key, in `<data>/escrow/` (mode 0700):
//!
//! ```text
//! escrow/current.key              the current identity: an age identity file (0600), as age-keygen
//!                                 writes one: `# created: …`, `# public key: age1…`, `AGE-SECRET-KEY-1…`
//! escrow/current.recipient        its public recipient, `age1…` (what devices encrypt item keys to)
//! escrow/retired/<UTC time>.key   every earlier identity, never deleted (`fieldcap escrow rotate`)
//! ```
//!
//! The server opens a wrap with the current identity and every retired one, so an item sealed
//! before a rotation still opens. The first start creates the key race-free (temporary file,
//! fsync, hard link: two processes starting at once end with one key). A secret never appears in
//! a log line or an error message. The stock `age` tool opens any wrap with these files:
//! `age -d -i escrow/current.key key.escrow.age`.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let (e, created) = fieldcap_server::escrow::load_or_create(dir.path()).unwrap();
//! assert!(created);
//! let old = e.current.recipient();
//! let new = fieldcap_server::escrow::rotate(dir.path()).unwrap();
//! assert_ne!(old, new);
//! let (e, created) = fieldcap_server::escrow::load_or_create(dir.path()).unwrap();
//! assert!(!created && e.current.recipient() == new && e.retired.len() == 1);
//! ```

use crate::error::{Error, Result};
use fieldcap_evidence::escrow::{ItemKey, Recipient, VaultIdentity};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The escrow directory under a data directory.
pub const ESCROW_DIR: &str = "escrow";
/// The current identity's file in [`ESCROW_DIR`].
pub const CURRENT_KEY: &str = "current.key";
/// The current recipient's file in [`ESCROW_DIR`].
pub const CURRENT_RECIPIENT: &str = "current.recipient";
/// The folder of retired identities in [`ESCROW_DIR`].
pub const RETIRED_DIR: &str = "retired";

/// The escrow identities of a data directory.
#[derive(Debug)]
pub struct EscrowKeys {
    /// The current identity (devices wrap to its recipient).
    pub current: VaultIdentity,
    /// Since when it is current (RFC 3339 UTC ms; its file's `# created:` line).
    pub since: String,
    /// Every retired identity (oldest first).
    pub retired: Vec<VaultIdentity>,
}

impl EscrowKeys {
    /// Every identity, the current one first.
    pub fn identities(&self) -> Vec<&VaultIdentity> {
        std::iter::once(&self.current).chain(self.retired.iter()).collect()
    }
}

fn escrow_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(ESCROW_DIR)
}

fn make_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating the escrow directory", e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| Error::io("restricting the escrow directory", e))
}

/// The identity file text for `id` (age-keygen's layout).
fn key_text(id: &VaultIdentity, created: &str) -> zeroize::Zeroizing<String> {
    let secret = id.to_secret_text();
    zeroize::Zeroizing::new(format!("# created: {created}\n# public key: {}\n{}", id.recipient(), secret.as_str()))
}

/// Writes `text` to a new 0600 file beside `path`, fsyncs it and returns the temporary path.
fn write_temp(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), crate::clock::now_ms()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io("creating the escrow key file", e))?;
    f.write_all(text.as_bytes()).map_err(|e| Error::io("writing the escrow key file", e))?;
    f.sync_all().map_err(|e| Error::io("syncing the escrow key file", e))?;
    Ok(tmp)
}

fn read_key(path: &Path) -> Result<(VaultIdentity, Option<String>)> {
    let raw = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(|e| Error::io("reading an escrow key file", e))?);
    let id = VaultIdentity::parse(&raw).map_err(|_| Error::Internal(format!("{} is not an age X25519 identity file", path.display())))?;
    let created = raw.lines().find_map(|l| l.strip_prefix("# created:")).map(|s| s.trim().to_string());
    Ok((id, created))
}

/// Loads the escrow keys of `data_dir`, creating the first one if there is none. Returns the
/// keys and whether the key was created now.
pub fn load_or_create(data_dir: &Path) -> Result<(EscrowKeys, bool)> {
    let dir = escrow_dir(data_dir);
    make_dir(&dir)?;
    let path = dir.join(CURRENT_KEY);
    let mut created = false;
    if !path.exists() {
        let id = VaultIdentity::generate();
        let tmp = write_temp(&dir, CURRENT_KEY, &key_text(&id, &fieldcap_evidence::time::now()))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => created = true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("storing the escrow key file", e)),
        }
        fieldcap_evidence::fsutil::sync_dir(&dir)?;
    }
    Ok((load(data_dir)?, created))
}

/// Loads the existing escrow keys of `data_dir` (current and retired), and rewrites
/// `current.recipient` if it does not name the current key (a rotation cut short).
pub fn load(data_dir: &Path) -> Result<EscrowKeys> {
    let dir = escrow_dir(data_dir);
    let path = dir.join(CURRENT_KEY);
    let (current, created) = read_key(&path)?;
    let since = match created {
        Some(c) => c,
        None => {
            let m = fs::metadata(&path).and_then(|m| m.modified()).map_err(|e| Error::io("reading the escrow key file", e))?;
            chrono::DateTime::<chrono::Utc>::from(m).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        }
    };
    let rec = current.recipient().to_string();
    let rpath = dir.join(CURRENT_RECIPIENT);
    if fs::read_to_string(&rpath).ok().map(|s| s.trim().to_string()) != Some(rec.clone()) {
        fieldcap_evidence::fsutil::write_atomic(&rpath, format!("{rec}\n").as_bytes())?;
    }
    let mut retired = Vec::new();
    let rdir = dir.join(RETIRED_DIR);
    if rdir.exists() {
        let mut names: Vec<PathBuf> = fs::read_dir(&rdir)
            .map_err(|e| Error::io("listing the retired escrow keys", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "key"))
            .collect();
        names.sort();
        for p in names {
            retired.push(read_key(&p)?.0);
        }
    }
    Ok(EscrowKeys { current, since, retired })
}

/// The current escrow recipient of `data_dir` (`fieldcap escrow show`).
pub fn show(data_dir: &Path) -> Result<Recipient> {
    Ok(load(data_dir)?.current.recipient())
}

/// Retires the current escrow key of `data_dir` to `retired/<UTC time>.key` (kept, never
/// deleted) and makes a new current key. Returns the new recipient. A running server picks the
/// new key up at its next escrow-key request (or restart); wraps to the retired key still open.
pub fn rotate(data_dir: &Path) -> Result<Recipient> {
    let dir = escrow_dir(data_dir);
    let path = dir.join(CURRENT_KEY);
    if !path.exists() {
        return Err(Error::NotFound("there is no escrow key to rotate (start the server once first)".into()));
    }
    let rdir = dir.join(RETIRED_DIR);
    make_dir(&rdir)?;
    // 1. A copy of the current key among the retired ones (a hard link: the same bytes).
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let retired = rdir.join(format!("{stamp}.key"));
    fs::hard_link(&path, &retired).map_err(|e| Error::io("retiring the escrow key", e))?;
    fieldcap_evidence::fsutil::sync_dir(&rdir)?;
    // 2. The new current key replaces the old one in one rename.
    let id = VaultIdentity::generate();
    let tmp = write_temp(&dir, CURRENT_KEY, &key_text(&id, &fieldcap_evidence::time::now()))?;
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("storing the new escrow key", e));
    }
    fieldcap_evidence::fsutil::sync_dir(&dir)?;
    // 3. Its recipient (rewritten at load if a crash came first).
    let rec = id.recipient();
    fieldcap_evidence::fsutil::write_atomic(&dir.join(CURRENT_RECIPIENT), format!("{rec}\n").as_bytes())?;
    Ok(rec)
}

/// Copies the escrow keys of the data directory `from` (current, its recipient, every retired
/// key) into the data directory `to` (a backup, or a restore from one), fsynced, files 0600 and
/// directories 0700. Nothing is copied if `from` has no escrow key; a different current key
/// already in `to` is refused (a retired key already there is kept). Returns the files copied.
pub fn copy_keys(from: &Path, to: &Path) -> Result<u64> {
    let (src, dst) = (escrow_dir(from), escrow_dir(to));
    if !src.join(CURRENT_KEY).exists() {
        return Ok(0);
    }
    make_dir(&dst)?;
    let mut files = vec![PathBuf::from(CURRENT_KEY)];
    let rdir = src.join(RETIRED_DIR);
    if rdir.exists() {
        make_dir(&dst.join(RETIRED_DIR))?;
        for e in fs::read_dir(&rdir).map_err(|e| Error::io("listing the retired escrow keys", e))? {
            let e = e.map_err(|e| Error::io("listing the retired escrow keys", e))?;
            files.push(Path::new(RETIRED_DIR).join(e.file_name()));
        }
    }
    let mut n = 0;
    for rel in files {
        let text = zeroize::Zeroizing::new(fs::read_to_string(src.join(&rel)).map_err(|e| Error::io("reading an escrow key file", e))?);
        let target = dst.join(&rel);
        if target.exists() {
            let there = zeroize::Zeroizing::new(fs::read_to_string(&target).map_err(|e| Error::io("reading an escrow key file", e))?);
            if *there != *text {
                return Err(Error::Conflict(format!("{} holds another escrow key", target.display())));
            }
            continue;
        }
        let dir = target.parent().ok_or_else(|| Error::Internal("an escrow key path has no folder".into()))?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("key");
        let tmp = write_temp(dir, name, &text)?;
        let linked = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| Error::io("storing an escrow key file", e))?;
        fieldcap_evidence::fsutil::sync_dir(dir)?;
        n += 1;
    }
    // current.recipient is written from current.key.
    load(to)?;
    Ok(n + 1)
}

/// A signed statement as cached: (recipient, body, signature).
type CachedStatement = (String, Vec<u8>, Vec<u8>);
/// Signs a statement: (canonical body, signature).
type StatementSigner<'a> = &'a dyn Fn(&fieldcap_evidence::protocol::EscrowKeyStatement) -> Result<(Vec<u8>, Vec<u8>)>;

/// The server's escrow keys in memory, reloaded from disk when a rotation happened meanwhile.
pub(crate) struct Escrow {
    data_dir: PathBuf,
    keys: Mutex<Arc<EscrowKeys>>,
    /// The signed `fieldcap.escrow-key/1` statement of the current recipient: (recipient, body, sig).
    statement: Mutex<Option<CachedStatement>>,
}

impl Escrow {
    /// Loads (creating) the escrow keys of `data_dir`.
    pub fn open(data_dir: &Path) -> Result<(Escrow, bool)> {
        let (keys, created) = load_or_create(data_dir)?;
        Ok((Escrow { data_dir: data_dir.to_path_buf(), keys: Mutex::new(Arc::new(keys)), statement: Mutex::new(None) }, created))
    }

    /// The keys, reloaded first if `current.recipient` on disk names another key.
    pub fn keys(&self) -> Result<Arc<EscrowKeys>> {
        let mut k = self.keys.lock().map_err(|_| Error::Internal("escrow lock poisoned".into()))?;
        let on_disk = fs::read_to_string(escrow_dir(&self.data_dir).join(CURRENT_RECIPIENT)).ok().map(|s| s.trim().to_string());
        if on_disk.is_some_and(|r| r != k.current.recipient().to_string()) {
            *k = Arc::new(load(&self.data_dir)?);
        }
        Ok(k.clone())
    }

    /// Opens a key wrap with the current or a retired escrow identity.
    pub fn unwrap(&self, wrap: &[u8]) -> Result<ItemKey> {
        let keys = self.keys()?;
        ItemKey::unwrap_with(wrap, &keys.identities()).map_err(|_| {
            Error::SealedUndecryptable("the item key is not wrapped to any escrow key this server holds".into())
        })
    }

    /// The signed statement of the current recipient (cached per recipient).
    pub fn statement(&self, sign: StatementSigner<'_>, server_key_id: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let keys = self.keys()?;
        let rec = keys.current.recipient().to_string();
        let mut cache = self.statement.lock().map_err(|_| Error::Internal("escrow statement lock poisoned".into()))?;
        if let Some((r, body, sig)) = cache.as_ref() {
            if *r == rec {
                return Ok((body.clone(), sig.clone()));
            }
        }
        let doc = fieldcap_evidence::protocol::EscrowKeyStatement {
            doc_type: fieldcap_evidence::protocol::types::ESCROW_KEY.into(),
            recipient: rec.clone(),
            since: keys.since.clone(),
            server_key_id: server_key_id.to_string(),
        };
        let (body, sig) = sign(&doc)?;
        *cache = Some((rec, body.clone(), sig.clone()));
        Ok((body, sig))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_0600_in_a_0700_dir_and_rotation_keeps_the_old_key() {
        let d = tempfile::tempdir().unwrap();
        let (e, created) = Escrow::open(d.path()).unwrap();
        assert!(created);
        let dir = d.path().join(ESCROW_DIR);
        assert_eq!(fs::metadata(dir.join(CURRENT_KEY)).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        let old = e.keys().unwrap().current.recipient();
        assert_eq!(fs::read_to_string(dir.join(CURRENT_RECIPIENT)).unwrap().trim(), old.to_string());
        let item = ItemKey::generate();
        let wrap = item.wrap_to(&old).unwrap();
        let new = rotate(d.path()).unwrap();
        assert_ne!(new, old);
        // The running server's Escrow sees the rotation and still opens the old wrap.
        assert_eq!(e.keys().unwrap().current.recipient(), new);
        assert_eq!(e.unwrap(&wrap).unwrap().recipient(), item.recipient());
        let other = VaultIdentity::generate();
        let bad = item.wrap_to(&other.recipient()).unwrap();
        let err = e.unwrap(&bad).unwrap_err();
        assert_eq!(err.problem().status, 422);
        let retired: Vec<_> = fs::read_dir(dir.join(RETIRED_DIR)).unwrap().collect();
        assert_eq!(retired.len(), 1);
        assert_eq!(show(d.path()).unwrap(), new);
    }
}
