//! The device's custody log goes to the server at the end of each sync pass, verbatim, once;
//! a server restored from an older backup (missing the newest device events) is brought up to
//! date by the next pass.

#![allow(clippy::unwrap_used)]

use fieldcap_core::sync::CancelToken;
use fieldcap_testkit::device::*;
use fieldcap_testkit::server::TestServer;

fn server_log(server: &TestServer, device_id: &str) -> Vec<fieldcap_core::custody::CustodyEvent> {
    fieldcap_server::records::Records::open(server.data()).expect("records").device_custody(device_id).expect("device custody")
}

#[test]
fn the_custody_log_is_uploaded_verbatim_once_and_repaired_after_a_restore() {
    let server = TestServer::start();
    let d = Device::with_role("monitor");
    d.seal_video(150_000, 1);
    d.observe("two vehicles, plates noted");
    d.enroll(&server);
    let id = d.store.device_id().to_string();

    let s1 = d.store.sync_once(&net(), &fast_opts(64 * 1024), &CancelToken::new(), &mut |_| {}).expect("pass 1");
    assert_eq!(s1.remaining, 0, "{s1:?}");
    let local = d.store.custody_events(None).expect("local custody");
    assert_eq!(s1.custody_events_uploaded, local.len() as u64);
    assert_eq!(server_log(&server, &id), local, "stored exactly as the device signed it");

    // A second pass sends only what is new (its clock measurement).
    let s2 = d.store.sync_once(&net(), &fast_opts(64 * 1024), &CancelToken::new(), &mut |_| {}).expect("pass 2");
    let local2 = d.store.custody_events(None).expect("local custody");
    assert_eq!(s2.custody_events_uploaded, (local2.len() - local.len()) as u64);
    assert_eq!(server_log(&server, &id), local2);
    fieldcap_core::custody::verify_chain(&server_log(&server, &id), &d.store.device_key().verifying_key()).expect("chain");

    // The server is restored from a backup that lacks the device's newest events: the device's
    // acknowledged point is now ahead of the server's copy; the next pass starts over and fills
    // the hole (events the server holds are skipped as identical).
    let c = rusqlite::Connection::open(server.data().join("records.sqlite")).expect("records db");
    c.busy_timeout(std::time::Duration::from_secs(10)).expect("busy");
    let removed = c.execute("DELETE FROM device_custody WHERE device_id = ?1 AND seq > 3", [&id]).expect("delete");
    assert!(removed > 0);
    drop(c);
    let s3 = d.store.sync_once(&net(), &fast_opts(64 * 1024), &CancelToken::new(), &mut |_| {}).expect("pass 3");
    assert!(s3.last_error.is_none(), "{s3:?}");
    let local3 = d.store.custody_events(None).expect("local custody");
    assert_eq!(server_log(&server, &id), local3);
}
