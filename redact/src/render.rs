//! Rendering a plan: one `ffmpeg` run with a filter graph built from the plan's numbers (never
//! from text staff typed), arguments passed as a list (no shell), into `<output>.part.<ext>`,
//! fsynced and renamed into place. The original is only read.

use crate::error::{Error, Result};
use crate::plan::{AudioEffect, MediaFacts, RedactionPlan, Region, VideoEffect};
use crate::probe::last_lines;
use std::path::Path;
use std::process::Command;

/// Pixels added around every region on each side: covers the rounding of positions to the
/// chroma grid and a tracking keyframe that is a little off.
pub const MARGIN: u32 = 2;
/// Frequency of the tone that replaces sound (at −12 dBFS: ffmpeg's `sine` at 1/8, doubled).
pub const TONE_HZ: u32 = 1000;

/// The filter graphs of a plan: the picture's (`[0:v]` → `[v]`) and the sound's (`[0:a]` →
/// `[a]`), each `None` when the plan does not touch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filters {
    /// The picture's graph.
    pub video: Option<String>,
    /// The sound's graph.
    pub audio: Option<String>,
}

/// Seconds with millisecond precision, as ffmpeg's expressions read them.
fn secs(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn even_up(v: u32) -> u32 {
    v + (v & 1)
}

/// One stretch of a region between two keyframes: a box of constant size (the larger of the two,
/// plus the margin) whose top-left corner moves linearly, so it always covers the interpolated
/// box (its left and top edges are the interpolated ones, its size at least theirs).
struct Stretch {
    from_ms: u64,
    to_ms: u64,
    w: u32,
    h: u32,
    x: String,
    y: String,
}

fn stretches(r: &Region, f: &MediaFacts) -> Vec<Stretch> {
    r.keyframes
        .windows(2)
        .map(|k| {
            let (a, b) = (k[0], k[1]);
            let w = even_up(a.w.max(b.w) + 2 * MARGIN).min(f.width - (f.width & 1));
            let h = even_up(a.h.max(b.h) + 2 * MARGIN).min(f.height - (f.height & 1));
            let pos = |p0: u32, p1: u32, max: u32| -> String {
                let (p0, p1) = (p0 as i64 - MARGIN as i64, p1 as i64 - MARGIN as i64);
                let lin = if b.t_ms > a.t_ms && p0 != p1 {
                    format!("{p0}+({})*(t-{})/{}", p1 - p0, secs(a.t_ms), secs(b.t_ms - a.t_ms))
                } else {
                    p0.to_string()
                };
                format!("clip({lin},0,{max})")
            };
            Stretch { from_ms: a.t_ms, to_ms: b.t_ms, w, h, x: pos(a.x, b.x, f.width - w), y: pos(a.y, b.y, f.height - h) }
        })
        .collect()
}

/// The filter graphs for `plan` over media described by `facts` (checked first).
pub fn filters(plan: &RedactionPlan, facts: &MediaFacts) -> Result<Filters> {
    plan.validate(facts)?;
    let mut v: Vec<String> = Vec::new();
    let mut label = "0:v".to_string();
    let mut n = 0usize;
    // One filter from the current label to a new one.
    fn next(v: &mut Vec<String>, label: &mut String, n: &mut usize, body: String) {
        *n += 1;
        let out = format!("v{n}");
        v.push(format!("[{label}]{body}[{out}]"));
        *label = out;
    }
    for r in &plan.regions {
        for s in stretches(r, facts) {
            // A still has one frame at t = 0: a window of a millisecond either side holds it.
            let enable = format!("between(t,{},{})", secs(s.from_ms), secs(s.to_ms.max(s.from_ms + 1)));
            // The box is cut out (crop follows the moving corner frame by frame), blurred or
            // filled, and laid back over the picture at the same corner (overlay evaluates its
            // position per frame; drawbox would not on ffmpeg 5.1).
            let effect = match r.effect {
                VideoEffect::Fill => "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill".to_string(),
                VideoEffect::Blur => {
                    // Luma radius half the smaller side, chroma (half-size planes) a quarter;
                    // three passes: nothing of a face's features is left.
                    let luma = (s.w.min(s.h) / 2).saturating_sub(1).max(1);
                    let chroma = (s.w.min(s.h) / 4).saturating_sub(1).max(1);
                    format!("boxblur=luma_radius={luma}:luma_power=3:chroma_radius={chroma}:chroma_power=3")
                }
            };
            n += 1;
            let (a, b, c, out) = (format!("s{n}a"), format!("s{n}b"), format!("s{n}c"), format!("v{n}"));
            v.push(format!("[{label}]split[{a}][{b}]"));
            v.push(format!("[{b}]crop=w={}:h={}:x='{}':y='{}',{effect}[{c}]", s.w, s.h, s.x, s.y));
            v.push(format!("[{a}][{c}]overlay=x='{}':y='{}':enable='{enable}'[{out}]", s.x, s.y));
            label = out;
        }
    }
    for b in &plan.blackouts {
        let enable = format!("between(t,{},{})", secs(b.from_ms), secs(b.to_ms.max(b.from_ms + 1)));
        next(&mut v, &mut label, &mut n, format!("drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='{enable}'"));
    }
    let video = if v.is_empty() {
        None
    } else {
        // The last filter's output is the graph's: renamed to [v].
        let last = v.pop().unwrap_or_default();
        let last = last.rsplit_once('[').map(|(head, _)| format!("{head}[vx]")).unwrap_or(last);
        v.push(last);
        // Video out in the yuv420p players expect; a still keeps its (full-range JPEG) format.
        v.push(if facts.still { "[vx]null[v]".into() } else { "[vx]format=yuv420p[v]".into() });
        Some(v.join(";"))
    };
    let audio = if plan.audio.is_empty() {
        None
    } else {
        let mut chain: Vec<String> = plan
            .audio
            .iter()
            .map(|a| format!("volume=volume=0:enable='between(t,{},{})'", secs(a.from_ms), secs(a.to_ms)))
            .collect();
        chain.push("aformat=sample_fmts=fltp".into());
        let tones: Vec<String> = plan
            .audio
            .iter()
            .filter(|a| a.effect == AudioEffect::Tone)
            .map(|a| format!("between(t,{},{})", secs(a.from_ms), secs(a.to_ms)))
            .collect();
        if tones.is_empty() {
            Some(format!("[0:a]{}[a]", chain.join(",")))
        } else {
            let gate = tones.join("+");
            Some(format!(
                "[0:a]{}[muted];sine=frequency={TONE_HZ}:sample_rate=48000,volume=volume='2*min(1,{gate})':eval=frame,aformat=sample_fmts=fltp[tone];[muted][tone]amix=inputs=2:duration=first:normalize=0[a]",
                chain.join(",")
            ))
        }
    };
    Ok(Filters { video, audio })
}

/// Renders `plan` over `input` into `output` (whose extension says the container: `mp4`, `mov`,
/// `m4a`, `jpg`). The picture is re-encoded (H.264, CRF 18; a still as JPEG) when the plan
/// touches it, the sound (AAC) when it touches that; the other stream is copied. Every frame
/// keeps its timestamp (no frame dropped or added), and the container's metadata (places,
/// names, devices) is not carried over. Nothing is left at `output` on failure.
pub fn render(input: &Path, output: &Path, plan: &RedactionPlan, facts: &MediaFacts) -> Result<()> {
    let f = filters(plan, facts)?;
    let ext = output.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let stem = output.file_name().and_then(|n| n.to_str()).unwrap_or("derived");
    let part = output.with_file_name(format!(".{stem}.part.{ext}"));
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i"]).arg(input);
    let graph: Vec<&str> = [f.video.as_deref(), f.audio.as_deref()].into_iter().flatten().collect();
    if !graph.is_empty() {
        cmd.arg("-filter_complex").arg(graph.join(";"));
    }
    if facts.video {
        if f.video.is_some() {
            cmd.args(["-map", "[v]"]);
            if facts.still {
                cmd.args(["-frames:v", "1", "-q:v", "2", "-update", "1"]);
            } else {
                cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-fps_mode", "passthrough"]);
            }
        } else {
            cmd.args(["-map", "0:v:0", "-c:v", "copy"]);
        }
    }
    if facts.audio {
        if f.audio.is_some() {
            cmd.args(["-map", "[a]", "-c:a", "aac", "-b:a", "160k"]);
        } else {
            cmd.args(["-map", "0:a:0", "-c:a", "copy"]);
        }
    }
    cmd.args(["-map_metadata", "-1", "-map_chapters", "-1"]);
    if matches!(ext.as_str(), "mp4" | "m4a" | "mov" | "m4v") {
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.arg(&part);
    let out = cmd.output().map_err(|source| Error::Tool { tool: "ffmpeg", source })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&part);
        return Err(Error::Render(last_lines(&out.stderr)));
    }
    let io = |context: &str| {
        let context = context.to_string();
        move |source| Error::Io { context, source }
    };
    std::fs::File::open(&part).and_then(|f| f.sync_all()).map_err(io("syncing the derived file"))?;
    if let Err(e) = std::fs::rename(&part, output) {
        let _ = std::fs::remove_file(&part);
        return Err(io("moving the derived file into place")(e));
    }
    if let Some(dir) = output.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::*;

    #[test]
    fn a_moving_blur_and_a_tone_make_one_graph_each() {
        let facts = MediaFacts { width: 320, height: 240, duration_ms: 4000, video: true, audio: true, still: false };
        let plan = RedactionPlan {
            doc_type: REDACTION_TYPE.into(),
            clip_id: "c".into(),
            original: OriginalDigests { bytes: 1, sha256: String::new(), blake3: String::new() },
            regions: vec![Region {
                effect: VideoEffect::Blur,
                keyframes: vec![Keyframe { t_ms: 0, x: 10, y: 20, w: 40, h: 40 }, Keyframe { t_ms: 2000, x: 110, y: 20, w: 50, h: 40 }],
                label: None,
                source: None,
            }],
            blackouts: vec![TimeRange { from_ms: 3000, to_ms: 3500 }],
            audio: vec![AudioRange { from_ms: 1000, to_ms: 2000, effect: AudioEffect::Tone }],
            reason: "r".into(),
        };
        let f = filters(&plan, &facts).unwrap();
        let v = f.video.unwrap();
        assert!(v.starts_with("[0:v]split[s1a][s1b];[s1b]crop=w=54:h=44:x='clip(8+(100)*(t-0.000)/2.000,0,266)':y='clip(18,0,196)'"), "{v}");
        assert!(v.contains("enable='between(t,0.000,2.000)'"), "{v}");
        assert!(v.ends_with("drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,3.000,3.500)'[vx];[vx]format=yuv420p[v]"), "{v}");
        let a = f.audio.unwrap();
        assert!(a.contains("volume=volume=0:enable='between(t,1.000,2.000)'") && a.contains("min(1,between(t,1.000,2.000))':eval=frame") && a.ends_with("[a]"), "{a}");
    }
}
