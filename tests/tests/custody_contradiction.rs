//! The package verifier fails custody that contradicts itself (issue 12 #4): a server custody
//! event after an item's `stored` that only an open upload can have — what the tus creation race
//! used to record — signed by the real server key, so only this check can catch it.
#![allow(clippy::unwrap_used)]

use fieldcap_package::package::verify_package;
use fieldcap_server::package::Profile;
use fieldcap_server::records::Records;
use fieldcap_testkit::package::*;

#[test]
fn events_of_an_open_upload_after_stored_fail_verification() {
    let fx = Fixture::new();
    let clean = fx.package("clean", Profile::Full, None).path;
    let r = verify_package(&clean);
    assert!(r.all_ok(), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());

    let recs = Records::open(fx.data()).unwrap();
    // A received item with media (it has a `stored` event).
    let clip = fx
        .clips
        .iter()
        .find(|c| recs.custody(Some(c.as_str())).unwrap().iter().any(|e| e.event == "stored"))
        .unwrap()
        .clone();
    for (n, (event, detail)) in [
        ("refused", serde_json::json!({"reason": "received media does not match the signed manifest: SHA-256 differs"})),
        ("terminated", serde_json::json!({"discarded_bytes": 0})),
        ("verified", serde_json::json!({"bytes": 1})),
    ]
    .into_iter()
    .enumerate()
    {
        // Signed by the server key, appended as the race used to: the first contradiction
        // (`refused`) is the one reported, however many follow.
        recs.append_custody(event, Some(&clip), detail).unwrap();
        let out = fx.package(&format!("contradiction-{n}"), Profile::Full, None).path;
        let r = verify_package(&out);
        let failed: Vec<_> = r.checks.iter().filter(|c| !c.ok).collect();
        assert_eq!(failed.len(), 1, "{failed:#?}");
        assert_eq!(failed[0].file, "custody.jsonl");
        assert!(failed[0].detail.contains(&format!("item {clip} contradicts itself: a 'refused' event")), "{}", failed[0].detail);
        assert!(failed[0].detail.contains("only an open upload can have one"), "{}", failed[0].detail);
    }
    // Events after stored that a stored item may have (a conflicting manifest refused, an
    // export, a hold) are fine.
    let fx2 = Fixture::new();
    let recs2 = Records::open(fx2.data()).unwrap();
    let clip2 = fx2.clips[0].clone();
    recs2.append_custody("held", Some(&clip2), serde_json::json!({"reason": "litigation"})).unwrap();
    recs2.append_custody("conflict", Some(&clip2), serde_json::json!({"reason": "a different manifest for a known clip_id"})).unwrap();
    let out = fx2.package("fine", Profile::Full, None).path;
    let r = verify_package(&out);
    assert!(r.all_ok(), "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
}
