//! A package re-signed completely with another server key (testkit's forger).
#![allow(clippy::unwrap_used)]

use fieldcap_package::package::{verify_package, PackageIndex};
use fieldcap_server::package::Profile;
use fieldcap_testkit::forger::{forge_package, ForgeOptions};
use fieldcap_testkit::package::Fixture;

#[test]
fn forged_packages_pass_the_verifier_before_the_cross_checks() {
    let fx = Fixture::new();
    let full = fx.package("full", Profile::Full, None).path;
    let release = fx.package("release", Profile::Release, None).path;
    let cases = [
        ("forged-full", &full, ForgeOptions::default()),
        ("forged-drop", &full, ForgeOptions { drop_clips: vec![fx.clips[2].clone()], ..Default::default() }),
        ("forged-time", &full, ForgeOptions { shift_received_at: vec![(fx.clips[0].clone(), chrono::Duration::hours(-1))], ..Default::default() }),
        ("forged-release", &release, ForgeOptions::default()),
        ("forged-release-drop", &release, ForgeOptions { drop_clips: vec![fx.clips[3].clone()], ..Default::default() }),
    ];
    for (name, src, opts) in cases {
        let dst = fx.work.path().join(name);
        let key = forge_package(src, &dst, &opts).unwrap();
        let idx: PackageIndex = serde_json::from_slice(&std::fs::read(dst.join("package.json")).unwrap()).unwrap();
        let genuine: PackageIndex = serde_json::from_slice(&std::fs::read(src.join("package.json")).unwrap()).unwrap();
        assert_eq!(idx.server_key_id, key.key_id);
        assert_ne!(idx.server_key_id, genuine.server_key_id);
        for c in &opts.drop_clips {
            assert!(!dst.join(format!("clips/{c}")).exists() && !idx.items.iter().any(|i| &i.clip_id == c));
        }
        for (c, d) in &opts.shift_received_at {
            let at = |i: &PackageIndex| chrono::DateTime::parse_from_rfc3339(&i.items.iter().find(|i| &i.clip_id == c).unwrap().received_at).unwrap();
            assert_eq!(at(&idx) - at(&genuine), *d);
        }
        let r = verify_package(&dst);
        assert!(r.all_ok(), "{name}: {:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    }
}
