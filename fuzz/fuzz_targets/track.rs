//! GPX and GeoJSON tracks (`evidence::track`): parse, and every point that comes out is valid.
#![no_main]
use fieldcap_evidence::track::{parse_geojson, parse_gpx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let parsed = if which & 1 == 0 { parse_gpx(text) } else { parse_geojson(text) };
    if let Ok(mut points) = parsed {
        for p in &points {
            assert!(p.lat.is_finite() && (-90.0..=90.0).contains(&p.lat), "latitude out of range");
            assert!(p.lon.is_finite() && (-180.0..=180.0).contains(&p.lon), "longitude out of range");
        }
        let _ = fieldcap_evidence::track::validate_track(&mut points);
    }
});
