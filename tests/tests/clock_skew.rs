//! Device clocks minutes off: the test hook `Store::set_clock_skew_ms` moves a store's clock as
//! sync reads it (as on a phone set to a wrong time), which the soak (`scripts/soak.sh`) uses for
//! thirty devices in one process. A device ±20 minutes off (four times the server's five-minute
//! window) measures the offset and syncs; a clock that jumps ten minutes in the middle of a pass
//! gets `stale-request`, measures again and finishes the pass.

use fieldcap_core::sync::CancelToken;
use fieldcap_testkit::device::*;
use fieldcap_testkit::server::TestServer;
use std::sync::atomic::{AtomicBool, Ordering};

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
