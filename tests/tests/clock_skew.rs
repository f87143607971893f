//! Device clocks minutes off: the test hook `Store::set_clock_skew_ms` moves a store's clock as
//! sync reads it (as on a phone set to a wrong time), which the soak (`scripts/soak.sh`) uses for
//! thirty devices in one process. A device ±20 minutes off (four times the server's five-minute
//! window) measures the offset and syncs; a clock that jumps ten minutes in the middle of a pass
//! gets `stale-request`, measures again and finishes the pass.

use fieldcap_core::sync::CancelToken;
use fieldcap_testkit::device::*;
use fieldcap_testkit::server::TestServer;
use fieldcap_core::sync::{HttpRequest, HttpResponse, Transport, TransportError};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

const MINUTE_MS: i64 = 60_000;

fn offsets_measured(d: &Device) -> usize {
    d.store.custody_events(None).expect("custody").iter().filter(|e| e.event == "clock_offset_measured").count()
}

#[test]
fn a_device_twenty_minutes_off_either_way_syncs() {
    let server = TestServer::start();
    for skew in [20 * MINUTE_MS, -20 * MINUTE_MS] {
        let d = Device::with_role("monitor");
        d.store.set_clock_skew_ms(skew);
        d.enroll(&server);
        d.seal_video(300_000, 7);
        d.observe("a note");
        let s = d.pass(&fast_opts(64 * 1024));
        assert_eq!(s.remaining, 0, "{s:?}");
        assert_eq!(s.receipts_verified, 2, "{s:?}");
        let off = s.clock_offset_ms.expect("offset measured");
        assert!((off - skew).abs() < 5_000, "measured offset {off} ms for a clock {skew} ms off");
        assert!(d.store.alarms().expect("alarms").is_empty());
    }
}

#[test]
fn a_clock_that_jumps_mid_pass_is_measured_again() {
    let server = TestServer::start();
    let d = Device::with_role("police");
    d.enroll(&server);
    d.seal_video(2_000_000, 8);
    d.seal_video(2_000_000, 9);
    let before = offsets_measured(&d);
    let jumped = AtomicBool::new(false);
    let s = d
        .store
        .sync_once(&net(), &fast_opts(128 * 1024), &CancelToken::new(), &mut |p| {
            // Once the first chunk is acknowledged, the clock jumps ten minutes ahead: the next
            // signed request carries a time the server refuses as stale.
            if p.item_bytes_done > 0 && !jumped.swap(true, Ordering::SeqCst) {
                d.store.set_clock_skew_ms(10 * MINUTE_MS);
            }
        })
        .expect("pass");
    assert!(jumped.load(Ordering::SeqCst));
    assert_eq!(s.remaining, 0, "{s:?}");
    assert_eq!(s.receipts_verified, 2, "{s:?}");
    // The pass's own measurement, and one more after the stale refusal.
    assert!(offsets_measured(&d) >= before + 2, "the offset was measured again after the jump");
    assert!(d.store.alarms().expect("alarms").is_empty());
}

/// Called before a request is sent; an error fails it as a cut connection would.
type Before<'a> = Box<dyn Fn(&HttpRequest) -> Option<TransportError> + Send + Sync + 'a>;

/// The built-in transport, with a hook called before each request is sent (it may fail the
/// request as a cut connection would) and one called after each answer.
struct Hooked<'a> {
    inner: fieldcap_core::sync::ReqwestTransport,
    before: Before<'a>,
    after: Box<dyn Fn(&str) + Send + Sync + 'a>,
}

impl Transport for Hooked<'_> {
    fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        if let Some(e) = (self.before)(&req) {
            return Err(e);
        }
        let url = req.url.clone();
        let r = self.inner.send(req);
        (self.after)(&url);
        r
    }
}

#[test]
fn a_clock_set_while_a_request_is_retried_does_not_set_the_item_aside() {
    // Found by the soak: the manifest's first POST was cut, the device clock was set ten minutes
    // off before the retry, and the retry's `stale-request` was taken as the server refusing the
    // item (needs_attention) instead of a stale clock correction.
    let server = TestServer::start();
    let d = Device::with_role("monitor");
    d.enroll(&server);
    let item = d.seal_video(100_000, 11);
    let cut = AtomicBool::new(false);
    let t = Hooked {
        inner: net(),
        before: Box::new(|req| {
            if req.method == "POST" && req.url.ends_with("/v1/manifests") && !cut.swap(true, Ordering::SeqCst) {
                d.store.set_clock_skew_ms(10 * MINUTE_MS);
                return Some(TransportError::Network("cut by the test".into()));
            }
            None
        }),
        after: Box::new(|_| {}),
    };
    let s = d.store.sync_once(&t, &fast_opts(64 * 1024), &CancelToken::new(), &mut |_| {}).expect("pass");
    assert!(cut.load(Ordering::SeqCst));
    let row = d.store.item(&item.clip_id).expect("item").summary;
    assert_eq!(s.needs_attention, 0, "{s:?} {row:?}");
    assert_eq!(row.state, "receipted", "{s:?} {row:?}");
}

#[test]
fn a_clock_that_keeps_jumping_stops_the_pass_and_the_item_stays_queued() {
    // The clock jumps ten minutes right after every measurement, so every signed request is
    // stale: the pass stops as on a transient failure, nothing is set aside, and a later pass
    // with a steady clock finishes.
    let server = TestServer::start();
    let d = Device::with_role("monitor");
    d.enroll(&server);
    let item = d.seal_video(100_000, 12);
    let skew = AtomicI64::new(0);
    let t = Hooked {
        inner: net(),
        before: Box::new(|_| None),
        after: Box::new(|url| {
            if url.ends_with("/v1/time") {
                d.store.set_clock_skew_ms(skew.fetch_add(10 * MINUTE_MS, Ordering::SeqCst) + 10 * MINUTE_MS);
            }
        }),
    };
    let s = d.store.sync_once(&t, &fast_opts(64 * 1024), &CancelToken::new(), &mut |_| {}).expect("pass");
    let row = d.store.item(&item.clip_id).expect("item").summary;
    assert_eq!(s.needs_attention, 0, "{s:?} {row:?}");
    assert_eq!(row.state, "sealed", "{s:?} {row:?}");
    assert!(s.last_error.as_deref().is_some_and(|e| e.contains("stale-request")), "{s:?}");
    let s2 = d.pass(&fast_opts(64 * 1024));
    assert_eq!(s2.remaining, 0, "{s2:?}");
    assert_eq!(d.store.item(&item.clip_id).expect("item").summary.state, "receipted");
}
