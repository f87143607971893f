//! HTTP plumbing shared by every endpoint, apart from the endpoints themselves
//! ([`crate::endpoints`]): device request authentication ([`auth`]), request bodies and JSON
//! answers ([`body`]), path and query parameters ([`params`]), request limits ([`limits`]) and
//! problem+json answers ([`problem`]), the connection loop ([`serve`]: timeouts, connection cap,
//! problem+json for what the HTTP parser refuses), [`detach`] (every request runs to its end
//! though its client hangs up), and [`blocking`] for work that must not run on
//! the async workers.

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod detach;
pub(crate) mod limits;
pub(crate) mod params;
pub(crate) mod problem;
pub(crate) mod serve;
pub(crate) mod service;

use crate::error::{Error, Result};
use crate::state::AppState;
use axum::extract::State;
use std::sync::Arc;

/// The state extractor of every handler.
pub(crate) type AppStateRef = State<Arc<AppState>>;

/// Runs blocking work (records, blobs, hashing, signing) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|_| Error::Internal("a worker task failed".into()))?
}
