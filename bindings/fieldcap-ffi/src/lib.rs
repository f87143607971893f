//! # fieldcap-ffi
//!
//! The uniffi bindings of [`fieldcap_core`] for the phone shells (Kotlin on Android, Swift on
//! iOS) and for Python. This is the only crate with `#[uniffi::export]`; everything here is a thin
//! conversion over the core, so the evidence logic stays in one place and is tested once.
//!
//! The API, as a shell sees it:
//! * [`Fieldcap::open`] — open the store with a platform [`KeyProtector`] (and optionally a
//!   platform [`HttpTransport`]);
//! * [`Fieldcap::start_capture`] → [`CaptureSession`] — the path to record into, location fixes,
//!   segments sealed while recording, `finish` / `abort`;
//! * [`Fieldcap::begin_live_capture`] → [`LiveCapture`] — a fragmented MP4 sealed piece by piece
//!   while the camera runs (`append_piece`, `add_fix`, `finish` / `abort`), and
//!   [`Fieldcap::start_live_upload`] → [`LiveUploadHandle`] — each sealed piece sent as soon as it
//!   is sealed, until `stop()`;
//! * [`Fieldcap::add_observation`], [`Fieldcap::list_items`], [`Fieldcap::receipt`];
//! * enrolment, `sync_once(budget)` and `cancel()` (from a platform expiration handler);
//! * [`sync_policy`] → [`SyncPolicy`] — when a background pass runs, its budget, and what to do
//!   after it (one rule for both shells, from the core);
//! * [`StateListener`] for the UI and [`init_logging`] for the platform logger.
//!
//! **Threading:** calls that touch the disk or the network block; call them off the main thread.
//! **Times** cross as timestamps (`SystemTime` → `java.time.Instant` / `Date` / `datetime`),
//! **digests** as lowercase hex strings, and every failure as one [`FieldcapError`].

uniffi::setup_scaffolding!();

mod api;
mod error;
mod listener;
mod live;
mod logging;
mod net;
mod policy;
mod protector;
mod types;

pub use api::{CaptureSession, Fieldcap};
pub use error::{FieldcapError, Result};
pub use listener::{StateListener, SyncPhase, SyncProgress};
pub use live::{FragmentInfo, LiveCapture, LiveRecordingState, LiveStatus, LiveUploadHandle, LiveUploadStats, SealedFragment};
pub use logging::{init_logging, stop_logging, LogLevel, LogSink};
pub use net::{EnrollmentInfo, HttpHeader, HttpRequest, HttpResponse, HttpTransport, SyncSummary};
pub use policy::{sync_policy, AfterSync, NetworkConditions, NetworkRequirement, SyncDecision, SyncPolicy, SyncReason};
pub use protector::KeyProtector;
pub use types::*;

/// The version of the bindings (the workspace version).
#[uniffi::export]
pub fn fieldcap_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A Rust stand-in for a platform protector.
    struct Xor(AtomicUsize);
    impl KeyProtector for Xor {
        fn name(&self) -> String {
            "xor".into()
        }
        fn wrap_secret(&self, secret: Vec<u8>) -> Result<Vec<u8>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(secret.iter().map(|b| b ^ 0x5a).collect())
        }
        fn unwrap_secret(&self, wrapped: Vec<u8>) -> Result<Vec<u8>> {
            Ok(wrapped.iter().map(|b| b ^ 0x5a).collect())
        }
    }

    fn open(dir: &std::path::Path) -> Arc<Fieldcap> {
        let opts = OpenOptions { data_dir: dir.to_string_lossy().into(), role: Role::Police, org: Some("Port Police".into()), callsign: None, app: None, sealed_storage: false, lock_after_secs: None };
        Fieldcap::open(opts, Arc::new(Xor(AtomicUsize::new(0))), None).unwrap()
    }

    #[test]
    fn capture_segments_observation_and_list() {
        let tmp = tempfile::tempdir().unwrap();
        let fc = open(tmp.path());
        assert_eq!(fc.role(), Role::Police);
        let s = fc.clone().start_capture(CaptureOptions { extension: "mp4".into(), tags: vec![], note: None, incident_hint: None, clock_source: None }).unwrap();
        let p0 = s.current_path().unwrap();
        std::fs::write(&p0, b"segment zero").unwrap();
        s.add_location_fix(LocationFix { at: std::time::SystemTime::now(), lat: 33.74, lon: -118.27, accuracy_m: 5.0, altitude_m: None, heading_deg: None, speed_mps: None, provider: "gps".into() }).unwrap();
        let seg = s.seal_segment().unwrap();
        assert_eq!(seg.item.seq, 1);
        assert_eq!(seg.item.media_bytes, Some(12));
        let p1 = seg.next_path.unwrap();
        std::fs::write(&p1, b"segment one").unwrap();
        assert_eq!(s.finish().unwrap().seq, 2);
        assert!(matches!(s.seal_segment(), Err(FieldcapError::InvalidInput { .. })));
        let obs = ObservationInput { text: "x".into(), at: None, place: None, agency: None, badge_numbers: vec![], vehicle_plates: vec![], people_detained: None, children_present: None, tags: vec![], incident_hint: None };
        assert_eq!(fc.add_observation(obs).unwrap().seq, 3);
        let items = fc.list_items().unwrap();
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|i| i.state == ItemState::Sealed && i.integrity == MediaIntegrity::Ok));
        assert_eq!(items[1].segment_index, Some(1));
        assert!(fc.receipt(items[0].clip_id.clone()).unwrap().is_none());
        assert!(matches!(fc.item("nope".into()), Err(FieldcapError::NotFound { .. })));
        assert!(matches!(fc.sync_once(10), Err(FieldcapError::NotEnrolled { .. })));
        assert!(!fc.cancel());
    }

    #[test]
    fn live_capture_refuses_what_is_not_a_piece_and_aborts() {
        let tmp = tempfile::tempdir().unwrap();
        let fc = open(tmp.path());
        let opts = CaptureOptions { extension: "mp4".into(), tags: vec![], note: None, incident_hint: None, clock_source: None };
        assert!(matches!(fc.clone().begin_live_capture(opts.clone(), "jpg".into()), Err(FieldcapError::InvalidInput { .. })));
        let live = fc.clone().begin_live_capture(opts, ".mp4".into()).unwrap();
        assert!(live.is_open());
        assert!(matches!(live.append_piece(b"not an mp4 box".to_vec()), Err(FieldcapError::InvalidInput { .. })));
        assert!(matches!(live.append_piece(Vec::new()), Err(FieldcapError::InvalidInput { .. })));
        assert!(matches!(live.finish(), Err(FieldcapError::InvalidInput { .. })));
        let st = fc.live_recordings().unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!((st[0].state, st[0].fragments, st[0].clip_id.clone()), (LiveRecordingState::Recording, 0, live.clip_id()));
        live.abort().unwrap();
        assert!(!live.is_open());
        assert!(matches!(live.abort(), Err(FieldcapError::InvalidInput { .. })));
        assert_eq!(fc.live_recordings().unwrap()[0].state, LiveRecordingState::Aborted);
        assert!(matches!(fc.live_fragment(live.clip_id(), 0), Err(FieldcapError::NotFound { .. })));
        assert!(matches!(fc.start_live_upload(), Err(FieldcapError::NotEnrolled { .. })));
    }

    #[test]
    fn reopening_with_another_protector_is_a_key_store_error() {
        let tmp = tempfile::tempdir().unwrap();
        let id = open(tmp.path()).device_id();
        assert_eq!(open(tmp.path()).device_id(), id);
        struct Other;
        impl KeyProtector for Other {
            fn name(&self) -> String {
                "other".into()
            }
            fn wrap_secret(&self, s: Vec<u8>) -> Result<Vec<u8>> {
                Ok(s)
            }
            fn unwrap_secret(&self, s: Vec<u8>) -> Result<Vec<u8>> {
                Ok(s)
            }
        }
        let opts = OpenOptions { data_dir: tmp.path().to_string_lossy().into(), role: Role::Monitor, org: None, callsign: None, app: None, sealed_storage: false, lock_after_secs: None };
        assert!(matches!(Fieldcap::open(opts, Arc::new(Other), None), Err(FieldcapError::KeyStore { .. })));
    }

    #[test]
    fn core_errors_map_to_the_public_enum() {
        use fieldcap_core::Error as E;
        assert!(matches!(FieldcapError::from(E::InvalidInput("x".into())), FieldcapError::InvalidInput { .. }));
        assert!(matches!(FieldcapError::from(E::NotFound("x".into())), FieldcapError::NotFound { .. }));
        assert!(matches!(FieldcapError::from(E::Integrity("x".into())), FieldcapError::Integrity { .. }));
        assert!(matches!(FieldcapError::from(E::Network("x".into())), FieldcapError::Network { .. }));
        assert!(matches!(FieldcapError::from(E::Refused("x".into())), FieldcapError::Server { .. }));
        assert!(matches!(FieldcapError::from(E::Key("x".into())), FieldcapError::KeyStore { .. }));
        assert!(matches!(FieldcapError::from(E::NotEnrolled), FieldcapError::NotEnrolled { .. }));
        assert!(matches!(FieldcapError::from(E::NewerSchema { found: 9, supported: 3 }), FieldcapError::Storage { .. }));
        assert!(matches!(FieldcapError::from(E::Corrupt("x".into())), FieldcapError::Storage { .. }));
        assert!(matches!(FieldcapError::from(E::Busy("x".into())), FieldcapError::InvalidInput { .. }));
        let full = E::io("writing", std::io::Error::from_raw_os_error(libc_enospc()));
        assert!(matches!(FieldcapError::from(full), FieldcapError::StorageFull { .. }));
        assert_eq!(ItemState::parse("receipted"), ItemState::Receipted);
        assert_eq!(ItemState::parse("something-new"), ItemState::Unknown);
    }

    fn libc_enospc() -> i32 {
        28 // ENOSPC on Linux, Android and Darwin
    }
}
