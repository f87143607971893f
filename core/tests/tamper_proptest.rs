//! Property tests: flipping any byte of an exported manifest, signature or media is detected and
//! the failing check names the file; the device chain detects a removed or reordered item.

#![allow(clippy::unwrap_used)]

use fieldcap_core::manifest::Observation;
use fieldcap_core::seal::{CaptureRequest, ObservationRequest};
use fieldcap_package::clip::{verify_clip_dir, verify_device_chain};
use fieldcap_testkit::bytes::seeded;
use fieldcap_testkit::device::open_store;
use fieldcap_testkit::files::copy_dir;
use proptest::prelude::*;
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Fixture {
    _dir: tempfile::TempDir,
    export: PathBuf,
    chain: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let s = open_store(&dir.path().join("home"));
        let media = dir.path().join("clip.mp4");
        fs::write(&media, seeded(3000, 1)).unwrap();
        let item = s.seal_file(&media, CaptureRequest { tags: vec!["injury".into()], ..Default::default() }, &mut |_, _| {}).unwrap();
        for i in 0..7 {
            s.observe(ObservationRequest { observation: Observation { text: format!("note {i}"), ..Default::default() }, ..Default::default() }).unwrap();
        }
        let export = dir.path().join("export");
        s.export_clip(&item.clip_id, &export, &mut |_, _| {}).unwrap();
        assert!(verify_clip_dir(&export).all_ok());
        let chain = s.manifests().unwrap().into_iter().map(|m| m.0).collect();
        Fixture { _dir: dir, export, chain }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_flipped_byte_is_detected_and_named(which in 0usize..3, pos in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let f = fixture();
        let t = tempfile::tempdir().unwrap();
        copy_dir(&f.export, t.path());
        let name = ["manifest.json", "manifest.sig", "media.mp4"][which];
        let path = t.path().join(name);
        let mut bytes = fs::read(&path).unwrap();
        let i = pos.index(bytes.len());
        bytes[i] ^= mask;
        fs::write(&path, &bytes).unwrap();
        let report = verify_clip_dir(t.path());
        prop_assert!(!report.all_ok());
        prop_assert!(report.checks.iter().any(|c| !c.ok && c.file.split(" + ").any(|f| f == name)), "no failing check names {}: {:?}", name, report.checks);
    }

    #[test]
    fn removing_an_item_is_detected(remove in 0usize..7) {
        // Any item but the last (a cut tail is anchored by the server's log, not the chain).
        let mut chain = fixture().chain.clone();
        chain.remove(remove);
        prop_assert!(verify_device_chain(&chain).is_err());
    }

    #[test]
    fn reordering_items_is_detected(a in 0usize..8, b in 0usize..8) {
        prop_assume!(a != b);
        let mut chain = fixture().chain.clone();
        chain.swap(a, b);
        prop_assert!(verify_device_chain(&chain).is_err());
    }
}

#[test]
fn the_untouched_chain_verifies() {
    verify_device_chain(&fixture().chain).unwrap();
}
