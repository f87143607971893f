//! Helpers for tests that drive the real `fieldcap` binary.
#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fieldcap"))
}

pub fn fieldcap(home: &Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("--home").arg(home).args(args).output().expect("run fieldcap")
}

pub fn ok(home: &Path, args: &[&str]) -> String {
    let o = fieldcap(home, args);
    assert!(o.status.success(), "fieldcap {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("utf8")
}

/// Deterministic bytes that differ per seed.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn clips_json(home: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(home, &["clips", "--json"])).expect("clips json")
}

/// Runs a stock tool in `dir`; returns (success, stdout+stderr).
pub fn tool(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new(program).current_dir(dir).args(args).output().unwrap_or_else(|e| panic!("{program} must be installed (.ci/run installs it): {e}"));
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// Manifests of a store in chain order, read straight from its SQLite file.
pub fn manifests(home: &Path) -> Vec<Vec<u8>> {
    let c = rusqlite::Connection::open(home.join("fieldcap.db")).expect("open db");
    let mut s = c.prepare("SELECT manifest FROM items ORDER BY seq").expect("prepare");
    let v = s.query_map([], |r| r.get::<_, Vec<u8>>(0)).expect("query").collect::<Result<Vec<_>, _>>().expect("rows");
    v
}
