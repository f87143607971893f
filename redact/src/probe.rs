//! What a media file is, from `ffprobe` (picture size, duration, sound, still or moving).

use crate::error::{Error, Result};
use crate::plan::MediaFacts;
use std::path::Path;
use std::process::Command;

/// Probes `path` with `ffprobe` (Debian's, on PATH).
pub fn probe(path: &Path) -> Result<MediaFacts> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,width,height:format=duration,format_name", "-of", "json"])
        .arg(path)
        .output()
        .map_err(|source| Error::Tool { tool: "ffprobe", source })?;
    if !out.status.success() {
        return Err(Error::Probe(last_lines(&out.stderr)));
    }
    facts_from_json(&out.stdout)
}

/// [`MediaFacts`] from ffprobe's JSON (`-show_entries stream=codec_type,width,height:format=duration,format_name -of json`).
pub fn facts_from_json(json: &[u8]) -> Result<MediaFacts> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|_| Error::Probe("ffprobe's answer does not parse".into()))?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["codec_type"] == "video");
    let audio = streams.iter().any(|s| s["codec_type"] == "audio");
    let format = v["format"]["format_name"].as_str().unwrap_or("");
    let still = video.is_some() && !audio && (format.ends_with("_pipe") || format == "image2");
    let duration_ms = v["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).filter(|d| d.is_finite() && *d >= 0.0).map(|d| (d * 1000.0).round() as u64).unwrap_or(0);
    let (width, height) = match video {
        Some(s) => (s["width"].as_u64().unwrap_or(0) as u32, s["height"].as_u64().unwrap_or(0) as u32),
        None => (0, 0),
    };
    if video.is_none() && !audio {
        return Err(Error::Probe("neither picture nor sound".into()));
    }
    if video.is_some() && (width == 0 || height == 0) {
        return Err(Error::Probe("a picture without a size".into()));
    }
    Ok(MediaFacts { width, height, duration_ms: if still { 0 } else { duration_ms }, video: video.is_some(), audio, still })
}

/// The last few lines a tool wrote to stderr (for an error message).
pub(crate) fn last_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_a_video_a_still_and_a_recording() {
        let v = br#"{"streams":[{"codec_type":"video","width":320,"height":240},{"codec_type":"audio"}],"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"4.000000"}}"#;
        assert_eq!(facts_from_json(v).unwrap(), MediaFacts { width: 320, height: 240, duration_ms: 4000, video: true, audio: true, still: false });
        let s = br#"{"streams":[{"codec_type":"video","width":640,"height":480}],"format":{"format_name":"jpeg_pipe"}}"#;
        assert!(facts_from_json(s).unwrap().still);
        let a = br#"{"streams":[{"codec_type":"audio"}],"format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"2.5"}}"#;
        assert_eq!(facts_from_json(a).unwrap(), MediaFacts { width: 0, height: 0, duration_ms: 2500, video: false, audio: true, still: false });
        assert!(facts_from_json(br#"{"streams":[],"format":{}}"#).is_err());
    }
}
