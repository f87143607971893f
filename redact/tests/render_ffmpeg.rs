//! Rendering plans with Debian's ffmpeg over footage ffmpeg makes here: a checkerboard "face"
//! moving across a test pattern, a 440 Hz tone. Checked frame by frame on the decoded pictures
//! (pixel statistics inside the moving box and outside it) and with `volumedetect` on the sound;
//! duration and frame count unchanged; a failure leaves nothing behind.

#![allow(clippy::unwrap_used)]

use fieldcap_redact::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const W: usize = 320;
const H: usize = 240;
const FPS: f64 = 30.0;
/// The moving checkerboard: 48×48, from x = 20 at t = 0 to x = 260 at t = 4 s, at y = 96.
const OBJ: usize = 48;
const OBJ_Y: usize = 96;

fn obj_x(t: f64) -> f64 {
    20.0 + 60.0 * t
}

fn tools() -> bool {
    fieldcap_testkit::tools::stock_tools("redaction rendering", &["ffmpeg", "ffprobe"])
}

fn ffmpeg(args: &[&str]) {
    let st = Command::new("ffmpeg").args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"]).args(args).status().unwrap();
    assert!(st.success(), "ffmpeg {args:?}");
}

/// 4 s of testsrc with the checkerboard moving over it, and a 440 Hz tone.
fn footage(dir: &Path) -> PathBuf {
    let out = dir.join("original.mp4");
    let graph = format!(
        "testsrc=size={W}x{H}:rate=30:duration=4[bg];nullsrc=size={OBJ}x{OBJ}:rate=30:duration=4,format=yuv420p,geq=lum='if(mod(floor(X/6)+floor(Y/6),2),235,16)':cb=128:cr=128[obj];[bg][obj]overlay=x='20+60*t':y={OBJ_Y}:shortest=1,format=yuv420p[v];sine=frequency=440:sample_rate=48000:duration=4[a]"
    );
    ffmpeg(&["-filter_complex", &graph, "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-c:a", "aac", "-b:a", "192k", out.to_str().unwrap()]);
    out
}

fn gray_frames(path: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg").args(["-nostdin", "-loglevel", "error", "-i"]).arg(path).args(["-f", "rawvideo", "-pix_fmt", "gray", "-"]).output().unwrap();
    assert!(out.status.success());
    out.stdout.chunks(W * H).map(|c| c.to_vec()).collect()
}

fn frame_count(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Mean and standard deviation of the pixels of `f` in `[x0, x1) × [y0, y1)`.
fn stats(f: &[u8], x0: usize, x1: usize, y0: usize, y1: usize) -> (f64, f64) {
    let mut v = Vec::new();
    for y in y0..y1 {
        for x in x0..x1 {
            v.push(f[y * W + x] as f64);
        }
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / v.len() as f64;
    (mean, var.sqrt())
}

/// Mean absolute difference of two frames over rows `y0..y1`.
fn mad_rows(a: &[u8], b: &[u8], y0: usize, y1: usize) -> f64 {
    let (a, b) = (&a[y0 * W..y1 * W], &b[y0 * W..y1 * W]);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).sum::<f64>() / a.len() as f64
}

/// `volumedetect` of `path` between `from` and `to` seconds: (mean, max) in dB.
fn volume(path: &Path, from: f64, to: f64) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-ss", &from.to_string(), "-to", &to.to_string(), "-i"])
        .arg(path)
        .args(["-vn", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let grab = |key: &str| -> f64 {
        let line = text.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("no {key} in {text}"));
        let v = line.split(':').nth(1).unwrap().trim().trim_end_matches(" dB");
        if v == "-inf" { -200.0 } else { v.parse().unwrap() }
    };
    (grab("mean_volume"), grab("max_volume"))
}

/// The footage, what it is, and where the derived file goes; `None` (skip) without ffmpeg.
fn setup() -> Option<(tempfile::TempDir, PathBuf, MediaFacts, PathBuf)> {
    if !tools() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let orig = footage(dir.path());
    let facts = probe(&orig).unwrap();
    let out = dir.path().join("redacted.mp4");
    Some((dir, orig, facts, out))
}

fn plan(effect: VideoEffect, audio: Vec<AudioRange>) -> RedactionPlan {
    RedactionPlan {
        doc_type: REDACTION_TYPE.into(),
        clip_id: "0190a4c2-0000-7000-8000-000000000001".into(),
        original: OriginalDigests { bytes: 0, sha256: String::new(), blake3: String::new() },
        regions: vec![Region {
            effect,
            // The object's box at t = 0 and t = 4 s: interpolated in between.
            keyframes: vec![Keyframe { t_ms: 0, x: 20, y: OBJ_Y as u32, w: OBJ as u32, h: OBJ as u32 }, Keyframe { t_ms: 4000, x: 260, y: OBJ_Y as u32, w: OBJ as u32, h: OBJ as u32 }],
            label: Some("face".into()),
            source: Some("drawn".into()),
        }],
        blackouts: vec![],
        audio,
        reason: "a child's face and voice".into(),
    }
}

/// Checks a rendered video against the original: inside the moving box (inset 3 px) the pattern
/// is gone — `inside` judges (mean, std) per frame — and the band above the object's path is
/// the original's within codec noise.
fn check_video(orig: &Path, out: &Path, inside: impl Fn(f64, f64, f64) -> bool) {
    let (a, b) = (gray_frames(orig), gray_frames(out));
    assert_eq!(a.len(), b.len(), "every frame kept");
    assert_eq!(frame_count(orig), frame_count(out));
    let (fa, fb) = (probe(orig).unwrap(), probe(out).unwrap());
    assert!(fa.duration_ms.abs_diff(fb.duration_ms) <= 50, "duration kept: {} vs {}", fa.duration_ms, fb.duration_ms);
    for (i, (fo, fr)) in a.iter().zip(&b).enumerate() {
        let t = i as f64 / FPS;
        let x0 = obj_x(t).round() as usize + 3;
        let (orig_mean, orig_std) = stats(fo, x0, x0 + OBJ - 6, OBJ_Y + 3, OBJ_Y + OBJ - 3);
        assert!(orig_std > 80.0, "frame {i}: the original shows the pattern there (std {orig_std:.1}, mean {orig_mean:.1})");
        let (mean, std) = stats(fr, x0, x0 + OBJ - 6, OBJ_Y + 3, OBJ_Y + OBJ - 3);
        assert!(inside(mean, std, orig_std), "frame {i} (t = {t:.3}): inside the box mean {mean:.1}, std {std:.1} (original std {orig_std:.1})");
        let noise = mad_rows(fo, fr, 0, OBJ_Y - 10);
        assert!(noise < 2.5, "frame {i}: outside the box the picture changed (mean abs diff {noise:.2})");
    }
}

#[test]
fn a_fill_over_a_moving_box_blacks_it_out_frame_by_frame_and_leaves_the_rest() {
    let Some((_dir, orig, facts, out)) = setup() else { return };
    assert_eq!((facts.width, facts.height, facts.video, facts.audio, facts.still), (320, 240, true, true, false));
    let before = std::fs::read(&orig).unwrap();
    render(&orig, &out, &plan(VideoEffect::Fill, vec![]), &facts).unwrap();
    assert_eq!(std::fs::read(&orig).unwrap(), before, "the original is never changed");
    check_video(&orig, &out, |mean, std, _| mean < 20.0 && std < 4.0);
    // The sound was not touched: copied as it was.
    let (m0, _) = volume(&orig, 0.5, 3.5);
    let (m1, _) = volume(&out, 0.5, 3.5);
    assert!((m0 - m1).abs() < 0.5, "{m0} vs {m1}");
}

#[test]
fn a_blur_removes_the_pattern_and_a_muted_range_is_silent() {
    let Some((_dir, orig, facts, out)) = setup() else { return };
    let p = plan(VideoEffect::Blur, vec![AudioRange { from_ms: 1000, to_ms: 2000, effect: AudioEffect::Mute }]);
    render(&orig, &out, &p, &facts).unwrap();
    check_video(&orig, &out, |_, std, orig_std| std < orig_std * 0.2);
    let (_, max_muted) = volume(&out, 1.1, 1.9);
    assert!(max_muted < -50.0, "the muted range is silent (max {max_muted} dB)");
    let (mean_after, _) = volume(&out, 2.2, 3.5);
    let (mean_orig, _) = volume(&orig, 2.2, 3.5);
    assert!((mean_after - mean_orig).abs() < 1.0, "outside the range the sound is the original's ({mean_after} vs {mean_orig} dB)");
}

#[test]
fn a_tone_replaces_the_sound_over_its_range() {
    let Some((_dir, orig, facts, out)) = setup() else { return };
    let mut p = plan(VideoEffect::Fill, vec![AudioRange { from_ms: 1000, to_ms: 3000, effect: AudioEffect::Tone }]);
    p.regions.clear();
    p.blackouts = vec![TimeRange { from_ms: 500, to_ms: 1000 }];
    render(&orig, &out, &p, &facts).unwrap();
    let (mean, max) = volume(&out, 1.2, 2.8);
    // A 0.25 sine: peak about −12 dBFS, mean about −15 dB.
    assert!((-14.0..-10.0).contains(&max) && (-18.0..-13.0).contains(&mean), "tone level: mean {mean}, max {max}");
    // The blackout: whole frames black in its range, the others not.
    let frames = gray_frames(&out);
    let (m, s) = stats(&frames[22], 0, W, 0, H);
    assert!(m < 20.0 && s < 4.0, "frame 22 (0.73 s) is black: {m} {s}");
    let (_, s) = stats(&frames[45], 0, W, 0, H);
    assert!(s > 30.0, "frame 45 (1.5 s) is not");
}

#[test]
fn a_still_is_redacted_as_one_frame() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("photo.jpg");
    let graph = format!("testsrc=size={W}x{H}:rate=1:duration=1[bg];nullsrc=size={OBJ}x{OBJ}:rate=1:duration=1,format=yuv420p,geq=lum='if(mod(floor(X/6)+floor(Y/6),2),235,16)':cb=128:cr=128[obj];[bg][obj]overlay=x=100:y={OBJ_Y}[v]");
    ffmpeg(&["-filter_complex", &graph, "-map", "[v]", "-frames:v", "1", "-q:v", "2", orig.to_str().unwrap()]);
    let facts = probe(&orig).unwrap();
    assert!(facts.still && !facts.audio, "{facts:?}");
    let mut p = plan(VideoEffect::Fill, vec![]);
    p.regions[0].keyframes = vec![Keyframe { t_ms: 0, x: 100, y: OBJ_Y as u32, w: OBJ as u32, h: OBJ as u32 }; 2];
    let out = dir.path().join("photo-redacted.jpg");
    render(&orig, &out, &p, &facts).unwrap();
    let (a, b) = (gray_frames(&orig), gray_frames(&out));
    assert_eq!((a.len(), b.len()), (1, 1));
    // drawbox's black is Y = 16 in the JPEG's full range: 30 once read back as limited-range gray.
    let (m, s) = stats(&b[0], 103, 103 + OBJ - 6, OBJ_Y + 3, OBJ_Y + OBJ - 3);
    assert!(m < 40.0 && s < 4.0, "{m} {s}");
    assert!(mad_rows(&a[0], &b[0], 0, OBJ_Y - 10) < 3.0);
}

#[test]
fn a_bad_plan_or_a_failed_render_leaves_nothing_behind() {
    let Some((dir, orig, facts, out)) = setup() else { return };
    let mut p = plan(VideoEffect::Blur, vec![]);
    p.regions[0].keyframes[1].t_ms = 60_000;
    let e = render(&orig, &out, &p, &facts).unwrap_err();
    assert!(e.to_string().contains("region 1, keyframe 2: at 60000 ms, past the media's end"), "{e}");
    // ffmpeg fails on an input that is not the media the facts describe (a text file).
    let fake = dir.path().join("fake.mp4");
    std::fs::write(&fake, b"not a video").unwrap();
    let e = render(&fake, &out, &plan(VideoEffect::Fill, vec![]), &facts).unwrap_err();
    assert!(matches!(e, Error::Render(_)), "{e}");
    assert!(probe(&fake).is_err());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(!left.iter().any(|n| n.contains("redacted")), "{left:?}");
}
