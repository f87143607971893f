//! The embedded blob store: originals in a local directory, `<blobs>/sha256/<2 hex>/<64 hex>`,
//! each moved into place only after it was fsynced, then made read-only; partial uploads beside
//! them in `<uploads>/<clip_id>.part`, on the same filesystem so that storing one is a rename;
//! a revoked device's partial uploads set aside in `<uploads>/revoked/<clip_id>-<ms>.part`.

use super::{is_sha256_hex, BlobStore, PartialWriter};
use crate::error::{Error, Result};
use fieldcap_evidence::fsutil::sync_dir;
use fieldcap_evidence::hashing::Digests;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Folder inside the upload directory for partial uploads set aside (a revoked device's).
pub const SET_ASIDE_DIR: &str = "revoked";

/// Originals in a local directory (read-only files named by SHA-256) and partial uploads in
/// another (one file per clip id).
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    uploads: PathBuf,
}

impl LocalBlobStore {
    /// A blob store keeping originals under `root` and partial uploads under `uploads` (both
    /// created if needed; they must be on one filesystem).
    pub fn open(root: &Path, uploads: &Path) -> Result<LocalBlobStore> {
        std::fs::create_dir_all(root.join("sha256")).map_err(|e| Error::io("creating the blob directory", e))?;
        std::fs::create_dir_all(uploads).map_err(|e| Error::io("creating the upload directory", e))?;
        Ok(LocalBlobStore { root: root.to_path_buf(), uploads: uploads.to_path_buf() })
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf> {
        if !is_sha256_hex(sha256) {
            return Err(Error::BadRequest("a blob name must be 64 lowercase hex digits".into()));
        }
        Ok(self.root.join("sha256").join(&sha256[..2]).join(sha256))
    }

    /// The partial upload file of a clip. The id must be a hyphenated lowercase UUID, so that it
    /// can never name a path outside the upload directory.
    fn partial_path(&self, clip_id: &str) -> Result<PathBuf> {
        match uuid::Uuid::parse_str(clip_id) {
            Ok(u) if u.hyphenated().to_string() == clip_id => Ok(self.uploads.join(format!("{clip_id}.part"))),
            _ => Err(Error::BadRequest("a partial upload is named by a clip id (a UUID)".into())),
        }
    }
}

/// A partial upload file open for appending.
struct LocalPartial {
    file: File,
}

impl PartialWriter for LocalPartial {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(|e| Error::io("writing upload bytes", e))
    }

    fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io("syncing upload bytes", e))
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(|e| Error::io("truncating the partial upload", e))?;
        self.file.seek(SeekFrom::Start(len)).map_err(|e| Error::io("seeking in the partial upload", e))?;
        self.file.sync_data().map_err(|e| Error::io("syncing the partial upload", e))
    }
}

impl BlobStore for LocalBlobStore {
    fn open_partial(&self, clip_id: &str, offset: u64) -> Result<Box<dyn PartialWriter>> {
        let path = self.partial_path(clip_id)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening the partial upload", e))?;
        // Bytes past the last fsynced offset (a crash mid-write) are dropped.
        file.set_len(offset).map_err(|e| Error::io("truncating the partial upload", e))?;
        file.seek(SeekFrom::Start(offset)).map_err(|e| Error::io("seeking in the partial upload", e))?;
        Ok(Box::new(LocalPartial { file }))
    }

    fn read_partial(&self, clip_id: &str) -> Result<Option<Box<dyn Read + Send>>> {
        match File::open(self.partial_path(clip_id)?) {
            Ok(f) => Ok(Some(Box::new(f))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("opening the received file", e)),
        }
    }

    fn discard_partial(&self, clip_id: &str) -> Result<()> {
        match std::fs::remove_file(self.partial_path(clip_id)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing a partial upload", e)),
        }
    }

    fn set_aside_partial(&self, clip_id: &str) -> Result<Option<String>> {
        let src = self.partial_path(clip_id)?;
        if !src.exists() {
            return Ok(None);
        }
        let dir = self.uploads.join(SET_ASIDE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the folder of set-aside uploads", e))?;
        let name = format!("{clip_id}-{}.part", chrono::Utc::now().timestamp_millis());
        File::open(&src).and_then(|f| f.sync_all()).map_err(|e| Error::io("syncing a partial upload", e))?;
        std::fs::rename(&src, dir.join(&name)).map_err(|e| Error::io("setting a partial upload aside", e))?;
        sync_dir(&dir)?;
        sync_dir(&self.uploads)?;
        Ok(Some(format!("{SET_ASIDE_DIR}/{name}")))
    }

    fn store_partial(&self, clip_id: &str, sha256: &str) -> Result<()> {
        let src = self.partial_path(clip_id)?;
        let dst = self.path_of(sha256)?;
        let dir = dst.parent().ok_or_else(|| Error::Internal("blob path has no parent".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating a blob directory", e))?;
        if dst.exists() {
            std::fs::remove_file(&src).map_err(|e| Error::io("removing a duplicate upload", e))?;
            return Ok(());
        }
        // The partial was fsynced by its writer; make it read-only, then move it into place.
        let f = File::open(&src).map_err(|e| Error::io("opening the received file", e))?;
        let mut perm = f.metadata().map_err(|e| Error::io("reading the received file's metadata", e))?.permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&src, perm).map_err(|e| Error::io("making the original read-only", e))?;
        f.sync_all().map_err(|e| Error::io("syncing the received file", e))?;
        std::fs::rename(&src, &dst).map_err(|e| Error::io("moving the original into the blob store", e))?;
        sync_dir(dir)?;
        Ok(sync_dir(&self.uploads)?)
    }

    fn contains(&self, sha256: &str) -> Result<bool> {
        Ok(self.path_of(sha256)?.is_file())
    }

    fn open(&self, sha256: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.path_of(sha256)?;
        let f = File::open(p).map_err(|e| Error::io("opening a blob", e))?;
        Ok(Box::new(f))
    }

    fn open_at(&self, sha256: &str, start: u64) -> Result<Box<dyn Read + Send>> {
        let mut f = File::open(self.path_of(sha256)?).map_err(|e| Error::io("opening a blob", e))?;
        f.seek(SeekFrom::Start(start)).map_err(|e| Error::io("seeking in a blob", e))?;
        Ok(Box::new(f))
    }

    fn copy_to(&self, sha256: &str, dst: &Path) -> Result<Digests> {
        Ok(fieldcap_evidence::fsutil::copy_hashed(&self.path_of(sha256)?, dst, &mut |_| {})?)
    }

    fn local_path(&self, sha256: &str) -> Option<PathBuf> {
        self.path_of(sha256).ok()
    }

    fn remove_disposed(&self, sha256: &str) -> Result<()> {
        let path = self.path_of(sha256)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("removing a disposed original", e)),
        }
        // The removal is durable before the caller moves on.
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CLIP: &str = "0190a0b2-1c2d-7e3f-8a4b-5c6d7e8f9a0b";

    fn read_all(r: Option<Box<dyn Read + Send>>) -> Vec<u8> {
        let mut v = Vec::new();
        r.unwrap().read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn a_partial_resumes_at_its_offset_and_becomes_a_read_only_original() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalBlobStore::open(&d.path().join("blobs"), &d.path().join("uploads")).unwrap();
        assert!(s.read_partial(CLIP).unwrap().is_none());
        let mut w = s.open_partial(CLIP, 0).unwrap();
        w.write_all(b"hello, unsynced tail").unwrap();
        w.sync().unwrap();
        drop(w);
        // Resuming at 5 drops what lies past it.
        let mut w = s.open_partial(CLIP, 5).unwrap();
        w.write_all(b" world").unwrap();
        w.sync().unwrap();
        drop(w);
        assert_eq!(read_all(s.read_partial(CLIP).unwrap()), b"hello world");
        let sha = fieldcap_evidence::hashing::sha256_hex(b"hello world");
        s.store_partial(CLIP, &sha).unwrap();
        assert!(s.read_partial(CLIP).unwrap().is_none());
        assert!(s.contains(&sha).unwrap());
        let path = s.local_path(&sha).unwrap();
        assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
        let copy = d.path().join("copy");
        assert_eq!(s.copy_to(&sha, &copy).unwrap().sha256_hex(), sha);
        s.remove_disposed(&sha).unwrap();
        s.remove_disposed(&sha).unwrap();
        assert!(!s.contains(&sha).unwrap());
    }

    #[test]
    fn names_that_could_leave_the_store_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalBlobStore::open(&d.path().join("blobs"), &d.path().join("uploads")).unwrap();
        assert!(s.open_partial("../escape", 0).is_err());
        assert!(s.discard_partial("0190A0B2-1C2D-7E3F-8A4B-5C6D7E8F9A0B").is_err());
        assert!(s.open("../../records.sqlite").is_err());
        s.discard_partial(CLIP).unwrap();
    }
}
