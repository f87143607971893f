//! # fieldcap-core
//!
//! The device side of Fieldcap: it turns what a phone records into sealed, signed, queued
//! evidence that a court expert can verify with stock tools, and that survives crashes, seized
//! phones and bad input without losing anything.
//!
//! * [`identity`] — the device's Ed25519 key behind a [`identity::KeyProtector`].
//! * [`hashing`] — one read, SHA-256 and BLAKE3 in parallel, bounded memory.
//! * [`manifest`] — the signed `fieldcap.manifest/1` document.
//! * [`store::Store`] — the SQLite-backed evidence store with crash recovery; sealing
//!   ([`seal`]), listing and export ([`items`]), the custody log ([`custody`]).
//! * [`sync`] — one resumable sync pass; [`sync_policy`] — when the phones run one, and what
//!   they do after it (the rule both shells read through the bindings).
//! * [`track`] — GPS tracks from GPX and GeoJSON.
//! * [`verify`] — verification of exported clips and device chains.
//!
//! ```no_run
//! use std::sync::Arc;
//! use fieldcap_core::{Store, identity::FileKeyProtector, seal::CaptureRequest};
//! let store = Store::open("/tmp/fieldcap-home".as_ref(), Arc::new(FileKeyProtector))?;
//! let item = store.seal_file("/tmp/clip.mp4".as_ref(), CaptureRequest::default(), &mut |_, _| {})?;
//! println!("sealed {} as seq {}", item.clip_id, item.seq);
//! # Ok::<(), fieldcap_core::Error>(())
//! ```

pub mod canonical;
pub mod custody;
pub mod error;
pub mod fsutil;
pub mod hashing;
pub mod identity;
pub mod items;
pub mod log;
pub mod manifest;
pub mod media_scrub;
pub mod package_verify;
pub mod protocol;
mod recovery;
pub mod schema;
pub mod seal;
pub mod store;
pub mod sync;
pub mod sync_policy;
pub mod time;
pub mod track;
pub mod verify;

pub use error::{Error, Result};
pub use store::Store;
