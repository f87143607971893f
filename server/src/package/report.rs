//! `report.html`: one self-contained file a person can read on screen or on paper.
//!
//! No scripts, no external fonts, stylesheets or images, no network: a Content-Security-Policy
//! meta tag (`default-src 'none'; style-src 'unsafe-inline'; img-src data:`) makes any fetch
//! impossible even if a viewer tried. It holds:
//!
//! * a header (package, recipient, purpose, who exported, server key, checkpoint);
//! * a **timeline** (inline SVG) of every item, one lane per device, drawn at server-corrected
//!   times (device time minus the device's last measured clock offset, printed per lane);
//! * a **map** (inline SVG) of every track: local equirectangular projection around the centre
//!   of all fixes (x = Δlon·cos(lat₀)·111 320 m, y = Δlat·110 574 m), scale bar, north arrow,
//!   no map tiles;
//! * a table per item (times, device, role, digests, received-at, log leaf, tags, text);
//! * the custody trail.
//!
//! All text is HTML-escaped ([`escape`]): manifests carry witnesses' free text.
//!
//! ```
//! assert_eq!(fieldcap_server::package::report::escape("<b>\"A&B\"</b>"), "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;");
//! ```

use fieldcap_evidence::custody::CustodyEvent;
use fieldcap_package::package::PackageIndex;
use std::fmt::Write as _;

/// A device as the report shows it.
#[derive(Debug, Clone)]
pub struct ReportDevice {
    /// Device id.
    pub device_id: String,
    /// Role.
    pub role: String,
    /// Organisation (full profile only).
    pub org: Option<String>,
    /// Last measured device-minus-server clock offset, ms.
    pub clock_offset_ms: Option<i64>,
    /// When enrolled.
    pub enrolled_at: String,
}

/// An item as the report shows it.
#[derive(Debug, Clone)]
pub struct ReportItem {
    /// Item id.
    pub clip_id: String,
    /// Device id.
    pub device_id: String,
    /// Chain position.
    pub seq: u64,
    /// Kind.
    pub kind: String,
    /// Operator role.
    pub role: String,
    /// Operator organisation and call sign (full profile only).
    pub operator: Option<String>,
    /// Capture start (device clock).
    pub started_at: String,
    /// Capture end (device clock).
    pub ended_at: String,
    /// Clock source.
    pub clock_source: String,
    /// Measured clock offset at capture, ms.
    pub offset_ms: Option<i64>,
    /// When the server had everything.
    pub received_at: String,
    /// Log leaf.
    pub log_index: u64,
    /// SHA-256 of manifest.json in the package.
    pub manifest_sha256: String,
    /// SHA-256 of the device-signed original manifest.
    pub original_manifest_sha256: String,
    /// (mime, bytes, sha256, blake3).
    pub media: Option<(String, u64, String, String)>,
    /// Tags.
    pub tags: Vec<String>,
    /// Witness text (observations).
    pub text: Option<String>,
    /// Operator note (full profile only).
    pub note: Option<String>,
    /// Track (lat, lon), as in the package's manifest.
    pub track: Vec<(f64, f64)>,
}

/// Everything the report is drawn from.
#[derive(Debug)]
pub struct ReportInput<'a> {
    /// The index (without its file list).
    pub index: &'a PackageIndex,
    /// The server key's fingerprint (`fieldcap_evidence::identity::key_fingerprint`), shown
    /// with where a recipient gets the real one to compare.
    pub server_fingerprint: &'a str,
    /// Devices.
    pub devices: &'a [ReportDevice],
    /// Items, by capture start.
    pub items: &'a [ReportItem],
    /// Custody events in the package.
    pub custody: &'a [CustodyEvent],
}

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

const PALETTE: &[&str] = &["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

/// The colour of the `i`-th device (the report's and the console's palette).
pub fn device_colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn colour(devices: &[ReportDevice], id: &str) -> &'static str {
    let i = devices.iter().position(|d| d.device_id == id).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

fn ms(s: &str) -> i64 {
    fieldcap_evidence::time::parse(s, "time").map(|t| t.timestamp_millis()).unwrap_or(0)
}

fn fmt_ms(v: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(v).map(fieldcap_evidence::time::format).unwrap_or_default()
}

fn offset_text(o: Option<i64>) -> String {
    match o {
        Some(v) => format!("{:+.3} s (device minus server)", v as f64 / 1000.0),
        None => "not measured".into(),
    }
}

const STYLE: &str = r#"
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#111;margin:24px auto;max-width:1060px;padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #333;padding-bottom:2px;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1em}th,td{border:1px solid #999;padding:3px 6px;text-align:left;vertical-align:top;font-size:.9em}
th{background:#eee;width:24%}.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.85em;word-break:break-all}
.notice{border:2px solid #a60;background:#fff6e5;padding:8px 12px}.item{margin-bottom:1.2em}
svg{display:block;width:100%;height:auto;border:1px solid #999;background:#fff}
.custody td{font-size:.8em}
@page{size:auto;margin:14mm}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}.item,figure,table.custody tr{break-inside:avoid}.notice{background:none}svg{border:1px solid #000}}
"#;

/// Renders the report.
pub fn render(input: &ReportInput<'_>) -> String {
    let ix = input.index;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Evidence package {}</title><style>{STYLE}</style></head><body>\n",
        escape(&ix.package_id)
    );
    let _ = write!(h, "<h1>Evidence package</h1><table><tbody>");
    let rows: Vec<(&str, String)> = vec![
        ("Package", format!("<span class=\"mono\">{}</span> ({} profile)", escape(&ix.package_id), escape(&ix.profile))),
        ("Recipient", escape(&ix.recipient)),
        ("Purpose", escape(&ix.purpose)),
        ("Exported by", escape(&ix.exported_by)),
        ("Exported at", escape(&ix.created_at)),
        ("Server key fingerprint", format!("<span class=\"mono\">{}</span> (key id <span class=\"mono\">{}</span>)", escape(input.server_fingerprint), escape(&ix.server_key_id))),
        ("Transparency log", format!("{} — checkpoint at tree size {}", escape(&ix.log_origin), ix.checkpoint_size)),
        ("Items", format!("{} from {} device(s)", input.items.len(), input.devices.len())),
    ];
    for (k, v) in rows {
        let _ = write!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    }
    if !ix.omitted.is_empty() {
        let o: Vec<String> = ix.omitted.iter().map(|(k, v)| format!("{v} {}", escape(&k.replace('_', " ")))).collect();
        let _ = write!(h, "<tr><th>Left out</th><td>{}</td></tr>", o.join(", "));
    }
    h.push_str("</tbody></table>\n");
    if ix.profile == "release" {
        h.push_str("<p class=\"notice\"><strong>Release profile.</strong> Manifests in this package are documents derived by the council server from the device-signed originals: locations are snapped to a 0.001° grid (about 100 m), operator organisation, call sign and notes are removed. Each derived manifest names the SHA-256 of its original, which the server's receipt also names. The originals are kept unchanged by the council office. Media files are copies in which location and owner metadata inside the file (e.g. an MP4 location atom, JPEG EXIF GPS) is overwritten; the picture and sound are unchanged: <strong>faces, vehicle plates and voices are not blurred or removed</strong> — review them before publication.</p>\n");
        let withheld: Vec<String> = ix.items.iter().filter_map(|i| i.media_withheld.as_ref().map(|r| format!("<span class=\"mono\">{}</span>: {}", escape(&i.clip_id), escape(r)))).collect();
        if !withheld.is_empty() {
            let _ = writeln!(h, "<p class=\"notice\">Media withheld (its metadata could not be cleaned safely; the item's derived manifest and receipt are included): {}</p>", withheld.join("; "));
        }
        if let Some(r) = &ix.sensitive_reason {
            let _ = writeln!(h, "<p class=\"notice\">Items involving minors or victims are included. Recorded reason: {}</p>", escape(r));
        }
    }
    let _ = writeln!(
        h,
        "<p class=\"notice\"><strong>Server key.</strong> This package is signed with the server key of fingerprint <span class=\"mono\">{}</span>. A package only proves that <em>some</em> key signed it: compare this fingerprint with the one the council office publishes, which you get out of band (its web site, a letter or a phone call), never from the package or this report.</p>",
        escape(input.server_fingerprint)
    );
    h.push_str("<p>How to check this package: run <code>sh VERIFY.txt FINGERPRINT</code> in its folder (OpenSSL 3, sha256sum, b3sum), or <code>fieldcap verify . --server-key FINGERPRINT</code> for every check including the transparency-log proofs and the custody chain, with the fingerprint the council office publishes. This report is a reading aid; the signed files are the evidence.</p>\n");

    h.push_str("<h2>Timeline</h2>\n<figure id=\"timeline\">");
    h.push_str(&timeline(input));
    h.push_str("<figcaption>Capture windows at server-corrected time (device clock minus its last measured offset), one lane per device. Times UTC.</figcaption></figure>\n");

    h.push_str("<h2>Map of tracks</h2>\n<figure id=\"map\">");
    h.push_str(&map(input));
    h.push_str("<figcaption>Local equirectangular projection; no map tiles. Lines are tracks, dots are fixes, colours follow devices.</figcaption></figure>\n");

    h.push_str("<h2>Devices</h2><table><thead><tr><th>Device</th><th>Role</th><th>Clock offset</th><th>Enrolled</th></tr></thead><tbody>");
    for d in input.devices {
        let org = d.org.as_deref().map(|o| format!(", {}", escape(o))).unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td class=\"mono\"><span style=\"color:{}\">■</span> {}</td><td>{}{org}</td><td>{}</td><td>{}</td></tr>",
            colour(input.devices, &d.device_id),
            escape(&d.device_id),
            escape(&d.role),
            escape(&offset_text(d.clock_offset_ms)),
            escape(&d.enrolled_at)
        );
    }
    h.push_str("</tbody></table>\n<h2>Items</h2>\n");
    for (n, it) in input.items.iter().enumerate() {
        let _ = write!(h, "<div class=\"item\"><h3>{}. {} — <span class=\"mono\">{}</span></h3><table><tbody>", n + 1, escape(&it.kind), escape(&it.clip_id));
        let corr = |s: &str| fmt_ms(ms(s) - it.offset_ms.unwrap_or(0));
        let mut rows: Vec<(&str, String)> = vec![
            ("Device / seq", format!("<span class=\"mono\">{}</span> / {}", escape(&it.device_id), it.seq)),
            ("Operator role", escape(&it.role)),
        ];
        if let Some(o) = &it.operator {
            rows.push(("Operator", escape(o)));
        }
        rows.extend([
            ("Started (device clock)", escape(&it.started_at)),
            ("Ended (device clock)", escape(&it.ended_at)),
            ("Clock", format!("{}; offset {}", escape(&it.clock_source), escape(&offset_text(it.offset_ms)))),
            ("Server-corrected window", format!("{} – {}", escape(&corr(&it.started_at)), escape(&corr(&it.ended_at)))),
            ("Received by the server", escape(&it.received_at)),
            ("Transparency-log leaf", it.log_index.to_string()),
            ("Manifest SHA-256", format!("<span class=\"mono\">{}</span>", escape(&it.manifest_sha256))),
        ]);
        if it.original_manifest_sha256 != it.manifest_sha256 {
            rows.push(("Original manifest SHA-256", format!("<span class=\"mono\">{}</span>", escape(&it.original_manifest_sha256))));
        }
        if let Some((mime, bytes, sha, b3)) = &it.media {
            rows.push(("Media", format!("{} , {} bytes", escape(mime), bytes)));
            rows.push(("Media SHA-256", format!("<span class=\"mono\">{}</span>", escape(sha))));
            rows.push(("Media BLAKE3", format!("<span class=\"mono\">{}</span>", escape(b3))));
        }
        rows.push(("Tags", if it.tags.is_empty() { "none".into() } else { escape(&it.tags.join(", ")) }));
        rows.push(("Location fixes", it.track.len().to_string()));
        if let Some(t) = &it.text {
            rows.push(("Witness text", escape(t)));
        }
        if let Some(t) = &it.note {
            rows.push(("Operator note", escape(t)));
        }
        for (k, v) in rows {
            let _ = write!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        h.push_str("</tbody></table></div>\n");
    }

    h.push_str("<h2>Custody trail</h2>\n<p>Signed custody events of the server and the devices (<code>custody.jsonl</code>). ");
    h.push_str(&escape(&ix.custody_note));
    h.push_str("</p><table class=\"custody\"><thead><tr><th>Actor</th><th>Seq</th><th>Time (UTC)</th><th>Event</th><th>Item</th><th>Detail</th></tr></thead><tbody>");
    for e in input.custody {
        let body = serde_json::from_slice::<serde_json::Value>(&e.body).ok();
        let detail = body.as_ref().map(|v| v["detail"].to_string()).unwrap_or_default();
        let actor = body.as_ref().and_then(|v| v["actor"].as_str()).map(|a| if a.starts_with("server:") { "server".to_string() } else { a.replace("device:", "device ") }).unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            escape(&actor),
            e.seq,
            escape(&e.at),
            escape(&e.event),
            escape(e.clip_id.as_deref().unwrap_or("—")),
            escape(&detail)
        );
    }
    h.push_str("</tbody></table>\n</body></html>\n");
    h
}

fn timeline(input: &ReportInput<'_>) -> String {
    let (w, left, right, lane_h, top) = (1000.0_f64, 190.0, 20.0, 44.0, 30.0);
    let lanes = input.devices.len().max(1) as f64;
    let height = top + lanes * lane_h + 36.0;
    let spans: Vec<(i64, i64)> = input.items.iter().map(|it| (ms(&it.started_at) - it.offset_ms.unwrap_or(0), ms(&it.ended_at) - it.offset_ms.unwrap_or(0))).collect();
    let lo = spans.iter().map(|s| s.0).min().unwrap_or(0);
    let hi = spans.iter().map(|s| s.1).max().unwrap_or(lo).max(lo + 60_000);
    let pad = (hi - lo) / 20;
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |t: i64| left + (t - lo) as f64 / (hi - lo) as f64 * (w - left - right);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {height}\" role=\"img\" aria-label=\"Timeline of items\">");
    let _ = write!(s, "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{height}\" fill=\"#fff\"/>");
    // Ticks: about six, at round intervals.
    let span = (hi - lo) as f64;
    let step = [1_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000, 3_600_000, 21_600_000, 86_400_000]
        .into_iter()
        .find(|st| span / *st as f64 <= 7.0)
        .unwrap_or(86_400_000);
    let mut t = (lo / step + 1) * step;
    let axis_y = top + lanes * lane_h;
    while t < hi {
        let xx = x(t);
        let _ = write!(s, "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{axis_y}\" stroke=\"#ddd\"/><text x=\"{xx:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">{}</text>", axis_y + 16.0, escape(&fmt_ms(t)[11..19]));
        t += step;
    }
    let _ = write!(s, "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{:.1}\" y2=\"{axis_y}\" stroke=\"#333\"/>", w - right);
    let _ = write!(s, "<text x=\"{left}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\">{} UTC</text>", axis_y + 32.0, escape(&fmt_ms(lo)[..10]));
    for (i, d) in input.devices.iter().enumerate() {
        let y = top + i as f64 * lane_h;
        let _ = write!(
            s,
            "<text x=\"6\" y=\"{:.1}\" font-size=\"12\" fill=\"{}\">{} {}</text><text x=\"6\" y=\"{:.1}\" font-size=\"10\" fill=\"#555\">offset {}</text>",
            y + 18.0,
            colour(input.devices, &d.device_id),
            escape(&d.role),
            escape(&d.device_id[..d.device_id.len().min(8)]),
            y + 32.0,
            escape(&d.clock_offset_ms.map(|o| format!("{:+.3} s", o as f64 / 1000.0)).unwrap_or_else(|| "not measured".into()))
        );
    }
    for (it, (a, b)) in input.items.iter().zip(&spans) {
        let lane = input.devices.iter().position(|d| d.device_id == it.device_id).unwrap_or(0) as f64;
        let y = top + lane * lane_h + 8.0;
        let (x0, x1) = (x(*a), x(*b));
        let c = colour(input.devices, &it.device_id);
        if x1 - x0 < 4.0 {
            let cx = (x0 + x1) / 2.0;
            let _ = write!(s, "<path d=\"M{cx:.1} {y:.1} l7 12 l-7 12 l-7 -12 z\" fill=\"{c}\"><title>{}</title></path>", escape(&it.clip_id));
        } else {
            let _ = write!(s, "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"24\" fill=\"{c}\" fill-opacity=\"0.8\"><title>{}</title></rect>", x1 - x0, escape(&it.clip_id));
        }
    }
    s.push_str("</svg>");
    s
}

fn map(input: &ReportInput<'_>) -> String {
    let tracks: Vec<MapTrack<'_>> =
        input.items.iter().map(|it| MapTrack { device_id: &it.device_id, label: &it.clip_id, colour: colour(input.devices, &it.device_id), points: &it.track }).collect();
    track_map(&tracks, None)
}

/// One track of [`track_map`].
#[derive(Debug, Clone)]
pub struct MapTrack<'a> {
    /// Device that recorded it (`data-device-id` of its polyline).
    pub device_id: &'a str,
    /// Item id; its last six characters label the track's start.
    pub label: &'a str,
    /// Stroke colour.
    pub colour: &'a str,
    /// Fixes (lat, lon).
    pub points: &'a [(f64, f64)],
}

/// An offline map of tracks as an SVG (no tile server): an equirectangular projection about
/// the tracks' centre, a scale bar and a north arrow; each track a `polyline.track` with its
/// device in `data-device-id`. `id` sets the SVG element's id.
pub fn track_map(tracks: &[MapTrack<'_>], id: Option<&str>) -> String {
    let (w, hgt, pad) = (1000.0_f64, 560.0_f64, 40.0_f64);
    let pts: Vec<(f64, f64)> = tracks.iter().flat_map(|i| i.points.iter().copied()).collect();
    let id_attr = id.map(|i| format!(" id=\"{}\"", escape(i))).unwrap_or_default();
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\"{id_attr} viewBox=\"0 0 {w} {hgt}\" role=\"img\" aria-label=\"Map of tracks\">");
    let _ = write!(s, "<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{hgt}\" fill=\"#f7f7f2\"/>");
    if pts.is_empty() {
        let _ = write!(s, "<text x=\"{}\" y=\"{}\" font-size=\"16\" text-anchor=\"middle\" fill=\"#333\">No locations were recorded for these items.</text></svg>", w / 2.0, hgt / 2.0);
        return s;
    }
    let lat0 = pts.iter().map(|p| p.0).sum::<f64>() / pts.len() as f64;
    let lon0 = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
    let k = lat0.to_radians().cos();
    let proj = |p: (f64, f64)| ((p.1 - lon0) * k * 111_320.0, (p.0 - lat0) * 110_574.0);
    let xy: Vec<(f64, f64)> = pts.iter().map(|p| proj(*p)).collect();
    let (minx, maxx) = xy.iter().fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (miny, maxy) = xy.iter().fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    let span_m = (maxx - minx).max(maxy - miny).max(200.0);
    let scale = ((w - 2.0 * pad) / span_m.max(maxx - minx)).min((hgt - 2.0 * pad) / span_m.max(maxy - miny));
    let cx = (minx + maxx) / 2.0;
    let cy = (miny + maxy) / 2.0;
    let to_svg = |p: (f64, f64)| {
        let (x, y) = proj(p);
        (w / 2.0 + (x - cx) * scale, hgt / 2.0 - (y - cy) * scale)
    };
    // Grid every scale-bar length.
    let target = (w - 2.0 * pad) / scale / 5.0;
    let mag = 10f64.powf(target.log10().floor());
    let bar_m = [1.0, 2.0, 5.0, 10.0].iter().map(|f| f * mag).rfind(|v| *v <= target).unwrap_or(mag);
    for it in tracks {
        let c = it.colour;
        let p: Vec<(f64, f64)> = it.points.iter().map(|q| to_svg(*q)).collect();
        if p.len() > 1 {
            let d: Vec<String> = p.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(s, "<polyline class=\"track\" data-device-id=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"3\" stroke-linejoin=\"round\"><title>{}</title></polyline>", escape(it.device_id), d.join(" "), escape(c), escape(it.label));
        }
        for (x, y) in &p {
            let _ = write!(s, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{}\"/>", escape(c));
        }
        if let Some((x, y)) = p.first() {
            let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#222\">{}</text>", x + 6.0, y - 6.0, escape(it.label.get(it.label.len().saturating_sub(6)..).unwrap_or(it.label)));
        }
    }
    // Scale bar.
    let bar_px = bar_m * scale;
    let (bx, by) = (pad, hgt - 20.0);
    let label = if bar_m >= 1000.0 { format!("{} km", bar_m / 1000.0) } else { format!("{} m", bar_m) };
    let _ = write!(
        s,
        "<rect x=\"{bx}\" y=\"{:.1}\" width=\"{bar_px:.1}\" height=\"6\" fill=\"#000\"/><rect x=\"{bx}\" y=\"{:.1}\" width=\"{:.1}\" height=\"6\" fill=\"#fff\" stroke=\"#000\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"#000\">{}</text>",
        by - 6.0,
        by - 6.0,
        bar_px / 2.0,
        bx + bar_px + 6.0,
        by,
        escape(&label)
    );
    // North arrow.
    let (nx, ny) = (w - 40.0, 30.0);
    let _ = write!(
        s,
        "<path d=\"M{nx} {ny} l10 28 l-10 -7 l-10 7 z\" fill=\"#000\"/><text x=\"{nx}\" y=\"{:.1}\" font-size=\"14\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"#000\">N</text>",
        ny + 44.0
    );
    s.push_str("</svg>");
    s
}
