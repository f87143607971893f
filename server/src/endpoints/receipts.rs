//! `GET /v1/receipts/{clip_id}`: a device fetches the signed receipt of one of its items again
//! (when the answer to its final upload was lost).

use crate::error::{Error, Result};
use crate::http::auth::authenticate;
use crate::http::body::json_response;
use crate::http::params::check_clip_id;
use crate::http::{blocking, AppStateRef};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use fieldcap_evidence::protocol::SignedDoc;

/// `GET /v1/receipts/{clip_id}` (device-signed; a device sees only its own items).
pub(crate) async fn receipt(State(state): AppStateRef, Path(clip_id): Path<String>, method: Method, uri: Uri, headers: HeaderMap) -> Result<Response> {
    let doc = blocking(move || {
        let device = authenticate(&state, &method, &uri, &headers, b"")?;
        check_clip_id(&clip_id)?;
        let item = state
            .records
            .item(&clip_id)?
            .filter(|i| i.device_id == device.device_id)
            .ok_or_else(|| Error::NotFound("no such item of this device".into()))?;
        match (&item.receipt, &item.receipt_sig) {
            (Some(r), Some(s)) => Ok(SignedDoc::new(r, s)),
            _ => Err(Error::NoReceiptYet("the media has not been received and verified yet".into())),
        }
    })
    .await?;
    json_response(StatusCode::OK, &doc)
}
