//! Shared test helpers for the Fieldcap workspace, written once.
//!
//! | module | what it gives a test | feature |
//! | --- | --- | --- |
//! | [`bytes`] | seeded deterministic bytes and numbers | — |
//! | [`media`] | ISO-BMFF boxes, a phone's MP4 (`©xyz`, QuickTime keys), a JPEG with EXIF GPS | — |
//! | [`track`] | track points, GPX and GeoJSON files | — |
//! | [`files`] | every file under a folder (names, digests), copying a folder | — |
//! | [`proxy`] | a TCP fault proxy (drop, stall, 503, truncate, pace) | — |
//! | [`tools`] | the `fieldcap` binary, stock tools (openssl, sha256sum, b3sum), VERIFY.txt | — |
//! | `device` | a device store in a temporary folder: seal, enrol, sync | `device` |
//! | `server` | the one test server, in process or as `fieldcap serve` | `server` |
//! | `api` | a raw API client: signed requests, tus, problem+json, hand-signed manifests | `server` |
//! | `s3` | a throwaway S3 object storage (moto) with an Object Lock bucket | `server` |
//! | `package` | the package fixture: devices synced to a server, packages exported | `package` |
//! | `forger` | a package re-signed completely with a fresh server key (clips dropped, times moved) | `forger` |
//! | `postgres` | a fresh PostgreSQL database per test (skipped without one), cluster restarts | `postgres` |
//!
//! A crate's tests name the features they use:
//!
//! ```toml
//! [dev-dependencies]
//! fieldcap-testkit = { workspace = true, features = ["device", "server"] }
//! ```
//!
//! The CLI crate's own tests get cargo's `fieldcap` binary with [`fieldcap_cli!`]; other tests
//! build it once with [`tools::Cli::built`].
//!
//! It is a dev-dependency only. A crate that testkit depends on (evidence, core, server,
//! package, and media through the server) may use the feature-free modules from its inline
//! unit tests (they deal in bytes and strings), but not the device or server helpers: a unit
//! test build holds a second copy of that crate, and its types would not match.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a helper is a failed test

pub mod bytes;
pub mod files;
pub mod media;
pub mod proxy;
pub mod tools;
pub mod track;

#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "device")]
pub mod device;
#[cfg(feature = "forger")]
pub mod forger;
#[cfg(feature = "package")]
pub mod package;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "server")]
pub mod s3;
#[cfg(feature = "server")]
pub mod scaled;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod witness;
