//! Grouping items into incidents.
//!
//! Two items are *linked* when
//! 1. their capture windows overlap or lie within [`MAX_GAP_MINUTES`] (30) minutes of each other,
//!    **and**
//! 2. their tracks come within [`MAX_DISTANCE_M`] (500 m) of each other (smallest great-circle
//!    distance between any two fixes, haversine on a 6 371 km sphere) — or, when either item has
//!    no location at all, they come from the **same device** (a phone filming on and off in one
//!    place; items without location from different devices are never joined, since nothing says
//!    they were at the same scene).
//!
//! An incident is a connected group of linked items (union–find), so a long operation filmed by
//! several people in overlapping windows becomes one incident. Its id is `inc-` followed by the
//! clip id of its earliest item (by capture start, then clip id), so it stays stable as later
//! items join. Tracks longer than 200 fixes are thinned evenly for the distance test.
//!
//! ```
//! use fieldcap_server::incidents::{group, IncidentItem};
//! let a = IncidentItem { clip_id: "a".into(), device_id: "d1".into(), kind: "video".into(),
//!     started_ms: 0, ended_ms: 60_000, points: vec![(33.7406, -118.2760)], received: true,
//!     tags: vec![] };
//! let mut b = a.clone();
//! b.clip_id = "b".into(); b.device_id = "d2".into();
//! b.started_ms = 20 * 60_000; b.ended_ms = 21 * 60_000; b.points = vec![(33.7430, -118.2760)];
//! let incidents = group(&[a, b]);
//! assert_eq!(incidents.len(), 1);
//! assert_eq!(incidents[0].clip_ids, vec!["a", "b"]);
//! ```

use serde::Serialize;

/// Largest gap between two capture windows of one incident, minutes.
pub const MAX_GAP_MINUTES: i64 = 30;
/// Largest distance between two tracks of one incident, metres.
pub const MAX_DISTANCE_M: f64 = 500.0;
const MAX_POINTS: usize = 200;
const EARTH_RADIUS_M: f64 = 6_371_000.0;

/// What grouping needs to know about one item.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentItem {
    /// Item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Item kind.
    pub kind: String,
    /// Capture start, Unix ms.
    pub started_ms: i64,
    /// Capture end, Unix ms.
    pub ended_ms: i64,
    /// Track fixes (lat, lon), degrees.
    pub points: Vec<(f64, f64)>,
    /// Whether the server holds a receipt for it.
    pub received: bool,
    /// Tags.
    pub tags: Vec<String>,
}

/// A group of items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// `inc-<clip id of the earliest item>`.
    pub id: String,
    /// Earliest capture start (RFC 3339).
    pub started_at: String,
    /// Latest capture end (RFC 3339).
    pub ended_at: String,
    /// Items, by capture start.
    pub clip_ids: Vec<String>,
    /// Devices that contributed, sorted.
    pub device_ids: Vec<String>,
    /// Number of items per kind.
    pub kinds: std::collections::BTreeMap<String, usize>,
    /// Items with a receipt.
    pub received: usize,
    /// Union of the items' tags, sorted.
    pub tags: Vec<String>,
    /// Mean of all fixes (lat, lon), if any item had a location.
    pub centre: Option<(f64, f64)>,
}

/// Great-circle distance in metres (haversine).
pub fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let dlat = la2 - la1;
    let dlon = lo2 - lo1;
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let step = points.len() as f64 / MAX_POINTS as f64;
    (0..MAX_POINTS).map(|i| points[((i as f64) * step) as usize]).chain(points.last().copied()).collect()
}

fn near(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
    a.iter().any(|p| b.iter().any(|q| haversine_m(*p, *q) <= MAX_DISTANCE_M))
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Groups items into incidents (sorted by start).
pub fn group(items: &[IncidentItem]) -> Vec<Incident> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[a].started_ms.cmp(&items[b].started_ms).then_with(|| items[a].clip_id.cmp(&items[b].clip_id)));
    let thinned: Vec<Vec<(f64, f64)>> = items.iter().map(|i| thin(&i.points)).collect();
    let gap = MAX_GAP_MINUTES * 60_000;
    let mut parent: Vec<usize> = (0..items.len()).collect();
    for (oi, &i) in order.iter().enumerate() {
        for &j in &order[oi + 1..] {
            if items[j].started_ms > items[i].ended_ms.saturating_add(gap) {
                break;
            }
            let (a, b) = (&items[i], &items[j]);
            let linked = if thinned[i].is_empty() || thinned[j].is_empty() {
                a.device_id == b.device_id
            } else {
                near(&thinned[i], &thinned[j])
            };
            if linked {
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                if ri != rj {
                    parent[rj] = ri;
                }
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
    for &i in &order {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let fmt = |ms: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map(fieldcap_evidence::time::format).unwrap_or_default()
    };
    let mut out: Vec<Incident> = groups
        .into_values()
        .map(|members| {
            let first = &items[members[0]];
            let mut devices: Vec<String> = members.iter().map(|&i| items[i].device_id.clone()).collect();
            devices.sort();
            devices.dedup();
            let mut tags: Vec<String> = members.iter().flat_map(|&i| items[i].tags.clone()).collect();
            tags.sort();
            tags.dedup();
            let mut kinds = std::collections::BTreeMap::new();
            for &i in &members {
                *kinds.entry(items[i].kind.clone()).or_insert(0) += 1;
            }
            let pts: Vec<(f64, f64)> = members.iter().flat_map(|&i| items[i].points.iter().copied()).collect();
            let centre = (!pts.is_empty()).then(|| {
                let n = pts.len() as f64;
                (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n)
            });
            Incident {
                id: format!("inc-{}", first.clip_id),
                started_at: fmt(members.iter().map(|&i| items[i].started_ms).min().unwrap_or(0)),
                ended_at: fmt(members.iter().map(|&i| items[i].ended_ms).max().unwrap_or(0)),
                clip_ids: members.iter().map(|&i| items[i].clip_id.clone()).collect(),
                device_ids: devices,
                kinds,
                received: members.iter().filter(|&&i| items[i].received).count(),
                tags,
                centre,
            }
        })
        .collect();
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.id.cmp(&b.id)));
    out
}

/// The grouping input of a stored item (from its exact manifest bytes).
pub fn item_of(rec: &crate::store::ItemRecord) -> Option<IncidentItem> {
    let m = fieldcap_evidence::manifest::Manifest::parse(&rec.manifest).ok()?;
    let s = fieldcap_evidence::time::parse(&m.capture.started_at, "started_at").ok()?.timestamp_millis();
    let e = fieldcap_evidence::time::parse(&m.capture.ended_at, "ended_at").ok()?.timestamp_millis();
    Some(IncidentItem {
        clip_id: rec.clip_id.clone(),
        device_id: rec.device_id.clone(),
        kind: rec.kind.clone(),
        started_ms: s,
        ended_ms: e.max(s),
        points: m.track.iter().map(|p| (p.lat, p.lon)).collect(),
        received: rec.state == "received",
        tags: m.tags.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(id: &str, dev: &str, start_min: i64, end_min: i64, pts: Vec<(f64, f64)>) -> IncidentItem {
        IncidentItem {
            clip_id: id.into(),
            device_id: dev.into(),
            kind: "video".into(),
            started_ms: start_min * 60_000,
            ended_ms: end_min * 60_000,
            points: pts,
            received: false,
            tags: vec![],
        }
    }

    #[test]
    fn haversine_is_about_right() {
        // One thousandth of a degree of latitude is about 111 m.
        let d = haversine_m((33.74, -118.27), (33.741, -118.27));
        assert!((d - 111.2).abs() < 1.0, "{d}");
    }

    #[test]
    fn time_and_place_rules() {
        let here = (33.7406, -118.2760);
        let near = (33.7440, -118.2760); // ~380 m
        let far = (33.7600, -118.2760); // ~2.2 km
        let items = vec![
            item("a", "d1", 0, 10, vec![here]),
            item("b", "d2", 35, 40, vec![near]), // 25 min after a ends, 380 m: joins
            item("c", "d3", 5, 6, vec![far]),    // same time, too far
            item("d", "d4", 100, 110, vec![here]), // too late
            item("e", "d1", 12, 13, vec![]),     // no track, same device as a: joins
            item("f", "d5", 12, 13, vec![]),     // no track, other device: alone
        ];
        let g = group(&items);
        let sets: Vec<Vec<String>> = g.iter().map(|i| i.clip_ids.clone()).collect();
        assert!(sets.contains(&vec!["a".to_string(), "e".into(), "b".into()]), "{sets:?}");
        assert!(sets.contains(&vec!["c".to_string()]));
        assert!(sets.contains(&vec!["d".to_string()]));
        assert!(sets.contains(&vec!["f".to_string()]));
        let inc = g.iter().find(|i| i.clip_ids.len() == 3).unwrap();
        assert_eq!(inc.id, "inc-a");
        assert_eq!(inc.device_ids, vec!["d1", "d2"]);
    }

    #[test]
    fn chains_join_transitively() {
        let items: Vec<IncidentItem> =
            (0..5).map(|i| item(&format!("x{i}"), &format!("d{i}"), i * 20, i * 20 + 5, vec![(33.74 + 0.003 * i as f64, -118.27)])).collect();
        assert_eq!(group(&items).len(), 1);
    }
}
