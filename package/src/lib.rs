//! # fieldcap-package
//!
//! What leaves the system as evidence, and how a recipient checks it: the exported-clip folder
//! ([`clip`]) and the evidence package ([`package`]: the signed index `fieldcap.package/1`,
//! release-profile derived documents, `VERIFY.txt`, and the verifier behind `fieldcap verify`).
//!
//! This crate builds without SQLite and without an HTTP client, so a prosecutor, a defence
//! expert or a court can build the verifier alone, from this crate and `fieldcap-evidence`.
//!
//! ```no_run
//! let report = fieldcap_package::package::verify_package("/media/usb/package".as_ref());
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
