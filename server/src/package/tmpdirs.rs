//! Temporary package folders: each export writes into `.<OUT>.tmp-<pid>-<32 hex>` beside the
//! output (renamed into place at the end) and keeps scratch copies in `<that>.scratch`, while it
//! holds an exclusive lock (`flock`) on `<that>.lock`. An export that is killed leaves them
//! behind; the next export in the same folder removes them ([`remove_stale`]) — only names of
//! this exact pattern, and only when their lock is free (no export is running with them) or,
//! for a folder without a lock file (left by a version before the lock), when the process named
//! in it no longer exists. A zip being written is `<OUT>.zip.tmp-<pid>`; a leftover one is
//! removed once the process named in it no longer exists.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

const LOCK_SUFFIX: &str = ".lock";
const SCRATCH_SUFFIX: &str = ".scratch";

/// The temporary folder of a running export and the lock that marks it as live.
pub(super) struct ExportTemp {
    /// The folder the package is written into (created).
    pub dir: PathBuf,
    /// Scratch space beside it for copies that must not become part of the package (created).
    pub scratch: PathBuf,
    lock_path: PathBuf,
    lock: Option<File>,
}

impl ExportTemp {
    /// Takes the lock and creates the temporary folder and the scratch folder for output `name`
    /// in `parent`.
    pub fn create(parent: &Path, name: &str) -> Result<ExportTemp> {
        let base = format!(".{name}.tmp-{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let lock_path = parent.join(format!("{base}{LOCK_SUFFIX}"));
        let lock = OpenOptions::new().write(true).create_new(true).open(&lock_path).map_err(|e| Error::io("creating the export's lock file", e))?;
        lock.try_lock().map_err(|e| Error::io("locking the export's lock file", std::io::Error::other(e.to_string())))?;
        let t = ExportTemp { dir: parent.join(&base), scratch: parent.join(format!("{base}{SCRATCH_SUFFIX}")), lock_path, lock: Some(lock) };
        fs::create_dir(&t.dir).map_err(|e| Error::io("creating the temporary package folder", e))?;
        fs::create_dir(&t.scratch).map_err(|e| Error::io("creating the export's scratch folder", e))?;
        Ok(t)
    }
}

impl Drop for ExportTemp {
    /// Removes what is left (the folder is gone after a successful rename), then the lock.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_dir_all(&self.scratch);
        let _ = fs::remove_file(&self.lock_path);
        drop(self.lock.take());
    }
}

/// Splits `.<name>.tmp-<pid>-<32 hex>[.lock|.scratch]` into (base, pid); `None` for any other name.
fn parse(file_name: &str) -> Option<(&str, u32)> {
    let base = file_name.strip_suffix(LOCK_SUFFIX).or_else(|| file_name.strip_suffix(SCRATCH_SUFFIX)).unwrap_or(file_name);
    if !base.starts_with('.') {
        return None;
    }
    let (_, tail) = base.rsplit_once(".tmp-")?;
    let (pid, id) = tail.split_once('-')?;
    let hex_ok = id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let pid_ok = !pid.is_empty() && pid.len() <= 10 && pid.bytes().all(|b| b.is_ascii_digit());
    if !hex_ok || !pid_ok {
        return None;
    }
    Some((base, pid.parse().ok()?))
}

/// The pid of a zip being written, `<OUT>.zip.tmp-<pid>` ([`super::zip::zip_dir`]); `None` for
/// any other name.
fn parse_zip_tmp(file_name: &str) -> Option<u32> {
    let (_, pid) = file_name.rsplit_once(".zip.tmp-")?;
    if pid.is_empty() || pid.len() > 10 || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// True when no process has `pid` (only decidable where `/proc` exists; elsewhere assumed alive).
fn process_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the temporary folders, scratch folders and lock files of earlier exports in `parent`
/// that are no longer running (see the module documentation). Returns how many temporary
/// package folders were removed. Failures are logged and skipped: a leftover never stops an
/// export.
pub(super) fn remove_stale(parent: &Path) -> usize {
    let Ok(entries) = fs::read_dir(parent) else { return 0 };
    let mut bases: Vec<(String, u32)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        // A zip of a killed export: a plain file, removed once its process is gone.
        if let Some(pid) = parse_zip_tmp(&name) {
            if pid != std::process::id() && process_gone(pid) && e.file_type().is_ok_and(|t| t.is_file()) {
                if let Err(err) = fs::remove_file(e.path()) {
                    tracing::warn!(error = %err, "a leftover temporary zip could not be removed");
                }
            }
            continue;
        }
        if let Some((base, pid)) = parse(&name) {
            if !bases.iter().any(|(b, _)| b == base) {
                bases.push((base.to_string(), pid));
            }
        }
    }
    let mut removed = 0;
    for (base, pid) in bases {
        let lock_path = parent.join(format!("{base}{LOCK_SUFFIX}"));
        // Hold the stale lock while removing, so that two exports never clean the same folder.
        let held = match OpenOptions::new().write(true).open(&lock_path) {
            Ok(f) => match f.try_lock() {
                Ok(()) => Some(f),
                Err(_) => continue, // a running export
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !process_gone(pid) {
                    continue;
                }
                None
            }
            Err(_) => continue,
        };
        for p in [parent.join(&base), parent.join(format!("{base}{SCRATCH_SUFFIX}"))] {
            // Only real folders (never follow a link).
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                match fs::remove_dir_all(&p) {
                    Ok(()) => removed += usize::from(p.file_name().is_some_and(|n| n.to_string_lossy() == base)),
                    Err(e) => tracing::warn!(error = %e, "a leftover temporary package folder could not be removed"),
                }
            }
        }
        if held.is_some() {
            let _ = fs::remove_file(&lock_path);
        }
    }
    removed
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_pattern_only() {
        let id = "0123456789abcdef0123456789abcdef";
        let base = format!(".pkg.tmp-42-{id}");
        assert_eq!(parse(&base), Some((base.as_str(), 42)));
        assert_eq!(parse(&format!(".my.pkg.tmp-7-{id}.lock")).map(|x| x.1), Some(7));
        assert_eq!(parse(&format!(".pkg.tmp-7-{id}.scratch")).map(|x| x.0.to_string()), Some(format!(".pkg.tmp-7-{id}")));
        for bad in [format!("pkg.tmp-42-{id}"), format!(".pkg.tmp-x-{id}"), ".pkg.tmp-42-0123".to_string(), format!(".pkg.tmp-42-{}", id.to_uppercase()), ".evidence".into()] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_live_export_is_kept_and_a_dead_one_removed() {
        let d = tempfile::tempdir().unwrap();
        let live = ExportTemp::create(d.path(), "pkg").unwrap();
        fs::write(live.dir.join("x"), b"x").unwrap();
        // A killed export: its lock file is there but nobody holds it.
        let dead = format!(".pkg.tmp-1-{}", "ab".repeat(16));
        fs::create_dir(d.path().join(&dead)).unwrap();
        fs::write(d.path().join(&dead).join("media.mp4"), b"partial").unwrap();
        fs::create_dir(d.path().join(format!("{dead}.scratch"))).unwrap();
        fs::write(d.path().join(format!("{dead}.lock")), b"").unwrap();
        // Something else that merely looks similar is never touched.
        fs::create_dir(d.path().join("pkg.tmp-1-x")).unwrap();
        // The zip of a killed export (a process that is gone), and one of a live process (this one).
        fs::write(d.path().join("pkg.zip.tmp-999999999"), b"PK").unwrap();
        fs::write(d.path().join(format!("pkg.zip.tmp-{}", std::process::id())), b"PK").unwrap();
        assert_eq!(remove_stale(d.path()), 1);
        assert!(live.dir.join("x").exists(), "the running export's folder stays");
        assert!(!d.path().join(&dead).exists());
        assert!(!d.path().join(format!("{dead}.scratch")).exists());
        assert!(!d.path().join(format!("{dead}.lock")).exists());
        assert!(d.path().join("pkg.tmp-1-x").exists());
        assert!(!d.path().join("pkg.zip.tmp-999999999").exists());
        assert!(d.path().join(format!("pkg.zip.tmp-{}", std::process::id())).exists());
        drop(live);
        let left: Vec<_> = fs::read_dir(d.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
