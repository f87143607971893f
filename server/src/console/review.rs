//! The synchronized multi-angle review of one incident.
//!
//! Every item is placed on one timeline by its **corrected** capture time: the device's clock
//! reading minus the device-minus-server offset the device measured at its last sync
//! (`capture.clock.offset_ms`), so clips from phones whose clocks disagree line up on the
//! server's clock. The page's script (`static/console/review.js`) plays the videos side by side
//! in step: one shared scrubber in milliseconds from the incident's first corrected instant
//! (`data-origin-ms`), and each `<video>` seeks to `(origin + t − its corrected start) / 1000`
//! seconds (`data-start-ms`). Observations are marks on the timeline; the devices' tracks are an
//! SVG map that needs no tile server.

use super::pages::{verdict, verify_item, with_staff};
use super::views::{page, short_time, Nav, Refusal};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// An item on the review's timeline.
pub(crate) struct Angle {
    pub clip_id: String,
    pub device_id: String,
    pub kind: String,
    /// Corrected start and end, Unix ms (server clock).
    pub start_ms: i64,
    pub end_ms: i64,
    /// Position on the timeline bar, per cent.
    pub left_pct: String,
    pub width_pct: String,
    pub colour: &'static str,
    pub offset: String,
    pub started: String,
    pub verdict: String,
    pub text: String,
    pub video: bool,
}

#[derive(Template)]
#[template(path = "console/incident.html")]
struct IncidentPage {
    nav: Nav,
    id: String,
    started: String,
    ended: String,
    origin_ms: i64,
    span_ms: i64,
    angles: Vec<Angle>,
    tags: String,
    map: String,
}

/// The corrected (server-clock) capture window of a manifest, Unix ms.
pub fn corrected_window(m: &fieldcap_evidence::manifest::Manifest) -> crate::Result<(i64, i64)> {
    let s = fieldcap_evidence::time::parse(&m.capture.started_at, "started_at")?.timestamp_millis();
    let e = fieldcap_evidence::time::parse(&m.capture.ended_at, "ended_at")?.timestamp_millis().max(s);
    let off = m.capture.clock.offset_ms.unwrap_or(0);
    Ok((s - off, e - off))
}

fn pct(v: i64, span: i64) -> String {
    format!("{:.3}", v as f64 * 100.0 / span.max(1) as f64)
}

/// `GET /incidents/{id}`.
pub(crate) async fn incident(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let r = with_staff(&console, &headers, move |c, staff| {
        let records = c.app.records.items()?;
        let by_id: std::collections::HashMap<&str, &crate::store::ItemRecord> = records.iter().map(|r| (r.clip_id.as_str(), r)).collect();
        let items: Vec<_> = records.iter().filter_map(crate::incidents::item_of).collect();
        let Some(inc) = crate::incidents::group(&items).into_iter().find(|i| i.id == id) else { return Ok(None) };
        let mut angles = Vec::new();
        // (device id, clip id, fixes) of each item, for the map.
        type Track = (String, String, Vec<(f64, f64)>);
        let mut tracks: Vec<Track> = Vec::new();
        for clip_id in &inc.clip_ids {
            let Some(&item) = by_id.get(clip_id.as_str()) else { continue };
            let m = fieldcap_evidence::manifest::Manifest::parse(&item.manifest)?;
            let (start_ms, end_ms) = corrected_window(&m)?;
            let dev_index = inc.device_ids.iter().position(|d| d == &item.device_id).unwrap_or(0);
            tracks.push((item.device_id.clone(), item.clip_id.clone(), m.track.iter().map(|p| (p.lat, p.lon)).collect()));
            angles.push(Angle {
                clip_id: item.clip_id.clone(),
                device_id: item.device_id.clone(),
                kind: item.kind.clone(),
                start_ms,
                end_ms,
                left_pct: String::new(),
                width_pct: String::new(),
                colour: crate::package::report::device_colour(dev_index),
                offset: match m.capture.clock.offset_ms {
                    Some(o) => format!("{o:+} ms"),
                    None => "not measured".into(),
                },
                started: short_time(&m.capture.started_at),
                verdict: verdict(&verify_item(&c.app, item)),
                text: m.observation.as_ref().map(|o| o.text.clone()).unwrap_or_default(),
                video: item.kind == "video" && item.blob_sha256.is_some(),
            });
        }
        let origin_ms = angles.iter().map(|a| a.start_ms).min().unwrap_or(0);
        let span_ms = (angles.iter().map(|a| a.end_ms).max().unwrap_or(origin_ms) - origin_ms).max(1000);
        for a in &mut angles {
            a.left_pct = pct(a.start_ms - origin_ms, span_ms);
            a.width_pct = pct((a.end_ms - a.start_ms).max(span_ms / 200), span_ms);
        }
        // One path per device: its items' fixes in capture order (the items are in that order).
        let per_device: Vec<(String, Vec<(f64, f64)>)> = inc
            .device_ids
            .iter()
            .map(|d| (d.clone(), tracks.iter().filter(|t| &t.0 == d).flat_map(|t| t.2.iter().copied()).collect()))
            .collect();
        let map_tracks: Vec<crate::package::report::MapTrack<'_>> = per_device
            .iter()
            .enumerate()
            .map(|(i, (d, p))| crate::package::report::MapTrack { device_id: d, label: d, colour: crate::package::report::device_colour(i), points: p })
            .collect();
        Ok(Some(IncidentPage {
            nav: staff.nav(),
            started: short_time(&inc.started_at),
            ended: short_time(&inc.ended_at),
            tags: inc.tags.join(", "),
            map: crate::package::report::track_map(&map_tracks, Some("map")),
            id: inc.id,
            origin_ms,
            span_ms,
            angles,
        }))
    })
    .await;
    match r {
        Ok((_, Some(p))) => page(&p).unwrap_or_else(|e| e.into_response()),
        Ok((_, None)) => Refusal::not_found("no incident with that id (incidents are regrouped as items arrive: go back to the list)").into_response(),
        Err(resp) => resp,
    }
}

use super::Console;
