//! Redaction for public release: a plan of what to hide (`fieldcap.redaction/1`, FORMATS §17)
//! and its rendering by `ffmpeg` into a **derived** file. The original is only ever read.
//!
//! Staff draw rectangles over the picture on keyframes (interpolated between them) to blur or
//! fill, black out whole frames over time ranges, and mute the sound or replace it by a tone
//! over time ranges. [`probe`] says what the media is, [`RedactionPlan::validate`] checks a plan
//! against it (naming what is wrong), [`render`] runs one `ffmpeg` with a filter graph made only
//! from the plan's numbers and writes the derived file atomically.
//!
//! ```no_run
//! use fieldcap_redact::{probe, render, RedactionPlan};
//! # fn main() -> Result<(), fieldcap_redact::Error> {
//! let original = std::path::Path::new("original.mp4");
//! let facts = probe(original)?;
//! let plan = RedactionPlan::parse(&std::fs::read("plan.json").unwrap_or_default(), &facts)?;
//! render(original, std::path::Path::new("redacted.mp4"), &plan, &facts)?;
//! # Ok(()) }
//! ```
//!
//! Guarantees: a region always covers at least the box interpolated between its keyframes
//! (plus a 2-pixel margin); every frame keeps its timestamp (duration and frame count unchanged);
//! container metadata is dropped; nothing is left at the output path when rendering fails.

mod error;
pub mod plan;
mod probe;
pub mod render;

pub use error::{Error, Result};
pub use plan::{AudioEffect, AudioRange, Keyframe, MediaFacts, OriginalDigests, RedactionPlan, Region, TimeRange, VideoEffect, REDACTION_TYPE};
pub use probe::{facts_from_json, probe};
pub use render::{filters, render, Filters};
