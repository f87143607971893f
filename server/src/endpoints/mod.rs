//! The HTTP API's endpoints, one file per resource, and the route table ([`router`]).
//!
//! | route | file |
//! |---|---|
//! | `GET /v1/time`, `POST /v1/enroll` | [`enrol`] |
//! | `POST /v1/manifests`, `POST /v1/manifests/sealed`, `GET /v1/escrow-key` | [`manifests`] |
//! | `/v1/uploads`, `/v1/uploads/{capability}` (tus 1.0) | [`tus`] |
//! | `GET /v1/receipts/{clip_id}` | [`receipts`] |
//! | `GET /v1/log/checkpoint`, `/v1/log/consistency`, `/v1/log/inclusion` | [`log`] |
//! | `POST /v1/custody` | [`custody`] |
//! | `PUT /v1/live/{clip_id}/{index}` (live-capture fragments) | [`live`] |
//! | `GET /healthz`, `/readyz`, `/metrics` | [`crate::metrics`] |
//!
//! What every endpoint shares (authentication, bodies, limits, problem+json) is in
//! [`crate::http`].

pub(crate) mod custody;
pub(crate) mod enrol;
pub(crate) mod live;
pub(crate) mod log;
pub(crate) mod manifests;
pub(crate) mod receipts;
pub mod tus;

use crate::http::{detach, limits, problem};
use crate::state::AppState;
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::Arc;

/// Every route, behind the request limits and the problem+json safety net, each request run
/// to its end though its client hangs up ([`detach`]).
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let tus_routes = Router::new()
        .route("/v1/uploads", post(tus::post_endpoint).options(tus::options))
        .route(
            "/v1/uploads/{cap}",
            axum::routing::head(tus::head).patch(tus::patch).delete(tus::delete).post(tus::post_at).options(tus::options),
        )
        .layer(axum::middleware::from_fn(tus::tus_headers));
    Router::new()
        .route("/v1/time", get(enrol::time))
        .route("/v1/enroll", post(enrol::enroll))
        .route("/v1/manifests", post(manifests::manifests))
        .route("/v1/manifests/sealed", post(manifests::sealed_manifests))
        .route("/v1/escrow-key", get(manifests::escrow_key))
        .route("/v1/custody", post(custody::post_custody))
        .route("/v1/live/{clip_id}/{index}", put(live::put_fragment))
        .route("/v1/receipts/{clip_id}", get(receipts::receipt))
        .route("/v1/log/checkpoint", get(log::checkpoint))
        .route("/v1/log/consistency", get(log::consistency))
        .route("/v1/log/inclusion", get(log::inclusion))
        .route("/healthz", get(crate::metrics::healthz))
        .route("/readyz", get(crate::metrics::readyz))
        .route("/metrics", get(crate::metrics::metrics))
        .merge(tus_routes)
        .fallback(problem::not_found)
        .layer(axum::middleware::from_fn(problem::problem_safety_net))
        .layer(axum::middleware::from_fn(limits::limits))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        // Outermost, so a client's hang-up cuts none of the layers above short either.
        .layer(axum::middleware::from_fn(detach::run_to_completion))
        .with_state(state)
}
