//! Packages as ZIP archives, through the `zip` crate: the one place in the workspace that writes
//! ([`zip_dir`], for `fieldcap package --zip`) and reads ([`unzip_into`], for `fieldcap verify
//! PACKAGE.zip`) them.
//!
//! Entries are **stored**, not compressed: media is compressed already, and storing keeps every
//! file byte-identical inside the archive, so `unzip` or any archive tool extracts it and a
//! flipped byte is caught by the entry's CRC-32 as well as by the package's own digests. Entry
//! names are relative to the package root; ZIP64 is used for files of 4 GiB and more. The
//! archive is written to a temporary sibling, fsynced and renamed, so it appears whole or not
//! at all.
//!
//! ```
//! let d = tempfile::tempdir().unwrap();
//! std::fs::create_dir(d.path().join("p")).unwrap();
//! std::fs::write(d.path().join("p/a.txt"), b"hello").unwrap();
//! fieldcap_server::package::zip::zip_dir(&d.path().join("p"), &d.path().join("p.zip")).unwrap();
//! std::fs::create_dir(d.path().join("out")).unwrap();
//! fieldcap_server::package::zip::unzip_into(&d.path().join("p.zip"), &d.path().join("out")).unwrap();
//! assert_eq!(std::fs::read(d.path().join("out/a.txt")).unwrap(), b"hello");
//! ```

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Files of this size and larger need ZIP64 sizes in their entry.
const ZIP64_FROM: u64 = u32::MAX as u64;

/// A damaged or unsafe archive (as opposed to a failing disk).
fn unusable(what: String) -> Error {
    Error::Core(fieldcap_evidence::Error::Integrity(what))
}

/// Zips the folder `src` into `dst` (which must not exist); entry names are relative to `src`.
pub fn zip_dir(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        return Err(Error::BadRequest("the zip file already exists".into()));
    }
    let tmp = dst.with_extension(format!("zip.tmp-{}", std::process::id()));
    let written = write_zip(src, &tmp).and_then(|_| std::fs::rename(&tmp, dst).map_err(|e| Error::io("moving the zip into place", e)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    match dst.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => Ok(fieldcap_evidence::fsutil::sync_dir(dir)?),
        None => Ok(()),
    }
}

fn write_zip(src: &Path, tmp: &Path) -> Result<()> {
    let io = |e| Error::io("writing the zip", e);
    let zip_err = |e: zip::result::ZipError| Error::io("writing the zip", std::io::Error::other(e));
    let files = fieldcap_package::clip::list_files(src)?;
    let out = File::create(tmp).map_err(io)?;
    let mut zip = ZipWriter::new(BufWriter::with_capacity(1 << 20, out));
    for name in files {
        let path = src.join(&name);
        let size = std::fs::metadata(&path).map_err(io)?.len();
        // A fixed time (1980-01-01, the ZIP epoch) keeps the archive a function of the files.
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644)
            .large_file(size >= ZIP64_FROM);
        zip.start_file(name.as_str(), options).map_err(zip_err)?;
        let copied = std::io::copy(&mut File::open(&path).map_err(io)?, &mut zip).map_err(io)?;
        if copied != size {
            return Err(Error::Internal("a package file changed while it was zipped".into()));
        }
    }
    let mut buffered = zip.finish().map_err(zip_err)?;
    buffered.flush().map_err(io)?;
    let file = buffered.into_inner().map_err(|e| Error::io("writing the zip", e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Extracts the archive `archive` into the existing folder `dest`, checking every entry's CRC-32
/// as it is read. Refuses an entry whose name would land outside `dest` (absolute, or with `..`)
/// and names the entry that is damaged.
pub fn unzip_into(archive: &Path, dest: &Path) -> Result<()> {
    let file = File::open(archive).map_err(|e| Error::io(format!("opening '{}'", archive.display()), e))?;
    let mut zip = ZipArchive::new(file).map_err(|e| unusable(format!("'{}' is not a readable ZIP archive: {e}", archive.display())))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| unusable(format!("entry {} of the archive cannot be read: {e}", i + 1)))?;
        let name = entry.name().to_string();
        let rel = entry.enclosed_name().ok_or_else(|| unusable(format!("the archive entry '{name}' would land outside the package")))?;
        let target = dest.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| Error::io("creating an extracted folder", e))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating an extracted folder", e))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(|e| Error::io(format!("creating the extracted file '{name}'"), e))?;
        // `copy` reads to the end of the entry, where the reader checks its CRC-32.
        std::io::copy(&mut entry, &mut out).map_err(|e| unusable(format!("the archive entry '{name}' is damaged: {e}")))?;
        out.flush().map_err(|e| Error::io("writing an extracted file", e))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn package(dir: &Path) {
        std::fs::create_dir_all(dir.join("clips/c1")).unwrap();
        std::fs::write(dir.join("package.json"), b"{}").unwrap();
        std::fs::write(dir.join("clips/c1/media.mp4"), vec![7u8; 100_000]).unwrap();
        std::fs::write(dir.join("clips/c1/empty"), b"").unwrap();
    }

    #[test]
    fn entries_are_stored_byte_identical_and_extract_to_the_same_tree() {
        let d = tempfile::tempdir().unwrap();
        package(&d.path().join("p"));
        zip_dir(&d.path().join("p"), &d.path().join("p.zip")).unwrap();
        assert!(zip_dir(&d.path().join("p"), &d.path().join("p.zip")).is_err(), "an existing archive is never replaced");
        let bytes = std::fs::read(d.path().join("p.zip")).unwrap();
        // Stored: the media's bytes appear as they are.
        assert!(bytes.windows(1000).any(|w| w.iter().all(|b| *b == 7)));
        let mut z = ZipArchive::new(File::open(d.path().join("p.zip")).unwrap()).unwrap();
        for i in 0..z.len() {
            assert_eq!(z.by_index(i).unwrap().compression(), CompressionMethod::Stored);
        }
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        unzip_into(&d.path().join("p.zip"), &out).unwrap();
        assert_eq!(fieldcap_package::clip::list_files(&out).unwrap(), fieldcap_package::clip::list_files(&d.path().join("p")).unwrap());
        assert_eq!(std::fs::read(out.join("clips/c1/media.mp4")).unwrap(), vec![7u8; 100_000]);
    }

    #[test]
    fn a_flipped_byte_and_an_escaping_name_are_refused() {
        let d = tempfile::tempdir().unwrap();
        package(&d.path().join("p"));
        zip_dir(&d.path().join("p"), &d.path().join("p.zip")).unwrap();
        let mut bytes = std::fs::read(d.path().join("p.zip")).unwrap();
        let at = bytes.windows(6).position(|w| w == b"media.").unwrap() + 4096;
        bytes[at] ^= 1;
        std::fs::write(d.path().join("bad.zip"), &bytes).unwrap();
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let e = unzip_into(&d.path().join("bad.zip"), &out).unwrap_err();
        assert!(e.to_string().contains("clips/c1/media.mp4"), "{e}");

        let mut w = ZipWriter::new(File::create(d.path().join("evil.zip")).unwrap());
        w.start_file("../evil.txt", SimpleFileOptions::default()).unwrap();
        w.write_all(b"x").unwrap();
        w.finish().unwrap();
        let out2 = d.path().join("out2");
        std::fs::create_dir(&out2).unwrap();
        assert!(unzip_into(&d.path().join("evil.zip"), &out2).is_err());
        assert!(!d.path().join("evil.txt").exists());
    }
}
