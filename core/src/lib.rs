//! # fieldcap-core
//!
//! The device side of Fieldcap: it turns what a phone records into sealed, signed, queued
//! evidence that a court expert can verify with stock tools, and that survives crashes, seized
//! phones and bad input without losing anything.
//!
//! * [`store::Store`] — the SQLite-backed evidence store with crash recovery; sealing
//!   ([`seal`]), listing and export ([`items`]), the device custody log.
//! * [`vault`] — sealed storage: items encrypted at rest to their own key, wrapped to the
//!   device vault and the council's escrow key; locking to the council.
//! * [`live`] — live capture: a fragmented MP4 sealed piece by piece while it is filmed, each
//!   piece signed and chained, sent as soon as it is sealed.
//! * [`sync`] — one resumable sync pass to the council's intake server (enrolment included);
//!   [`sync_policy`] — when the phones run one, and what they do after it (the rule both shells
//!   read through the bindings).
//!
//! The formats themselves (keys, hashing, manifests, custody events, the transparency log,
//! wire types, tracks) live in `fieldcap-evidence` and are re-exported here ([`identity`],
//! [`hashing`], [`manifest`], …); exported clips and their verifier in `fieldcap-package`
//! ([`clip`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use fieldcap_core::{Store, identity::FileKeyProtector, seal::CaptureRequest};
//! let store = Store::open("/tmp/fieldcap-home".as_ref(), Arc::new(FileKeyProtector))?;
//! let item = store.seal_file("/tmp/clip.mp4".as_ref(), CaptureRequest::default(), &mut |_, _| {})?;
//! println!("sealed {} as seq {}", item.clip_id, item.seq);
//! # Ok::<(), fieldcap_core::Error>(())
//! ```

pub mod error;
pub mod items;
pub mod live;
pub mod seal;
pub mod store;
pub mod sync;
pub mod sync_policy;
pub mod vault;

pub use store::schema;

// The evidence formats the device writes are shared with the server and the verifier; they are
// re-exported so that the bindings (which depend on this crate alone) and the device code reach
// them under one name.
pub use fieldcap_evidence::{canonical, custody, escrow, fsutil, hashing, identity, manifest, protocol, time, tlog, track};
pub use fieldcap_evidence as evidence;
/// The exported-clip format (and its verifier), shared with recipients.
pub use fieldcap_package::clip;

pub use error::{Error, Result};
pub use store::Store;
