//! The server's Ed25519 key: created on first start, kept in `<data>/server.key` (mode 0600).
//!
//! The key signs device certificates, commitments, receipts, checkpoints, custody events and
//! package indexes. Its public half is written to `<data>/server.pub.pem` (SPKI PEM) so that
//! `openssl pkeyutl -verify -rawin` checks any of those signatures. Its id is, like a device id,
//! the hex of the first 16 bytes of SHA-256 over the raw public key. The secret never appears in
//! a log or an error.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let (k1, created) = fieldcap_server::keys::load_or_create(dir.path()).unwrap();
//! let (k2, again) = fieldcap_server::keys::load_or_create(dir.path()).unwrap();
//! assert!(created && !again);
//! assert_eq!(k1.device_id(), k2.device_id());
//! ```

use crate::error::{Error, Result};
use fieldcap_evidence::identity::DeviceKey;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

const KEY_FILE: &str = "server.key";
const PUB_FILE: &str = "server.pub.pem";
const KEY_TYPE: &str = "fieldcap.server-key/1";

/// Loads the server key of `data_dir`, creating it (race-free: temp file, fsync, hard link) if
/// there is none. Returns the key and whether it was created now.
pub fn load_or_create(data_dir: &Path) -> Result<(DeviceKey, bool)> {
    load_or_create_files(data_dir, &SERVER_FILES)
}

/// Where a key of one kind is kept in its data directory.
pub(crate) struct KeyFiles {
    /// The secret key file (0600).
    pub key: &'static str,
    /// The public key, PEM.
    pub public: &'static str,
    /// The `type` the secret key file names.
    pub kind: &'static str,
}

const SERVER_FILES: KeyFiles = KeyFiles { key: KEY_FILE, public: PUB_FILE, kind: KEY_TYPE };

/// [`load_or_create`] for the key files `files` (the server's, or a witness's).
pub(crate) fn load_or_create_files(data_dir: &Path, files: &KeyFiles) -> Result<(DeviceKey, bool)> {
    let path = data_dir.join(files.key);
    if path.exists() {
        return Ok((load_files(data_dir, files)?, false));
    }
    let key = DeviceKey::generate();
    if store_files(data_dir, files, &key)? {
        Ok((key, true))
    } else {
        Ok((load_files(data_dir, files)?, false))
    }
}

/// Stores `key` as the server key of `data_dir` (a restore from a backup). A key already there
/// is kept if it is the same key, and refused if it is another.
pub fn store(data_dir: &Path, key: &DeviceKey) -> Result<()> {
    if store_files(data_dir, &SERVER_FILES, key)? {
        return Ok(());
    }
    let there = load(data_dir)?;
    if there.verifying_key() != key.verifying_key() {
        return Err(Error::Conflict("the data directory holds another server key".into()));
    }
    Ok(())
}

/// Writes `key` into the key files `files` of `data_dir` (race-free: temp file, fsync, hard
/// link); false, writing nothing, if a key file is there already.
fn store_files(data_dir: &Path, files: &KeyFiles, key: &DeviceKey) -> Result<bool> {
    let path = data_dir.join(files.key);
    fs::create_dir_all(data_dir).map_err(|e| Error::io("creating the data directory", e))?;
    let secret = key.secret();
    let doc = Zeroizing::new(format!("{{\"secret\":\"{}\",\"type\":\"{}\"}}", hex::encode(&secret[..]), files.kind));
    let tmp = data_dir.join(format!(".{}.{}.tmp", files.key, std::process::id()));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("creating the key file", e))?;
        f.write_all(doc.as_bytes()).map_err(|e| Error::io("writing the key file", e))?;
        f.sync_all().map_err(|e| Error::io("syncing the key file", e))?;
    }
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            fieldcap_evidence::fsutil::sync_dir(data_dir)?;
            fieldcap_evidence::fsutil::write_atomic(&data_dir.join(files.public), key.public_pem().as_bytes())?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("storing the key file", e)),
    }
}

/// Loads the existing server key of `data_dir`.
pub fn load(data_dir: &Path) -> Result<DeviceKey> {
    load_files(data_dir, &SERVER_FILES)
}

/// [`load`] for the key files `files`.
pub(crate) fn load_files(data_dir: &Path, files: &KeyFiles) -> Result<DeviceKey> {
    let raw = Zeroizing::new(fs::read(data_dir.join(files.key)).map_err(|e| Error::io("reading the key file", e))?);
    let v: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|_| Error::Internal("the key file is not valid JSON".into()))?;
    if v.get("type").and_then(|t| t.as_str()) != Some(files.kind) {
        return Err(Error::Internal("the key file has an unknown type".into()));
    }
    let secret = v
        .get("secret")
        .and_then(|s| s.as_str())
        .and_then(|s| hex::decode(s).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| Error::Internal("the key file has no secret".into()))?;
    let key = DeviceKey::from_secret(&secret)?;
    let pub_path = data_dir.join(files.public);
    if !pub_path.exists() {
        fieldcap_evidence::fsutil::write_atomic(&pub_path, key.public_pem().as_bytes())?;
    }
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_is_0600_and_pem_written() {
        let dir = tempfile::tempdir().unwrap();
        let (k, _) = load_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let pem = fs::read_to_string(dir.path().join(PUB_FILE)).unwrap();
        assert_eq!(pem, k.public_pem());
    }
}
