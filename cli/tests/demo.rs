//! README's first command, `fieldcap demo`, runs the whole story on an embedded server on
//! 127.0.0.1 and exits 0: every item receipted, both packages verify, and the public release
//! holds no exact place (the demo's phone videos carry their location in a `©xyz` atom).

#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::Command;

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_demo_tells_the_whole_story_and_its_packages_verify() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let out = Command::new(bin()).args(["demo", "--dir"]).arg(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("monitor phone") && text.contains("2/2 item(s) receipted and verified"), "{text}");
    assert!(text.contains("4/4 item(s) receipted and verified"), "{text}");
    assert!(text.contains("0 bytes re-sent"), "{text}");
    assert_eq!(text.matches("checks, 0 failed").count(), 2, "both packages verify:\n{text}");
    assert!(text.contains("device logs complete"), "{text}");

    // The DA's package carries the originals (with the phone's ©xyz place); the public one does not.
    let needle = b"+33.7";
    let contains = |p: &std::path::Path| std::fs::read(p).unwrap().windows(needle.len()).any(|w| w == needle);
    let mut full = Vec::new();
    files_under(&dir.join("package-da"), &mut full);
    assert!(full.iter().any(|p| contains(p)), "the originals keep their metadata");
    let mut public = Vec::new();
    files_under(&dir.join("package-public"), &mut public);
    assert!(!public.is_empty());
    let exact = b"33.7361"; // the demo's place to 0.0001°; a release snaps to 0.001°
    for p in &public {
        let b = std::fs::read(p).unwrap();
        assert!(!contains(p) && !b.windows(exact.len()).any(|w| w == exact), "{} holds an exact place", p.display());
    }
}
