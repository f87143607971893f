//! `GET /media/{clip_id}`: an item's stored original, with HTTP range requests (RFC 9110 §14)
//! so a browser seeks in a long video without downloading it whole.
//!
//! Every access is custody: the first request for an item in a session records `media_viewed`
//! (a playing video makes many range requests; one event per session and item says who looked),
//! and a download (`?download=1`, custodians and supervisors) records `media_downloaded` every
//! time. The event is on record before a byte is sent (and only once the original is open): an
//! access that cannot be recorded is refused.

use super::auth::{session, Action};
use super::views::Refusal;
use super::Console;
use crate::http::blocking;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io::Read;
use std::sync::Arc;

/// Most (session, item) pairs remembered for recording one `media_viewed` per session and item.
const MAX_VIEWED_ENTRIES: usize = 100_000;

/// A single byte range resolved against a length: `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// What a `Range` header asks of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No range, several ranges or a range unit other than bytes: the whole (200).
    Whole,
    /// One satisfiable range (206).
    Part(ByteRange),
    /// A range that starts past the end (416).
    Unsatisfiable,
}

/// Parses a `Range` header (one `bytes=` range; several are answered whole, as RFC 9110
/// allows) against a length.
pub fn parse_range(value: Option<&str>, len: u64) -> RangeAsk {
    let Some(v) = value else { return RangeAsk::Whole };
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return RangeAsk::Whole };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeAsk::Whole };
    let num = |s: &str| if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            None => RangeAsk::Whole,
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if len == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part(ByteRange { start: len.saturating_sub(n), end: len - 1 }),
        },
        (start, end) => {
            let Some(s) = num(start) else { return RangeAsk::Whole };
            if s >= len {
                return RangeAsk::Unsatisfiable;
            }
            let e = if end.is_empty() {
                len - 1
            } else {
                match num(end) {
                    Some(e) if e >= s => e.min(len - 1),
                    _ => return RangeAsk::Whole,
                }
            };
            RangeAsk::Part(ByteRange { start: s, end: e })
        }
    }
}

/// `?download=1`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct MediaQuery {
    #[serde(default)]
    download: Option<String>,
}

/// `GET /media/{clip_id}`.
pub(crate) async fn media(State(console): State<Arc<Console>>, headers: HeaderMap, Path(clip_id): Path<String>, Query(q): Query<MediaQuery>) -> Response {
    let staff = match session(&console, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let download = q.download.as_deref().is_some_and(|v| v == "1");
    if download {
        if let Err(r) = staff.require(Action::Custody) {
            return r.into_response();
        }
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(String::from);
    let c = console.clone();
    let opened = blocking(move || {
        let Some(item) = c.app.records.item(&clip_id)? else { return Err(crate::Error::NotFound("no item with that id".into())) };
        let (Some(blob), Some(media)) = (item.blob_sha256.clone(), item.media.clone()) else {
            return Err(crate::Error::NotFound("this item has no stored media (an observation, or its upload is not complete)".into()));
        };
        let len = media.bytes;
        let ask = parse_range(range.as_deref(), len);
        let (start, count) = match ask {
            RangeAsk::Whole => (0, len),
            RangeAsk::Part(r) => (r.start, r.end - r.start + 1),
            // No byte goes out: nothing to record.
            RangeAsk::Unsatisfiable => return Ok((item, media, ask, None)),
        };
        // Opened before the access is recorded, so an original that cannot be read leaves no
        // access on record that did not happen.
        let reader = c.app.blobs.open_at(&blob, start)?;
        if download {
            super::audit::record(&c.app, &staff, "media_downloaded", Some(&item.clip_id), serde_json::json!({ "sha256": media.sha256 }))?;
        } else {
            let first = {
                let mut viewed = c.viewed.lock().map_err(|_| crate::Error::Internal("viewed table poisoned".into()))?;
                // Bounded: past the limit it starts again (a live session then records one more
                // `media_viewed` for an item: a repeated view on record, never a missing one).
                if viewed.len() >= MAX_VIEWED_ENTRIES {
                    viewed.clear();
                }
                viewed.insert((staff.session.clone(), item.clip_id.clone()))
            };
            if first {
                let recorded = super::audit::record(&c.app, &staff, "media_viewed", Some(&item.clip_id), serde_json::json!({}));
                if let Err(e) = recorded {
                    if let Ok(mut v) = c.viewed.lock() {
                        v.remove(&(staff.session.clone(), item.clip_id.clone()));
                    }
                    return Err(e);
                }
            }
        }
        Ok((item, media, ask, Some((reader.take(count), count))))
    })
    .await;
    let (item, media, ask, body) = match opened {
        Ok(v) => v,
        Err(e) => return Refusal::from(e).into_response(),
    };
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&media.mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if download {
        let name = format!("{}.{}", item.clip_id, fieldcap_evidence::manifest::extension_for_mime(&media.mime));
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    let Some((reader, count)) = body else {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", media.bytes)) {
            h.insert(header::CONTENT_RANGE, v);
        }
        return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
    };
    let status = match ask {
        RangeAsk::Part(r) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end, media.bytes)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            StatusCode::PARTIAL_CONTENT
        }
        _ => StatusCode::OK,
    };
    if let Ok(v) = HeaderValue::from_str(&count.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    (status, h, Body::from_stream(stream_reader(reader))).into_response()
}

/// Streams a blocking reader in 256 KiB chunks, read on the blocking pool, at most four
/// chunks ahead of the client.
pub(crate) fn stream_reader(mut reader: impl Read + Send + 'static) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; 256 * 1024];
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(buf)).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |v: &str| parse_range(Some(v), 1000);
        assert_eq!(parse_range(None, 1000), RangeAsk::Whole);
        assert_eq!(p("bytes=100-199"), RangeAsk::Part(ByteRange { start: 100, end: 199 }));
        assert_eq!(p("bytes=100-"), RangeAsk::Part(ByteRange { start: 100, end: 999 }));
        assert_eq!(p("bytes=900-5000"), RangeAsk::Part(ByteRange { start: 900, end: 999 }));
        assert_eq!(p("bytes=-100"), RangeAsk::Part(ByteRange { start: 900, end: 999 }));
        assert_eq!(p("bytes=-5000"), RangeAsk::Part(ByteRange { start: 0, end: 999 }));
        assert_eq!(p("bytes=1000-"), RangeAsk::Unsatisfiable);
        assert_eq!(p("bytes=-0"), RangeAsk::Unsatisfiable);
        assert_eq!(p("bytes=5-1"), RangeAsk::Whole);
        assert_eq!(p("bytes=0-1,5-6"), RangeAsk::Whole);
        assert_eq!(p("items=0-1"), RangeAsk::Whole);
        assert_eq!(p("bytes=+1-2"), RangeAsk::Whole);
        assert_eq!(p("bytes=-"), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-"), 0), RangeAsk::Unsatisfiable);
    }
}
