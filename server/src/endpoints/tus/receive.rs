//! Receiving a PATCH (or creation-with-upload) body into the item's partial upload: buffered
//! writes, an fsync (and only then a new offset on record) every [`SYNC_EVERY`] bytes and at the
//! end, and the bytes already received kept when the connection breaks or stalls.

use super::{SYNC_EVERY, WRITE_BUF};
use crate::error::{Error, Result};
use crate::http::blocking;
use crate::state::AppState;
use crate::store::{PartialWriter, UploadRecord};
use axum::body::Body;
use futures_util::StreamExt;
use std::sync::Arc;

type Partial = Box<dyn PartialWriter>;

async fn write_buf(partial: Partial, buf: Vec<u8>) -> Result<(Partial, Vec<u8>)> {
    blocking(move || {
        let mut partial = partial;
        let mut buf = buf;
        partial.write_all(&buf)?;
        buf.clear();
        Ok((partial, buf))
    })
    .await
}

async fn sync_partial(partial: Partial) -> Result<Partial> {
    blocking(move || {
        let mut partial = partial;
        partial.sync()?;
        Ok(partial)
    })
    .await
}

async fn set_offset(state: &Arc<AppState>, clip_id: &str, offset: u64) -> Result<()> {
    let st = state.clone();
    let c = clip_id.to_string();
    blocking(move || st.records.set_upload_offset(&c, offset)).await
}

/// Appends the body to the partial upload from the upload's offset; returns the new fsynced
/// offset. On a cut connection the bytes received are kept (fsynced) before the error returns.
pub(super) async fn receive(state: &Arc<AppState>, up: &UploadRecord, body: Body) -> Result<u64> {
    let start = up.offset;
    let (st, clip_id) = (state.clone(), up.clip_id.clone());
    let mut file = blocking(move || st.blobs.open_partial(&clip_id, start)).await?;
    let _counted = state.metrics.upload_started();
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUF);
    let mut written = start;
    let mut synced = start;
    let mut stream = body.into_data_stream();
    let mut failure: Option<Error> = None;
    let mut overflow = false;
    loop {
        match tokio::time::timeout(state.cfg.upload_idle_timeout, stream.next()).await {
            Err(_) => {
                failure = Some(Error::RequestTimeout(format!(
                    "the upload body sent nothing for {} s; the bytes before are kept, send HEAD and continue",
                    state.cfg.upload_idle_timeout.as_secs_f64()
                )));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                failure = Some(Error::BadRequest("the upload body was cut off".into()));
                break;
            }
            Ok(Some(Ok(chunk))) => {
                if written + buf.len() as u64 + chunk.len() as u64 > up.length {
                    overflow = true;
                    break;
                }
                state.metrics.add_received_bytes(chunk.len() as u64);
                buf.extend_from_slice(&chunk);
                if buf.len() >= WRITE_BUF {
                    let n = buf.len() as u64;
                    (file, buf) = write_buf(file, buf).await?;
                    written += n;
                    if written - synced >= SYNC_EVERY {
                        file = sync_partial(file).await?;
                        set_offset(state, &up.clip_id, written).await?;
                        synced = written;
                    }
                }
            }
        }
    }
    if overflow {
        drop(buf);
        blocking(move || {
            let mut file = file;
            file.truncate(start)
        })
        .await?;
        set_offset(state, &up.clip_id, start).await?;
        return Err(Error::UploadLength(format!("the body goes past the upload's length {}", up.length)));
    }
    if !buf.is_empty() {
        let n = buf.len() as u64;
        (file, buf) = write_buf(file, buf).await?;
        written += n;
    }
    drop(buf);
    if written != synced {
        sync_partial(file).await?;
        set_offset(state, &up.clip_id, written).await?;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(written),
    }
}
