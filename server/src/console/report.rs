//! The report for the Mayor's Office of Immigrant Affairs: per incident, the date, the time
//! window, the area (rounded to 0.01°, about a kilometre), the agencies observed (from witness
//! observations' `agency` field), and counts of items (by kind) and devices — and no personal
//! data: no names, badge numbers, plates, notes, device ids or exact places. As CSV (RFC 4180)
//! and JSON.

use super::pages::with_staff;
use super::views::coarse_area;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// One incident of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MoiaIncident {
    /// Incident id (`inc-` and the first item's id: no personal data).
    pub incident_id: String,
    /// Date (UTC) of the first item.
    pub date: String,
    /// First capture instant (RFC 3339, UTC).
    pub from: String,
    /// Last capture instant.
    pub to: String,
    /// Area: the mean of the fixes rounded to 0.01° (`lat, lon`), or `no location`.
    pub area: String,
    /// Agencies named in witness observations, sorted, distinct.
    pub agencies: Vec<String>,
    /// Items.
    pub items: usize,
    /// Videos, audio recordings, photos, observations.
    pub videos: usize,
    /// Audio recordings.
    pub audio: usize,
    /// Photos.
    pub photos: usize,
    /// Witness observations.
    pub observations: usize,
    /// Devices that recorded.
    pub devices: usize,
}

/// The report over a set of item records.
pub fn moia_report(records: &[crate::store::ItemRecord]) -> Vec<MoiaIncident> {
    let items: Vec<_> = records.iter().filter_map(crate::incidents::item_of).collect();
    let by_id: std::collections::HashMap<&str, &crate::store::ItemRecord> = records.iter().map(|r| (r.clip_id.as_str(), r)).collect();
    let mut out: Vec<MoiaIncident> = crate::incidents::group(&items)
        .into_iter()
        .map(|inc| {
            let mut agencies = BTreeSet::new();
            for id in &inc.clip_ids {
                if let Some(m) = by_id.get(id.as_str()).and_then(|r| fieldcap_evidence::manifest::Manifest::parse(&r.manifest).ok()) {
                    if let Some(a) = m.observation.and_then(|o| o.agency) {
                        let a = a.trim().to_string();
                        if !a.is_empty() {
                            agencies.insert(a);
                        }
                    }
                }
            }
            let k = |kind: &str| inc.kinds.get(kind).copied().unwrap_or(0);
            MoiaIncident {
                date: inc.started_at.get(..10).unwrap_or("").to_string(),
                from: inc.started_at.clone(),
                to: inc.ended_at.clone(),
                area: coarse_area(inc.centre),
                agencies: agencies.into_iter().collect(),
                items: inc.clip_ids.len(),
                videos: k("video"),
                audio: k("audio"),
                photos: k("photo"),
                observations: k("observation"),
                devices: inc.device_ids.len(),
                incident_id: inc.id,
            }
        })
        .collect();
    out.sort_by(|a, b| a.from.cmp(&b.from));
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The report as CSV, with a header line.
pub fn moia_csv_text(rows: &[MoiaIncident]) -> String {
    let mut s = String::from("incident_id,date,from,to,area,agencies,items,videos,audio,photos,observations,devices\r\n");
    for r in rows {
        let fields = [
            r.incident_id.clone(),
            r.date.clone(),
            r.from.clone(),
            r.to.clone(),
            r.area.clone(),
            r.agencies.join("; "),
            r.items.to_string(),
            r.videos.to_string(),
            r.audio.to_string(),
            r.photos.to_string(),
            r.observations.to_string(),
            r.devices.to_string(),
        ];
        s.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        s.push_str("\r\n");
    }
    s
}

async fn rows(console: &Arc<super::Console>, headers: &HeaderMap) -> Result<Vec<MoiaIncident>, Response> {
    with_staff(console, headers, |c, _| Ok(moia_report(&c.app.records.items()?))).await.map(|(_, r)| r)
}

/// `GET /reports/moia.csv`.
pub(crate) async fn moia_csv(State(console): State<Arc<super::Console>>, headers: HeaderMap) -> Response {
    match rows(&console, &headers).await {
        Ok(r) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"moia-report.csv\"")], moia_csv_text(&r)).into_response(),
        Err(resp) => resp,
    }
}

/// `GET /reports/moia.json`.
pub(crate) async fn moia_json(State(console): State<Arc<super::Console>>, headers: HeaderMap) -> Response {
    match rows(&console, &headers).await {
        Ok(r) => axum::Json(serde_json::json!({ "type": "fieldcap.moia-report/1", "incidents": r })).into_response(),
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("ICE"), "ICE");
        assert_eq!(csv_field("33.74, -118.28"), "\"33.74, -118.28\"");
        assert_eq!(csv_field("a \"b\""), "\"a \"\"b\"\"\"");
        let row = MoiaIncident {
            incident_id: "inc-x".into(),
            date: "2026-11-30".into(),
            from: "2026-11-30T10:00:00Z".into(),
            to: "2026-11-30T10:05:00Z".into(),
            area: "33.74, -118.28".into(),
            agencies: vec!["CBP".into(), "ICE".into()],
            items: 3,
            videos: 2,
            audio: 0,
            photos: 0,
            observations: 1,
            devices: 2,
        };
        let text = moia_csv_text(&[row]);
        assert_eq!(text.lines().nth(1), Some("inc-x,2026-11-30,2026-11-30T10:00:00Z,2026-11-30T10:05:00Z,\"33.74, -118.28\",CBP; ICE,3,2,0,0,1,2"));
    }
}
