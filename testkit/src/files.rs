//! Folders as tests look at them: every file under a folder (by name or by digest) and
//! recursive copies (to tamper with a copy of a package and keep the original).

use sha2::Digest;
use std::collections::HashSet;
use std::path::Path;

/// Every file under `dir`, as paths relative to it with `/` separators, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).expect("under base").to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Lowercase hex SHA-256 of every file under `dir` (to find a server's blobs whatever its
/// layout). Folders that cannot be read are skipped.
pub fn file_digests(dir: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.insert(hex::encode(sha2::Sha256::digest(&b)));
            }
        }
    }
    out
}

/// Copies the folder `src` to `dst` (created), recursively.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy");
        }
    }
}
