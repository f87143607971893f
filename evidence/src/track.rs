//! GPS tracks: the point type, validation, and import from GPX 1.1 and GeoJSON.
//!
//! A track point says where the device was at an instant and how sure it was. Imports accept
//! GPX `trkpt`/`rtept`/`wpt` elements (with `<time>`, optional `<ele>`, `<hdop>`, `<course>`,
//! `<speed>`) and GeoJSON `Point` / `LineString` features (times in `properties.time` for a point,
//! `properties.coordTimes` or `properties.times` for a line). Every point is checked: latitude in
//! [-90, 90], longitude in [-180, 180], finite non-negative accuracy and speed, heading in
//! [0, 360), a valid time, times not going backwards. The first bad point is named in the error.
//!
//! GPX has no accuracy field: when `<hdop>` is present, accuracy is taken as 5 m × HDOP (a
//! conventional user-equivalent range error); otherwise 50 m, and the provider says `gpx` so a
//! reader knows the figure was not measured.
//!
//! ```
//! let gpx = r#"<gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>
//!   <trkpt lat="33.7406" lon="-118.2760"><time>2025-06-07T18:04:05Z</time><hdop>1.2</hdop></trkpt>
//! </trkseg></trk></gpx>"#;
//! let t = fieldcap_evidence::track::parse_gpx(gpx).unwrap();
//! assert_eq!(t[0].accuracy_m, 6.0);
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One location fix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackPoint {
    /// Time of the fix, RFC 3339 UTC with milliseconds.
    pub t: String,
    /// Latitude, WGS 84 degrees.
    pub lat: f64,
    /// Longitude, WGS 84 degrees.
    pub lon: f64,
    /// Horizontal accuracy (radius, metres).
    pub accuracy_m: f64,
    /// Altitude above the WGS 84 ellipsoid or mean sea level, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude_m: Option<f64>,
    /// Direction of travel, degrees clockwise from true north.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    /// Ground speed, metres per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mps: Option<f64>,
    /// Where the fix came from: `gps`, `fused`, `network`, `gpx`, `geojson`, `manual`.
    pub provider: String,
}

impl TrackPoint {
    /// Checks ranges and normalises the time to the canonical form. `what` names the point.
    pub fn validate(&mut self, what: &str) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(format!("{what}: {m}")));
        if !self.lat.is_finite() || !(-90.0..=90.0).contains(&self.lat) {
            return bad(format!("latitude {} is outside -90..90", self.lat));
        }
        if !self.lon.is_finite() || !(-180.0..=180.0).contains(&self.lon) {
            return bad(format!("longitude {} is outside -180..180", self.lon));
        }
        if !self.accuracy_m.is_finite() || self.accuracy_m < 0.0 {
            return bad("accuracy must be a finite number of metres ≥ 0".into());
        }
        if let Some(a) = self.altitude_m {
            if !a.is_finite() || !(-1000.0..=20000.0).contains(&a) {
                return bad(format!("altitude {a} m is outside -1000..20000"));
            }
        }
        if let Some(h) = self.heading_deg {
            if !h.is_finite() || !(0.0..360.0).contains(&h) {
                return bad(format!("heading {h} is outside 0..360"));
            }
        }
        if let Some(s) = self.speed_mps {
            if !s.is_finite() || !(0.0..=400.0).contains(&s) {
                return bad(format!("speed {s} m/s is outside 0..400"));
            }
        }
        if self.provider.is_empty() || self.provider.len() > 32 {
            return bad("provider must be 1..32 characters".into());
        }
        let t = crate::time::parse(&self.t, &format!("{what} time"))?;
        self.t = crate::time::format(t);
        Ok(())
    }
}

/// Validates a whole track: every point, and times never going backwards.
pub fn validate_track(points: &mut [TrackPoint]) -> Result<()> {
    let mut last: Option<chrono::DateTime<chrono::Utc>> = None;
    for (i, p) in points.iter_mut().enumerate() {
        let what = format!("track point {}", i + 1);
        p.validate(&what)?;
        let t = crate::time::parse(&p.t, &what)?;
        if let Some(l) = last {
            if t < l {
                return Err(Error::InvalidInput(format!("{what}: time goes backwards")));
            }
        }
        last = Some(t);
    }
    Ok(())
}

/// Parses a GPX 1.0/1.1 document.
pub fn parse_gpx(text: &str) -> Result<Vec<TrackPoint>> {
    let doc = roxmltree::Document::parse(text).map_err(|e| Error::InvalidInput(format!("GPX is not well-formed XML: {e}")))?;
    if doc.root_element().tag_name().name() != "gpx" {
        return Err(Error::InvalidInput("GPX: the root element is not <gpx>".into()));
    }
    let mut out = Vec::new();
    for node in doc.descendants().filter(|n| matches!(n.tag_name().name(), "trkpt" | "rtept" | "wpt")) {
        let n = out.len() + 1;
        let num = |attr: &str| -> Result<f64> {
            node.attribute(attr)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .ok_or_else(|| Error::InvalidInput(format!("GPX point {n}: missing or non-numeric {attr}")))
        };
        let child = |name: &str| node.children().find(|c| c.tag_name().name() == name).and_then(|c| c.text()).map(str::trim);
        let child_num = |name: &str| -> Result<Option<f64>> {
            match child(name) {
                None => Ok(None),
                Some(v) => v.parse::<f64>().map(Some).map_err(|_| Error::InvalidInput(format!("GPX point {n}: <{name}> is not a number"))),
            }
        };
        let t = child("time").ok_or_else(|| Error::InvalidInput(format!("GPX point {n}: no <time>")))?;
        let hdop = child_num("hdop")?;
        out.push(TrackPoint {
            t: t.to_string(),
            lat: num("lat")?,
            lon: num("lon")?,
            accuracy_m: hdop.map(|h| h * 5.0).unwrap_or(50.0),
            altitude_m: child_num("ele")?,
            heading_deg: child_num("course")?,
            speed_mps: child_num("speed")?,
            provider: "gpx".into(),
        });
    }
    if out.is_empty() {
        return Err(Error::InvalidInput("GPX has no track, route or way points".into()));
    }
    validate_track(&mut out)?;
    Ok(out)
}

/// Parses a GeoJSON Feature, FeatureCollection or bare geometry with times.
pub fn parse_geojson(text: &str) -> Result<Vec<TrackPoint>> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| Error::InvalidInput(format!("GeoJSON is not valid JSON: {e}")))?;
    let features: Vec<&serde_json::Value> = match v.get("type").and_then(|t| t.as_str()) {
        Some("FeatureCollection") => v
            .get("features")
            .and_then(|f| f.as_array())
            .map(|a| a.iter().collect())
            .ok_or_else(|| Error::InvalidInput("GeoJSON FeatureCollection has no features array".into()))?,
        Some("Feature") => vec![&v],
        _ => return Err(Error::InvalidInput("GeoJSON must be a Feature or FeatureCollection".into())),
    };
    let mut out = Vec::new();
    for (fi, f) in features.iter().enumerate() {
        let what = format!("GeoJSON feature {}", fi + 1);
        let props = f.get("properties").cloned().unwrap_or(serde_json::Value::Null);
        let geom = f.get("geometry").ok_or_else(|| Error::InvalidInput(format!("{what}: no geometry")))?;
        let coords = geom.get("coordinates").ok_or_else(|| Error::InvalidInput(format!("{what}: no coordinates")))?;
        let acc = props.get("accuracy_m").or_else(|| props.get("accuracy")).and_then(|a| a.as_f64()).unwrap_or(50.0);
        let point = |c: &serde_json::Value, t: Option<&str>, i: usize| -> Result<TrackPoint> {
            let arr = c.as_array().filter(|a| a.len() >= 2).ok_or_else(|| Error::InvalidInput(format!("{what}: position {i} is not [lon, lat]")))?;
            let num = |k: usize| arr.get(k).and_then(|x| x.as_f64());
            Ok(TrackPoint {
                t: t.ok_or_else(|| Error::InvalidInput(format!("{what}: position {i} has no time")))?.to_string(),
                lon: num(0).ok_or_else(|| Error::InvalidInput(format!("{what}: longitude is not a number")))?,
                lat: num(1).ok_or_else(|| Error::InvalidInput(format!("{what}: latitude is not a number")))?,
                accuracy_m: acc,
                altitude_m: num(2),
                heading_deg: None,
                speed_mps: None,
                provider: "geojson".into(),
            })
        };
        match geom.get("type").and_then(|t| t.as_str()) {
            Some("Point") => {
                let t = props.get("time").or_else(|| props.get("timestamp")).and_then(|t| t.as_str());
                out.push(point(coords, t, 1)?);
            }
            Some("LineString") => {
                let cs = coords.as_array().ok_or_else(|| Error::InvalidInput(format!("{what}: coordinates is not an array")))?;
                let times = props
                    .get("coordTimes")
                    .or_else(|| props.get("times"))
                    .and_then(|t| t.as_array())
                    .ok_or_else(|| Error::InvalidInput(format!("{what}: LineString needs properties.coordTimes")))?;
                if times.len() != cs.len() {
                    return Err(Error::InvalidInput(format!("{what}: {} positions but {} times", cs.len(), times.len())));
                }
                for (i, (c, t)) in cs.iter().zip(times).enumerate() {
                    out.push(point(c, t.as_str(), i + 1)?);
                }
            }
            other => return Err(Error::InvalidInput(format!("{what}: geometry {other:?} is not Point or LineString"))),
        }
    }
    if out.is_empty() {
        return Err(Error::InvalidInput("GeoJSON has no positions".into()));
    }
    validate_track(&mut out)?;
    Ok(out)
}

/// Imports a track file, choosing the parser by extension (`.gpx`, `.geojson`, `.json`).
pub fn import_file(path: &std::path::Path) -> Result<Vec<TrackPoint>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading the track file", e))?;
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("gpx") => parse_gpx(&text),
        Some("geojson") | Some("json") => parse_geojson(&text),
        _ => Err(Error::InvalidInput("track file must end in .gpx or .geojson".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geojson_linestring() {
        let g = r#"{"type":"Feature","properties":{"coordTimes":["2025-06-07T18:00:00Z","2025-06-07T18:00:05Z"],"accuracy_m":4},
          "geometry":{"type":"LineString","coordinates":[[-118.27,33.74,3.0],[-118.2701,33.7401]]}}"#;
        let t = parse_geojson(g).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].t, "2025-06-07T18:00:00.000Z");
        assert_eq!(t[0].altitude_m, Some(3.0));
        assert_eq!(t[1].accuracy_m, 4.0);
    }

    #[test]
    fn out_of_range_and_backwards_rejected() {
        let bad = r#"<gpx><trk><trkseg><trkpt lat="95" lon="0"><time>2025-06-07T18:00:00Z</time></trkpt></trkseg></trk></gpx>"#;
        let e = parse_gpx(bad).unwrap_err().to_string();
        assert!(e.contains("point 1") && e.contains("latitude"), "{e}");
        let back = r#"<gpx><wpt lat="1" lon="1"><time>2025-06-07T18:00:01Z</time></wpt><wpt lat="1" lon="1"><time>2025-06-07T18:00:00Z</time></wpt></gpx>"#;
        assert!(parse_gpx(back).unwrap_err().to_string().contains("backwards"));
        assert!(parse_gpx("<gpx>").is_err());
        assert!(parse_geojson(r#"{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[0,0]}}"#).is_err());
    }
}
