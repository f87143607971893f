//! report.html in headless Chromium (Debian `chromium`, scripts/install_report_test_tools.sh):
//! it renders with no console errors and no network requests (a CSP meta tag forbids every
//! fetch, and the file names no external resource), and a screenshot shows the map and the
//! timeline drawn. Skips with a message when Chromium is not installed.
#![allow(clippy::unwrap_used)]

use fieldcap_server::package::Profile;
use fieldcap_testkit::package::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|c| {
        let o = Command::new("sh").arg("-c").arg(format!("command -v {c}")).output().ok()?;
        o.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    })
}

/// Runs Chromium headless with the brief's flags and a time limit; returns (stdout, stderr).
fn run_chromium(bin: &Path, profile: &Path, extra: &[String], page: &Path) -> (String, String) {
    let mut child = Command::new(bin)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--hide-scrollbars"])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn report_renders_offline_without_errors_and_draws_map_and_timeline() {
    let fx = Fixture::new();
    let pkg = fx.package("report", Profile::Full, None).path;
    let page = pkg.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: no scripts, no external references, CSP forbids fetching; text escaped.
    assert!(html.contains("default-src 'none'"));
    assert!(!html.contains("<script"), "witness text must be escaped");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    for bad in ["src=", "href=", "@import", "url(", "<link", "<iframe", "<img"] {
        assert!(!html.contains(bad), "report.html contains {bad}");
    }
    assert!(html.contains("id=\"timeline\"") && html.contains("id=\"map\"") && html.contains("@media print"));

    let Some(bin) = chromium() else {
        assert!(std::env::var_os("FIELDCAP_REQUIRE_CHROMIUM").is_none(), "Chromium is required (scripts/install_report_test_tools.sh)");
        eprintln!("SKIPPING the Chromium half: install it with scripts/install_report_test_tools.sh");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = run_chromium(&bin, profile.path(), &["--dump-dom".into()], &page);
    assert!(dom.contains("Custody trail") && dom.contains("<svg"), "DOM not rendered:\n{log}");
    for l in log.lines() {
        let lower = l.to_lowercase();
        assert!(!(lower.contains("console") && (lower.contains("error") || lower.contains("refused"))), "console error: {l}");
        assert!(!lower.contains("content security policy"), "CSP violation (a fetch was attempted): {l}");
        assert!(!lower.contains("net::err"), "network request: {l}");
    }

    // Screenshot: the map (its background colour marks its box) holds device-coloured pixels,
    // and the timeline above it does too.
    let shot = fx.work.path().join("shot.png");
    let profile = tempfile::tempdir().unwrap();
    run_chromium(&bin, profile.path(), &[format!("--screenshot={}", shot.display()), "--window-size=1200,2200".into()], &page);
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * ch;
        (buf[i] as i32, buf[i + 1] as i32, buf[i + 2] as i32)
    };
    let near = |a: (i32, i32, i32), b: (i32, i32, i32), tol: i32| (a.0 - b.0).abs() <= tol && (a.1 - b.1).abs() <= tol && (a.2 - b.2).abs() <= tol;
    let device_colours = [(31, 119, 180), (214, 39, 40)];
    let is_device = |p| device_colours.iter().any(|c| near(p, *c, 40));
    let map_bg = (247, 247, 242);
    let (mut top, mut bottom, mut left, mut right) = (usize::MAX, 0, usize::MAX, 0);
    for y in 0..h {
        for x in 0..w {
            if px(x, y) == map_bg {
                top = top.min(y);
                bottom = bottom.max(y);
                left = left.min(x);
                right = right.max(x);
            }
        }
    }
    assert!(top < bottom && bottom - top > 200, "map box not found in the screenshot");
    let in_map = (top..=bottom).flat_map(|y| (left..=right).map(move |x| (x, y))).filter(|&(x, y)| is_device(px(x, y))).count();
    assert!(in_map > 200, "map has only {in_map} track pixels");
    let above = (0..top).flat_map(|y| (0..w).map(move |x| (x, y))).filter(|&(x, y)| is_device(px(x, y))).count();
    // Bars, not stray pixels: rows above the map holding a run of at least 8 device-coloured
    // pixels (a blank or missing timeline has none; a legend swatch alone is too short).
    let bar_rows = (0..top)
        .filter(|&y| {
            let (mut run, mut best) = (0, 0);
            for x in 0..w {
                run = if is_device(px(x, y)) { run + 1 } else { 0 };
                best = best.max(run);
            }
            best >= 8
        })
        .count();
    eprintln!("map: {in_map} track pixels; timeline: {above} item pixels, {bar_rows} rows with bars");
    assert!(above > 200 && bar_rows >= 4, "timeline not drawn: {above} item pixels, {bar_rows} rows with bars");
    // And the map region is not blank: many non-white, non-background pixels.
    let drawn = (top..=bottom).flat_map(|y| (left..=right).map(move |x| (x, y))).filter(|&(x, y)| { let p = px(x, y); p != map_bg && p != (255, 255, 255) }).count();
    assert!(drawn > 500, "map region nearly blank ({drawn})");
}
