//! The redaction plan, `fieldcap.redaction/1`: what staff drew over one original (FORMATS §17).

use crate::error::{invalid, Result};
use serde::{Deserialize, Serialize};

/// The `type` of a redaction plan.
pub const REDACTION_TYPE: &str = "fieldcap.redaction/1";
/// Most regions in one plan (each becomes a few filters of one ffmpeg graph).
pub const MAX_REGIONS: usize = 64;
/// Most keyframes over all regions of one plan.
pub const MAX_KEYFRAMES: usize = 4096;
/// Most blackout and audio ranges in one plan.
pub const MAX_RANGES: usize = 256;
/// Smallest side of a region, in pixels (a blur needs room for its radius).
pub const MIN_SIDE: u32 = 8;
/// How far past the media's end a keyframe or range may reach (a clip's last frame ends after its
/// last timestamp).
pub const END_SLACK_MS: u64 = 1000;

/// One redaction of one original: regions of the picture blurred or filled over time, whole
/// frames blacked out, audio muted or replaced by a tone. The original is never changed; the plan
/// is rendered into a new, derived file ([`crate::render`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionPlan {
    /// Always [`REDACTION_TYPE`].
    #[serde(rename = "type")]
    pub doc_type: String,
    /// The item redacted.
    pub clip_id: String,
    /// The original's digests (the bytes the plan was drawn over).
    pub original: OriginalDigests,
    /// Picture regions, each over the time between its first and last keyframe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<Region>,
    /// Time ranges in which the whole picture is black.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blackouts: Vec<TimeRange>,
    /// Time ranges in which the sound is muted or replaced by a tone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audio: Vec<AudioRange>,
    /// Why (for the record and the release's report), e.g. "faces of children, a victim's voice".
    pub reason: String,
}

/// Length and digests of the original a plan was drawn over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginalDigests {
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// BLAKE3, lowercase hex.
    pub blake3: String,
}

/// What a region does to the picture inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoEffect {
    /// A strong box blur (three passes, radius half the region's smaller side).
    Blur,
    /// Solid black.
    Fill,
}

/// A rectangle of the picture over time: placed on keyframes, interpolated linearly between
/// them, active from the first keyframe's time to the last one's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Blur or fill.
    pub effect: VideoEffect,
    /// At least two, in time order (equal times allowed: a still, or a jump).
    pub keyframes: Vec<Keyframe>,
    /// What it covers, for the record ("face", "plate", "screen"…); free text, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Where the region came from: drawn by staff, or a detector's proposal they accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Where a region is at one time, in pixels of the original picture (top-left origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyframe {
    /// Milliseconds from the start of the media.
    pub t_ms: u64,
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// A time range, milliseconds from the start of the media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRange {
    /// Start.
    pub from_ms: u64,
    /// End (after the start).
    pub to_ms: u64,
}

/// What an audio range does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioEffect {
    /// Silence.
    Mute,
    /// A 1 kHz tone at −12 dBFS in place of the sound (a listener hears that something was removed).
    Tone,
}

/// A time range of the sound muted or replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioRange {
    /// Start, milliseconds.
    pub from_ms: u64,
    /// End, milliseconds (after the start).
    pub to_ms: u64,
    /// Mute or tone.
    pub effect: AudioEffect,
}

/// What a plan is checked and rendered against (from [`crate::probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFacts {
    /// Picture width in pixels (0 without a picture).
    pub width: u32,
    /// Picture height in pixels (0 without a picture).
    pub height: u32,
    /// Duration in milliseconds (0 for a still).
    pub duration_ms: u64,
    /// Has a picture (video or still).
    pub video: bool,
    /// Has sound.
    pub audio: bool,
    /// A still image (one picture, no time).
    pub still: bool,
}

impl RedactionPlan {
    /// Parses a plan (JSON) and checks it against the media it is for.
    pub fn parse(bytes: &[u8], facts: &MediaFacts) -> Result<RedactionPlan> {
        let plan: RedactionPlan = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a redaction plan: {e}")))?;
        plan.validate(facts)?;
        Ok(plan)
    }

    /// Checks the plan against the media: every region, keyframe and range is named by its
    /// position when it is wrong.
    pub fn validate(&self, facts: &MediaFacts) -> Result<()> {
        if self.doc_type != REDACTION_TYPE {
            return Err(invalid(format!("type must be {REDACTION_TYPE}")));
        }
        if self.regions.is_empty() && self.blackouts.is_empty() && self.audio.is_empty() {
            return Err(invalid("the plan redacts nothing (no region, blackout or audio range)"));
        }
        if self.reason.trim().is_empty() {
            return Err(invalid("a reason is required"));
        }
        if self.regions.len() > MAX_REGIONS {
            return Err(invalid(format!("more than {MAX_REGIONS} regions")));
        }
        if self.regions.iter().map(|r| r.keyframes.len()).sum::<usize>() > MAX_KEYFRAMES {
            return Err(invalid(format!("more than {MAX_KEYFRAMES} keyframes")));
        }
        if self.blackouts.len() + self.audio.len() > MAX_RANGES {
            return Err(invalid(format!("more than {MAX_RANGES} ranges")));
        }
        let end = facts.duration_ms + END_SLACK_MS;
        if (!self.regions.is_empty() || !self.blackouts.is_empty()) && !facts.video {
            return Err(invalid("regions and blackouts need a picture; this media has none"));
        }
        for (i, r) in self.regions.iter().enumerate() {
            let n = i + 1;
            if r.keyframes.len() < 2 {
                return Err(invalid(format!("region {n}: at least two keyframes (the same box twice for a box that does not move)")));
            }
            for (j, k) in r.keyframes.iter().enumerate() {
                let m = j + 1;
                if j > 0 && k.t_ms < r.keyframes[j - 1].t_ms {
                    return Err(invalid(format!("region {n}, keyframe {m}: before the keyframe ahead of it")));
                }
                if k.t_ms > end {
                    return Err(invalid(format!("region {n}, keyframe {m}: at {} ms, past the media's end ({} ms)", k.t_ms, facts.duration_ms)));
                }
                if k.w < MIN_SIDE || k.h < MIN_SIDE {
                    return Err(invalid(format!("region {n}, keyframe {m}: smaller than {MIN_SIDE}×{MIN_SIDE} pixels")));
                }
                if k.x >= facts.width || k.y >= facts.height {
                    return Err(invalid(format!("region {n}, keyframe {m}: outside the {}×{} picture", facts.width, facts.height)));
                }
            }
            if facts.still && r.keyframes.iter().any(|k| k.t_ms != 0) {
                return Err(invalid(format!("region {n}: a still has only time 0")));
            }
        }
        for (i, b) in self.blackouts.iter().enumerate() {
            range_ok(&format!("blackout {}", i + 1), b.from_ms, b.to_ms, end, facts.still)?;
        }
        if !self.audio.is_empty() && !facts.audio {
            return Err(invalid("audio ranges need sound; this media has none"));
        }
        for (i, a) in self.audio.iter().enumerate() {
            range_ok(&format!("audio range {}", i + 1), a.from_ms, a.to_ms, end, false)?;
        }
        Ok(())
    }
}

fn range_ok(what: &str, from: u64, to: u64, end: u64, still: bool) -> Result<()> {
    if still {
        return if from == 0 { Ok(()) } else { Err(invalid(format!("{what}: a still has only time 0"))) };
    }
    if to <= from {
        return Err(invalid(format!("{what}: ends at or before its start")));
    }
    if from > end {
        return Err(invalid(format!("{what}: starts past the media's end")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MediaFacts {
        MediaFacts { width: 320, height: 240, duration_ms: 4000, video: true, audio: true, still: false }
    }

    fn plan() -> RedactionPlan {
        RedactionPlan {
            doc_type: REDACTION_TYPE.into(),
            clip_id: "0190a4c2-0000-7000-8000-000000000001".into(),
            original: OriginalDigests { bytes: 1, sha256: "a".repeat(64), blake3: "b".repeat(64) },
            regions: vec![Region {
                effect: VideoEffect::Blur,
                keyframes: vec![Keyframe { t_ms: 0, x: 10, y: 10, w: 40, h: 40 }, Keyframe { t_ms: 2000, x: 200, y: 100, w: 60, h: 60 }],
                label: Some("face".into()),
                source: None,
            }],
            blackouts: vec![],
            audio: vec![AudioRange { from_ms: 500, to_ms: 1500, effect: AudioEffect::Mute }],
            reason: "a child's face and voice".into(),
        }
    }

    #[test]
    fn a_plan_round_trips_and_validates() {
        let p = plan();
        let bytes = serde_json::to_vec(&p).unwrap();
        assert_eq!(RedactionPlan::parse(&bytes, &facts()).unwrap(), p);
    }

    #[test]
    fn each_mistake_is_named() {
        type Change = Box<dyn Fn(&mut RedactionPlan)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|p| p.doc_type = "x".into()), "type must be"),
            (Box::new(|p| p.regions[0].keyframes.truncate(1)), "region 1: at least two keyframes"),
            (Box::new(|p| p.regions[0].keyframes[1].t_ms = 0), ""),
            (Box::new(|p| p.regions[0].keyframes.swap(0, 1)), "region 1, keyframe 2: before"),
            (Box::new(|p| p.regions[0].keyframes[1].t_ms = 9000), "region 1, keyframe 2: at 9000 ms, past"),
            (Box::new(|p| p.regions[0].keyframes[0].w = 4), "region 1, keyframe 1: smaller than 8"),
            (Box::new(|p| p.regions[0].keyframes[0].x = 320), "region 1, keyframe 1: outside the 320×240"),
            (Box::new(|p| p.audio[0].to_ms = 500), "audio range 1: ends at or before"),
            (Box::new(|p| p.reason = " ".into()), "a reason is required"),
            (Box::new(|p| {
                p.regions.clear();
                p.audio.clear()
            }), "redacts nothing"),
        ];
        for (change, want) in cases {
            let mut p = plan();
            change(&mut p);
            match p.validate(&facts()) {
                Ok(()) => assert!(want.is_empty(), "accepted, wanted {want}"),
                Err(e) => assert!(!want.is_empty() && e.to_string().contains(want), "{e} (wanted {want})"),
            }
        }
        let mut silent = facts();
        silent.audio = false;
        assert!(plan().validate(&silent).unwrap_err().to_string().contains("need sound"));
        let unknown = br#"{"type":"fieldcap.redaction/1","clip_id":"c","original":{"bytes":1,"sha256":"","blake3":""},"reason":"r","extra":1}"#;
        assert!(RedactionPlan::parse(unknown, &facts()).unwrap_err().to_string().contains("unknown field"));
    }
}
