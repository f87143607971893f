//! Tracks: points of a walk for a capture request or a manifest, and the GPX and GeoJSON files
//! a device stand-in imports with `fieldcap capture --track`.

use chrono::{DateTime, Duration, Utc};
use fieldcap_evidence::track::TrackPoint;

/// The instant `t` (RFC 3339, e.g. `2025-06-07T18:00:00Z`).
pub fn utc(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}")).with_timezone(&Utc)
}

/// One GPS fix at `t`: accuracy 5 m, nothing else measured. Change fields with struct update
/// syntax (`TrackPoint { altitude_m: Some(12.0), ..fix(t, lat, lon) }`).
pub fn fix(t: DateTime<Utc>, lat: f64, lon: f64) -> TrackPoint {
    TrackPoint {
        t: fieldcap_evidence::time::format(t),
        lat,
        lon,
        accuracy_m: 5.0,
        altitude_m: None,
        heading_deg: None,
        speed_mps: None,
        provider: "gps".into(),
    }
}

/// A walk through `points` (lat, lon), one [`fix`] every `every` from `start`.
pub fn walk(start: DateTime<Utc>, every: Duration, points: &[(f64, f64)]) -> Vec<TrackPoint> {
    points.iter().enumerate().map(|(i, (lat, lon))| fix(start + every * i as i32, *lat, *lon)).collect()
}

/// A GPX 1.1 document with one track segment of `points`: `ele` from the altitude, `hdop` from
/// the accuracy (the importer reads accuracy as 5 × hdop), `course` and `speed` when known.
pub fn gpx(points: &[TrackPoint]) -> String {
    let mut s = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><gpx version="1.1" creator="fieldcap-testkit" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>"#);
    for p in points {
        s.push_str(&format!(r#"<trkpt lat="{}" lon="{}">"#, p.lat, p.lon));
        if let Some(e) = p.altitude_m {
            s.push_str(&format!("<ele>{e}</ele>"));
        }
        s.push_str(&format!("<time>{}</time>", p.t));
        if let Some(c) = p.heading_deg {
            s.push_str(&format!("<course>{c}</course>"));
        }
        if let Some(v) = p.speed_mps {
            s.push_str(&format!("<speed>{v}</speed>"));
        }
        s.push_str(&format!("<hdop>{}</hdop></trkpt>", p.accuracy_m / 5.0));
    }
    s.push_str("</trkseg></trk></gpx>");
    s
}

/// A GeoJSON Feature: a LineString of `points` (`[lon, lat, altitude?]`) with
/// `properties.coordTimes`, and `accuracy_m` of the first point (GeoJSON carries one accuracy
/// per feature).
pub fn geojson(points: &[TrackPoint]) -> String {
    let coords: Vec<serde_json::Value> = points
        .iter()
        .map(|p| match p.altitude_m {
            Some(a) => serde_json::json!([p.lon, p.lat, a]),
            None => serde_json::json!([p.lon, p.lat]),
        })
        .collect();
    let times: Vec<&str> = points.iter().map(|p| p.t.as_str()).collect();
    let accuracy = points.first().map_or(50.0, |p| p.accuracy_m);
    serde_json::json!({
        "type": "Feature",
        "properties": {"coordTimes": times, "accuracy_m": accuracy},
        "geometry": {"type": "LineString", "coordinates": coords},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldcap_evidence::track::{parse_geojson, parse_gpx};

    #[test]
    fn both_files_read_back_as_the_walk() {
        let mut w = walk(utc("2025-06-07T18:00:00Z"), Duration::seconds(5), &[(33.7361, -118.2922), (33.7362, -118.2921)]);
        w[0].altitude_m = Some(10.0);
        for (got, provider) in [(parse_gpx(&gpx(&w)).unwrap(), "gpx"), (parse_geojson(&geojson(&w)).unwrap(), "geojson")] {
            let want: Vec<TrackPoint> = w.iter().map(|p| TrackPoint { provider: provider.into(), heading_deg: None, speed_mps: None, ..p.clone() }).collect();
            assert_eq!(got, want);
        }
    }
}
