//! Whether the files are intact and complete: SHA256SUMS and B3SUMS against the files on disk,
//! and the file list the server signed in `package.json` (length, SHA-256 and BLAKE3 of every
//! file but the index, its signature and the sums files). A file added, removed or changed is
//! named; where a sums file disagrees with a file that still matches the signed index, the sums
//! file is blamed rather than the file.

use super::Verification;
use crate::package::{FileEntry, PackageIndex, UNLISTED};
use fieldcap_evidence::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Both sums files, then the signed file list (when the index is readable).
pub(super) fn check(c: &mut Verification<'_>, on_disk: &[String], index: Option<&PackageIndex>) {
    let signed: BTreeMap<String, FileEntry> = index.map(|i| i.files.iter().map(|f| (f.path.clone(), f.clone())).collect()).unwrap_or_default();
    for (sums, blake) in [("SHA256SUMS", false), ("B3SUMS", true)] {
        check_sums(c, on_disk, &signed, sums, blake);
    }
    if let Some(i) = index {
        check_signed_list(c, on_disk, &signed, i);
    }
}

/// Every file the index lists is present with its digests; every file present is listed.
fn check_signed_list(c: &mut Verification<'_>, on_disk: &[String], signed: &BTreeMap<String, FileEntry>, i: &PackageIndex) {
    let mut bad = 0usize;
    for f in &i.files {
        match c.digests.get(&f.path) {
            None => {
                bad += 1;
                c.fail("file listed in the signed index", &f.path, "missing".into());
            }
            Some(d) if d.bytes != f.bytes || d.sha256_hex() != f.sha256 || d.blake3_hex() != f.blake3 => {
                bad += 1;
                c.fail("file listed in the signed index", &f.path, "differs from the digests in package.json".into());
            }
            Some(_) => {}
        }
    }
    for f in on_disk {
        if !UNLISTED.contains(&f.as_str()) && !signed.contains_key(f) {
            bad += 1;
            c.fail("file listed in the signed index", f, "not listed in package.json (added)".into());
        }
    }
    if bad == 0 {
        c.ok("files match the signed index", "package.json", format!("{} files", i.files.len()));
    }
}

/// One sums file: every line names a file in the package that matches it, and every file but
/// the two sums files is listed.
fn check_sums(c: &mut Verification<'_>, on_disk: &[String], signed: &BTreeMap<String, FileEntry>, sums: &str, blake: bool) {
    let listed = match read_sums(c.dir, sums) {
        Ok(l) => l,
        Err(e) => {
            c.fail(&format!("{sums} is readable"), sums, e.to_string());
            return;
        }
    };
    let mut bad = 0usize;
    for (f, want) in &listed {
        if f.contains("..") || f.starts_with('/') {
            bad += 1;
            c.fail(&format!("{sums} entry"), sums, format!("names a path outside the package: {f}"));
            continue;
        }
        let actual = c.digests.get(f).map(|d| if blake { d.blake3_hex() } else { d.sha256_hex() });
        match actual {
            None => {
                // A deleted file is also named by the signed file list; here the list is at fault.
                bad += 1;
                c.fail(&format!("{sums} entry"), sums, format!("{f} is listed in {sums} but missing"));
            }
            Some(a) if &a != want => {
                bad += 1;
                // Blame the sums file when the file still matches the server-signed index.
                let signed_ok = signed.get(f).is_some_and(|e| if blake { e.blake3 == a } else { e.sha256 == a });
                let blame = if signed_ok { sums } else { f.as_str() };
                c.fail(&format!("{sums} entry"), blame, format!("{f} does not match {sums}"));
            }
            Some(_) => {}
        }
    }
    for f in on_disk {
        if f != "SHA256SUMS" && f != "B3SUMS" && !listed.contains_key(f) {
            bad += 1;
            // A file the server signed (or the index itself) missing from the list: the list is at fault.
            let blame = if signed.contains_key(f) || UNLISTED.contains(&f.as_str()) { sums } else { f.as_str() };
            c.fail(&format!("{sums} covers every file"), blame, format!("{f} is in the package but not listed in {sums}"));
        }
    }
    if bad == 0 {
        c.ok(&format!("{sums} covers every file"), sums, format!("{} files match", listed.len()));
    }
}

/// Reads the sums file `name` into path → hex digest (and an error for a malformed line).
fn read_sums(dir: &Path, name: &str) -> Result<BTreeMap<String, String>> {
    let text = fs::read_to_string(dir.join(name)).map_err(|_| Error::NotFound(format!("{name} cannot be read")))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let (d, f) = line.split_once("  ").ok_or_else(|| Error::Integrity(format!("{name} line {} is malformed", i + 1)))?;
        if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) || f.is_empty() {
            return Err(Error::Integrity(format!("{name} line {} is malformed", i + 1)));
        }
        out.insert(f.to_string(), d.to_string());
    }
    Ok(out)
}
