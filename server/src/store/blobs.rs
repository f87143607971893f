//! The embedded blob store: originals in a local directory, `<root>/sha256/<2 hex>/<64 hex>`,
//! each moved into place only after it was fsynced, then made read-only.

use super::{is_sha256_hex, BlobStore};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Blobs in a local directory: `<root>/sha256/<2 hex>/<64 hex>`, read-only files.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// A blob store rooted at `root` (created if needed).
    pub fn open(root: &Path) -> Result<LocalBlobStore> {
        std::fs::create_dir_all(root.join("sha256")).map_err(|e| Error::io("creating the blob directory", e))?;
        Ok(LocalBlobStore { root: root.to_path_buf() })
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf> {
        if !is_sha256_hex(sha256) {
            return Err(Error::BadRequest("a blob name must be 64 lowercase hex digits".into()));
        }
        Ok(self.root.join("sha256").join(&sha256[..2]).join(sha256))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("syncing a directory", e))
}

impl BlobStore for LocalBlobStore {
    fn put_file(&self, src: &Path, sha256: &str) -> Result<()> {
        let dst = self.path_of(sha256)?;
        let dir = dst.parent().ok_or_else(|| Error::Internal("blob path has no parent".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating a blob directory", e))?;
        if dst.exists() {
            std::fs::remove_file(src).map_err(|e| Error::io("removing a duplicate upload", e))?;
            return Ok(());
        }
        // The source was fsynced by its writer; make it read-only, then move it into place.
        let f = std::fs::File::open(src).map_err(|e| Error::io("opening the received file", e))?;
        let mut perm = f.metadata().map_err(|e| Error::io("reading the received file's metadata", e))?.permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(src, perm).map_err(|e| Error::io("making the original read-only", e))?;
        f.sync_all().map_err(|e| Error::io("syncing the received file", e))?;
        std::fs::rename(src, &dst).map_err(|e| Error::io("moving the original into the blob store", e))?;
        sync_dir(dir)?;
        if let Some(src_dir) = src.parent() {
            sync_dir(src_dir)?;
        }
        Ok(())
    }

    fn contains(&self, sha256: &str) -> Result<bool> {
        Ok(self.path_of(sha256)?.is_file())
    }

    fn open(&self, sha256: &str) -> Result<Box<dyn Read + Send>> {
        let p = self.path_of(sha256)?;
        let f = std::fs::File::open(p).map_err(|e| Error::io("opening a blob", e))?;
        Ok(Box::new(f))
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
        match path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }
}
