//! # fieldcap-package
//!
//! What leaves the system as evidence, and how a recipient checks it: the exported-clip folder
//! ([`clip`]) and the evidence package ([`package`]: the signed index `fieldcap.package/1`,
//! release-profile derived documents, `VERIFY.txt`, and the verifier behind `fieldcap verify`).
//!
//! This crate builds without SQLite and without an HTTP client, so a prosecutor, a defence
//! expert or a court can build the verifier alone, from this crate and `fieldcap-evidence`.
//!
//! A recipient pins the server key by the fingerprint the council office publishes ([`pin`]):
//!
//! ```no_run
//! use fieldcap_package::package::{verify_package_with, TrustAnchors};
//! let pin = fieldcap_package::ServerKeyPin::parse("<the office's 64-hex fingerprint>").expect("a fingerprint");
//! let report = verify_package_with("/media/usb/package".as_ref(), &TrustAnchors { server_key: Some(pin), ..Default::default() });
//! for c in &report.checks {
//!     println!("{} {} [{}] {}", if c.ok { "ok" } else { "FAIL" }, c.name, c.file, c.detail);
//! }
//! assert!(report.all_ok());
//! ```

pub mod clip;
pub mod package;
pub mod pin;

pub use clip::{Check, VerifyReport};
pub use pin::{ServerKeyPin, ServerKeyStatus};
