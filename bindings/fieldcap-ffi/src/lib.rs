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
//! * [`Fieldcap::add_observation`], [`Fieldcap::list_items`], [`Fieldcap::receipt`];
//! * enrolment, `sync_once(budget)` and `cancel()` (from a platform expiration handler);
//! * [`StateListener`] for the UI and [`init_logging`] for the platform logger.
//!
//! **Threading:** calls that touch the disk or the network block; call them off the main thread.
//! **Times** cross as timestamps (`SystemTime` → `java.time.Instant` / `Date` / `datetime`),
//! **digests** as lowercase hex strings, and every failure as one [`FieldcapError`].

uniffi::setup_scaffolding!();

mod api;
mod error;
mod listener;
mod logging;
mod net;
mod protector;
mod types;

pub use api::{CaptureSession, Fieldcap};
pub use error::{FieldcapError, Result};
pub use listener::{StateListener, SyncPhase, SyncProgress};
pub use logging::{init_logging, stop_logging, LogLevel, LogSink};
pub use net::{EnrollmentInfo, HttpHeader, HttpRequest, HttpResponse, HttpTransport, SyncSummary};
pub use protector::KeyProtector;
pub use types::*;

/// The version of the bindings (the workspace version).
#[uniffi::export]
pub fn fieldcap_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
