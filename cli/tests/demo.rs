//! README's first command, `fieldcap demo`, runs the whole story on an embedded server on
//! 127.0.0.1 and exits 0: every item receipted, both packages verify, and the public release
//! holds no exact place (the demo's phone videos carry their location in a `©xyz` atom). It
//! shows the server key fingerprint and verifies the packages pinned to it.

#![allow(clippy::unwrap_used)]
use fieldcap_testkit::fieldcap_cli;
use fieldcap_testkit::files::files_under;

#[test]
fn the_demo_tells_the_whole_story_and_its_packages_verify() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let out = fieldcap_cli!().command().args(["demo", "--dir"]).arg(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("monitor phone") && text.contains("2/2 item(s) receipted and verified"), "{text}");
    assert!(text.contains("4/4 item(s) receipted and verified"), "{text}");
    assert!(text.contains("0 bytes re-sent"), "{text}");
    assert_eq!(text.matches("checks, 0 failed").count(), 2, "both packages verify:\n{text}");
    assert!(text.contains("device logs complete"), "{text}");
    // The council's server key fingerprint is shown, and the packages are verified pinned to it.
    let key = fieldcap_server::keys::load(&dir.join("council-server")).unwrap();
    let fp = fieldcap_evidence::identity::key_fingerprint(&key.verifying_key());
    assert!(text.lines().any(|l| l.trim() == fp), "the fingerprint on its own line:\n{text}");
    assert_eq!(text.matches("fieldcap verify --server-key (pinned)").count(), 2, "{text}");
    assert_eq!(text.matches(&format!("sh VERIFY.txt {fp}")).count(), 2, "{text}");

    // The DA's package carries the originals (with the phone's ©xyz place); the public one does not.
    let needle = b"+33.7";
    let contains = |p: &std::path::Path| std::fs::read(p).unwrap().windows(needle.len()).any(|w| w == needle);
    let (da, public_dir) = (dir.join("package-da"), dir.join("package-public"));
    let full: Vec<std::path::PathBuf> = files_under(&da).iter().map(|f| da.join(f)).collect();
    assert!(full.iter().any(|p| contains(p)), "the originals keep their metadata");
    let public: Vec<std::path::PathBuf> = files_under(&public_dir).iter().map(|f| public_dir.join(f)).collect();
    assert!(!public.is_empty());
    let exact = b"33.7361"; // the demo's place to 0.0001°; a release snaps to 0.001°
    for p in &public {
        let b = std::fs::read(p).unwrap();
        assert!(!contains(p) && !b.windows(exact.len()).any(|w| w == exact), "{} holds an exact place", p.display());
    }
}
