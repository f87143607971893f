//! The transparency log's public endpoints: the newest signed checkpoint (with the witnesses'
//! cosignatures it has, see [`crate::witnessing`]), and consistency and
//! inclusion proofs (RFC 6962) from the server's log cache ([`crate::log::LogTree`]).

use crate::http::body::json_response;
use crate::http::params::query_u64;
use crate::http::{blocking, AppStateRef};
use crate::error::Result;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fieldcap_evidence::protocol::ProofResponse;

/// `GET /v1/log/checkpoint`: the newest signed checkpoint (text/plain).
pub(crate) async fn checkpoint(State(state): AppStateRef) -> Result<Response> {
    let note = blocking(move || {
        let size = state.log()?.size();
        // The stored note carries the witnesses' cosignatures.
        match state.records.latest_checkpoint()? {
            Some((s, note)) if s == size => Ok(note),
            _ => state.checkpoint_note(size),
        }
    })
    .await?;
    let mut r = note.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `GET /v1/log/consistency?from=&to=`.
pub(crate) async fn consistency(State(state): AppStateRef, RawQuery(q): RawQuery) -> Result<Response> {
    let from = query_u64(&q, "from")?;
    let to = query_u64(&q, "to")?;
    let proof = blocking(move || Ok(state.log()?.consistency(from, to)?)).await?;
    json_response(StatusCode::OK, &ProofResponse { proof: fieldcap_evidence::tlog::proof_to_hex(&proof) })
}

/// `GET /v1/log/inclusion?index=&tree_size=`.
pub(crate) async fn inclusion(State(state): AppStateRef, RawQuery(q): RawQuery) -> Result<Response> {
    let index = query_u64(&q, "index")?;
    let size = query_u64(&q, "tree_size")?;
    let proof = blocking(move || Ok(state.log()?.inclusion(index, size)?)).await?;
    json_response(StatusCode::OK, &ProofResponse { proof: fieldcap_evidence::tlog::proof_to_hex(&proof) })
}
