//! Durable file operations: write-to-temp + fsync + rename, directory syncs, verified copies.

use crate::error::{Error, IoContext, Result};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

/// fsyncs a directory so that renames and creations in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx(|| "syncing a directory".into())
}

/// Writes `data` to `path` atomically: a temporary sibling, fsync, rename, directory fsync.
/// Readers see the old file or the new one, never a torn write.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::InvalidInput("a file path has no parent directory".into()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let res = (|| {
        let mut f = File::create(&tmp).ctx(|| format!("creating {name}"))?;
        f.write_all(data).ctx(|| format!("writing {name}"))?;
        f.sync_all().ctx(|| format!("syncing {name}"))?;
        fs::rename(&tmp, path).ctx(|| format!("renaming {name} into place"))?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Writes a new file that must not exist yet (create_new), then fsyncs it.
pub fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_string();
    let mut f = fs::OpenOptions::new().write(true).create_new(true).open(path).ctx(|| format!("creating {name}"))?;
    let r = f.write_all(data).and_then(|_| f.sync_all());
    if let Err(e) = r {
        drop(f);
        let _ = fs::remove_file(path);
        return Err(Error::io(format!("writing {name}"), e));
    }
    Ok(())
}

/// Copies `src` to `dst` (which must not exist), hashing the bytes as written, and fsyncs.
/// On any error the partial `dst` is removed; `src` is never touched.
pub fn copy_hashed(src: &Path, dst: &Path, progress: &mut dyn FnMut(u64)) -> Result<crate::hashing::Digests> {
    let mut input = File::open(src).ctx(|| "opening the source for copying".into())?;
    let out = fs::OpenOptions::new().write(true).create_new(true).open(dst).ctx(|| "creating the evidence copy".into())?;
    struct Tee<R: Read> {
        r: R,
        w: File,
    }
    impl<R: Read> Read for Tee<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.r.read(buf)?;
            self.w.write_all(&buf[..n])?;
            Ok(n)
        }
    }
    let mut tee = Tee { r: &mut input, w: out };
    let res = crate::hashing::hash_reader(&mut tee, progress).and_then(|d| tee.w.sync_all().map(|_| d));
    match res {
        Ok(d) => Ok(d),
        Err(e) => {
            let _ = fs::remove_file(dst);
            Err(Error::io("copying the file into the evidence store", e))
        }
    }
}

/// Size and modification time, to detect a file changing under us.
pub fn fingerprint(path: &Path) -> Result<(u64, std::time::SystemTime)> {
    let m = fs::metadata(path).ctx(|| "reading the file's metadata".into())?;
    Ok((m.len(), m.modified().ctx(|| "reading the file's modification time".into())?))
}
